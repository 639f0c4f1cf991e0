"""Numba kernels of the integer phase: placing, improving, ejecting, repairing and reverting
orders. a[I, W] is an allocation (units of item i at w), r[W, S] residual stock."""
from __future__ import annotations

import numba as nb
import numpy as np
from oms.engine.reallocation.dp_kernels import (
    _cap,
    _max_items,
    _order_cost,
    _order_dp,
    _workspace,
)


@nb.njit(cache=True, nogil=True)
def _release(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] += a[i, w]


@nb.njit(cache=True, nogil=True)
def _take(o, item_ptr, item_sku, a, r):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                r[w, item_sku[i]] -= a[i, w]


@nb.njit(cache=True, nogil=True)
def _is_empty(o, item_ptr, a):
    for i in range(item_ptr[o], item_ptr[o + 1]):
        for w in range(a.shape[1]):
            if a[i, w] > 0:
                return False
    return True


@nb.njit(cache=True, nogil=True)
def _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Greedy for an order too big for the DP: items take from the cheapest warehouses first
    (a is empty for o). Returns the cost, or inf (a and r untouched) if it does not fit."""
    i0, i1 = item_ptr[o], item_ptr[o + 1]
    n_wh = cost.shape[1]
    for i in range(i0, i1):
        avail = 0
        for w in range(n_wh):
            avail += _cap(i, w, item_sku, ub, r)
        if avail < item_qty[i]:
            return np.inf
    byc = np.argsort(cost[o])
    for i in range(i0, i1):
        rem = item_qty[i]
        for x in range(n_wh):
            if rem == 0:
                break
            w = byc[x]
            t = min(rem, _cap(i, w, item_sku, ub, r))
            if t > 0:
                a[i, w] += t
                r[w, item_sku[i]] -= t
                rem -= t
    return _order_cost(o, item_ptr, a, cost, penalty)


@nb.njit(cache=True, nogil=True)
def _place(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws):
    """Allocate the (released, empty) order o in r as cheaply as possible; a[o] is written
    and r reduced. Returns the cost (inf: does not fit, nothing written)."""
    fbuf, ibuf, chs, dig, wl, lowk, out = ws
    v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, penalty, fbuf, ibuf,
                      chs, dig, wl, lowk, out)
    if not ex:
        return _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty)
    if v == np.inf:
        return v
    i0 = item_ptr[o]
    for i in range(i0, item_ptr[o + 1]):
        for w in range(a.shape[1]):
            a[i, w] = out[i - i0, w]
            r[w, item_sku[i]] -= out[i - i0, w]
    return v


@nb.njit(cache=True, nogil=True)
def _improve(orders, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty):
    """Re-insert each order at its cheapest allocation in the stock left by the others, if
    that is strictly cheaper; an empty order is inserted whatever it costs.
    Returns (cost decrease over the non-empty orders, orders left empty)."""
    n_wh = cost.shape[1]
    fbuf, ibuf, chs, dig, wl, lowk, out = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, r.shape[1]))
    gain = 0.0
    failed = 0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        if i1 == i0:
            continue
        empty = _is_empty(o, item_ptr, a)
        c0 = np.inf if empty else _order_cost(o, item_ptr, a, cost, penalty)
        _release(o, item_ptr, item_sku, a, r)
        v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, penalty, fbuf,
                          ibuf, chs, dig, wl, lowk, out)
        if ex and v < c0 - 1e-9:
            for i in range(i0, i1):
                for w in range(n_wh):
                    a[i, w] = out[i - i0, w]
                    r[w, item_sku[i]] -= out[i - i0, w]
            if not empty:
                gain += c0 - v
        elif empty:
            if _fill_split(o, item_ptr, item_sku, item_qty, ub, cost, r, a, penalty) == np.inf:
                failed += 1
        else:
            _take(o, item_ptr, item_sku, a, r)
    return gain, failed


@nb.njit(cache=True, nogil=True)
def _eject(orders, item_ptr, item_order, item_sku, item_qty, ub, cost, r, a, penalty,
           sku_item_ptr, sku_items, max_holders):
    """2-order ejections. For order o and a warehouse w that alone would ship o cheaper than
    its current allocation but lacks stock of exactly one of o's items, try each order o2
    holding that sku at w: release both, place o, then o2; keep it if the pair's cost
    strictly drops, else restore both. Returns the total cost decrease."""
    n_wh = cost.shape[1]
    ws = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, r.shape[1]))
    max_it = _max_items(item_ptr)
    save_o = np.empty((max_it, n_wh), np.int64)
    save_o2 = np.empty((max_it, n_wh), np.int64)
    gain = 0.0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        if i1 == i0:
            continue
        for w in range(n_wh):
            c0o = _order_cost(o, item_ptr, a, cost, penalty)
            if cost[o, w] - penalty >= c0o - 1e-9:
                continue
            blocked = -1
            n_blocked = 0
            possible = True
            for i in range(i0, i1):
                q = item_qty[i]
                if ub[i, w] < q:
                    possible = False
                    break
                if r[w, item_sku[i]] + a[i, w] < q:
                    n_blocked += 1
                    blocked = i
            if not possible or n_blocked != 1:
                continue
            s = item_sku[blocked]
            tried = 0
            for t in range(sku_item_ptr[s], sku_item_ptr[s + 1]):
                i2 = sku_items[t]
                o2 = item_order[i2]
                if o2 == o or a[i2, w] == 0:
                    continue
                if tried >= max_holders:
                    break
                tried += 1
                c0o = _order_cost(o, item_ptr, a, cost, penalty)
                c02 = _order_cost(o2, item_ptr, a, cost, penalty)
                j0, j1 = item_ptr[o2], item_ptr[o2 + 1]
                for i in range(i0, i1):
                    for x in range(n_wh):
                        save_o[i - i0, x] = a[i, x]
                for i in range(j0, j1):
                    for x in range(n_wh):
                        save_o2[i - j0, x] = a[i, x]
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for x in range(n_wh):
                        a[i, x] = 0
                for i in range(j0, j1):
                    for x in range(n_wh):
                        a[i, x] = 0
                c1o = _place(o, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws)
                c12 = np.inf
                if c1o < np.inf:
                    c12 = _place(o2, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a,
                                 penalty, ws)
                if c12 < np.inf and c1o + c12 < c0o + c02 - 1e-9:
                    gain += c0o + c02 - c1o - c12
                    break
                _release(o, item_ptr, item_sku, a, r)
                _release(o2, item_ptr, item_sku, a, r)
                for i in range(i0, i1):
                    for x in range(n_wh):
                        a[i, x] = save_o[i - i0, x]
                for i in range(j0, j1):
                    for x in range(n_wh):
                        a[i, x] = save_o2[i - j0, x]
                _take(o, item_ptr, item_sku, a, r)
                _take(o2, item_ptr, item_sku, a, r)
    return gain


@nb.njit(cache=True, nogil=True)
def _repair(failed, item_ptr, item_order, item_sku, item_qty, ub, cost, r, a, cur, penalty,
            sku_item_ptr, sku_items):
    """Make the allocation feasible again: every order in `failed` (empty, did not fit) goes
    back to its current allocation and is locked there; then while some (w, s) is
    over-committed, an unlocked order holding more of it than it holds now is moved elsewhere
    (without using (w, s)) or, if it does not fit, locked at its current allocation too.
    Terminates: each step lowers an overload or locks an order, and with all orders locked
    the allocation is the current one, which fits. Returns the number of orders locked."""
    n = item_ptr.shape[0] - 1
    n_wh = cost.shape[1]
    n_s = r.shape[1]
    ws = _workspace(n_wh, _max_items(item_ptr))
    lam0 = np.zeros((n_wh, n_s))
    locked = np.zeros(n, np.bool_)
    stack = np.empty(16, np.int64)
    top = 0
    n_locked = 0
    for o in failed:
        _release(o, item_ptr, item_sku, a, r)
        for i in range(item_ptr[o], item_ptr[o + 1]):
            for w in range(n_wh):
                a[i, w] = cur[i, w]
        _take(o, item_ptr, item_sku, a, r)
        locked[o] = True
        n_locked += 1
    # over-committed rows
    for w in range(n_wh):
        for s in range(n_s):
            if r[w, s] < 0:
                if top == stack.shape[0]:
                    stack = np.concatenate((stack, np.empty(top, np.int64)))
                stack[top] = w * n_s + s
                top += 1
    while top > 0:
        key = stack[top - 1]
        w = key // n_s
        s = key % n_s
        if r[w, s] >= 0:
            top -= 1
            continue
        victim = -1
        for t in range(sku_item_ptr[s], sku_item_ptr[s + 1]):
            i2 = sku_items[t]
            o2 = item_order[i2]
            if not locked[o2] and a[i2, w] > cur[i2, w]:
                victim = o2
                break
        if victim < 0:  # cannot happen (see docstring); stop rather than loop
            top -= 1
            continue
        _release(victim, item_ptr, item_sku, a, r)
        for i in range(item_ptr[victim], item_ptr[victim + 1]):
            for x in range(n_wh):
                a[i, x] = 0
        r[w, s] -= 1 << 40  # keep the victim off the over-committed row
        c = _place(victim, item_ptr, item_sku, item_qty, ub, cost, lam0, r, a, penalty, ws)
        r[w, s] += 1 << 40
        if c == np.inf:
            for i in range(item_ptr[victim], item_ptr[victim + 1]):
                for x in range(n_wh):
                    a[i, x] = cur[i, x]
                    if cur[i, x] > 0:
                        r[x, item_sku[i]] -= cur[i, x]
                        if r[x, item_sku[i]] < 0:
                            if top == stack.shape[0]:
                                stack = np.concatenate((stack, np.empty(top, np.int64)))
                            stack[top] = x * n_s + item_sku[i]
                            top += 1
            locked[victim] = True
            n_locked += 1
    return n_locked


@nb.njit(cache=True, nogil=True)
def _revert(orders, item_ptr, item_sku, cur, cost, r, a, penalty):
    """Put an order back on its current allocation when the new one is not cheaper and the
    stock is there, so that no reservation is moved for nothing. Returns #reverted."""
    n_wh = cost.shape[1]
    reverted = 0
    for o in orders:
        i0, i1 = item_ptr[o], item_ptr[o + 1]
        same = True
        for i in range(i0, i1):
            for w in range(n_wh):
                if a[i, w] != cur[i, w]:
                    same = False
        if same:
            continue
        if _order_cost(o, item_ptr, a, cost, penalty) < \
                _order_cost(o, item_ptr, cur, cost, penalty) - 1e-9:
            continue
        _release(o, item_ptr, item_sku, a, r)
        fits = True
        for i in range(i0, i1):
            for w in range(n_wh):
                if cur[i, w] > r[w, item_sku[i]]:
                    fits = False
        if fits:
            for i in range(i0, i1):
                for w in range(n_wh):
                    a[i, w] = cur[i, w]
            reverted += 1
        _take(o, item_ptr, item_sku, a, r)
    return reverted
