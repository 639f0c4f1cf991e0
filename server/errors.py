"""The one place that maps domain exceptions to gRPC status codes.

Field errors carry ``google.rpc.BadRequest`` details. Anything that is not an OmsError is a
bug: it is logged with its traceback and answered INTERNAL.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from oms.engine.carriers import CarrierError
from oms.engine.payments import (IdempotencyKeyReused, PaymentDeclined, PaymentError,
                                 PaymentTransientError)
from oms.engine.errors import (
    ConflictError,
    ItemFailedError,
    NotFoundError,
    OmsError,
    PermissionDeniedError,
    PreconditionError,
    RateLimitedError,
    ResourceExhaustedError,
    TransitionError,
    UnauthenticatedError,
    UnavailableError,
    ValidationError,
)

log = logging.getLogger(__name__)

# Every OmsError subclass has its own row: a class that nobody mapped is a bug (INTERNAL,
# logged), never silently a caller error. tests/unit/test_error_mapping.py walks the subclasses.
_ENGINE_CODES: dict[type[OmsError], grpc.StatusCode] = {
    OmsError: grpc.StatusCode.FAILED_PRECONDITION,  # raised bare for "not allowed now"
    ValidationError: grpc.StatusCode.INVALID_ARGUMENT,
    IdempotencyKeyReused: grpc.StatusCode.INVALID_ARGUMENT,
    NotFoundError: grpc.StatusCode.NOT_FOUND,
    TransitionError: grpc.StatusCode.FAILED_PRECONDITION,
    PreconditionError: grpc.StatusCode.FAILED_PRECONDITION,
    ConflictError: grpc.StatusCode.ABORTED,
    ResourceExhaustedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UnavailableError: grpc.StatusCode.UNAVAILABLE,  # the store is unreachable: retry later
    PaymentError: grpc.StatusCode.FAILED_PRECONDITION,
    PaymentTransientError: grpc.StatusCode.UNAVAILABLE,
    PaymentDeclined: grpc.StatusCode.FAILED_PRECONDITION,
    CarrierError: grpc.StatusCode.FAILED_PRECONDITION,  # the shipment cannot be rated/labelled
    ItemFailedError: grpc.StatusCode.INTERNAL,  # a bug, confined to one order of a batch
    UnauthenticatedError: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDeniedError: grpc.StatusCode.PERMISSION_DENIED,
    RateLimitedError: grpc.StatusCode.RESOURCE_EXHAUSTED,  # with google.rpc.RetryInfo
}


@functools.cache
def explicit_codes() -> dict[type[OmsError], grpc.StatusCode]:
    """The whole table. The server's own error classes are imported here, on first use: their
    modules import this one (response_bytes) or would pull the store into every import of it."""
    from oms.server.redis.embedded import EmbeddedRedisError  # noqa: PLC0415
    from oms.server.redis.embedded_cluster import EmbeddedClusterError  # noqa: PLC0415
    from oms.server.redis.store import StaleError  # noqa: PLC0415
    from oms.server.redis.unavailable import StoreUnavailable  # noqa: PLC0415
    from oms.server.response_bytes import UnencodableOrder  # noqa: PLC0415

    return {**_ENGINE_CODES,
            StaleError: grpc.StatusCode.ABORTED,  # lost a race: the caller may retry
            StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
            EmbeddedRedisError: grpc.StatusCode.UNAVAILABLE,  # the store could not be started
            EmbeddedClusterError: grpc.StatusCode.UNAVAILABLE,
            UnencodableOrder: grpc.StatusCode.INTERNAL}


def code_for(exc: OmsError) -> grpc.StatusCode:
    code = explicit_codes().get(type(exc))
    if code is None:
        log.error("no gRPC code for %s.%s: answering INTERNAL (add it to server/errors.py)",
                  type(exc).__module__, type(exc).__qualname__)
        return grpc.StatusCode.INTERNAL
    return code


# A status travels in the trailers (grpc-message, percent-encoded, and grpc-status-details-bin,
# base64): past ~8 KB a client may drop the reply as "metadata size exceeds hard limit". Caps in
# UTF-8 bytes keep both under ~6.5 KB whatever an error says (worst case: all non-ASCII).
MAX_MESSAGE_BYTES = 512
MAX_FIELD_BYTES = 200
MAX_VIOLATIONS_BYTES = 3000


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (on a character boundary, marked "...")."""
    raw = text.encode("utf-8", "replace")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


def _field_violations(violations: Sequence[Any]
                      ) -> list[error_details_pb2.BadRequest.FieldViolation]:
    out: list[error_details_pb2.BadRequest.FieldViolation] = []
    used = 0
    for i, v in enumerate(violations):
        fv = error_details_pb2.BadRequest.FieldViolation(
            field=clip(v.field, MAX_FIELD_BYTES), description=clip(v.description, MAX_MESSAGE_BYTES))
        used += fv.ByteSize()
        if used > MAX_VIOLATIONS_BYTES and out:
            out.append(error_details_pb2.BadRequest.FieldViolation(
                description=f"{len(violations) - i} more violation(s) not shown"))
            break
        out.append(fv)
    return out


def to_status(exc: OmsError) -> status_pb2.Status:
    code = code_for(exc)
    st = status_pb2.Status(code=code.value[0], message=clip(str(exc), MAX_MESSAGE_BYTES))
    if isinstance(exc, ValidationError):
        br = error_details_pb2.BadRequest(field_violations=_field_violations(exc.violations))
        detail = any_pb2.Any()
        detail.Pack(br)
        st.details.append(detail)
    if isinstance(exc, RateLimitedError):
        info = error_details_pb2.RetryInfo()
        info.retry_delay.FromNanoseconds(max(1_000_000, int(exc.retry_after_s * 1e9)))
        detail = any_pb2.Any()
        detail.Pack(info)
        st.details.append(detail)
    return st


def internal_status(message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.INTERNAL, message=message)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


async def _abort(exc: BaseException, context: grpc.aio.ServicerContext, where: str) -> None:
    """Answer the call for an exception: its status for a domain error, INTERNAL (logged) for
    anything else. An AbortError (already answered) goes on up."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    if isinstance(exc, OmsError):
        await context.abort_with_status(rpc_status.to_status(to_status(exc)))
    log.error("unhandled error in %s", where, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error")


def handle_errors(fn: F) -> F:
    """Decorate a unary aio servicer method."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except Exception as exc:
            await _abort(exc, context, fn.__qualname__)

    return wrapper  # type: ignore[return-value]


def handle_stream_errors(fn: F) -> F:
    """Decorate an async-generator servicer method (server streaming)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for item in fn(self, request, context):
                yield item
        except Exception as exc:
            await _abort(exc, context, fn.__qualname__)

    return wrapper  # type: ignore[return-value]
