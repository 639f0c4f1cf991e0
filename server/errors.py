"""The one place that maps domain exceptions to gRPC status codes.

Field errors carry ``google.rpc.BadRequest`` details. Anything that is not an OmsError is a
bug: it is logged with its traceback and answered INTERNAL.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from engine.payments import PaymentDeclined, PaymentTransientError
from engine.errors import (
    ConflictError,
    NotFoundError,
    OmsError,
    PreconditionError,
    ResourceExhaustedError,
    TransitionError,
    ValidationError,
)

log = logging.getLogger(__name__)

_CODES: list[tuple[type[OmsError], grpc.StatusCode]] = [
    (ValidationError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (TransitionError, grpc.StatusCode.FAILED_PRECONDITION),
    (PreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (ConflictError, grpc.StatusCode.ABORTED),
    (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (PaymentTransientError, grpc.StatusCode.UNAVAILABLE),
    (PaymentDeclined, grpc.StatusCode.FAILED_PRECONDITION),
]


def code_for(exc: OmsError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.FAILED_PRECONDITION


def to_status(exc: OmsError) -> status_pb2.Status:
    code = code_for(exc)
    st = status_pb2.Status(code=code.value[0], message=str(exc))
    if isinstance(exc, ValidationError):
        br = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in exc.violations])
        detail = any_pb2.Any()
        detail.Pack(br)
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
