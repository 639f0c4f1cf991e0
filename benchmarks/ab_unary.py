"""A/B of unary PlaceOrder latency between two commits: closed loop at concurrency 1 and open
loop at a fixed rate (p99 without coordinated omission), with CPU per order, alternating sides
round by round so that drift of a shared machine cancels out.

    python -m benchmarks.ab_unary --base REV [--head REV] [--rounds 7] [--rate 398]
    python -m benchmarks.ab_unary --base HEAD --server-arg=--embedded-cluster --server-arg=3
        (both sides the same commit: the current figures, here on a 3-master cluster)

Each side is a git worktree of its commit with its own small virtual environment, as in
``benchmarks.ab_intake`` (the B side defaults to this working tree). Per run: a fresh
``oms-server --workers 2`` on its embedded Redis, 20 warehouses × --skus SKUs, then
``oms-load --mode unary`` at concurrency 1 and open loop at --rate. Prints medians and ranges
and writes ``benchmarks/results/ab_unary.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.ab_intake import ROOT, alternate_sides, server_module
from benchmarks.procs import auth_args, setup_stock
from benchmarks.run import ServerProc, run_load

FIELDS = ("c1_p50", "c1_p99", "c1_cpu", "open_p50", "open_p99", "open_rate", "open_cpu")


def one_run(name: str, py: Path, tree: Path, rnd: int, tmp: Path, args: argparse.Namespace
            ) -> dict[str, Any]:
    d = tmp / f"{name}-{rnd}"
    d.mkdir()
    cmd = [str(py), "-P", "-m", server_module(tree), "--listen", "127.0.0.1:0",
           "--data-dir", str(d / "redis"), "--log-level", "WARNING", "--workers", "2",
           *auth_args(d), *args.server_arg]
    srv = ServerProc(name, cmd, d / "server.log").start()
    try:
        setup_stock(srv, args.skus)
        common = ["--channels", "32", "--skus", str(args.skus), "--hot-share", "0.1",
                  "--pool-cache", str(tmp / "pools"), "--mode", "unary"]
        c1 = run_load(f"{name} c1 r{rnd}", srv, common + ["--concurrency", "1"], d,
                      warmup=1.0, duration=args.seconds)
        op = run_load(f"{name} open r{rnd}", srv,
                      common + ["--concurrency", "64", "--rate", str(args.rate)], d,
                      warmup=1.0, duration=args.seconds * 1.5)
    finally:
        srv.stop()
    return {"side": name, "round": rnd,
            "c1_p50": c1["latency_ms"]["p50"], "c1_p99": c1["latency_ms"]["p99"],
            "c1_cpu": (c1.get("cpu") or {}).get("total_us"),
            "open_p50": op["latency_ms"]["p50"], "open_p99": op["latency_ms"]["p99"],
            "open_rate": op["orders_per_s"], "open_cpu": (op.get("cpu") or {}).get("total_us"),
            "errors": sum(c1["errors"].values()) + sum(op["errors"].values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.ab_unary", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the A side: a commit")
    ap.add_argument("--head", default="", help="the B side: a commit (default: this working tree)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=8.0, help="closed-loop run length")
    ap.add_argument("--rate", type=float, default=398.0, help="open-loop orders/s")
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--server-arg", action="append", default=[],
                    help="one more oms-server argument, both sides (repeat it; e.g. "
                         "--server-arg=--embedded-cluster --server-arg=3)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    runs = alternate_sides(args, one_run, "oms-abu-")
    print("| side | " + " | ".join(FIELDS) + " |\n|---|" + "---|" * len(FIELDS))
    med: dict[str, dict[str, float]] = {}
    for n in "AB":
        rs = [r for r in runs if r["side"] == n]
        med[n] = {k: statistics.median(r[k] for r in rs if r[k] is not None) for k in FIELDS}
        cells = [f"{med[n][k]:.2f} ({min(r[k] for r in rs):.1f}–{max(r[k] for r in rs):.1f})"
                 for k in FIELDS]
        print(f"| {n} | " + " | ".join(cells) + " |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab_unary.json").write_text(json.dumps(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "base": args.base,
         "head": args.head or "working tree", "rate": args.rate, "runs": runs, "median": med},
        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
