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

The types, their validation and the box catalogue are in ``boxes``, the geometry (numba
kernels) in ``pack_geometry``; this module holds the choice and re-exports the public names.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from oms.engine.boxes import (
    DEFAULT_BOXES,
    Box,
    Item,
    PackedBox,
    PackResult,
    Placement,
    _validate_boxes,
    _validate_items,
    load_boxes,
)
from oms.engine.errors import FieldViolation, ValidationError
from oms.engine.models import Package
from oms.engine.pack_geometry import _canon, _ep_run, _fit_shapes, _fits_alone, _warm_up, fits

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

#: orders up to this many items are optimised exactly (bitmask DP); larger ones greedily.
EXACT_MAX_ITEMS = 12


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
