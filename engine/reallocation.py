"""Global re-allocation of orders that are allocated but not yet released to a pick wave.

Online allocation (DESIGN.md, "Geography and zone skipping") decides one order at a time: an
order takes the nearest warehouse that can ship all of it, and when earlier orders have
already used up that stock it ships from far away or is split over several warehouses. Before
the wave job releases orders to picking it may re-solve the allocation of all unreleased
orders at once, using the stock they hold plus what is still free.

Cost model (what is minimised)
------------------------------
A *shipment* is a pair (order, warehouse) with at least one unit of the order allocated in
that warehouse. The cost of an order is::

    sum over its shipments of dist[o, w]   +   shipment_penalty_km * (shipments - 1)

i.e. a shipment costs its distance once, whatever the number of units in it (a parcel's cost
is dominated by the trip, not by its weight), and every shipment beyond the first costs an
extra ``shipment_penalty_km`` km-equivalent (a second box, a second label, an unhappy
customer). An order without lines costs 0. The objective is the sum over orders.

Written with ``c[o, w] = dist[o, w] + penalty`` this is ``sum c[o, w] * y[o, w] - penalty``
per order, where ``y[o, w]`` says whether o ships from w.

Constraints: every line is fully allocated; per (warehouse, sku) the units allocated by these
orders never exceed ``free + held``, where *held* is what these same orders hold there now (it
is released and re-reserved by the move); a disabled warehouse gets no new stock: a line may
keep at most what it already holds there (it may move it away).

Method
------
1. LP relaxation (GLOP) of the integer model::

       min  sum c[o,w] y[o,w] - penalty * n_orders
       s.t. sum_w z[i,w] = q[i]                     (every item covered)
            z[i,w] <= ub[i,w] * y[o,w]              (units only from a used warehouse)
            sum_{i: sku s} z[i,w] <= C[w,s]         (capacity)
            0 <= y <= 1, 0 <= z <= ub

   where an *item* is one sku of one order (lines of the same sku are merged) and
   ``ub[i,w] = min(q[i], C[w,s])`` (``min(held, C)`` at a disabled warehouse). Using ``ub``
   instead of ``q`` in the linking row is valid for integer solutions and tightens the LP.
   Only candidate columns are generated: per order the ``candidates_k`` cheapest warehouses
   that hold any of its skus plus the warehouses it uses now.

2. The reported lower bound is NOT the restricted LP's value (which would only bound the
   candidate-restricted problem). It is the Lagrangian dual function evaluated at the LP's
   duals over ALL (order, warehouse) pairs::

       LB = sum_i pi_i q_i - sum_{w,s} lam_ws C_ws - penalty * n_orders
            + sum_{o,w} min(0, c[o,w] + sum_{i in o} ub[i,w] * min(0, lam_{w,s_i} - pi_i))

   which is a lower bound of the full LP (hence of the integer optimum) for ANY ``lam >= 0``
   and any ``pi`` (weak duality: relax coverage and capacity, the rest splits per (o, w) and
   is minimised over y in [0, 1]). When no non-candidate column has a negative reduced cost
   it equals the full LP optimum; otherwise it is a little lower but still sound. It is
   never computed from primal values, so GLOP's tolerances cannot make it invalid.

3. An integer solution: orders whose LP solution is integral keep it; the others are
   inserted one by one into the remaining capacity with an exact per-order dynamic program
   (best set of warehouses when each item ships whole from one warehouse), falling back to a
   splitting fill. Then local search (numba): re-insert single orders, and 2-order ejection
   moves (order o takes stock at w from a holder o2 that re-inserts elsewhere). Only moves
   that strictly lower the cost and keep capacity are accepted.

4. Whatever happens the result is never worse than the current allocation: the current
   allocation is feasible by construction and is returned if nothing better is found, and
   orders whose new allocation is not cheaper than their old one are reverted when capacity
   allows, so the number of reservation moves stays small.
"""
from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from engine.errors import FieldViolation, ValidationError

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

# Orders with more distinct skus than this are only re-inserted as one single shipment (the
# exact per-order DP enumerates set partitions of the items, 3^L work).
MAX_DP_ITEMS = 10
_EPS = 1e-7


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
# numba kernels. A is the item x warehouse allocation, R the residual capacity [W, S].


@nb.njit(cache=True)
def _max_items(item_ptr):
    m = 1
    for o in range(item_ptr.shape[0] - 1):
        m = max(m, item_ptr[o + 1] - item_ptr[o])
    return m


@nb.njit(cache=True)
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


@nb.njit(cache=True)
def _best_whole(o, item_ptr, item_sku, item_qty, ub, cost, r, penalty,
                out_w, best, bestw, f, choice):
    """Cheapest assignment of order o into residual r with every item whole in one warehouse.

    Exact over that move set: for each warehouse the set of items it can take whole is a
    bitmask; the cheapest warehouse per item subset is propagated to all sub-subsets
    (sum-over-subsets), then a set-partition DP picks the cheapest cover. Returns the cost
    (inf when no such assignment exists) and writes the warehouse of item k to out_w[k].
    """
    i0 = item_ptr[o]
    n_it = item_ptr[o + 1] - i0
    n_wh = cost.shape[1]
    inf = np.inf
    if n_it == 0:
        return 0.0
    if n_it > MAX_DP_ITEMS:
        bw = -1
        bc = inf
        for w in range(n_wh):
            ok = True
            for k in range(n_it):
                i = i0 + k
                q = item_qty[i]
                if ub[i, w] < q or r[w, item_sku[i]] < q:
                    ok = False
                    break
            if ok and cost[o, w] < bc:
                bc = cost[o, w]
                bw = w
        if bw < 0:
            return inf
        for k in range(n_it):
            out_w[k] = bw
        return bc - penalty
    m_all = 1 << n_it
    for m in range(m_all):
        best[m] = inf
        bestw[m] = -1
    for w in range(n_wh):
        ok = 0
        for k in range(n_it):
            i = i0 + k
            q = item_qty[i]
            if ub[i, w] >= q and r[w, item_sku[i]] >= q:
                ok |= 1 << k
        if ok != 0 and cost[o, w] < best[ok]:
            best[ok] = cost[o, w]
            bestw[ok] = w
    for k in range(n_it):
        bit = 1 << k
        for m in range(m_all):
            if (m & bit) == 0 and best[m | bit] < best[m]:
                best[m] = best[m | bit]
                bestw[m] = bestw[m | bit]
    full = m_all - 1
    if n_it == 1:
        if best[full] == inf:
            return inf
        out_w[0] = bestw[full]
        return best[full] - penalty
    f[0] = 0.0
    for m in range(1, m_all):
        f[m] = inf
        low = m & (-m)
        rest = m ^ low
        s = rest
        while True:
            part = s | low
            bp = best[part]
            if bp < inf:
                v = bp + f[m ^ part]
                if v < f[m]:
                    f[m] = v
                    choice[m] = part
            if s == 0:
                break
            s = (s - 1) & rest
    if f[full] == inf:
        return inf
    m = full
    while m != 0:
        part = choice[m]
        w = bestw[part]
        for k in range(n_it):
            if (part >> k) & 1:
                out_w[k] = w
        m ^= part
    # two parts may have picked the same warehouse only if that never costs more; recount.
    total = 0.0
    for w in range(n_wh):
        for k in range(n_it):
            if out_w[k] == w:
                total += cost[o, w]
                break
    return total - penalty


@nb.njit(cache=True)
def _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty, order_w):
    """Allocate order o (currently empty in a) into r, splitting items, cheapest warehouses
    first. Returns the cost, or inf (and leaves a and r untouched) if it does not fit."""
    i0, i1 = item_ptr[o], item_ptr[o + 1]
    n_wh = cost.shape[1]
    for w in range(n_wh):
        order_w[w] = w
    # insertion sort of warehouses by cost (n_wh is small)
    for x in range(1, n_wh):
        y = order_w[x]
        j = x - 1
        while j >= 0 and cost[o, order_w[j]] > cost[o, y]:
            order_w[j + 1] = order_w[j]
            j -= 1
        order_w[j + 1] = y
    for i in range(i0, i1):
        avail = 0
        for w in range(n_wh):
            avail += min(ub[i, w], r[w, item_sku[i]])
        if avail < item_qty[i]:
            return np.inf
    for i in range(i0, i1):
        rem = item_qty[i]
        for x in range(n_wh):
            if rem == 0:
                break
            w = order_w[x]
            t = min(rem, ub[i, w], r[w, item_sku[i]])
            if t > 0:
                a[i, w] += t
                r[w, item_sku[i]] -= t
                rem -= t
    return _order_cost(o, item_ptr, a, cost, penalty)


@nb.njit(cache=True)
def _release(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] += a[i, w]


@nb.njit(cache=True)
def _take(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] -= a[i, w]


@nb.njit(cache=True)
def _set_whole(o, item_ptr, item_sku, item_qty, a, r, out_w):
    i0 = item_ptr[o]
    for i in range(i0, item_ptr[o + 1]):
        for w in range(a.shape[1]):
            a[i, w] = 0
        w = out_w[i - i0]
        a[i, w] = item_qty[i]
        r[w, item_sku[i]] -= item_qty[i]


@nb.njit(cache=True)
def _insert_orders(orders, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Insert the (empty) orders one by one, best whole assignment else a splitting fill.
    Returns the number of orders that did not fit (they stay empty)."""
    n_wh = cost.shape[1]
    sz = 1 << MAX_DP_ITEMS
    best = np.empty(sz)
    bestw = np.empty(sz, np.int64)
    f = np.empty(sz)
    choice = np.empty(sz, np.int64)
    out_w = np.empty(_max_items(item_ptr), np.int64)
    order_w = np.empty(n_wh, np.int64)
    failed = 0
    for o in orders:
        c = _best_whole(o, item_ptr, item_sku, item_qty, ub, cost, r, penalty,
                        out_w, best, bestw, f, choice)
        if c < np.inf:
            _set_whole(o, item_ptr, item_sku, item_qty, a, r, out_w)
        else:
            c = _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty, order_w)
            if c == np.inf:
                failed += 1
    return failed


@nb.njit(cache=True)
def _reinsert_pass(orders, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Move each order to its best whole-item assignment when that is strictly cheaper.
    Returns the total cost decrease."""
    sz = 1 << MAX_DP_ITEMS
    best = np.empty(sz)
    bestw = np.empty(sz, np.int64)
    f = np.empty(sz)
    choice = np.empty(sz, np.int64)
    out_w = np.empty(_max_items(item_ptr), np.int64)
    gain = 0.0
    for o in orders:
        c0 = _order_cost(o, item_ptr, a, cost, penalty)
        _release(o, item_ptr, item_sku, a, r)
        c1 = _best_whole(o, item_ptr, item_sku, item_qty, ub, cost, r, penalty,
                         out_w, best, bestw, f, choice)
        if c1 < c0 - 1e-9:
            _set_whole(o, item_ptr, item_sku, item_qty, a, r, out_w)
            gain += c0 - c1
        else:
            _take(o, item_ptr, item_sku, a, r)
    return gain


@nb.njit(cache=True)
def _eject_pass(orders, item_ptr, item_order, item_sku, item_qty, ub, cost, r, a, penalty,
                sku_item_ptr, sku_items, max_holders):
    """2-order ejection moves. For order o and a warehouse w that alone would be cheaper than
    o's current allocation but lacks stock of exactly one of o's skus, try each order o2
    holding that sku at w: release both, insert o (best whole), then o2 (best whole, else a
    splitting fill); keep it if the pair's cost strictly drops, else restore both.
    Returns the total cost decrease."""
    n_wh = cost.shape[1]
    sz = 1 << MAX_DP_ITEMS
    best = np.empty(sz)
    bestw = np.empty(sz, np.int64)
    f = np.empty(sz)
    choice = np.empty(sz, np.int64)
    out_w = np.empty(_max_items(item_ptr), np.int64)
    order_w = np.empty(n_wh, np.int64)
    max_it = _max_items(item_ptr)
    save_o = np.empty((max_it, n_wh), np.int64)
    save_o2 = np.empty((max_it, n_wh), np.int64)
    gain = 0.0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        if i1 == i0:
            continue
        c0 = _order_cost(o, item_ptr, a, cost, penalty)
        for w in range(n_wh):
            if cost[o, w] - penalty >= c0 - 1e-9:
                continue
            # which item of o is short at w (counting o's own holding there)?
            blocked = -1
            n_blocked = 0
            feasible = True
            for i in range(i0, i1):
                q = item_qty[i]
                if ub[i, w] < q:
                    feasible = False
                    break
                if r[w, item_sku[i]] + a[i, w] < q:
                    n_blocked += 1
                    blocked = i
            if not feasible or n_blocked != 1:
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
                    for ww in range(n_wh):
                        save_o[i - i0, ww] = a[i, ww]
                for i in range(j0, j1):
                    for ww in range(n_wh):
                        save_o2[i - j0, ww] = a[i, ww]
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for ww in range(n_wh):
                        a[i, ww] = 0
                for i in range(j0, j1):
                    for ww in range(n_wh):
                        a[i, ww] = 0
                ok = True
                c1o = _best_whole(o, item_ptr, item_sku, item_qty, ub, cost, r, penalty,
                                  out_w, best, bestw, f, choice)
                if c1o < np.inf:
                    _set_whole(o, item_ptr, item_sku, item_qty, a, r, out_w)
                else:
                    ok = False
                c12 = np.inf
                if ok:
                    c12 = _best_whole(o2, item_ptr, item_sku, item_qty, ub, cost, r, penalty,
                                      out_w, best, bestw, f, choice)
                    if c12 < np.inf:
                        _set_whole(o2, item_ptr, item_sku, item_qty, a, r, out_w)
                    else:
                        c12 = _fill_split(o2, item_ptr, item_sku, item_qty, ub, cost, r, a,
                                          penalty, order_w)
                        if c12 == np.inf:
                            ok = False
                if ok and c1o + c12 < c0o + c02 - 1e-9:
                    gain += c0o + c02 - c1o - c12
                    break
                # restore both orders
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for ww in range(n_wh):
                        a[i, ww] = save_o[i - i0, ww]
                for i in range(j0, j1):
                    for ww in range(n_wh):
                        a[i, ww] = save_o2[i - j0, ww]
                _take(o, item_ptr, item_sku, a, r)
                _take(o2, item_ptr, item_sku, a, r)
            c0 = _order_cost(o, item_ptr, a, cost, penalty)
    return gain


@nb.njit(cache=True)
def _revert_pass(orders, item_ptr, item_sku, cur, cost, r, a, penalty):
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
        c_new = _order_cost(o, item_ptr, a, cost, penalty)
        c_old = _order_cost(o, item_ptr, cur, cost, penalty)
        if c_new < c_old - 1e-9:
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
# LP


@dataclass
class _LpOut:
    status: str
    objective: float
    z_item: np.ndarray  # item of each z column
    z_wh: np.ndarray
    z_val: np.ndarray
    pi: np.ndarray  # float64[I] coverage duals
    lam: np.ndarray  # float64[W, S] capacity duals (>= 0)
    seconds: float


def _candidates(pr: _Prep, enabled: np.ndarray, k: int) -> np.ndarray:
    usable = _per_order_sum(pr.item_ptr, (pr.ub > 0).astype(np.int64)) > 0
    has_cur = _per_order_sum(pr.item_ptr, pr.cur) > 0
    masked = np.where(usable & enabled[None, :], pr.cost, np.inf)
    k = min(k, pr.n_wh)
    cand = np.zeros((pr.n, pr.n_wh), dtype=bool)
    if k > 0 and pr.n:
        idx = np.argpartition(masked, k - 1, axis=1)[:, :k]
        rows = np.arange(pr.n)[:, None]
        cand[rows, idx] = np.isfinite(masked[rows, idx])
    return cand | has_cur


def _solve_lp(pr: _Prep, cand: np.ndarray, penalty: float, time_limit: float,
              stop: StopFlag) -> _LpOut:
    from ortools.linear_solver.python import model_builder_helper as mbh

    t0 = time.perf_counter()
    n_items = len(pr.item_qty)
    n_it_order = np.diff(pr.item_ptr)
    zmask = cand[pr.item_order] & (pr.ub > 0)
    z_item, z_wh = np.nonzero(zmask)
    z_item = z_item.astype(np.int64)
    z_wh = z_wh.astype(np.int64)
    z_order = pr.item_order[z_item]
    z_ub = pr.ub[z_item, z_wh].astype(np.float64)
    single = n_it_order[z_order] == 1
    multi_orders = n_it_order > 1
    ymask = cand & multi_orders[:, None]
    y_o, y_w = np.nonzero(ymask)
    n_z, n_y = len(z_item), len(y_o)
    yidx = np.full((pr.n, pr.n_wh), -1, dtype=np.int64)
    yidx[y_o, y_w] = n_z + np.arange(n_y)

    h = mbh.ModelBuilderHelper()
    lb = np.zeros(n_z + n_y)
    ubv = np.concatenate([z_ub, np.ones(n_y)])
    h.add_var_array_with_bounds(lb, ubv, np.zeros(n_z + n_y, dtype=bool), "")
    # single-item orders: y = z / ub is implied, so the column carries the cost directly
    obj = np.concatenate([np.where(single, pr.cost[z_order, z_wh] / z_ub, 0.0),
                          pr.cost[y_o, y_w]])
    nz = np.flatnonzero(obj)
    h.set_objective_coefficients(nz.tolist(), obj[nz].tolist())
    n_active = int(np.count_nonzero(n_it_order))
    h.set_objective_offset(-penalty * n_active)

    # coverage rows: z columns are sorted by item (np.nonzero is row-major)
    zptr = np.searchsorted(z_item, np.arange(n_items + 1))
    qty = pr.item_qty.astype(np.float64)
    cover_rows = np.empty(n_items, dtype=np.int64)
    zl = list(range(n_z))
    for i in range(n_items):
        ct = h.add_linear_constraint()
        cover_rows[i] = ct
        a0, a1 = int(zptr[i]), int(zptr[i + 1])
        h.add_terms_to_constraint(ct, zl[a0:a1], [1.0] * (a1 - a0))
        h.set_constraint_lower_bound(ct, float(qty[i]))
        h.set_constraint_upper_bound(ct, float(qty[i]))
    # linking rows for multi-item orders: z - ub * y <= 0
    lk = np.flatnonzero(~single)
    lk_y = yidx[z_order[lk], z_wh[lk]].tolist()
    lk_c = (-z_ub[lk]).tolist()
    for z, yv, cv in zip(lk.tolist(), lk_y, lk_c):
        ct = h.add_linear_constraint()
        h.add_terms_to_constraint(ct, [z, yv], [1.0, cv])
        h.set_constraint_upper_bound(ct, 0.0)
    # capacity rows only where the columns could exceed the stock
    n_s = pr.cap.shape[1]
    key = z_wh * n_s + pr.item_sku[z_item]
    korder = np.argsort(key, kind="stable")
    ks = key[korder]
    gstart = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if n_z else np.zeros(0, np.int64)
    gend = np.r_[gstart[1:], n_z].astype(np.int64)
    gkey = ks[gstart]
    gsum = np.add.reduceat(z_ub[korder], gstart) if n_z else np.zeros(0)
    gcap = pr.cap.reshape(-1)[gkey].astype(np.float64)
    binding = np.flatnonzero(gsum > gcap + 0.5)
    cap_rows = np.empty(len(binding), dtype=np.int64)
    korder_l = korder.tolist()
    for j, g in enumerate(binding.tolist()):
        ct = h.add_linear_constraint()
        cap_rows[j] = ct
        a0, a1 = int(gstart[g]), int(gend[g])
        h.add_terms_to_constraint(ct, korder_l[a0:a1], [1.0] * (a1 - a0))
        h.set_constraint_upper_bound(ct, float(gcap[g]))
    t_build = time.perf_counter() - t0

    solver = mbh.ModelSolverHelper("glop")
    solver.set_time_limit_in_seconds(max(0.05, time_limit - t_build))
    # dual simplex suits this LP: few binding capacities, a good slack basis to start from
    solver.set_solver_specific_parameters("use_dual_simplex: true")
    done = threading.Event()
    watcher = None
    if stop is not None:
        def watch() -> None:
            while not done.wait(0.02):
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
    status = str(solver.status()).split(".")[-1]
    if not solver.has_solution():
        return _LpOut(status, float("nan"), z_item, z_wh, np.zeros(n_z), np.zeros(n_items),
                      np.zeros((pr.n_wh, n_s)), time.perf_counter() - t0)
    vals = np.asarray(solver.variable_values())
    duals = np.asarray(solver.dual_values())
    pi = duals[cover_rows] if n_items else np.zeros(0)
    lam = np.zeros(pr.n_wh * n_s)
    # GLOP's dual of a <= row in a minimisation is <= 0 (d objective / d rhs)
    lam[gkey[binding]] = np.maximum(0.0, -duals[cap_rows])
    return _LpOut(status, float(solver.objective_value()), z_item, z_wh, vals[:n_z], pi,
                  lam.reshape(pr.n_wh, n_s), time.perf_counter() - t0)


def _dual_bound(pr: _Prep, pi: np.ndarray, lam: np.ndarray, penalty: float) -> float:
    """Lagrangian dual function at (pi, lam >= 0): a valid lower bound (module docstring)."""
    if len(pr.item_qty) == 0:
        return 0.0
    lam_i = lam[:, pr.item_sku].T  # [I, W]
    t = pr.ub * np.minimum(0.0, lam_i - pi[:, None])
    rc = pr.cost + _per_order_sum(pr.item_ptr, t)
    active = np.diff(pr.item_ptr) > 0
    lb = (float(pi @ pr.item_qty) - float((lam * pr.cap).sum())
          - penalty * int(active.sum()) + float(np.minimum(0.0, rc[active]).sum()))
    return lb


def _trivial_bound(pr: _Prep, enabled: np.ndarray, dist: np.ndarray) -> float:
    """Every order ships at least once, from a warehouse it can use at all."""
    usable = _per_order_sum(pr.item_ptr, (pr.ub > 0).astype(np.int64)) > 0
    d = np.where(usable, dist, np.inf).min(axis=1, initial=np.inf)
    return float(d[np.isfinite(d)].sum())


# ---------------------------------------------------------------------------------------------
# driver


def _stopped(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _rows_from_items(p: ReallocationProblem, pr: _Prep, a: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split item allocations back onto lines; a line first keeps what it holds now, so that
    orders whose items did not change produce exactly their current rows."""
    n_lines = len(p.line_sku)
    cur_lw: dict[tuple[int, int], int] = {}
    for l_, w_, q_ in zip(p.cur_line.tolist(), p.cur_wh.tolist(), p.cur_qty.tolist()):
        cur_lw[(l_, w_)] = cur_lw.get((l_, w_), 0) + q_
    counts = np.bincount(pr.line_item, minlength=len(pr.item_qty))
    out_l: list[int] = []
    out_w: list[int] = []
    out_q: list[int] = []
    simple = counts == 1  # the common case: one line per item, rows are the item's rows
    simple_items = np.flatnonzero(simple)
    ii, ww = np.nonzero(a[simple_items] > 0)
    item_line = np.full(len(pr.item_qty), -1, dtype=np.int64)
    item_line[pr.line_item] = np.arange(n_lines)
    if len(ii):
        it = simple_items[ii]
        out_l.extend(item_line[it].tolist())
        out_w.extend(ww.tolist())
        out_q.extend(a[it, ww].tolist())
    lines_of_item: dict[int, list[int]] = {}
    for l_ in np.flatnonzero(~simple[pr.line_item]).tolist():
        lines_of_item.setdefault(int(pr.line_item[l_]), []).append(l_)
    for it, lines in lines_of_item.items():
        left = {int(w): int(a[it, w]) for w in np.flatnonzero(a[it] > 0)}
        need = {l_: int(p.line_qty[l_]) for l_ in lines}
        for l_ in lines:  # keep current rows first
            for w in list(left):
                t = min(need[l_], left[w], cur_lw.get((l_, w), 0))
                if t > 0:
                    out_l.append(l_), out_w.append(w), out_q.append(t)
                    need[l_] -= t
                    left[w] -= t
        for l_ in lines:
            for w in list(left):
                t = min(need[l_], left[w])
                if t > 0:
                    out_l.append(l_), out_w.append(w), out_q.append(t)
                    need[l_] -= t
                    left[w] -= t
    rl = np.asarray(out_l, dtype=np.int64)
    rw = np.asarray(out_w, dtype=np.int64)
    rq = np.asarray(out_q, dtype=np.int64)
    # merge duplicate (line, wh) rows and sort
    key = rl * p.n_warehouses + rw
    uk, inv = np.unique(key, return_inverse=True)
    q = np.zeros(len(uk), dtype=np.int64)
    np.add.at(q, inv, rq)
    return uk // p.n_warehouses, uk % p.n_warehouses, q


def _changed_orders(p: ReallocationProblem, line: np.ndarray, wh: np.ndarray,
                    qty: np.ndarray) -> np.ndarray:
    n = p.n_orders
    line_order = np.repeat(np.arange(n, dtype=np.int64), np.diff(p.line_ptr))
    n_wh = p.n_warehouses

    def keyed(l_: np.ndarray, w_: np.ndarray, q_: np.ndarray) -> np.ndarray:
        k = l_ * n_wh + w_
        uk, inv = np.unique(k, return_inverse=True)
        s = np.zeros(len(uk), dtype=np.int64)
        np.add.at(s, inv, q_)
        return np.stack([uk, s], axis=1)

    old = keyed(p.cur_line, p.cur_wh, p.cur_qty)
    new = keyed(line, wh, qty)
    changed = np.zeros(n, dtype=bool)
    # rows present on one side only, or with a different quantity
    both = np.concatenate([old, new])
    uniq, counts = np.unique(both, axis=0, return_counts=True)
    diff_rows = uniq[counts == 1, 0]
    changed[line_order[diff_rows // n_wh]] = True
    return changed


def reallocate(
    problem: ReallocationProblem,
    *,
    time_budget_s: float = 2.5,
    stop: StopFlag = None,
    candidates_k: int = 6,
    lp_share: float = 0.6,
    max_holders: int = 8,
    seed: int = 0,
    validate: bool = True,
) -> ReallocationResult:
    """Re-solve the allocation of the given orders globally (module docstring).

    ``time_budget_s`` covers everything (LP, rounding, local search; not numba compilation,
    see ``warmup``); at most ``lp_share`` of it goes to the LP. ``stop`` (an Event or a
    callable returning True) ends the search early; the best allocation found so far is
    returned, which is never worse than the current one. ``seed`` orders the local search.
    """
    t0 = time.perf_counter()
    deadline = t0 + time_budget_s
    if validate:
        problem.validate()
    p = problem
    penalty = float(p.shipment_penalty_km)
    pr = _prepare(p)
    n = pr.n
    a_cur = pr.cur.copy()
    cost_before = _total_cost(pr, a_cur, penalty)
    stats: dict[str, float] = {"orders": n, "items": len(pr.item_qty)}
    stopped = False

    lb = _trivial_bound(pr, p.enabled, p.dist)
    lp_status = "SKIPPED"
    a_lp: np.ndarray | None = None
    if n and len(pr.item_qty) and not _stopped(stop):
        cand = _candidates(pr, p.enabled, candidates_k)
        stats["lp_candidates_per_order"] = float(cand.sum()) / max(1, n)
        lp = _solve_lp(pr, cand, penalty, lp_share * time_budget_s, stop)
        lp_status = lp.status
        stats["lp_seconds"] = lp.seconds
        stats["lp_restricted_objective"] = lp.objective
        if np.isfinite(lp.objective):
            lb = max(lb, _dual_bound(pr, lp.pi, lp.lam, penalty))
            a_lp = _round_lp(pr, lp, penalty)
            stats["lp_fractional_orders"] = float(a_lp[1])
            a_lp = a_lp[0]
    stats["lower_bound_seconds"] = time.perf_counter() - t0

    # start from the better of the current allocation and the LP-guided one
    a = a_cur.copy()
    if a_lp is not None:
        c_lp = _total_cost(pr, a_lp, penalty)
        stats["cost_lp_rounded"] = c_lp
        if c_lp < cost_before:
            a = a_lp
    r = pr.cap - _usage(pr, a)
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(pr.item_ptr) > 0).astype(np.int64)
    chunk = 2000
    passes = 0
    while len(active) and not stopped:
        order = rng.permutation(active)
        gain = 0.0
        for phase in ("reinsert", "eject"):
            for c0 in range(0, len(order), chunk):
                if time.perf_counter() >= deadline or _stopped(stop):
                    stopped = True
                    break
                part = order[c0:c0 + chunk]
                if phase == "reinsert":
                    gain += _reinsert_pass(part, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub,
                                           pr.cost, r, a, penalty)
                else:
                    gain += _eject_pass(part, pr.item_ptr, pr.item_order, pr.item_sku,
                                        pr.item_qty, pr.ub, pr.cost, r, a, penalty,
                                        pr.sku_item_ptr, pr.sku_items, max_holders)
            if stopped:
                break
        passes += 1
        if gain <= 1e-9:
            break
    stats["search_passes"] = passes
    # never move a reservation for nothing
    reverted = _revert_pass(active, pr.item_ptr, pr.item_sku, pr.cur, pr.cost, r, a, penalty)
    stats["reverted"] = reverted
    assert np.all(r >= 0) and np.array_equal(r, pr.cap - _usage(pr, a))

    cost_after = _total_cost(pr, a, penalty)
    if cost_after > cost_before:  # cannot happen with the moves above; belt and braces
        a, cost_after = a_cur, cost_before
    line, wh, qty = _rows_from_items(p, pr, a)
    changed = _changed_orders(p, line, wh, qty)
    if not changed.any():
        line, wh, qty = p.cur_line.copy(), p.cur_wh.copy(), p.cur_qty.copy()
        cost_after = cost_before
    lb = min(lb, cost_after)  # float noise only; the bound is below any feasible cost
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


def _usage(pr: _Prep, a: np.ndarray) -> np.ndarray:
    u = np.zeros_like(pr.cap)
    ii, ww = np.nonzero(a)
    np.add.at(u, (ww, pr.item_sku[ii]), a[ii, ww])
    return u


def _round_lp(pr: _Prep, lp: _LpOut, penalty: float) -> tuple[np.ndarray, int]:
    """Keep the orders whose LP allocation is integral; insert the rest into what is left.
    Returns (allocation, number of re-inserted orders); falls back to the current allocation
    if some order does not fit."""
    z = lp.z_val
    frac_z = np.abs(z - np.round(z)) > 1e-6
    frac_order = np.zeros(pr.n, dtype=bool)
    frac_order[pr.item_order[lp.z_item[frac_z]]] = True
    a = np.zeros_like(pr.cur)
    keep = ~frac_order[pr.item_order[lp.z_item]]
    a[lp.z_item[keep], lp.z_wh[keep]] = np.round(z[keep]).astype(np.int64)
    # an order whose coverage is off (solver tolerance) is re-inserted too
    bad = _per_order_sum(pr.item_ptr, (a.sum(axis=1) != pr.item_qty).astype(np.int64)[:, None])
    frac_order |= bad[:, 0] > 0
    a[frac_order[pr.item_order]] = 0
    r = pr.cap - _usage(pr, a)
    if np.any(r < 0):  # integral columns over capacity: only with a broken LP answer
        return pr.cur.copy(), pr.n
    todo = np.flatnonzero(frac_order & (np.diff(pr.item_ptr) > 0)).astype(np.int64)
    # big orders first: they are the hardest to place whole
    todo = todo[np.argsort(-np.diff(pr.item_ptr)[todo], kind="stable")]
    failed = _insert_orders(todo, pr.item_ptr, pr.item_sku, pr.item_qty, pr.ub, pr.cost, r, a,
                            penalty)
    if failed:
        return pr.cur.copy(), len(todo)
    return a, len(todo)


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
    can apply them: applying the moves in list order, each as "reserve new, then release
    old", every reservation fits in the free stock left by the moves before it. Moves caught
    in a cycle (A needs what B holds and B what A holds) come last with release_first=True:
    release their old reservations, then reserve the new ones.
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
    """Compile (or load from cache) the numba kernels on a tiny problem, e.g. at startup."""
    prob = ReallocationProblem(
        line_ptr=np.array([0, 2, 3]), line_sku=np.array([0, 1, 0]),
        line_qty=np.array([1, 1, 1]), dist=np.array([[1.0, 5.0], [5.0, 1.0]]),
        free=np.array([[1, 1], [1, 1]]), cur_line=np.array([0, 1, 2]),
        cur_wh=np.array([1, 1, 0]), cur_qty=np.array([1, 1, 1]),
        enabled=np.array([True, True]),
    )
    reallocate(prob, time_budget_s=5.0)
