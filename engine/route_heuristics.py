"""The hand heuristics that serve as baselines for ``engine.routing``: S-shape (traversal)
and largest gap, as numba kernels (``njit(cache=True, nogil=True)``) over picks sorted by
(aisle, y). ``engine.routing`` validates input and wraps them as ``s_shape_route`` and
``largest_gap_route``; its batch-length kernel calls them for many pick lists at once.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _s_shape_kernel(a: np.ndarray, y: np.ndarray, order: np.ndarray, L: float, dx: float,
                    with_order: bool) -> tuple[float, np.ndarray]:
    """S-shape (traversal): every pick aisle is traversed, left to right, alternating
    direction; if the number of pick aisles is odd the last one is entered from the front up
    to its farthest pick and left the same way. ``order`` sorted by (aisle, y)."""
    n = order.shape[0]
    k = 1
    for i in range(1, n):
        if a[order[i]] != a[order[i - 1]]:
            k += 1
    r = a[order[n - 1]]
    length = 2.0 * r * dx
    if k % 2 == 0:
        length += k * L
    else:
        length += (k - 1) * L + 2.0 * y[order[n - 1]]
    visit = np.empty(n if with_order else 0, dtype=np.int64)
    if with_order:
        nv = 0
        t = 0
        i = 0
        while i < n:
            e = i
            while e < n and a[order[e]] == a[order[i]]:
                e += 1
            if t % 2 == 0:  # up (also the odd last aisle, entered from the front)
                for q in range(i, e):
                    visit[nv] = order[q]
                    nv += 1
            else:
                for q in range(e - 1, i - 1, -1):
                    visit[nv] = order[q]
                    nv += 1
            t += 1
            i = e
    return length, visit


@njit(cache=True, nogil=True)
def _largest_gap_kernel(a: np.ndarray, y: np.ndarray, order: np.ndarray, L: float, dx: float,
                        with_order: bool) -> tuple[float, np.ndarray]:
    """Largest gap: the leftmost pick aisle is traversed (front -> back), the back cross aisle
    is followed to the rightmost pick aisle, which is traversed back -> front; every aisle in
    between is entered from the back and from the front, each up to its largest gap (gaps
    counted between the front end, the picks and the back end). One pick aisle only: a return
    trip from the front to its farthest pick. ``order`` sorted by (aisle, y)."""
    n = order.shape[0]
    # aisle groups [gs[t], gs[t+1]) in `order`
    gs = np.empty(n + 1, dtype=np.int64)
    k = 0
    for i in range(n):
        if i == 0 or a[order[i]] != a[order[i - 1]]:
            gs[k] = i
            k += 1
    gs[k] = n
    r = a[order[n - 1]]
    visit = np.empty(n if with_order else 0, dtype=np.int64)
    if k == 1:
        if with_order:
            for i in range(n):
                visit[i] = order[i]
        return 2.0 * r * dx + 2.0 * y[order[n - 1]], visit
    length = 2.0 * r * dx + 2.0 * L
    # split position per middle aisle: picks [gs[t], cut[t]) from the front, rest from the back
    cut = np.empty(k, dtype=np.int64)
    for t in range(1, k - 1):
        s, e = gs[t], gs[t + 1]
        best = y[order[s]]  # gap front end -> first pick: everything from the back
        bc = s
        for q in range(s + 1, e):
            gq = y[order[q]] - y[order[q - 1]]
            if gq > best:
                best = gq
                bc = q
        if L - y[order[e - 1]] > best:
            best = L - y[order[e - 1]]
            bc = e
        cut[t] = bc
        length += 2.0 * (L - best)
    if with_order:
        nv = 0
        for q in range(gs[0], gs[1]):  # leftmost aisle upwards
            visit[nv] = order[q]
            nv += 1
        for t in range(1, k - 1):  # back parts, left to right, downwards
            for q in range(gs[t + 1] - 1, cut[t] - 1, -1):
                visit[nv] = order[q]
                nv += 1
        for q in range(gs[k] - 1, gs[k - 1] - 1, -1):  # rightmost aisle downwards
            visit[nv] = order[q]
            nv += 1
        for t in range(k - 2, 0, -1):  # front parts, right to left, upwards
            for q in range(gs[t], cut[t]):
                visit[nv] = order[q]
                nv += 1
    return length, visit
