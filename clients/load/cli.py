"""``oms-load``'s command line (the package docstring is its help)."""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time

from oms.clients import credentials
from oms.clients.load.order_pool import cached_pool, parse_lines
from oms.clients.load.runner import merge_results, print_summary, run_load
from oms.clients.load.setup import setup_network
from oms.clients.load.worker import LoadConfig
from oms.clients.metros import METROS


def build_parser() -> argparse.ArgumentParser:
    from oms.clients import load  # noqa: PLC0415 - the package docstring is the help

    ap = argparse.ArgumentParser(prog="oms-load", description=load.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default=os.environ.get("OMS_TARGET", "127.0.0.1:50051"))
    ap.add_argument("--api-key", default=None,
                    help="API key with orders:write (and inventory:write for --setup); else "
                         "OMS_API_KEY, else the file OMS_ADMIN_KEY_FILE or var/admin.key")
    ap.add_argument("--tls-ca", default="", help="PEM CA of the server's TLS certificate")
    ap.add_argument("--mode", choices=("unary", "batch", "stream"), default="batch")
    ap.add_argument("--batch-size", type=int, default=500, help="orders per BatchPlaceOrders call")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="calls (unary/batch) or streams (stream) in flight per process")
    ap.add_argument("--window", type=int, default=128, help="stream: orders in flight per stream")
    ap.add_argument("--processes", type=int, default=1, help="client processes (spawned)")
    ap.add_argument("--channels", type=int, default=1, help="gRPC connections per process")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="target orders/s over all processes (open loop); 0 = closed loop")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="measured seconds (0 with --setup: only set up)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--lines", type=parse_lines, default=(1, 5), help="lines per order: N or LO-HI")
    ap.add_argument("--skus", type=int, default=1000)
    ap.add_argument("--hot-share", type=float, default=0.1,
                    help="fraction of lines on the --hot-skus hot SKUs (contention)")
    ap.add_argument("--hot-skus", type=int, default=8)
    ap.add_argument("--pool", type=int, default=8192, help="distinct pre-built orders")
    ap.add_argument("--pool-cache", default="", metavar="DIR",
                    help="keep the built order pool in DIR and reuse it (same pool options)")
    ap.add_argument("--no-idempotency-keys", action="store_true",
                    help="send orders without idempotency keys (default: a unique key each)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--setup", action="store_true",
                    help="first create --warehouses warehouses and stock of --skus SKUs")
    ap.add_argument("--warehouses", type=int, default=20, help=f"with --setup: 1..{len(METROS)}")
    ap.add_argument("--stock", type=int, default=1_000_000, help="with --setup: on_hand per SKU per warehouse")
    ap.add_argument("--hot-stock", type=int, default=0,
                    help="with --setup: on_hand of the hot SKUs (0 = --stock); small values force "
                         "stock-outs, zone skipping and re-plans")
    ap.add_argument("--json", default="", help="write the result as JSON to this file")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("concurrency", "processes", "batch_size", "window", "pool", "skus"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    api_key = credentials.resolve_api_key(args.api_key)
    setup = None
    if args.setup:
        try:
            setup = asyncio.run(setup_network(args.target, args.warehouses, args.skus, args.stock,
                                              args.hot_skus, args.hot_stock, args.seed, quiet=args.quiet,
                                              api_key=api_key, tls_ca=args.tls_ca))
        except Exception as e:  # noqa: BLE001 - connection or RPC failure: report, exit 2
            print(f"oms-load: setup failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    if args.duration <= 0:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"setup": setup}, f, indent=1)
        return 0 if setup is None or not setup["errors"] else 1
    cfg = LoadConfig(
        target=args.target, mode=args.mode, batch_size=args.batch_size,
        concurrency=args.concurrency, window=args.window, processes=args.processes,
        channels=args.channels, rate=args.rate, duration=args.duration,
        warmup=max(0.0, args.warmup), timeout=args.timeout, connect_timeout=args.connect_timeout,
        lines=f"{args.lines[0]}-{args.lines[1]}", skus=args.skus, hot_share=args.hot_share,
        hot_skus=args.hot_skus, pool=args.pool,
        idempotency_keys=not args.no_idempotency_keys,
        key_prefix=f"ld{secrets.token_hex(4)}", api_key=api_key, tls_ca=args.tls_ca,
    )
    t0 = time.perf_counter()
    pool = cached_pool(args.pool_cache, args.pool, skus=args.skus, lines=args.lines,
                       hot_share=args.hot_share, hot_skus=args.hot_skus, seed=args.seed)
    pool_s = time.perf_counter() - t0
    try:
        raw = run_load(cfg, pool, quiet=args.quiet)
    except (RuntimeError, asyncio.TimeoutError) as e:
        print(f"oms-load: {e}", file=sys.stderr)
        return 2
    res = merge_results(cfg, raw)
    res["setup"] = setup
    res["pool_build_s"] = round(pool_s, 2)
    print_summary(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["ok"] > 0 else 1
