"""Zone-skipping allocation: which warehouses ship which lines of a batch of orders.

Policy (docs/ARCHITECTURE.md, "Geography and zone skipping"), applied to each order strictly in batch order, each order seeing the stock that earlier orders of the batch left:

a. Candidates are the *enabled* warehouses, ranked by (distance to the ship-to, warehouse index).
   Disabled warehouses are never used.
b. If one warehouse can ship every line in full, the nearest such one ships it all -> FULL.
   Demand is per SKU: two lines of the same SKU add up, for feasibility and for taking.
c. Else the smallest k in 2..max_set_size for which some set S of k enabled warehouses covers
   the order (for every SKU, the stock summed over S >= the order's demand). Among the sets of
   that size the one with the smallest total distance wins; ties go to the lexicographically
   smallest sorted tuple of warehouse indices (sets are enumerated as ``combinations`` of
   ascending indices and only a strictly smaller total replaces the incumbent; totals are summed
   in ascending index order, so kernel and reference agree to the bit). The lines then take from
   the members of S, ranked by (distance, index), with the line-taking rule below -> SPLIT.
d. If no set of at most ``max_set_size`` warehouses covers the order but the whole enabled
   network does (only possible when the order needs more than ``max_set_size`` warehouses), the
   order falls back to greedy: the lines take from all enabled warehouses ranked by (distance,
   index) -> SPLIT, possibly from more than ``max_set_size`` warehouses. Bounding the exact
   search keeps the worst case at C(n_wh, max_set_size) subsets per order.
e. If the whole enabled network cannot cover the order: with ``allow_partial`` the lines take
   what exists from all enabled warehouses ranked by (distance, index) -> PARTIAL if anything was
   taken, else BACKORDERED; without it nothing is taken -> BACKORDERED (availability untouched).

Line-taking rule (c, d, e): lines go in order; a line is taken whole from the first ranked
warehouse that (after earlier lines of the order) holds all of it; only if none does is it filled
nearest first, as much as each warehouse holds. So a line is split only when no single warehouse
of the set holds all of it. (Pure nearest-first filling would split a line 2+1 across a near
warehouse holding 2 and a farther member holding 5.) Whatever the lines do, the per-SKU coverage
check of S guarantees that every line is filled in c and d.

``allocate`` runs a numba kernel; ``allocate_reference`` is a deliberately plain Python version of
the same policy that the tests compare against.

Kernel notes (they do not change the result): the single-warehouse scan only checks stock at a
warehouse nearer than the best feasible one found so far; the subset search drops warehouses
that hold none of the order's SKUs (at the minimal k such a warehouse is redundant in any covering
set, so it can never be in one), and prunes a branch when its partial distance already reaches
the best total, or when even the best remaining warehouses cannot close the shortfall of some SKU.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numba as nb
import numpy as np

from oms.engine.errors import ValidationError

__all__ = [
    "FULL",
    "SPLIT",
    "PARTIAL",
    "BACKORDERED",
    "STATUS_NAMES",
    "AllocationPlan",
    "allocate",
    "allocate_reference",
    "warmup",
]

FULL = 0
SPLIT = 1
PARTIAL = 2
BACKORDERED = 3
STATUS_NAMES = ("FULL", "SPLIT", "PARTIAL", "BACKORDERED")


@dataclass(frozen=True, eq=False)
class AllocationPlan:
    """Result of allocating one batch.

    ``status[o]`` is one of FULL/SPLIT/PARTIAL/BACKORDERED. Allocation rows are parallel arrays:
    row r takes ``alloc_qty[r]`` units of line ``alloc_line[r]`` (a global line index, i.e. an
    index into ``line_sku``/``line_qty``) of order ``alloc_order[r]`` from warehouse
    ``alloc_wh[r]``. Rows are grouped by order in batch order; within an order by line, then in
    the order the warehouses were drawn from. Every row has qty > 0.
    """

    status: np.ndarray  # int8[n_orders]
    n_warehouses_used: np.ndarray  # int64[n_orders]
    alloc_order: np.ndarray  # int64[m]
    alloc_line: np.ndarray  # int64[m]
    alloc_wh: np.ndarray  # int64[m]
    alloc_qty: np.ndarray  # int64[m]

    @property
    def n_orders(self) -> int:
        return int(self.status.shape[0])

    @property
    def n_rows(self) -> int:
        return int(self.alloc_qty.shape[0])

    def row_ptr(self) -> np.ndarray:
        """CSR offsets int64[n_orders+1]: the rows of order o are ``row_ptr[o]:row_ptr[o+1]``."""
        return np.searchsorted(self.alloc_order, np.arange(self.n_orders + 1)).astype(np.int64)


# --------------------------------------------------------------------------- input checks


def _int_array(name: str, x: np.ndarray, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
        raise ValidationError.one(name, f"must be an integer array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValidationError.one(name, f"must be {ndim}-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _bool_array(name: str, x: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValidationError.one(name, f"must be 1-D of length {n}, got shape {arr.shape}")
    if arr.dtype.kind not in "biu":
        raise ValidationError.one(name, f"must be a boolean array, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.bool_)


def _prepare(line_ptr, line_sku, line_qty, dist, available, enabled, allow_partial,
             max_set_size, inplace):
    """Check shapes and values, return C-contiguous arrays of the kernel's dtypes.

    ``available`` is copied unless ``inplace``; with ``inplace`` it must already be a writeable
    C-contiguous int64 array, since it is the array that gets decremented.
    """
    ptr = _int_array("line_ptr", line_ptr, 1)
    sku = _int_array("line_sku", line_sku, 1)
    qty = _int_array("line_qty", line_qty, 1)
    if ptr.shape[0] < 1 or ptr[0] != 0:
        raise ValidationError.one("line_ptr", "must start with 0 (length n_orders + 1)")
    n_orders = ptr.shape[0] - 1
    n_lines = sku.shape[0]
    if qty.shape[0] != n_lines:
        raise ValidationError.one("line_qty", f"length {qty.shape[0]} != line_sku length {n_lines}")
    if ptr[-1] != n_lines:
        raise ValidationError.one("line_ptr", f"must end with n_lines={n_lines}, got {ptr[-1]}")
    steps = np.diff(ptr)
    if np.any(steps <= 0):
        o = int(np.flatnonzero(steps <= 0)[0])
        raise ValidationError.one(f"line_ptr[{o}]", "every order needs at least one line "
                                  "(line_ptr must be strictly increasing)")
    if n_lines and int(qty.min()) <= 0:
        i = int(np.argmin(qty))
        raise ValidationError.one(f"line_qty[{i}]", f"must be > 0, got {int(qty[i])}")

    if inplace:
        if not (isinstance(available, np.ndarray) and available.dtype == np.int64
                and available.ndim == 2 and available.flags.c_contiguous
                and available.flags.writeable):
            raise ValidationError.one(
                "available", "inplace=True needs a writeable C-contiguous int64 2-D array")
        avail = available
    else:
        avail = _int_array("available", available, 2).copy()
    n_wh, n_skus = avail.shape
    if avail.size and int(avail.min()) < 0:
        w, s = np.unravel_index(int(np.argmin(avail)), avail.shape)
        raise ValidationError.one(f"available[{w}, {s}]", f"must be >= 0, got {int(avail[w, s])}")
    if n_lines and (int(sku.min()) < 0 or int(sku.max()) >= n_skus):
        bad = int(np.flatnonzero((sku < 0) | (sku >= n_skus))[0])
        raise ValidationError.one(f"line_sku[{bad}]",
                                  f"sku column {int(sku[bad])} out of range [0, {n_skus})")

    d = np.asarray(dist)
    if d.dtype.kind not in "fiu":
        raise ValidationError.one("dist", f"must be a float array, got dtype {d.dtype}")
    d = np.ascontiguousarray(d, dtype=np.float64)
    if d.shape != (n_orders, n_wh):
        raise ValidationError.one("dist", f"shape {d.shape} != (n_orders, n_wh) = "
                                  f"{(n_orders, n_wh)}")
    if d.size and not (np.all(np.isfinite(d)) and float(d.min()) >= 0.0):
        raise ValidationError.one("dist", "must be finite and >= 0")

    en = _bool_array("enabled", enabled, n_wh)
    part = _bool_array("allow_partial", allow_partial, n_orders)
    if not isinstance(max_set_size, (int, np.integer)) or isinstance(max_set_size, bool) \
            or max_set_size < 1:
        raise ValidationError.one("max_set_size", f"must be an integer >= 1, got {max_set_size!r}")
    return ptr, sku, qty, d, avail, en, part, int(max_set_size)


# --------------------------------------------------------------------------- numba kernel


@nb.njit(cache=True, nogil=True, inline="always")
def _before(dist_row, a, b) -> bool:
    """Warehouse a ranks before b: (distance, index) order."""
    da = dist_row[a]
    db = dist_row[b]
    return da < db or (da == db and a < b)


@nb.njit(cache=True, nogil=True, inline="always")
def _sort_by_distance(ws, n, dist_row):
    """Insertion sort of ws[:n] in place by (distance, index); n is small (<= n_wh)."""
    for i in range(1, n):
        w = ws[i]
        j = i - 1
        while j >= 0 and _before(dist_row, w, ws[j]):
            ws[j + 1] = ws[j]
            j -= 1
        ws[j + 1] = w


@nb.njit(cache=True, nogil=True)
def _take_lines(o, lo, hi, line_sku, line_qty, available, ws, nw,
                out_o, out_l, out_w, out_q, m):
    """Lines lo..hi-1, in order, take from the ranked warehouses ws[:nw]: the whole line from the
    first one holding all of it, else as much as each holds, in rank order, until done.
    Appends rows at out_*[m:], decrements ``available``; returns the new row count."""
    for i in range(lo, hi):
        s = line_sku[i]
        need = line_qty[i]
        for t in range(nw):
            w = ws[t]
            if available[w, s] >= need:
                available[w, s] -= need
                out_o[m] = o
                out_l[m] = i
                out_w[m] = w
                out_q[m] = need
                m += 1
                need = 0
                break
        for t in range(nw):
            if need == 0:
                break
            w = ws[t]
            v = available[w, s]
            if v > 0:
                got = v if v < need else need
                available[w, s] = v - got
                need -= got
                out_o[m] = o
                out_l[m] = i
                out_w[m] = w
                out_q[m] = got
                m += 1
    return m


@nb.njit(cache=True, nogil=True)
def _allocate_kernel(line_ptr, line_sku, line_qty, dist, available, enabled, allow_partial,
                     max_set_size):
    """The policy of the module docstring. Decrements ``available`` IN PLACE (the public
    wrapper hands it a copy unless asked not to). Returns (status, n_used, order, line, wh, qty)."""
    n_orders = line_ptr.shape[0] - 1
    n_lines = line_sku.shape[0]
    n_wh = available.shape[0]
    n_skus = available.shape[1]

    en = np.empty(n_wh, np.int64)  # enabled warehouses, ascending index
    n_en = 0
    for w in range(n_wh):
        if enabled[w]:
            en[n_en] = w
            n_en += 1

    max_l = 0
    for o in range(n_orders):
        nl = line_ptr[o + 1] - line_ptr[o]
        if nl > max_l:
            max_l = nl
    # A line yields at most one row per warehouse and each row takes >= 1 unit.
    cap = 0
    for i in range(n_lines):
        cap += line_qty[i] if line_qty[i] < n_en else n_en
    kmax_all = max_set_size if max_set_size < n_wh else n_wh

    status = np.empty(n_orders, np.int8)
    n_used = np.zeros(n_orders, np.int64)
    out_o = np.empty(cap, np.int64)
    out_l = np.empty(cap, np.int64)
    out_w = np.empty(cap, np.int64)
    out_q = np.empty(cap, np.int64)
    m = 0

    # Per-order scratch, allocated once per batch.
    sku_slot = np.full(n_skus, -1, np.int64)  # sku -> position in usku while aggregating
    usku = np.empty(max_l, np.int64)  # distinct skus of the order
    dem = np.empty(max_l, np.int64)  # summed demand per distinct sku
    tot = np.empty(max_l, np.int64)
    cand = np.empty(n_wh, np.int64)  # useful enabled warehouses, ascending index
    ranked = np.empty(n_wh, np.int64)  # same, by (distance, index)
    a = np.empty((max_l, n_wh), np.int64)  # min(stock, demand) per (sku, cand position)
    sufmax = np.empty((max_l, n_wh + 1), np.int64)  # max of a[j, p:] over p
    acc = np.empty((kmax_all + 1, max_l), np.int64)  # stock of the partial set per sku
    psum = np.empty(kmax_all + 1, np.float64)  # distance of the partial set
    pos = np.empty(kmax_all + 1, np.int64)
    cur = np.empty(kmax_all + 1, np.int64)
    best_set = np.empty(kmax_all + 1, np.int64)
    members = np.empty(kmax_all + 1, np.int64)
    wh_stamp = np.full(n_wh, -1, np.int64)

    for o in range(n_orders):
        lo = line_ptr[o]
        hi = line_ptr[o + 1]
        drow = dist[o]
        m0 = m

        r = 0
        for i in range(lo, hi):
            s = line_sku[i]
            slot = sku_slot[s]
            if slot < 0:
                sku_slot[s] = r
                usku[r] = s
                dem[r] = line_qty[i]
                r += 1
            else:
                dem[slot] += line_qty[i]
        for j in range(r):
            sku_slot[usku[j]] = -1

        # (b) nearest single warehouse that holds the whole order.
        best_w = -1
        best_d = np.inf
        for t in range(n_en):
            w = en[t]
            d = drow[w]
            if best_w < 0 or d < best_d:  # scanning in index order: ties keep the lower index
                ok = True
                for j in range(r):
                    if available[w, usku[j]] < dem[j]:
                        ok = False
                        break
                if ok:
                    best_w = w
                    best_d = d
        if best_w >= 0:
            for i in range(lo, hi):
                q = line_qty[i]
                available[best_w, line_sku[i]] -= q
                out_o[m] = o
                out_l[m] = i
                out_w[m] = best_w
                out_q[m] = q
                m += 1
            status[o] = FULL
            n_used[o] = 1
            continue

        # Useful candidates (hold some of the order's skus) and whole-network feasibility.
        mu = 0
        for j in range(r):
            tot[j] = 0
        for t in range(n_en):
            w = en[t]
            useful = False
            for j in range(r):
                v = available[w, usku[j]]
                if v > dem[j]:
                    v = dem[j]
                if v > 0:
                    useful = True
                a[j, mu] = v
            if useful:
                for j in range(r):
                    tot[j] += a[j, mu]
                cand[mu] = w
                mu += 1
        network_ok = True
        for j in range(r):
            if tot[j] < dem[j]:
                network_ok = False
                break

        if network_ok:
            # (c) smallest covering set, exact, by depth-first search in lexicographic order.
            for j in range(r):
                sufmax[j, mu] = 0
                for p in range(mu - 1, -1, -1):
                    v = a[j, p]
                    nxt = sufmax[j, p + 1]
                    sufmax[j, p] = v if v > nxt else nxt
            kmax = kmax_all if kmax_all < mu else mu
            found_k = 0
            for k in range(2, kmax + 1):
                best = np.inf
                depth = 0
                pos[0] = 0
                psum[0] = 0.0
                for j in range(r):
                    acc[0, j] = 0
                while depth >= 0:
                    p = pos[depth]
                    if p > mu - (k - depth):  # not enough candidates left for this depth
                        depth -= 1
                        if depth >= 0:
                            pos[depth] += 1
                        continue
                    tot_d = psum[depth] + drow[cand[p]]
                    if tot_d >= best:  # distances are >= 0, so the total only grows
                        pos[depth] += 1
                        continue
                    d1 = depth + 1
                    if d1 == k:
                        ok = True
                        for j in range(r):
                            if acc[depth, j] + a[j, p] < dem[j]:
                                ok = False
                                break
                        if ok:
                            best = tot_d
                            for t in range(depth):
                                best_set[t] = cur[t]
                            best_set[depth] = p
                        pos[depth] += 1
                        continue
                    rem = k - d1
                    ok = True
                    for j in range(r):
                        v = acc[depth, j] + a[j, p]
                        acc[d1, j] = v
                        if v + rem * sufmax[j, p + 1] < dem[j]:
                            ok = False
                            break
                    if not ok:
                        pos[depth] += 1
                        continue
                    cur[depth] = p
                    psum[d1] = tot_d
                    pos[d1] = p + 1
                    depth = d1
                if best < np.inf:
                    found_k = k
                    break
            if found_k > 0:
                for t in range(found_k):
                    members[t] = cand[best_set[t]]
                _sort_by_distance(members, found_k, drow)
                m = _take_lines(o, lo, hi, line_sku, line_qty, available, members, found_k,
                                 out_o, out_l, out_w, out_q, m)
            else:
                # (d) no set of <= max_set_size covers it: greedy over the whole network.
                for t in range(mu):
                    ranked[t] = cand[t]
                _sort_by_distance(ranked, mu, drow)
                m = _take_lines(o, lo, hi, line_sku, line_qty, available, ranked, mu,
                                 out_o, out_l, out_w, out_q, m)
            status[o] = SPLIT
        elif allow_partial[o]:
            # (e) take what exists, nearest first per line.
            for t in range(mu):
                ranked[t] = cand[t]
            _sort_by_distance(ranked, mu, drow)
            m = _take_lines(o, lo, hi, line_sku, line_qty, available, ranked, mu,
                             out_o, out_l, out_w, out_q, m)
            status[o] = PARTIAL if m > m0 else BACKORDERED
        else:
            status[o] = BACKORDERED

        used = 0
        for t in range(m0, m):
            w = out_w[t]
            if wh_stamp[w] != o:
                wh_stamp[w] = o
                used += 1
        n_used[o] = used

    return (status, n_used, out_o[:m].copy(), out_l[:m].copy(), out_w[:m].copy(),
            out_q[:m].copy())


# --------------------------------------------------------------------------- public API


def allocate(line_ptr: np.ndarray, line_sku: np.ndarray, line_qty: np.ndarray,
             dist: np.ndarray, available: np.ndarray, enabled: np.ndarray,
             allow_partial: np.ndarray, max_set_size: int = 4, *,
             inplace: bool = False, check: bool = True) -> AllocationPlan:
    """Allocate a batch of orders with the numba kernel (policy: module docstring).

    ``available`` (int64[n_wh, n_skus]) is copied and left untouched unless ``inplace=True``, in
    which case it is decremented by what the plan takes (it must then be a writeable
    C-contiguous int64 array). Raises ``ValidationError`` on malformed input. Releases the GIL
    while the kernel runs.

    ``check=False`` skips the input checks, for a caller that builds the arrays itself with
    the kernel's dtypes (C-contiguous int64, float64 ``dist``, bool masks): intake's one-order
    batches spent as long checking as allocating.
    """
    if check:
        args = _prepare(line_ptr, line_sku, line_qty, dist, available, enabled, allow_partial,
                        max_set_size, inplace)
    else:
        args = (line_ptr, line_sku, line_qty, dist, available if inplace else available.copy(),
                enabled, allow_partial, max_set_size)
    status, n_used, ao, al, aw, aq = _allocate_kernel(*args)
    return AllocationPlan(status, n_used, ao, al, aw, aq)


def allocate_reference(line_ptr: np.ndarray, line_sku: np.ndarray, line_qty: np.ndarray,
                       dist: np.ndarray, available: np.ndarray, enabled: np.ndarray,
                       allow_partial: np.ndarray, max_set_size: int = 4, *,
                       inplace: bool = False) -> AllocationPlan:
    """The same policy as ``allocate``, written as plainly as possible (lists, dicts,
    ``itertools.combinations``, no pruning) so that tests can trust it."""
    ptr_a, sku_a, qty_a, dist_a, avail_a, en_a, part_a, max_set_size = _prepare(
        line_ptr, line_sku, line_qty, dist, available, enabled, allow_partial, max_set_size,
        inplace)
    ptr = ptr_a.tolist()
    skus = sku_a.tolist()
    qtys = qty_a.tolist()
    dists = dist_a.tolist()
    avail = avail_a.tolist()
    partial_ok = part_a.tolist()
    enabled_ws = [w for w, on in enumerate(en_a.tolist()) if on]

    statuses: list[int] = []
    n_used: list[int] = []
    rows: list[tuple[int, int, int, int]] = []

    for o in range(len(ptr) - 1):
        lines = range(ptr[o], ptr[o + 1])
        d = dists[o]
        demand: dict[int, int] = {}
        for i in lines:
            demand[skus[i]] = demand.get(skus[i], 0) + qtys[i]

        def covers(ws) -> bool:
            return all(sum(avail[w][s] for w in ws) >= q for s, q in demand.items())

        def take(ws) -> int:
            taken = 0
            for i in lines:
                need = qtys[i]
                whole = next((w for w in ws if avail[w][skus[i]] >= need), None)
                if whole is not None:
                    avail[whole][skus[i]] -= need
                    taken += need
                    rows.append((o, i, whole, need))
                    continue
                for w in ws:
                    if need == 0:
                        break
                    got = min(need, avail[w][skus[i]])
                    if got > 0:
                        avail[w][skus[i]] -= got
                        need -= got
                        taken += got
                        rows.append((o, i, w, got))
            return taken

        ranked = sorted(enabled_ws, key=lambda w: (d[w], w))
        single = next((w for w in ranked if covers([w])), None)
        first_row = len(rows)
        if single is not None:
            take([single])
            status = FULL
        elif covers(enabled_ws):
            chosen = None
            for k in range(2, min(max_set_size, len(enabled_ws)) + 1):
                best = None
                for combo in combinations(enabled_ws, k):
                    if covers(combo):
                        total = 0.0
                        for w in combo:
                            total += d[w]
                        if best is None or total < best[0]:
                            best = (total, combo)
                if best is not None:
                    chosen = best[1]
                    break
            if chosen is not None:
                take(sorted(chosen, key=lambda w: (d[w], w)))
            else:
                take(ranked)
            status = SPLIT
        elif partial_ok[o]:
            status = PARTIAL if take(ranked) > 0 else BACKORDERED
        else:
            status = BACKORDERED
        statuses.append(status)
        n_used.append(len({row[2] for row in rows[first_row:]}))

    if inplace:
        available[...] = np.array(avail, dtype=np.int64).reshape(available.shape)

    def col(k: int) -> np.ndarray:
        return np.array([row[k] for row in rows], dtype=np.int64)

    return AllocationPlan(np.array(statuses, dtype=np.int8), np.array(n_used, dtype=np.int64),
                          col(0), col(1), col(2), col(3))


def warmup() -> None:
    """Compile (or load from the on-disk cache) the kernel on a tiny batch, so the first real
    request does not pay for it."""
    line_ptr = np.array([0, 1, 3], dtype=np.int64)
    line_sku = np.array([0, 0, 1], dtype=np.int64)
    line_qty = np.array([1, 2, 2], dtype=np.int64)
    dist = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    available = np.array([[1, 1], [0, 1], [2, 0]], dtype=np.int64)
    enabled = np.ones(3, dtype=np.bool_)
    allow_partial = np.zeros(2, dtype=np.bool_)
    allocate(line_ptr, line_sku, line_qty, dist, available, enabled, allow_partial)
