"""What a return is worth, which bounds what may be refunded on it.

A refund pays back returned goods, so it can never be more than their value: the received
units at the prices the customer paid, less what was already refunded on that return. The store
checks that bound and records the refund in one step (see RESERVE_REFUND); this module only
prices the units.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from oms.engine.models import Line, ReturnLine

__all__ = ["fill_value_cents", "return_value_cents"]


def fill_value_cents(lines: Sequence[Line], units: Iterable[ReturnLine]) -> int:
    """Value of ``units`` (sku, quantity) priced at the order's lines: a sku's units take its
    lines in order, as capture charges shipped units; units beyond the lines are worth 0."""
    left: dict[str, int] = {}
    for u in units:
        left[u.sku] = left.get(u.sku, 0) + u.quantity
    total = 0
    for ln in lines:
        q = min(ln.quantity, left.get(ln.sku, 0))
        if q > 0:
            left[ln.sku] -= q
            total += q * ln.unit_price_cents
    return total


def return_value_cents(lines: Sequence[Line], earlier: Iterable[ReturnLine],
                       returned: Iterable[ReturnLine]) -> int:
    """Value of the return of ``returned`` after the order's ``earlier`` returns.

    The returns of an order take its lines in the order they were made, so a sku sold on two
    lines at two prices is never priced twice at the dearer one: the values of all returns add
    up to the value of everything returned, at most what was charged for what shipped."""
    before = list(earlier)
    return fill_value_cents(lines, [*before, *returned]) - fill_value_cents(lines, before)
