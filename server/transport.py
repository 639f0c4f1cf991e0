"""Transport-level guard: request size caps per method and undecodable protobuf bytes.

grpc calls a handler's ``request_deserializer`` on the raw bytes of each request message. A
deserializer that raises (truncated message, invalid UTF-8 in a string field, a length prefix
past the end, nesting too deep) made grpc answer UNKNOWN and log a traceback, per request. The
interceptor below wraps every handler so that

* each request message is size-checked and decoded here; a failure becomes a ``Rejected``
  value instead of an exception;
* a unary request that is ``Rejected`` is answered INVALID_ARGUMENT (undecodable) or
  RESOURCE_EXHAUSTED (too large, like grpc's own server-wide limit) with one log line, and the
  servicer never runs;
* a request stream ends at the first ``Rejected`` message: the servicer sees a clean end of
  input, answers what came before, and the call then ends with that status.

Caps: BatchPlaceOrders may carry ``max_batch`` orders of at most ``MAX_ORDER_BYTES`` each (see
``batch_receive_limit``); it is also the server-wide ``grpc.max_receive_message_length``. Every
other method takes at most ``DEFAULT_REQUEST_LIMIT``, far above its largest valid request (one
order at every documented field limit is under 15 KB).
"""
from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from oms.server.handler_cache import HandlerCache

log = logging.getLogger(__name__)

# One PlaceOrderRequest at every documented limit (100 lines, every text field at its length
# limit in 4-byte UTF-8 characters, every integer a 10-byte varint) is 14,748 bytes; see
# tests/unit/test_transport_limits.py, which rebuilds it from server/validation.py.
MAX_ORDER_BYTES = 16 * 1024
DEFAULT_REQUEST_LIMIT = 64 * 1024
BATCH_METHOD = "/oms.v1.OrderService/BatchPlaceOrders"


def batch_receive_limit(max_batch: int) -> int:
    """Bytes a BatchPlaceOrdersRequest of ``max_batch`` full orders may take (16 MB for 1,000)."""
    return max(DEFAULT_REQUEST_LIMIT, max_batch * MAX_ORDER_BYTES)


class Rejected:
    """A request message that was not handed to the servicer, and why."""

    __slots__ = ("code", "message")

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        self.code = code
        self.message = message


def _guard(deserializer: Callable[[bytes], Any] | None, method: str, limit: int
           ) -> Callable[[bytes], Any]:
    def decode(raw: bytes) -> Any:
        if len(raw) > limit:
            return Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED,
                            f"request message of {len(raw):,} bytes exceeds the {limit:,}-byte "
                            f"limit of {method}")
        if deserializer is None:
            return raw
        try:
            return deserializer(raw)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the caller's bytes
            return Rejected(grpc.StatusCode.INVALID_ARGUMENT,
                            f"request message is not a valid protobuf encoding of {method}'s "
                            f"request type ({type(e).__name__})")

    return decode


async def _reject(r: Rejected, method: str, context: grpc.aio.ServicerContext) -> None:
    # one line, no traceback: this is a client's mistake, not ours
    log.warning("rejected request to %s from %s: %s", method, context.peer(), r.message)
    await context.abort(r.code, r.message)


class _Requests:
    """The request stream up to (not including) its first Rejected message."""

    def __init__(self, inner: AsyncIterator[Any]) -> None:
        self.inner = inner
        self.rejected: Rejected | None = None

    def __aiter__(self) -> "_Requests":
        return self

    async def __anext__(self) -> Any:
        if self.rejected is not None:
            raise StopAsyncIteration
        item = await self.inner.__anext__()
        if isinstance(item, Rejected):
            self.rejected = item
            raise StopAsyncIteration
        return item


def _wrap_unary_request(fn: Callable[..., Any], method: str) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        async def gen(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if isinstance(request, Rejected):
                await _reject(request, method, context)
            async for item in fn(request, context):
                yield item

        return gen

    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Rejected):
            await _reject(request, method, context)
        result = fn(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


def _wrap_stream_request(fn: Callable[..., Any], method: str) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(fn):
        async def gen(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
                      ) -> AsyncIterator[Any]:
            clean = _Requests(requests)
            async for item in fn(clean, context):
                yield item
            if clean.rejected is not None:
                await _reject(clean.rejected, method, context)

        return gen

    async def call(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        clean = _Requests(requests)
        result = fn(clean, context)
        result = await result if inspect.isawaitable(result) else result
        if clean.rejected is not None:
            await _reject(clean.rejected, method, context)
        return result

    return call


def guard_handler(handler: grpc.RpcMethodHandler, method: str, limit: int
                  ) -> grpc.RpcMethodHandler:
    """``handler`` with the size cap and decoding guard of the module docstring."""
    des = _guard(handler.request_deserializer, method, limit)
    ser = handler.response_serializer
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary_request(handler.unary_unary, method), des, ser)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_unary_request(handler.unary_stream, method), des, ser)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_stream_request(handler.stream_unary, method), des, ser)
    return grpc.stream_stream_rpc_method_handler(
        _wrap_stream_request(handler.stream_stream, method), des, ser)


class TransportInterceptor(grpc.aio.ServerInterceptor):
    """Applies ``guard_handler`` to every method: ``limits`` maps a full method name
    ("/pkg.Service/Method") to its cap in bytes, ``default_limit`` for the rest."""

    def __init__(self, limits: dict[str, int] | None = None,
                 default_limit: int = DEFAULT_REQUEST_LIMIT) -> None:
        self.limits = dict(limits or {})
        self.default_limit = default_limit
        self._guarded = HandlerCache()

    async def intercept_service(
            self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
            details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method
        return self._guarded.wrap(method, handler, lambda: guard_handler(
            handler, method, self.limits.get(method, self.default_limit)))


def transport_interceptor(max_batch: int) -> TransportInterceptor:
    """The interceptor with this server's caps (BatchPlaceOrders sized for ``max_batch``)."""
    return TransportInterceptor({BATCH_METHOD: batch_receive_limit(max_batch)})
