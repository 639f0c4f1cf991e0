"""Allocation limited to each order's warehouses (engine.scoped_allocation, sales channels):
the merged plan against the kernel run scope by scope, kernel against reference, channel
scopes, and re-allocation with a per-order ``allowed`` mask (engine.reallocation)."""
from __future__ import annotations

import numpy as np
import pytest

from oms.engine import allocation
from oms.engine import reallocation as R
from oms.engine.channels import Channel
from oms.engine.errors import PreconditionError
from oms.engine.reallocation import ReallocationProblem, reallocate
from oms.engine.scoped_allocation import (ChannelScopes, allocate_scoped, nearest_allowed,
                                          scope_groups)


def rows(plan: allocation.AllocationPlan) -> list[tuple[int, int, int, int]]:
    return list(zip(plan.alloc_order.tolist(), plan.alloc_line.tolist(),
                    plan.alloc_wh.tolist(), plan.alloc_qty.tolist()))


def random_batch(rng: np.random.Generator, n_orders: int, n_wh: int, n_skus: int):
    counts = rng.integers(1, 4, n_orders)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    sku = rng.integers(0, n_skus, int(ptr[-1])).astype(np.int64)
    qty = rng.integers(1, 5, int(ptr[-1])).astype(np.int64)
    dist = rng.uniform(0, 3000, (n_orders, n_wh)).round(1)
    avail = rng.integers(0, 6, (n_wh, n_skus)).astype(np.int64)
    part = rng.random(n_orders) < 0.3
    return ptr, sku, qty, dist, avail, part


def random_masks(rng: np.random.Generator, n_wh: int, n_masks: int) -> list[np.ndarray]:
    masks = [np.ones(n_wh, dtype=np.bool_)]
    while len(masks) < n_masks:
        m = rng.random(n_wh) < 0.5
        if m.any():
            masks.append(m)
    return masks


def by_hand(ptr, sku, qty, dist, avail, masks, scope, part) -> tuple[list, np.ndarray]:
    """The documented semantics, spelled out: scopes in order of first appearance, each a
    plain ``allocate`` over its orders on the shared stock; rows mapped back, sorted by
    order."""
    avail = avail.copy()
    out = []
    seen: list[int] = []
    for s in scope.tolist():
        if s not in seen:
            seen.append(s)
    for s in seen:
        ks = [k for k in range(len(scope)) if scope[k] == s]
        lines = [list(range(ptr[k], ptr[k + 1])) for k in ks]
        sub_ptr = np.cumsum([0] + [len(x) for x in lines])
        flat = [i for x in lines for i in x]
        plan = allocation.allocate(sub_ptr, sku[flat], qty[flat], dist[ks], avail, masks[s],
                                   part[ks], inplace=True)
        for o, ln, w, q in rows(plan):
            out.append((ks[o], flat[ln], w, q))
    out.sort(key=lambda r: r[0])  # stable: an order's rows keep their order
    return out, avail


@pytest.mark.parametrize("seed", range(40))
def test_scoped_plan_is_the_kernel_run_scope_by_scope(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_wh = int(rng.integers(2, 7))
    ptr, sku, qty, dist, avail, part = random_batch(rng, int(rng.integers(1, 25)), n_wh, 5)
    masks = random_masks(rng, n_wh, int(rng.integers(1, 4)))
    scope = rng.integers(0, len(masks), len(ptr) - 1)
    before = avail.copy()
    plan = allocate_scoped(ptr, sku, qty, dist, avail, masks, scope, part)
    assert np.array_equal(avail, before)  # not inplace: untouched
    want, left = by_hand(ptr, sku, qty, dist, before, masks, scope, part)
    assert rows(plan) == want
    # every row is inside its order's mask, and the stock taken is what the plan says
    for o, _, w, _ in rows(plan):
        assert masks[scope[o]][w]
    taken = np.zeros_like(before)
    np.add.at(taken, (plan.alloc_wh, sku[plan.alloc_line]), plan.alloc_qty)
    assert np.array_equal(before - taken, left)
    # kernel and reference agree, in place too
    ref_avail = before.copy()
    ref = allocate_scoped(ptr, sku, qty, dist, ref_avail, masks, scope, part, inplace=True,
                          reference=True)
    assert rows(ref) == rows(plan)
    assert np.array_equal(ref.status, plan.status)
    assert np.array_equal(ref.n_warehouses_used, plan.n_warehouses_used)
    assert np.array_equal(ref_avail, left)
    assert np.array_equal(plan.row_ptr()[-1], len(want))


def test_one_scope_is_one_plain_allocate_call() -> None:
    rng = np.random.default_rng(7)
    ptr, sku, qty, dist, avail, part = random_batch(rng, 30, 5, 4)
    mask = np.array([True, False, True, True, False])
    a1, a2 = avail.copy(), avail.copy()
    plan = allocate_scoped(ptr, sku, qty, dist, a1, [np.ones(5, np.bool_), mask],
                           np.ones(30, np.int64), part, inplace=True, check=False)
    ref = allocation.allocate(ptr, sku, qty, dist, a2, mask, part, inplace=True)
    assert rows(plan) == rows(ref) and np.array_equal(a1, a2)
    assert set(plan.alloc_wh.tolist()) <= {0, 2, 3}


def test_earlier_scope_goes_first_on_shared_stock() -> None:
    # order 0 (any warehouse) and order 1 (warehouse 1 only) want the only unit at w1;
    # order 2 (w1 only) comes after order 1's scope has started: scope 1 runs second
    ptr = np.array([0, 1, 2, 3])
    sku = np.zeros(3, np.int64)
    qty = np.ones(3, np.int64)
    dist = np.array([[5.0, 1.0], [5.0, 1.0], [5.0, 1.0]])
    avail = np.array([[1], [1]], np.int64)
    masks = [np.ones(2, np.bool_), np.array([False, True])]
    plan = allocate_scoped(ptr, sku, qty, dist, avail, masks, [1, 0, 1], np.zeros(3, np.bool_))
    assert plan.status.tolist() == [allocation.FULL, allocation.FULL, allocation.BACKORDERED]
    assert rows(plan) == [(0, 0, 1, 1), (1, 1, 0, 1)]


def test_scope_groups_and_nearest_allowed() -> None:
    assert [(s, ks.tolist()) for s, ks in scope_groups([2, 0, 2, 1, 0])] == \
        [(2, [0, 2]), (0, [1, 4]), (1, [3])]
    assert scope_groups([]) == []
    dist = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 3.0], [1.0, 2.0, 3.0]])
    masks = [np.ones(3, np.bool_), np.array([False, True, True]), np.array([False, False, True])]
    assert nearest_allowed(dist, masks, [0, 1, 2]).tolist() == [0, 1, 2]
    assert nearest_allowed(dist, masks, [1, 1, 1]).tolist() == [1, 1, 1]
    # a tie goes to the lower index
    assert nearest_allowed(np.array([[2.0, 2.0, 2.0]]), masks, [1]).tolist() == [1]


def test_bad_scope_input_is_rejected() -> None:
    from oms.engine.errors import ValidationError
    ptr, sku, qty = np.array([0, 1]), np.array([0]), np.array([1])
    dist, avail = np.array([[1.0, 2.0]]), np.array([[1], [1]])
    with pytest.raises(ValidationError):
        allocate_scoped(ptr, sku, qty, dist, avail, [np.ones(2, bool)], [1], np.zeros(1, bool))
    with pytest.raises(ValidationError):
        allocate_scoped(ptr, sku, qty, dist, avail, [np.ones(3, bool)], [0], np.zeros(1, bool))


def test_channel_scopes() -> None:
    chans = {
        "east": Channel("east", warehouse_ids=("B", "C")),
        "east2": Channel("east2", warehouse_ids=("C", "B", "ZZ")),  # same set: same scope
        "all": Channel("all"),
        "off": Channel("off", warehouse_ids=("A",), disabled=True),
        "gone": Channel("gone", warehouse_ids=("ZZ",)),
        "dark": Channel("dark", warehouse_ids=("D",)),
    }
    sc = ChannelScopes(["A", "B", "C", "D"], chans, np.array([True, True, True, False]))
    assert sc.scope("web") == 0 and sc.scope("all") == 0
    east = sc.scope("east")
    assert east == 1 and sc.scope("east2") == 1
    assert sc.masks[1].tolist() == [False, True, True, False]
    for cid, msg in (("off", "channel off is disabled"),
                     ("gone", "no enabled warehouse for channel gone"),
                     ("dark", "no enabled warehouse for channel dark")):
        err = sc.scope(cid)
        assert isinstance(err, PreconditionError) and str(err) == msg
    # filling backorders serves a disabled channel's existing orders in its warehouses
    keep = ChannelScopes(["A", "B"], chans, refuse_disabled=False)
    s = keep.scope("off")
    assert s == 1 and keep.masks[1].tolist() == [True, False]


# --------------------------------------------------------------------------- re-allocation


def _two_wh_problem(allowed=None) -> ReallocationProblem:
    # one order of one unit, now at the far warehouse 1; warehouse 0 is near and has stock
    return ReallocationProblem(
        line_ptr=np.array([0, 1]), line_sku=np.array([0]), line_qty=np.array([1]),
        dist=np.array([[10.0, 900.0]]), free=np.array([[5], [5]]), cur_line=np.array([0]),
        cur_wh=np.array([1]), cur_qty=np.array([1]), enabled=np.array([True, True]),
        allowed=allowed)


def test_reallocation_keeps_an_order_in_its_allowed_warehouses() -> None:
    R.warmup()
    free = reallocate(_two_wh_problem(), time_budget_s=5.0)
    assert free.wh.tolist() == [0]  # nearer: moved
    held = reallocate(_two_wh_problem(np.array([[False, True]])), time_budget_s=5.0)
    assert held.wh.tolist() == [1] and not held.changed.any()
    with pytest.raises(Exception):
        _two_wh_problem(np.array([True, True])).validate()


@pytest.mark.parametrize("seed", range(8))
def test_reallocation_takes_new_stock_only_where_allowed(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    n, n_wh, n_skus = 12, 4, 3
    counts = rng.integers(1, 3, n)
    ptr = np.concatenate([[0], np.cumsum(counts)])
    sku = rng.integers(0, n_skus, ptr[-1])
    qty = rng.integers(1, 3, ptr[-1])
    cur_wh = rng.integers(0, n_wh, ptr[-1])
    allowed = rng.random((n, n_wh)) < 0.5
    allowed[np.arange(n), rng.integers(0, n_wh, n)] = True
    p = ReallocationProblem(
        line_ptr=ptr, line_sku=sku, line_qty=qty, dist=rng.uniform(0, 2000, (n, n_wh)),
        free=rng.integers(0, 6, (n_wh, n_skus)), cur_line=np.arange(ptr[-1]), cur_wh=cur_wh,
        cur_qty=qty, enabled=np.ones(n_wh, bool), allowed=allowed)
    res = reallocate(p, time_budget_s=5.0)
    line_order = np.repeat(np.arange(n), counts)
    held = {(int(li), int(w)): int(q) for li, w, q in zip(p.cur_line, p.cur_wh, p.cur_qty)}
    for li, w, q in zip(res.line.tolist(), res.wh.tolist(), res.qty.tolist()):
        if not allowed[line_order[li], w]:
            assert q <= held.get((li, w), 0), "new stock outside the order's warehouses"
