"""Allocation kernel vs the plain-Python reference on the same realistic batch.

Batch: ship-to points at random active US ZIP centroids, 20 warehouses at real metro ZIPs,
2,000 SKUs, 1,000 orders of 1-5 lines (3 on average). In the "typical" scenario each warehouse
stocks ~85% of the catalogue, so most orders ship whole from one warehouse; the "scarce"
scenario stocks ~35%, which forces many split orders through the exact subset search.

    pytest benchmarks/bench_allocation.py            # pytest-benchmark micro-benchmarks
    python -m benchmarks.bench_allocation            # table of order-lines/s and the ratio
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from oms.engine.allocation import (
    STATUS_NAMES,
    _allocate_kernel,
    _prepare,
    allocate,
    allocate_reference,
    warmup,
)
from oms.engine.geo import all_us_zips, distance_matrix, geocode_us_zip

METRO_ZIPS = (
    "10001", "90012", "60601", "77002", "85004", "19103", "78205", "92101", "75201", "98101",
    "80202", "30303", "33131", "02108", "55401", "64106", "84101", "38103", "43215", "97204",
)

SCENARIOS = {"typical": 0.85, "scarce": 0.35}


def make_batch(n_orders: int = 1000, n_skus: int = 2000, stock_share: float = 0.85,
               seed: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``allocate`` describing one realistic batch."""
    rng = np.random.default_rng(seed)
    wh = [geocode_us_zip(z) for z in METRO_ZIPS]
    assert all(p is not None for p in wh)
    wh_lat = np.array([p[0] for p in wh])  # type: ignore[index]
    wh_lon = np.array([p[1] for p in wh])  # type: ignore[index]
    zips = all_us_zips()
    pick = rng.integers(0, len(zips), n_orders)
    o_lat = np.array([zips[i][1] for i in pick])
    o_lon = np.array([zips[i][2] for i in pick])
    n_lines = rng.integers(1, 6, n_orders)
    line_ptr = np.concatenate(([0], np.cumsum(n_lines))).astype(np.int64)
    # Mildly skewed demand: rank-based Zipf(0.7), the top SKU gets ~3% of the lines.
    popularity = 1.0 / np.arange(1, n_skus + 1) ** 0.7
    popularity = rng.permutation(popularity / popularity.sum())
    line_sku = rng.choice(n_skus, int(line_ptr[-1]), p=popularity).astype(np.int64)
    line_qty = rng.integers(1, 4, int(line_ptr[-1])).astype(np.int64)
    stocked = rng.random((len(METRO_ZIPS), n_skus)) < stock_share
    available = (rng.integers(1, 60, (len(METRO_ZIPS), n_skus)) * stocked).astype(np.int64)
    return dict(
        line_ptr=line_ptr,
        line_sku=line_sku,
        line_qty=line_qty,
        dist=distance_matrix(o_lat, o_lon, wh_lat, wh_lon),
        available=available,
        enabled=np.ones(len(METRO_ZIPS), dtype=np.bool_),
        allow_partial=rng.random(n_orders) < 0.2,
    )


def _kernel_only(batch: dict[str, Any]) -> Callable[[], object]:
    """The jitted kernel alone, on pre-validated arrays (the copy of availability included)."""
    args = _prepare(**batch, max_set_size=4, inplace=False)
    avail = args[4]

    def run() -> object:
        return _allocate_kernel(*args[:4], avail.copy(), *args[5:])

    return run


# --------------------------------------------------------------------------- pytest-benchmark

_BATCH: dict[str, Any] | None = None


def _batch() -> dict[str, Any]:
    global _BATCH
    if _BATCH is None:
        warmup()
        _BATCH = make_batch()
    return _BATCH


def test_allocate_kernel(benchmark) -> None:
    plan = benchmark(allocate, **_batch())
    assert plan.n_orders == 1000


def test_allocate_kernel_only(benchmark) -> None:
    benchmark(_kernel_only(_batch()))


def test_allocate_reference(benchmark) -> None:
    plan = benchmark.pedantic(allocate_reference, kwargs=_batch(), rounds=3, iterations=1)
    assert plan.n_orders == 1000


# --------------------------------------------------------------------------- table mode


def _best_seconds(fn: Callable[[], object], min_total: float, max_rounds: int) -> float:
    best = float("inf")
    spent = 0.0
    rounds = 0
    while rounds < max_rounds and (rounds < 3 or spent < min_total):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        rounds += 1
    return best


def main() -> None:
    t_start = time.perf_counter()
    warmup()
    header = (f"{'scenario':<9} {'orders':>6} {'lines':>6}  {'status mix':<40} "
              f"{'allocate()':>14} {'kernel only':>14} {'reference':>12} {'ratio':>7}")
    print("order-lines/s, best of repeated runs, one thread")
    print(header)
    print("-" * len(header))
    for name, share in SCENARIOS.items():
        batch = make_batch(stock_share=share)
        n_lines = int(batch["line_ptr"][-1])
        plan = allocate(**batch)
        ref = allocate_reference(**batch)
        assert np.array_equal(plan.status, ref.status)
        assert np.array_equal(plan.alloc_wh, ref.alloc_wh)
        assert np.array_equal(plan.alloc_qty, ref.alloc_qty)
        counts = np.bincount(plan.status, minlength=4)
        mix = " ".join(f"{STATUS_NAMES[s]}={counts[s]}" for s in range(4) if counts[s])
        t_alloc = _best_seconds(lambda: allocate(**batch), 1.0, 2000)
        t_kernel = _best_seconds(_kernel_only(batch), 1.0, 2000)
        t_ref = _best_seconds(lambda: allocate_reference(**batch), 2.0, 5)
        print(f"{name:<9} {plan.n_orders:>6} {n_lines:>6}  {mix:<40} "
              f"{n_lines / t_alloc:>14,.0f} {n_lines / t_kernel:>14,.0f} "
              f"{n_lines / t_ref:>12,.0f} {t_ref / t_alloc:>6.0f}x")
    total = time.perf_counter() - t_start
    print(f"(ratio = reference time / allocate() time; total {total:.1f} s)")


if __name__ == "__main__":
    main()
