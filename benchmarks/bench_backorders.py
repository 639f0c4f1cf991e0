"""Benchmark: filling backorders when stock arrives, against intake of the same orders.

The real oms-server on a fresh embedded Redis, 20 warehouses at real US metro ZIP codes and
2,000 skus that start with no stock. Rounds of N orders (1-3 lines, Zipf-popular skus, ship-to
ZIPs drawn from the US ZIP table) go through BatchPlaceOrders in batches of 500: with nothing
in stock every one is BACKORDERED. A purchase order then adds exactly what they need, spread
over three random warehouses per sku (AdjustStock), and one FillBackorders call hands it out.
Per round the table gives the intake rate of those orders (the ceiling: the same orders, the
same server, the same run), the fill rate, their ratio, how many were filled, and the audit.

Run:  .venv/bin/python -m benchmarks.bench_backorders [--sizes 2500,5000,10000,20000] [--seed K]
          [--no-plot]
Writes benchmarks/results/backorders.json and backorders.png.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.procs import BENCH_KEY, auth_args
from benchmarks.run import ServerProc, log
from oms.clients.client import OmsClient
from oms.clients.metros import METROS
from oms.engine.geo import all_us_zips
from oms.v1 import common_pb2 as c
from oms.v1 import reporting_pb2 as rep

ROOT = Path(__file__).resolve().parents[1]
N_SKUS = 2000
BATCH = 500


def network(cl: OmsClient) -> list[str]:
    wids = []
    for wid, name, z in METROS[:20]:
        cl.upsert_warehouse(wid, name, postal_code=z, aisles=30, slots_per_aisle=60)
        wids.append(wid)
    rng = random.Random(1)
    for k in range(N_SKUS):
        # registers the sku and its bin location in one warehouse, with nothing on hand
        cl.set_stock(wids[k % len(wids)], f"SKU-{k:04d}", 0,
                     f"A{rng.randrange(30):02d}-S{rng.randrange(60):03d}")
    return wids


def one_round(cl: OmsClient, wids: list[str], n: int, rng: random.Random, zips: list[str],
              tag: str) -> dict[str, object]:
    weights = [1.0 / (k + 1) ** 0.8 for k in range(N_SKUS)]
    reqs = []
    for i in range(n):
        skus = dict.fromkeys(rng.choices(range(N_SKUS), weights=weights, k=rng.randint(1, 3)))
        reqs.append(cl.order_request([(f"SKU-{k:04d}", rng.choice((1, 1, 2)), 999) for k in skus],
                                     postal_code=rng.choice(zips), idempotency_key=f"{tag}-{i}"))
    t0 = time.perf_counter()
    placed = []
    for i in range(0, n, BATCH):
        placed += cl.batch_place_orders(reqs[i:i + BATCH])
    intake_s = time.perf_counter() - t0
    back = [o for o in placed if isinstance(o, c.Order) and o.status == c.ORDER_STATUS_BACKORDERED]
    need: Counter[str] = Counter()
    for o in back:
        for ln in o.lines:
            need[ln.sku] += ln.quantity
    for sku, q in need.items():
        for part, w in zip((q - 2 * (q // 3), q // 3, q // 3), rng.sample(wids, 3)):
            if part:
                cl.adjust_stock(w, sku, part, reason="purchase order", idempotency_key=f"{tag}-{sku}-{w}")
    t0 = time.perf_counter()
    r = cl.fill_backorders(max_orders=len(back) + 10)
    fill_s = time.perf_counter() - t0
    audit = cl.reporting.Audit(rep.AuditRequest())
    return {"orders": n, "backordered": len(back), "intake_per_s": n / intake_s,
            "fill_s": fill_s, "fill_per_s": r.filled / fill_s if fill_s else 0.0,
            "filled": r.filled, "waiting": r.waiting, "skipped": r.skipped,
            "ratio": (r.filled / fill_s) / (n / intake_s) if fill_s else 0.0,
            "audit_ok": audit.ok, "problems": list(audit.problems)[:5]}


def plot(rows: list[dict[str, object]], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [r["backordered"] for r in rows]
    ax.plot(xs, [r["intake_per_s"] for r in rows], "o-", label="BatchPlaceOrders intake (ceiling)")
    ax.plot(xs, [r["fill_per_s"] for r in rows], "s-", label="FillBackorders")
    ax.set_xscale("log")
    ax.set_xlabel("backordered orders in the round")
    ax.set_ylabel("orders / s")
    ax.set_title("Backorder filling vs intake of the same orders")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="2500,5000,10000,20000")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="oms-bench-backorders-"))
    server = ServerProc("oms-server", [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0",
                                       "--data-dir", str(tmp / "redis"), "--log-level", "WARNING",
                                       "--fraud-hold-seconds", "0", *auth_args(tmp)],
                       tmp / "oms-server.log").start()
    rows = []
    try:
        with OmsClient(server.target, timeout=300, api_key=BENCH_KEY) as cl:
            log("network: 20 warehouses, 2,000 skus with nothing on hand")
            wids = network(cl)
            rng = random.Random(args.seed)
            zips = [z[0] for z in all_us_zips()]
            for k, n in enumerate(sizes):
                row = one_round(cl, wids, n, rng, zips, f"r{k}")
                rows.append(row)
                log(f"{n:,} orders: intake {row['intake_per_s']:,.0f}/s, {row['filled']:,} filled "
                    f"at {row['fill_per_s']:,.0f}/s, audit {'ok' if row['audit_ok'] else 'FAILED'}")
    finally:
        server.stop()
    print(f"\n{'orders':>7} {'backordered':>11} {'intake/s':>9} {'fill/s':>8} {'fill/intake':>11} "
          f"{'filled':>7} {'waiting':>7} {'skipped':>7}  audit")
    for r in rows:
        print(f"{r['orders']:7,} {r['backordered']:11,} {r['intake_per_s']:9,.0f} {r['fill_per_s']:8,.0f} "
              f"{r['ratio']:11.2f} {r['filled']:7,} {r['waiting']:7,} {r['skipped']:7,}  "
              f"{'ok' if r['audit_ok'] else 'FAILED'}")
    (out / "backorders.json").write_text(json.dumps({"rows": rows, "seed": args.seed}, indent=2))
    if not args.no_plot:
        plot(rows, out / "backorders.png")
    return 0 if all(r["audit_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
