"""Heuristic batching: seed construction and local search, both scored by the exact router
(``engine.route_dp.exact_length_of``, called inside the numba kernels).

* ``seed_batches`` — seed construction (``method="savings"`` of ``plan_batches``). Seeds are
  taken in a fixed priority (default: oldest first — on random waves it measured better than
  the "most aisles first" seed rule, also offered, and old orders leave first); the open
  batch then repeatedly takes the unassigned order that lengthens its exact route least. Scoring
  every unassigned order with the exact router would be quadratic, so a cheap proxy ranks
  them first — the number of aisles the order would add, from 64-bit aisle masks — and only
  the ``candidates`` best-ranked (ties: oldest first) are scored exactly.
* ``local_search`` — moves an order to another batch or swaps two orders of two batches
  while the exact total falls, targets again pre-ranked by the aisle-mask proxy. Runs in
  chunks so it honours a time budget and a stop flag.

``engine.batching`` re-exports both.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from numba import njit

from oms.engine.batch_wave import (
    StopFlag,
    WaveArrays,
    _check_caps,
    _should_stop,
    batch_lengths,
    fcfs_batches,
)
from oms.engine.errors import ValidationError
from oms.engine.route_dp import exact_length_of

__all__ = [
    "SEED_RULES",
    "seed_batches",
    "local_search",
]


# --------------------------------------------------------------------------------------------
# numba helpers
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _popcount(x: np.uint64) -> int:
    c = 0
    while x:
        x &= x - np.uint64(1)
        c += 1
    return c


@njit(cache=True)
def _set_length(members: np.ndarray, cnt: int, skip: int, extra: int, optr: np.ndarray,
                la: np.ndarray, ly: np.ndarray, ta: np.ndarray, ty: np.ndarray,
                idx: np.ndarray, L: float, dx: float, has: np.ndarray, lo: np.ndarray,
                hi: np.ndarray, gp: np.ndarray) -> float:
    """Exact route length of orders members[:cnt] without order ``skip`` and with order
    ``extra`` (-1: none), using the work buffers ta/ty/idx."""
    m = 0
    for k in range(cnt + 1):
        if k < cnt:
            o = members[k]
            if o == skip:
                continue
        else:
            o = extra
            if o < 0:
                break
        for q in range(optr[o], optr[o + 1]):
            ta[m] = la[q]
            ty[m] = ly[q]
            idx[m] = m
            m += 1
    return exact_length_of(ta, ty, idx, m, L, dx, has, lo, hi, gp)


@njit(cache=True)
def _route_workspace(optr: np.ndarray, n: int, max_orders: int, n_aisles: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                np.ndarray, np.ndarray]:
    """Work buffers of _set_length for routes of up to max_orders + 1 of the first n orders:
    ta/ty/idx sized for that many of the longest order's lines, has/lo/hi/gp per aisle."""
    maxl = 0
    for o in range(n):
        maxl = max(maxl, optr[o + 1] - optr[o])
    cap = (max_orders + 1) * maxl
    return (np.empty(cap, dtype=np.int64), np.empty(cap), np.empty(cap, dtype=np.int64),
            np.zeros(n_aisles, dtype=np.bool_), np.zeros(n_aisles), np.zeros(n_aisles),
            np.zeros(n_aisles))


# --------------------------------------------------------------------------------------------
# seed construction
# --------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _seed_kernel(optr: np.ndarray, la: np.ndarray, ly: np.ndarray, items: np.ndarray,
                 omask: np.ndarray, seed_order: np.ndarray, seed_pos: int,
                 assigned: np.ndarray, batch_of: np.ndarray, nb: int, max_orders: int,
                 max_items: int, n_aisles: int, L: float, dx: float, n_cand: int,
                 max_new: int) -> tuple[int, int]:
    """Build up to ``max_new`` batches; returns (batches so far, next seed position)."""
    n = items.shape[0]
    pool = np.empty(n, dtype=np.int64)  # unassigned orders, arrival order
    npool = 0
    for o in range(n):
        if not assigned[o]:
            pool[npool] = o
            npool += 1
    ta, ty, idx, has, lo, hi, gp = _route_workspace(optr, n, max_orders, n_aisles)
    members = np.empty(max_orders, dtype=np.int64)
    newc = np.empty(n, dtype=np.int64)
    hist = np.zeros(66, dtype=np.int64)
    cand = np.empty(max(n_cand, 1), dtype=np.int64)
    built = 0
    while built < max_new:
        while seed_pos < n and assigned[seed_order[seed_pos]]:
            seed_pos += 1
        if seed_pos >= n:
            break
        s = seed_order[seed_pos]
        assigned[s] = True
        batch_of[s] = nb
        members[0] = s
        cnt = 1
        bitems = items[s]
        bmask = omask[s]
        while cnt < max_orders and bitems < max_items:
            # rank unassigned orders that fit by the number of aisles they would add
            for t in range(66):
                hist[t] = 0
            for p in range(npool):
                o = pool[p]
                if assigned[o] or bitems + items[o] > max_items:
                    newc[p] = -1
                    continue
                c = _popcount(omask[o] & ~bmask)
                newc[p] = c
                hist[c] += 1
            thr = -1
            acc = 0
            for t in range(66):
                acc += hist[t]
                if acc >= n_cand:
                    thr = t
                    break
            if acc == 0:
                break
            if thr < 0:
                thr = 65
            nc = 0
            for p in range(npool):
                if newc[p] >= 0 and newc[p] < thr:
                    cand[nc] = pool[p]
                    nc += 1
            for p in range(npool):
                if nc >= n_cand:
                    break
                if newc[p] == thr:
                    cand[nc] = pool[p]
                    nc += 1
            # exact increase of the route for each candidate; ties -> oldest
            best = 1e300
            bo = -1
            for c in range(nc):
                v = _set_length(members, cnt, -1, cand[c], optr, la, ly, ta, ty, idx, L, dx,
                                has, lo, hi, gp)
                if v < best or (v == best and cand[c] < bo):
                    best = v
                    bo = cand[c]
            members[cnt] = bo
            cnt += 1
            assigned[bo] = True
            batch_of[bo] = nb
            bitems += items[bo]
            bmask |= omask[bo]
        nb += 1
        built += 1
        # drop assigned orders from the pool so later scans stay short
        k = 0
        for p in range(npool):
            if not assigned[pool[p]]:
                pool[k] = pool[p]
                k += 1
        npool = k
    return nb, seed_pos


SEED_RULES = ("fcfs", "aisles", "far")


def _seed_priority(w: WaveArrays, rule: str) -> np.ndarray:
    """Order in which orders become seeds: "fcfs" = oldest first (measured best on random
    waves, and the oldest orders leave first); "aisles" = most aisles first (de Koster's
    rule), then farthest aisle; "far" = farthest aisle first. Ties: oldest first."""
    n = w.n
    arrival = np.arange(n)
    if rule == "fcfs":
        return arrival.astype(np.int64)
    far = np.maximum.reduceat(w.la, w.optr[:-1]) if n else np.zeros(0, np.int64)
    if rule == "aisles":
        return np.lexsort((arrival, -far, -np.bitwise_count(w.mask))).astype(np.int64)
    if rule == "far":
        return np.lexsort((arrival, -far)).astype(np.int64)
    raise ValidationError.one("seed_rule", f"unknown seed rule {rule!r}")


def seed_batches(w: WaveArrays, max_orders: int, max_items: int, *, candidates: int = 32,
                 seed_rule: str = "fcfs", time_budget_s: float | None = None,
                 stop: StopFlag = None) -> list[list[int]]:
    """Seed construction (see module doc). If the time budget or the stop flag ends it early,
    the orders not yet batched are batched first-come-first-served, so the result is always
    a complete, feasible batching."""
    _check_caps(max_orders, max_items)
    n = w.n
    if n == 0:
        return []
    t_end = None if time_budget_s is None else time.perf_counter() + time_budget_s
    order = _seed_priority(w, seed_rule)
    assigned = np.zeros(n, dtype=np.bool_)
    batch_of = np.full(n, -1, dtype=np.int64)
    nb, pos = 0, 0
    L, dx = float(w.layout.length_m), float(w.layout.aisle_spacing_m)
    # chunks of batches, so that the budget and the stop flag are looked at regularly
    chunk = 64
    while pos < n:
        if _should_stop(stop) or (t_end is not None and time.perf_counter() > t_end):
            break
        t0 = time.perf_counter()
        nb, pos = _seed_kernel(w.optr, w.la, w.ly, w.items, w.mask, order, pos, assigned,
                               batch_of, nb, max_orders, max_items, w.layout.aisles, L, dx,
                               candidates, chunk)
        # aim at ~50 ms per kernel call
        dt = time.perf_counter() - t0
        chunk = int(min(4096, max(8, chunk * (0.05 / max(dt, 1e-4)))))
    batches: list[list[int]] = [[] for _ in range(nb)]
    for o, b in enumerate(batch_of.tolist()):
        if b >= 0:
            batches[b].append(o)
    rest = np.flatnonzero(~assigned)
    if rest.size:
        for grp in fcfs_batches(w.items[rest], max_orders, max_items):
            batches.append([int(rest[i]) for i in grp])
    return batches


# --------------------------------------------------------------------------------------------
# local search
# --------------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _ls_kernel(optr: np.ndarray, la: np.ndarray, ly: np.ndarray, items: np.ndarray,
               omask: np.ndarray, solo: np.ndarray, members: np.ndarray,
               mcount: np.ndarray, batch_of: np.ndarray, blen: np.ndarray, bitems: np.ndarray,
               bmask: np.ndarray, max_orders: int, max_items: int, n_aisles: int, L: float,
               dx: float, todo: np.ndarray, start: int, end: int,
               n_targets: int) -> tuple[int, float]:
    """For each order todo[start:end]: best improving move (to another batch) or swap (with
    an order of another batch) among the ``n_targets`` batches whose aisle masks are closest
    to the order's; applied at once. Returns (number applied, total change in metres)."""
    nbt = mcount.shape[0]
    ta, ty, idx, has, lo, hi, gp = _route_workspace(optr, items.shape[0], members.shape[1],
                                                    n_aisles)
    tgt = np.empty(n_targets, dtype=np.int64)
    tsc = np.empty(n_targets, dtype=np.int64)
    applied = 0
    gain = 0.0
    for ti in range(start, end):
        o = todo[ti]
        b = batch_of[o]
        if items[o] > max_items:
            continue  # travels alone, nothing to do
        # targets: batches adding the fewest aisles for o
        nt = 0
        for j in range(nbt):
            if j == b or mcount[j] == 0:
                continue
            sc = _popcount(omask[o] & ~bmask[j])
            if nt < n_targets:
                k = nt
                nt += 1
            elif sc < tsc[nt - 1]:
                k = nt - 1
            else:
                continue
            while k > 0 and tsc[k - 1] > sc:
                tsc[k] = tsc[k - 1]
                tgt[k] = tgt[k - 1]
                k -= 1
            tsc[k] = sc
            tgt[k] = j
        rem = _set_length(members[b], mcount[b], o, -1, optr, la, ly, ta, ty, idx, L, dx,
                          has, lo, hi, gp)
        best = -1e-9
        bj = -1
        bp = -1
        bl_b = 0.0
        bl_j = 0.0
        for t in range(nt):
            j = tgt[t]
            base = blen[b] + blen[j]
            # move o to j
            if mcount[j] < max_orders and bitems[j] + items[o] <= max_items:
                vj = _set_length(members[j], mcount[j], -1, o, optr, la, ly, ta, ty, idx, L,
                                 dx, has, lo, hi, gp)
                d = rem + vj - base
                if d < best:
                    best, bj, bp, bl_b, bl_j = d, j, -1, rem, vj
            # swap o with p of j
            for k in range(mcount[j]):
                p = members[j, k]
                if items[p] > max_items:
                    continue
                if mcount[b] > 1 and bitems[b] - items[o] + items[p] > max_items:
                    continue
                if mcount[j] > 1 and bitems[j] - items[p] + items[o] > max_items:
                    continue
                vb = _set_length(members[b], mcount[b], o, p, optr, la, ly, ta, ty, idx, L,
                                 dx, has, lo, hi, gp)
                # a route through o is at least o's own route: skip swaps that can't win
                if vb + solo[o] - base >= best:
                    continue
                vj = _set_length(members[j], mcount[j], p, o, optr, la, ly, ta, ty, idx, L,
                                 dx, has, lo, hi, gp)
                d = vb + vj - base
                if d < best:
                    best, bj, bp, bl_b, bl_j = d, j, p, vb, vj
        if bj < 0:
            continue
        # apply: remove o from b (and put p there), add o to j (removing p)
        for k in range(mcount[b]):
            if members[b, k] == o:
                if bp >= 0:
                    members[b, k] = bp
                else:
                    members[b, k] = members[b, mcount[b] - 1]
                    mcount[b] -= 1
                break
        if bp >= 0:
            for k in range(mcount[bj]):
                if members[bj, k] == bp:
                    members[bj, k] = o
                    break
            batch_of[bp] = b
            bitems[b] += items[bp] - items[o]
            bitems[bj] += items[o] - items[bp]
        else:
            members[bj, mcount[bj]] = o
            mcount[bj] += 1
            bitems[b] -= items[o]
            bitems[bj] += items[o]
        batch_of[o] = bj
        blen[b] = bl_b
        blen[bj] = bl_j
        for jj in (b, bj):
            mk = np.uint64(0)
            for k in range(mcount[jj]):
                mk |= omask[members[jj, k]]
            bmask[jj] = mk
        applied += 1
        gain += best
    return applied, gain


@njit(cache=True, nogil=True)
def _removal_savings(optr: np.ndarray, la: np.ndarray, ly: np.ndarray, members: np.ndarray,
                     mcount: np.ndarray, blen: np.ndarray, n_orders: int, n_aisles: int,
                     L: float, dx: float) -> np.ndarray:
    """How much each order lengthens its batch's route (its batch without it is shorter by
    this much): orders that fit worst are tried first by the local search."""
    out = np.zeros(n_orders)
    ta, ty, idx, has, lo, hi, gp = _route_workspace(optr, n_orders, members.shape[1],
                                                    n_aisles)
    for b in range(mcount.shape[0]):
        for k in range(mcount[b]):
            o = members[b, k]
            out[o] = blen[b] - _set_length(members[b], mcount[b], o, -1, optr, la, ly, ta, ty,
                                           idx, L, dx, has, lo, hi, gp)
    return out


def local_search(w: WaveArrays, batches: Sequence[Sequence[int]], max_orders: int,
                 max_items: int, *, time_budget_s: float | None = None, stop: StopFlag = None,
                 targets: int = 8, max_passes: int = 20) -> list[list[int]]:
    """Improve a feasible batching by moves and swaps (see ``_ls_kernel``) until a whole pass
    finds nothing, ``max_passes`` passes ran, the time budget is spent or ``stop`` is set.
    Each pass visits the orders that cost their batch most first. Empty batches vanish."""
    _check_caps(max_orders, max_items)
    if len(batches) < 2:
        return [list(b) for b in batches]
    t_end = None if time_budget_s is None else time.perf_counter() + time_budget_s
    nb = len(batches)
    width = max(max_orders, max(len(b) for b in batches))
    members = np.full((nb, width), -1, dtype=np.int64)
    mcount = np.zeros(nb, dtype=np.int64)
    batch_of = np.full(w.n, -1, dtype=np.int64)
    for j, b in enumerate(batches):
        members[j, :len(b)] = b
        mcount[j] = len(b)
        batch_of[list(b)] = j
    blen = batch_lengths(w, batches)
    bitems = np.array([int(w.items[list(b)].sum()) for b in batches], dtype=np.int64)
    bmask = np.array([np.bitwise_or.reduce(w.mask[list(b)]) for b in batches], dtype=np.uint64)
    L, dx = float(w.layout.length_m), float(w.layout.aisle_spacing_m)
    solo = batch_lengths(w, [[o] for o in range(w.n)])
    for _ in range(max_passes):
        sav = _removal_savings(w.optr, w.la, w.ly, members, mcount, blen, w.n, w.layout.aisles,
                               L, dx)
        todo = np.argsort(-sav, kind="stable").astype(np.int64)
        applied = 0
        pos, chunk = 0, 128
        stopped = False
        while pos < todo.size:
            if _should_stop(stop) or (t_end is not None and time.perf_counter() > t_end):
                stopped = True
                break
            t0 = time.perf_counter()
            end = min(todo.size, pos + chunk)
            a, _ = _ls_kernel(w.optr, w.la, w.ly, w.items, w.mask, solo, members, mcount,
                              batch_of, blen, bitems, bmask, max_orders, max_items,
                              w.layout.aisles, L, dx, todo, pos, end, targets)
            applied += a
            pos = end
            dt = time.perf_counter() - t0
            chunk = int(min(8192, max(16, chunk * (0.05 / max(dt, 1e-4)))))
        if stopped or applied == 0:
            break
    return [sorted(members[j, :mcount[j]].tolist()) for j in range(nb) if mcount[j] > 0]
