"""Zone-skipping allocation (engine/allocation.py): hand-written cases of the policy, the numba
kernel against the plain reference, and invariants checked by replaying each plan."""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oms.engine.allocation import (
    BACKORDERED,
    FULL,
    PARTIAL,
    SPLIT,
    AllocationPlan,
    allocate,
    allocate_reference,
    warmup,
)
from oms.engine.errors import OmsError, ValidationError

Order = list[tuple[int, int]]  # (sku, qty) per line


def build(orders: list[Order]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ptr = [0]
    skus: list[int] = []
    qtys: list[int] = []
    for lines in orders:
        for s, q in lines:
            skus.append(s)
            qtys.append(q)
        ptr.append(len(skus))
    return (np.array(ptr, dtype=np.int64), np.array(skus, dtype=np.int64),
            np.array(qtys, dtype=np.int64))


def rows(plan: AllocationPlan) -> list[tuple[int, int, int, int]]:
    return list(zip(plan.alloc_order.tolist(), plan.alloc_line.tolist(),
                    plan.alloc_wh.tolist(), plan.alloc_qty.tolist()))


def assert_same(a: AllocationPlan, b: AllocationPlan) -> None:
    for name in ("status", "n_warehouses_used", "alloc_order", "alloc_line", "alloc_wh",
                 "alloc_qty"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def run(orders: list[Order], dist, available, enabled=None, allow_partial=None,
        max_set_size: int = 4) -> tuple[AllocationPlan, np.ndarray]:
    """Allocate with kernel and reference, assert they agree (plan and what is left), check the
    invariants, return (plan, availability left)."""
    ptr, sku, qty = build(orders)
    dist = np.asarray(dist, dtype=np.float64).reshape(len(orders), -1)
    available = np.asarray(available, dtype=np.int64)
    n_wh = available.shape[0]
    enabled = np.ones(n_wh, bool) if enabled is None else np.asarray(enabled, bool)
    allow_partial = (np.zeros(len(orders), bool) if allow_partial is None
                     else np.asarray(allow_partial, bool))
    left_k = available.copy()
    left_r = available.copy()
    pk = allocate(ptr, sku, qty, dist, left_k, enabled, allow_partial, max_set_size,
                  inplace=True)
    pr = allocate_reference(ptr, sku, qty, dist, left_r, enabled, allow_partial, max_set_size,
                            inplace=True)
    assert_same(pk, pr)
    np.testing.assert_array_equal(left_k, left_r)
    check_invariants(pk, ptr, sku, qty, dist, available, left_k, enabled, allow_partial,
                     max_set_size)
    return pk, left_k


def _covers(avail: np.ndarray, ws, demand: dict[int, int]) -> bool:
    return all(sum(int(avail[w, s]) for w in ws) >= q for s, q in demand.items())


def check_invariants(plan, ptr, sku, qty, dist, before, after, enabled, allow_partial,
                     max_set_size) -> None:
    """Replays the plan order by order against the availability each order saw, and checks what
    the policy promises independently of how the kernel searches."""
    n_orders = len(ptr) - 1
    assert plan.status.shape == (n_orders,) and plan.n_warehouses_used.shape == (n_orders,)
    assert np.all(plan.alloc_qty > 0)
    assert np.all(np.diff(plan.alloc_order) >= 0), "rows grouped by order in batch order"
    assert np.all(enabled[plan.alloc_wh]), "a disabled warehouse was used"
    assert np.all(after >= 0)
    taken = np.zeros_like(before)
    np.add.at(taken, (plan.alloc_wh, sku[plan.alloc_line]), plan.alloc_qty)
    np.testing.assert_array_equal(before - taken, after)

    ens = [w for w in range(before.shape[0]) if enabled[w]]
    avail = before.copy()
    rp = plan.row_ptr()
    for o in range(n_orders):
        r = rows(plan)[rp[o]:rp[o + 1]]
        lines = range(ptr[o], ptr[o + 1])
        assert all(row[0] == o and row[1] in lines for row in r)
        assert [row[1] for row in r] == sorted(row[1] for row in r), "rows by line"
        demand: dict[int, int] = {}
        for i in lines:
            demand[int(sku[i])] = demand.get(int(sku[i]), 0) + int(qty[i])
        per_line = {i: 0 for i in lines}
        for _, i, w, q in r:
            per_line[i] += q
            assert avail[w, sku[i]] >= q, "took more than available"
        used = {row[2] for row in r}
        assert plan.n_warehouses_used[o] == len(used)
        st_ = plan.status[o]
        singles = [w for w in ens if _covers(avail, [w], demand)]
        if st_ == FULL:
            assert len(used) == 1
            assert all(per_line[i] == qty[i] for i in lines)
            (w,) = used
            assert w == min(singles, key=lambda x: (dist[o, x], x)), "not the nearest single"
        elif st_ == SPLIT:
            assert not singles
            assert _covers(avail, ens, demand)
            assert all(per_line[i] == qty[i] for i in lines)
            if len(used) <= max_set_size:
                for k in range(2, len(used)):
                    assert not any(_covers(avail, c, demand) for c in combinations(ens, k)), \
                        "a smaller set would have covered the order"
            else:
                assert not any(_covers(avail, c, demand)
                               for k in range(2, max_set_size + 1)
                               for c in combinations(ens, k))
        elif st_ == PARTIAL:
            assert allow_partial[o] and not _covers(avail, ens, demand)
            assert r and all(per_line[i] <= qty[i] for i in lines)
        else:
            assert st_ == BACKORDERED
            assert r == []
            assert not _covers(avail, ens, demand)
        for _, i, w, q in r:
            avail[w, sku[i]] -= q


# --------------------------------------------------------------------------- hand-written


def test_warmup_compiles_the_kernel() -> None:
    from oms.engine import allocation

    warmup()
    # The numba dispatcher holds a compiled signature: the first request pays no compile.
    assert allocation._allocate_kernel.signatures


def test_single_nearest() -> None:
    plan, left = run([[(0, 2), (1, 1)]], [[5.0, 1.0, 3.0]], [[5, 5], [5, 5], [5, 5]])
    assert plan.status.tolist() == [FULL]
    assert rows(plan) == [(0, 0, 1, 2), (0, 1, 1, 1)]
    assert left.tolist() == [[5, 5], [3, 4], [5, 5]]


def test_nearest_lacks_stock_then_next() -> None:
    # w0 is nearest but lacks sku 1; w2 is next nearest and has everything.
    plan, _ = run([[(0, 1), (1, 1)]], [[1.0, 9.0, 2.0]], [[5, 0], [5, 5], [5, 5]])
    assert plan.status.tolist() == [FULL]
    assert set(plan.alloc_wh.tolist()) == {2}


def test_distance_tie_goes_to_lower_index() -> None:
    plan, _ = run([[(0, 1)]], [[2.0, 1.0, 1.0]], [[1], [1], [1]])
    assert plan.alloc_wh.tolist() == [1]


def test_single_warehouse_preferred_over_nearer_split() -> None:
    # w0 and w1 are very near but each lacks something; far w2 has all: zone skipping ships
    # the whole order from w2 rather than splitting.
    plan, _ = run([[(0, 1), (1, 1)]], [[1.0, 1.0, 900.0]], [[1, 0], [0, 1], [1, 1]])
    assert plan.status.tolist() == [FULL]
    assert plan.alloc_wh.tolist() == [2, 2]


def test_split_prefers_fewest_warehouses_over_distance() -> None:
    # w0..w3 are near with 1 each: four of them are needed for qty 4. w4, w5 are far with 2 each
    # and cover it with two; no near + far pair does (1 + 2 < 4).
    plan, _ = run([[(0, 4)]], [[1.0, 1.0, 1.0, 1.0, 500.0, 600.0]],
                  [[1], [1], [1], [1], [2], [2]])
    assert plan.status.tolist() == [SPLIT]
    assert rows(plan) == [(0, 0, 4, 2), (0, 0, 5, 2)]
    assert plan.n_warehouses_used.tolist() == [2]


def test_split_smallest_total_distance() -> None:
    # sku0 only at w0; sku1 at w1 (dist 5) and w2 (dist 3): {0, 2} has the smaller total.
    plan, _ = run([[(0, 2), (1, 2)]], [[1.0, 5.0, 3.0]], [[2, 0], [0, 2], [0, 2]])
    assert plan.status.tolist() == [SPLIT]
    assert rows(plan) == [(0, 0, 0, 2), (0, 1, 2, 2)]


def test_split_total_distance_tie_goes_to_lexicographically_smallest_set() -> None:
    # sku0 at w0/w1, sku1 at w2/w3; {0,2}, {0,3}, {1,2}, {1,3} all total 4.0: (0, 2) wins.
    dist = [[1.0, 1.0, 3.0, 3.0]]
    avail = [[1, 0], [1, 0], [0, 1], [0, 1]]
    plan, _ = run([[(0, 1), (1, 1)]], dist, avail)
    assert plan.status.tolist() == [SPLIT]
    assert sorted(set(plan.alloc_wh.tolist())) == [0, 2]
    # Equal distances everywhere: the set is (0, 2) again, never (1, 2) or (0, 3).
    plan, _ = run([[(0, 1), (1, 1)]], [[7.0] * 4], avail)
    assert sorted(set(plan.alloc_wh.tolist())) == [0, 2]


def test_split_lines_take_nearest_member_first() -> None:
    # Set must be {w0, w1} (sku1 only at w0, sku2 only at w1). sku0 (qty 3) exists 2 at w0
    # (near) and 1 at w1: split across the set, nearest first.
    plan, left = run([[(0, 3), (1, 1), (2, 1)]], [[2.0, 1.0]], [[2, 1, 0], [1, 0, 1]])
    assert plan.status.tolist() == [SPLIT]
    assert rows(plan) == [(0, 0, 1, 1), (0, 0, 0, 2), (0, 1, 0, 1), (0, 2, 1, 1)]
    assert left.sum() == 0


def test_split_line_not_split_when_one_member_holds_it() -> None:
    # Set {w0, w1}: w0 (near) holds 2 of sku0, w1 holds 5. The qty-3 line goes whole to w1
    # instead of 2 + 1.
    plan, _ = run([[(0, 3), (1, 1)]], [[1.0, 2.0]], [[2, 1], [5, 0]])
    assert plan.status.tolist() == [SPLIT]
    assert rows(plan) == [(0, 0, 1, 3), (0, 1, 0, 1)]


def test_same_sku_on_two_lines_is_summed() -> None:
    # Two lines of sku0 (2 + 2). w0 (near) has 3, w1 has 4: w0 cannot ship the order although
    # it can ship each line alone.
    plan, left = run([[(0, 2), (0, 2)]], [[1.0, 5.0]], [[3], [4]])
    assert plan.status.tolist() == [FULL]
    assert set(plan.alloc_wh.tolist()) == {1}
    assert left.tolist() == [[3], [0]]
    # Neither holds 4 alone: split. The first line takes w0; the second no longer fits in w0
    # (1 left) and goes whole to w1.
    plan, left = run([[(0, 2), (0, 2)]], [[1.0, 5.0]], [[3], [3]])
    assert plan.status.tolist() == [SPLIT]
    assert rows(plan) == [(0, 0, 0, 2), (0, 1, 1, 2)]
    assert left.tolist() == [[1], [1]]
    # Exactly 4 in the network: the second line has to be split.
    plan, left = run([[(0, 2), (0, 2)]], [[1.0, 5.0]], [[3], [1]])
    assert rows(plan) == [(0, 0, 0, 2), (0, 1, 0, 1), (0, 1, 1, 1)]
    assert left.tolist() == [[0], [0]]


def test_disabled_warehouse_skipped() -> None:
    plan, left = run([[(0, 1)]], [[1.0, 2.0]], [[5], [5]], enabled=[False, True])
    assert plan.alloc_wh.tolist() == [1]
    assert left.tolist() == [[5], [4]]
    # Only a disabled warehouse has it: backordered.
    plan, left = run([[(0, 1)]], [[1.0, 2.0]], [[5], [0]], enabled=[False, True])
    assert plan.status.tolist() == [BACKORDERED]
    assert left.tolist() == [[5], [0]]


def test_backordered_leaves_availability_untouched() -> None:
    avail = [[1, 0], [0, 1]]
    plan, left = run([[(0, 1), (1, 2)]], [[1.0, 2.0]], avail)
    assert plan.status.tolist() == [BACKORDERED]
    assert plan.n_rows == 0 and plan.n_warehouses_used.tolist() == [0]
    assert left.tolist() == avail


def test_allow_partial() -> None:
    avail = [[1, 0], [0, 1]]
    plan, left = run([[(0, 3), (1, 1)]], [[1.0, 2.0]], avail, allow_partial=[True])
    assert plan.status.tolist() == [PARTIAL]
    assert rows(plan) == [(0, 0, 0, 1), (0, 1, 1, 1)]
    assert left.tolist() == [[0, 0], [0, 0]]
    # Nothing of it exists anywhere: still BACKORDERED.
    plan, _ = run([[(0, 1)]], [[1.0, 2.0]], [[0, 5], [0, 5]], allow_partial=[True])
    assert plan.status.tolist() == [BACKORDERED]


def test_later_orders_see_earlier_takes() -> None:
    orders = [[(0, 2)], [(0, 2)], [(0, 2)], [(0, 1)]]
    dist = [[1.0, 2.0]] * 4
    plan, left = run(orders, dist, [[2], [3]], allow_partial=[False, False, True, False])
    assert plan.status.tolist() == [FULL, FULL, PARTIAL, BACKORDERED]
    assert rows(plan) == [(0, 0, 0, 2), (1, 1, 1, 2), (2, 2, 1, 1)]
    assert left.tolist() == [[0], [0]]


def test_greedy_fallback_beyond_max_set_size() -> None:
    # Needs all three warehouses; with max_set_size=2 the exact search gives up and the greedy
    # fallback still ships it (SPLIT, 3 warehouses).
    avail = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    order = [[(0, 1), (1, 1), (2, 1)]]
    plan, _ = run(order, [[3.0, 2.0, 1.0]], avail, max_set_size=2)
    assert plan.status.tolist() == [SPLIT]
    assert plan.n_warehouses_used.tolist() == [3]
    plan, _ = run(order, [[3.0, 2.0, 1.0]], avail, max_set_size=1)
    assert plan.status.tolist() == [SPLIT]


def test_no_enabled_warehouses_and_empty_batch() -> None:
    plan, _ = run([[(0, 1)]], [[1.0]], [[5]], enabled=[False], allow_partial=[True])
    assert plan.status.tolist() == [BACKORDERED]
    plan = allocate(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                    np.zeros((0, 2)), np.ones((2, 3), np.int64), np.ones(2, bool),
                    np.zeros(0, bool))
    assert plan.n_orders == 0 and plan.n_rows == 0


def test_copy_unless_inplace() -> None:
    ptr, sku, qty = build([[(0, 1)]])
    avail = np.array([[3]], dtype=np.int64)
    args = (ptr, sku, qty, np.zeros((1, 1)), avail, np.ones(1, bool), np.zeros(1, bool))
    for fn in (allocate, allocate_reference):
        fn(*args)
        assert avail.tolist() == [[3]]
    allocate(*args, inplace=True)
    allocate_reference(*args, inplace=True)
    assert avail.tolist() == [[1]]


def test_accepts_other_integer_dtypes_and_lists() -> None:
    plan = allocate([0, 2], np.array([0, 1], np.int32), [1, 1], [[1.0, 0.5]],
                    np.array([[1, 1], [1, 1]], np.int32), [True, True], [False])
    assert plan.alloc_wh.tolist() == [1, 1]


@pytest.mark.parametrize(
    "change",
    [
        {"line_qty": np.array([0])},
        {"line_qty": np.array([-1])},
        {"line_sku": np.array([2])},
        {"line_sku": np.array([-1])},
        {"line_ptr": np.array([0, 0, 1])},  # empty order (and dist shape mismatch)
        {"line_ptr": np.array([1, 1])},
        {"line_ptr": np.array([0, 2])},
        {"dist": np.zeros((1, 3))},
        {"dist": np.array([[np.nan, 1.0]])},
        {"dist": np.array([[-1.0, 1.0]])},
        {"available": np.array([[1, -1], [1, 1]])},
        {"available": np.array([[1.5, 1], [1, 1]])},
        {"enabled": np.ones(3, bool)},
        {"allow_partial": np.ones(2, bool)},
        {"max_set_size": 0},
        {"max_set_size": 2.5},
    ],
)
def test_validation(change: dict) -> None:
    args = dict(line_ptr=np.array([0, 1]), line_sku=np.array([0]), line_qty=np.array([1]),
                dist=np.array([[1.0, 2.0]]), available=np.array([[1, 1], [1, 1]]),
                enabled=np.ones(2, bool), allow_partial=np.zeros(1, bool), max_set_size=4)
    args.update(change)
    for fn in (allocate, allocate_reference):
        with pytest.raises(ValidationError) as exc:
            fn(**args)
        assert isinstance(exc.value, OmsError)


def test_inplace_needs_int64_c_array() -> None:
    ptr, sku, qty = build([[(0, 1)]])
    with pytest.raises(ValidationError):
        allocate(ptr, sku, qty, np.zeros((1, 1)), np.array([[3]], np.int32), np.ones(1, bool),
                 np.zeros(1, bool), inplace=True)


# --------------------------------------------------------------------------- kernel == reference


@st.composite
def instances(draw):
    n_wh = draw(st.integers(1, 6))
    n_skus = draw(st.integers(1, 8))
    n_orders = draw(st.integers(1, 10))
    orders = [
        [(draw(st.integers(0, n_skus - 1)), draw(st.integers(1, 4)))
         for _ in range(draw(st.integers(1, 4)))]
        for _ in range(n_orders)
    ]
    # Distances from a small set make ties (single and set totals) common.
    if draw(st.booleans()):
        d_el = st.sampled_from([0.0, 1.0, 2.0, 3.0, 5.0])
    else:
        d_el = st.floats(0.0, 5000.0, allow_nan=False, allow_infinity=False)
    dist = [[draw(d_el) for _ in range(n_wh)] for _ in range(n_orders)]
    available = [[draw(st.integers(0, 5)) for _ in range(n_skus)] for _ in range(n_wh)]
    enabled = [draw(st.integers(0, 5)) > 0 for _ in range(n_wh)]
    allow_partial = [draw(st.booleans()) for _ in range(n_orders)]
    max_set_size = draw(st.integers(1, 5))
    return orders, dist, available, enabled, allow_partial, max_set_size


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_kernel_matches_reference(inst) -> None:
    orders, dist, available, enabled, allow_partial, max_set_size = inst
    run(orders, dist, available, enabled, allow_partial, max_set_size)


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_reference_larger_networks(seed: int) -> None:
    """12-16 warehouses with sparse stock, so that sets of 3-4 and pruning get exercised."""
    rng = np.random.default_rng(seed)
    n_wh, n_skus, n_orders = int(rng.integers(12, 17)), 30, 60
    orders = [[(int(rng.integers(n_skus)), int(rng.integers(1, 4)))
               for _ in range(int(rng.integers(1, 6)))] for _ in range(n_orders)]
    dist = rng.uniform(0, 3000, (n_orders, n_wh)).round(int(rng.integers(0, 3)))
    available = rng.integers(0, 4, (n_wh, n_skus)) * (rng.random((n_wh, n_skus)) < 0.25)
    enabled = rng.random(n_wh) < 0.9
    allow_partial = rng.random(n_orders) < 0.5
    plan, _ = run(orders, dist, available, enabled, allow_partial, max_set_size=4)
    assert len(set(plan.status.tolist())) > 1


@settings(max_examples=100, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_unchecked_call_plans_the_same_as_the_checked_one(inst) -> None:
    """check=False (intake's arrays, built with the kernel's dtypes) skips only the checks."""
    orders, dist, available, enabled, allow_partial, max_set_size = inst
    ptr, sku, qty = build(orders)
    avail = np.array(available, dtype=np.int64)
    args = (ptr, sku, qty, np.array(dist, dtype=np.float64))
    masks = (np.array(enabled, dtype=np.bool_), np.array(allow_partial, dtype=np.bool_))
    checked = allocate(*args, avail, *masks, max_set_size)
    left = avail.copy()
    unchecked = allocate(*args, left, *masks, max_set_size, inplace=True, check=False)
    assert_same(checked, unchecked)
    taken = np.zeros_like(avail)
    for w, line, q in zip(unchecked.alloc_wh.tolist(), unchecked.alloc_line.tolist(),
                          unchecked.alloc_qty.tolist()):
        taken[w, int(sku[line])] += q
    assert (left == avail - taken).all()  # inplace: the plan's takes came off the array
