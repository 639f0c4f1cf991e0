"""The driver: pricing, column generation, rounding, local search and polish within a time
budget; and the kernel warm-up."""
from __future__ import annotations

import time

import numpy as np
from oms.engine.reallocation.dp_kernels import _price_all
from oms.engine.reallocation.master import (
    _lower_bound,
    _Master,
    _polish_cpsat,
    _Pool,
    _solve_master,
)
from oms.engine.reallocation.prep import (
    _per_order_sum,
    _Prep,
    _prepare,
    _total_cost,
    _usage,
)
from oms.engine.reallocation.problem import (
    ReallocationProblem,
    ReallocationResult,
    ReallocationStatus,
    StopFlag,
    _stopped,
)
from oms.engine.reallocation.search_kernels import _eject, _improve, _repair, _revert


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
    """Re-solve the allocation of the given orders globally (package docstring).

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
        may = p.may_take()
        for it, lines in lines_of_item.items():
            # disabled (or not allowed) warehouses first: there an item holds at most what its
            # lines hold now, and dealing those units back line by line gives no line a new
            # row there
            may_o = may[pr.item_order[it]]
            ws = sorted(np.flatnonzero(a[it] > 0).tolist(), key=lambda w: bool(may_o[w]))
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
