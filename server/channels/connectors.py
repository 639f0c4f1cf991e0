"""HTTP connectors of oms-channels: how available-to-sell and shipments reach a channel.

One ``Connector`` per channel, on an ``aiohttp.ClientSession`` the caller owns (one session per
channel, so a slow shop's connection pool never holds up another's). Every method either
returns or raises ``PushError``; ``retryable`` says whether trying again later may help (429,
5xx, connection errors, timeouts) and ``retry_after_s`` carries the server's ``Retry-After``.

Shopify (``ChannelKind.SHOPIFY``): GraphQL Admin API 2024-07, ``inventorySetQuantities`` with
the name "available": absolute sets by inventory item and location, with compare-and-set
(``compareQuantity`` = the value we last set; a ``COMPARE_QUANTITY_STALE`` user error means the
shop sold units we have not seen yet). Shipments: the order's fulfillment orders, then one
fulfillment per shipment with its tracking, covering exactly that shipment's units (the
fulfillment order line items whose ``inventory_item_id`` is ``sku_items[sku]``, at most their
``fulfillable_quantity``), so each shipment of an order split over warehouses reaches the shop
with its own tracking. Without a mapping for one of its SKUs (or items not known) it fulfils
every open fulfillment order, logged.

WooCommerce (``ChannelKind.WOOCOMMERCE``): REST v3, ``POST /wp-json/wc/v3/products/batch``
with ``stock_quantity`` (basic auth consumer_key:consumer_secret); shipments mark the order
completed with tracking meta data.

Generic webhook (every other kind with a base URL). Requests are JSON, signed with the
channel's access token: header ``X-OMS-Signature: sha256=<hex HMAC-SHA256(access_token,
raw body)>``.

``POST {base_url}/inventory``::

    {"channel_id": "web-eu",
     "sent_at": 1735689600000,                  # unix ms
     "updates": [{"sku": "SKU-1",
                  "item_id": "SKU-1",             # sku_items[sku], or the SKU when unmapped
                  "available_to_sell": 12,        # absolute: set, do not add
                  "version": 4711}]}              # grows with every stock change

  2xx: applied. 409: the receiver already holds a newer version for (some of) these SKUs;
  treated as done (a receiver should keep, per SKU, the highest version it applied and ignore
  older ones). 429 / 5xx: retried with backoff (``Retry-After`` in seconds is honoured).
  Other 4xx: a permanent failure of that request (retried at the next reconciliation).

``POST {base_url}/shipments``::

    {"channel_id": "web-eu", "sent_at": 1735689600000,
     "shipment_id": "...", "external_order_id": "...",   # the channel's own order id
     "carrier": "ups", "tracking_number": "...", "tracking_url": "https://...",
     "items": [{"sku": "SKU-1", "quantity": 2}]}   # the units in this shipment (may be absent)

  2xx or 409 (already recorded): done. Same retry rules.
"""
from __future__ import annotations

import abc
import base64
import email.utils
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from oms.engine.channels import Channel, ChannelKind

log = logging.getLogger("oms.channels.connectors")

SHOPIFY_API = "2024-07"
SHOPIFY_MAX_BATCH = 250     # inventorySetQuantities accepts at most 250 quantities
WOO_MAX_BATCH = 100         # products/batch accepts at most 100 updates
GENERIC_MAX_BATCH = 500
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5, sock_read=10)
_ERR_BODY_PREFIX = 160      # how much of an error body goes into last_error

SHOPIFY_SET_MUTATION = (
    "mutation inventorySet($input: InventorySetQuantitiesInput!) {"
    " inventorySetQuantities(input: $input) {"
    " inventoryAdjustmentGroup { id }"
    " userErrors { field message code } } }")


class PushError(Exception):
    """A push (stock or shipment) did not go through. ``retryable``: 429, 5xx, connection
    errors and timeouts (try again after ``retry_after_s`` when the server said so, else with
    backoff); not retryable: the request itself was refused (4xx other than 409/429)."""

    def __init__(self, retryable: bool, retry_after_s: float | None, message: str) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.message = message


@dataclass(frozen=True)
class StockUpdate:
    """One absolute set: ``quantity`` of ``sku`` (the channel's ``item_id``), read at
    ``version``. ``compare``: the value we last set on this channel (compare-and-set where the
    API has it); None when unknown (then the set is unconditional)."""
    sku: str
    item_id: str
    quantity: int
    version: int
    compare: int | None = None


@dataclass
class PushResult:
    """What became of a batch (the request itself was answered). ``accepted``: SKUs the channel
    now holds at the sent quantity (or newer, for a generic 409). ``stale``: refused by the
    compare-and-set (the channel's count moved under us). ``errors``: SKU -> a permanent
    per-item refusal. A SKU in none of the three was not applied and should be sent again."""
    accepted: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds, or an HTTP date); None when absent/bad."""
    if not value:
        return None
    v = value.strip()
    try:
        return max(0.0, float(v))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def sign_body(secret: str, body: bytes) -> str:
    """The generic webhook's ``X-OMS-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Connector(abc.ABC):
    """One channel's HTTP API. ``max_batch``: the most updates ``set_stock`` takes at once."""

    platform: str = ""
    max_batch: int = 100
    has_compare: bool = False

    def __init__(self, channel: Channel, session: aiohttp.ClientSession,
                 timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> None:
        self.channel = channel
        self.session = session
        self.timeout = timeout
        self.base = channel.push.base_url.rstrip("/")

    def item_id(self, sku: str) -> str | None:
        """The channel's item id of ``sku``; None when the channel does not list it."""
        return self.channel.push.sku_items.get(sku)

    @abc.abstractmethod
    async def set_stock(self, updates: Sequence[StockUpdate]) -> PushResult:
        """Set available-to-sell of ``updates`` (at most ``max_batch``) in one request."""

    @abc.abstractmethod
    async def mark_shipped(self, external_order_id: str, carrier: str, tracking_number: str,
                           tracking_url: str, shipment_id: str, *,
                           items: Mapping[str, int] | None = None) -> None:
        """Mark the channel's order ``external_order_id`` shipped with tracking; a repeat of a
        shipment already recorded is a success. ``items``: SKU -> units in this shipment
        (None: unknown, the whole order)."""

    async def _request(self, method: str, url: str, *, body: Any = None,
                       headers: dict[str, str] | None = None,
                       ok_statuses: tuple[int, ...] = ()) -> tuple[int, Any]:
        """(status, decoded JSON or None). Raises PushError for 429/5xx/transport errors and
        for 4xx not in ``ok_statuses``."""
        data = None if body is None else (body if isinstance(body, bytes) else orjson.dumps(body))
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        h.update(headers or {})
        try:
            async with self.session.request(method, url, data=data, headers=h,
                                            timeout=self.timeout) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise PushError(True, None, f"{method} {_path(url)}: {type(e).__name__} {e}"[:300]
                            ) from e
        if status in ok_statuses or 200 <= status < 300:
            try:
                return status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return status, None
        text = raw[:_ERR_BODY_PREFIX].decode("utf-8", "replace")
        msg = f"{method} {_path(url)}: HTTP {status} {text}"
        if status == 429 or status >= 500:
            raise PushError(True, retry_after, msg)
        raise PushError(False, None, msg)


def _path(url: str) -> str:
    """The URL without scheme/host (host names and queries stay out of error texts)."""
    rest = url.split("://", 1)[-1]
    return "/" + rest.split("/", 1)[1].split("?", 1)[0] if "/" in rest else "/"


class ShopifyConnector(Connector):
    platform = "shopify"
    max_batch = SHOPIFY_MAX_BATCH
    has_compare = True

    def _headers(self) -> dict[str, str]:
        return {"X-Shopify-Access-Token": self.channel.push.access_token}

    def _url(self, path: str) -> str:
        return f"{self.base}/admin/api/{SHOPIFY_API}/{path}"

    async def set_stock(self, updates: Sequence[StockUpdate]) -> PushResult:
        loc = _gid("Location", self.channel.push.location_id)
        quantities: list[dict[str, Any]] = []
        unconditional = any(u.compare is None for u in updates)
        for u in updates:
            q: dict[str, Any] = {"inventoryItemId": _gid("InventoryItem", u.item_id),
                                 "locationId": loc, "quantity": u.quantity}
            if not unconditional:
                q["compareQuantity"] = u.compare
            quantities.append(q)
        inp: dict[str, Any] = {"name": "available", "reason": "correction",
                               "quantities": quantities}
        if unconditional:
            # One flag for the whole input: a batch with any SKU whose channel value we do not
            # know goes unconditionally (the pusher batches known and unknown separately).
            inp["ignoreCompareQuantity"] = True
        _, doc = await self._request("POST", self._url("graphql.json"),
                                     body={"query": SHOPIFY_SET_MUTATION,
                                           "variables": {"input": inp}},
                                     headers=self._headers())
        return _shopify_result(updates, doc)

    async def mark_shipped(self, external_order_id: str, carrier: str, tracking_number: str,
                           tracking_url: str, shipment_id: str, *,
                           items: Mapping[str, int] | None = None) -> None:
        _, doc = await self._request(
            "GET", self._url(f"orders/{external_order_id}/fulfillment_orders.json"),
            headers=self._headers())
        open_fos = [fo for fo in (doc or {}).get("fulfillment_orders", [])
                    if fo.get("status") in ("open", "in_progress", "scheduled")]
        if not open_fos:
            # Nothing left to fulfil: this shipment (or another) already closed the order.
            return
        by_fo = self._shipment_lines(external_order_id, shipment_id, items,
                                     (doc or {}).get("fulfillment_orders", []), open_fos)
        if by_fo is None:  # whole open fulfillment orders (blank line items: all of them)
            lines: list[dict[str, Any]] = [{"fulfillment_order_id": fo["id"]} for fo in open_fos]
        elif not by_fo:
            # Every unit of this shipment is fulfilled already: a repeat of this push.
            return
        else:
            lines = [{"fulfillment_order_id": fo_id, "fulfillment_order_line_items": li}
                     for fo_id, li in by_fo.items()]
        body = {"fulfillment": {
            "line_items_by_fulfillment_order": lines,
            "tracking_info": {"number": tracking_number, "url": tracking_url,
                              "company": carrier},
            "notify_customer": True}}
        await self._request("POST", self._url("fulfillments.json"), body=body,
                            headers=self._headers())


    def _shipment_lines(self, order_id: str, shipment_id: str,
                        items: Mapping[str, int] | None, all_fos: list[dict[str, Any]],
                        open_fos: list[dict[str, Any]]
                        ) -> dict[Any, list[dict[str, int]]] | None:
        """Fulfillment order id -> [{id, quantity}] covering ``items`` (each capped at the
        line's ``fulfillable_quantity``); empty when all of them are fulfilled already; None
        when the shipment's units cannot be told apart (no items, a SKU without an inventory
        item, or none of its inventory items on the order): then every open fulfillment order
        goes, as one fulfillment with this tracking."""
        if not items:
            return None
        unmapped = sorted(sku for sku in items if not self.channel.push.sku_items.get(sku))
        if unmapped:
            log.warning("channel %s: shipment %s: no Shopify inventory item for %s; fulfilling "
                        "every open fulfillment order of order %s", self.channel.id,
                        shipment_id, ", ".join(unmapped[:5]), order_id)
            return None
        on_order = {_tail(li.get("inventory_item_id")) for fo in all_fos
                    for li in fo.get("line_items") or []}
        by_fo: dict[Any, list[dict[str, int]]] = {}
        missing: list[str] = []
        for sku, qty in sorted(items.items()):
            inv = _tail(self.channel.push.sku_items[sku])
            if inv not in on_order:
                missing.append(sku)
                continue
            left = qty
            for fo in open_fos:
                for li in fo.get("line_items") or []:
                    if left <= 0 or _tail(li.get("inventory_item_id")) != inv:
                        continue
                    n = min(left, int(li.get("fulfillable_quantity") or 0))
                    if n > 0:
                        by_fo.setdefault(fo["id"], []).append({"id": li["id"], "quantity": n})
                        left -= n
            if left > 0 and left < qty:
                # Fewer units open on the shop than we shipped (the shop fulfilled some itself,
                # or a repeat after a crash): send what is open, never more.
                log.warning("channel %s: shipment %s: only %d of %d units of %s still open "
                            "on order %s", self.channel.id, shipment_id, qty - left, qty, sku,
                            order_id)
        if missing and len(missing) == len(items):
            log.warning("channel %s: shipment %s: none of its inventory items is on order %s; "
                        "fulfilling every open fulfillment order", self.channel.id,
                        shipment_id, order_id)
            return None
        if missing:
            log.warning("channel %s: shipment %s: %s not on order %s; not fulfilled",
                        self.channel.id, shipment_id, ", ".join(missing[:5]), order_id)
        return by_fo


def _tail(ident: Any) -> str:
    """An id without its ``gid://shopify/<Kind>/`` prefix, as text (REST answers integers)."""
    return "" if ident is None else str(ident).rsplit("/", 1)[-1]


def _gid(kind: str, ident: str) -> str:
    """A Shopify global id; an id given whole (``gid://…``) is kept."""
    return ident if ident.startswith("gid://") else f"gid://shopify/{kind}/{ident}"


def _shopify_result(updates: Sequence[StockUpdate], doc: Any) -> PushResult:
    if not isinstance(doc, dict):
        raise PushError(True, None, "shopify: answer is not JSON")
    if doc.get("errors"):  # top-level GraphQL errors (throttled, bad query …)
        errs = doc["errors"]
        first = errs[0] if isinstance(errs, list) and errs else errs
        code = (first.get("extensions") or {}).get("code", "") if isinstance(first, dict) else ""
        text = first.get("message", "") if isinstance(first, dict) else str(first)
        raise PushError(code == "THROTTLED", None, f"shopify: {code} {text}"[:300])
    payload = ((doc.get("data") or {}).get("inventorySetQuantities") or {})
    user_errors = payload.get("userErrors") or []
    if not user_errors:
        return PushResult(accepted=[u.sku for u in updates])
    # The mutation is all-or-nothing: with any user error nothing was set. Stale ones are
    # named; the rest of the batch simply goes again.
    res = PushResult()
    for ue in user_errors:
        idx = _quantity_index(ue.get("field"))
        sku = updates[idx].sku if idx is not None and idx < len(updates) else None
        if ue.get("code") == "COMPARE_QUANTITY_STALE" and sku is not None:
            res.stale.append(sku)
        elif sku is not None:
            res.errors[sku] = f"{ue.get('code', '')} {ue.get('message', '')}"[:200]
        else:
            raise PushError(False, None, f"shopify: {ue.get('code')} {ue.get('message')}"[:300])
    return res


def _quantity_index(path: Any) -> int | None:
    """The quantities[] index in a user error's field path, e.g. ["input", "quantities", "3",
    "compareQuantity"]."""
    if isinstance(path, list) and "quantities" in path:
        i = path.index("quantities")
        if i + 1 < len(path):
            try:
                return int(path[i + 1])
            except (TypeError, ValueError):
                return None
    return None


class WooCommerceConnector(Connector):
    platform = "woocommerce"
    max_batch = WOO_MAX_BATCH

    def _auth(self) -> dict[str, str]:
        p = self.channel.push
        pair = f"{p.consumer_key}:{p.consumer_secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}

    async def set_stock(self, updates: Sequence[StockUpdate]) -> PushResult:
        body = {"update": [{"id": _woo_id(u.item_id), "stock_quantity": u.quantity,
                            "manage_stock": True} for u in updates]}
        _, doc = await self._request("POST", f"{self.base}/wp-json/wc/v3/products/batch",
                                     body=body, headers=self._auth())
        by_id = {str(u.item_id): u.sku for u in updates}
        res = PushResult()
        for item in (doc or {}).get("update", []) if isinstance(doc, dict) else []:
            sku = by_id.get(str(item.get("id")))
            if sku is None:
                continue
            err = item.get("error")
            if err:
                status = int(((err.get("data") or {}).get("status")) or 400)
                if status == 429 or status >= 500:
                    continue  # not applied: goes again
                res.errors[sku] = f"{err.get('code', '')} {err.get('message', '')}"[:200]
            else:
                res.accepted.append(sku)
        return res

    async def mark_shipped(self, external_order_id: str, carrier: str, tracking_number: str,
                           tracking_url: str, shipment_id: str, *,
                           items: Mapping[str, int] | None = None) -> None:
        body = {"status": "completed", "meta_data": [
            {"key": "_oms_shipment_id", "value": shipment_id},
            {"key": "_tracking_provider", "value": carrier},
            {"key": "_tracking_number", "value": tracking_number},
            {"key": "_tracking_url", "value": tracking_url}]}
        await self._request("PUT", f"{self.base}/wp-json/wc/v3/orders/{external_order_id}",
                            body=body, headers=self._auth())


def _woo_id(item_id: str) -> int | str:
    return int(item_id) if item_id.isdigit() else item_id


class GenericConnector(Connector):
    platform = "generic"
    max_batch = GENERIC_MAX_BATCH

    def item_id(self, sku: str) -> str | None:
        items = self.channel.push.sku_items
        return items.get(sku) if items else sku  # no mapping: every SKU, under its own name

    async def _post_signed(self, path: str, doc: dict[str, Any]) -> int:
        body = orjson.dumps(doc)
        status, _ = await self._request(
            "POST", f"{self.base}/{path}", body=body, ok_statuses=(409,),
            headers={"X-OMS-Signature": sign_body(self.channel.push.access_token, body)})
        return status

    async def set_stock(self, updates: Sequence[StockUpdate]) -> PushResult:
        await self._post_signed("inventory", {
            "channel_id": self.channel.id, "sent_at": int(time.time() * 1000),
            "updates": [{"sku": u.sku, "item_id": u.item_id, "available_to_sell": u.quantity,
                         "version": u.version} for u in updates]})
        return PushResult(accepted=[u.sku for u in updates])  # 2xx, or 409: it has newer

    async def mark_shipped(self, external_order_id: str, carrier: str, tracking_number: str,
                           tracking_url: str, shipment_id: str, *,
                           items: Mapping[str, int] | None = None) -> None:
        await self._post_signed("shipments", {
            "channel_id": self.channel.id, "sent_at": int(time.time() * 1000),
            "shipment_id": shipment_id, "external_order_id": external_order_id,
            "carrier": carrier, "tracking_number": tracking_number,
            "tracking_url": tracking_url,
            **({"items": [{"sku": k, "quantity": v} for k, v in sorted(items.items())]}
               if items else {})})


def connector_for(channel: Channel, session: aiohttp.ClientSession,
                  timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT) -> Connector | None:
    """The connector of ``channel``'s push target; None when it has none (no base URL)."""
    if not channel.push.base_url:
        return None
    if channel.kind == ChannelKind.SHOPIFY:
        return ShopifyConnector(channel, session, timeout)
    if channel.kind == ChannelKind.WOOCOMMERCE:
        return WooCommerceConnector(channel, session, timeout)
    return GenericConnector(channel, session, timeout)

