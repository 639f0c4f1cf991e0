"""Pick routes in the single-block warehouse of docs/ARCHITECTURE.md ("Warehouse geometry").

Aisle i runs along x = i * aisle_spacing_m from the front cross aisle (y = 0) to the back
cross aisle (y = L). Slot j sits at y = (j + 0.5) * slot_length_m. The depot is (0, 0), the
front end of aisle 0. A route is a closed walk from the depot through every pick and back.

* ``exact_route`` — the optimum, by the Ratliff & Rosenthal (1983) dynamic program; the DP,
  its state tables (``RR_TABLES``, built at import) and the length-only copy that batching
  calls (``exact_length_of``) live in ``engine.route_dp``, whose docstring has the method.
* ``s_shape_route`` and ``largest_gap_route`` — the hand heuristics that serve as baselines
  (kernels in ``engine.route_heuristics``).
* ``route_lengths`` — many pick lists at once, by any of the three (numba-parallel kernel here).

All kernels are numba ``njit(cache=True)`` (the ones called from Python also ``nogil``, so a
planning thread does not stall gRPC threads); the public functions validate and convert input.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from oms.engine.errors import ValidationError
from oms.engine.models import Layout
from oms.engine.route_dp import (
    _AISLE_T,
    _CROSS_T,
    RR_TABLES,
    _exact_length_sorted,
    _exact_route_kernel,
)
from oms.engine.route_dp import exact_length_of as exact_length_of  # re-export: was public here
from oms.engine.route_heuristics import _largest_gap_kernel, _s_shape_kernel

__all__ = [
    "exact_route",
    "exact_route_length",
    "s_shape_route",
    "largest_gap_route",
    "route_lengths",
    "walk_points",
    "walk_length",
    "point_distance",
    "RR_TABLES",
]


# --------------------------------------------------------------------------------------------
# batch lengths (numba, parallel over pick lists)
# --------------------------------------------------------------------------------------------
@njit(cache=True, parallel=True, nogil=True)
def _batch_lengths_kernel(ptr: np.ndarray, a: np.ndarray, y: np.ndarray, n_aisles: int,
                          L: float, dx: float, method: int) -> np.ndarray:
    nb = ptr.shape[0] - 1
    out = np.zeros(nb)
    for b in prange(nb):
        s, e = ptr[b], ptr[b + 1]
        n = e - s
        if n == 0:
            continue
        aa = a[s:e]
        yy = y[s:e]
        idx = np.argsort(aa * (2.0 * L + 1.0) + yy)  # (aisle, y) order; y < L
        if method == 0:
            has = np.zeros(n_aisles, dtype=np.bool_)
            lo = np.zeros(n_aisles)
            hi = np.zeros(n_aisles)
            gp = np.zeros(n_aisles)
            out[b] = _exact_length_sorted(aa, yy, idx, n, L, dx, has, lo, hi, gp)
        elif method == 1:
            out[b] = _s_shape_kernel(aa, yy, idx, L, dx, False)[0]
        else:
            out[b] = _largest_gap_kernel(aa, yy, idx, L, dx, False)[0]
    return out


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def _prepare(aisle: np.ndarray, slot: np.ndarray,
             layout: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate picks; return (aisle int64, y float64, indices sorted by (aisle, y))."""
    a = np.ascontiguousarray(aisle, dtype=np.int64).reshape(-1)
    s = np.ascontiguousarray(slot, dtype=np.int64).reshape(-1)
    if a.shape != s.shape:
        raise ValidationError.one("slot", f"{s.size} slots for {a.size} aisles")
    if a.size and (a.min() < 0 or a.max() >= layout.aisles):
        raise ValidationError.one("aisle", f"aisle outside 0..{layout.aisles - 1}")
    if s.size and (s.min() < 0 or s.max() >= layout.slots_per_aisle):
        raise ValidationError.one("slot", f"slot outside 0..{layout.slots_per_aisle - 1}")
    y = (s + 0.5) * float(layout.slot_length_m)
    order = np.lexsort((s, a)).astype(np.int64)
    return a, y, order


def exact_route(aisle: np.ndarray, slot: np.ndarray,
                layout: Layout) -> tuple[float, np.ndarray]:
    """Shortest closed walk from the depot through all picks (Ratliff & Rosenthal).

    Returns (length in metres, visiting order): the order is an int64 permutation of the
    input indices; picks at the same location are consecutive. Walking the picks in that
    order along shortest paths (``walk_length``) gives exactly the returned length.
    """
    a, y, order = _prepare(aisle, slot, layout)
    if a.size == 0:
        return 0.0, np.empty(0, dtype=np.int64)
    length, visit = _exact_route_kernel(a, y, order, float(layout.length_m),
                                        float(layout.aisle_spacing_m), _AISLE_T, _CROSS_T)
    return float(length), visit


def exact_route_length(aisle: np.ndarray, slot: np.ndarray, layout: Layout) -> float:
    """Length of ``exact_route`` without rebuilding the route (no back-pointers, no Euler)."""
    a, y, order = _prepare(aisle, slot, layout)
    if a.size == 0:
        return 0.0
    r = int(a[order[-1]]) + 1
    return float(_exact_length_sorted(a, y, order, a.size, float(layout.length_m),
                                      float(layout.aisle_spacing_m),
                                      np.zeros(r, dtype=np.bool_), np.zeros(r), np.zeros(r),
                                      np.zeros(r)))


def s_shape_route(aisle: np.ndarray, slot: np.ndarray,
                  layout: Layout) -> tuple[float, np.ndarray]:
    """S-shape (traversal) heuristic route: (length, visiting order)."""
    a, y, order = _prepare(aisle, slot, layout)
    if a.size == 0:
        return 0.0, np.empty(0, dtype=np.int64)
    length, visit = _s_shape_kernel(a, y, order, float(layout.length_m),
                                    float(layout.aisle_spacing_m), True)
    return float(length), visit


def largest_gap_route(aisle: np.ndarray, slot: np.ndarray,
                      layout: Layout) -> tuple[float, np.ndarray]:
    """Largest-gap heuristic route: (length, visiting order)."""
    a, y, order = _prepare(aisle, slot, layout)
    if a.size == 0:
        return 0.0, np.empty(0, dtype=np.int64)
    length, visit = _largest_gap_kernel(a, y, order, float(layout.length_m),
                                        float(layout.aisle_spacing_m), True)
    return float(length), visit


_METHODS = {"exact": 0, "s_shape": 1, "largest_gap": 2}


def route_lengths(ptr: np.ndarray, aisle: np.ndarray, slot: np.ndarray, layout: Layout,
                  method: str = "exact") -> np.ndarray:
    """Route length of many pick lists at once (numba, parallel over lists).

    Pick list b is ``aisle[ptr[b]:ptr[b+1]]``, ``slot[ptr[b]:ptr[b+1]]`` (CSR layout).
    ``method`` is "exact", "s_shape" or "largest_gap". Returns float64 lengths.
    """
    if method not in _METHODS:
        raise ValidationError.one("method", f"unknown route method {method!r}")
    p = np.ascontiguousarray(ptr, dtype=np.int64)
    a, y, _ = _prepare(aisle, slot, layout)
    if p.size == 0:
        return np.zeros(0)
    if p[0] != 0 or p[-1] != a.size or np.any(np.diff(p) < 0):
        raise ValidationError.one("ptr", "ptr must rise from 0 to the number of picks")
    return _batch_lengths_kernel(p, a, y, int(layout.aisles), float(layout.length_m),
                                 float(layout.aisle_spacing_m), _METHODS[method])


def point_distance(p: tuple[float, float], q: tuple[float, float], layout: Layout) -> float:
    """Shortest walking distance between two points on aisles (x on an aisle line, 0<=y<=L):
    |dy| within one aisle, else min(y1 + y2, 2L - y1 - y2) + |dx| via a cross aisle."""
    (x1, y1), (x2, y2) = p, q
    if x1 == x2:
        return abs(y1 - y2)
    L = layout.length_m
    return min(y1 + y2, 2.0 * L - y1 - y2) + abs(x1 - x2)


def walk_points(order: np.ndarray, aisle: np.ndarray, slot: np.ndarray,
                layout: Layout) -> list[tuple[float, float]]:
    """Polyline (x, y) of the walk depot -> picks in ``order`` -> depot, moving between two
    aisles along the nearer cross aisle. Consecutive duplicates are dropped. Its length
    (sum of segment lengths, all axis-parallel) equals ``walk_length``."""
    a = np.asarray(aisle, dtype=np.int64)
    s = np.asarray(slot, dtype=np.int64)
    L = layout.length_m
    stops = [(layout.aisle_x(int(a[i])), layout.slot_y(int(s[i]))) for i in order]
    pts: list[tuple[float, float]] = [(0.0, 0.0)]
    for x2, y2 in stops + [(0.0, 0.0)]:
        x1, y1 = pts[-1]
        if x1 != x2:
            yc = 0.0 if y1 + y2 <= 2.0 * L - y1 - y2 else L
            for p in ((x1, yc), (x2, yc)):
                if p != pts[-1]:
                    pts.append(p)
        if (x2, y2) != pts[-1]:
            pts.append((x2, y2))
    return pts


def walk_length(order: np.ndarray, aisle: np.ndarray, slot: np.ndarray,
                layout: Layout) -> float:
    """Length of visiting the picks in ``order`` from the depot and back along shortest
    paths (sum of ``point_distance`` over consecutive stops)."""
    a = np.asarray(aisle, dtype=np.int64)
    s = np.asarray(slot, dtype=np.int64)
    prev = (0.0, 0.0)
    total = 0.0
    for i in list(order) + [-1]:
        cur = (0.0, 0.0) if i < 0 else (layout.aisle_x(int(a[i])), layout.slot_y(int(s[i])))
        total += point_distance(prev, cur, layout)
        prev = cur
    return total
