"""The one exception root of the project and its domain subclasses.

Every error says what was wrong and with which value. The gRPC layer maps each class to a
status code in exactly one place (``server/errors.py``).
"""
from __future__ import annotations

from dataclasses import dataclass


def quote(value: object, limit: int = 32) -> str:
    """``repr`` of at most the first ``limit`` characters of ``value`` (control characters
    visible), with "…" when cut: error messages travel in gRPC trailers, which have a size
    limit, so a message never echoes a whole (possibly huge) bad input."""
    s = value if isinstance(value, str) else str(value)
    if len(s) <= limit:
        return repr(s)
    return repr(s[:limit]) + f"… ({len(s)} characters)"


class OmsError(Exception):
    """Root of every error the engine, store and server raise on purpose."""

    # True when the same request may succeed if sent again later, unchanged (a dependency
    # was down); the gRPC layer answers such errors with a retryable status code.
    retryable: bool = False


class ItemFailedError(OmsError):
    """An unexpected error (a bug) met while processing one item of a batch: that item fails
    alone (INTERNAL in its own result) instead of failing its batch-mates or the call.
    ``maybe_written``: the item may have been stored before the error, so the caller keeps its
    idempotency claim and a retry with the same key resolves it."""

    def __init__(self, message: str, *, maybe_written: bool = False) -> None:
        self.maybe_written = maybe_written
        super().__init__(message)


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class ValidationError(OmsError):
    """A malformed request. Carries one violation per bad field."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def one(cls, field_path: str, description: str) -> "ValidationError":
        return cls([FieldViolation(field_path, description)])


class NotFoundError(OmsError):
    """An unknown id (order, warehouse, sku, wave, return)."""

    def __init__(self, kind: str, ident: str) -> None:
        self.kind, self.ident = kind, ident
        super().__init__(f"{kind} {quote(ident)} not found")


class TransitionError(OmsError):
    """An order lifecycle transition that the state machine does not allow."""

    def __init__(self, order_id: str, current: str, target: str) -> None:
        self.order_id, self.current, self.target = order_id, current, target
        super().__init__(f"order {order_id!r} cannot go from {current} to {target}")


class PreconditionError(OmsError):
    """A request that is well-formed but not allowed in the current state (other than a
    lifecycle transition), e.g. lowering on_hand below what is reserved."""


class ConflictError(OmsError):
    """A concurrent request holds the same idempotency key; the caller may retry."""


class ResourceExhaustedError(OmsError):
    """A request that is too large (e.g. a batch of more than 1,000 orders)."""


class UnavailableError(OmsError):
    """A dependency (the store) cannot be reached right now; the request may be retried."""

    retryable = True


class UnauthenticatedError(OmsError):
    """No credentials, or an unknown, expired or revoked API key."""


class PermissionDeniedError(OmsError):
    """Valid credentials without the right to do this (a missing scope, another channel)."""


class RateLimitedError(ResourceExhaustedError):
    """The caller's key is over its rate limit; ``retry_after_s`` says when to try again."""

    retryable = True

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
