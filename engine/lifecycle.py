"""Order lifecycle: statuses and the transitions the state machine allows.

The Lua scripts never decide legality themselves: the store passes them the set of source
statuses allowed for the target (``allowed_sources``), so this module is the single source of
truth for both Python and Redis.
"""
from __future__ import annotations

import enum

from oms.engine.errors import TransitionError


class OrderStatus(enum.IntEnum):
    # Values equal the proto enum numbers (ORDER_STATUS_*), so conversion is int().
    RECEIVED = 1
    ALLOCATED = 2
    BACKORDERED = 3
    ON_HOLD = 4
    RELEASED = 5
    PICKED = 6
    PACKED = 7
    SHIPPED = 8
    DELIVERED = 9
    CANCELLED = 10
    RETURN_REQUESTED = 11
    RETURNED = 12
    REFUNDED = 13


S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.RECEIVED: frozenset({S.ALLOCATED, S.BACKORDERED, S.ON_HOLD, S.CANCELLED}),
    S.ALLOCATED: frozenset({S.ON_HOLD, S.RELEASED, S.CANCELLED, S.BACKORDERED}),
    S.BACKORDERED: frozenset({S.ALLOCATED, S.CANCELLED}),
    S.ON_HOLD: frozenset({S.ALLOCATED, S.BACKORDERED, S.CANCELLED}),
    S.RELEASED: frozenset({S.PICKED, S.CANCELLED}),
    S.PICKED: frozenset({S.PACKED}),
    S.PACKED: frozenset({S.SHIPPED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.RETURN_REQUESTED}),
    S.DELIVERED: frozenset({S.RETURN_REQUESTED}),
    S.RETURN_REQUESTED: frozenset({S.RETURNED, S.DELIVERED}),
    S.RETURNED: frozenset({S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Statuses in which the order still holds reserved stock in some warehouse (until it ships).
HOLDS_STOCK: frozenset[OrderStatus] = frozenset(
    {S.ALLOCATED, S.ON_HOLD, S.RELEASED, S.PICKED, S.PACKED})
# Statuses after the stock left the building: a leftover reservation is consumed, not released.
SHIPPED_OR_LATER: frozenset[OrderStatus] = frozenset(
    {S.SHIPPED, S.DELIVERED, S.RETURN_REQUESTED, S.RETURNED, S.REFUNDED})
TERMINAL: frozenset[OrderStatus] = frozenset(s for s, t in TRANSITIONS.items() if not t)


def can_transition(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def check_transition(order_id: str, current: OrderStatus, target: OrderStatus) -> None:
    if not can_transition(current, target):
        raise TransitionError(order_id, current.name, target.name)


def allowed_sources(target: OrderStatus) -> frozenset[OrderStatus]:
    """Every status from which ``target`` may be reached."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)
