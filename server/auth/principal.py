"""The caller of the running call (a Principal), kept in a context variable.

The auth interceptor sets it before the servicer runs; grpc.aio runs each call in its own task,
so it is the caller's for the whole call. The store reads ``current_actor()`` when it writes an
order event or history entry, so "who cancelled this order" has an answer. Work that no call
started (the sweeper, the wave job, the notifier) names itself with ``acting_as``.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass, field

ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``actor`` is what the record shows: the API key id, an
    ``mtls:<CN>`` principal, or ``system:<job>``. ``channels`` empty = every channel."""
    actor: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    channels: frozenset[str] = field(default_factory=frozenset)
    key_id: str = ""
    rate_limit_per_s: float = 0.0  # 0 = unlimited

    def has_scope(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def may_see_channel(self, channel: str) -> bool:
        """Whether orders of ``channel`` exist for this caller (channel-bound keys)."""
        return not self.channels or channel in self.channels

    @property
    def channel_bound(self) -> bool:
        return bool(self.channels)


SYSTEM = Principal(actor="system", scopes=frozenset({ADMIN}))
_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("oms_principal",
                                                                     default=SYSTEM)


def current_principal() -> Principal:
    return _current.get()


def current_actor() -> str:
    return _current.get().actor


def set_principal(p: Principal) -> contextvars.Token[Principal]:
    return _current.set(p)


@contextlib.contextmanager
def acting_as(actor: str, *, principal: Principal | None = None) -> Iterator[Principal]:
    """Run a block as ``actor`` (a job: "system:oms-wave"), with every scope unless
    ``principal`` is given."""
    p = principal or Principal(actor=actor, scopes=frozenset({ADMIN}))
    token = _current.set(p)
    try:
        yield p
    finally:
        _current.reset(token)
