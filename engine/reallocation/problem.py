"""The re-allocation problem and result types, and the cost of an allocation (the cost
model is in the package docstring)."""
from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from oms.engine.errors import FieldViolation, ValidationError

StopFlag = threading.Event | Callable[[], bool] | None


class ReallocationStatus(enum.StrEnum):
    OPTIMAL = "OPTIMAL"
    """cost_after equals the lower bound (within 1e-6 relative): proven optimal."""
    IMPROVED = "IMPROVED"
    """cost_after < cost_before, optimality not proven."""
    UNCHANGED = "UNCHANGED"
    """Nothing cheaper was found; the current allocation is returned as is."""


def _stopped(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


@dataclass
class ReallocationProblem:
    """The orders to re-allocate, as plain arrays.

    Orders are 0..n-1, lines are in CSR form: the lines of order o are
    ``line_ptr[o]:line_ptr[o+1]``. Warehouses are 0..n_wh-1 and skus 0..n_skus-1 (the caller
    maps its ids to these indices). The current allocation is given as parallel arrays of
    rows (line, warehouse, qty); it must cover every line exactly.
    """

    line_ptr: np.ndarray  # int64[n+1]
    line_sku: np.ndarray  # int64[n_lines]
    line_qty: np.ndarray  # int64[n_lines], > 0
    dist: np.ndarray  # float64[n, n_wh], km
    free: np.ndarray  # int64[n_wh, n_skus]: available stock beyond the current holds
    cur_line: np.ndarray  # int64[n_rows]
    cur_wh: np.ndarray  # int64[n_rows]
    cur_qty: np.ndarray  # int64[n_rows], > 0
    enabled: np.ndarray  # bool[n_wh]
    shipment_penalty_km: float = 200.0
    # bool[n, n_wh] or None (all): the warehouses each order may take new stock from, e.g.
    # its sales channel's. Outside them an order is treated as at a disabled warehouse.
    allowed: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.line_ptr = np.ascontiguousarray(self.line_ptr, dtype=np.int64)
        self.line_sku = np.ascontiguousarray(self.line_sku, dtype=np.int64)
        self.line_qty = np.ascontiguousarray(self.line_qty, dtype=np.int64)
        self.dist = np.ascontiguousarray(self.dist, dtype=np.float64)
        self.free = np.ascontiguousarray(self.free, dtype=np.int64)
        self.cur_line = np.ascontiguousarray(self.cur_line, dtype=np.int64)
        self.cur_wh = np.ascontiguousarray(self.cur_wh, dtype=np.int64)
        self.cur_qty = np.ascontiguousarray(self.cur_qty, dtype=np.int64)
        self.enabled = np.ascontiguousarray(self.enabled, dtype=bool)
        if self.allowed is not None:
            self.allowed = np.ascontiguousarray(self.allowed, dtype=bool)

    @property
    def n_orders(self) -> int:
        return len(self.line_ptr) - 1

    @property
    def n_warehouses(self) -> int:
        return self.free.shape[0]

    def may_take(self) -> np.ndarray:
        """bool[n, n_wh]: where each order may take new stock (enabled and allowed)."""
        if self.allowed is None:
            return np.broadcast_to(self.enabled[None, :], (self.n_orders, self.n_warehouses))
        return self.allowed & self.enabled[None, :]

    def validate(self) -> None:
        """Raise ValidationError (one violation per problem found) if the arrays disagree."""
        v: list[FieldViolation] = []
        n_lines = len(self.line_sku)
        lp = self.line_ptr
        if lp.ndim != 1 or len(lp) < 1 or lp[0] != 0 or lp[-1] != n_lines:
            v.append(FieldViolation("line_ptr", f"must start at 0 and end at {n_lines}"))
        elif np.any(np.diff(lp) < 0):
            v.append(FieldViolation("line_ptr", "must be non-decreasing"))
        if len(self.line_qty) != n_lines:
            v.append(FieldViolation("line_qty", f"length {len(self.line_qty)} != {n_lines}"))
        elif n_lines and self.line_qty.min() <= 0:
            v.append(FieldViolation("line_qty", "quantities must be > 0"))
        if self.free.ndim != 2 or np.any(self.free < 0):
            v.append(FieldViolation("free", "must be a non-negative [n_wh, n_skus] array"))
        n_wh = self.free.shape[0] if self.free.ndim == 2 else -1
        n_skus = self.free.shape[1] if self.free.ndim == 2 else -1
        if n_lines and (self.line_sku.min() < 0 or self.line_sku.max() >= n_skus):
            v.append(FieldViolation("line_sku", f"sku index outside [0, {n_skus})"))
        n = len(lp) - 1
        if self.dist.shape != (n, n_wh):
            v.append(FieldViolation("dist", f"shape {self.dist.shape} != {(n, n_wh)}"))
        elif not np.all(np.isfinite(self.dist)) or np.any(self.dist < 0):
            v.append(FieldViolation("dist", "must be finite and >= 0"))
        if self.enabled.shape != (n_wh,):
            v.append(FieldViolation("enabled", f"shape {self.enabled.shape} != {(n_wh,)}"))
        if self.allowed is not None and self.allowed.shape != (n, n_wh):
            v.append(FieldViolation("allowed", f"shape {self.allowed.shape} != {(n, n_wh)}"))
        if not (np.isfinite(self.shipment_penalty_km) and self.shipment_penalty_km >= 0):
            v.append(FieldViolation("shipment_penalty_km", "must be finite and >= 0"))
        m = len(self.cur_line)
        if len(self.cur_wh) != m or len(self.cur_qty) != m:
            v.append(FieldViolation("cur_rows", "cur_line, cur_wh, cur_qty differ in length"))
        elif m:
            if self.cur_line.min() < 0 or self.cur_line.max() >= n_lines:
                v.append(FieldViolation("cur_line", "line index out of range"))
            elif self.cur_wh.min() < 0 or self.cur_wh.max() >= n_wh:
                v.append(FieldViolation("cur_wh", "warehouse index out of range"))
            elif self.cur_qty.min() <= 0:
                v.append(FieldViolation("cur_qty", "quantities must be > 0"))
            elif len(self.line_qty) == n_lines:
                covered = np.bincount(self.cur_line, weights=self.cur_qty, minlength=n_lines)
                bad = np.flatnonzero(covered != self.line_qty)
                if len(bad):
                    v.append(FieldViolation(
                        "cur_rows",
                        f"current allocation does not cover line {int(bad[0])} exactly "
                        f"({int(covered[bad[0]])} of {int(self.line_qty[bad[0]])}); "
                        f"{len(bad)} line(s) affected",
                    ))
        elif n_lines:
            v.append(FieldViolation("cur_rows", "empty, but there are lines to cover"))
        if v:
            raise ValidationError(v)


@dataclass
class ReallocationResult:
    """New allocation rows (line, warehouse, qty), sorted by line then warehouse."""

    line: np.ndarray  # int64[k]
    wh: np.ndarray  # int64[k]
    qty: np.ndarray  # int64[k]
    changed: np.ndarray  # bool[n]: the order's rows differ from its current ones
    cost_before: float
    cost_after: float
    lp_lower_bound: float
    """A proven lower bound on the optimal cost (see the package docstring)."""
    solve_seconds: float
    status: ReallocationStatus
    stopped: bool = False
    """The time budget or the stop flag cut the search short."""
    lp_status: str = ""
    """Column generation: OPTIMAL (no column prices out: the bound is the pattern LP's
    optimum), CONVERGED (bound within 0.01 % of the master), TIME_LIMIT, STOPPED, SKIPPED."""
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative distance of cost_after above the lower bound (0 = proven optimal)."""
        if self.cost_after <= 0:
            return 0.0
        return max(0.0, (self.cost_after - self.lp_lower_bound) / self.cost_after)


# ---------------------------------------------------------------------------------------------
# cost


def order_costs(
    problem: ReallocationProblem, line: np.ndarray, wh: np.ndarray, qty: np.ndarray
) -> np.ndarray:
    """Cost of every order under the allocation rows (line, wh, qty); float64[n]."""
    n, n_wh = problem.n_orders, problem.n_warehouses
    counts = np.diff(problem.line_ptr)
    line_order = np.repeat(np.arange(n, dtype=np.int64), counts)
    line = np.asarray(line, dtype=np.int64)
    wh = np.asarray(wh, dtype=np.int64)
    keep = np.asarray(qty) > 0
    used = np.zeros((n, n_wh), dtype=bool)
    used[line_order[line[keep]], wh[keep]] = True
    k = used.sum(axis=1)
    d = np.where(used, problem.dist, 0.0).sum(axis=1)
    return np.where(k > 0, d + problem.shipment_penalty_km * (k - 1), 0.0)


def allocation_cost(
    problem: ReallocationProblem, line: np.ndarray, wh: np.ndarray, qty: np.ndarray
) -> float:
    """Total cost (package docstring) of the allocation rows (line, wh, qty)."""
    return float(order_costs(problem, line, wh, qty).sum())
