"""Unary PlaceOrder's tail at half its own best rate, on one Redis and on a 3-master cluster
(issue 14, item 9: p99 <= 25 ms at half the best unary rate, on both).

Per round and mode (the order alternates between rounds): a fresh ``oms-server --workers 2``
(one embedded Redis, or ``--embedded-cluster 3``), 20 warehouses x --skus SKUs, closed-loop unary
at concurrency 64 for --best-s seconds (the best rate), then open loop at half that rate for
--open-s seconds (latency from the intended send time: no coordinated omission). Both figures
come from the same server and the same minutes, so a machine whose speed drifts still gives
a fair "half".

Run:  .venv/bin/python -m benchmarks.bench_unary_half [--rounds 2] [--best-s 10] [--open-s 20]
Writes benchmarks/results/unary_half.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import auth_args, setup_stock
from benchmarks.run import ServerProc, log, run_load

ROOT = Path(__file__).resolve().parents[1]
MODES = {"single": [], "cluster-3": ["--embedded-cluster", "3"]}
TARGET_P99_MS = 25.0


def one_run(mode: str, rnd: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = tmp / f"{mode}-{rnd}"
    d.mkdir()
    cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--log-level", "WARNING", "--workers", "2", *auth_args(d), *MODES[mode]]
    srv = ServerProc(f"oms-server {mode}", cmd, d / "server.log").start()
    try:
        setup_stock(srv, args.skus)
        common = ["--channels", "32", "--skus", str(args.skus), "--hot-share", "0.1", "--pool-cache",
                  str(tmp / "pools"), "--mode", "unary", "--concurrency", "64"]
        best = run_load(f"{mode} c64 r{rnd}", srv, common, d, warmup=2, duration=args.best_s)
        half = max(1, round(best["orders_per_s"] / 2))
        op = run_load(f"{mode} open r{rnd}", srv, common + ["--rate", str(half)], d, warmup=2,
                      duration=args.open_s)
    finally:
        srv.stop()
    return {"mode": mode, "round": rnd, "best_per_s": best["orders_per_s"], "half_per_s": half,
            "open_per_s": op["orders_per_s"], "p50_ms": op["latency_ms"]["p50"],
            "p99_ms": op["latency_ms"]["p99"], "open_cpu_us": (op.get("cpu") or {}).get("total_us"),
            "errors": sum(best["errors"].values()) + sum(op["errors"].values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_unary_half", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--best-s", type=float, default=10.0)
    ap.add_argument("--open-s", type=float, default=20.0)
    ap.add_argument("--skus", type=int, default=1000)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="oms-unary-half-") as t:
        for rnd in range(args.rounds):
            for mode in (list(MODES) if rnd % 2 == 0 else list(MODES)[::-1]):
                log(f"round {rnd + 1}/{args.rounds}: {mode}")
                runs.append(one_run(mode, rnd, Path(t), args))
    print("| mode | round | best orders/s (c=64) | open loop at | p50 ms | p99 ms | target p99 <= 25 ms |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        ok = "met" if r["p99_ms"] <= TARGET_P99_MS else "not met"
        print(f"| {r['mode']} | {r['round'] + 1} | {r['best_per_s']:,.0f} | {r['half_per_s']:,}/s | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {ok} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "unary_half.json").write_text(json.dumps(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "runs": runs}, indent=1))
    return 0 if all(r["errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
