"""Prometheus metrics: RPC latency histograms (a gRPC server interceptor) and order counters,
served on ``--metrics-port`` at /metrics."""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram, start_http_server

from oms.server.handler_cache import HandlerCache

RPC_LATENCY = Histogram(
    "oms_rpc_latency_seconds", "gRPC handling time by method and status code",
    ["method", "code"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ORDERS_PLACED = Counter("oms_orders_placed_total", "Orders placed, by resulting status and channel",
                        ["status", "channel"])
ORDER_ERRORS = Counter("oms_order_errors_total", "Intake requests refused, by status code", ["code"])


def serve_metrics(host: str, port: int) -> None:
    start_http_server(port, addr=host)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Times unary handlers (streaming handlers are counted per call, not per message).

    A method's timed handler is built once, not per call, like the auth and transport
    interceptors' (``HandlerCache``)."""

    def __init__(self) -> None:
        self._timed = HandlerCache()

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return self._timed.wrap(details.method, handler, lambda: _timed_handler(
            handler, details.method.rsplit("/", 1)[-1]))


def _timed_handler(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    inner = handler.unary_unary

    async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
        t0 = time.perf_counter()
        code = "OK"
        try:
            return await inner(request, context)
        except BaseException:
            c = context.code()
            code = c.name if c is not None else "UNKNOWN"
            raise
        finally:
            RPC_LATENCY.labels(method, code).observe(time.perf_counter() - t0)

    return grpc.unary_unary_rpc_method_handler(
        timed, request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer)
