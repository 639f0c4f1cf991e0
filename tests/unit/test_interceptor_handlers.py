"""The auth, transport and metrics interceptors wrap a method's handler once, not on every call, and
wrap again when the handler underneath is another one."""
from __future__ import annotations

import asyncio
from typing import Any

import grpc

from oms.server.auth.interceptor import AuthInterceptor
from oms.server.metrics import RPC_LATENCY, MetricsInterceptor
from oms.server.transport import TransportInterceptor


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _handler() -> grpc.RpcMethodHandler:
    async def place(request: Any, context: Any) -> Any:
        return request

    return grpc.unary_unary_rpc_method_handler(place, lambda b: b, lambda m: m)


def _intercept(icp: Any, details: _Details, handler: grpc.RpcMethodHandler | None) -> Any:
    async def continuation(d: Any) -> Any:
        return handler

    return asyncio.run(icp.intercept_service(continuation, details))


def test_each_interceptor_wraps_a_method_once() -> None:
    method = "/oms.v1.OrderService/PlaceOrder"
    for icp in (TransportInterceptor(), AuthInterceptor(None), MetricsInterceptor()):
        base = _handler()
        first = _intercept(icp, _Details(method), base)
        assert first is not base and first.unary_unary is not base.unary_unary
        assert _intercept(icp, _Details(method), base) is first
        other = _handler()  # another handler under the same name (a re-registered service)
        again = _intercept(icp, _Details(method), other)
        assert again is not first and again is not other
        assert _intercept(icp, _Details(method), other) is again


def test_unknown_methods_are_not_remembered() -> None:
    for icp in (TransportInterceptor(), AuthInterceptor(None), MetricsInterceptor()):
        for i in range(50):
            assert _intercept(icp, _Details(f"/x.Y/M{i}"), None) is None
        cache = (icp._guarded if isinstance(icp, TransportInterceptor) else
                 icp._timed if isinstance(icp, MetricsInterceptor) else icp._gated)
        assert cache == {}


def test_a_gated_handler_still_runs_the_method() -> None:
    icp = AuthInterceptor(None)  # --auth off: every call is ANONYMOUS, then the method runs
    wrapped = _intercept(icp, _Details("/oms.v1.OrderService/GetOrder"), _handler())
    assert asyncio.run(wrapped.unary_unary("req", object())) == "req"
    assert asyncio.run(wrapped.unary_unary("again", object())) == "again"


class _Context:
    def code(self) -> Any:
        return None


def test_a_timed_handler_runs_the_method_and_counts_each_call() -> None:
    icp = MetricsInterceptor()
    wrapped = _intercept(icp, _Details("/oms.v1.OrderService/GetOrder"), _handler())

    def count() -> float:
        return sum(smp.value for metric in RPC_LATENCY.collect() for smp in metric.samples
                   if smp.name.endswith("_count")
                   and smp.labels == {"method": "GetOrder", "code": "OK"})

    before = count()
    assert asyncio.run(wrapped.unary_unary("req", _Context())) == "req"
    assert asyncio.run(wrapped.unary_unary("again", _Context())) == "again"
    assert count() == before + 2
