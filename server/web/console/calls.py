"""Per-user gRPC calls: the console calls oms-server with the SIGNED-IN USER's key, on the
app's one shared channel (server/web/backend.py), so oms-server checks that key's scopes again.

    calls = calls_for(request)
    order = await calls.orders.GetOrder(orders_pb2.GetOrderRequest(order_id=oid))

Every unary call carries ``authorization: Bearer <session key>`` and the configured timeout
(``timeout=`` overrides it); a server-streaming call carries the key and no deadline unless one
is given. A ``grpc.aio.AioRpcError`` propagates to the handler, except UNAUTHENTICATED (the key
was revoked or expired): the session ends and the request is redirected to ``/login``. An
error a handler does not catch becomes ``grpc_error_page`` (routes.py's middleware).
"""
from __future__ import annotations

from typing import Any

import grpc
from aiohttp import web

from oms.clients.credentials import auth_metadata
from oms.server.web import webhooks
from oms.server.web.backend import Backend
from oms.server.web.console import session as sessions
from oms.server.web.console.layout import render

# gRPC status -> (HTTP status, headline) of the console's error page.
HTTP_OF: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "Invalid request"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "Invalid request"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "Not signed in"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Not allowed"),
    grpc.StatusCode.NOT_FOUND: (404, "Not found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Not possible now"),
    grpc.StatusCode.ABORTED: (409, "Conflict, try again"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "Too many requests"),
    grpc.StatusCode.UNAVAILABLE: (503, "oms-server is unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "oms-server did not answer in time"),
}
MAX_DETAIL = 300


class SessionEnded(web.HTTPFound):
    """UNAUTHENTICATED from oms-server: the session is gone; go sign in again."""


class _Stub:
    """One service stub bound to a session's key: attribute access gives the method."""

    def __init__(self, stub: Any, request: web.Request | None,
                 metadata: tuple[tuple[str, str], ...], timeout: float) -> None:
        self._stub, self._request, self._metadata, self._timeout = (stub, request, metadata,
                                                                    timeout)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        if isinstance(method, grpc.aio.UnaryUnaryMultiCallable):
            return self._unary(method)
        return self._streaming(method)

    def _unary(self, method: grpc.aio.UnaryUnaryMultiCallable) -> Any:
        async def call(request: Any, *, timeout: float | None = None) -> Any:
            try:
                return await method(request, metadata=self._metadata,
                                    timeout=timeout if timeout is not None else self._timeout)
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED and self._request is not None:
                    sessions.end_session(self._request)
                    raise SessionEnded("/login") from None
                raise

        return call

    def _streaming(self, method: Any) -> Any:
        def call(request: Any, *, timeout: float | None = None) -> Any:
            return method(request, metadata=self._metadata, timeout=timeout)

        return call


class Calls:
    """The services, each bound to the request's session key."""

    def __init__(self, backend: Backend, request: web.Request | None, key: str) -> None:
        md = auth_metadata(key)
        t = backend.timeout

        def bind(stub: Any) -> Any:
            return _Stub(stub, request, md, t)

        self.orders = bind(backend.orders)
        self.inventory = bind(backend.inventory)
        self.fulfillment = bind(backend.fulfillment)
        self.returns = bind(backend.returns)
        self.reporting = bind(backend.reporting)
        self.channels = bind(backend.channels)
        self.admin = bind(backend.admin)


def calls_for(request: web.Request) -> Calls:
    """The request's session's calls (the page middleware guarantees a session)."""
    s = sessions.session_of(request)
    return Calls(request.app[webhooks.BACKEND], request, s.key)


def calls_with_key(request: web.Request, key: str) -> Calls:
    """Calls with an explicit key (the sign-in page's WhoAmI, before a session exists): every
    error propagates, UNAUTHENTICATED included."""
    return Calls(request.app[webhooks.BACKEND], None, key)


def grpc_error_page(request: web.Request, err: grpc.aio.AioRpcError) -> web.Response:
    """A friendly page for a failed call, with the matching HTTP status (NOT_FOUND -> 404,
    PERMISSION_DENIED -> 403, UNAVAILABLE -> 503, INVALID_ARGUMENT -> 400, ...)."""
    status, headline = HTTP_OF.get(err.code(), (502, "oms-server refused the request"))
    detail = (err.details() or "")[:MAX_DETAIL]
    return error_page(request, status, headline, detail, code=err.code().name)


def error_page(request: web.Request, status: int, headline: str, detail: str = "",
               code: str = "") -> web.Response:
    return render(request, "error.html", status=status, title=headline, headline=headline,
                  detail=detail, code=code, http_status=status)
