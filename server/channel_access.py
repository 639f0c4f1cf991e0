"""Channel-bound API keys (like Medusa's publishable keys): what a caller whose Principal has
channels may do with orders. A key without channels (and every job, and ``--auth off``) sees
every channel and pays one attribute check per call.

For a bound key:
- placing: an order of another channel (an empty request channel is ``DEFAULT_CHANNEL``) is
  refused PERMISSION_DENIED at the edge, before it is decoded, cached, claimed or written; in a
  batch or stream only that order fails.
  An idempotent repeat whose key another channel's order holds is refused too, without it.
- reading and cancelling: another channel's order does not exist for it: NOT_FOUND with the
  very message of a missing order, so probing ids tells nothing. An order's channel never
  changes, so checking the loaded order before a cancel cannot race with the cancel.
- listing: only its channels; naming another is PERMISSION_DENIED; naming none lists all of
  its channels, merged page by page (``list_orders``).
- fraud review (ReleaseHold) is back-office work: refused to every bound key.
- watching: only events of its channels (server/events_hub.py filters per watcher).
"""
from __future__ import annotations

import asyncio

from oms.engine.errors import NotFoundError, OmsError, PermissionDeniedError, quote
from oms.engine.models import Order
from oms.server.auth.principal import Principal
from oms.server.pb_convert import DEFAULT_CHANNEL
from oms.server.redis.store import Store
from oms.server.request_decoding import ListOrdersQuery
from oms.v1 import orders_pb2


def _names(p: Principal) -> str:
    return ", ".join(sorted(p.channels))


def foreign_order(request: orders_pb2.PlaceOrderRequest, p: Principal
                  ) -> PermissionDeniedError | None:
    """The refusal of a PlaceOrderRequest outside the bound key's channels, else None. Read
    from the raw request so that a refused order costs no decoding."""
    channel = request.channel or DEFAULT_CHANNEL
    if channel in p.channels:
        return None
    return PermissionDeniedError(f"this API key may place orders only in channel(s) "
                                 f"{_names(p)}, not in {quote(channel)}")


def hide_foreign(results: list[Order | OmsError], p: Principal) -> list[Order | OmsError]:
    """A bound key's intake results with any order of another channel refused instead: an
    idempotency key is one namespace for every channel, so a repeat of a key that another
    channel's order holds would otherwise hand that order over. The refusal does not show it."""
    return [r if not isinstance(r, Order) or r.channel in p.channels else PermissionDeniedError(
        f"idempotency_key {quote(r.idempotency_key)} is taken by an order outside channel(s) "
        f"{_names(p)} of this API key: use another key") for r in results]


def check_visible(order: Order, order_id: str, p: Principal) -> Order:
    """``order`` if the caller may see it; NotFoundError (exactly a missing order's) if not."""
    if p.channels and order.channel not in p.channels:
        raise NotFoundError("order", order_id)
    return order


def refuse_bound(p: Principal, what: str) -> None:
    """PermissionDeniedError for a channel-bound key: ``what`` is back-office work."""
    if p.channels:
        raise PermissionDeniedError(f"{what} is back-office work: refused to an API key bound "
                                    f"to channel(s) {_names(p)}")


def _suffix(order_id: str) -> str:
    """An order id's time-sortable suffix: what ListOrders pages by (its page token)."""
    return order_id.rpartition(".")[2]


async def list_orders(store: Store, q: ListOrdersQuery, p: Principal) -> tuple[list[Order], str]:
    """``Store.list_orders`` seen through the caller's channels. With several channels and none
    named, each channel's page after the token is read and the pages merged in creation order:
    the first ``page_size`` of the merge are exactly the first of their union (each channel's
    page holds its first ``page_size``), and the token is the suffix of the last one kept,
    as the store's own token is, so the next page starts right after it in every channel."""
    if not p.channels:
        return await store.list_orders(q.status, q.channel, q.page_size, q.page_token)
    if q.channel:
        if q.channel not in p.channels:
            raise PermissionDeniedError(f"this API key may list only channel(s) {_names(p)}, "
                                        f"not {quote(q.channel)}")
        return await store.list_orders(q.status, q.channel, q.page_size, q.page_token)
    if len(p.channels) == 1:
        (only,) = p.channels
        return await store.list_orders(q.status, only, q.page_size, q.page_token)
    pages = await asyncio.gather(*(store.list_orders(q.status, ch, q.page_size, q.page_token)
                                   for ch in sorted(p.channels)))
    merged = sorted((o for orders, _ in pages for o in orders), key=lambda o: _suffix(o.id))
    more = len(merged) >= q.page_size
    page = merged[:q.page_size]
    return page, _suffix(page[-1].id) if more else ""
