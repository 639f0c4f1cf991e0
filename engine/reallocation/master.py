"""Pattern pool, master LP (column generation, GLOP) and the CP-SAT polish."""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from oms.engine.reallocation.prep import _Prep, _usage
from oms.engine.reallocation.problem import StopFlag, _stopped
from ortools.linear_solver.python import model_builder_helper as mbh
from ortools.sat.python import cp_model

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
    """LB(lam) of the package docstring from the per-order pricing values."""
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
