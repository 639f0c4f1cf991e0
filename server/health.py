"""grpc.health.v1 follows the store: NOT_SERVING while Redis cannot be reached, SERVING once it
answers again. A load balancer then stops sending calls that could only fail UNAVAILABLE."""
from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health_pb2

from oms.server.redis.store import Store

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def set_health(server: grpc.aio.Server, status: int) -> None:
    """Set every name the server answers health checks for (see server/app.py)."""
    for name in server.health_names:  # type: ignore[attr-defined]
        await server.health.set(name, status)  # type: ignore[attr-defined]


async def store_reachable(store: Store, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(store.ping(), timeout_s)
        return True
    except asyncio.CancelledError:
        raise
    except Exception:  # any failure to answer a PING is "not reachable", whatever its class
        return False


async def watch_store(server: grpc.aio.Server, store: Store, *, interval_s: float = 1.0) -> None:
    """Ping the store every ``interval_s`` and keep the health status in step; runs until
    cancelled. The server is assumed SERVING when this starts."""
    serving = True
    while True:
        await asyncio.sleep(interval_s)
        # A PING waits out redis-py's reconnect retries (a few seconds); a slower answer is
        # as good as none for a health check.
        ok = await store_reachable(store, timeout_s=max(2 * interval_s, 2.0))
        if ok != serving:
            serving = ok
            await set_health(server, SERVING if ok else NOT_SERVING)
            if ok:
                log.warning("store reachable again: health SERVING")
            else:
                log.error("store unreachable: health NOT_SERVING until it answers")
