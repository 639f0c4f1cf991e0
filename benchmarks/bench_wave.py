"""Reproducible pick-wave benchmark: batching + routing vs. the hand baseline.

Wave (all from one seed): 10,000 orders; each has 1-5 lines (uniform), distinct SKUs drawn
from 2,000 SKUs (uniform popularity by default, ``--zipf S`` for popularity ~ 1/rank^S), each
line 1 item (70 %), 2 (20 %) or 3 (10 %). Every SKU sits in its own fixed random bin of a
40-aisle x 100-slot single-block warehouse with slot_length_m = 1.0 (a 1 m bay face) and
aisle_spacing_m = 3.0 (two 1 m racks + a 1 m aisle, centre to centre) -> aisles 100 m long,
117 m between the outer aisles. Carts take 8 orders / 30 items.

Reported: planning time of ``plan_batches`` (after a JIT warm-up, which is reported apart),
total exact route distance, the baseline (FCFS batches + S-shape routes) and their ratio, also
for FCFS + exact routing to separate the gain of routing from the gain of batching. Writes
``benchmarks/results/bench_wave.json`` and ``bench_wave.png``.

    .venv/bin/python -m benchmarks.bench_wave [--orders 10000] [--seed 42] [--budget 4.0]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from oms.engine.batching import (
    PickOrder,
    batch_lengths,
    fcfs_batches,
    plan_batches,
    wave_arrays,
)
from oms.engine.models import Layout, location_code
from oms.engine.routing import walk_points

RESULTS = Path(__file__).resolve().parent / "results"


def make_wave(n_orders: int, seed: int, *, n_skus: int = 2000, layout: Layout | None = None,
              zipf: float = 0.0) -> tuple[list[PickOrder], Layout, np.ndarray]:
    """Deterministic random wave. Returns (orders, layout, bin of each SKU as (aisle, slot))."""
    layout = layout or Layout(aisles=40, slots_per_aisle=100, slot_length_m=1.0,
                              aisle_spacing_m=3.0)
    rng = np.random.default_rng(seed)
    n_bins = layout.aisles * layout.slots_per_aisle
    bins = rng.choice(n_bins, size=n_skus, replace=False)
    sku_bin = np.stack([bins // layout.slots_per_aisle, bins % layout.slots_per_aisle], axis=1)
    pop = 1.0 / np.arange(1, n_skus + 1) ** zipf
    pop /= pop.sum()
    perm = rng.permutation(n_skus)  # popular SKUs are not slotted near the depot
    n_lines = rng.integers(1, 6, size=n_orders)
    orders: list[PickOrder] = []
    for o in range(n_orders):
        skus = perm[rng.choice(n_skus, size=int(n_lines[o]), replace=False, p=pop)]
        qty = rng.choice([1, 2, 3], size=skus.size, p=[0.7, 0.2, 0.1])
        orders.append(PickOrder(order_ref=o, aisles=sku_bin[skus, 0].astype(np.int64),
                                slots=sku_bin[skus, 1].astype(np.int64),
                                qty=qty.astype(np.int64)))
    return orders, layout, sku_bin


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--skus", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--zipf", type=float, default=0.0)
    ap.add_argument("--max-orders", type=int, default=8)
    ap.add_argument("--max-items", type=int, default=30)
    ap.add_argument("--budget", type=float, default=4.0,
                    help="time budget of the optimisation in plan_batches (s)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        print(msg, flush=True)

    say(f"[1/4] generating wave: {args.orders} orders, {args.skus} SKUs, seed {args.seed}")
    orders, layout, _ = make_wave(args.orders, args.seed, n_skus=args.skus, zipf=args.zipf)

    say("[2/4] JIT warm-up (numba cache load/compile) on a small wave")
    t = time.perf_counter()
    small, _, _ = make_wave(300, args.seed + 1, n_skus=args.skus)
    plan_batches(small, layout, args.max_orders, args.max_items, method="savings",
                 time_budget_s=1.0)
    plan_batches(small[:10], layout, 4, 12, method="cpsat", time_budget_s=1.0)
    warmup_s = time.perf_counter() - t

    say(f"[3/4] planning the wave (budget {args.budget:.1f} s) ...")
    plan = plan_batches(orders, layout, args.max_orders, args.max_items, method="savings",
                        time_budget_s=args.budget)

    say("[4/4] reference numbers: FCFS + exact routing, FCFS + largest gap")
    w = wave_arrays(orders, layout)
    fcfs = fcfs_batches(w.items, args.max_orders, args.max_items)
    fcfs_exact = float(batch_lengths(w, fcfs, "exact").sum())
    fcfs_lgap = float(batch_lengths(w, fcfs, "largest_gap").sum())
    # sanity: every order once, capacities respected
    seen = sorted(o for b in plan.batches for o in b)
    assert seen == list(range(len(orders)))
    for b in plan.batches:
        assert len(b) == 1 or (len(b) <= args.max_orders
                               and int(w.items[b].sum()) <= args.max_items)

    rows = [
        ("FCFS + S-shape (baseline)", len(fcfs), plan.baseline_distance),
        ("FCFS + largest gap", len(fcfs), fcfs_lgap),
        ("FCFS + exact route", len(fcfs), fcfs_exact),
        ("seed + local search + exact route", len(plan.batches), plan.total_distance),
    ]
    say("")
    say(f"{'method':36s} {'batches':>8s} {'distance m':>13s} {'ratio':>7s}")
    for name, nb, d in rows:
        say(f"{name:36s} {nb:8d} {d:13,.0f} {d / plan.baseline_distance:7.3f}")
    say("")
    say(f"planning time: {plan.planning_s:.2f} s (construction "
        f"{plan.stats.get('construct_s', 0):.2f} s -> "
        f"{plan.stats.get('construct_distance', 0):,.0f} m, local search "
        f"{plan.stats.get('local_search_s', 0):.2f} s); JIT warm-up {warmup_s:.1f} s; "
        f"cpus {os.cpu_count()}")
    say(f"ratio total / baseline = {plan.ratio:.3f}")

    result = {
        "wave": {"orders": args.orders, "skus": args.skus, "seed": args.seed,
                 "zipf": args.zipf, "lines_per_order": "uniform 1..5",
                 "qty_per_line": {"1": 0.7, "2": 0.2, "3": 0.1},
                 "layout": {"aisles": layout.aisles, "slots_per_aisle": layout.slots_per_aisle,
                            "slot_length_m": layout.slot_length_m,
                            "aisle_spacing_m": layout.aisle_spacing_m},
                 "cart": {"max_orders": args.max_orders, "max_items": args.max_items}},
        "planning_s": plan.planning_s,
        "budget_s": args.budget,
        "warmup_s": warmup_s,
        "stats": plan.stats,
        "batches": len(plan.batches),
        "total_distance_m": plan.total_distance,
        "baseline_distance_m": plan.baseline_distance,
        "ratio": plan.ratio,
        "fcfs_exact_distance_m": fcfs_exact,
        "fcfs_largest_gap_distance_m": fcfs_lgap,
        "baseline_batches": len(fcfs),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
    }
    (out / "bench_wave.json").write_text(json.dumps(result, indent=2))
    _plot(out / "bench_wave.png", rows, plan, w, layout)
    say(f"wrote {out / 'bench_wave.json'} and {out / 'bench_wave.png'}")
    return result


def _plot(path: Path, rows: list, plan, w, layout: Layout) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5),
                                   gridspec_kw={"width_ratios": [1, 1.3]})
    names = [r[0].replace(" + ", "\n+ ") for r in rows]
    vals = [r[2] / 1000 for r in rows]
    bars = ax1.bar(range(len(rows)), vals, color=["#999", "#bbb", "#79a", "#2a6"])
    ax1.set_xticks(range(len(rows)), names, fontsize=8)
    ax1.set_ylabel("total pick distance (km)")
    ax1.set_title(f"{w.n:,} orders, carts of {max(len(b) for b in plan.batches)} orders")
    for bar, r in zip(bars, rows):
        ax1.text(bar.get_x() + bar.get_width() / 2, bar.get_height(),
                 f"{r[2] / rows[0][2]:.2f}", ha="center", va="bottom")
    # the route of the batch with the median length
    b = int(np.argsort(plan.distances)[len(plan.distances) // 2])
    route = plan.routes[b]
    lines = w.optr[route[:, 0]] + route[:, 1]
    a, s = w.la[lines], w.ls[lines]
    pts = np.array(walk_points(np.arange(a.size), a, s, layout))
    L = layout.length_m
    for i in range(layout.aisles):
        ax2.plot([i * layout.aisle_spacing_m] * 2, [0, L], color="#ddd", lw=0.8, zorder=0)
    ax2.plot(pts[:, 0], pts[:, 1], color="#2a6", lw=1.5)
    ax2.scatter(a * layout.aisle_spacing_m, (s + 0.5) * layout.slot_length_m, color="#c33",
                s=18, zorder=3)
    ax2.scatter([0], [0], marker="s", color="k", s=40, zorder=3)
    first = location_code(int(a[0]), int(s[0])) if a.size else "-"
    ax2.set_title(f"median batch {b}: {len(plan.batches[b])} orders, {a.size} lines, "
                  f"{plan.distances[b]:.0f} m (first stop {first})", fontsize=9)
    ax2.set_xlabel("x (m)")
    ax2.set_ylabel("y (m)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
