"""``/waves`` (each warehouse's recent waves and a "Plan a wave now" form), ``POST /waves/plan``
and ``/waves/{wave_id}`` (each batch's route drawn over the aisles, its pick list, and its
distance against the first-come/S-shape baseline).

ListWaves and GetWave need the ``fulfillment`` scope, the warehouse list (names, layouts)
``inventory:read``; oms-server checks both with the signed-in user's key.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web
from markupsafe import Markup

from oms.engine.models import Layout
from oms.server.validation import (
    MAX_BATCH_ITEMS,
    MAX_BATCH_ORDERS,
    MAX_WAVE_ORDERS,
    WAREHOUSE_ID_RE,
    WAVE_ID_RE,
)
from oms.server.web.console.calls import calls_for, grpc_error_page
from oms.server.web.console.layout import render
from oms.server.web.console.session import check_csrf, require_scope, session_of
from oms.server.web.console.wave_svg import Stop, route_svg, walk, walk_length_m
from oms.v1 import common_pb2, fulfillment_pb2, inventory_pb2

routes = web.RouteTableDef()

RECENT = 10  # waves listed per warehouse on /waves
RECENT_ONE = 50  # with ?warehouse=<id>
MAX_WAREHOUSES = 100
# PlanWave defaults of the form (the same as OmsClient.plan_wave): a wave of up to 200 orders,
# carts of up to 8 orders / 30 items. 0 in a field means the server's own default.
DEFAULTS = {"max_orders": 200, "batch_max_orders": 8, "batch_max_items": 30}
LIMITS = {"max_orders": MAX_WAVE_ORDERS, "batch_max_orders": MAX_BATCH_ORDERS,
          "batch_max_items": MAX_BATCH_ITEMS}
FLASH = {"nothing": "Nothing to wave in {warehouse}: no released-for-picking orders are waiting."}


def saved_pct(distance: float, baseline: float) -> float | None:
    """Share of the baseline walk the optimised routes save, in percent (None: no baseline)."""
    return (1.0 - distance / baseline) * 100.0 if baseline > 0 else None


def layout_of(w: common_pb2.Warehouse) -> Layout:
    """The engine Layout of a warehouse record; unset fields keep the engine defaults, as the
    server does (0 = default)."""
    d = Layout()
    lay = w.layout
    return Layout(aisles=lay.aisles or d.aisles,
                  slots_per_aisle=lay.slots_per_aisle or d.slots_per_aisle,
                  slot_length_m=lay.slot_length_m or d.slot_length_m,
                  aisle_spacing_m=lay.aisle_spacing_m or d.aisle_spacing_m)


def _error(request: web.Request, err: grpc.aio.AioRpcError) -> web.StreamResponse:
    return grpc_error_page(request, err)


async def _warehouses(calls: Any) -> list[common_pb2.Warehouse] | None:
    """Every warehouse, or None when the key may not list them (inventory:read)."""
    try:
        r = await calls.inventory.ListWarehouses(inventory_pb2.ListWarehousesRequest())
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:
            return None
        raise
    return sorted(r.warehouses, key=lambda w: w.id)


@dataclass
class WarehouseWaves:
    warehouse: common_pb2.Warehouse
    waves: list[fulfillment_pb2.WaveSummary]


@routes.get("/waves")
async def waves_page(request: web.Request) -> web.StreamResponse:
    calls = calls_for(request)
    only = request.query.get("warehouse", "")
    if only and not WAREHOUSE_ID_RE.fullmatch(only):
        raise web.HTTPBadRequest(text="bad warehouse id")
    s = session_of(request)
    try:
        whs = await _warehouses(calls)
        rows: list[WarehouseWaves] = []
        denied = not s.has("fulfillment")
        if whs is not None and not denied:
            if only:
                whs = [w for w in whs if w.id == only]
            whs = whs[:MAX_WAREHOUSES]
            n = RECENT_ONE if only else RECENT
            got = await asyncio.gather(*(calls.fulfillment.ListWaves(
                fulfillment_pb2.ListWavesRequest(warehouse_id=w.id, page_size=n)) for w in whs))
            rows = [WarehouseWaves(w, list(r.waves)) for w, r in zip(whs, got)]
    except grpc.aio.AioRpcError as e:
        if e.code() != grpc.StatusCode.PERMISSION_DENIED:
            return _error(request, e)
        denied, rows = True, []
    flash = ""
    code, wh = request.query.get("done", ""), request.query.get("warehouse_planned", "")
    if code in FLASH and WAREHOUSE_ID_RE.fullmatch(wh):
        flash = FLASH[code].format(warehouse=wh)
    return render(request, "waves.html", title="Waves", active="waves", rows=rows,
                  no_warehouses=whs is None, denied=denied, only=only, flash=flash,
                  can_plan=s.has("fulfillment"), defaults=DEFAULTS, limits=LIMITS,
                  saved_pct=saved_pct, recent=RECENT_ONE if only else RECENT)


def _int_field(form: Any, name: str) -> int:
    raw = form.get(name, "")
    raw = raw.strip() if isinstance(raw, str) else ""
    if not raw:
        return DEFAULTS[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number")
    v = int(raw)
    if not 0 <= v <= LIMITS[name]:
        raise web.HTTPBadRequest(text=f"{name} must be 0..{LIMITS[name]}")
    return v


@routes.post("/waves/plan")
async def plan_wave(request: web.Request) -> web.StreamResponse:
    await check_csrf(request)
    require_scope(request, "fulfillment")
    form = await request.post()
    wid = form.get("warehouse_id", "")
    if not isinstance(wid, str) or not WAREHOUSE_ID_RE.fullmatch(wid):
        raise web.HTTPBadRequest(text="bad warehouse id")
    req = fulfillment_pb2.PlanWaveRequest(warehouse_id=wid, **{
        k: _int_field(form, k) for k in DEFAULTS})
    try:
        wave = await calls_for(request).fulfillment.PlanWave(req)
    except grpc.aio.AioRpcError as e:
        return _error(request, e)
    if not wave.id:
        raise web.HTTPSeeOther("/waves?" + urlencode({"done": "nothing",
                                                      "warehouse_planned": wid}))
    raise web.HTTPSeeOther(f"/waves/{wave.id}")


@dataclass
class BatchView:
    batch: fulfillment_pb2.PickBatch
    svg: Markup | None
    drawn_m: float | None  # the drawn walk's length (equals distance_m for an exact route)
    saved: float | None
    note: str


def batch_view(b: fulfillment_pb2.PickBatch, layout: Layout | None) -> BatchView:
    """One batch's route drawing (None with a note when it cannot be drawn truthfully)."""
    stops = [Stop(s.aisle, s.slot, s.location, s.sku, s.quantity) for s in b.stops]
    saved = saved_pct(b.distance_m, b.baseline_distance_m)
    if layout is None:
        return BatchView(b, None, None, saved, "the route drawing needs the inventory:read "
                                               "scope (the warehouse layout)")
    try:
        drawn = walk_length_m(walk(layout, stops))
        svg = route_svg(layout, b.id, stops, distance_m=b.distance_m)
    except ValueError as e:  # the layout changed since the wave was planned
        return BatchView(b, None, None, saved, f"cannot draw: {e}")
    note = ""
    if b.distance_m > 0 and abs(drawn - b.distance_m) > 0.01 * b.distance_m:
        note = "the layout changed since this wave was planned: the drawing may differ"
    return BatchView(b, svg, drawn, saved, note)


@routes.get("/waves/{wave_id}")
async def wave_page(request: web.Request) -> web.StreamResponse:
    wave_id = request.match_info["wave_id"]
    if not WAVE_ID_RE.fullmatch(wave_id):
        raise web.HTTPNotFound(text="no such wave")
    calls = calls_for(request)
    try:
        wave, whs = await asyncio.gather(
            calls.fulfillment.GetWave(fulfillment_pb2.GetWaveRequest(wave_id=wave_id)),
            _warehouses(calls))
    except grpc.aio.AioRpcError as e:
        return _error(request, e)
    wh = next((w for w in whs or () if w.id == wave.warehouse_id), None)
    layout = layout_of(wh) if wh is not None else None
    batches = [batch_view(b, layout) for b in wave.batches]
    orders = len({o for b in wave.batches for o in b.order_ids})
    return render(request, "wave.html", title=f"Wave {wave.id}", active="waves", wave=wave,
                  warehouse=wh, layout=layout, batches=batches, orders=orders,
                  saved=saved_pct(wave.total_distance_m, wave.baseline_distance_m))
