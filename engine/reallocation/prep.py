"""Preprocessing: lines -> items (one per (order, sku)), capacities, upper bounds."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from oms.engine.reallocation.problem import ReallocationProblem


@dataclass
class _Prep:
    n: int
    n_wh: int
    item_ptr: np.ndarray  # int64[n+1]
    item_order: np.ndarray  # int64[I]
    item_sku: np.ndarray  # int64[I], compact sku index
    item_qty: np.ndarray  # int64[I]
    line_item: np.ndarray  # int64[n_lines]
    cap: np.ndarray  # int64[n_wh, S]: free + held, compact skus
    cur: np.ndarray  # int64[I, n_wh]: current allocation per item
    ub: np.ndarray  # int64[I, n_wh]: most units the item may take from w
    cost: np.ndarray  # float64[n, n_wh]: dist + penalty
    sku_item_ptr: np.ndarray  # CSR: items of each compact sku
    sku_items: np.ndarray


def _prepare(p: ReallocationProblem) -> _Prep:
    n, n_wh = p.n_orders, p.n_warehouses
    n_lines = len(p.line_sku)
    line_order = np.repeat(np.arange(n, dtype=np.int64), np.diff(p.line_ptr))
    perm = np.lexsort((p.line_sku, line_order))
    so, ss = line_order[perm], p.line_sku[perm]
    start = np.ones(n_lines, dtype=bool)
    if n_lines:
        start[1:] = (so[1:] != so[:-1]) | (ss[1:] != ss[:-1])
    starts = np.flatnonzero(start)
    line_item = np.empty(n_lines, dtype=np.int64)
    line_item[perm] = np.cumsum(start) - 1
    item_order = so[starts]
    item_sku_raw = ss[starts]
    item_qty = (np.add.reduceat(p.line_qty[perm], starts) if n_lines
                else np.zeros(0, np.int64)).astype(np.int64)
    n_items = len(starts)
    item_ptr = np.searchsorted(item_order, np.arange(n + 1)).astype(np.int64)

    uniq, item_sku = np.unique(item_sku_raw, return_inverse=True)
    item_sku = item_sku.astype(np.int64)
    n_s = len(uniq)
    cur = np.zeros((n_items, n_wh), dtype=np.int64)
    np.add.at(cur, (line_item[p.cur_line], p.cur_wh), p.cur_qty)
    cap = p.free[:, uniq].astype(np.int64).copy()
    held = np.zeros((n_wh, n_s), dtype=np.int64)
    np.add.at(held, (p.cur_wh, item_sku[line_item[p.cur_line]]), p.cur_qty)
    cap += held
    capi = cap[:, item_sku].T  # [I, n_wh]
    # where an order may not take new stock (disabled, or outside its allowed warehouses)
    # an item keeps at most what it holds there now
    may = p.enabled[None, :] if p.allowed is None else p.may_take()[item_order]
    ub = np.where(may, np.minimum(item_qty[:, None], capi),
                  np.minimum(cur, capi)).astype(np.int64)
    order_by_sku = np.argsort(item_sku, kind="stable").astype(np.int64)
    sku_item_ptr = np.searchsorted(item_sku[order_by_sku], np.arange(n_s + 1)).astype(np.int64)
    return _Prep(
        n=n, n_wh=n_wh, item_ptr=item_ptr, item_order=item_order, item_sku=item_sku,
        item_qty=item_qty, line_item=line_item, cap=np.ascontiguousarray(cap),
        cur=cur, ub=np.ascontiguousarray(ub),
        cost=np.ascontiguousarray(p.dist + p.shipment_penalty_km),
        sku_item_ptr=sku_item_ptr, sku_items=order_by_sku,
    )


def _per_order_sum(item_ptr: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    """Sum rows of per_item[I, W] over the items of each order (items sorted by order)."""
    cs = np.zeros((per_item.shape[0] + 1,) + per_item.shape[1:], dtype=per_item.dtype)
    np.cumsum(per_item, axis=0, out=cs[1:])
    return cs[item_ptr[1:]] - cs[item_ptr[:-1]]


def _total_cost(pr: _Prep, a: np.ndarray, penalty: float) -> float:
    used = _per_order_sum(pr.item_ptr, (a > 0).astype(np.int64)) > 0
    k = used.sum(axis=1)
    return float(np.where(k > 0, np.where(used, pr.cost, 0.0).sum(axis=1) - penalty, 0.0).sum())


def _usage(pr: _Prep, a: np.ndarray) -> np.ndarray:
    u = np.zeros_like(pr.cap)
    ii, ww = np.nonzero(a)
    np.add.at(u, (ww, pr.item_sku[ii]), a[ii, ww])
    return u
