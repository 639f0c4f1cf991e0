"""Order batching: which orders share one picking cart (one route).

A cart takes at most ``max_orders`` orders and ``max_items`` items; an order that alone has
more than ``max_items`` items goes alone in its own batch. Every batch is routed exactly
(``engine.routing``, Ratliff & Rosenthal), and the plan reports the baseline a warehouse would
get by hand: first-come-first-served batches walked with S-shape routes.

Methods
* ``fcfs_batches`` — arrival order, a new cart whenever the next order does not fit.
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
* ``cp_sat_batches`` — exact for small waves: every feasible batch is enumerated with its
  exact route length and CP-SAT solves the set partitioning problem.
* ``plan_batches`` — the one entry point; returns a ``BatchPlan``.
"""
from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from oms.engine.errors import ValidationError
from oms.engine.models import Layout
from oms.engine.routing import exact_length_of, exact_route, route_lengths

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


#: a stop flag: a ``threading.Event`` or any zero-argument callable returning True to stop
StopFlag = threading.Event | Callable[[], bool] | None


@dataclass
class PickOrder:
    """One order's pick lines in one warehouse: line k is ``qty[k]`` items at
    (``aisles[k]``, ``slots[k]``)."""

    order_ref: int
    aisles: np.ndarray
    slots: np.ndarray
    qty: np.ndarray


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


@dataclass
class WaveArrays:
    """The wave in flat (CSR) arrays for the kernels: lines of order o are
    ``optr[o]:optr[o+1]``; ``ly`` is the y of each line's slot; ``mask`` is a 64-bit set of the
    aisles an order touches (aisle a -> bit a*64//A, exact when A <= 64)."""

    optr: np.ndarray
    la: np.ndarray
    ls: np.ndarray
    ly: np.ndarray
    items: np.ndarray
    mask: np.ndarray
    layout: Layout

    @property
    def n(self) -> int:
        return self.items.size


def wave_arrays(orders: Sequence[PickOrder], layout: Layout) -> WaveArrays:
    """Validate the orders and flatten them."""
    n = len(orders)
    sizes = np.fromiter((np.size(o.aisles) for o in orders), dtype=np.int64, count=n)
    optr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=optr[1:])
    if n:
        la = np.concatenate([np.asarray(o.aisles, dtype=np.int64).ravel() for o in orders])
        ls = np.concatenate([np.asarray(o.slots, dtype=np.int64).ravel() for o in orders])
        lq = np.concatenate([np.asarray(o.qty, dtype=np.int64).ravel() for o in orders])
    else:
        la = ls = lq = np.zeros(0, dtype=np.int64)
    if la.size != optr[-1] or ls.size != la.size or lq.size != la.size:
        raise ValidationError.one("orders", "aisles, slots and qty of an order differ in length")
    if np.any(sizes == 0):
        raise ValidationError.one("orders", f"order {int(np.argmin(sizes))} has no pick lines")
    if la.size:
        if la.min() < 0 or la.max() >= layout.aisles:
            raise ValidationError.one("orders.aisles", f"aisle outside 0..{layout.aisles - 1}")
        if ls.min() < 0 or ls.max() >= layout.slots_per_aisle:
            raise ValidationError.one("orders.slots",
                                      f"slot outside 0..{layout.slots_per_aisle - 1}")
        if lq.min() < 1:
            raise ValidationError.one("orders.qty", "quantities must be >= 1")
    items = np.add.reduceat(lq, optr[:-1]) if n else np.zeros(0, dtype=np.int64)
    bit = (la * 64) // max(layout.aisles, 64) if layout.aisles > 64 else la
    line_mask = np.left_shift(np.uint64(1), bit.astype(np.uint64))
    mask = (np.bitwise_or.reduceat(line_mask, optr[:-1]) if n
            else np.zeros(0, dtype=np.uint64))
    ly = (ls + 0.5) * float(layout.slot_length_m)
    return WaveArrays(optr, la, ls, ly, items.astype(np.int64), mask.astype(np.uint64), layout)


def _check_caps(max_orders: int, max_items: int) -> None:
    if max_orders < 1:
        raise ValidationError.one("max_orders", f"must be >= 1, got {max_orders}")
    if max_items < 1:
        raise ValidationError.one("max_items", f"must be >= 1, got {max_items}")


def _should_stop(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


# --------------------------------------------------------------------------------------------
# FCFS
# --------------------------------------------------------------------------------------------
def fcfs_batches(items: np.ndarray, max_orders: int, max_items: int) -> list[list[int]]:
    """First come, first served: orders in arrival order fill the cart until the next one
    would exceed a capacity; an order larger than ``max_items`` travels alone."""
    _check_caps(max_orders, max_items)
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_items = 0
    for o, q in enumerate(np.asarray(items, dtype=np.int64).tolist()):
        if q > max_items:
            if cur:
                batches.append(cur)
            batches.append([o])
            cur, cur_items = [], 0
            continue
        if cur and (len(cur) >= max_orders or cur_items + q > max_items):
            batches.append(cur)
            cur, cur_items = [], 0
        cur.append(o)
        cur_items += q
    if cur:
        batches.append(cur)
    return batches


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


def batch_lengths(w: WaveArrays, batches: Sequence[Sequence[int]],
                  method: str = "exact") -> np.ndarray:
    """Route length of every batch ("exact", "s_shape" or "largest_gap"), numba-parallel."""
    if not batches:
        return np.zeros(0)
    sizes = np.array([len(b) for b in batches], dtype=np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(batches), dtype=np.int64,
                       count=int(sizes.sum()))
    nl = w.optr[flat + 1] - w.optr[flat]
    start = np.cumsum(nl) - nl  # where each order's lines begin in the gathered array
    lines = np.repeat(w.optr[flat] - start, nl) + np.arange(int(nl.sum()))
    line_cum = np.concatenate([[0], np.cumsum(nl)])
    ptr = line_cum[np.concatenate([[0], np.cumsum(sizes)])].astype(np.int64)
    return route_lengths(ptr, w.la[lines], w.ls[lines], w.layout, method)


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
