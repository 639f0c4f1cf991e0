"""Unary PlaceOrder in open loop at one rate, for several coalescing windows
(``--coalesce-wait-ms``): what a longer wait for company does to latency and CPU per order.

Per round and window (the order alternates between rounds, so that drift of a shared machine
cancels out): a fresh ``oms-server --workers 2`` on its embedded Redis with that window,
20 warehouses x --skus SKUs, then ``oms-load --mode unary --concurrency 64 --rate R`` for
--seconds (latency from the intended send time: no coordinated omission).

Run:  .venv/bin/python -m benchmarks.bench_coalesce_window [--rate 620] [--windows 0,2,5,10]
      [--rounds 2] [--server-arg=--embedded-cluster --server-arg=3]
Writes benchmarks/results/coalesce_window.json and prints a table of medians and ranges.
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

from benchmarks.procs import ROOT, ServerProc, auth_args, log, run_load, setup_stock


def one_run(window: str, rnd: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = tmp / f"w{window}-{rnd}"
    d.mkdir()
    cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--log-level", "WARNING", "--workers", "2",
           "--coalesce-wait-ms", window, *auth_args(d), *args.server_arg]
    srv = ServerProc(f"oms-server window {window} ms", cmd, d / "server.log").start()
    try:
        setup_stock(srv, args.skus)
        common = ["--channels", "32", "--skus", str(args.skus), "--hot-share", "0.1", "--pool-cache",
                  str(tmp / "pools"), "--mode", "unary", "--concurrency", "64", "--rate", str(args.rate)]
        op = run_load(f"window {window} ms r{rnd}", srv, common, d, warmup=2, duration=args.seconds)
    finally:
        srv.stop()
    cpu = op.get("cpu") or {}
    return {"window_ms": float(window), "round": rnd, "rate": op["orders_per_s"],
            "p50_ms": op["latency_ms"]["p50"], "p99_ms": op["latency_ms"]["p99"],
            "cpu_us": cpu.get("total_us"), "server_us": cpu.get("server_us"),
            "errors": sum(op["errors"].values())}


def _cell(xs: list[float], fmt: str) -> str:
    return f"{statistics.median(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_coalesce_window", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=620.0, help="open-loop orders/s")
    ap.add_argument("--windows", default="0,2,5,10", help="comma-separated windows in ms")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--skus", type=int, default=1000)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="one more oms-server argument (repeat for several)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    for w in windows:
        if not 0 <= float(w) <= 50:
            ap.error(f"--windows: {w!r} is outside 0-50 ms")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="oms-window-") as t:
        for rnd in range(args.rounds):
            for w in windows if rnd % 2 == 0 else windows[::-1]:
                log(f"round {rnd + 1}/{args.rounds}: window {w} ms")
                runs.append(one_run(w, rnd, Path(t), args))
    print(f"{args.rounds} rounds per window, each cell the median (range):")
    print("| window | open loop at | p50 ms | p99 ms | CPU µs per order (all processes) |")
    print("|---|---|---|---|---|")
    for w in windows:
        rs = [r for r in runs if r["window_ms"] == float(w)]
        cpu = [r["cpu_us"] for r in rs if r["cpu_us"] is not None]
        print(f"| {w} ms | {statistics.median(r['rate'] for r in rs):,.0f}/s | "
              f"{_cell([r['p50_ms'] for r in rs], '.1f')} | {_cell([r['p99_ms'] for r in rs], '.1f')} | "
              f"{_cell(cpu, ',.0f') if cpu else 'n/a'} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coalesce_window.json").write_text(json.dumps(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "rate": args.rate,
         "server_args": args.server_arg, "runs": runs}, indent=1))
    return 0 if all(r["errors"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
