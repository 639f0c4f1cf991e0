"""Batching: feasibility of every method, FCFS semantics, CP-SAT as the optimum of small waves
(checked against an independent subset DP) and the heuristic's gap to it."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from oms.engine.batching import (
    BatchPlan,
    PickOrder,
    batch_lengths,
    cp_sat_batches,
    fcfs_batches,
    local_search,
    plan_batches,
    seed_batches,
    wave_arrays,
)
from oms.engine.errors import ValidationError
from oms.engine.models import Layout
from oms.engine.routing import exact_route, walk_length


def random_wave(n: int, layout: Layout, seed: int, *, max_lines: int = 5,
                max_qty: int = 3, n_skus: int | None = None) -> list[PickOrder]:
    rng = np.random.default_rng(seed)
    n_skus = n_skus or max(10, layout.aisles * layout.slots_per_aisle // 2)
    bins = rng.choice(layout.aisles * layout.slots_per_aisle, size=n_skus, replace=False)
    orders = []
    for o in range(n):
        k = int(rng.integers(1, max_lines + 1))
        skus = rng.choice(n_skus, size=k, replace=False)
        b = bins[skus]
        orders.append(PickOrder(order_ref=1000 + o, aisles=b // layout.slots_per_aisle,
                                slots=b % layout.slots_per_aisle,
                                qty=rng.integers(1, max_qty + 1, size=k)))
    return orders


def check_feasible(batches: list[list[int]], items: np.ndarray, max_orders: int,
                   max_items: int) -> None:
    flat = sorted(o for b in batches for o in b)
    assert flat == list(range(items.size)), "every order in exactly one batch"
    for b in batches:
        assert b, "no empty batch"
        if len(b) == 1:
            continue  # a single order always goes, even when larger than a cart
        assert len(b) <= max_orders
        assert int(items[b].sum()) <= max_items
    # an order too big for a cart travels alone
    for o in np.flatnonzero(items > max_items):
        assert [int(o)] in batches


def check_plan(plan: BatchPlan, orders: list[PickOrder], layout: Layout, max_orders: int,
               max_items: int) -> None:
    items = np.array([int(np.sum(o.qty)) for o in orders])
    check_feasible(plan.batches, items, max_orders, max_items)
    assert len(plan.routes) == len(plan.batches) == plan.distances.size
    for b, route, dist in zip(plan.batches, plan.routes, plan.distances):
        expected = sorted((o, k) for o in b for k in range(len(orders[o].aisles)))
        assert sorted(map(tuple, route.tolist())) == expected
        a = np.array([orders[o].aisles[k] for o, k in route])
        s = np.array([orders[o].slots[k] for o, k in route])
        # the route is realised in its order and is optimal
        assert walk_length(np.arange(a.size), a, s, layout) == pytest.approx(dist, abs=1e-7)
        assert exact_route(a, s, layout)[0] == pytest.approx(dist, abs=1e-7)
    assert plan.total_distance == pytest.approx(float(plan.distances.sum()))


# --------------------------------------------------------------------------------------------
def test_fcfs_semantics() -> None:
    items = np.array([3, 4, 2, 40, 1, 1, 1, 5, 5])
    assert fcfs_batches(items, max_orders=3, max_items=10) == [
        [0, 1, 2], [3], [4, 5, 6], [7, 8]]
    assert fcfs_batches(items, max_orders=8, max_items=8) == [
        [0, 1], [2], [3], [4, 5, 6, 7], [8]]
    assert fcfs_batches(items, max_orders=1, max_items=100) == [[i] for i in range(9)]
    assert fcfs_batches(np.zeros(0, dtype=np.int64), 3, 10) == []
    # deterministic
    rng = np.random.default_rng(1)
    it = rng.integers(1, 12, size=500)
    assert fcfs_batches(it, 8, 30) == fcfs_batches(it.copy(), 8, 30)
    check_feasible(fcfs_batches(it, 8, 30), it, 8, 30)


@pytest.mark.parametrize("max_orders,max_items", [(8, 30), (3, 7), (1, 100), (5, 4)])
def test_all_methods_feasible(max_orders: int, max_items: int) -> None:
    layout = Layout(aisles=12, slots_per_aisle=30)
    orders = random_wave(300, layout, seed=max_orders * 100 + max_items)
    # a few orders larger than any cart
    orders[7] = PickOrder(7, np.array([1, 5, 9]), np.array([0, 29, 10]), np.array([50, 1, 1]))
    orders[8] = PickOrder(8, np.array([0]), np.array([3]), np.array([max_items + 1]))
    w = wave_arrays(orders, layout)
    check_feasible(fcfs_batches(w.items, max_orders, max_items), w.items, max_orders, max_items)
    seed = seed_batches(w, max_orders, max_items)
    check_feasible(seed, w.items, max_orders, max_items)
    ls = local_search(w, seed, max_orders, max_items)
    check_feasible(ls, w.items, max_orders, max_items)
    assert batch_lengths(w, ls).sum() <= batch_lengths(w, seed).sum() + 1e-6
    for method in ("fcfs", "savings", "auto"):
        plan = plan_batches(orders, layout, max_orders, max_items, method=method)
        check_plan(plan, orders, layout, max_orders, max_items)
    base = plan_batches(orders, layout, max_orders, max_items, method="fcfs")
    assert base.baseline_distance == pytest.approx(
        float(batch_lengths(w, base.batches, "s_shape").sum()))


def test_plan_stop_flag_and_zero_budget_still_complete() -> None:
    layout = Layout(aisles=20, slots_per_aisle=40)
    orders = random_wave(400, layout, seed=5)
    ev = threading.Event()
    ev.set()
    for kw in ({"stop": ev}, {"stop": lambda: True}, {"time_budget_s": 0.0}):
        plan = plan_batches(orders, layout, 6, 20, method="savings", **kw)
        check_plan(plan, orders, layout, 6, 20)


def test_empty_wave() -> None:
    plan = plan_batches([], Layout(), 8, 30)
    assert plan.batches == [] and plan.total_distance == 0.0 and plan.ratio == 1.0


def test_rejects_bad_input() -> None:
    layout = Layout(aisles=4, slots_per_aisle=10)
    good = PickOrder(0, np.array([1]), np.array([2]), np.array([1]))
    with pytest.raises(ValidationError):
        plan_batches([good], layout, 0, 30)
    with pytest.raises(ValidationError):
        plan_batches([good], layout, 8, 0)
    with pytest.raises(ValidationError):
        plan_batches([good], layout, 8, 30, method="magic")
    with pytest.raises(ValidationError):
        plan_batches([PickOrder(0, np.array([4]), np.array([2]), np.array([1]))], layout, 8, 30)
    with pytest.raises(ValidationError):
        plan_batches([PickOrder(0, np.array([1]), np.array([2]), np.array([0]))], layout, 8, 30)
    with pytest.raises(ValidationError):
        plan_batches([PickOrder(0, np.array([], dtype=np.int64), np.array([], dtype=np.int64),
                                np.array([], dtype=np.int64))], layout, 8, 30)
    with pytest.raises(ValidationError):
        cp_sat_batches(wave_arrays([good] * 20, layout), 8, 30)


# --------------------------------------------------------------------------------------------
def subset_dp_optimum(w, max_orders: int, max_items: int) -> float:
    """Independent optimum of the set partitioning: DP over subsets of orders."""
    n = w.n
    feas = {}
    for mask in range(1, 1 << n):
        members = [o for o in range(n) if mask >> o & 1]
        if len(members) == 1 or (len(members) <= max_orders
                                 and int(w.items[members].sum()) <= max_items):
            feas[mask] = members
    masks = list(feas)
    lengths = dict(zip(masks, batch_lengths(w, [feas[m] for m in masks])))
    best = np.full(1 << n, np.inf)
    best[0] = 0.0
    for mask in range(1, 1 << n):
        low = mask & -mask
        sub = mask
        while sub:  # subsets of mask that contain its lowest order
            if sub & low and sub in lengths:
                v = lengths[sub] + best[mask ^ sub]
                if v < best[mask]:
                    best[mask] = v
            sub = (sub - 1) & mask
    return float(best[(1 << n) - 1])


def test_cp_sat_is_optimal_and_heuristic_gap(capsys: pytest.CaptureFixture[str]) -> None:
    layout = Layout(aisles=10, slots_per_aisle=30)
    gaps = []
    optimal_hits = 0
    for seed in range(24):
        n = 8 + seed % 5  # 8..12 orders
        orders = random_wave(n, layout, seed=100 + seed, max_lines=4, max_qty=2)
        w = wave_arrays(orders, layout)
        mo, mi = 4, 10
        exact, proven = cp_sat_batches(w, mo, mi, time_budget_s=20.0)
        assert proven
        check_feasible(exact, w.items, mo, mi)
        opt = float(batch_lengths(w, exact).sum())
        if n <= 10:
            assert opt == pytest.approx(subset_dp_optimum(w, mo, mi), abs=1e-6)
        # the heuristic as plan_batches runs it (seed construction + local search + restarts)
        heur = plan_batches(orders, layout, mo, mi, method="savings")
        check_plan(heur, orders, layout, mo, mi)
        h = heur.total_distance
        assert opt <= h + 1e-6
        gaps.append(h / opt - 1.0)
        optimal_hits += h <= opt + 1e-6
        # plan_batches picks CP-SAT for waves this small and returns its optimum
        plan = plan_batches(orders, layout, mo, mi, method="auto", time_budget_s=20.0)
        assert plan.method == "cpsat"
        assert plan.total_distance == pytest.approx(opt, abs=1e-6)
        check_plan(plan, orders, layout, mo, mi)
    with capsys.disabled():
        print(f"\n[batching] heuristic vs CP-SAT optimum on {len(gaps)} waves of 8-12 orders: "
              f"mean gap {100 * np.mean(gaps):.2f} %, max {100 * np.max(gaps):.2f} %, "
              f"optimal in {optimal_hits}/{len(gaps)}")
    assert np.mean(gaps) < 0.10


def test_heuristic_beats_baseline_mid_size(capsys: pytest.CaptureFixture[str]) -> None:
    layout = Layout(aisles=20, slots_per_aisle=50)
    orders = random_wave(1500, layout, seed=9, n_skus=400)
    plan = plan_batches(orders, layout, 8, 30, method="savings", time_budget_s=3.0)
    check_plan(plan, orders, layout, 8, 30)
    w = wave_arrays(orders, layout)
    fcfs_exact = float(batch_lengths(w, plan.baseline_batches).sum())
    with capsys.disabled():
        print(f"\n[batching] 1500 orders: savings {plan.total_distance:,.0f} m, FCFS+exact "
              f"{fcfs_exact:,.0f} m, FCFS+S-shape {plan.baseline_distance:,.0f} m, "
              f"ratio {plan.ratio:.3f}")
    assert plan.total_distance < fcfs_exact < plan.baseline_distance
    assert plan.ratio < 0.75
