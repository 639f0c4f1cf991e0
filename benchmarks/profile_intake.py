"""Cost of one order through BatchPlaceOrders, without the network: CPU microseconds per order
in the server's Python and in Redis, split by stage. It is the measuring stick for intake speed
work (the full benchmark adds gRPC and the load generator on top of these costs).

    python -m benchmarks.profile_intake                 # table of µs per order by stage
    python -m benchmarks.profile_intake --cprofile 25   # plus the top 25 functions
    python -m benchmarks.profile_intake --callgrind out # Redis under valgrind: instructions
                                                        # per order (repeatable, unlike time)

It starts a fresh embedded Redis, sets up 20 warehouses x 200 SKUs, builds the same 3-line
orders as ``oms-load --mode batch`` and runs the servicer's batch path in-process:
decode request bytes -> Intake.place -> encode and serialize the response.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import glob
import os
import pstats
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from oms.clients.load import LAYOUT, METROS, batch_body, build_pool, key_field, sku_name
from oms.engine.models import Layout, Warehouse
from oms.engine import geo
from oms.v1 import orders_pb2 as pb
from oms.server.cli import _tune_gc
from oms.server.intake import Intake
from oms.server.redis import scripts
from oms.server.redis.embedded import EmbeddedRedis
from oms.server.redis.store import Store
from oms.server.auth.principal import SYSTEM
from oms.server.services.orders import _decode_all, _sources
from oms.server.response_bytes import batch_response_bytes

ROOT = Path(__file__).resolve().parents[1]


async def _redis_cpu(store: Store) -> float:
    info = await store.r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _callgrind_wrapper(tmp: str, out: str) -> None:
    """Put a ``redis-server`` first on PATH that runs the real one under callgrind with
    collection off (switched on around the measured loop)."""
    real = shutil.which("redis-server") or ""
    if not real or not shutil.which("valgrind"):
        raise SystemExit("--callgrind needs redis-server on PATH and valgrind")
    bindir = os.path.join(tmp, "bin")
    os.makedirs(bindir)
    path = os.path.join(bindir, "redis-server")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                f"--callgrind-out-file={out} {real} \"$@\"\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    os.environ["PATH"] = bindir + os.pathsep + os.environ["PATH"]


def _callgrind_switch(pid: int, on: bool) -> None:
    """Instrumentation on before the measured loop; off after it, with a dump of the counts."""
    cmd = ["-i", "on"] if on else ["-d"]
    subprocess.run(["callgrind_control", *cmd, str(pid)], check=True, stdout=subprocess.DEVNULL)


async def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp0:
        if args.callgrind:
            _callgrind_wrapper(tmp0, os.path.abspath(args.callgrind))
        with tempfile.TemporaryDirectory() as tmp:
            redis = EmbeddedRedis(tmp).start(timeout_s=120)
            try:
                out = await _run(args, redis)
            finally:
                redis.stop()
        if args.callgrind:
            total = 0
            for path in glob.glob(os.path.abspath(args.callgrind) + "*"):
                with open(path) as f:
                    m = re.search(r"^(?:summary|totals): (\d+)", f.read(), re.M)
                total = max(total, int(m.group(1)) if m else 0)
            n = args.batches * args.batch_size
            print(f"  Redis instructions per order (callgrind): {total / n:,.0f}")
        return out


async def _run(args: argparse.Namespace, redis: EmbeddedRedis) -> dict[str, float]:
    if True:
        store = Store.from_url(redis.url)
        for wid, name, z in METROS[:args.warehouses]:
            lat, lon = geo.geocode_us_zip(z)  # type: ignore[misc]
            await store.upsert_warehouse(Warehouse(wid, name, lat, lon, z, Layout(**LAYOUT)))
            for k in range(args.skus):
                await store.set_stock(wid, sku_name(k), 10**9, "")
        intake = Intake(store, fraud_hold_seconds=0)
        if not args.default_gc:
            _tune_gc()  # as oms-server does once it is up
        pool = build_pool((args.batches + args.warmup) * args.batch_size, skus=args.skus, lines=(3, 3),
                          hot_share=0.1, hot_skus=8, seed=7)
        if not args.no_keys:  # like oms-load: every order carries an idempotency key
            pool = [x + key_field(f"k{i}") for i, x in enumerate(pool)]
        bodies = [batch_body(pool[i:i + args.batch_size])
                  for i in range(0, len(pool), args.batch_size)]

        async def one(body: bytes, t: dict[str, float]) -> None:
            t0 = time.process_time()
            msgs = list(pb.BatchPlaceOrdersRequest.FromString(body).requests)
            reqs = _decode_all(msgs, SYSTEM)
            t1 = time.process_time()
            results = await intake.place(reqs)
            t2 = time.process_time()
            pb.BatchPlaceOrdersResponse.FromString(
                batch_response_bytes(results, _sources(msgs, reqs, results))).SerializeToString()
            t3 = time.process_time()
            t["decode"] += t1 - t0
            t["place"] += t2 - t1
            t["encode"] += t3 - t2

        # Warm-up: past the sizes where Redis keeps small hashes and zsets as listpacks.
        warm = {"decode": 0.0, "place": 0.0, "encode": 0.0}
        for body in bodies[:args.warmup]:
            await one(body, warm)
        t = {"decode": 0.0, "place": 0.0, "encode": 0.0}
        prof = cProfile.Profile() if args.cprofile else None
        if args.callgrind:
            _callgrind_switch(redis.proc.pid, True)  # type: ignore[union-attr]
        await store.r.config_resetstat()
        await store.r.config_set("slowlog-log-slower-than", -1 if args.callgrind else 0)
        await store.r.config_set("slowlog-max-len", 100_000)
        await store.r.slowlog_reset()
        r0, c0, w0 = await _redis_cpu(store), time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        for body in bodies[args.warmup:]:
            await one(body, t)
        if prof:
            prof.disable()
        c1, w1, r1 = time.process_time(), time.perf_counter(), await _redis_cpu(store)
        if args.callgrind:
            _callgrind_switch(redis.proc.pid, False)  # type: ignore[union-attr]
        await asyncio.sleep(0.2)  # background claim finishing
        n = (len(bodies) - args.warmup) * args.batch_size
        out = {k: v / n * 1e6 for k, v in t.items()}
        out["python_total"] = (c1 - c0) / n * 1e6
        out["redis"] = (r1 - r0) / n * 1e6
        out["wall"] = (w1 - w0) / n * 1e6
        print(f"{n:,} orders in batches of {args.batch_size}, {args.warehouses} warehouses, "
              f"{args.skus} SKUs (CPU microseconds per order)")
        for k, v in out.items():
            print(f"  {k:<13} {v:8.1f}")
        stats = await store.r.info("commandstats")
        top = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])[:args.commands]
        print("  Redis commands by total time (scripts include the commands they call):")
        for name, st in top:
            print(f"    {name.removeprefix('cmdstat_'):<12} {st['calls']:>8,} calls {st['usec'] / n:7.1f} us/order "
                  f"{st['usec_per_call']:8.2f} us/call")
        by_sha = {s.sha: s.name for s in scripts.ALL}
        per: dict[str, list[int]] = {}
        for entry in await store.r.slowlog_get(100_000):
            cmd = entry["command"].split()
            name = cmd[0].decode().upper()
            if name == "EVALSHA":
                name = by_sha.get(cmd[1].decode(), "EVALSHA ?")
            acc = per.setdefault(name, [0, 0])
            acc[0] += 1
            acc[1] += entry["duration"]
        print("  Redis time by top-level command or script (SLOWLOG):")
        for name, (calls, us) in sorted(per.items(), key=lambda kv: -kv[1][1])[:args.commands]:
            print(f"    {name:<20} {calls:>8,} calls {us / n:7.1f} us/order {us / calls:9.1f} us/call")
        problems = await store.audit()
        print(f"  audit: {'ok' if not problems else problems[:3]}")
        await store.close()
        if prof:
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.cprofile)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20, help="measured batches")
    ap.add_argument("--warmup", type=int, default=10, help="batches before measuring")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--warehouses", type=int, default=20)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--default-gc", action="store_true", help="keep Python's default GC tuning")
    ap.add_argument("--no-keys", action="store_true", help="orders without idempotency keys")
    ap.add_argument("--commands", type=int, default=12, help="Redis commands to list")
    ap.add_argument("--callgrind", default="", help="run Redis under callgrind, write its profile here")
    ap.add_argument("--sort", default="tottime", help="cProfile order: tottime or cumtime")
    ap.add_argument("--cprofile", type=int, default=0, help="print the top N functions by own time")
    ap.add_argument("--risk-buckets", type=int, default=0,
                    help="spread the fraud counters over N slots instead of keys.RISK_BUCKETS "
                         "(what the spread costs; the store reads the count at call time)")
    args = ap.parse_args(argv)
    if args.risk_buckets:
        from oms.server.redis import keys  # noqa: PLC0415 - only this option needs it

        keys.RISK_BUCKETS = args.risk_buckets
        keys._RISK_PREFIXES[:] = [f"{keys.PREFIX}{{r:{n}}}:" for n in range(args.risk_buckets)]
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
