"""The wave as the batching methods see it, and what they all share.

``PickOrder`` is one order's pick lines; ``wave_arrays`` validates a wave and flattens it into
``WaveArrays`` (CSR arrays plus 64-bit aisle masks) for the numba kernels. ``batch_lengths``
routes many batches at once (``engine.routing.route_lengths``), and
* ``fcfs_batches`` — arrival order, a new cart whenever the next order does not fit — is the
  baseline of every plan and the fallback of the other methods.

This module sits below the method modules (``engine.batch_search``, ``engine.batch_exact``)
and ``engine.batching``, which re-exports its public names, so none of them imports another
in a cycle.
"""
from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from oms.engine.errors import ValidationError
from oms.engine.models import Layout
from oms.engine.routing import route_lengths

__all__ = [
    "StopFlag",
    "PickOrder",
    "WaveArrays",
    "wave_arrays",
    "fcfs_batches",
    "batch_lengths",
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
# route lengths of many batches
# --------------------------------------------------------------------------------------------
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
