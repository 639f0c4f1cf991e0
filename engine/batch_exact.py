"""Exact batching of small waves with CP-SAT.

* ``cp_sat_batches`` — exact for small waves: every feasible batch is enumerated with its
  exact route length and CP-SAT solves the set partitioning problem. OR-Tools is imported
  on first use only.

``engine.batching`` re-exports it and uses ``CPSAT_MAX_ORDERS`` to pick the method.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

import numpy as np

from oms.engine.batch_wave import (
    StopFlag,
    WaveArrays,
    _check_caps,
    _should_stop,
    batch_lengths,
    fcfs_batches,
)
from oms.engine.errors import ValidationError

__all__ = [
    "CPSAT_MAX_ORDERS",
    "cp_sat_batches",
]


# --------------------------------------------------------------------------------------------
# CP-SAT for small waves
# --------------------------------------------------------------------------------------------
CPSAT_MAX_ORDERS = 14


def _feasible_subsets(items: np.ndarray, max_orders: int, max_items: int) -> list[tuple[int, ...]]:
    n = items.size
    out: list[tuple[int, ...]] = [(o,) for o in range(n)]  # a single order always fits
    small = [o for o in range(n) if items[o] <= max_items]
    for k in range(2, min(max_orders, len(small)) + 1):
        for comb in itertools.combinations(small, k):
            if int(items[list(comb)].sum()) <= max_items:
                out.append(comb)
    return out


def cp_sat_batches(w: WaveArrays, max_orders: int, max_items: int, *,
                   time_budget_s: float = 10.0, stop: StopFlag = None,
                   hint: Sequence[Sequence[int]] | None = None,
                   workers: int = 2) -> tuple[list[list[int]], bool]:
    """Optimal batching of a small wave (at most ``CPSAT_MAX_ORDERS`` orders): every feasible
    batch is enumerated with its exact route length, then a set-partitioning model (each order
    in exactly one chosen batch, minimise total length) is solved by CP-SAT. Lengths enter the
    model in millimetres (integers). Returns (batches, proven_optimal)."""
    from ortools.sat.python import cp_model  # heavy import, only needed here

    _check_caps(max_orders, max_items)
    n = w.n
    if n == 0:
        return [], True
    if n > CPSAT_MAX_ORDERS:
        raise ValidationError.one("orders", f"CP-SAT batching takes at most "
                                  f"{CPSAT_MAX_ORDERS} orders, got {n}")
    subsets = _feasible_subsets(w.items, max_orders, max_items)
    lengths = batch_lengths(w, subsets)
    cost = np.rint(lengths * 1000.0).astype(np.int64)
    model = cp_model.CpModel()
    x = [model.new_bool_var(f"b{i}") for i in range(len(subsets))]
    cover: list[list[int]] = [[] for _ in range(n)]
    for i, sub in enumerate(subsets):
        for o in sub:
            cover[o].append(i)
    for o in range(n):
        model.add_exactly_one(x[i] for i in cover[o])
    model.minimize(sum(int(c) * v for c, v in zip(cost, x)))
    if hint is not None:
        chosen = {tuple(sorted(b)) for b in hint}
        for i, sub in enumerate(subsets):
            model.add_hint(x[i], int(tuple(sub) in chosen))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(max(time_budget_s, 0.01))
    solver.parameters.num_workers = int(workers)
    done = threading.Event()

    def watch() -> None:  # CP-SAT has no stop-flag input; poll ours and stop it
        while not done.wait(0.02):
            if _should_stop(stop):
                solver.stop_search()
                return

    watcher = threading.Thread(target=watch, daemon=True) if stop is not None else None
    if watcher:
        watcher.start()
    try:
        status = solver.solve(model)
    finally:
        done.set()
        if watcher:
            watcher.join()
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return fcfs_batches(w.items, max_orders, max_items), False
    chosen_b = [list(subsets[i]) for i in range(len(subsets)) if solver.value(x[i])]
    chosen_b.sort(key=lambda b: b[0])
    return chosen_b, status == cp_model.OPTIMAL
