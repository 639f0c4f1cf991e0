"""The console's network map, ``/map``: the US states (geo_svg) with each warehouse and the
day's order flow.

Per warehouse (a ``<title>`` tooltip on its square, and the table under the map):
- units available: the sum of ``available`` over ListStock (every SKU, a page of 500 at a
  time, at most ``MAX_STOCK_PAGES`` pages; the page says when it stopped short);
- orders waiting: the open orders homed there, from GetStats' per-warehouse counts (one call,
  exact, however many orders): ALLOCATED + RELEASED + PICKED + PACKED (stock reserved there,
  not yet shipped), the parts shown next to the total; ON_HOLD and BACKORDERED are shown as
  parts too but not counted (they wait for a person or for stock, not for the warehouse);
- orders waved today: the orders of the waves planned since midnight UTC (ListWaves, newest
  first, one call per warehouse).

Flow: at most ``FLOW_SAMPLE`` of the newest orders created today (orders.newest_orders), each a
line from every warehouse shipping it to its destination. GetStats' orders per minute say how
far back the newest ``FLOW_SAMPLE`` begin, so the first window read starts there: normally one
ListOrders page of ``FLOW_SAMPLE`` (in a burst within the current minute, the first
``FLOW_SAMPLE`` of that minute); destinations are aggregated by ZIP3
(else a 20-px grid cell) so the SVG stays small however many orders there are.

A figure whose call the key may not make (a missing scope) is shown as "—" with the reason.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections import Counter
from typing import Any

from aiohttp import web
from markupsafe import Markup

from oms.server.web.console import geo_svg, journey
from oms.server.web.console.calls import Calls, calls_for
from oms.server.web.console.layout import render
from oms.server.web.console.orders import WINDOWS_MS, newest_orders, optional
from oms.v1 import common_pb2, fulfillment_pb2, inventory_pb2, reporting_pb2

routes = web.RouteTableDef()

MAX_STOCK_PAGES = 20  # × 500 SKUs
FLOW_SAMPLE = 500
# Counted as waiting in the warehouse, and shown beside it (not counted).
WAITING = ("ALLOCATED", "RELEASED", "PICKED", "PACKED")
WAITING_PARTS = (*WAITING, "ON_HOLD", "BACKORDERED")
GRID_PX = 20.0


def _midnight_utc_ms(now_s: float) -> int:
    d = dt.datetime.fromtimestamp(now_s, dt.UTC).replace(hour=0, minute=0, second=0,
                                                         microsecond=0)
    return int(d.timestamp() * 1000)


async def _stock_totals(calls: Calls) -> tuple[dict[str, int], bool]:
    """warehouse id -> units available, and whether every SKU was read."""
    totals: Counter[str] = Counter()
    token = ""
    for _ in range(MAX_STOCK_PAGES):
        page = await calls.inventory.ListStock(inventory_pb2.ListStockRequest(
            page_size=500, page_token=token))
        for lv in page.levels:
            totals[lv.warehouse_id] += max(0, lv.available)
        token = page.next_page_token
        if not token:
            return dict(totals), True
    return dict(totals), False


def waiting_counts(stats: reporting_pb2.Stats) -> dict[str, dict[str, int]]:
    """home warehouse -> {status name: orders} of the statuses shown (``WAITING_PARTS``)."""
    return {w.warehouse_id: {kv.key: kv.count for kv in w.orders_by_status
                             if kv.key in WAITING_PARTS}
            for w in stats.warehouses}


def flow_windows(stats: reporting_pb2.Stats, now_ms: int) -> tuple[int | None, ...]:
    """newest_orders' windows for the flow sample: first the span back to the start of the
    newest whole minutes (of GetStats' last 60, newest first) that hold at most
    ``FLOW_SAMPLE`` orders together, then the usual longer ones."""
    span = now_ms % 60_000 or 60_000  # the current minute, not in the counts
    acc = 0.0
    for n in reversed(stats.orders_per_minute):
        if acc + n > FLOW_SAMPLE:
            break
        acc += n
        span += 60_000
    return (span, *(w for w in WINDOWS_MS if w is None or w > span))


async def _waved_today(calls: Calls, wid: str, since_ms: int) -> int:
    resp = await calls.fulfillment.ListWaves(fulfillment_pb2.ListWavesRequest(
        warehouse_id=wid, page_size=200))
    return sum(w.orders for w in resp.waves if w.created_at >= since_ms)


def _dest(o: common_pb2.Order) -> tuple[float, float] | None:
    a = o.ship_to
    ll = (a.latitude, a.longitude) if (a.latitude or a.longitude) else \
        journey.locate(a.postal_code)
    return geo_svg.project(*ll) if ll else None


def flow_of(orders: list[common_pb2.Order], wh_xy: dict[str, tuple[float, float]]
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(destination points, flow lines, orders not placed) of a sample of orders:
    destinations by ZIP3 (US) or grid cell, lines per (warehouse, destination)."""
    groups: dict[str, list[Any]] = {}  # key -> [sum x, sum y, n, label]
    legs: Counter[tuple[str, str]] = Counter()
    unplaced = 0
    for o in orders:
        xy = _dest(o)
        if xy is None:
            unplaced += 1
            continue
        pc = o.ship_to.postal_code.strip()
        key = f"zip {pc[:3]}xx" if len(pc) >= 5 and pc[:5].isdigit() else \
            f"area {int(xy[0] // GRID_PX)},{int(xy[1] // GRID_PX)}"
        g = groups.setdefault(key, [0.0, 0.0, 0, key])
        g[0] += xy[0]
        g[1] += xy[1]
        g[2] += 1
        for w in journey.shipping_warehouses(o) or [journey.home_warehouse(o.id)]:
            legs[(w, key)] += 1
    dests = {k: (g[0] / g[2], g[1] / g[2], g[2]) for k, g in groups.items()}
    points = [{"kind": "destination", "x": x, "y": y, "r": 2.5 + 2.0 * math.sqrt(n),
               "label": f"{k}: {n} order(s) today", "ref": k} for k, (x, y, n) in dests.items()]
    lines = []
    for (w, k), n in sorted(legs.items()):
        if w not in wh_xy:
            continue
        (x1, y1), (x2, y2, _) = wh_xy[w], dests[k]
        lines.append({"x1": x1, "y1": y1, "x2": x2, "y2": y2, "w": 1.0 + 1.5 * math.log2(1 + n),
                      "from": w, "label": f"{w} → {k}: {n} order(s)"})
    return points, lines, unplaced


def _placed_unplaced(orders: list[common_pb2.Order]) -> None:
    """Warm the offline ZIP look-ups (the first loads the data) off the event loop."""
    for o in orders:
        if not (o.ship_to.latitude or o.ship_to.longitude):
            journey.locate(o.ship_to.postal_code)


@routes.get("/map")
async def map_page(request: web.Request) -> web.StreamResponse:
    calls = calls_for(request)
    now = time.time()
    today = _midnight_utc_ms(now)
    (whs_resp, wh_err), (stats, stats_err) = await asyncio.gather(
        optional(calls.inventory.ListWarehouses(inventory_pb2.ListWarehousesRequest())),
        optional(calls.reporting.GetStats(reporting_pb2.GetStatsRequest())))
    warehouses = list(whs_resp.warehouses) if whs_resp is not None else []
    now_ms = int(now * 1000)
    windows = flow_windows(stats, now_ms) if stats is not None else WINDOWS_MS
    got = await asyncio.gather(
        optional(_stock_totals(calls)),
        optional(newest_orders(calls, limit=FLOW_SAMPLE, max_matches=FLOW_SAMPLE,
                               since_ms=today, now_ms=now_ms, windows=windows)),
        *[optional(_waved_today(calls, w.id, today)) for w in warehouses])
    (stock, stock_err), (scan, flow_err) = got[:2]
    waved = got[2:]
    waiting = waiting_counts(stats) if stats is not None else None
    flow_orders = scan.orders if scan is not None else []
    await asyncio.to_thread(_placed_unplaced, flow_orders)

    rows, points, wh_xy = [], [], {}
    for w, (n_waved, waved_err) in zip(warehouses, waved):
        xy = geo_svg.project(w.latitude, w.longitude)
        parts = waiting.get(w.id, {}) if waiting is not None else {}
        row = {"id": w.id, "name": w.name, "postal_code": w.postal_code,
               "disabled": w.disabled, "on_map": xy is not None,
               "available": stock[0].get(w.id, 0) if stock else None,
               "waiting": sum(parts.get(k, 0) for k in WAITING) if waiting is not None
               else None,
               "waiting_parts": [(k.lower().replace("_", " "), parts[k])
                                 for k in WAITING_PARTS if parts.get(k)],
               "waved_today": n_waved if not waved_err else None}
        rows.append(row)
        if xy is None:
            continue
        wh_xy[w.id] = xy
        figs = [f"{_fmt(row['available'])} units available",
                f"{_fmt(row['waiting'])} orders waiting"
                + (" (" + ", ".join(f"{n:,} {k}" for k, n in row["waiting_parts"]) + ")"
                   if row["waiting_parts"] else ""),
                f"{_fmt(row['waved_today'])} orders waved today"]
        points.append({"kind": "warehouse", "x": xy[0], "y": xy[1], "ref": w.id,
                       "label": f"{w.id}" + (f" ({w.name})" if w.name else "")
                                + ": " + ", ".join(figs)})
    dests, flows, unplaced = flow_of(flow_orders, wh_xy)
    ctx = {"rows": rows, "points": dests + points, "flows": flows,
           "states_svg": Markup(geo_svg.states_svg()), "wh_err": wh_err,
           "stock_err": stock_err, "stock_complete": stock[1] if stock else True,
           "waiting_err": stats_err, "waiting": WAITING,
           "flow_err": flow_err, "flow_orders": len(flow_orders), "flow_unplaced": unplaced,
           "flow_looked": scan.looked_at if scan else 0, "flow_sample": FLOW_SAMPLE,
           "today_ms": today, "max_stock_skus": MAX_STOCK_PAGES * 500,
           "waved_err": next((e for _, e in waved if e), "")}
    return render(request, "map.html", title="Network map", active="map", **ctx)


def _fmt(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"
