"""Benchmark: intake on Redis Cluster (issue 14, items 7 and 8). Batch intake on one embedded
Redis against ``--embedded-cluster 1``, ``2`` and ``3`` (the same redis-server binary), and the
hot-warehouse cap: all stock in ONE warehouse, on 3 masters against one Redis, and the cost of
``--replica-acks 1`` (3 masters with one replica each, with and without waiting for it).

Per round, for each mode (the order alternates between rounds, so that a machine that gets
slower or faster during the run does not favour one mode): a fresh oms-server (``--workers 2``,
fresh data dir, ``--fraud-hold-seconds 0``), the oms-load setup (20 warehouses at real metro
ZIPs; 1 warehouse in the hot modes), then sustained batch intake (BatchPlaceOrders, 500 x
3-line orders a call, 16 calls in flight). CPU per order is read from /proc for the server's
workers, each redis-server (per cluster node: its pid from ``node-<i>/redis.pid``) and the load
generator.

On a machine with few cores every process shares them, so the cores, not the design, cap the
rate: the figure that says whether the cluster path costs more is CPU microseconds per order on
the cluster against the single Redis in the same run (target: within 10 %). Scaling
efficiency is rate(N) / (N * rate(1)) with rate(1) the 1-master cluster.

Run:  .venv/bin/python -m benchmarks.bench_cluster [--rounds 2] [--batch-s 10] [--no-hot] [--no-replicas]
      [--only single,cluster-3]      (some modes only: the report then has just those)
Writes benchmarks/results/cluster.md, cluster.json and cluster.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import auth_args, setup_stock
from benchmarks.run import ServerProc, log, run_load
from oms.clients.metros import METROS

ROOT = Path(__file__).resolve().parents[1]
SCALING = ("single", "cluster-1", "cluster-2", "cluster-3")
HOT = ("hot-single", "hot-cluster-3")
# 3 masters with one replica each, without and with --replica-acks 1: what waiting costs
REPLICAS = ("replicas-cluster-3", "acks-cluster-3")
CPU_TARGET = 0.10  # the cluster path may cost at most this much more CPU per order


def masters(mode: str) -> int:
    """Masters of an embedded cluster in ``mode``; 0: one embedded redis-server."""
    return int(mode.rsplit("-", 1)[1]) if "cluster" in mode else 0


def server_cmd(mode: str, d: Path) -> list[str]:
    cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--label-dir", str(d / "labels"), "--log-level", "WARNING",
           "--workers", "2", "--fraud-hold-seconds", "0", *auth_args(d)]
    n = masters(mode)
    if mode in REPLICAS:
        cmd += ["--embedded-replicas", "1"]
    if mode.startswith("acks-"):
        cmd += ["--replica-acks", "1"]
    return cmd + (["--embedded-cluster", str(n)] if n else [])


def label_nodes(srv: ServerProc, data: Path) -> list[str]:
    """Count each cluster node's CPU apart (labels ``redis0``..): their pids are in the nodes'
    pid files, written before the server listens."""
    labels = []
    for i, pid_file in enumerate(sorted(data.glob("node-*/redis.pid"))):
        if srv.cpu is not None:
            srv.cpu.labels[int(pid_file.read_text().strip())] = f"redis{i}"
        labels.append(f"redis{i}")
    return labels


def one_mode(mode: str, rnd: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = tmp / f"{mode}-{rnd}"
    d.mkdir()
    srv = ServerProc(f"oms-server {mode}", server_cmd(mode, d), d / "server.log").start()
    try:
        nodes = label_nodes(srv, d / "redis")
        whs = 1 if mode in HOT else len(METROS)
        setup_stock(srv, args.skus, whs)
        res = run_load(f"{mode} r{rnd}", srv, [
            "--channels", "32", "--skus", str(args.skus), "--pool-cache", str(tmp / "pools"),
            "--mode", "batch", "--lines", "3", "--batch-size", "500", "--concurrency", "16"],
            d, warmup=2.0, duration=args.batch_s)
    finally:
        srv.stop()
    cpu = res.get("cpu") or {}
    node_us = {n: cpu.get(f"{n}_us", 0.0) for n in nodes}
    redis_us = cpu.get("redis_us", 0.0) + sum(node_us.values())
    rate = res["orders_per_s"]
    return {"mode": mode, "round": rnd, "masters": masters(mode), "orders_per_s": rate,
            "p99_ms": res["latency_ms"]["p99"], "errors": res["errors"],
            "server_us": cpu.get("server_us", 0.0), "redis_us": redis_us, "node_us": node_us,
            "client_us": cpu.get("client_us", 0.0), "total_us": cpu.get("total_us", 0.0),
            # cores one Redis process keeps busy: is one core the cap?
            "busiest_redis_cores": max([*node_us.values(), redis_us if not nodes else 0.0])
            * rate / 1e6}


def summarise(runs: list[dict[str, Any]], modes: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        if not mine:
            continue
        out[mode] = {k: statistics.median(r[k] for r in mine)
                     for k in ("orders_per_s", "p99_ms", "server_us", "redis_us", "client_us",
                               "total_us", "busiest_redis_cores")}
        out[mode]["node_us"] = {n: statistics.median(r["node_us"][n] for r in mine)
                                for n in mine[0]["node_us"]}
    scaled = [m for m in SCALING[1:] if m in out]
    if "cluster-1" in out:
        one = out["cluster-1"]["orders_per_s"]
        for mode in scaled:
            out[mode]["efficiency"] = out[mode]["orders_per_s"] / (masters(mode) * one)
    if "single" in out:
        single = out["single"]["total_us"]
        for mode in scaled:
            out[mode]["cpu_vs_single"] = out[mode]["total_us"] / single - 1
    if "cpu_vs_single" in out.get("cluster-3", {}):
        out["cpu_within_target"] = out["cluster-3"]["cpu_vs_single"] <= CPU_TARGET
    out["errors"] = sum(sum(r["errors"].values()) for r in runs)
    return out


def table(s: dict[str, Any], modes: tuple[str, ...]) -> str:
    rows = ["| mode | masters | orders/s | p99 ms | CPU us/order: server | redis (per node) | "
            "client | total | vs single | efficiency |", "|---|---|---|---|---|---|---|---|---|---|"]
    for mode in modes:
        if mode not in s:
            continue
        m = s[mode]
        nodes = " / ".join(f"{v:,.0f}" for v in m["node_us"].values())
        redis = f"{m['redis_us']:,.0f}" + (f" ({nodes})" if nodes else "")
        vs = f"{m['cpu_vs_single']:+.1%}" if "cpu_vs_single" in m else ""
        eff = f"{m['efficiency']:.2f}" if "efficiency" in m else ""
        rows.append(f"| {mode} | {masters(mode) or '-'} | {m['orders_per_s']:,.0f} | "
                    f"{m['p99_ms']:.0f} | {m['server_us']:,.0f} | {redis} | {m['client_us']:,.0f} | "
                    f"{m['total_us']:,.0f} | {vs} | {eff} |")
    return "\n".join(rows)


def report(runs: list[dict[str, Any]], s: dict[str, Any], args: argparse.Namespace,
           started: str) -> str:
    per_run = ["| round | mode | orders/s | total CPU us/order | errors |", "|---|---|---|---|---|"]
    for r in runs:
        per_run.append(f"| {r['round'] + 1} | {r['mode']} | {r['orders_per_s']:,.0f} | "
                       f"{r['total_us']:,.0f} | {r['errors'] or '-'} |")
    lines = [
        "# Intake on Redis Cluster (benchmarks/bench_cluster.py)", "",
        f"Started {started} on {os.cpu_count()} cores; {args.rounds} alternating rounds per "
        f"mode, {args.batch_s:g} s of batch intake measured per round (BatchPlaceOrders, 500 x "
        f"3-line orders, 16 in flight), {args.skus} SKUs, `oms-server --workers 2`. Medians "
        "over rounds.", "",
        table(s, SCALING), ""]
    if "cpu_within_target" in s:
        c3 = s["cluster-3"]
        eff = (f" Scaling efficiency at 3 masters: {c3['efficiency']:.2f}; on this machine every "
               "process shares the same cores, so more masters cannot add throughput here."
               if "efficiency" in c3 else "")
        lines += [f"CPU per order on 3 masters against one Redis: {c3['cpu_vs_single']:+.1%} "
                  f"(target within {CPU_TARGET:.0%}: "
                  f"{'met' if s['cpu_within_target'] else 'NOT met'}).{eff}", ""]
    if "hot-cluster-3" in s and "hot-single" in s:
        hot, hs = s["hot-cluster-3"], s["hot-single"]
        lines += [
            "## Hot warehouse (all stock in one warehouse)", "",
            table(s, HOT), "",
            f"One warehouse on 3 masters: {hot['orders_per_s']:,.0f} orders/s against "
            f"{hs['orders_per_s']:,.0f} on one Redis ({hot['orders_per_s'] / hs['orders_per_s']:.0%}); "
            f"the node holding it was busy {hot['busiest_redis_cores']:.2f} cores "
            f"(one Redis: {hs['busiest_redis_cores']:.2f}).", ""]
    if "acks-cluster-3" in s and "replicas-cluster-3" in s:
        rep, acks = s["replicas-cluster-3"], s["acks-cluster-3"]
        lines += [
            "## Replica acknowledgements (3 masters, 1 replica each)", "",
            "`replicas-cluster-3`: replicas, no waiting; `acks-cluster-3`: `--replica-acks 1` "
            "(each node's write sub-pipeline ends with `WAIT 1 1000`). Redis per node: the "
            "three masters, then the three replicas.", "",
            table(s, REPLICAS), "",
            f"Waiting for one replica: {acks['orders_per_s']:,.0f} against "
            f"{rep['orders_per_s']:,.0f} orders/s ({acks['orders_per_s'] / rep['orders_per_s'] - 1:+.1%}), "
            f"CPU per order {acks['total_us'] / rep['total_us'] - 1:+.1%}, p99 "
            f"{acks['p99_ms']:.0f} against {rep['p99_ms']:.0f} ms.", ""]
    lines += ["Every run:", "", *per_run, "",
              f"Run: `python -m benchmarks.bench_cluster --rounds {args.rounds} --batch-s "
              f"{args.batch_s:g} --skus {args.skus}{' --no-hot' if args.no_hot else ''}"
              f"{' --no-replicas' if args.no_replicas else ''}`", ""]
    return "\n".join(lines)


def plot(s: dict[str, Any], modes: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in modes if m in s]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].bar(shown, [s[m]["orders_per_s"] for m in shown])
    axes[0].set_ylabel("orders/s")
    axes[0].set_title("BatchPlaceOrders")
    bottom = [0.0] * len(shown)
    for part in ("server_us", "redis_us", "client_us"):
        ys = [s[m][part] for m in shown]
        axes[1].bar(shown, ys, bottom=bottom, label=part[:-3])
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    axes[1].set_ylabel("CPU us per order")
    axes[1].legend()
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_cluster", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-s", type=float, default=10.0)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--no-hot", action="store_true", help="leave out the hot-warehouse modes")
    ap.add_argument("--no-replicas", action="store_true",
                    help="leave out the replica modes (3 masters + 3 replicas, with and without acks)")
    ap.add_argument("--only", default="", help="comma-separated modes to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = SCALING + (() if args.no_hot else HOT) + (() if args.no_replicas else REPLICAS)
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(SCALING + HOT + REPLICAS)
        if unknown:
            ap.error(f"unknown modes: {', '.join(sorted(unknown))}")
        modes = tuple(m for m in SCALING + HOT + REPLICAS if m in wanted)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="oms-cluster-") as t:
        tmp = Path(t)
        for rnd in range(args.rounds):
            for mode in (modes if rnd % 2 == 0 else modes[::-1]):
                log(f"round {rnd + 1}/{args.rounds}: {mode}")
                runs.append(one_mode(mode, rnd, tmp, args))
    s = summarise(runs, modes)
    print(table(s, modes))
    (out / "cluster.md").write_text(report(runs, s, args, started))
    (out / "cluster.json").write_text(json.dumps({"started": started, "runs": runs, "summary": s},
                                                 indent=1))
    if not args.no_plot:
        plot(s, modes, out / "cluster.png")
    # errors would make the throughput meaningless (a refused call is cheap)
    return 0 if s["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
