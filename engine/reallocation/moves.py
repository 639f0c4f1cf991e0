"""Moves for the server: a result as per-order reservation changes, in an order that fits."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from oms.engine.reallocation.problem import (
    ReallocationProblem,
    ReallocationResult,
    order_costs,
)


@dataclass(frozen=True)
class OrderMove:
    """How one order's reservations change: per warehouse, the (line, qty) pairs held before
    and after. ``release_first`` marks moves that only fit once other moves have released
    stock in a cycle: release the old reservations first, then reserve the new ones."""

    order: int
    old: dict[int, list[tuple[int, int]]]
    new: dict[int, list[tuple[int, int]]]
    cost_before: float
    cost_after: float
    release_first: bool = False


def moves(result: ReallocationResult, problem: ReallocationProblem) -> list[OrderMove]:
    """Per changed order, its old and new (line, qty) per warehouse, in an order the server
    can apply them.

    A move is applied per warehouse as "replace the order's reservation at w (old lines) by
    the new lines", i.e. a net change per (warehouse, sku). Applied in list order, every net
    increase fits in the free stock left by the problem's ``free`` and the moves before it.
    Moves caught in a cycle (A needs what B holds and B what A holds) come last with
    ``release_first=True``: release all their old reservations, then reserve the new ones
    (all of those fit once the cycle's old stock is back). Stock that online allocation takes
    in the meantime can still make a reservation fail; the server handles that like any
    failed reservation.
    """
    p = problem
    n_lines = len(p.line_sku)
    line_order = np.repeat(np.arange(p.n_orders, dtype=np.int64), np.diff(p.line_ptr))
    before = order_costs(p, p.cur_line, p.cur_wh, p.cur_qty)
    after = order_costs(p, result.line, result.wh, result.qty)

    def group(l_: np.ndarray, w_: np.ndarray, q_: np.ndarray
              ) -> dict[int, dict[int, list[tuple[int, int]]]]:
        out: dict[int, dict[int, list[tuple[int, int]]]] = {}
        sel = result.changed[line_order[l_]] if n_lines else np.zeros(0, bool)
        for li, wi, qi in zip(l_[sel].tolist(), w_[sel].tolist(), q_[sel].tolist()):
            out.setdefault(int(line_order[li]), {}).setdefault(wi, []).append((li, qi))
        return out

    old = group(p.cur_line, p.cur_wh, p.cur_qty)
    new = group(result.line, result.wh, result.qty)
    free: dict[tuple[int, int], int] = {}

    def avail(w: int, s: int) -> int:
        v = free.get((w, s))
        return int(p.free[w, s]) if v is None else v

    deltas: dict[int, dict[tuple[int, int], int]] = {}
    for o in np.flatnonzero(result.changed).tolist():
        d: dict[tuple[int, int], int] = {}
        for w, rows in new.get(o, {}).items():
            for li, qi in rows:
                k = (w, int(p.line_sku[li]))
                d[k] = d.get(k, 0) + qi
        for w, rows in old.get(o, {}).items():
            for li, qi in rows:
                k = (w, int(p.line_sku[li]))
                d[k] = d.get(k, 0) - qi
        deltas[o] = d
    pending = list(deltas)
    ordered: list[int] = []
    progress = True
    while pending and progress:  # a few passes; chains of moves resolve one link per pass
        progress = False
        rest = []
        for o in pending:
            d = deltas[o]
            if all(q <= avail(w, s) for (w, s), q in d.items() if q > 0):
                for (w, s), q in d.items():
                    free[(w, s)] = avail(w, s) - q
                ordered.append(o)
                progress = True
            else:
                rest.append(o)
        pending = rest
    return [
        OrderMove(order=o, old=old.get(o, {}), new=new.get(o, {}),
                  cost_before=float(before[o]), cost_after=float(after[o]),
                  release_first=flag)
        for o, flag in [(o, False) for o in ordered] + [(o, True) for o in pending]
    ]
