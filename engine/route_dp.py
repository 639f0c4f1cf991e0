"""Exact pick routes: the Ratliff & Rosenthal (1983) dynamic program behind
``engine.routing.exact_route`` (geometry: docs/ARCHITECTURE.md, "Warehouse geometry").

Its states are the equivalence classes of partial tour subgraphs: for the front node a_j and
the back node b_j of the current aisle, whether each has degree zero / odd / even>0 and whether
they lie in one or two components (7 classes, incl. "nothing yet" and "tour closed"). Each
aisle adds one of six vertical configurations (none, traverse once, traverse twice, return
from the front, return from the back, return from both sides leaving the largest gap); each
pair of neighbouring aisles adds 0/1/2 copies of the front and back cross-aisle edges. The
transition tables are not typed in by hand: they are derived at import by simulating each
step on a four-node union-find (``_build_tables``), which is easy to check by reading.
A length-only copy with the same transitions written out on scalars (``_rr_length_fast``)
serves batching, which scores hundreds of thousands of candidate batches.
The optimal subgraph is rebuilt by backtracking and its Euler circuit from the depot gives
the visiting order. Time is O(n log n + A) per route.

All kernels are numba ``njit(cache=True)`` (``_exact_route_kernel``, called from Python, also
``nogil``); ``engine.routing`` validates input and re-exports ``RR_TABLES`` and
``exact_length_of`` (the allocation-free length for other numba kernels).
"""
from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "RR_TABLES",
    "exact_length_of",
]

_INF = 1.0e300

# --------------------------------------------------------------------------------------------
# Ratliff-Rosenthal equivalence classes and their transition tables
# --------------------------------------------------------------------------------------------
# Degree label of a frontier node: 0 = not in the subgraph, 1 = odd degree, 2 = even > 0.
# A state is (label of a_j, label of b_j, components) with components: 0 = nothing built yet,
# 1 = every present frontier node is in one component, 2 = a_j and b_j in different
# components, 3 = the tour is closed (one finished component, frontier empty).
_STATES: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),  # 0: EMPTY
    (2, 0, 1),  # 1: only a_j, even
    (0, 2, 1),  # 2: only b_j, even
    (1, 1, 1),  # 3: both odd, connected
    (2, 2, 1),  # 4: both even, connected
    (2, 2, 2),  # 5: both even, two components
    (0, 0, 3),  # 6: CLOSED
)
N_STATES = len(_STATES)
S_EMPTY, S_CLOSED = 0, 6

# Vertical configurations of one aisle: (added degree at a, added degree at b, links a-b).
CFG_NONE, CFG_SINGLE, CFG_DOUBLE, CFG_FRONT, CFG_BACK, CFG_GAP = range(6)
_CFG_EFFECT: tuple[tuple[int, int, bool], ...] = (
    (0, 0, False),  # NONE: aisle unused (only when it holds no pick)
    (1, 1, True),   # SINGLE: traversed once
    (2, 2, True),   # DOUBLE: traversed twice
    (2, 0, False),  # FRONT: entered from the front up to the farthest pick and back
    (0, 2, False),  # BACK: entered from the back down to the nearest pick and back
    (2, 2, False),  # GAP: from both ends, the largest gap between two picks left out
)
N_CFG = len(_CFG_EFFECT)


def _add_degree(label: int, d: int) -> int:
    if d == 0:
        return label
    parity = (1 if label == 1 else 0) + d
    return 1 if parity % 2 else 2


def _encode(pa: int, pb: int, comps: int) -> int:
    try:
        return _STATES.index((pa, pb, comps))
    except ValueError:
        return -1


def _aisle_step(state: int, cfg: int) -> int:
    """New class after adding configuration ``cfg`` to aisle j in class ``state``; -1 if the
    result is not a class of any partial tour subgraph."""
    if state == S_CLOSED:
        return S_CLOSED if cfg == CFG_NONE else -1
    pa, pb, comps = _STATES[state]
    da, db, link = _CFG_EFFECT[cfg]
    na, nb = _add_degree(pa, da), _add_degree(pb, db)
    if na and nb:
        connected = link or (comps == 1 and pa != 0 and pb != 0)
        return _encode(na, nb, 1 if connected else 2)
    if na or nb:
        return _encode(na, nb, 1)
    return S_EMPTY


def _cross_step(state: int, f: int, g: int, leaves_depot: bool) -> int:
    """New class at aisle j+1 after adding f front and g back cross-aisle edges between aisles
    j and j+1 (f, g in 0..2). a_j and b_j leave the frontier, so their degree must now be even;
    if j = 0, a_j is the depot and must be in the tour. A component that does not reach aisle
    j+1 can never be joined again: allowed only if it is the whole tour (-> CLOSED)."""
    if state == S_CLOSED:
        return S_CLOSED if f == 0 and g == 0 else -1
    pa, pb, comps = _STATES[state]
    fa, fb = _add_degree(pa, f), _add_degree(pb, g)
    if fa == 1 or fb == 1:
        return -1
    if leaves_depot and fa == 0:
        return -1
    # union-find over a=0, b=1, a'=2, b'=3
    parent = [0, 1, 2, 3]

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    def union(x: int, y: int) -> None:
        parent[find(x)] = find(y)

    present = [fa != 0, fb != 0, f != 0, g != 0]
    if comps == 1 and pa and pb:
        union(0, 1)
    if f:
        union(0, 2)
    if g:
        union(1, 3)
    roots = {find(x) for x in range(4) if present[x]}
    frontier_roots = {find(x) for x in (2, 3) if present[x]}
    if not roots:
        return S_EMPTY
    if not frontier_roots:
        return S_CLOSED if len(roots) == 1 else -1
    if roots - frontier_roots:
        return -1  # a component is left behind while the tour goes on: disconnected
    na = 0 if f == 0 else (1 if f % 2 else 2)
    nb = 0 if g == 0 else (1 if g % 2 else 2)
    if na and nb:
        return _encode(na, nb, 1 if find(2) == find(3) else 2)
    return _encode(na, nb, 1)


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """The two transition tables as compact lists of the valid transitions only, which keeps
    the DP's inner loops free of dead branches (17 of 63 cross-aisle combinations are valid).

    aisle list: rows (state, cfg, new state); cross list [leaves_depot]: rows (state, f, g,
    new state), padded with state -1."""
    aisle_rows = [(s, c, _aisle_step(s, c)) for s in range(N_STATES) for c in range(N_CFG)]
    aisle_l = np.array([r for r in aisle_rows if r[2] >= 0], dtype=np.int64)
    cross_l = np.full((2, N_STATES * 9, 4), -1, dtype=np.int64)
    for dep in range(2):
        rows = [(s, f, g, _cross_step(s, f, g, bool(dep)))
                for s in range(N_STATES) for f in range(3) for g in range(3)]
        rows = [r for r in rows if r[3] >= 0]
        cross_l[dep, :len(rows)] = rows
    return aisle_l, cross_l


#: (aisle transitions rows (s, cfg, s'), cross transitions [leaves_depot] rows (s, f, g, s'))
RR_TABLES: tuple[np.ndarray, np.ndarray] = _build_tables()
_AISLE_T, _CROSS_T = RR_TABLES


# --------------------------------------------------------------------------------------------
# numba kernels
# --------------------------------------------------------------------------------------------
@njit(cache=True)
def _sort_by_aisle_y(a: np.ndarray, y: np.ndarray, idx: np.ndarray, n: int) -> None:
    """Insertion sort of idx[:n] by (a, y). Batches hold a few dozen picks, where this beats
    allocating for np.lexsort; large inputs go through argsort in the caller."""
    for i in range(1, n):
        k = idx[i]
        ak, yk = a[k], y[k]
        j = i - 1
        while j >= 0 and (a[idx[j]] > ak or (a[idx[j]] == ak and y[idx[j]] > yk)):
            idx[j + 1] = idx[j]
            j -= 1
        idx[j + 1] = k


@njit(cache=True)
def _column_summary(a: np.ndarray, y: np.ndarray, idx: np.ndarray, n: int, has: np.ndarray,
                    ymin: np.ndarray, ymax: np.ndarray, gap: np.ndarray) -> int:
    """Per aisle: has picks, lowest / highest pick, largest gap between two consecutive picks
    (0 when fewer than two distinct y). ``idx[:n]`` must be sorted by (a, y). Arrays are
    reset up to the returned rightmost pick aisle r."""
    r = a[idx[n - 1]]
    for j in range(r + 1):
        has[j] = False
        gap[j] = 0.0
    i = 0
    while i < n:
        col = a[idx[i]]
        has[col] = True
        lo = y[idx[i]]
        prev = lo
        g = 0.0
        i += 1
        while i < n and a[idx[i]] == col:
            yy = y[idx[i]]
            if yy - prev > g:
                g = yy - prev
            prev = yy
            i += 1
        ymin[col] = lo
        ymax[col] = prev
        gap[col] = g
    return r


@njit(cache=True)
def _cfg_cost(cfg: int, has: bool, lo: float, hi: float, g: float, L: float) -> float:
    """Length of vertical configuration ``cfg`` in one aisle, or -1 if not allowed there."""
    if cfg == 0:
        return 0.0 if not has else -1.0
    if cfg == 1:
        return L
    if cfg == 2:
        return 2.0 * L
    if not has:
        return -1.0  # front/back/gap returns in an empty aisle are just "none"
    if cfg == 3:
        return 2.0 * hi
    if cfg == 4:
        return 2.0 * (L - lo)
    if g <= 0.0:
        return -1.0  # no gap between two distinct picks to leave out
    return 2.0 * (L - g)


@njit(cache=True)
def _rr_dp(has: np.ndarray, ymin: np.ndarray, ymax: np.ndarray, gap: np.ndarray, r: int,
           L: float, dx: float, aisle_t: np.ndarray, cross_t: np.ndarray,
           bp_state: np.ndarray, bp_move: np.ndarray, record: bool) -> float:
    """Ratliff-Rosenthal DP over aisles 0..r (``aisle_t``, ``cross_t`` = ``RR_TABLES``).
    With ``record``, bp_state / bp_move (shape (2*(r+1), N_STATES)) receive back-pointers:
    row 2j for the aisle step of aisle j (move = cfg), row 2j+1 for the cross step j -> j+1
    (move = 3*f + g). Returns the optimum length."""
    cur = np.empty(7)
    nxt = np.empty(7)
    cfgc = np.empty(6)
    for s in range(7):
        cur[s] = _INF
    cur[0] = 0.0  # EMPTY before aisle 0
    for j in range(r + 1):
        # vertical configuration of aisle j
        for s in range(7):
            nxt[s] = _INF
        for c in range(6):
            cfgc[c] = _cfg_cost(c, has[j], ymin[j], ymax[j], gap[j], L)
        for t in range(aisle_t.shape[0]):
            s = aisle_t[t, 0]
            c = aisle_t[t, 1]
            if cur[s] >= _INF or cfgc[c] < 0.0:
                continue
            ns = aisle_t[t, 2]
            v = cur[s] + cfgc[c]
            if v < nxt[ns]:
                nxt[ns] = v
                if record:
                    bp_state[2 * j, ns] = s
                    bp_move[2 * j, ns] = c
        for s in range(7):
            cur[s] = nxt[s]
            nxt[s] = _INF
        dep = 1 if j == 0 else 0
        if j == r:
            # leaving the last aisle with no edges to the right: the tour must be closed
            best = _INF
            bs = -1
            for t in range(cross_t.shape[1]):
                s = cross_t[dep, t, 0]
                if s < 0:
                    break
                if (cross_t[dep, t, 1] == 0 and cross_t[dep, t, 2] == 0
                        and cross_t[dep, t, 3] == 6 and cur[s] < best):
                    best = cur[s]
                    bs = s
            if record:
                bp_state[2 * j + 1, 6] = bs
                bp_move[2 * j + 1, 6] = 0
            return best
        for t in range(cross_t.shape[1]):
            s = cross_t[dep, t, 0]
            if s < 0:
                break
            if cur[s] >= _INF:
                continue
            f = cross_t[dep, t, 1]
            gg = cross_t[dep, t, 2]
            ns = cross_t[dep, t, 3]
            v = cur[s] + (f + gg) * dx
            if v < nxt[ns]:
                nxt[ns] = v
                if record:
                    bp_state[2 * j + 1, ns] = s
                    bp_move[2 * j + 1, ns] = 3 * f + gg
        for s in range(7):
            cur[s] = nxt[s]
    return _INF  # not reached


@njit(cache=True)
def _rr_length_fast(has: np.ndarray, ymin: np.ndarray, ymax: np.ndarray, gap: np.ndarray,
                    r: int, L: float, dx: float) -> float:
    """Length-only Ratliff-Rosenthal DP with the transitions of ``RR_TABLES`` written out on
    scalars (states 0..6 as in ``_STATES``): ~10x faster than the table-driven ``_rr_dp``,
    which matters for batching, where it is called hundreds of thousands of times. Tests
    check both agree (and agree with Held-Karp)."""
    inf = _INF
    # classes at aisle 0 before its vertical edges: nothing built yet
    e0, e1, e2, e3, e4, e5, e6 = 0.0, inf, inf, inf, inf, inf, inf
    for j in range(r + 1):
        if has[j]:
            c0 = inf  # an aisle with picks must be used
            c3 = 2.0 * ymax[j]
            c4 = 2.0 * (L - ymin[j])
            c5 = 2.0 * (L - gap[j]) if gap[j] > 0.0 else inf
        else:
            c0 = 0.0
            c3 = inf
            c4 = inf
            c5 = inf
        c1 = L
        c2 = 2.0 * L
        # aisle step (rows of the aisle table grouped by target class)
        p0 = e0 + c0
        p1 = min(e1 + c0, min(e0, e1) + c3)
        p2 = min(e2 + c0, min(e0, e2) + c4)
        keep = min(min(c0, c2), min(min(c3, c4), c5))  # cfgs that keep class 3 / 4
        p3 = min(e3 + keep, min(min(e0, e1), min(min(e2, e4), e5)) + c1)
        p4 = min(min(e4 + keep, e3 + c1), min(min(e0, e1), min(e2, e5)) + c2)
        p5 = min(min(e5 + min(min(c0, c3), min(c4, c5)), e0 + c5),
                 min(e1 + min(c4, c5), e2 + min(c3, c5)))
        p6 = e6 + c0
        if j == 0:
            # a_0 is the depot: only transitions that leave it in the tour
            if j == r:
                return min(min(p1, p4), p6)
            e0 = inf
            e1 = min(min(p0, p1), p4) + 2.0 * dx
            e2 = p4 + 2.0 * dx
            e6 = min(min(p1, p4), p6)
        else:
            if j == r:
                return min(min(p1, p2), min(p4, p6))
            e0 = p0
            e1 = min(min(p0, p1), p4) + 2.0 * dx
            e2 = min(min(p0, p2), p4) + 2.0 * dx
            e6 = min(min(p1, p2), min(p4, p6))
        e3 = p3 + 2.0 * dx
        e4 = p4 + 4.0 * dx
        e5 = min(min(p0, p1), min(p2, p5)) + 4.0 * dx
    return inf  # not reached


@njit(cache=True)
def _exact_length_sorted(a: np.ndarray, y: np.ndarray, idx: np.ndarray, n: int, L: float,
                         dx: float, has: np.ndarray, ymin: np.ndarray, ymax: np.ndarray,
                         gap: np.ndarray) -> float:
    if n == 0:
        return 0.0
    r = _column_summary(a, y, idx, n, has, ymin, ymax, gap)
    return _rr_length_fast(has, ymin, ymax, gap, r, L, dx)


@njit(cache=True)
def exact_length_of(a: np.ndarray, y: np.ndarray, idx: np.ndarray, n: int, L: float,
                    dx: float, has: np.ndarray, ymin: np.ndarray, ymax: np.ndarray,
                    gap: np.ndarray) -> float:
    """Optimal route length through picks a[idx[:n]], y[idx[:n]] (idx is reordered in place).
    The work arrays has/ymin/ymax/gap need one entry per aisle. For other numba kernels: it
    allocates nothing."""
    _sort_by_aisle_y(a, y, idx, n)
    return _exact_length_sorted(a, y, idx, n, L, dx, has, ymin, ymax, gap)


@njit(cache=True, nogil=True)
def _exact_route_kernel(a: np.ndarray, y: np.ndarray, order: np.ndarray, L: float, dx: float,
                        aisle_t: np.ndarray,
                        cross_t: np.ndarray) -> tuple[float, np.ndarray]:
    """Optimal length and visiting order. ``order`` = input indices sorted by (aisle, y)."""
    n = order.shape[0]
    r = a[order[n - 1]]
    ncol = r + 1
    has = np.zeros(ncol, dtype=np.bool_)
    ymin = np.zeros(ncol)
    ymax = np.zeros(ncol)
    gap = np.zeros(ncol)
    _column_summary(a, y, order, n, has, ymin, ymax, gap)
    bp_state = np.full((2 * ncol, 7), -1, dtype=np.int64)
    bp_move = np.full((2 * ncol, 7), -1, dtype=np.int64)
    best = _rr_dp(has, ymin, ymax, gap, r, L, dx, aisle_t, cross_t, bp_state, bp_move, True)

    # ---- backtrack: configuration of every aisle and cross-aisle multiplicities
    cfg = np.zeros(ncol, dtype=np.int64)
    fm = np.zeros(ncol, dtype=np.int64)  # front edges between aisle j and j+1
    gm = np.zeros(ncol, dtype=np.int64)
    s = bp_state[2 * r + 1, 6]  # class after the aisle step of aisle r
    for j in range(r, -1, -1):
        if j < r:
            mv = bp_move[2 * j + 1, s]
            fm[j] = mv // 3
            gm[j] = mv % 3
            s = bp_state[2 * j + 1, s]
        cfg[j] = bp_move[2 * j, s]
        s = bp_state[2 * j, s]

    # ---- distinct pick points (node ids 2*ncol + k) and which input indices sit there
    pt_of = np.empty(n, dtype=np.int64)  # position in `order` -> point id
    npts = 0
    for i in range(n):
        if i > 0 and a[order[i]] == a[order[i - 1]] and y[order[i]] == y[order[i - 1]]:
            pt_of[i] = pt_of[i - 1]
        else:
            pt_of[i] = npts
            npts += 1
    pt_start = np.empty(npts + 1, dtype=np.int64)  # positions in `order` of each point
    for i in range(n - 1, -1, -1):
        pt_start[pt_of[i]] = i
    pt_start[npts] = n
    nnodes = 2 * ncol + npts

    # ---- edge list of the optimal subgraph
    max_e = 4 * ncol + 2 * (n + ncol) + 4
    eu = np.empty(max_e, dtype=np.int64)
    ev = np.empty(max_e, dtype=np.int64)
    ne = 0
    for j in range(ncol):
        if j < r:
            for _ in range(fm[j]):
                eu[ne] = 2 * j
                ev[ne] = 2 * (j + 1)
                ne += 1
            for _ in range(gm[j]):
                eu[ne] = 2 * j + 1
                ev[ne] = 2 * (j + 1) + 1
                ne += 1
        c = cfg[j]
        if c == 0:
            continue
        # chain of nodes along aisle j: a_j, its distinct points by y, b_j
        p0 = -1
        p1 = -1
        if has[j]:
            for i in range(n):
                if a[order[i]] == j:
                    if p0 < 0:
                        p0 = pt_of[i]
                    p1 = pt_of[i]
        nseg = 1 if p0 < 0 else (p1 - p0 + 2)
        # the segment to leave out (GAP: the first largest gap between two points)
        skip = -1
        if c == 3:
            skip = nseg - 1
        elif c == 4:
            skip = 0
        elif c == 5:
            gbest = -1.0
            for k in range(1, nseg - 1):
                yk0 = y[order[pt_start[p0 + k - 1]]]
                yk1 = y[order[pt_start[p0 + k]]]
                if yk1 - yk0 > gbest:
                    gbest = yk1 - yk0
                    skip = k
        mult = 1 if c == 1 else 2
        for k in range(nseg):
            if k == skip:
                continue
            u = 2 * j if k == 0 else 2 * ncol + p0 + k - 1
            v = 2 * j + 1 if k == nseg - 1 else 2 * ncol + p0 + k
            for _ in range(mult):
                eu[ne] = u
                ev[ne] = v
                ne += 1

    # ---- Euler circuit from the depot (node 0), Hierholzer with an explicit stack
    deg = np.zeros(nnodes + 1, dtype=np.int64)
    for e in range(ne):
        deg[eu[e] + 1] += 1
        deg[ev[e] + 1] += 1
    for v in range(nnodes):
        deg[v + 1] += deg[v]
    adj = np.empty(2 * ne, dtype=np.int64)
    fill = deg[:nnodes].copy()
    for e in range(ne):
        adj[fill[eu[e]]] = e
        fill[eu[e]] += 1
        adj[fill[ev[e]]] = e
        fill[ev[e]] += 1
    ptr = deg[:nnodes].copy()
    used = np.zeros(ne, dtype=np.bool_)
    stack = np.empty(ne + 1, dtype=np.int64)
    sp = 0
    stack[0] = 0
    seen = np.zeros(npts, dtype=np.bool_)
    visit = np.empty(n, dtype=np.int64)
    nv = 0
    # Points are recorded when popped (circuit order reversed); a reversed Euler circuit is
    # an Euler circuit too, so the first-pop order of points is a valid visiting order.
    while sp >= 0:
        v = stack[sp]
        while ptr[v] < deg[v + 1] and used[adj[ptr[v]]]:
            ptr[v] += 1
        if ptr[v] < deg[v + 1]:
            e = adj[ptr[v]]
            used[e] = True
            sp += 1
            stack[sp] = ev[e] if eu[e] == v else eu[e]
        else:
            sp -= 1
            if v >= 2 * ncol:
                p = v - 2 * ncol
                if not seen[p]:
                    seen[p] = True
                    for i in range(pt_start[p], pt_start[p + 1]):
                        visit[nv] = order[i]
                        nv += 1
    return best, visit
