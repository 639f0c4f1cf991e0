"""Numba kernels of the exact per-order pricing DP. a[I, W] is an allocation (units of item i
at w), r[W, S] residual stock."""
from __future__ import annotations

import numba as nb
import numpy as np

# Limits of the per-order DP. Orders beyond them (far more items or units than real orders
# have) get a weaker but valid bound and a greedy allocation.
_MAX_MASK_ITEMS = 10  # whole-item DP: 3^L set-partition steps
_MAX_STATES = 4096  # split DP: prod(qty + 1) states
_MAX_WORK = 400_000  # inner-loop steps per order in the split DP


@nb.njit(cache=True, nogil=True)
def _max_items(item_ptr):
    m = 1
    for o in range(item_ptr.shape[0] - 1):
        m = max(m, item_ptr[o + 1] - item_ptr[o])
    return m


@nb.njit(cache=True, nogil=True)
def _order_cost(o, item_ptr, a, cost, penalty):
    total = 0.0
    k = 0
    for w in range(a.shape[1]):
        for i in range(item_ptr[o], item_ptr[o + 1]):
            if a[i, w] > 0:
                total += cost[o, w]
                k += 1
                break
    if k == 0:
        return 0.0
    return total - penalty


@nb.njit(cache=True, nogil=True)
def _cap(i, w, item_sku, ub, r):
    c = r[w, item_sku[i]]
    u = ub[i, w]
    c = u if u < c else c
    return c if c > 0 else 0


@nb.njit(cache=True, nogil=True)
def _dp_lower(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty):
    """A valid lower bound for orders too big for the DP: one shipment at least, and every
    unit at its cheapest price among warehouses that may supply it."""
    n_wh = cost.shape[1]
    cmin = np.inf
    for w in range(n_wh):
        cmin = min(cmin, cost[o, w])
    v = cmin - penalty
    for k in range(n_it):
        i = i0 + k
        lm = np.inf
        for w in range(n_wh):
            if _cap(i, w, item_sku, ub, r) > 0:
                lm = min(lm, lam[w, item_sku[i]])
        v += item_qty[i] * lm
    return v


@nb.njit(cache=True, nogil=True)
def _dp_mask(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, ibuf, lowk,
             out):
    """Exact when no item has partial stock anywhere (every warehouse holds 0 or >= qty of
    it): then an optimal allocation ships every item whole from one warehouse (prices are per
    unit, so a split item could move entirely to the cheaper of its two warehouses). For each
    warehouse, the priced cost of every subset of the items it can take whole; then a
    set-partition DP over the items (parts containing the lowest item)."""
    n_wh = cost.shape[1]
    m_all = 1 << n_it
    best = fbuf[0]
    f = fbuf[1]
    sv = fbuf[2]
    bestw = ibuf[0]
    choice = ibuf[1]
    for m in range(m_all):
        best[m] = np.inf
        bestw[m] = -1
    for w in range(n_wh):
        ok = 0
        for k in range(n_it):
            if _cap(i0 + k, w, item_sku, ub, r) >= item_qty[i0 + k]:
                ok |= 1 << k
        if ok == 0:
            continue
        sv[0] = cost[o, w]
        for m in range(1, m_all):
            if m & ~ok:
                continue
            k = lowk[m]
            i = i0 + k
            v = sv[m & (m - 1)] + item_qty[i] * lam[w, item_sku[i]]
            sv[m] = v
            if v < best[m]:
                best[m] = v
                bestw[m] = w
    f[0] = 0.0
    for m in range(1, m_all):
        fm = np.inf
        ch = -1
        low = m & (-m)
        rest = m ^ low
        s = rest
        while True:
            part = s | low
            bp = best[part]
            if bp < np.inf:
                v = bp + f[m ^ part]
                if v < fm:
                    fm = v
                    ch = part
            if s == 0:
                break
            s = (s - 1) & rest
        f[m] = fm
        choice[m] = ch
    full = m_all - 1
    if f[full] == np.inf:
        return np.inf
    for k in range(n_it):
        for w in range(n_wh):
            out[k, w] = 0
    m = full
    while m != 0:
        part = choice[m]
        w = bestw[part]
        for k in range(n_it):
            if (part >> k) & 1:
                out[k, w] = item_qty[i0 + k]
        m ^= part
    return f[full] - penalty


@nb.njit(cache=True, nogil=True)
def _dp_count(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, chs, dig, wl,
              out):
    """Exact with splits: a knapsack over warehouses (each used at most once) whose state is
    the vector of units covered per item, mixed radix prod(qty + 1). Stage w: either w is not
    used, or it ships a non-zero vector u <= min(covered, cap_w) at cost c[o, w] + lam . u.
    dig holds strides [0:16], caps [16:32], box [32:48] and the odometer u [48:64]."""
    n_wh = cost.shape[1]
    big = 1
    for k in range(n_it):
        dig[k] = big
        big *= item_qty[i0 + k] + 1
    n_states = big
    g = fbuf[1]
    g[0] = 0.0
    for v in range(1, n_states):
        g[v] = np.inf
    nw = 0
    for w in range(n_wh):
        for k in range(n_it):
            if _cap(i0 + k, w, item_sku, ub, r) > 0:
                wl[nw] = w
                nw += 1
                break
    for j in range(nw):
        w = wl[j]
        cw = cost[o, w]
        for k in range(n_it):
            c = _cap(i0 + k, w, item_sku, ub, r)
            dig[16 + k] = min(c, item_qty[i0 + k])
        for v in range(n_states - 1, 0, -1):
            rem = v
            any_ = False
            for k in range(n_it):
                q1 = item_qty[i0 + k] + 1
                d = rem % q1
                rem //= q1
                b = d if d < dig[16 + k] else dig[16 + k]
                dig[32 + k] = b
                dig[48 + k] = 0
                if b > 0:
                    any_ = True
            chs[j, v] = -1
            if not any_:
                continue
            bv = g[v]
            ch = -1
            uidx = 0
            ucost = cw
            while True:
                k = 0
                while k < n_it:
                    i = i0 + k
                    if dig[48 + k] < dig[32 + k]:
                        dig[48 + k] += 1
                        uidx += dig[k]
                        ucost += lam[w, item_sku[i]]
                        break
                    uidx -= dig[48 + k] * dig[k]
                    ucost -= dig[48 + k] * lam[w, item_sku[i]]
                    dig[48 + k] = 0
                    k += 1
                if k == n_it:
                    break
                cand = g[v - uidx] + ucost
                if cand < bv:
                    bv = cand
                    ch = uidx
            if ch >= 0:
                g[v] = bv
                chs[j, v] = ch
    full = n_states - 1
    if g[full] == np.inf:
        return np.inf
    for k in range(n_it):
        for w in range(n_wh):
            out[k, w] = 0
    v = full
    for j in range(nw - 1, -1, -1):
        if v == 0:
            break
        u = chs[j, v]
        if u > 0:
            w = wl[j]
            rem = u
            for k in range(n_it):
                q1 = item_qty[i0 + k] + 1
                out[k, w] += rem % q1
                rem //= q1
            v -= u
    # recompute from the allocation: the DP value carries float drift from the odometer
    total = 0.0
    for w in range(n_wh):
        used = False
        for k in range(n_it):
            if out[k, w] > 0:
                used = True
                total += out[k, w] * lam[w, item_sku[i0 + k]]
        if used:
            total += cost[o, w]
    return total - penalty


@nb.njit(cache=True, nogil=True)
def _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, ibuf, chs,
              dig, wl, lowk, out):
    """Cheapest allocation of order o with stock min(ub, r) and unit prices lam:
    min over allocations of (sum of c[o, w] over warehouses used - penalty + lam . units).

    Returns (value, exact). exact: value is the minimum and out[k, w] holds the units of the
    order's k-th item at w (inf: the order does not fit). Not exact: the order is too big for
    the DP; value is a lower bound and out is not written.
    """
    i0 = item_ptr[o]
    n_it = item_ptr[o + 1] - i0
    n_wh = cost.shape[1]
    if n_it == 0:
        return 0.0, True
    partial = False
    n_states = 1
    work = 1.0
    for k in range(n_it):
        i = i0 + k
        q = item_qty[i]
        tot = 0
        for w in range(n_wh):
            c = _cap(i, w, item_sku, ub, r)
            if c > 0:
                tot += c
                if c < q:
                    partial = True
        if tot < q:
            return np.inf, True
        n_states *= q + 1
        work *= (q + 1) * (q + 2) / 2
    if not partial:
        if n_it <= _MAX_MASK_ITEMS:
            return _dp_mask(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf,
                            ibuf, lowk, out), True
    elif n_states <= _MAX_STATES and work * n_wh <= _MAX_WORK and n_it <= 16:
        return _dp_count(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf, chs,
                         dig, wl, out), True
    return _dp_lower(o, i0, n_it, item_sku, item_qty, ub, cost, lam, r, penalty), False


@nb.njit(cache=True, nogil=True)
def _workspace(n_wh, max_items):
    size = max(1 << _MAX_MASK_ITEMS, _MAX_STATES)
    fbuf = np.empty((3, size))
    ibuf = np.empty((2, size), np.int64)
    chs = np.empty((n_wh, _MAX_STATES), np.int64)
    dig = np.empty(64, np.int64)
    wl = np.empty(n_wh, np.int64)
    lowk = np.zeros(1 << _MAX_MASK_ITEMS, np.int64)
    for m in range(1, 1 << _MAX_MASK_ITEMS):
        k = 0
        while not (m >> k) & 1:
            k += 1
        lowk[m] = k
    out = np.zeros((max_items, n_wh), np.int64)
    return fbuf, ibuf, chs, dig, wl, lowk, out


@nb.njit(cache=True, nogil=True)
def _price_all(orders, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, val, exact,
               out_a):
    """Pricing of the given orders at prices lam (r = full capacity): val[o] and, when
    exact, the cheapest allocation in out_a (rows of o's items)."""
    n_wh = cost.shape[1]
    fbuf, ibuf, chs, dig, wl, lowk, out = _workspace(n_wh, _max_items(item_ptr))
    for o in orders:
        v, ex = _order_dp(o, item_ptr, item_sku, item_qty, ub, cost, lam, r, penalty, fbuf,
                          ibuf, chs, dig, wl, lowk, out)
        val[o] = v
        exact[o] = ex
        if ex and v < np.inf:
            i0 = item_ptr[o]
            for k in range(item_ptr[o + 1] - i0):
                for w in range(n_wh):
                    out_a[i0 + k, w] = out[k, w]
