"""Order batching: which orders share one picking cart (one route).

A cart takes at most ``max_orders`` orders and ``max_items`` items; an order that alone has
more than ``max_items`` items goes alone in its own batch. Every batch is routed exactly
(``engine.routing``, Ratliff & Rosenthal), and the plan reports the baseline a warehouse would
get by hand: first-come-first-served batches walked with S-shape routes.

Methods (each in its own module; this one re-exports their public names)
* ``fcfs_batches`` — arrival order, a new cart whenever the next order does not fit
  (``engine.batch_wave``, with ``PickOrder``, ``WaveArrays`` / ``wave_arrays`` and
  ``batch_lengths``).
* ``seed_batches`` — seed construction (``method="savings"`` of ``plan_batches``), then
  ``local_search`` — moves and swaps while the exact total falls; both pre-rank candidates
  by 64-bit aisle masks and score them with the exact router (``engine.batch_search``).
* ``cp_sat_batches`` — exact for small waves: every feasible batch is enumerated with its
  exact route length and CP-SAT solves the set partitioning problem (``engine.batch_exact``).
* ``plan_batches`` — the one entry point; returns a ``BatchPlan``.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from oms.engine.batch_exact import CPSAT_MAX_ORDERS, cp_sat_batches
from oms.engine.batch_search import SEED_RULES, local_search, seed_batches
from oms.engine.batch_wave import (
    PickOrder,
    StopFlag,
    WaveArrays,
    _check_caps,
    _should_stop,
    batch_lengths,
    fcfs_batches,
    wave_arrays,
)
from oms.engine.errors import ValidationError
from oms.engine.models import Layout
from oms.engine.routing import exact_route

__all__ = [
    "PickOrder",
    "BatchPlan",
    "WaveArrays",
    "wave_arrays",
    "fcfs_batches",
    "seed_batches",
    "local_search",
    "cp_sat_batches",
    "batch_lengths",
    "route_batch",
    "plan_batches",
]


@dataclass
class BatchPlan:
    """Result of ``plan_batches``. Order indices are positions in the input sequence.

    ``routes[b]`` is the visiting order of batch b's pick lines as an (n_lines, 2) int64
    array of (order index, line index within that order); lines at one location are
    consecutive. ``distances[b]`` is its exact route length in metres.
    """

    batches: list[list[int]]
    distances: np.ndarray
    routes: list[np.ndarray]
    total_distance: float
    baseline_batches: list[list[int]]
    baseline_distance: float
    method: str
    planning_s: float
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Total distance / baseline distance (1.0 for an empty wave)."""
        return self.total_distance / self.baseline_distance if self.baseline_distance else 1.0


# --------------------------------------------------------------------------------------------
# routes and the entry point
# --------------------------------------------------------------------------------------------
def route_batch(w: WaveArrays, batch: Sequence[int]) -> tuple[float, np.ndarray]:
    """Exact route of one batch: (length, (n_lines, 2) array of (order index, line index)
    in visiting order)."""
    o = np.asarray(batch, dtype=np.int64)
    if o.size == 0:
        return 0.0, np.zeros((0, 2), dtype=np.int64)
    nl = w.optr[o + 1] - w.optr[o]
    owner = np.repeat(o, nl)
    line_no = np.arange(int(nl.sum())) - np.repeat(np.cumsum(nl) - nl, nl)
    lines = w.optr[owner] + line_no
    length, visit = exact_route(w.la[lines], w.ls[lines], w.layout)
    return length, np.stack([owner[visit], line_no[visit]], axis=1)


def plan_batches(orders: Sequence[PickOrder], layout: Layout, max_orders: int, max_items: int,
                 method: str = "auto", time_budget_s: float = 4.0, stop: StopFlag = None,
                 *, candidates: int = 32, seed_rule: str = "fcfs") -> BatchPlan:
    """Batch a wave and route every batch exactly.

    ``method``: "fcfs" (arrival order), "savings" (seed construction + local search),
    "cpsat" (exact, at most ``CPSAT_MAX_ORDERS`` orders) or "auto" (cpsat for waves that
    small, else savings). ``time_budget_s`` bounds the optimisation (construction + local
    search, or the CP-SAT solve); whatever is unfinished falls back to feasible results, so a
    plan always comes back. The baseline (FCFS + S-shape) is always reported.
    """
    t0 = time.perf_counter()
    if method not in ("auto", "fcfs", "savings", "cpsat"):
        raise ValidationError.one("method", f"unknown batching method {method!r}")
    _check_caps(max_orders, max_items)
    w = wave_arrays(orders, layout)
    base = fcfs_batches(w.items, max_orders, max_items)
    base_len = float(batch_lengths(w, base, "s_shape").sum())
    # keep time for routing the final batches (~0.1 ms each, twice that on a busy machine)
    t_end = t0 + time_budget_s - 2e-4 * len(base) - 0.05
    stats: dict[str, float] = {}
    if method == "auto":
        method = "cpsat" if w.n <= CPSAT_MAX_ORDERS else "savings"
    if method == "fcfs":
        batches = base
    elif method == "cpsat":
        # the heuristic gives CP-SAT a hint and is the fallback if CP-SAT runs out of time
        heur = local_search(w, seed_batches(w, max_orders, max_items), max_orders, max_items,
                            time_budget_s=max(0.0, (t_end - time.perf_counter()) / 4), stop=stop)
        batches, optimal = cp_sat_batches(w, max_orders, max_items,
                                          time_budget_s=max(0.05, t_end - time.perf_counter()),
                                          stop=stop, hint=heur)
        if not optimal and batch_lengths(w, heur).sum() < batch_lengths(w, batches).sum():
            batches = heur
        stats["cpsat_optimal"] = float(optimal)
    else:
        # Construction may take most of the budget (what it can't finish is batched FCFS),
        # local search the rest. When that converged early, the time left goes to restarts
        # from the other seed rules (keeping the best): on small waves this cuts the mean gap
        # to the CP-SAT optimum several-fold.
        rules = [seed_rule] + [r for r in SEED_RULES if r != seed_rule]
        best_len = np.inf
        batches = base
        first_s = 0.0
        for k, rule in enumerate(rules):
            t1 = time.perf_counter()
            if k > 0 and (t_end - t1 < 2.0 * first_s or _should_stop(stop)):
                break
            cand = seed_batches(w, max_orders, max_items, candidates=candidates,
                                seed_rule=rule, time_budget_s=max(0.0, 0.7 * (t_end - t1)),
                                stop=stop)
            t2 = time.perf_counter()
            if k == 0:
                stats["construct_s"] = t2 - t1
                stats["construct_distance"] = float(batch_lengths(w, cand).sum())
            cand = local_search(w, cand, max_orders, max_items,
                                time_budget_s=max(0.0, t_end - time.perf_counter()), stop=stop)
            cand_len = float(batch_lengths(w, cand).sum())
            if k == 0:
                first_s = time.perf_counter() - t1
                stats["local_search_s"] = time.perf_counter() - t2
            stats["restarts"] = float(k)
            if cand_len < best_len - 1e-9:
                best_len, batches = cand_len, cand
    # oldest order first inside a batch, and batches in the order of their oldest order, so
    # that releasing batches front to back serves the oldest orders first
    batches = sorted((sorted(int(o) for o in b) for b in batches), key=lambda b: b[0])
    routes: list[np.ndarray] = []
    dist = np.zeros(len(batches))
    for b, batch in enumerate(batches):
        dist[b], r = route_batch(w, batch)
        routes.append(r)
    return BatchPlan(batches=batches, distances=dist,
                     routes=routes, total_distance=float(dist.sum()), baseline_batches=base,
                     baseline_distance=base_len, method=method,
                     planning_s=time.perf_counter() - t0, stats=stats)
