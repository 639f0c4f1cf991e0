"""The benchmark harness: one command, everything measured in the same run on this machine.

    python -m benchmarks.run            # make bench: 60 s sustained batch intake, ~20 s runs
    python -m benchmarks.run --quick    # ~10 s runs, a few minutes in all

What it does, in order (loopback only, every step bounded in time):
 1. starts oms-server (subprocess, embedded Redis, fresh temp data dir) and the no-op echo
    server (benchmarks/echo.py, same OrderService messages, no work);
 2. creates 20 warehouses at real metro ZIPs with stock of --skus SKUs (oms-load --setup);
 3. ceilings: unary echo at each concurrency, stream echo, batch echo (the same oms-load
    settings as the real runs);
 4. unary intake at each concurrency (throughput vs concurrency), then open-loop unary at half
    the best unary rate (p99 without coordinated omission);
 5. streaming intake (PlaceOrders) and sustained batch intake (BatchPlaceOrders, 3-line orders
    over 20 warehouses);
 6. the Audit RPC: stock invariants after all that intake (zero oversell);
 7. redis-benchmark on the PLACE_ORDERS Lua script: the calls oms-server makes for a 500-order
    batch and for one unary order are recorded with MONITOR and replayed on the server's own
    Redis with fresh order ids (redis-tools is apt-get installed if missing; without it, a
    pipelined EVALSHA loop in Python);
 8. direct timing of engine.allocation.allocate against allocate_reference;
 9. benchmarks/results/report.md (+ report.json, throughput_vs_concurrency.png,
    latency_cdf.png) with value, ceiling, ratio, target and pass/fail per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.audit_check import audit
from benchmarks.kernel_timing import kernel_benchmark
from benchmarks.procs import ROOT, T0, ServerProc, auth_args, key_env, log, run_load
from benchmarks.redis_replay import capture_place_orders, redis_lua_benchmark
from benchmarks.report import TARGETS, environment, plot, write_report
from oms.clients.load import METROS
from oms.server.redis.embedded import EmbeddedRedis

# The pieces live in procs.py (servers, load runs), redis_replay.py (the Lua ceiling),
# kernel_timing.py, audit_check.py and report.py; other benchmarks import ServerProc, log and
# run_load from here.
__all__ = ["TARGETS", "ServerProc", "log", "main", "run_load"]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10 s runs (a few minutes in all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--concurrencies", default="1,4,16,64", help="unary sweep (calls in flight)")
    ap.add_argument("--batch-duration", type=float, default=0, help="sustained batch run, s (60; quick 10)")
    ap.add_argument("--run-duration", type=float, default=0, help="other runs, s (20; quick 10)")
    ap.add_argument("--sweep-duration", type=float, default=0, help="each unary sweep point, s (10; quick 5)")
    ap.add_argument("--skus", type=int, default=0, help="SKUs stocked in every warehouse (1000; quick 200)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--batch-concurrency", type=int, default=16,
                    help="batch calls in flight (enough for every server worker to overlap its "
                         "Redis round trips with another call's Python work: at 8 a fifth of "
                         "the CPU stayed idle)")
    ap.add_argument("--streams", type=int, default=4, help="streams in flight")
    ap.add_argument("--window", type=int, default=128, help="orders in flight per stream")
    ap.add_argument("--client-processes", type=int, default=1)
    ap.add_argument("--server-workers", type=int, default=2,
                    help="oms-server --workers, and as many echo processes (one per core here)")
    ap.add_argument("--channels", type=int, default=32,
                    help="gRPC connections per client process: SO_REUSEPORT spreads connections, "
                         "not calls, over the server workers (8 split 64/36 at worst, 32 evenly)")
    ap.add_argument("--hot-share", type=float, default=0.1)
    ap.add_argument("--skip", default="", help="comma list of: echo,unary,stream,batch,redis,kernel")
    ap.add_argument("--fsync", choices=("always", "everysec"), default="",
                    help="oms-server --fsync (when the embedded Redis fsyncs its AOF); "
                         "default: the server's default")
    args = ap.parse_args(argv)
    q = args.quick
    batch_s = args.batch_duration or (10 if q else 60)
    run_s = args.run_duration or (10 if q else 20)
    sweep_s = args.sweep_duration or (5 if q else 10)
    skus = args.skus or (200 if q else 1000)
    warm = 1.0 if q else 2.0
    skip = set(filter(None, args.skip.split(",")))
    concurrencies = [int(x) for x in args.concurrencies.split(",") if x]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    R: dict[str, Any] = {"quick": q, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                         "environment": environment(), "targets": TARGETS, "concurrencies": concurrencies,
                         "notes": [], "all_runs": []}
    common = ["--processes", str(args.client_processes), "--channels", str(args.channels), "--skus", str(skus),
              "--hot-share", str(args.hot_share), "--pool-cache", str(tmp / "pools")]
    server_cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
                  str(tmp / "redis"), "--log-level", "WARNING", "--workers", str(args.server_workers),
                  *auth_args(tmp)]
    R["server_cmd"] = ["python", "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir", "<fresh tmp>",
                       "--log-level", "WARNING", "--workers", str(args.server_workers),
                       "--admin-key", "<fixed test key>", "--auth-pepper-file", "<fresh tmp>/auth.pepper"]
    if args.fsync:
        server_cmd += ["--fsync", args.fsync]
        R["server_cmd"] += ["--fsync", args.fsync]
    oms = ServerProc("oms-server", server_cmd, tmp / "oms-server.log")
    echo = ServerProc("echo", [sys.executable, "-m", "benchmarks.echo", "--listen", "127.0.0.1:0",
                               "--workers", str(args.server_workers)], tmp / "echo.log")

    def load(name: str, server: ServerProc, extra: list[str], duration: float) -> dict[str, Any]:
        r = run_load(name, server, common + extra, tmp, warmup=warm, duration=duration)
        R["all_runs"].append(r)
        return r

    status = 0
    try:
        log(f"starting oms-server (embedded Redis, data in {tmp / 'redis'}) and the echo server")
        oms.start()
        if "echo" not in skip:
            echo.start()
        log(f"  oms-server on {oms.target}" + (f", echo on {echo.target}" if echo.target else ""))
        n_wh = len(METROS)
        log(f"setup: {n_wh} warehouses x {skus} SKUs over gRPC")
        t = time.monotonic()
        setup_json = tmp / "setup.json"
        subprocess.run([sys.executable, "-m", "oms.clients.load", "--target", oms.target, "--setup",
                        "--warehouses", str(n_wh), "--skus", str(skus), "--duration", "0",
                        "--json", str(setup_json)], cwd=ROOT, check=True, timeout=1800, env=key_env())
        R["setup"] = json.loads(setup_json.read_text())["setup"]
        R["setup_cmd"] = f"python -m oms.clients.load --target HOST:PORT --setup --warehouses {n_wh} --skus {skus} --duration 0"
        log(f"  setup done in {time.monotonic() - t:.0f} s")

        unary_x = ["--mode", "unary"]
        stream_x = ["--mode", "stream", "--concurrency", str(args.streams), "--window", str(args.window)]
        batch_x = ["--mode", "batch", "--lines", "3", "--batch-size", str(args.batch_size),
                   "--concurrency", str(args.batch_concurrency)]
        if "echo" not in skip:
            log("ceilings: no-op echo server")
            R["echo_unary"] = [load(f"echo unary c={c}", echo, unary_x + ["--concurrency", str(c)], sweep_s)
                               for c in concurrencies]
            R["echo_unary_best"] = max(R["echo_unary"], key=lambda r: r["orders_per_s"])
            R["echo_stream"] = load("echo stream", echo, stream_x, run_s)
            R["echo_batch"] = load("echo batch", echo, batch_x, min(run_s, 5))
            echo.stop()
        if "unary" not in skip:
            log("unary intake (PlaceOrder) vs concurrency")
            R["unary"] = [load(f"unary c={c}", oms, unary_x + ["--concurrency", str(c)], sweep_s)
                          for c in concurrencies]
            R["unary_best"] = max(R["unary"], key=lambda r: r["orders_per_s"])
            half = max(1.0, round(R["unary_best"]["orders_per_s"] / 2))
            log(f"unary open loop at half the best rate: {half:,.0f} orders/s")
            R["unary_open"] = load("unary open loop", oms,
                                   unary_x + ["--concurrency", str(max(64, max(concurrencies))), "--rate", str(half)],
                                   run_s)
        if "stream" not in skip:
            log("streaming intake (PlaceOrders)")
            R["stream"] = load("stream", oms, stream_x, run_s)
        if "batch" not in skip:
            log(f"batch intake (BatchPlaceOrders), sustained {batch_s:g} s")
            R["batch"] = load("batch", oms, batch_x, batch_s)
        log("Audit RPC (stock invariants after the intake runs)")
        R["audit"] = audit(oms.target)
        if "redis" not in skip:
            log("redis: PLACE_ORDERS Lua ceiling (captured server calls, replayed)")
            try:
                sock = str(EmbeddedRedis(tmp / "redis").socket_path)
                captured = capture_place_orders(oms.target, sock, skus)
                R["redis"] = redis_lua_benchmark(sock, captured, 3.0 if q else 10.0)
            except Exception as e:  # noqa: BLE001 - report, keep going
                log(f"  redis benchmark failed: {type(e).__name__}: {e}")
                R["notes"].append(f"redis benchmark failed: {type(e).__name__}: {e}")
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        R["notes"].append(f"run aborted: {e}")
        status = 1
    finally:
        oms.stop()
        echo.stop()
        if oms.log_path.exists():
            text = oms.log_path.read_text().strip()
            if text:
                R["notes"].append("oms-server stderr (tail): " + text[-500:].replace("\n", " / "))
    if "kernel" not in skip:
        log("allocation kernel vs reference")
        R["kernel"] = kernel_benchmark(q)
    R["total_s"] = time.monotonic() - T0
    R["environment"]["loadavg_at_end"] = os.getloadavg()
    R["plots"] = plot(R, out)
    write_report(R, out)
    slim = json.loads(json.dumps(R, default=str))
    (out / "report.json").write_text(json.dumps(slim, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    print((out / "report.md").read_text().split("\n## ")[0])
    log(f"wrote {out / 'report.md'}, report.json, {', '.join(R['plots'])} ({R['total_s']:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
