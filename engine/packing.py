"""Box choice for an order: the cheapest set of boxes the items fit in, with a 3D layout.

Two layers:

* **Geometry** — "do these items fit in this box, and where does each go?" An extreme-point
  heuristic (Crainic, Perboli & Tadei 2008): items are inserted one by one at *extreme points*
  (corners of already placed items, projected back onto the nearest face), trying all 6
  axis-aligned rotations. Several item orders (volume, longest side, largest face) and merit
  rules (lowest layer first, most compact bounding box, wall by wall) are tried until one packs
  everything. It is a heuristic: it never returns an invalid layout, but may say "no" for a
  set that would fit. Results are memoised per (box dimensions, multiset of item shapes), so
  repeated shapes across orders and across subsets are checked once per process.
* **Choice** — the cheapest multiset of boxes:
  - up to ``EXACT_MAX_ITEMS`` items: set-partition DP over item bitmasks,
    ``best[S] = min_T cost[T] + best[S \\ T]`` (T containing the lowest item of S), with
    ``cost[T]`` the cheapest box whose geometric check accepts T. ``cost[T]`` is only computed
    when a cheap lower bound (weight, volume and per-item fit, no geometry) says T could
    improve ``best[S]`` — that keeps the number of 3D checks small. Optimal relative to the
    geometric check.
  - larger orders: greedy fills (items by volume, descending, into a box; the filled package
    then moves to the cheapest box that still holds it), one run per "filler" box type plus
    one that picks the lowest cost per packed volume at every step; the cheapest run wins.

Whatever happens, the result is never more expensive than one cheapest box per item, and
``time_limit_s`` bounds the optimisation: when it runs out, the best answer found so far (at
worst one box per item) is returned.

Weights: ``PackedBox.weight_g`` is the items only (no tare); a box's ``max_weight_g`` is
compared with that.
"""
from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from oms.engine.errors import FieldViolation, ValidationError
from oms.engine.models import Package

__all__ = [
    "Box",
    "Item",
    "Placement",
    "PackedBox",
    "PackResult",
    "DEFAULT_BOXES",
    "EXACT_MAX_ITEMS",
    "load_boxes",
    "fits",
    "pack",
    "to_packages",
]

#: ``(x, y, z, l, w, h)`` in mm: the item's corner nearest the box origin and its extent along
#: the box's length (x), width (y) and height (z) after rotation.
Placement = tuple[int, int, int, int, int, int]

#: orders up to this many items are optimised exactly (bitmask DP); larger ones greedily.
EXACT_MAX_ITEMS = 12


class _Cuboid:
    """Length x width x height in mm, shared by boxes and the items packed into them."""

    length_mm: int
    width_mm: int
    height_mm: int

    @property
    def dims(self) -> tuple[int, int, int]:
        return (self.length_mm, self.width_mm, self.height_mm)

    @property
    def volume_mm3(self) -> int:
        return self.length_mm * self.width_mm * self.height_mm


@dataclass(frozen=True)
class Box(_Cuboid):
    """A shipping container. Dimensions are inner dimensions in mm."""

    name: str
    length_mm: int
    width_mm: int
    height_mm: int
    max_weight_g: int
    cost_cents: int


@dataclass(frozen=True)
class Item(_Cuboid):
    """One physical unit to pack (a line of quantity 3 is three Items)."""

    sku: str
    length_mm: int
    width_mm: int
    height_mm: int
    weight_g: int


@dataclass
class PackedBox:
    """One package: ``items`` are indices into the ``items`` given to ``pack`` and
    ``placements[k]`` is where ``items[k]`` sits."""

    box: Box
    items: list[int]
    weight_g: int
    placements: list[Placement] = field(default_factory=list)


@dataclass
class PackResult:
    packages: list[PackedBox]
    cost_cents: int


# A realistic small-parcel catalogue (inner dimensions; US stock sizes rounded to mm; costs
# are typical per-unit prices of corrugated stock in volume, in cents).
DEFAULT_BOXES: tuple[Box, ...] = (
    Box("padded-envelope", 240, 340, 25, 1_000, 35),  # #4 bubble mailer, 9.5 x 13.5 in
    Box("mailer-s", 229, 152, 51, 2_000, 55),  # 9 x 6 x 2 in
    Box("box-s", 203, 152, 102, 5_000, 75),  # 8 x 6 x 4 in
    Box("box-m", 305, 229, 152, 10_000, 110),  # 12 x 9 x 6 in
    Box("box-l", 406, 305, 254, 20_000, 175),  # 16 x 12 x 10 in
    Box("carton-xl", 508, 406, 356, 25_000, 260),  # 20 x 16 x 14 in
    Box("carton-xxl", 610, 457, 457, 30_000, 350),  # 24 x 18 x 18 in
)


# --------------------------------------------------------------------------- validation


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_box(path: str, b: object, out: list[FieldViolation]) -> None:
    if not isinstance(b, Box):
        out.append(FieldViolation(path, f"must be a Box, got {type(b).__name__}"))
        return
    if not isinstance(b.name, str) or not b.name:
        out.append(FieldViolation(f"{path}.name", f"must be a non-empty string, got {b.name!r}"))
    for f in ("length_mm", "width_mm", "height_mm", "max_weight_g"):
        v = getattr(b, f)
        if not _is_int(v) or v <= 0:
            out.append(FieldViolation(f"{path}.{f}", f"must be a positive integer, got {v!r}"))
    if not _is_int(b.cost_cents) or b.cost_cents < 0:
        out.append(FieldViolation(f"{path}.cost_cents",
                                  f"must be a non-negative integer, got {b.cost_cents!r}"))


def _check_item(path: str, it: object, out: list[FieldViolation]) -> None:
    if not isinstance(it, Item):
        out.append(FieldViolation(path, f"must be an Item, got {type(it).__name__}"))
        return
    if not isinstance(it.sku, str) or not it.sku:
        out.append(FieldViolation(f"{path}.sku", f"must be a non-empty string, got {it.sku!r}"))
    for f in ("length_mm", "width_mm", "height_mm"):
        v = getattr(it, f)
        if not _is_int(v) or v <= 0:
            out.append(FieldViolation(f"{path}.{f}", f"must be a positive integer, got {v!r}"))
    if not _is_int(it.weight_g) or it.weight_g < 0:
        out.append(FieldViolation(f"{path}.weight_g",
                                  f"must be a non-negative integer, got {it.weight_g!r}"))


def _validate_boxes(boxes: Sequence[Box], path: str = "boxes") -> None:
    out: list[FieldViolation] = []
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Sequence):
        raise ValidationError.one(path, f"must be a list of Box, got {type(boxes).__name__}")
    if not boxes:
        raise ValidationError.one(path, "must contain at least one box")
    seen: dict[str, int] = {}
    for i, b in enumerate(boxes):
        _check_box(f"{path}[{i}]", b, out)
        if isinstance(b, Box) and isinstance(b.name, str):
            if b.name in seen:
                first = f"{path}[{seen[b.name]}]"
                out.append(FieldViolation(f"{path}[{i}].name",
                                          f"duplicate box name {b.name!r} (also {first})"))
            seen.setdefault(b.name, i)
    if out:
        raise ValidationError(out)


_BOX_FIELDS = ("name", "length_mm", "width_mm", "height_mm", "max_weight_g", "cost_cents")


def load_boxes(json_text: str | bytes) -> list[Box]:
    """A box catalogue from JSON: a list of objects with exactly the fields of ``Box``.

    Example: ``[{"name": "box-s", "length_mm": 203, "width_mm": 152, "height_mm": 102,
    "max_weight_g": 5000, "cost_cents": 75}]``. Raises ``ValidationError`` (paths like
    ``boxes[2].height_mm``) on malformed JSON, missing/unknown fields, bad values or duplicate
    names.
    """
    try:
        data = json.loads(json_text)
    except (ValueError, TypeError) as e:
        raise ValidationError.one("boxes", f"not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise ValidationError.one("boxes", f"must be a JSON list, got {type(data).__name__}")
    out: list[FieldViolation] = []
    boxes: list[Box] = []
    for i, obj in enumerate(data):
        path = f"boxes[{i}]"
        if not isinstance(obj, dict):
            out.append(FieldViolation(path, f"must be an object, got {obj!r}"))
            continue
        missing = [f for f in _BOX_FIELDS if f not in obj]
        unknown = sorted(set(obj) - set(_BOX_FIELDS))
        for f in missing:
            out.append(FieldViolation(f"{path}.{f}", "is required"))
        for f in unknown:
            out.append(FieldViolation(f"{path}.{f}", f"unknown field (value {obj[f]!r})"))
        if missing or unknown:
            continue
        boxes.append(Box(**{f: obj[f] for f in _BOX_FIELDS}))
    if out:
        raise ValidationError(out)
    _validate_boxes(boxes)
    return boxes


# --------------------------------------------------------------------------- geometry

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


# --------------------------------------------------------------------------- choice


def _validate_items(items: Sequence[Item]) -> None:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise ValidationError.one("items", f"must be a list of Item, got {type(items).__name__}")
    out: list[FieldViolation] = []
    for i, it in enumerate(items):
        _check_item(f"items[{i}]", it, out)
    if out:
        raise ValidationError(out)


class _Chooser:
    def __init__(self, items: Sequence[Item], boxes: Sequence[Box], deadline: float) -> None:
        self.items = items
        # cheapest first; ties: smaller volume, then name (deterministic)
        self.boxes = sorted(boxes, key=lambda b: (b.cost_cents, b.volume_mm3, b.name))
        self.deadline = deadline
        self.box_canon = [_canon(b.dims) for b in self.boxes]
        self.shape = [_canon(it.dims) for it in items]
        self.shape_arr = np.array(self.shape, dtype=np.int64).reshape(len(items), 3)
        self.weight = [it.weight_g for it in items]
        self.volume = [it.volume_mm3 for it in items]
        self.weight_arr = np.array(self.weight, dtype=np.int64)
        # single-item feasibility is exact: sorted sides + weight
        self.alone = [[_fits_alone(self.shape[i], self.box_canon[b])
                       and items[i].weight_g <= self.boxes[b].max_weight_g
                       for b in range(len(self.boxes))] for i in range(len(items))]
        self.single: list[int] = []
        bad: list[FieldViolation] = []
        for i, it in enumerate(items):
            b = next((b for b in range(len(self.boxes)) if self.alone[i][b]), -1)
            self.single.append(b)
            if b < 0:
                bad.append(FieldViolation(f"items[{i}]", self._why_not(it)))
        if bad:
            raise ValidationError(bad)

    def _why_not(self, it: Item) -> str:
        s = _canon(it.dims)
        by_size = [b for b, bc in zip(self.boxes, self.box_canon) if _fits_alone(s, bc)]
        desc = f"sku {it.sku!r} ({it.length_mm}x{it.width_mm}x{it.height_mm} mm, {it.weight_g} g)"
        if not by_size:
            big = max(self.boxes, key=lambda b: b.volume_mm3)
            return (f"{desc} is larger than every box in any rotation (largest: {big.name} "
                    f"{big.length_mm}x{big.width_mm}x{big.height_mm} mm)")
        heaviest = max(b.max_weight_g for b in by_size)
        return f"{desc} is heavier than any box it fits allows (at most {heaviest} g)"

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    # -- a package for a set of item indices, in the cheapest box the check accepts
    def cheapest_box(self, idx: Sequence[int], start: int = 0,
                     stop: int | None = None) -> tuple[int, list[Placement]] | None:
        weight = sum([self.weight[i] for i in idx])
        vol = sum([self.volume[i] for i in idx])
        for b in range(start, len(self.boxes) if stop is None else stop):
            box = self.boxes[b]
            if weight > box.max_weight_g or vol > box.volume_mm3:
                continue
            if not all(self.alone[i][b] for i in idx):
                continue
            pl = _fit_shapes(box, self.shape, self.weight, idx)
            if pl is not None:
                return b, pl
        return None

    def package(self, b: int, idx: Sequence[int], pl: Sequence[Placement]) -> PackedBox:
        order = sorted(range(len(idx)), key=lambda k: idx[k])
        return PackedBox(self.boxes[b], [idx[k] for k in order],
                         sum(self.items[i].weight_g for i in idx), [pl[k] for k in order])

    def singles(self) -> list[PackedBox]:
        out = []
        for i in range(len(self.items)):
            res = self.cheapest_box([i])
            assert res is not None  # single-item feasibility is exact
            out.append(self.package(res[0], [i], res[1]))
        return out

    # -- exact for small orders
    def exact(self) -> list[PackedBox] | None:
        """Set-partition DP over bitmasks; None when the deadline passes first."""
        n, nb = len(self.items), len(self.boxes)
        full = (1 << n) - 1
        inf = float("inf")
        w = [0] * (full + 1)
        v = [0] * (full + 1)
        ok_mask = [0] * nb
        for b in range(nb):
            for i in range(n):
                if self.alone[i][b]:
                    ok_mask[b] |= 1 << i
        for S in range(1, full + 1):
            low = S & -S
            i = low.bit_length() - 1
            w[S] = w[S ^ low] + self.items[i].weight_g
            v[S] = v[S ^ low] + self.items[i].volume_mm3
        # lower bound on the cost of one box for S: cheapest box passing the non-geometric
        # checks (the geometric check can only make it dearer)
        lb: list[float] = [inf] * (full + 1)
        lb[0] = 0
        for S in range(1, full + 1):
            for b in range(nb):
                bx = self.boxes[b]
                if S & ok_mask[b] == S and w[S] <= bx.max_weight_g and v[S] <= bx.volume_mm3:
                    lb[S] = bx.cost_cents
                    break
        exact_cost: dict[int, tuple[float, int, list[Placement] | None]] = {}

        def one_box(S: int) -> float:
            hit = exact_cost.get(S)
            if hit is None:
                idx = [i for i in range(n) if S >> i & 1]
                res = self.cheapest_box(idx)
                hit = (inf, -1, None) if res is None else (
                    self.boxes[res[0]].cost_cents, res[0], res[1])
                exact_cost[S] = hit
            return hit[0]

        best: list[float] = [0.0] * (full + 1)
        choice = [0] * (full + 1)
        for S in range(1, full + 1):
            if S & 1023 == 0 and self.expired():
                return None
            low = S & -S
            rest = S ^ low
            # start from "the lowest item alone" (always feasible, exact cost)
            bS = lb[low] + best[rest]
            cS = low
            sub = rest
            while sub:
                T = sub | low
                R = S ^ T
                if lb[T] + best[R] < bS and one_box(T) + best[R] < bS:
                    bS, cS = one_box(T) + best[R], T
                sub = (sub - 1) & rest
            best[S], choice[S] = bS, cS
        out: list[PackedBox] = []
        S = full
        while S:
            T = choice[S]
            idx = [i for i in range(n) if T >> i & 1]
            if T & (T - 1) == 0:
                res = self.cheapest_box(idx)
                assert res is not None
                out.append(self.package(res[0], idx, res[1]))
            else:
                _, b, pl = exact_cost[T]
                assert pl is not None
                out.append(self.package(b, idx, pl))
            S ^= T
        return out

    # -- greedy for large orders
    def _fill(self, b: int, remaining: list[int]) -> tuple[int, list[int], list[Placement]] | None:
        """Fill box b with remaining items (in the given order) by extreme-point insertion,
        then move the content to the cheapest box that still holds it."""
        box = self.boxes[b]
        order = np.array([i for i in remaining if self.alone[i][b]], dtype=np.int64)
        if order.size == 0:
            return None
        _, out = _ep_run(self.shape_arr, order, box.length_mm, box.width_mm, box.height_mm, 0,
                         self.weight_arr, box.max_weight_g, True)
        idx = [int(i) for i in order if out[i, 0] >= 0]
        pls: list[Placement] = [tuple(int(v) for v in out[i]) for i in idx]  # type: ignore[misc]
        if not idx:
            return None
        cheaper = self.cheapest_box(idx, 0, b)
        if cheaper is not None:
            return cheaper[0], idx, cheaper[1]
        return b, idx, pls

    def greedy(self, filler: int | None) -> list[PackedBox] | None:
        """Repeatedly fill one box. ``filler`` fixes the box type to fill (falling back to
        any when it can't take the largest remaining item); None picks the fill with the
        lowest cost per packed volume. None when the deadline passes."""
        remaining = sorted(range(len(self.items)),
                           key=lambda i: (-self.items[i].volume_mm3, -self.shape[i][0], i))
        out: list[PackedBox] = []
        while remaining:
            if self.expired():
                return None
            cands = [filler] if filler is not None and self.alone[remaining[0]][filler] \
                else range(len(self.boxes))
            best = None
            bkey: tuple | None = None
            for b in cands:
                f = self._fill(b, remaining)
                if f is None:
                    continue
                fb, idx, _ = f
                vol = sum(self.items[i].volume_mm3 for i in idx)
                key = (self.boxes[fb].cost_cents / vol, -len(idx), fb)
                if bkey is None or key < bkey:
                    best, bkey = f, key
            assert best is not None  # the largest remaining item fits some box alone
            fb, idx, pl = best
            out.append(self.package(fb, idx, pl))
            taken = set(idx)
            remaining = [i for i in remaining if i not in taken]
        return out


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


def _cost(pkgs: Sequence[PackedBox]) -> int:
    return sum(p.box.cost_cents for p in pkgs)


def pack(items: list[Item], boxes: Sequence[Box] = DEFAULT_BOXES, *,
         time_limit_s: float = 1.0) -> PackResult:
    """The cheapest set of boxes (from ``boxes``) holding ``items``, with a 3D layout per box.

    Packages are ordered by their smallest item index; ``PackedBox.items`` are ascending.
    An empty ``items`` gives an empty result. Raises ``ValidationError`` for malformed items
    or boxes and, naming the sku (field ``items[i]``), for an item that fits no box alone by
    size or by weight.
    """
    _validate_boxes(boxes)
    _validate_items(items)
    if not isinstance(time_limit_s, (int, float)) or not time_limit_s > 0:
        raise ValidationError.one("time_limit_s", f"must be > 0, got {time_limit_s!r}")
    if not items:
        return PackResult([], 0)
    _warm_up()  # JIT compilation (or loading it from the cache) is not search time
    ch = _Chooser(items, boxes, time.monotonic() + float(time_limit_s))
    best = ch.singles()
    if len(items) > 1:
        # the quick greedy first, so that a deadline hit by the exact search still leaves a
        # good answer
        fillers: list[int | None] = [None]
        if len(items) > EXACT_MAX_ITEMS:
            fillers += list(range(len(ch.boxes)))
        for filler in fillers:
            g = ch.greedy(filler)
            if g is None:
                break
            if _cost(g) < _cost(best):
                best = g
        if len(items) <= EXACT_MAX_ITEMS:
            ex = ch.exact()
            if ex is not None and _cost(ex) < _cost(best):
                best = ex
    best.sort(key=lambda p: p.items[0])
    return PackResult(best, _cost(best))


def to_packages(result: PackResult, items: Sequence[Item]) -> list[Package]:
    """The ``engine.models.Package`` records of a result (box name, weight, box dims, skus)."""
    return [Package(box=p.box.name, weight_g=p.weight_g, length_mm=p.box.length_mm,
                    width_mm=p.box.width_mm, height_mm=p.box.height_mm,
                    skus=tuple(items[i].sku for i in p.items))
            for p in result.packages]
