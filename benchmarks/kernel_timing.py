"""Direct timing of engine.allocation.allocate against allocate_reference on one batch."""
from __future__ import annotations

import time
from typing import Any

from benchmarks.procs import log


def kernel_benchmark(quick: bool) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    from benchmarks.bench_allocation import make_batch  # noqa: PLC0415
    from oms.engine.allocation import allocate, allocate_reference, warmup  # noqa: PLC0415

    warmup()
    batch = make_batch(stock_share=0.85)
    n_lines = int(batch["line_ptr"][-1])
    plan, ref = allocate(**batch), allocate_reference(**batch)
    same = bool(np.array_equal(plan.status, ref.status) and np.array_equal(plan.alloc_qty, ref.alloc_qty)
                and np.array_equal(plan.alloc_wh, ref.alloc_wh))

    def best(fn: Any, min_total: float, max_rounds: int) -> tuple[float, int]:
        b, spent, rounds = float("inf"), 0.0, 0
        while rounds < max_rounds and (rounds < 3 or spent < min_total):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            b, spent, rounds = min(b, dt), spent + dt, rounds + 1
        return b, rounds

    t_alloc, r_alloc = best(lambda: allocate(**batch), 1.0 if quick else 3.0, 5000)
    t_ref, r_ref = best(lambda: allocate_reference(**batch), 0.0 if quick else 2.0, 3 if quick else 10)
    res = {"orders": plan.n_orders, "lines": n_lines, "scenario": "typical (85% of SKUs stocked per warehouse)",
           "warehouses": int(batch["dist"].shape[1]), "allocate_s": t_alloc, "reference_s": t_ref,
           "allocate_rounds": r_alloc, "reference_rounds": r_ref,
           "lines_per_s": n_lines / t_alloc, "reference_lines_per_s": n_lines / t_ref,
           "ratio": t_ref / t_alloc, "same_result": same}
    log(f"  allocate {res['lines_per_s']:,.0f} lines/s, reference {res['reference_lines_per_s']:,.0f} "
        f"lines/s, {res['ratio']:.0f}x (identical plans: {same})")
    return res
