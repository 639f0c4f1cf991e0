"""The overview ``/`` and its live feed ``/events/overview`` (server-sent events).

Both build the same figures from one ``GetStats`` (plus the shipment exceptions' count when the
key has ``fulfillment``): the page renders them, the stream sends them as JSON every
``TICK_S`` and static/console.js writes them into the page in place. So the numbers on the page
are GetStats' at the moment the page or the event was made.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import grpc
from aiohttp import web

from oms.server.web.backend import WebConfig
from oms.server.web.console import session as sessions
from oms.server.web.console.calls import Calls, calls_for
from oms.server.web.console.layout import render
from oms.v1 import fulfillment_pb2, reporting_pb2

routes = web.RouteTableDef()

TICK_S = 1.5
MAX_STREAMS_PER_SESSION = 3
SHIPMENT_EXCEPTIONS_LIMIT = 1000  # counted up to this many ("1000+" beyond)
STALE_MS = 60_000  # a channel whose worker has not reported for this long is shown stale
# Every OrderStatus in lifecycle order: intake, the holds, the warehouse, the carrier, after.
FUNNEL = ("RECEIVED", "ON_HOLD", "BACKORDERED", "ALLOCATED", "RELEASED", "PICKED", "PACKED",
          "SHIPPED", "DELIVERED", "RETURN_REQUESTED", "RETURNED", "REFUNDED", "CANCELLED")
# The chart's geometry (viewBox units): 60 bars, one per minute, oldest on the left.
CHART_W, CHART_H, BAR_W = 600, 150, 10

SHUTDOWN = web.AppKey("console_overview_shutdown", asyncio.Event)


def setup(app: web.Application, config: WebConfig) -> None:
    async def stop_streams(app: web.Application) -> None:
        app[SHUTDOWN].set()  # open streams end before the server waits for its handlers

    async def make_event(app: web.Application) -> None:
        app[SHUTDOWN] = asyncio.Event()  # made inside the serving loop

    app.on_startup.append(make_event)
    app.on_shutdown.append(stop_streams)


def figures(stats: reporting_pb2.Stats, shipment_exceptions: int | None,
            now_ms: int) -> dict[str, Any]:
    """The overview's numbers, for the page and the stream alike (JSON-ready)."""
    by_status = {c.key: c.count for c in stats.orders_by_status}
    funnel = {name: int(by_status.get(name, 0)) for name in FUNNEL}
    on_hold, backordered = funnel["ON_HOLD"], funnel["BACKORDERED"]
    by_channel = sorted(((c.key, int(c.count)) for c in stats.orders_by_channel),
                        key=lambda kv: (-kv[1], kv[0]))
    return {
        "at": now_ms,
        "orders_total": int(stats.orders_total),
        "orders_by_status": funnel,
        "orders_per_minute": [int(round(v)) for v in stats.orders_per_minute],
        "orders_per_second": round(stats.orders_per_second, 3),
        "orders_by_channel": [{"channel": k or "(none)", "count": v} for k, v in by_channel],
        "rates": {"fill_rate": stats.fill_rate, "split_rate": stats.split_rate,
                  "on_time_delivery_rate": stats.on_time_delivery_rate,
                  "return_rate": stats.return_rate},
        "pick_distance_saved_m": round(stats.pick_distance_saved_m, 1),
        "mean_allocation_distance_km": round(stats.mean_allocation_distance_km, 1),
        "waves": int(stats.waves),
        "exceptions": {
            "on_hold": on_hold, "backordered": backordered,
            "shipment_exceptions": shipment_exceptions,
            "total": on_hold + backordered + (shipment_exceptions or 0)},
        "channels": [{
            "channel_id": c.channel_id, "pending": c.pending, "pushes": c.pushes,
            "failures": c.failures, "lag_ms_p50": round(c.lag_ms_p50, 1),
            "lag_ms_p99": round(c.lag_ms_p99, 1), "fulfillments": c.fulfillments,
            "rejected_orders": c.rejected_orders, "last_error": c.last_error[:200],
            "last_error_at": c.last_error_at, "last_push_at": c.last_push_at,
            "updated_at": c.updated_at,
            "stale": not c.updated_at or now_ms - c.updated_at > STALE_MS} for c in stats.channels],
    }


async def load(calls: Calls, session: sessions.Session) -> dict[str, Any]:
    """One GetStats (and the shipment exceptions when the key may list them)."""
    stats_call = calls.reporting.GetStats(reporting_pb2.GetStatsRequest())
    if session.has("fulfillment"):
        stats, excs = await asyncio.gather(stats_call, calls.fulfillment.ListShipmentExceptions(
            fulfillment_pb2.ListShipmentExceptionsRequest(limit=SHIPMENT_EXCEPTIONS_LIMIT)))
        count: int | None = len(excs.orders)
    else:
        stats, count = await stats_call, None
    return figures(stats, count, int(time.time() * 1000))


def chart_bars(per_minute: list[int]) -> tuple[list[dict[str, int]], int]:
    """The orders-per-minute bars (x, y, height in viewBox units) and the scale's top."""
    top = max([*per_minute, 1])
    bars = []
    for i, v in enumerate(per_minute):
        h = round(v * CHART_H / top)
        bars.append({"i": i, "x": i * BAR_W, "y": CHART_H - h, "h": h, "v": v})
    return bars, top


@routes.get("/")
async def overview(request: web.Request) -> web.Response:
    s = sessions.session_of(request)
    if not s.has("reporting"):
        return render(request, "overview.html", title="Overview", active="overview",
                      f=None, bars=[], top=1, funnel_max=1, chart=(CHART_W, CHART_H, BAR_W))
    f = await load(calls_for(request), s)
    bars, top = chart_bars(f["orders_per_minute"])
    return render(request, "overview.html", title="Overview", active="overview", f=f,
                  bars=bars, top=top, funnel_max=max([*f["orders_by_status"].values(), 1]),
                  chart=(CHART_W, CHART_H, BAR_W))


@routes.get("/events/overview")
async def overview_events(request: web.Request) -> web.StreamResponse:
    """text/event-stream: ``data: <figures JSON>`` now and every TICK_S, until the client goes,
    the session ends (then an ``event: signed-out``) or the server shuts down."""
    s = sessions.session_of(request)
    sessions.require_scope(request, "reporting")
    if s.streams >= MAX_STREAMS_PER_SESSION:
        raise web.HTTPTooManyRequests(text=f"at most {MAX_STREAMS_PER_SESSION} live streams "
                                      "per session", headers={"Retry-After": "5"})
    store = sessions.store_of(request)
    shutdown = request.app[SHUTDOWN]
    calls = calls_for(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
    s.streams += 1
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n\n")
        while not shutdown.is_set():
            if not store.alive(s):
                await response.write(b"event: signed-out\ndata: {}\n\n")
                break
            try:
                f = await load(calls, s)
            except web.HTTPFound:  # the key was revoked: calls.py ended the session
                await response.write(b"event: signed-out\ndata: {}\n\n")
                break
            except grpc.aio.AioRpcError as e:
                err = {"code": e.code().name, "detail": (e.details() or "")[:200]}
                await response.write(b"event: failed\ndata: " + json.dumps(err).encode()
                                     + b"\n\n")
            else:
                await response.write(b"data: " + json.dumps(f, separators=(",", ":")).encode()
                                     + b"\n\n")
            try:
                await asyncio.wait_for(shutdown.wait(), TICK_S)
            except TimeoutError:
                pass
    except ConnectionResetError:
        pass  # the browser went away
    finally:
        s.streams -= 1
    return response
