"""Benchmark: what durability costs. Intake with the embedded Redis fsyncing its AOF on every
write (``--fsync always``) against once a second (``--fsync everysec``).

Per round, for each mode (the order alternates between rounds, so that a machine that gets
slower or faster during the run does not favour one mode): a fresh oms-server (``--workers 2``,
fresh data dir, embedded Redis with AOF), the oms-load setup (20 warehouses at real metro ZIPs),
then sustained batch intake (BatchPlaceOrders, 500 x 3-line orders a call, 16 calls in flight)
and unary intake (PlaceOrder, 64 calls in flight). The table gives the median over rounds per
mode and the cost of ``always`` as a share of ``everysec``; the default of ``oms-server
--fsync`` follows from it (``always`` unless it costs more than 20 % of batch throughput).

Run:  .venv/bin/python -m benchmarks.bench_fsync [--rounds 3] [--batch-s 15] [--unary-s 10]
Writes benchmarks/results/fsync.json and fsync.png.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import auth_args, setup_stock
from benchmarks.run import ServerProc, log, run_load

ROOT = Path(__file__).resolve().parents[1]
MODES = ("always", "everysec")
COST_LIMIT = 0.20  # the default is "always" unless it costs more than this share of batch intake


def one_mode(mode: str, rnd: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = tmp / f"{mode}-{rnd}"
    d.mkdir()
    cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--log-level", "WARNING", "--workers", "2", "--fsync", mode,
           *auth_args(d)]
    srv = ServerProc(f"oms-server --fsync {mode}", cmd, d / "server.log").start()
    try:
        setup_stock(srv, args.skus)
        common = ["--channels", "32", "--skus", str(args.skus), "--pool-cache", str(tmp / "pools")]
        batch = run_load(f"{mode} batch r{rnd}", srv, common + [
            "--mode", "batch", "--lines", "3", "--batch-size", "500", "--concurrency", "16"],
            d, warmup=2.0, duration=args.batch_s)
        unary = run_load(f"{mode} unary r{rnd}", srv, common + [
            "--mode", "unary", "--concurrency", "64"], d, warmup=2.0, duration=args.unary_s)
    finally:
        srv.stop()
    return {"mode": mode, "round": rnd,
            "batch_orders_per_s": batch["orders_per_s"], "batch_p99_ms": batch["latency_ms"]["p99"],
            "batch_errors": batch["errors"],
            "unary_orders_per_s": unary["orders_per_s"], "unary_p99_ms": unary["latency_ms"]["p99"],
            "unary_errors": unary["errors"]}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {k: statistics.median(r[k] for r in mine)
                     for k in ("batch_orders_per_s", "batch_p99_ms", "unary_orders_per_s",
                               "unary_p99_ms")}
    a, e = out["always"], out["everysec"]
    out["batch_cost"] = 1 - a["batch_orders_per_s"] / e["batch_orders_per_s"]
    out["unary_cost"] = 1 - a["unary_orders_per_s"] / e["unary_orders_per_s"]
    out["default"] = "always" if out["batch_cost"] <= COST_LIMIT else "everysec"
    return out


def table(s: dict[str, Any]) -> str:
    rows = ["| mode | batch orders/s | batch p99 ms | unary orders/s | unary p99 ms |",
            "|---|---|---|---|---|"]
    for mode in MODES:
        m = s[mode]
        rows.append(f"| {mode} | {m['batch_orders_per_s']:,.0f} | {m['batch_p99_ms']:.1f} | "
                    f"{m['unary_orders_per_s']:,.0f} | {m['unary_p99_ms']:.1f} |")
    rows.append(f"| cost of always | {s['batch_cost']:+.1%} | | {s['unary_cost']:+.1%} | |")
    return "\n".join(rows)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in ((axes[0], "batch_orders_per_s", "BatchPlaceOrders"),
                           (axes[1], "unary_orders_per_s", "PlaceOrder, c=64")):
        for i, mode in enumerate(MODES):
            ys = [r[key] for r in runs if r["mode"] == mode]
            ax.scatter([i] * len(ys), ys, label=mode)
            ax.hlines(statistics.median(ys), i - 0.2, i + 0.2)
        ax.set_xticks(range(len(MODES)), [f"--fsync {m}" for m in MODES])
        ax.set_title(title)
        ax.set_ylabel("orders/s")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_fsync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-s", type=float, default=15.0)
    ap.add_argument("--unary-s", type=float, default=10.0)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="oms-fsync-") as t:
        tmp = Path(t)
        for rnd in range(args.rounds):
            order = MODES if rnd % 2 == 0 else MODES[::-1]
            for mode in order:
                log(f"round {rnd + 1}/{args.rounds}: --fsync {mode}")
                runs.append(one_mode(mode, rnd, tmp, args))
    s = summarise(runs)
    print(table(s))
    print(f"default: {s['default']} (always costs {s['batch_cost']:.1%} of batch intake; "
          f"limit {COST_LIMIT:.0%})")
    (out / "fsync.json").write_text(json.dumps(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": runs, "summary": s},
        indent=1))
    if not args.no_plot:
        plot(runs, out / "fsync.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
