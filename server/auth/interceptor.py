"""One server interceptor that authenticates and authorizes every call, of every kind (unary,
server, client and bidirectional streaming), before the servicer runs; the Principal is then the
call's (server/auth/principal.py). Health and reflection stay open. With ``--workers N`` each
process installs its own (create_server)."""
from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from oms.engine.errors import OmsError
from oms.server.auth.authenticator import Authenticator
from oms.server.auth.principal import ADMIN, Principal, set_principal
from oms.server.auth.scopes import is_open

log = logging.getLogger(__name__)

# --auth off: every caller acts as this one (loopback only; see server/config.py)
ANONYMOUS = Principal(actor="anonymous", scopes=frozenset({ADMIN}))


class _Gate:
    def __init__(self, auth: Authenticator | None, method: str) -> None:
        self.auth = auth
        self.method = method

    async def admit(self, context: grpc.aio.ServicerContext) -> None:
        """Set the call's Principal, or answer the call (UNAUTHENTICATED, PERMISSION_DENIED,
        RESOURCE_EXHAUSTED, UNAVAILABLE when the key store is down) and raise AbortError."""
        if self.auth is None:
            set_principal(ANONYMOUS)
            return
        try:
            ac = context.auth_context()
            cns = [v.decode("utf-8", "replace") for v in ac.get("x509_common_name", ())]
            principal = await self.auth.authenticate(context.invocation_metadata(), cns)
            self.auth.authorize(principal, self.method)
        except OmsError as e:
            from oms.server.errors import to_status  # noqa: PLC0415 - errors imports the store

            log.info("refused %s from %s: %s", self.method, context.peer(), e)
            await context.abort_with_status(rpc_status.to_status(to_status(e)))
            raise  # not reached: abort raises
        set_principal(principal)


def _wrap(fn: Callable[..., Any], gate: _Gate) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        async def gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await gate.admit(context)
            async for item in fn(request, context):
                yield item

        return gen

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await gate.admit(context)
        result = fn(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


def gate_handler(handler: grpc.RpcMethodHandler, gate: _Gate) -> grpc.RpcMethodHandler:
    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(_wrap(handler.unary_unary, gate), des, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(_wrap(handler.unary_stream, gate), des, ser)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(_wrap(handler.stream_unary, gate), des, ser)
    return grpc.stream_stream_rpc_method_handler(_wrap(handler.stream_stream, gate), des, ser)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """``auth`` None = --auth off: every call is ANONYMOUS (with every scope)."""

    def __init__(self, auth: Authenticator | None) -> None:
        self.auth = auth

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or is_open(details.method):
            return handler
        return gate_handler(handler, _Gate(self.auth, details.method))
