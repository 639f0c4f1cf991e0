"""``/exceptions``: the work that needs a person — orders ON_HOLD for fraud review (Release /
Cancel), tracking exceptions, backorders and what they wait for, late orders, rejected channel
orders and channel sync errors — and the two POST actions of the review.

Every section is fetched with the signed-in user's key. A section whose RPC needs a scope the
key lacks says "not permitted" instead of failing the whole page: a support agent with
``orders:read`` still sees the held orders without the fulfillment-only tracking list.

Bounds (the page must stay fast with 100k orders stored): at most ``MAX_ROWS`` rows a section,
GetStock for at most ``MAX_SKUS`` distinct backordered SKUs, and late orders found among the
oldest ``LATE_SCAN`` orders of each open status (ListOrders pages in creation order, and the
oldest orders are the ones whose promise expired first).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web

from oms.server.validation import ORDER_ID_RE
from oms.server.web.console.calls import calls_for, grpc_error_page
from oms.server.web.console.layout import render
from oms.server.web.console.session import check_csrf, require_scope, session_of
from oms.v1 import channels_pb2, common_pb2, fulfillment_pb2, inventory_pb2, orders_pb2
from oms.v1 import reporting_pb2

routes = web.RouteTableDef()

MAX_ROWS = 50
MAX_SKUS = 50
LATE_SCAN = 200
LATE_STATUSES = (common_pb2.ORDER_STATUS_ALLOCATED, common_pb2.ORDER_STATUS_RELEASED,
                 common_pb2.ORDER_STATUS_PICKED, common_pb2.ORDER_STATUS_PACKED,
                 common_pb2.ORDER_STATUS_SHIPPED)
# The flash messages a redirect may ask for: codes only, so a link cannot put text on the page.
FLASH = {
    "released": "Released the hold on order {order}.",
    "cancelled": "Cancelled order {order}.",
    "not_held": "Order {order} is no longer on hold: nothing changed.",
    "not_found": "Order {order} was not found.",
}


@dataclass
class Section:
    """One section's rows, or why it has none (``denied``: the key lacks the scope)."""

    rows: list[Any] = field(default_factory=list)
    denied: bool = False
    more: bool = False  # the list was cut at MAX_ROWS / the scan bound
    note: str = ""


async def _guarded(fetch: Callable[[], Awaitable[Section]]) -> Section:
    """``fetch()``, or an empty section marked denied when oms-server refuses the scope."""
    try:
        return await fetch()
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:
            return Section(denied=True)
        raise


def _open_qty(order: common_pb2.Order) -> dict[str, int]:
    """SKU -> units ordered and not reserved yet (what a backordered order waits for)."""
    want: dict[str, int] = {}
    for line in order.lines:
        want[line.sku] = want.get(line.sku, 0) + int(line.quantity)
    for a in order.allocations:
        if a.sku in want:
            want[a.sku] -= int(a.quantity)
    return {k: v for k, v in want.items() if v > 0}


@dataclass
class Backorder:
    order: common_pb2.Order
    waiting: list[tuple[str, int, int | None]]  # (sku, units waited for, network available)


@dataclass
class Late:
    order: common_pb2.Order
    status: str
    late_h: float  # hours past the promised date


def _fetchers(calls: Any, now_ms: int) -> dict[str, Callable[[], Awaitable[Section]]]:
    async def held() -> Section:
        r = await calls.orders.ListOrders(orders_pb2.ListOrdersRequest(
            status=common_pb2.ORDER_STATUS_ON_HOLD, page_size=MAX_ROWS))
        return Section(rows=list(r.orders), more=bool(r.next_page_token))

    async def tracking() -> Section:
        r = await calls.fulfillment.ListShipmentExceptions(
            fulfillment_pb2.ListShipmentExceptionsRequest(limit=MAX_ROWS))
        rows = [(o, s) for o in r.orders for s in o.shipments if s.status == "EXCEPTION"]
        return Section(rows=rows, more=len(r.orders) >= MAX_ROWS)

    async def backorders() -> Section:
        r = await calls.orders.ListOrders(orders_pb2.ListOrdersRequest(
            status=common_pb2.ORDER_STATUS_BACKORDERED, page_size=MAX_ROWS))
        waits = [(o, _open_qty(o)) for o in r.orders]
        skus = sorted({k for _, w in waits for k in w})
        avail: dict[str, int | None] = {}
        note = ""
        try:
            levels = await asyncio.gather(*(calls.inventory.GetStock(
                inventory_pb2.GetStockRequest(sku=k)) for k in skus[:MAX_SKUS]))
            avail = {k: int(lv.total_available) for k, lv in zip(skus, levels)}
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED:
                raise
            note = "network availability needs the inventory:read scope"
        rows = [Backorder(o, [(k, n, avail.get(k)) for k, n in sorted(w.items())])
                for o, w in waits]
        return Section(rows=rows, more=bool(r.next_page_token), note=note)

    async def late() -> Section:
        pages = await asyncio.gather(*(calls.orders.ListOrders(orders_pb2.ListOrdersRequest(
            status=st, page_size=LATE_SCAN)) for st in LATE_STATUSES))
        found = [o for p in pages for o in p.orders if 0 < o.promised_by < now_ms]
        found.sort(key=lambda o: (o.promised_by, o.id))
        rows = [Late(o, common_pb2.OrderStatus.Name(o.status).removeprefix("ORDER_STATUS_"),
                     (now_ms - o.promised_by) / 3_600_000) for o in found[:MAX_ROWS]]
        cut = len(found) > MAX_ROWS or any(p.next_page_token for p in pages)
        return Section(rows=rows, more=cut)

    async def rejected() -> Section:
        r = await calls.channels.ListRejectedOrders(
            channels_pb2.ListRejectedOrdersRequest(page_size=MAX_ROWS))
        return Section(rows=list(r.rejected), more=len(r.rejected) >= MAX_ROWS)

    async def sync_errors() -> Section:
        st = await calls.reporting.GetStats(reporting_pb2.GetStatsRequest())
        return Section(rows=[c for c in st.channels if c.last_error])

    return {"held": held, "tracking": tracking, "backorders": backorders, "late": late,
            "rejected": rejected, "sync": sync_errors}


def _flash(request: web.Request) -> str:
    code = request.query.get("done", "")
    order = request.query.get("order", "")
    if code not in FLASH or not ORDER_ID_RE.fullmatch(order):
        return ""
    return FLASH[code].format(order=order)


@routes.get("/exceptions")
async def exceptions_page(request: web.Request) -> web.StreamResponse:
    calls = calls_for(request)
    fetchers = _fetchers(calls, int(time.time() * 1000))
    try:
        results = await asyncio.gather(*(_guarded(f) for f in fetchers.values()))
    except grpc.aio.AioRpcError as e:
        return _error(request, e)
    sections = dict(zip(fetchers, results))
    s = session_of(request)
    return render(request, "exceptions.html", title="Exceptions", active="exceptions",
                  s=sections, can_write=s.has("orders:write"), flash=_flash(request),
                  max_rows=MAX_ROWS, late_scan=LATE_SCAN)


def _error(request: web.Request, err: grpc.aio.AioRpcError) -> web.StreamResponse:
    return grpc_error_page(request, err)


def _order_id(request: web.Request) -> str:
    oid = request.match_info["order_id"]
    if not ORDER_ID_RE.fullmatch(oid):
        raise web.HTTPNotFound(text="no such order")
    return oid


def _back(code: str, order_id: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/exceptions?" + urlencode({"done": code, "order": order_id}))


async def _act(request: web.Request, done: str,
               call: Callable[[Any, str, str], Awaitable[Any]]) -> web.StreamResponse:
    """A review action: CSRF, then the scope here (oms-server checks it again), then the call,
    then 303 back to the list."""
    await check_csrf(request)
    require_scope(request, "orders:write")
    oid = _order_id(request)
    s = session_of(request)
    try:
        await call(calls_for(request), oid, s.actor)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
            raise _back("not_held", oid) from None
        if e.code() == grpc.StatusCode.NOT_FOUND:
            raise _back("not_found", oid) from None
        return _error(request, e)
    raise _back(done, oid)


@routes.post("/orders/{order_id}/release")
async def release(request: web.Request) -> web.StreamResponse:
    async def call(calls: Any, oid: str, actor: str) -> Any:
        return await calls.orders.ReleaseHold(orders_pb2.ReleaseHoldRequest(
            order_id=oid, reason=f"released in the console by {actor}"))

    return await _act(request, "released", call)


@routes.post("/orders/{order_id}/cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    async def call(calls: Any, oid: str, actor: str) -> Any:
        return await calls.orders.CancelOrder(orders_pb2.CancelOrderRequest(
            order_id=oid, reason=f"cancelled in the console by {actor}"))

    return await _act(request, "cancelled", call)
