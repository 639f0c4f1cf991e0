"""One server interceptor that authenticates and authorizes every call, of every kind (unary,
server, client and bidirectional streaming), before the servicer runs; the Principal is then the
call's (server/auth/principal.py). Health and reflection stay open. With ``--workers N`` each
process installs its own (create_server)."""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc
from grpc_status import rpc_status

from oms.engine.errors import OmsError
from oms.server.auth.authenticator import Authenticator
from oms.server.auth.principal import ADMIN, Principal, set_principal
from oms.server.auth.scopes import is_open
from oms.server.handler_cache import HandlerCache

log = logging.getLogger(__name__)

# --auth off: every caller acts as this one (loopback only; see server/config.py)
ANONYMOUS = Principal(actor="anonymous", scopes=frozenset({ADMIN}))
# An open stream's credentials are checked again this often (seconds): a revoked or expired key
# loses its streams within the revocation bound (5 s) too, not only its new calls.
RECHECK_S = 1.0


class _Gate:
    def __init__(self, auth: Authenticator | None, method: str) -> None:
        self.auth = auth
        self.method = method

    async def _check(self, context: grpc.aio.ServicerContext, count: bool) -> Principal:
        assert self.auth is not None
        ac = context.auth_context()
        cns = [v.decode("utf-8", "replace") for v in ac.get("x509_common_name", ())]
        principal = await self.auth.authenticate(context.invocation_metadata(), cns)
        self.auth.authorize(principal, self.method, count=count)
        return principal

    async def admit(self, context: grpc.aio.ServicerContext) -> None:
        """Set the call's Principal, or answer the call (UNAUTHENTICATED, PERMISSION_DENIED,
        RESOURCE_EXHAUSTED, UNAVAILABLE when the key store is down) and raise AbortError."""
        if self.auth is None:
            set_principal(ANONYMOUS)
            return
        try:
            principal = await self._check(context, count=True)
        except OmsError as e:
            await self.refuse(context, e)
            raise  # not reached: abort raises
        set_principal(principal)

    async def still_admitted(self, context: grpc.aio.ServicerContext) -> OmsError | None:
        """For an open stream: why its credentials are refused now (revoked, expired), if they
        are. Cached keys make this a dictionary look-up and one HMAC."""
        if self.auth is None:
            return None
        try:
            await self._check(context, count=False)
        except OmsError as e:
            return e
        return None

    async def refuse(self, context: grpc.aio.ServicerContext, e: OmsError) -> None:
        from oms.server.errors import to_status  # noqa: PLC0415 - errors imports the store

        log.info("refused %s from %s: %s", self.method, context.peer(), e)
        await context.abort_with_status(rpc_status.to_status(to_status(e)))


async def _rechecked(requests: AsyncIterator[Any], gate: _Gate,
                     context: grpc.aio.ServicerContext, refused: list[OmsError]
                     ) -> AsyncIterator[Any]:
    """A client stream that ends once its key is refused: the servicer answers what it took,
    then the call ends with the refusal (no order is placed without its result sent)."""
    checked = time.monotonic()
    async for r in requests:
        now = time.monotonic()
        if now - checked >= RECHECK_S:
            err = await gate.still_admitted(context)
            if err is not None:
                refused.append(err)
                return
            checked = now
        yield r


def _wrap(fn: Callable[..., Any], gate: _Gate, *, client_stream: bool = False
          ) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        async def gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            await gate.admit(context)
            if gate.auth is None:
                async with aclosing(fn(request, context)) as items:
                    async for item in items:
                        yield item
                return
            # A stream outlives no revocation: its key is checked again at most every
            # RECHECK_S, before a request is taken (client streams) or a reply is sent.
            refused: list[OmsError] = []
            if client_stream:
                request = _rechecked(request, gate, context, refused)
            checked = time.monotonic()
            async with aclosing(fn(request, context)) as items:
                async for item in items:
                    if not client_stream and time.monotonic() - checked >= RECHECK_S:
                        err = await gate.still_admitted(context)
                        if err is not None:
                            await gate.refuse(context, err)
                        checked = time.monotonic()
                    yield item
            if refused:
                await gate.refuse(context, refused[0])

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
    return grpc.stream_stream_rpc_method_handler(
        _wrap(handler.stream_stream, gate, client_stream=True), des, ser)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """``auth`` None = --auth off: every call is ANONYMOUS (with every scope)."""

    def __init__(self, auth: Authenticator | None) -> None:
        self.auth = auth
        # A gate holds no per-call state, and building one with its closures and handler per
        # call cost every unary call.
        self._gated = HandlerCache()

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or is_open(details.method):
            return handler
        return self._gated.wrap(details.method, handler,
                                lambda: gate_handler(handler, _Gate(self.auth, details.method)))
