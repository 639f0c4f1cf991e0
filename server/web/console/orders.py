"""The console's orders: ``/orders`` (search) and ``/orders/{order_id}`` (the order's page:
header, journey timeline, map).

Search:
- order id: exact; found -> 303 to its page.
- status and/or channel: ListOrders, a page at a time (next/prev links; ListOrders pages only
  forward, so the page carries the tokens it came through in ``trail``, bounded).
- customer id or e-mail: ListOrders has no such filter, so the newest orders (at most
  ``SCAN_LIMIT``, the page says how many and since when) are scanned and filtered.

"Newest" needs a starting point: a ListOrders page token is the creation-ordered suffix of an
order id, whose first 11 hex digits are the creation time in ms (server/intake.py _IdGen,
server/redis/orders.py list_orders), so a token ``f"{ms:011x}"`` starts at that moment.
``newest_orders`` reads windows going back from now (5 minutes, an hour, ... everything), each
from its start up to where the previous began, until it has looked at enough orders.

No per-row RPC: the table is built from the ListOrders answer alone.
"""
from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from markupsafe import Markup

from oms.server.validation import CHANNEL_RE, ORDER_ID_RE, PAGE_TOKEN_RE
from oms.server.web.console import geo_svg, journey
from oms.server.web.console.calls import Calls, calls_for, error_page
from oms.server.web.console.layout import render, status_name
from oms.v1 import common_pb2, fulfillment_pb2, inventory_pb2, orders_pb2, returns_pb2

routes = web.RouteTableDef()

PAGE_SIZE = 50
SCAN_LIMIT = 2000  # orders looked at by a customer / e-mail search
MAX_MATCHES = 200
MAX_TRAIL = 30  # page tokens kept for "previous"
MAX_RETURNS = 10  # GetReturn calls of one order page
MAX_QUERY = 200
# Windows back from now (ms) that newest_orders reads, newest first; None: everything older.
WINDOWS_MS: tuple[int | None, ...] = (5 * 60_000, 3_600_000, 6 * 3_600_000, 86_400_000,
                                      7 * 86_400_000, 30 * 86_400_000, None)
STATUSES = tuple(status_name(v) for v in common_pb2.OrderStatus.values() if v)


# --------------------------------------------------------------------------- helpers


def _suffix(order_id: str) -> str:
    return order_id.rpartition(".")[2]


def _time_token(ms: int) -> str:
    return f"{max(ms, 0):011x}"


@dataclass
class Scan:
    orders: list[common_pb2.Order]  # matches, newest first
    looked_at: int
    since_ms: int  # the oldest creation time looked at (0: from the very first order)
    complete: bool  # every order (of the status/channel filter) was looked at


async def newest_orders(calls: Calls, *, status: int = 0, channel: str = "",
                        limit: int = SCAN_LIMIT,
                        match: Callable[[common_pb2.Order], bool] = lambda o: True,
                        max_matches: int = MAX_MATCHES, now_ms: int | None = None,
                        since_ms: int = 0,
                        windows: tuple[int | None, ...] = WINDOWS_MS) -> Scan:
    """Look at up to ``limit`` of the newest orders (of ``status``/``channel``, created at or
    after ``since_ms``), newest first, keeping those ``match`` accepts; see the module
    docstring (``windows``: the spans back from now read in turn, growing, the last None)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    found: list[common_pb2.Order] = []
    looked = 0
    end_token = ""  # orders at or after this suffix were read by a newer window
    for span in windows:
        start = now - span if span is not None else 0
        last = span is None or start <= since_ms
        start = max(start, since_ms)
        token = _time_token(start) if start else ""
        window: list[common_pb2.Order] = []
        while looked + len(window) < limit:
            page = await calls.orders.ListOrders(orders_pb2.ListOrdersRequest(
                status=status, channel=channel, page_token=token,
                page_size=min(1000, limit - looked - len(window))))
            ended = False
            for o in page.orders:
                if end_token and _suffix(o.id) >= end_token:
                    ended = True  # the newer windows have it
                    break
                window.append(o)
            token = page.next_page_token
            if ended or not token:
                break
        window = window[:limit - looked]
        looked += len(window)
        found.extend(o for o in reversed(window) if match(o))  # newest first
        if looked >= limit or len(found) >= max_matches:
            return Scan(found[:max_matches], looked, start, complete=False)
        if last:
            break
        end_token = _time_token(start)
    return Scan(found[:max_matches], looked, since_ms, complete=True)


def _total_cents(o: common_pb2.Order) -> int:
    return sum(ln.quantity * ln.unit_price_cents for ln in o.lines)


def order_row(o: common_pb2.Order) -> dict[str, Any]:
    return {"id": o.id, "created_at": o.created_at, "channel": o.channel,
            "status": status_name(o.status), "customer": o.customer.name or o.customer.id,
            "customer_id": o.customer.id, "email": o.customer.email, "lines": len(o.lines),
            "units": sum(ln.quantity for ln in o.lines), "total_cents": _total_cents(o),
            "warehouses": journey.shipping_warehouses(o) or [journey.home_warehouse(o.id)]}


def _query(params: dict[str, str]) -> str:
    return "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v})


async def optional(call: Awaitable[Any]) -> tuple[Any, str]:
    """(answer, "") or (None, the gRPC code's name) for a call the page can do without (a
    scope the key lacks, say). UNAUTHENTICATED still ends the session (calls.py raises)."""
    try:
        return await call, ""
    except grpc.aio.AioRpcError as e:
        return None, e.code().name


# --------------------------------------------------------------------------- /orders


@routes.get("/orders")
async def orders_page(request: web.Request) -> web.StreamResponse:
    q = request.query
    form = {k: q.get(k, "").strip()[:MAX_QUERY] for k in
            ("order_id", "status", "channel", "customer", "email", "page_token", "trail")}
    ctx: dict[str, Any] = {"form": form, "statuses": STATUSES, "rows": [], "error": "",
                           "scan": None, "next_href": "", "prev_href": "", "first_href": "",
                           "mode": "list", "scan_limit": SCAN_LIMIT}

    def page(status: int = 200) -> web.Response:
        return render(request, "orders.html", status=status, title="Orders", active="orders",
                      **ctx)

    calls = calls_for(request)
    if form["order_id"]:
        oid = form["order_id"]
        if not ORDER_ID_RE.fullmatch(oid):
            ctx["error"] = "An order id looks like <warehouse>.<suffix>, e.g. DSM.0190a1b2c3d."
            return page(400)
        try:
            await calls.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            ctx["error"] = f"No order {oid}."
            return page(404)
        raise web.HTTPSeeOther(f"/orders/{urllib.parse.quote(oid, safe='.')}")

    status = 0
    if form["status"]:
        if form["status"] not in STATUSES:
            ctx["error"] = "Unknown status."
            return page(400)
        status = common_pb2.OrderStatus.Value("ORDER_STATUS_" + form["status"])
    if form["channel"] and not CHANNEL_RE.fullmatch(form["channel"]):
        ctx["error"] = "A channel id is 1-32 of a-z, 0-9, _ and -."
        return page(400)
    trail = [t for t in form["trail"].split(",") if t][-MAX_TRAIL:]
    if any(not PAGE_TOKEN_RE.fullmatch(t) for t in [*trail, form["page_token"]] if t):
        ctx["error"] = "That page link is not valid any more; start again."
        return page(400)

    if form["customer"] or form["email"]:
        cust, mail = form["customer"], form["email"].lower()

        def match(o: common_pb2.Order) -> bool:
            return ((not cust or o.customer.id == cust)
                    and (not mail or mail in o.customer.email.lower()))

        scan = await newest_orders(calls, status=status, channel=form["channel"], match=match)
        ctx.update(mode="scan", scan=scan, rows=[order_row(o) for o in scan.orders])
        return page()

    base = {"status": form["status"], "channel": form["channel"]}
    resp = await calls.orders.ListOrders(orders_pb2.ListOrdersRequest(
        status=status, channel=form["channel"], page_size=PAGE_SIZE,
        page_token=form["page_token"]))
    ctx["rows"] = [order_row(o) for o in resp.orders]
    if resp.next_page_token:
        nxt_trail = [*trail, form["page_token"] or "0"][-MAX_TRAIL:]
        ctx["next_href"] = "/orders" + _query({**base, "page_token": resp.next_page_token,
                                                "trail": ",".join(nxt_trail)})
    if form["page_token"]:
        ctx["first_href"] = "/orders" + _query(base)
        if trail:
            prev = trail[-1]
            ctx["prev_href"] = "/orders" + _query(
                {**base, "page_token": "" if prev == "0" else prev,
                 "trail": ",".join(trail[:-1])})
    return page()


# --------------------------------------------------------------------------- /orders/{id}


def _wave_id(order: common_pb2.Order) -> str:
    for h in order.history:
        if wid := journey.wave_of(h.reason):
            return wid
    return ""


def _ship_to_latlon(order: common_pb2.Order) -> tuple[float, float] | None:
    a = order.ship_to
    if a.latitude or a.longitude:
        return a.latitude, a.longitude
    return journey.locate(a.postal_code)


def build_map(order: common_pb2.Order, warehouses: dict[str, common_pb2.Warehouse],
              entries: list[journey.Entry]) -> dict[str, Any]:
    """Points (ship-to, shipping warehouses, placed tracking locations) and legs, in the
    atlas' 975×610 coordinates; what could not be placed is listed in ``unplaced``."""
    points: list[journey.MapPoint] = []
    legs: list[dict[str, Any]] = []
    unplaced: list[str] = []
    ll = _ship_to_latlon(order)
    dest = geo_svg.project(*ll) if ll else None
    a = order.ship_to
    label = ", ".join(x for x in (a.name, a.city, a.region, a.postal_code, a.country) if x)
    if dest:
        points.append(journey.MapPoint("ship_to", dest[0], dest[1], f"Ship to: {label}"))
    else:
        unplaced.append(f"ship-to {label or '(no address)'}")
    for wid in journey.shipping_warehouses(order):
        wh = warehouses.get(wid)
        xy = geo_svg.project(wh.latitude, wh.longitude) if wh else None
        if xy is None:
            unplaced.append(f"warehouse {wid}")
            continue
        points.append(journey.MapPoint("warehouse", xy[0], xy[1],
                                       f"Warehouse {wid}" + (f" ({wh.name})" if wh.name else ""),
                                       wid))
        if dest:
            legs.append({"x1": xy[0], "y1": xy[1], "x2": dest[0], "y2": dest[1], "from": wid})
    # One point per place named by the timeline (each tracking event, the delivery), its
    # tooltip listing what happened there: several events at one place share a point.
    places: dict[str, list[journey.Entry]] = {}
    for e in entries:
        if e.location:
            places.setdefault(e.location, []).append(e)
    for where, evs in places.items():
        loc = journey.locate(where)
        xy = geo_svg.project(*loc) if loc else None
        what = "; ".join(dict.fromkeys(
            e.title + (f" ({e.tracking_number})" if e.tracking_number else "") for e in evs))
        if xy is None:
            unplaced.append(f"{what.lower()} at {where}")
            continue
        points.append(journey.MapPoint("tracking", xy[0], xy[1], f"{where}: {what}",
                                       evs[0].tracking_type or evs[0].type))
    return {"points": points, "legs": legs, "unplaced": unplaced}


def _places_of(order: common_pb2.Order, entries: list[journey.Entry]) -> None:
    """Warm the offline place look-ups (the first loads the ZIP data, ~1 s) off the loop."""
    _ship_to_latlon(order)
    for e in entries:
        journey.locate(e.location)


@routes.get("/orders/{order_id}")
async def order_page(request: web.Request) -> web.StreamResponse:
    oid = request.match_info["order_id"]
    if not ORDER_ID_RE.fullmatch(oid):
        return error_page(request, 404, "Not found", "That is not an order id.")
    calls = calls_for(request)
    order = await calls.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))
    wave_id = _wave_id(order)
    n_returns = min(MAX_RETURNS, sum(1 for h in order.history
                                     if h.status == common_pb2.ORDER_STATUS_RETURN_REQUESTED))
    jobs: list[Awaitable[tuple[Any, str]]] = [
        optional(calls.inventory.ListWarehouses(inventory_pb2.ListWarehousesRequest()))]
    if wave_id:
        jobs.append(optional(calls.fulfillment.GetWave(
            fulfillment_pb2.GetWaveRequest(wave_id=wave_id))))
    jobs += [optional(calls.returns.GetReturn(returns_pb2.GetReturnRequest(
        return_id=f"{oid}/r{i}"))) for i in range(1, n_returns + 1)]
    got = await asyncio.gather(*jobs)
    (whs, wh_err), rest = got[0], list(got[1:])
    wave = rest.pop(0)[0] if wave_id else None
    returns = [r for r, _ in rest if r is not None]
    entries = journey.build_journey(order, returns, wave)
    await asyncio.to_thread(_places_of, order, entries)
    warehouses = {w.id: w for w in whs.warehouses} if whs is not None else {}
    m = build_map(order, warehouses, entries)
    ctx = {"o": order, "order_status": status_name(order.status), "entries": entries,
           "map": m, "states_svg": Markup(geo_svg.states_svg()),
           "warehouses_error": wh_err, "total_cents": _total_cents(order),
           "units": sum(ln.quantity for ln in order.lines),
           "returns": returns, "wave_id": wave_id,
           "shipments": [{"s": s, "link": journey.tracking_link(s.carrier, s.tracking_number,
                                                                 s.label_url)}
                         for s in order.shipments]}
    return render(request, "order.html", title=f"Order {oid}", active="orders", **ctx)
