"""Global re-allocation of orders that are allocated but not yet released to a pick wave.

Online allocation (DESIGN.md, "Geography and zone skipping") decides one order at a time: an
order takes the nearest warehouse that can ship all of it, and once earlier orders have used
up that stock it ships from far away or is split. Before the wave job releases orders to
picking it may re-solve the allocation of all unreleased orders at once, using the stock they
hold plus what is still free.

Cost model (what is minimised)
------------------------------
A *shipment* is a pair (order, warehouse) with at least one unit of the order allocated in
that warehouse. The cost of an order is::

    sum over its shipments of dist[o, w]   +   shipment_penalty_km * (shipments - 1)

i.e. a shipment costs its distance once, whatever the number of units in it (a parcel's cost
is dominated by the trip, not its weight), and each shipment beyond the first costs an extra
``shipment_penalty_km`` km-equivalent (a second box, a second label). An order without lines
costs 0. The objective is the sum over orders. With ``c[o, w] = dist[o, w] + penalty`` an
order costs ``sum of c[o, w] over its shipments - penalty``.

Constraints: every line is fully allocated; per (warehouse, sku) the units allocated to these
orders never exceed ``free + held``, where *held* is what these same orders hold there now;
a disabled warehouse gets no new stock (a line may keep at most what it holds there now, or
move it away).

Method
------
Lines of one order with the same sku are merged into one *item*. ``ub[i, w]`` is the most
units item i may take from w: ``min(qty, capacity)``, at a disabled warehouse
``min(held now, capacity)``.

1. *Pattern LP (Dantzig-Wolfe master), column generation.* A pattern is one complete integer
   allocation of one order. The master LP picks a convex combination of patterns per order
   under the capacity rows; only orders whose patterns can meet a capacity row that might
   bind are in it, the others simply take their cheapest pattern. GLOP solves it; new
   patterns come from *pricing*: for each order, an exact dynamic program finds its cheapest
   allocation under the LP's capacity prices ``lam`` (items may split over warehouses;
   ``ub`` is respected). This LP is at least as strong as the compact one with fractional
   "order uses warehouse" variables (there an order may use 0.3 of a warehouse and pay 0.3
   of its distance), and much faster for GLOP: the compact LP took 24k simplex iterations
   and ~5 s for 3,000 orders.

2. *Lower bound.* For ANY prices ``lam >= 0``, relaxing the capacity rows gives::

       LB(lam) = sum_o  min over allocations A of o of (cost(A) + lam . units(A))
                 - sum_{w,s} lam[w,s] * capacity[w,s]

   which is at most the integer optimum (weak Lagrangian duality; each order's subproblem
   keeps everything except the capacity rows). The per-order minimum is exactly the pricing
   DP over ALL warehouses (for the rare order too big for the DP a smaller valid value is
   used: one shipment at least, every unit at its cheapest price). So ``lp_lower_bound`` is
   the best LB over the prices seen: a proven bound on the true integer optimum, not a value
   that holds only for a candidate set, and independent of GLOP's tolerances. When column
   generation converges it equals the pattern LP's optimum (LP duality), which is at least
   the compact LP relaxation's.

3. *Integer solution.* Orders whose LP pattern is integral keep it; the fractional ones are
   inserted into the remaining stock with the same DP (prices 0, capacity = what is left).
   An order that does not fit goes back to its current allocation and the orders that took
   that stock are re-inserted elsewhere or go back to theirs too, which always ends feasible
   since the current allocation is. Then local search (numba): re-insert single orders, and
   2-order ejections (o takes stock at w from a holder o2 that moves elsewhere), accepting
   only moves that strictly lower the cost; and CP-SAT re-chooses, among their pool
   patterns, the patterns of the orders the LP left fractional and of their neighbours,
   hinted with (so never worse than) the current solution.

4. The result is never worse than the current allocation (returned unchanged if nothing
   cheaper is found), and an order whose new allocation is not cheaper than its old one is
   put back when the stock allows, so no reservation is moved for nothing.
"""
from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba as nb
import numpy as np
from ortools.linear_solver.python import model_builder_helper as mbh
from ortools.sat.python import cp_model

from oms.engine.errors import FieldViolation, ValidationError

__all__ = [
    "ReallocationProblem",
    "ReallocationResult",
    "ReallocationStatus",
    "OrderMove",
    "allocation_cost",
    "order_costs",
    "reallocate",
    "moves",
    "warmup",
]

StopFlag = threading.Event | Callable[[], bool] | None

# Limits of the per-order DP. Orders beyond them (far more items or units than real orders
# have) get a weaker but valid bound and a greedy allocation.
_MAX_MASK_ITEMS = 10  # whole-item DP: 3^L set-partition steps
_MAX_STATES = 4096  # split DP: prod(qty + 1) states
_MAX_WORK = 400_000  # inner-loop steps per order in the split DP


class ReallocationStatus(enum.StrEnum):
    OPTIMAL = "OPTIMAL"
    """cost_after equals the lower bound (within 1e-6 relative): proven optimal."""
    IMPROVED = "IMPROVED"
    """cost_after < cost_before, optimality not proven."""
    UNCHANGED = "UNCHANGED"
    """Nothing cheaper was found; the current allocation is returned as is."""


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

    @property
    def n_orders(self) -> int:
        return len(self.line_ptr) - 1

    @property
    def n_warehouses(self) -> int:
        return self.free.shape[0]

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
    """A proven lower bound on the optimal cost (see the module docstring)."""
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
    """Total cost (module docstring) of the allocation rows (line, wh, qty)."""
    return float(order_costs(problem, line, wh, qty).sum())


# ---------------------------------------------------------------------------------------------
# preprocessing: lines -> items (one per (order, sku)), capacities, upper bounds


@dataclass
class _Prep:
    n: int
    n_wh: int
    item_ptr: np.ndarray  # int64[n+1]
    item_order: np.ndarray  # int64[I]
    item_sku: np.ndarray  # int64[I], compact sku index
    item_qty: np.ndarray  # int64[I]
    line_item: np.ndarray  # int64[n_lines]
    cap: np.ndarray  # int64[n_wh, S]: free + held, compact skus
    cur: np.ndarray  # int64[I, n_wh]: current allocation per item
    ub: np.ndarray  # int64[I, n_wh]: most units the item may take from w
    cost: np.ndarray  # float64[n, n_wh]: dist + penalty
    sku_item_ptr: np.ndarray  # CSR: items of each compact sku
    sku_items: np.ndarray


def _prepare(p: ReallocationProblem) -> _Prep:
    n, n_wh = p.n_orders, p.n_warehouses
    n_lines = len(p.line_sku)
    line_order = np.repeat(np.arange(n, dtype=np.int64), np.diff(p.line_ptr))
    perm = np.lexsort((p.line_sku, line_order))
    so, ss = line_order[perm], p.line_sku[perm]
    start = np.ones(n_lines, dtype=bool)
    if n_lines:
        start[1:] = (so[1:] != so[:-1]) | (ss[1:] != ss[:-1])
    starts = np.flatnonzero(start)
    line_item = np.empty(n_lines, dtype=np.int64)
    line_item[perm] = np.cumsum(start) - 1
    item_order = so[starts]
    item_sku_raw = ss[starts]
    item_qty = (np.add.reduceat(p.line_qty[perm], starts) if n_lines
                else np.zeros(0, np.int64)).astype(np.int64)
    n_items = len(starts)
    item_ptr = np.searchsorted(item_order, np.arange(n + 1)).astype(np.int64)

    uniq, item_sku = np.unique(item_sku_raw, return_inverse=True)
    item_sku = item_sku.astype(np.int64)
    n_s = len(uniq)
    cur = np.zeros((n_items, n_wh), dtype=np.int64)
    np.add.at(cur, (line_item[p.cur_line], p.cur_wh), p.cur_qty)
    cap = p.free[:, uniq].astype(np.int64).copy()
    held = np.zeros((n_wh, n_s), dtype=np.int64)
    np.add.at(held, (p.cur_wh, item_sku[line_item[p.cur_line]]), p.cur_qty)
    cap += held
    capi = cap[:, item_sku].T  # [I, n_wh]
    ub = np.where(p.enabled[None, :], np.minimum(item_qty[:, None], capi),
                  np.minimum(cur, capi)).astype(np.int64)
    order_by_sku = np.argsort(item_sku, kind="stable").astype(np.int64)
    sku_item_ptr = np.searchsorted(item_sku[order_by_sku], np.arange(n_s + 1)).astype(np.int64)
    return _Prep(
        n=n, n_wh=n_wh, item_ptr=item_ptr, item_order=item_order, item_sku=item_sku,
        item_qty=item_qty, line_item=line_item, cap=np.ascontiguousarray(cap),
        cur=cur, ub=np.ascontiguousarray(ub),
        cost=np.ascontiguousarray(p.dist + p.shipment_penalty_km),
        sku_item_ptr=sku_item_ptr, sku_items=order_by_sku,
    )


def _per_order_sum(item_ptr: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    """Sum rows of per_item[I, W] over the items of each order (items sorted by order)."""
    cs = np.zeros((per_item.shape[0] + 1,) + per_item.shape[1:], dtype=per_item.dtype)
    np.cumsum(per_item, axis=0, out=cs[1:])
    return cs[item_ptr[1:]] - cs[item_ptr[:-1]]


def _total_cost(pr: _Prep, a: np.ndarray, penalty: float) -> float:
    used = _per_order_sum(pr.item_ptr, (a > 0).astype(np.int64)) > 0
    k = used.sum(axis=1)
    return float(np.where(k > 0, np.where(used, pr.cost, 0.0).sum(axis=1) - penalty, 0.0).sum())


# ---------------------------------------------------------------------------------------------
# numba kernels. a[I, W] is an allocation (units of item i at w), r[W, S] residual stock.


@nb.njit(cache=True, nogil=True)
def _max_items(item_ptr):
    m = 1
    for o in range(item_ptr.shape[0] - 1):
        m = max(m, item_ptr[o + 1] - item_ptr[o])
    return m


@nb.njit(cache=True, nogil=True)
def _order_cost(o, item_ptr, a, cost, penalty):
    total = 0.0
    k = 0
    for w in range(a.shape[1]):
        for i in range(item_ptr[o], item_ptr[o + 1]):
            if a[i, w] > 0:
                total += cost[o, w]
                k += 1
                break
    if k == 0:
        return 0.0
    return total - penalty


@nb.njit(cache=True, nogil=True)
def _cap(i, w, item_sku, ub, r):
    c = r[w, item_sku[i]]
    u = ub[i, w]
    c = u if u < c else c
    return c if c > 0 else 0


@nb.njit(cache=True, nogil=True)
def _dp_lower(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty):
    """A valid lower bound for orders too big for the DP: one shipment at least, and every
    unit at its cheapest price among warehouses that may supply it."""
    n_wh = cost.shape[1]
    cmin = np.inf
    for w in range(n_wh):
        cmin = min(cmin, cost[o, w])
    v = cmin - penalty
    for k in range(n_it):
        i = i0 + k
        lm = np.inf
        for w in range(n_wh):
            if _cap(i, w, item_sku, ub, r) > 0:
                lm = min(lm, lam[w, item_sku[i]])
        v += item_qty[i] * lm
    return v


@nb.njit(cache=True, nogil=True)
def _dp_mask(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, ibuf, lowk,
             out):
    """Exact when no item has partial stock anywhere (every warehouse holds 0 or >= qty of
    it): then an optimal allocation ships every item whole from one warehouse (prices are per
    unit, so a split item could move entirely to the cheaper of its two warehouses). For each
    warehouse, the priced cost of every subset of the items it can take whole; then a
    set-partition DP over the items (parts containing the lowest item)."""
    n_wh = cost.shape[1]
    m_all = 1 << n_it
    best = fbuf[0]
    f = fbuf[1]
    sv = fbuf[2]
    bestw = ibuf[0]
    choice = ibuf[1]
    for m in range(m_all):
        best[m] = np.inf
        bestw[m] = -1
    for w in range(n_wh):
        ok = 0
        for k in range(n_it):
            if _cap(i0 + k, w, item_sku, ub, r) >= item_qty[i0 + k]:
                ok |= 1 << k
        if ok == 0:
            continue
        sv[0] = cost[o, w]
        for m in range(1, m_all):
            if m & ~ok:
                continue
            k = lowk[m]
            i = i0 + k
            v = sv[m & (m - 1)] + item_qty[i] * lam[w, item_sku[i]]
            sv[m] = v
            if v < best[m]:
                best[m] = v
                bestw[m] = w
    f[0] = 0.0
    for m in range(1, m_all):
        fm = np.inf
        ch = -1
        low = m & (-m)
        rest = m ^ low
        s = rest
        while True:
            part = s | low
            bp = best[part]
            if bp < np.inf:
                v = bp + f[m ^ part]
                if v < fm:
                    fm = v
                    ch = part
            if s == 0:
                break
            s = (s - 1) & rest
        f[m] = fm
        choice[m] = ch
    full = m_all - 1
    if f[full] == np.inf:
        return np.inf
    for k in range(n_it):
        for w in range(n_wh):
            out[k, w] = 0
    m = full
    while m != 0:
        part = choice[m]
        w = bestw[part]
        for k in range(n_it):
            if (part >> k) & 1:
                out[k, w] = item_qty[i0 + k]
        m ^= part
    return f[full] - penalty


@nb.njit(cache=True, nogil=True)
def _dp_count(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, chs, dig, wl,
              out):
    """Exact with splits: a knapsack over warehouses (each used at most once) whose state is
    the vector of units covered per item, mixed radix prod(qty + 1). Stage w: either w is not
    used, or it ships a non-zero vector u <= min(covered, cap_w) at cost c[o, w] + lam . u.
    dig holds strides [0:16], caps [16:32], box [32:48] and the odometer u [48:64]."""
    n_wh = cost.shape[1]
    big = 1
    for k in range(n_it):
        dig[k] = big
        big *= item_qty[i0 + k] + 1
    n_states = big
    g = fbuf[1]
    g[0] = 0.0
    for v in range(1, n_states):
        g[v] = np.inf
    nw = 0
    for w in range(n_wh):
        for k in range(n_it):
            if _cap(i0 + k, w, item_sku, ub, r) > 0:
                wl[nw] = w
                nw += 1
                break
    for j in range(nw):
        w = wl[j]
        cw = cost[o, w]
        for k in range(n_it):
            c = _cap(i0 + k, w, item_sku, ub, r)
            dig[16 + k] = min(c, item_qty[i0 + k])
        for v in range(n_states - 1, 0, -1):
            rem = v
            any_ = False
            for k in range(n_it):
                q1 = item_qty[i0 + k] + 1
                d = rem % q1
                rem //= q1
                b = d if d < dig[16 + k] else dig[16 + k]
                dig[32 + k] = b
                dig[48 + k] = 0
                if b > 0:
                    any_ = True
            chs[j, v] = -1
            if not any_:
                continue
            bv = g[v]
            ch = -1
            uidx = 0
            ucost = cw
            while True:
                k = 0
                while k < n_it:
                    i = i0 + k
                    if dig[48 + k] < dig[32 + k]:
                        dig[48 + k] += 1
                        uidx += dig[k]
                        ucost += lam[w, item_sku[i]]
                        break
                    uidx -= dig[48 + k] * dig[k]
                    ucost -= dig[48 + k] * lam[w, item_sku[i]]
                    dig[48 + k] = 0
                    k += 1
                if k == n_it:
                    break
                cand = g[v - uidx] + ucost
                if cand < bv:
                    bv = cand
                    ch = uidx
            if ch >= 0:
                g[v] = bv
                chs[j, v] = ch
    full = n_states - 1
    if g[full] == np.inf:
        return np.inf
    for k in range(n_it):
        for w in range(n_wh):
            out[k, w] = 0
    v = full
    for j in range(nw - 1, -1, -1):
        if v == 0:
            break
        u = chs[j, v]
        if u > 0:
            w = wl[j]
            rem = u
            for k in range(n_it):
                q1 = item_qty[i0 + k] + 1
                out[k, w] += rem % q1
                rem //= q1
            v -= u
    # recompute from the allocation: the DP value carries float drift from the odometer
    total = 0.0
    for w in range(n_wh):
        used = False
        for k in range(n_it):
            if out[k, w] > 0:
                used = True
                total += out[k, w] * lam[w, item_sku[i0 + k]]
        if used:
            total += cost[o, w]
    return total - penalty


@nb.njit(cache=True, nogil=True)
def _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, ibuf, chs,
              dig, wl, lowk, out):
    """Cheapest allocation of order o with stock min(ub, r) and unit prices lam:
    min over allocations of (sum of c[o, w] over warehouses used - penalty + lam . units).

    Returns (value, exact). exact: value is the minimum and out[k, w] holds the units of the
    order's k-th item at w (inf: the order does not fit). Not exact: the order is too big for
    the DP; value is a lower bound and out is not written.
    """
    i0 = item_ptr[o]
    n_it = item_ptr[o + 1] - i0
    n_wh = cost.shape[1]
    if n_it == 0:
        return 0.0, True
    partial = False
    n_states = 1
    work = 1.0
    for k in range(n_it):
        i = i0 + k
        q = item_qty[i]
        tot = 0
        for w in range(n_wh):
            c = _cap(i, w, item_sku, ub, r)
            if c > 0:
                tot += c
                if c < q:
                    partial = True
        if tot < q:
            return np.inf, True
        n_states *= q + 1
        work *= (q + 1) * (q + 2) / 2
    if not partial:
        if n_it <= _MAX_MASK_ITEMS:
            return _dp_mask(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf,
                            ibuf, lowk, out), True
    elif n_states <= _MAX_STATES and work * n_wh <= _MAX_WORK and n_it <= 16:
        return _dp_count(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, chs,
                         dig, wl, out), True
    return _dp_lower(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty), False


@nb.njit(cache=True, nogil=True)
def _workspace(n_wh, max_items):
    size = max(1 << _MAX_MASK_ITEMS, _MAX_STATES)
    fbuf = np.empty((3, size))
    ibuf = np.empty((2, size), np.int64)
    chs = np.empty((n_wh, _MAX_STATES), np.int64)
    dig = np.empty(64, np.int64)
    wl = np.empty(n_wh, np.int64)
    lowk = np.zeros(1 << _MAX_MASK_ITEMS, np.int64)
    for m in range(1, 1 << _MAX_MASK_ITEMS):
        k = 0
        while not (m >> k) & 1:
            k += 1
        lowk[m] = k
    out = np.zeros((max_items, n_wh), np.int64)
    return fbuf, ibuf, chs, dig, wl, lowk, out


@nb.njit(cache=True, nogil=True)
def _price_all(orders, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, val, exact,
               out_a):
    """Pricing of the given orders at prices lam (r = full capacity): val[o] and, when
    exact, the cheapest allocation in out_a (rows of o's items)."""
    n_wh = cost.shape[1]
    fbuf, ibuf, chs, dig, wl, lowk, out = _workspace(n_wh, _max_items(item_ptr))
    for o in orders:
        v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf,
                          ibuf, chs, dig, wl, lowk, out)
        val[o] = v
        exact[o] = ex
        if ex and v < np.inf:
            i0 = item_ptr[o]
            for k in range(item_ptr[o + 1] - i0):
                for w in range(n_wh):
                    out_a[i0 + k, w] = out[k, w]


@nb.njit(cache=True, nogil=True)
def _release(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] += a[i, w]


@nb.njit(cache=True, nogil=True)
def _take(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] -= a[i, w]


@nb.njit(cache=True, nogil=True)
def _is_empty(o, item_ptr, a):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                return False
    return True


@nb.njit(cache=True, nogil=True)
def _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Greedy for an order too big for the DP: items take from the cheapest warehouses first
    (a is empty for o). Returns the cost, or inf (a and r untouched) if it does not fit."""
    i0, i1 = item_ptr[o], item_ptr[o + 1]
    n_wh = cost.shape[1]
    for i in range(i0, i1):
        avail = 0
        for w in range(n_wh):
            avail += _cap(i, w, item_sku, ub, r)
        if avail < item_qty[i]:
            return np.inf
    byc = np.argsort(cost[o])
    for i in range(i0, i1):
        rem = item_qty[i]
        for x in range(n_wh):
            if rem == 0:
                break
            w = byc[x]
            t = min(rem, _cap(i, w, item_sku, ub, r))
            if t > 0:
                a[i, w] += t
                r[w, item_sku[i]] -= t
                rem -= t
    return _order_cost(o, item_ptr, a, cost, penalty)


@nb.njit(cache=True, nogil=True)
def _place(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws):
    """Allocate the (released, empty) order o in r as cheaply as possible; a[o] is written
    and r reduced. Returns the cost (inf: does not fit, nothing written)."""
    fbuf, ibuf, chs, dig, wl, lowk, out = ws
    v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, penalty, fbuf, ibuf,
                      chs, dig, wl, lowk, out)
    if not ex:
        return _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty)
    if v == np.inf:
        return v
    i0 = item_ptr[o]
    for i in range(i0, item_ptr[o + 1]):
        for w in range(a.shape[1]):
            a[i, w] = out[i - i0, w]
            r[w, item_sku[i]] -= out[i - i0, w]
    return v


@nb.njit(cache=True, nogil=True)
def _improve(orders, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Re-insert each order at its cheapest allocation in the stock left by the others, if
    that is strictly cheaper; an empty order is inserted whatever it costs.
    Returns (cost decrease over the non-empty orders, orders left empty)."""
    n_wh = cost.shape[1]
    fbuf, ibuf, chs, dig, wl, lowk, out = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, r.shape[1]))
    gain = 0.0
    failed = 0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        if i1 == i0:
            continue
        empty = _is_empty(o, item_ptr, a)
        c0 = np.inf if empty else _order_cost(o, item_ptr, a, cost, penalty)
        _release(o, item_ptr, item_sku, a, r)
        v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, penalty, fbuf,
                          ibuf, chs, dig, wl, lowk, out)
        if ex and v < c0 - 1e-9:
            for i in range(i0, i1):
                for w in range(n_wh):
                    a[i, w] = out[i - i0, w]
                    r[w, item_sku[i]] -= out[i - i0, w]
            if not empty:
                gain += c0 - v
        elif empty:
            if _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty) == np.inf:
                failed += 1
        else:
            _take(o, item_ptr, item_sku, a, r)
    return gain, failed


@nb.njit(cache=True, nogil=True)
def _eject(orders, item_ptr, item_order, item_sku, item_qty, ub, cost, r, a, penalty,
           sku_item_ptr, sku_items, max_holders):
    """2-order ejections. For order o and a warehouse w that alone would ship o cheaper than
    its current allocation but lacks stock of exactly one of o's items, try each order o2
    holding that sku at w: release both, place o, then o2; keep it if the pair's cost
    strictly drops, else restore both. Returns the total cost decrease."""
    n_wh = cost.shape[1]
    ws = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, r.shape[1]))
    max_it = _max_items(item_ptr)
    save_o = np.empty((max_it, n_wh), np.int64)
    save_o2 = np.empty((max_it, n_wh), np.int64)
    gain = 0.0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        if i1 == i0:
            continue
        for w in range(n_wh):
            c0o = _order_cost(o, item_ptr, a, cost, penalty)
            if cost[o, w] - penalty >= c0o - 1e-9:
                continue
            blocked = -1
            n_blocked = 0
            possible = True
            for i in range(i0, i1):
                q = item_qty[i]
                if ub[i, w] < q:
                    possible = False
                    break
                if r[w, item_sku[i]] + a[i, w] < q:
                    n_blocked += 1
                    blocked = i
            if not possible or n_blocked != 1:
                continue
            s = item_sku[blocked]
            tried = 0
            for t in range(sku_item_ptr[s], sku_item_ptr[s + 1]):
                i2 = sku_items[t]
                o2 = item_order[i2]
                if o2 == o or a[i2, w] == 0:
                    continue
                if tried >= max_holders:
                    break
                tried += 1
                c0o = _order_cost(o, item_ptr, a, cost, penalty)
                c02 = _order_cost(o2, item_ptr, a, cost, penalty)
                j0, j1 = item_ptr[o2], item_ptr[o2 + 1]
                for i in range(i0, i1):
                    for x in range(n_wh):
                        save_o[i - i0, x] = a[i, x]
                for i in range(j0, j1):
                    for x in range(n_wh):
                        save_o2[i - j0, x] = a[i, x]
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for x in range(n_wh):
                        a[i, x] = 0
                for i in range(j0, j1):
                    for x in range(n_wh):
                        a[i, x] = 0
                c1o = _place(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws)
                c12 = np.inf
                if c1o < np.inf:
                    c12 = _place(o2, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a,
                                 penalty, ws)
                if c12 < np.inf and c1o + c12 < c0o + c02 - 1e-9:
                    gain += c0o + c02 - c1o - c12
                    break
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for x in range(n_wh):
                        a[i, x] = save_o[i - i0, x]
                for i in range(j0, j1):
                    for x in range(n_wh):
                        a[i, x] = save_o2[i - j0, x]
                _take(o, item_ptr, item_sku, a, r)
                _take(o2, item_ptr, item_sku, a, r)
    return gain


@nb.njit(cache=True, nogil=True)
def _repair(failed, item_ptr, item_order, item_sku, item_qty, ub, cost, r, a, cur, penalty,
            sku_item_ptr, sku_items):
    """Make the allocation feasible again: every order in `failed` (empty, did not fit) goes
    back to its current allocation and is locked there; then while some (w, s) is
    over-committed, an unlocked order holding more of it than it holds now is moved elsewhere
    (without using (w, s)) or, if it does not fit, locked at its current allocation too.
    Terminates: each step lowers an overload or locks an order, and with all orders locked
    the allocation is the current one, which fits. Returns the number of orders locked."""
    n = item_ptr.shape[0] - 1
    n_wh = cost.shape[1]
    n_s = r.shape[1]
    ws = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, n_s))
    locked = np.zeros(n, np.bool_)
    stack = np.empty(16, np.int64)
    top = 0
    n_locked = 0
    for o in failed:
        _release(o, item_ptr, item_sku, a, r)
        for i in range(item_ptr[o], item_ptr[o + 1]):
            for w in range(n_wh):
                a[i, w] = cur[i, w]
        _take(o, item_ptr, item_sku, a, r)
        locked[o] = True
        n_locked += 1
    # over-committed rows
    for w in range(n_wh):
        for s in range(n_s):
            if r[w, s] < 0:
                if top == stack.shape[0]:
                    stack = np.concatenate((stack, np.empty(top, np.int64)))
                stack[top] = w * n_s + s
                top += 1
    while top > 0:
        key = stack[top - 1]
        w = key // n_s
        s = key % n_s
        if r[w, s] >= 0:
            top -= 1
            continue
        victim = -1
        for t in range(sku_item_ptr[s], sku_item_ptr[s + 1]):
            i2 = sku_items[t]
            o2 = item_order[i2]
            if not locked[o2] and a[i2, w] > cur[i2, w]:
                victim = o2
                break
        if victim < 0:  # cannot happen (see docstring); stop rather than loop
            top -= 1
            continue
        _release(victim, item_ptr, item_sku, a, r)
        for i in range(item_ptr[victim], item_ptr[victim + 1]):
            for x in range(n_wh):
                a[i, x] = 0
        r[w, s] -= 1 << 40  # keep the victim off the over-committed row
        c = _place(victim, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws)
        r[w, s] += 1 << 40
        if c == np.inf:
            for i in range(item_ptr[victim], item_ptr[victim + 1]):
                for x in range(n_wh):
                    a[i, x] = cur[i, x]
                    if cur[i, x] > 0:
                        r[x, item_sku[i]] -= cur[i, x]
                        if r[x, item_sku[i]] < 0:
                            if top == stack.shape[0]:
                                stack = np.concatenate((stack, np.empty(top, np.int64)))
                            stack[top] = x * n_s + item_sku[i]
                            top += 1
            locked[victim] = True
            n_locked += 1
    return n_locked


@nb.njit(cache=True, nogil=True)
def _revert(orders, item_ptr, item_sku, cur, cost, r, a, penalty):
    """Put an order back on its current allocation when the new one is not cheaper and the
    stock is there, so that no reservation is moved for nothing. Returns #reverted."""
    n_wh = cost.shape[1]
    reverted = 0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        same = True
        for i in range(i0, i1):
            for w in range(n_wh):
                if a[i, w] != cur[i, w]:
                    same = False
        if same:
            continue
        if _order_cost(o, item_ptr, a, cost, penalty) < \
                _order_cost(o, item_ptr, cur, cost, penalty) - 1e-9:
            continue
        _release(o, item_ptr, item_sku, a, r)
        fits = True
        for i in range(i0, i1):
            for w in range(n_wh):
                if cur[i, w] > r[w, item_sku[i]]:
                    fits = False
        if fits:
            for i in range(i0, i1):
                for w in range(n_wh):
                    a[i, w] = cur[i, w]
            reverted += 1
        _take(o, item_ptr, item_sku, a, r)
    return reverted


# ---------------------------------------------------------------------------------------------
# pattern pool and master LP

_H1 = np.uint64(0x9E3779B97F4A7C15)
_H2 = np.uint64(0xC2B2AE3D27D4EB4F)
_H3 = np.uint64(0x165667B19E3779F9)


class _Pool:
    """Distinct patterns (complete integer allocations of one order), as CSR entries."""

    def __init__(self, pr: _Prep) -> None:
        self.pr = pr
        self.order = np.zeros(0, np.int64)
        self.cost = np.zeros(0)
        self.ptr = np.zeros(1, np.int64)
        self.item = np.zeros(0, np.int64)
        self.wh = np.zeros(0, np.int64)
        self.qty = np.zeros(0, np.int64)
        self._seen: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self.order)

    def add(self, a: np.ndarray, orders: np.ndarray, penalty: float) -> int:
        """Add the allocations a[items of o] of the given (sorted) orders; returns #new."""
        pr = self.pr
        if len(orders) == 0:
            return 0
        sel = np.zeros(pr.n, dtype=bool)
        sel[orders] = True
        items = np.flatnonzero(sel[pr.item_order])
        sub = a[items]
        ii, ww = np.nonzero(sub)
        it = items[ii]
        od = pr.item_order[it]
        qq = sub[ii, ww]
        h = (it.astype(np.uint64) * _H1) ^ (ww.astype(np.uint64) * _H2) ^ (
            qq.astype(np.uint64) * _H3)
        h = (h ^ (h >> np.uint64(29))) * _H1
        ph = np.zeros(pr.n, dtype=np.uint64)
        np.add.at(ph, od, h)
        new = np.zeros(pr.n, dtype=bool)
        for o, hh in zip(orders.tolist(), ph[orders].tolist()):
            k = (o, hh)
            if k not in self._seen:
                self._seen.add(k)
                new[o] = True
        keep = new[od]
        it, ww, qq, od = it[keep], ww[keep], qq[keep], od[keep]
        new_orders = np.flatnonzero(new)
        if len(new_orders) == 0:
            return 0
        counts = np.searchsorted(od, new_orders, side="right") - np.searchsorted(od, new_orders)
        pos = np.repeat(np.arange(len(new_orders)), counts)
        used = np.zeros((len(new_orders), pr.n_wh), dtype=bool)
        used[pos, ww] = True
        cost = np.where(used, pr.cost[new_orders], 0.0).sum(axis=1) - penalty
        self.order = np.concatenate([self.order, new_orders])
        self.cost = np.concatenate([self.cost, cost])
        self.ptr = np.concatenate([self.ptr, self.ptr[-1] + np.cumsum(counts)])
        self.item = np.concatenate([self.item, it])
        self.wh = np.concatenate([self.wh, ww])
        self.qty = np.concatenate([self.qty, qq])
        return len(new_orders)

    def entries_pattern(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.order), dtype=np.int64), np.diff(self.ptr))


@dataclass
class _Master:
    objective: float  # full value: LP over contested orders + cheapest pattern of the others
    lam: np.ndarray  # [W, S] >= 0
    mu: np.ndarray  # [n] convexity duals (cheapest pattern cost for uncontested orders)
    x: np.ndarray  # [n_patterns] LP value of every pool pattern
    status: str


def _solve_master(pool: _Pool, penalty: float, time_limit: float, stop: StopFlag
                  ) -> _Master | None:
    pr = pool.pr
    n_s = pr.cap.shape[1]
    n_keys = pr.n_wh * n_s
    e_pat = pool.entries_pattern()
    e_order = pool.order[e_pat]
    key = pool.wh * n_s + pr.item_sku[pool.item]
    # A capacity row is needed only where the orders could together exceed the stock, each
    # order counted with its largest use of that (w, s) over its patterns.
    uk, inv = np.unique(e_order * n_keys + key, return_inverse=True)
    mx = np.zeros(len(uk), dtype=np.int64)
    np.maximum.at(mx, inv, pool.qty)
    potential = np.bincount(uk % n_keys, weights=mx, minlength=n_keys)
    rows = np.flatnonzero(potential > pr.cap.reshape(-1) + 0.5)
    row_of = np.full(n_keys, -1, dtype=np.int64)
    row_of[rows] = np.arange(len(rows))
    touches = row_of[key] >= 0
    contested = np.zeros(pr.n, dtype=bool)
    contested[e_order[touches]] = True

    # uncontested orders: their cheapest pattern, no LP needed
    n_pat = len(pool)
    by = np.lexsort((pool.cost, pool.order))
    first = np.r_[True, pool.order[by][1:] != pool.order[by][:-1]] if n_pat else by
    cheapest = np.full(pr.n, -1, dtype=np.int64)
    cheapest[pool.order[by[first]]] = by[first]
    x = np.zeros(n_pat)
    mu = np.zeros(pr.n)
    unc = np.flatnonzero(~contested & (cheapest >= 0))
    x[cheapest[unc]] = 1.0
    mu[unc] = pool.cost[cheapest[unc]]
    const = float(pool.cost[cheapest[unc]].sum())
    lam = np.zeros((pr.n_wh, n_s))
    c_orders = np.flatnonzero(contested)
    if len(c_orders) == 0:
        return _Master(const, lam, mu, x, "OPTIMAL")

    var_pat = np.flatnonzero(contested[pool.order])  # sorted by pattern index
    n_var = len(var_pat)
    var_of = np.full(n_pat, -1, dtype=np.int64)
    var_of[var_pat] = np.arange(n_var)
    h = mbh.ModelBuilderHelper()
    h.add_var_array_with_bounds(np.zeros(n_var), np.ones(n_var), np.zeros(n_var, dtype=bool),
                                "")
    h.set_objective_coefficients(list(range(n_var)), pool.cost[var_pat].tolist())
    vo = pool.order[var_pat]
    srt = np.argsort(vo, kind="stable")
    starts = np.searchsorted(vo[srt], c_orders)
    ends = np.searchsorted(vo[srt], c_orders, side="right")
    srt_l = srt.tolist()
    conv = np.empty(len(c_orders), dtype=np.int64)
    for j, (a0, a1) in enumerate(zip(starts.tolist(), ends.tolist())):
        ct = h.add_linear_constraint()
        conv[j] = ct
        h.add_terms_to_constraint(ct, srt_l[a0:a1], [1.0] * (a1 - a0))
        h.set_constraint_lower_bound(ct, 1.0)
        h.set_constraint_upper_bound(ct, 1.0)
    m = touches & (var_of[e_pat] >= 0)
    rk, vv, qq = row_of[key[m]], var_of[e_pat[m]], pool.qty[m].astype(np.float64)
    o2 = np.argsort(rk, kind="stable")
    rk, vv_l, qq_l = rk[o2], vv[o2].tolist(), qq[o2].tolist()
    rs = np.searchsorted(rk, np.arange(len(rows) + 1)).tolist()
    capf = pr.cap.reshape(-1)[rows].astype(np.float64).tolist()
    cap_rows = np.empty(len(rows), dtype=np.int64)
    for j in range(len(rows)):
        ct = h.add_linear_constraint()
        cap_rows[j] = ct
        h.add_terms_to_constraint(ct, vv_l[rs[j]:rs[j + 1]], qq_l[rs[j]:rs[j + 1]])
        h.set_constraint_upper_bound(ct, capf[j])

    solver = mbh.ModelSolverHelper("glop")
    solver.set_time_limit_in_seconds(max(0.01, time_limit))
    # dual simplex: about twice as fast as GLOP's default primal on these masters (measured
    # on the 10k-order benchmark)
    solver.set_solver_specific_parameters("use_dual_simplex: true")
    done = threading.Event()
    watcher = None
    if stop is not None:
        def watch() -> None:
            while not done.wait(0.01):
                if _stopped(stop):
                    solver.interrupt_solve()
                    return
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        solver.solve(h)
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
    status = str(solver.status()).rsplit(".", 1)[-1]
    if status != "OPTIMAL":
        return None
    xv = np.asarray(solver.variable_values())
    duals = np.asarray(solver.dual_values())
    x[var_pat] = xv
    mu[c_orders] = duals[conv]
    # GLOP's dual of a <= row in a minimisation is d objective / d rhs <= 0
    lam.reshape(-1)[rows] = np.maximum(0.0, -duals[cap_rows])
    return _Master(const + float(solver.objective_value()), lam, mu, x, status)


def _lower_bound(pr: _Prep, val: np.ndarray, lam: np.ndarray) -> float:
    """LB(lam) of the module docstring from the per-order pricing values."""
    return float(val.sum() - (lam * pr.cap).sum())


def _polish_cpsat(pr: _Prep, pool: _Pool, a: np.ndarray, core: np.ndarray, penalty: float,
                  time_limit: float, stop: StopFlag, max_orders: int = 600) -> int:
    """Re-choose the patterns of the hard core of orders exactly (CP-SAT, time-limited).

    The core is the orders the LP left fractional, plus (up to max_orders in all) the orders
    holding stock of a now-full (warehouse, sku) that some core pattern wants. Each chooses
    one of its pool patterns (the current allocation a is added as a pattern and given as the
    hint, so the answer is never worse); the stock left by all other orders is fixed.
    Returns the number of core orders; a is updated in place when a cheaper choice is found.
    """
    if len(core) == 0 or time_limit <= 0.02:
        return 0
    n_s = pr.cap.shape[1]
    r = pr.cap - _usage(pr, a)
    in_core = np.zeros(pr.n, dtype=bool)
    in_core[core[:max_orders]] = True
    # neighbours: orders holding stock of a full (w, s) that some core pattern wants
    e_pat = pool.entries_pattern()
    key = pool.wh * n_s + pr.item_sku[pool.item]
    wanted = np.zeros(pr.n_wh * n_s, dtype=bool)
    wanted[key[in_core[pool.order[e_pat]]]] = True
    full = wanted & (r.reshape(-1) == 0)
    ii, ww = np.nonzero(a)
    holders = np.unique(pr.item_order[ii[full[ww * n_s + pr.item_sku[ii]]]])
    extra = holders[~in_core[holders]]
    in_core[extra[: max(0, max_orders - int(in_core.sum()))]] = True
    orders = np.flatnonzero(in_core)
    pool.add(a, orders, penalty)
    e_pat = pool.entries_pattern()
    key = pool.wh * n_s + pr.item_sku[pool.item]
    pats = np.flatnonzero(in_core[pool.order])
    # stock left by everybody else
    a_rest = a.copy()
    a_rest[in_core[pr.item_order]] = 0
    r_sub = pr.cap - _usage(pr, a_rest)
    m = in_core[pool.order[e_pat]]
    ke, pe, qe = key[m], e_pat[m], pool.qty[m]
    # the hint: the pattern equal to the current allocation of each core order
    hint = _matching_patterns(pr, pool, a, orders)
    if len(hint) != len(orders):  # only on a 64-bit hash collision in the pool
        return 0

    model = cp_model.CpModel()
    var = {int(p_): model.new_bool_var(f"p{p_}") for p_ in pats.tolist()}
    po = pool.order[pats]
    srt = np.argsort(po, kind="stable")
    bounds = np.searchsorted(po[srt], orders)
    ends = np.searchsorted(po[srt], orders, side="right")
    for b0, b1 in zip(bounds.tolist(), ends.tolist()):
        model.add_exactly_one([var[int(pats[srt[j]])] for j in range(b0, b1)])
    o2 = np.argsort(ke, kind="stable")
    ke, pe, qe = ke[o2], pe[o2], qe[o2]
    starts = np.flatnonzero(np.r_[True, ke[1:] != ke[:-1]]) if len(ke) else ke
    ends_k = np.r_[starts[1:], len(ke)]
    capf = r_sub.reshape(-1)
    for b0, b1 in zip(starts.tolist(), ends_k.tolist()):
        k = int(ke[b0])
        if int(qe[b0:b1].sum()) <= capf[k]:
            continue  # cannot bind
        model.add(sum(int(q) * var[int(p_)] for p_, q in zip(pe[b0:b1].tolist(),
                                                               qe[b0:b1].tolist()))
                  <= int(capf[k]))
    scale = 1000.0  # metres: costs must be integers
    model.minimize(sum(int(round(pool.cost[p_] * scale)) * v for p_, v in var.items()))
    for p_, v in var.items():
        model.add_hint(v, 1 if p_ in hint else 0)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 2
    if stop is not None:
        # CP-SAT has no stop flag of its own: poll ours from a thread
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.01):
                if _stopped(stop):
                    solver.stop_search()
                    return
        th = threading.Thread(target=watch, daemon=True)
        th.start()
    try:
        status = solver.solve(model)
    finally:
        if stop is not None:
            done.set()
            th.join()
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return len(orders)
    chosen = np.array([p_ for p_, v in var.items() if solver.boolean_value(v)], dtype=np.int64)
    old_cost = float(pool.cost[np.array(sorted(hint), dtype=np.int64)].sum())
    if float(pool.cost[chosen].sum()) >= old_cost - 1e-9:
        return len(orders)
    a[in_core[pr.item_order]] = 0
    sel = np.zeros(len(pool), dtype=bool)
    sel[chosen] = True
    mm = sel[e_pat]
    a[pool.item[mm], pool.wh[mm]] = pool.qty[mm]
    return len(orders)


def _matching_patterns(pr: _Prep, pool: _Pool, a: np.ndarray, orders: np.ndarray) -> set[int]:
    """Pool patterns equal to a's allocation of the given orders (one per order)."""
    want = set()
    for o in orders.tolist():
        i0, i1 = int(pr.item_ptr[o]), int(pr.item_ptr[o + 1])
        ii, ww = np.nonzero(a[i0:i1])
        want.add((o, tuple(zip((ii + i0).tolist(), ww.tolist(), a[i0:i1][ii, ww].tolist()))))
    found: set[int] = set()
    pats = np.flatnonzero(np.isin(pool.order, orders))
    for p_ in pats.tolist():
        b0, b1 = int(pool.ptr[p_]), int(pool.ptr[p_ + 1])
        k = (int(pool.order[p_]), tuple(zip(pool.item[b0:b1].tolist(), pool.wh[b0:b1].tolist(),
                                            pool.qty[b0:b1].tolist())))
        if k in want:
            found.add(p_)
            want.discard(k)
    return found


# ---------------------------------------------------------------------------------------------
# driver


def _stopped(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _usage(pr: _Prep, a: np.ndarray) -> np.ndarray:
    u = np.zeros_like(pr.cap)
    ii, ww = np.nonzero(a)
    np.add.at(u, (ww, pr.item_sku[ii]), a[ii, ww])
    return u


def _search(pr: _Prep, a: np.ndarray, r: np.ndarray, active: np.ndarray,
            rng: np.random.Generator, deadline: float, stop: StopFlag, penalty: float,
            max_holders: int) -> tuple[int, bool]:
    """Local search until no move helps or the deadline. Returns (passes, cut short)."""
    passes = 0
    chunk = 1000  # kernel calls short enough to honour the deadline and the stop flag
    while True:
        order = rng.permutation(active)
        gain = 0.0
        for phase in (0, 1):
            for c0 in range(0, len(order), chunk):
                if time.perf_counter() >= deadline or _stopped(stop):
                    return passes, True
                part = order[c0:c0 + chunk]
                if phase == 0:
                    gain += _improve(part, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub,
                                     pr.cost, r, a, penalty)[0]
                else:
                    gain += _eject(part, pr.item_ptr, pr.item_order, pr.item_sku, pr.item_qty,
                                   pr.ub, pr.cost, r, a, penalty, pr.sku_item_ptr,
                                   pr.sku_items, max_holders)
        passes += 1
        if gain <= 1e-9:
            return passes, False


def reallocate(
    problem: ReallocationProblem,
    *,
    time_budget_s: float = 2.5,
    stop: StopFlag = None,
    lp_share: float = 0.6,
    polish_s: float = 0.4,
    max_holders: int = 8,
    seed: int = 0,
    validate: bool = True,
) -> ReallocationResult:
    """Re-solve the allocation of the given orders globally (module docstring).

    ``time_budget_s`` covers the whole call but not numba compilation: call ``warmup()`` once
    at start-up. Column generation gets at most ``lp_share`` of it; rounding and repair always
    run (they are fast); then local search, and CP-SAT re-choosing the patterns of the orders
    the LP left fractional (at most ``polish_s`` seconds, kept free for it), then local search
    again with what is left. ``stop`` (an Event or a callable returning True) ends the LP and
    the search early; the allocation returned is then the best found so far, still feasible
    and never worse than the current one. ``max_holders`` bounds the orders tried per
    ejection; ``seed`` orders the local search (results are deterministic for a seed only up
    to where the time budget cuts the search). Raises ValidationError on malformed input.
    """
    t0 = time.perf_counter()
    # the output (rows, flags) takes a few % of the solve; keep it inside the budget
    deadline = t0 + 0.96 * time_budget_s
    if validate:
        problem.validate()
    p = problem
    penalty = float(p.shipment_penalty_km)
    pr = _prepare(p)
    n, n_wh = pr.n, pr.n_wh
    n_items = len(pr.item_qty)
    cost_before = _total_cost(pr, pr.cur, penalty)
    stats: dict[str, float] = {"orders": n, "items": n_items}
    stopped = False
    lb = 0.0
    lp_status = "SKIPPED"

    a = pr.cur.copy()
    if n_items:
        # ---- column generation -------------------------------------------------------------
        val = np.zeros(n)
        exact = np.zeros(n, dtype=bool)
        out_a = np.zeros_like(pr.cur)
        pool = _Pool(pr)
        pool.add(pr.cur, np.arange(n, dtype=np.int64), penalty)
        lam = np.zeros((n_wh, pr.cap.shape[1]))
        all_orders = np.arange(n, dtype=np.int64)
        _price_all(all_orders, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub, pr.cost, lam,
                   pr.cap, penalty, val, exact, out_a)
        lb = _lower_bound(pr, val, lam)  # capacity ignored: every order at its cheapest
        pool.add(out_a, np.flatnonzero(exact & np.isfinite(val)), penalty)
        val0, exact0 = val.copy(), exact.copy()
        lp_deadline = t0 + lp_share * time_budget_s
        master: _Master | None = None
        rounds = 0
        while True:
            left = lp_deadline - time.perf_counter()
            if left <= 0 or _stopped(stop):
                stopped = stopped or _stopped(stop)
                lp_status = "STOPPED" if stopped else "TIME_LIMIT"
                break
            m = _solve_master(pool, penalty, left, stop)
            if m is None:  # time limit or interrupted: keep the last complete master
                lp_status = "STOPPED" if _stopped(stop) else "TIME_LIMIT"
                break
            master = m
            rounds += 1
            # An order none of whose skus has a positive price anywhere prices exactly as at
            # lam = 0, and cannot price out a column (its lam = 0 optimum is in the pool and
            # the convexity dual is at most that pattern's cost): only the others are priced.
            priced_sku = (m.lam > 0).any(axis=0)
            hit = _per_order_sum(pr.item_ptr, priced_sku[pr.item_sku].astype(np.int64)[:, None])
            affected = np.flatnonzero(hit[:, 0] > 0).astype(np.int64)
            val[:] = val0
            exact[:] = exact0
            _price_all(affected, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub, pr.cost, m.lam,
                       pr.cap, penalty, val, exact, out_a)
            lb = max(lb, _lower_bound(pr, val, m.lam))
            tol = 1e-9 * max(1.0, abs(m.objective))
            neg = affected[exact[affected] & (val[affected] < m.mu[affected] - 1e-6 - tol)]
            # LB <= integer optimum <= ...; once the master is within 0.01 % of LB more
            # columns cannot move either by anything that matters
            if len(neg) == 0 or m.objective - lb <= 1e-4 * abs(m.objective):
                lp_status = "OPTIMAL" if len(neg) == 0 else "CONVERGED"
                break
            if pool.add(out_a, neg, penalty) == 0:  # nothing new to price in
                lp_status = "CONVERGED"
                break
        stats["cg_rounds"] = rounds
        stats["patterns"] = len(pool)
        stats["lp_objective"] = master.objective if master is not None else float("nan")
        stats["lp_seconds"] = time.perf_counter() - t0

        # ---- integer solution: rounding, local search, exact polish of the hard core ------
        core = np.zeros(0, dtype=np.int64)
        if master is not None:
            a, core = _round_master(pr, pool, master, penalty, stats)
        r = pr.cap - _usage(pr, a)
        active = np.flatnonzero(np.diff(pr.item_ptr) > 0).astype(np.int64)
        rng = np.random.default_rng(seed)
        # leave the polish its share of the budget (it can only improve on the search)
        reserve = min(polish_s, 0.25 * time_budget_s) if len(core) else 0.0
        passes, stopped = _search(pr, a, r, active, rng, deadline - reserve, stop, penalty,
                                  max_holders)
        if len(core) and not _stopped(stop):
            t1 = time.perf_counter()
            limit = min(polish_s, deadline - t1 - 0.05)
            stats["polish_orders"] = _polish_cpsat(pr, pool, a, core, penalty, limit, stop)
            stats["polish_seconds"] = time.perf_counter() - t1
            r = pr.cap - _usage(pr, a)
            more, stopped = _search(pr, a, r, active, rng, deadline, stop, penalty, max_holders)
            passes += more
        stopped = stopped or _stopped(stop)
        stats["search_passes"] = passes
        stats["reverted"] = _revert(active, pr.item_ptr, pr.item_sku, pr.cur, pr.cost, r, a,
                                    penalty)
        # the invariants every caller relies on; cheap next to the solve
        if np.any(r < 0) or not np.array_equal(a.sum(axis=1), pr.item_qty):
            raise AssertionError("re-allocation produced an infeasible allocation")

    cost_after = _total_cost(pr, a, penalty)
    if cost_after >= cost_before:
        a, cost_after = pr.cur, cost_before
    line, wh, qty = _rows_from_items(p, pr, a)
    # an item whose allocation did not change yields exactly its current rows
    # (_rows_from_items), so comparing items is comparing rows
    diff = (a != pr.cur).any(axis=1).astype(np.int64)[:, None]
    changed = _per_order_sum(pr.item_ptr, diff)[:, 0] > 0
    if not changed.any():
        line, wh, qty = p.cur_line.copy(), p.cur_wh.copy(), p.cur_qty.copy()
        cost_after = cost_before
    # the bound is exact arithmetic up to float rounding; never report it above a solution
    lb = min(lb, cost_after)
    tol = 1e-6 * max(1.0, abs(cost_after))
    if cost_after - lb <= tol:
        status = ReallocationStatus.OPTIMAL
    elif cost_after < cost_before - tol:
        status = ReallocationStatus.IMPROVED
    else:
        status = ReallocationStatus.UNCHANGED
    return ReallocationResult(
        line=line, wh=wh, qty=qty, changed=changed, cost_before=cost_before,
        cost_after=cost_after, lp_lower_bound=lb, solve_seconds=time.perf_counter() - t0,
        status=status, stopped=stopped, lp_status=lp_status, stats=stats,
    )


def _round_master(pr: _Prep, pool: _Pool, master: _Master, penalty: float,
                  stats: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Integer allocation from the master LP: orders with an integral pattern keep it, the
    others are placed into what is left, most-decided first; _repair makes it feasible.
    Returns the allocation and the orders that were not integral in the LP."""
    # patterns added after the last master solve have no LP value: 0
    x = np.zeros(len(pool))
    x[: len(master.x)] = master.x
    take = np.flatnonzero(x >= 1.0 - 1e-6)
    # one pattern per order (degenerate LPs may list duplicates at 1.0 only in theory)
    take = take[np.unique(pool.order[take], return_index=True)[1]]
    a = np.zeros_like(pr.cur)
    e_pat = pool.entries_pattern()
    sel = np.zeros(len(pool), dtype=bool)
    sel[take] = True
    m = sel[e_pat]
    a[pool.item[m], pool.wh[m]] = pool.qty[m]
    placed = np.zeros(pr.n, dtype=bool)
    placed[pool.order[take]] = True
    todo = np.flatnonzero(~placed & (np.diff(pr.item_ptr) > 0))
    # most-decided first: the order's largest LP weight on one pattern
    best_x = np.zeros(pr.n)
    np.maximum.at(best_x, pool.order, x)
    todo = todo[np.argsort(-best_x[todo], kind="stable")].astype(np.int64)
    r = pr.cap - _usage(pr, a)
    failed_before = int(np.count_nonzero(r < 0))
    _, failed = _improve(todo, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub, pr.cost, r, a,
                         penalty)
    empty = np.flatnonzero((a.sum(axis=1) == 0) & (pr.item_qty > 0))
    failed_orders = np.unique(pr.item_order[empty]).astype(np.int64)
    locked = 0
    if len(failed_orders) or failed_before:
        locked = _repair(failed_orders, pr.item_ptr, pr.item_order, pr.item_sku, pr.item_qty,
                         pr.ub, pr.cost, r, a, pr.cur, penalty, pr.sku_item_ptr, pr.sku_items)
    stats["lp_fractional_orders"] = len(todo)
    stats["repair_locked"] = locked
    stats["cost_rounded"] = _total_cost(pr, a, penalty)
    return a, todo


def _rows_from_items(p: ReallocationProblem, pr: _Prep, a: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allocation rows (line, wh, qty) sorted by line then warehouse, from the item allocation.

    An item with one line (nearly all) maps straight to its line. The units of an item with
    several lines (same sku twice in one order) are dealt to its lines, each line first
    getting back what it holds now, so an unchanged item yields exactly its current rows.
    """
    n_lines = len(p.line_sku)
    n_wh = p.n_warehouses
    counts = np.bincount(pr.line_item, minlength=len(pr.item_qty))
    item_line = np.full(len(pr.item_qty), -1, dtype=np.int64)
    item_line[pr.line_item] = np.arange(n_lines)
    single = np.flatnonzero(counts == 1)
    ii, ww = np.nonzero(a[single] > 0)
    rl = [item_line[single[ii]]]
    rw = [ww.astype(np.int64)]
    rq = [a[single[ii], ww]]
    multi_lines = np.flatnonzero(counts[pr.line_item] > 1)
    if len(multi_lines):
        cur_lw: dict[tuple[int, int], int] = {}
        for l_, w_, q_ in zip(p.cur_line.tolist(), p.cur_wh.tolist(), p.cur_qty.tolist()):
            cur_lw[(l_, w_)] = cur_lw.get((l_, w_), 0) + q_
        lines_of_item: dict[int, list[int]] = {}
        for l_ in multi_lines.tolist():
            lines_of_item.setdefault(int(pr.line_item[l_]), []).append(l_)
        extra: list[tuple[int, int, int]] = []
        for it, lines in lines_of_item.items():
            # disabled warehouses first: there an item holds at most what its lines hold now,
            # and dealing those units back line by line gives no line a new row there
            ws = sorted(np.flatnonzero(a[it] > 0).tolist(), key=lambda w: bool(p.enabled[w]))
            left = {w: int(a[it, w]) for w in ws}
            need = {l_: int(p.line_qty[l_]) for l_ in lines}
            for keep_current in (True, False):
                for l_ in lines:
                    for w in ws:
                        t = min(need[l_], left[w])
                        if keep_current:
                            t = min(t, cur_lw.get((l_, w), 0))
                        if t > 0:
                            extra.append((l_, w, t))
                            need[l_] -= t
                            left[w] -= t
        if extra:
            e = np.asarray(extra, dtype=np.int64)
            rl.append(e[:, 0])
            rw.append(e[:, 1])
            rq.append(e[:, 2])
    line = np.concatenate(rl).astype(np.int64)
    wh = np.concatenate(rw).astype(np.int64)
    qty = np.concatenate(rq).astype(np.int64)
    # one row per (line, wh), sorted
    uk, inv = np.unique(line * n_wh + wh, return_inverse=True)
    q = np.zeros(len(uk), dtype=np.int64)
    np.add.at(q, inv, qty)
    return uk // n_wh, uk % n_wh, q


# ---------------------------------------------------------------------------------------------
# moves for the server


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


def warmup() -> None:
    """Compile (or load from numba's on-disk cache) every kernel, e.g. at start-up, so that
    the first real call is not charged seconds of compilation."""
    prob = ReallocationProblem(
        line_ptr=np.array([0, 2, 3, 4]), line_sku=np.array([0, 1, 0, 1]),
        line_qty=np.array([1, 2, 1, 1]), dist=np.array([[1.0, 5.0], [5.0, 1.0], [3.0, 3.0]]),
        free=np.array([[0, 1], [1, 0]]), cur_line=np.array([0, 1, 1, 2, 3]),
        cur_wh=np.array([1, 1, 0, 0, 1]), cur_qty=np.array([1, 1, 1, 1, 1]),
        enabled=np.array([True, True]),
    )
    reallocate(prob, time_budget_s=10.0)
    # the search kernels may not all have run above: call each once on the same data
    pr = _prepare(prob)
    a = pr.cur.copy()
    r = pr.cap - _usage(pr, a)
    orders = np.arange(pr.n, dtype=np.int64)
    _improve(orders, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub, pr.cost, r, a, 200.0)
    _eject(orders, pr.item_ptr, pr.item_order, pr.item_sku, pr.item_qty, pr.ub, pr.cost, r, a,
           200.0, pr.sku_item_ptr, pr.sku_items, 8)
    _repair(orders[:0], pr.item_ptr, pr.item_order, pr.item_sku, pr.item_qty, pr.ub, pr.cost,
            r, a, pr.cur, 200.0, pr.sku_item_ptr, pr.sku_items)
    _revert(orders, pr.item_ptr, pr.item_sku, pr.cur, pr.cost, r, a, 200.0)
