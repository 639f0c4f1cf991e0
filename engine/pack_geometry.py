"""Geometry of box choice: "do these items fit in this box, and where does each go?"

The extreme-point heuristic and its memo are described in ``packing``'s docstring; this module
holds the numba kernels (``_ep_run``, ``_fit_kernel``), the memoised ``_fit`` and the public
``fits``.
"""
from __future__ import annotations

import functools
import threading
from collections.abc import Sequence

import numba as nb
import numpy as np

from oms.engine.boxes import Box, Item, Placement, _validate_boxes, _validate_items

Dims = tuple[int, int, int]


def _canon(d: Sequence[int]) -> Dims:
    """Rotation-invariant shape key: the sides, longest first."""
    a, b, c = sorted(d, reverse=True)
    return (a, b, c)


def _fits_alone(d: Dims, box_canon: Dims) -> bool:
    """An item fits an empty box in some axis-aligned rotation iff its sorted sides are each
    at most the box's sorted sides."""
    return d[0] <= box_canon[0] and d[1] <= box_canon[1] and d[2] <= box_canon[2]


_PERMS = ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))


@nb.njit(cache=True, nogil=True)
def _ep_run(shapes: np.ndarray, order: np.ndarray, L: int, W: int, H: int, merit: int,
            weights: np.ndarray, max_w: int, skip: bool) -> tuple[bool, np.ndarray]:
    """Extreme-point insertion of ``shapes[order]`` into an L x W x H box.

    Each item goes to the extreme point and rotation with the smallest merit key:
    0 = lowest layer first (z, y, x), flattest rotation; 1 = smallest bounding box of all
    placed items, then (z, y, x); 2 = wall by wall along the length (x, z, y).
    New extreme points after placing an item are its three far corners, each also projected
    along the two other axes onto the nearest face below/behind it (or the wall).
    ``skip=False``: stop at the first item that does not fit (returns False).
    ``skip=True``: skip such items (and items over the weight/volume budget) and go on —
    the greedy fill. Returns (all placed, out) with ``out[i] = (x, y, z, l, w, h)`` or -1s.
    """
    n = order.shape[0]
    out = np.full((shapes.shape[0], 6), -1, np.int64)
    placed = np.empty((n, 6), np.int64)
    k = 0
    cap = 16 + 9 * n
    eps = np.empty((cap, 3), np.int64)
    eps[0, 0] = 0
    eps[0, 1] = 0
    eps[0, 2] = 0
    m = 1
    orient = np.empty((6, 3), np.int64)
    tw = 0
    tv = 0
    box_v = L * W * H
    bx = 0
    by = 0
    bz = 0
    cand = np.empty((9, 3), np.int64)
    for oi in range(n):
        i = order[oi]
        s0 = shapes[i, 0]
        s1 = shapes[i, 1]
        s2 = shapes[i, 2]
        if tw + weights[i] > max_w or tv + s0 * s1 * s2 > box_v:
            if skip:
                continue
            return False, out
        no = 0
        for pi in range(6):
            d0 = shapes[i, _PERMS[pi][0]]
            d1 = shapes[i, _PERMS[pi][1]]
            d2 = shapes[i, _PERMS[pi][2]]
            dup = False
            for q in range(no):
                if orient[q, 0] == d0 and orient[q, 1] == d1 and orient[q, 2] == d2:
                    dup = True
                    break
            if not dup:
                orient[no, 0] = d0
                orient[no, 1] = d1
                orient[no, 2] = d2
                no += 1
        found = False
        bkey = (0, 0, 0, 0, 0)
        best = (0, 0, 0, 0, 0, 0)
        for e in range(m):
            ex = eps[e, 0]
            ey = eps[e, 1]
            ez = eps[e, 2]
            for o in range(no):
                ln = orient[o, 0]
                w = orient[o, 1]
                h = orient[o, 2]
                x2 = ex + ln
                y2 = ey + w
                z2 = ez + h
                if x2 > L or y2 > W or z2 > H:
                    continue
                if merit == 0:
                    key = (ez, ey, ex, h, -ln)
                elif merit == 1:
                    key = (max(bx, x2) * max(by, y2) * max(bz, z2), ez, ey, ex, h)
                else:
                    key = (ex, ez, ey, ln, h)
                if found and not key < bkey:
                    continue
                free = True
                for q in range(k):
                    if (ex < placed[q, 0] + placed[q, 3] and placed[q, 0] < x2
                            and ey < placed[q, 1] + placed[q, 4] and placed[q, 1] < y2
                            and ez < placed[q, 2] + placed[q, 5] and placed[q, 2] < z2):
                        free = False
                        break
                if free:
                    found = True
                    bkey = key
                    best = (ex, ey, ez, ln, w, h)
        if not found:
            if skip:
                continue
            return False, out
        x, y, z, ln, w, h = best
        for c in range(6):
            placed[k, c] = best[c]
            out[i, c] = best[c]
        k += 1
        tw += weights[i]
        tv += s0 * s1 * s2
        bx = max(bx, x + ln)
        by = max(by, y + w)
        bz = max(bz, z + h)
        # drop extreme points now inside the new item
        mm = 0
        for e in range(m):
            if (x <= eps[e, 0] < x + ln and y <= eps[e, 1] < y + w
                    and z <= eps[e, 2] < z + h):
                continue
            eps[mm, 0] = eps[e, 0]
            eps[mm, 1] = eps[e, 1]
            eps[mm, 2] = eps[e, 2]
            mm += 1
        m = mm
        # three corners, each raw and projected along the two other axes
        nc = 0
        for axis in range(3):
            px = x + ln if axis == 0 else x
            py = y + w if axis == 1 else y
            pz = z + h if axis == 2 else z
            cand[nc, 0] = px
            cand[nc, 1] = py
            cand[nc, 2] = pz
            nc += 1
            for proj in range(3):
                if proj == axis:
                    continue
                stop = 0
                for q in range(k):
                    if proj == 0:
                        top = placed[q, 0] + placed[q, 3]
                        hit = (stop < top <= px and placed[q, 1] <= py < placed[q, 1] + placed[q, 4]
                               and placed[q, 2] <= pz < placed[q, 2] + placed[q, 5])
                    elif proj == 1:
                        top = placed[q, 1] + placed[q, 4]
                        hit = (stop < top <= py and placed[q, 0] <= px < placed[q, 0] + placed[q, 3]
                               and placed[q, 2] <= pz < placed[q, 2] + placed[q, 5])
                    else:
                        top = placed[q, 2] + placed[q, 5]
                        hit = (stop < top <= pz and placed[q, 0] <= px < placed[q, 0] + placed[q, 3]
                               and placed[q, 1] <= py < placed[q, 1] + placed[q, 4])
                    if hit:
                        stop = top
                cand[nc, 0] = stop if proj == 0 else px
                cand[nc, 1] = stop if proj == 1 else py
                cand[nc, 2] = stop if proj == 2 else pz
                nc += 1
        for c in range(nc):
            cx = cand[c, 0]
            cy = cand[c, 1]
            cz = cand[c, 2]
            if cx >= L or cy >= W or cz >= H:
                continue
            inside = False
            for q in range(k):
                if (placed[q, 0] <= cx < placed[q, 0] + placed[q, 3]
                        and placed[q, 1] <= cy < placed[q, 1] + placed[q, 4]
                        and placed[q, 2] <= cz < placed[q, 2] + placed[q, 5]):
                    inside = True
                    break
            if inside:
                continue
            dup = False
            for e in range(m):
                if eps[e, 0] == cx and eps[e, 1] == cy and eps[e, 2] == cz:
                    dup = True
                    break
            if not dup and m < cap:
                eps[m, 0] = cx
                eps[m, 1] = cy
                eps[m, 2] = cz
                m += 1
    return k == n, out


@nb.njit(cache=True, nogil=True)
def _fit_kernel(shapes: np.ndarray, L: int, W: int, H: int) -> tuple[bool, np.ndarray]:
    """Try item orders (volume, longest side, largest face; all descending, stable) x the
    three merit rules of ``_ep_run`` until one packs every shape."""
    n = shapes.shape[0]
    zero_w = np.zeros(n, np.int64)
    # computed rather than literal constants: numba then reuses the one compiled signature
    # of _ep_run that the greedy fill calls from Python (a literal would compile it twice)
    no_weight_limit = L - L
    stop_at_failure = L < 0
    vol = shapes[:, 0] * shapes[:, 1] * shapes[:, 2]
    face = shapes[:, 0] * shapes[:, 1]
    # argsort of a negated key with a stable sort keeps ties in input order
    orders = np.empty((3, n), np.int64)
    orders[0] = np.argsort(-vol, kind="mergesort")
    orders[1] = np.argsort(-shapes[:, 0], kind="mergesort")
    orders[2] = np.argsort(-face, kind="mergesort")
    out = np.full((n, 6), -1, np.int64)
    for r in range(3):
        same = False
        for q in range(r):
            if np.all(orders[q] == orders[r]):
                same = True
        if same:
            continue
        for merit in range(3):
            ok, out = _ep_run(shapes, orders[r], L, W, H, merit, zero_w, no_weight_limit,
                              stop_at_failure)
            if ok:
                return True, out
    return False, out


@functools.lru_cache(maxsize=1 << 14)  # ~ a few 12-item orders of distinct shapes
def _fit(box_dims: Dims, shapes: tuple[Dims, ...]) -> tuple[Placement, ...] | None:
    """Placements (aligned with ``shapes``) of the shapes in a box of ``box_dims``, or None.

    ``shapes`` must be canonical (each ``_canon``, the tuple sorted) so that the memo is
    shared by every subset with the same multiset of shapes.
    """
    L, W, H = box_dims
    bc = _canon(box_dims)
    if sum(a * b * c for a, b, c in shapes) > L * W * H:
        return None
    if not all(_fits_alone(s, bc) for s in shapes):
        return None
    ok, out = _fit_kernel(np.array(shapes, dtype=np.int64).reshape(len(shapes), 3), L, W, H)
    if not ok:
        return None
    return tuple(map(tuple, out.tolist()))  # type: ignore[arg-type]


def _fit_shapes(box: Box, shapes: Sequence[Dims], weights: Sequence[int],
                idx: Sequence[int]) -> list[Placement] | None:
    """Weight + geometric check of items ``idx`` (canonical ``shapes``, ``weights``) in
    ``box``; placements aligned with ``idx``."""
    if sum(weights[i] for i in idx) > box.max_weight_g:
        return None
    if not idx:
        return []
    keyed = sorted([(shapes[i], k) for k, i in enumerate(idx)], reverse=True)
    res = _fit(box.dims, tuple([s for s, _ in keyed]))
    if res is None:
        return None
    out: list[Placement] = [res[0]] * len(idx)
    for (_, k), p in zip(keyed, res):
        out[k] = p
    return out


def fits(items: Sequence[Item], box: Box) -> list[Placement] | None:
    """Placements of all ``items`` in ``box`` (aligned with ``items``), or None if the
    heuristic finds no layout or the weight limit is exceeded."""
    _validate_boxes([box], "box")
    _validate_items(items)
    return _fit_shapes(box, [_canon(it.dims) for it in items], [it.weight_g for it in items],
                       range(len(items)))


_warm_lock = threading.Lock()
_warmed = False


def _warm_up() -> None:
    """Compile (or load from numba's cache) both kernels once, with the argument types used."""
    global _warmed
    if _warmed:
        return
    with _warm_lock:
        if not _warmed:
            one = np.ones((1, 3), dtype=np.int64)
            _fit_kernel(one, 1, 1, 1)
            _ep_run(one, np.zeros(1, dtype=np.int64), 1, 1, 1, 0, np.zeros(1, dtype=np.int64),
                    1, True)
            _warmed = True
