"""The one exception root of the project and its domain subclasses.

Every error says what was wrong and with which value. The gRPC layer maps each class to a
status code in exactly one place (``server/errors.py``).
"""
from __future__ import annotations

from dataclasses import dataclass


class OmsError(Exception):
    """Root of every error the engine, store and server raise on purpose."""


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
        super().__init__(f"{kind} {ident!r} not found")


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
