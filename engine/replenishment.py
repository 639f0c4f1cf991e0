"""Purchase suggestions per (warehouse, sku): a periodic-review reorder-point policy.

* velocity ``v = sold_in_window / window_days`` (units per day);
* stock position ``available + inbound`` with ``available = on_hand - reserved``;
* reorder point ``s`` = the given one, else ``v x (lead_time + safety)`` — the demand until a
  purchase placed now arrives, plus a safety buffer;
* if the position is at or below ``s``, order up to ``S = s + v x review`` (the demand of one
  more review period on top), i.e. ``ceil(S - position)`` units; else nothing.

With a computed reorder point ``S = v x (lead_time + safety + review)``, the textbook
order-up-to level. With a given reorder point ``S`` still lies a review period of demand above
it, so a hand-set reorder point on a slow item does not leave the order at zero.

Urgency (``suggest_many``) is days of cover of what can be sold now, ``available / v``: the
soonest stock-out first. Inbound stock is not counted there because it has not arrived.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from oms.engine.errors import FieldViolation, ValidationError

__all__ = ["ReplenishmentInput", "Suggestion", "suggest", "suggest_many"]

_EPS = 1e-9  # float noise guard for the ceilings (e.g. 2.0000000000000004 -> 2, not 3)


@dataclass(frozen=True)
class ReplenishmentInput:
    warehouse_id: str
    sku: str
    on_hand: int
    reserved: int
    inbound: int
    sold_in_window: int
    window_days: float
    lead_time_days: float
    reorder_point: int | None = None
    safety_days: float = 3
    review_days: float = 7


@dataclass(frozen=True)
class Suggestion:
    warehouse_id: str
    sku: str
    daily_velocity: float
    available: int
    reorder_point_used: float
    suggested_qty: int
    reason: str
    days_of_cover: float  # available / daily_velocity; inf without demand


def _validate(inp: ReplenishmentInput, path: str) -> None:
    out: list[FieldViolation] = []
    if not isinstance(inp, ReplenishmentInput):
        raise ValidationError.one(path or "input",
                                  f"must be a ReplenishmentInput, got {type(inp).__name__}")
    p = f"{path}." if path else ""
    for f in ("warehouse_id", "sku"):
        v = getattr(inp, f)
        if not isinstance(v, str) or not v:
            out.append(FieldViolation(p + f, f"must be a non-empty string, got {v!r}"))
    for f in ("on_hand", "reserved", "inbound", "sold_in_window"):
        v = getattr(inp, f)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            out.append(FieldViolation(p + f, f"must be a non-negative integer, got {v!r}"))
    for f, positive in (("window_days", True), ("lead_time_days", False),
                        ("safety_days", False), ("review_days", False)):
        v = getattr(inp, f)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
            and (v > 0 if positive else v >= 0)
        if not ok:
            kind = "positive" if positive else "non-negative"
            out.append(FieldViolation(p + f, f"must be a {kind} number of days, got {v!r}"))
    rp = inp.reorder_point
    if rp is not None and (not isinstance(rp, int) or isinstance(rp, bool) or rp < 0):
        out.append(FieldViolation(p + "reorder_point",
                                  f"must be a non-negative integer or None, got {rp!r}"))
    if not out and inp.reserved > inp.on_hand:
        out.append(FieldViolation(p + "reserved", f"{inp.reserved} exceeds on_hand {inp.on_hand}"))
    if out:
        raise ValidationError(out)


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))


def suggest(inp: ReplenishmentInput) -> Suggestion:
    """The purchase suggestion for one (warehouse, sku); see the module docstring.
    Raises ``ValidationError`` for negative quantities, a non-positive window, reserved above
    on_hand and the like."""
    return _suggest(inp, "")


def _suggest(inp: ReplenishmentInput, path: str) -> Suggestion:
    _validate(inp, path)
    v = inp.sold_in_window / inp.window_days
    available = inp.on_hand - inp.reserved
    position = available + inp.inbound
    given = inp.reorder_point is not None
    rop = (float(inp.reorder_point) if inp.reorder_point is not None
           else v * (inp.lead_time_days + inp.safety_days))
    up_to = rop + v * inp.review_days
    cover = available / v if v > 0 else math.inf
    rop_txt = (f"reorder point {_fmt(rop)} (given)" if given else
               f"reorder point {_fmt(rop)} = {_fmt(v)}/day x (lead {_fmt(inp.lead_time_days)} + "
               f"safety {_fmt(inp.safety_days)} days)")
    pos_txt = f"available {available} + inbound {inp.inbound} = {position}"
    if position <= rop:
        qty = max(0, math.ceil(up_to - position - _EPS))
        if qty > 0:
            reason = (f"{pos_txt} <= {rop_txt}; order up to {_fmt(up_to)} "
                      f"(+ {_fmt(inp.review_days)} review days of demand): {qty}")
        else:
            reason = f"{pos_txt} <= {rop_txt}, but no demand to order up to"
    else:
        qty = 0
        reason = f"{pos_txt} > {rop_txt}: no order"
    return Suggestion(warehouse_id=inp.warehouse_id, sku=inp.sku, daily_velocity=v,
                      available=available, reorder_point_used=rop, suggested_qty=qty,
                      reason=reason, days_of_cover=cover)


def suggest_many(inputs: Sequence[ReplenishmentInput]) -> list[Suggestion]:
    """Suggestions for many (warehouse, sku), most urgent first: days of cover ascending,
    then larger suggested quantity, then warehouse id and sku (a stable, total order).
    Validation errors carry the index, e.g. ``inputs[3].reserved``."""
    out = [_suggest(inp, f"inputs[{i}]") for i, inp in enumerate(inputs)]
    out.sort(key=lambda s: (s.days_of_cover, -s.suggested_qty, s.warehouse_id, s.sku))
    return out
