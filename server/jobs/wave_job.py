"""``oms-wave``: the wave job. Every ``--interval`` seconds (once with ``--once``) it gives
arrived stock to backordered orders, re-allocates not-yet-released orders over the network,
then plans a pick wave for each enabled warehouse, logging one line per wave. A failing
warehouse is logged and skipped; SIGTERM stops the job between steps.

It talks to Redis directly (the same store and scripts as the server). Without --redis-url
it uses the embedded Redis of an ``oms-server`` started with the same --data-dir.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from oms.server.config import RULES, ArgParser, Config, ConfigError, between, positive_up_to, resolve
from oms.server.redis.store import Store
from oms.server.wave_planner import WavePlanner

log = logging.getLogger("oms.wave")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags, else environment variables, else defaults; every value checked (ConfigError)."""
    p = ArgParser(prog="oms-wave", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="(env OMS_REDIS_URL)")
    p.add_argument("--data-dir", help="(env OMS_DATA_DIR, default var/redis)")
    p.add_argument("--interval", help="seconds between rounds (env OMS_WAVE_INTERVAL, default 300)")
    p.add_argument("--once", action="store_true")
    p.add_argument("--max-orders", help="(env OMS_WAVE_MAX_ORDERS, default 2000)")
    p.add_argument("--batch-max-orders", help="(default 8)")
    p.add_argument("--batch-max-items", help="(default 30)")
    p.add_argument("--time-budget", help="seconds of optimisation per wave (default 4)")
    p.add_argument("--no-reallocate", action="store_true")
    p.add_argument("--no-backorders", action="store_true", help="do not fill backorders")
    # The server's settings (server.config.Config, same variables, defaults and checks).
    p.add_argument("--fraud-hold-seconds",
                   help="a filled backorder waits this long from when it was placed")
    p.add_argument("--risk-hold-score", help="a filled backorder scoring this or more goes ON_HOLD")
    p.add_argument("--log-level", help="(env OMS_LOG_LEVEL, default INFO)")
    ns = p.parse_args(argv)
    for name in ("redis_url", "data_dir", "fraud_hold_seconds", "risk_hold_score", "log_level"):
        setattr(ns, name, resolve(ns, name, getattr(Config, name), RULES[name]))
    ns.interval = resolve(ns, "interval", 300.0, positive_up_to(7 * 86400), env="OMS_WAVE_INTERVAL")
    ns.max_orders = resolve(ns, "max_orders", 2000, between(1, 1_000_000), env="OMS_WAVE_MAX_ORDERS")
    ns.batch_max_orders = resolve(ns, "batch_max_orders", 8, between(1, 1000), env="")
    ns.batch_max_items = resolve(ns, "batch_max_items", 30, between(1, 100_000), env="")
    ns.time_budget = resolve(ns, "time_budget", 4.0, positive_up_to(600), env="")
    return ns


async def run_once(store: Store, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """One round; returns the number of waves planned."""
    if not args.no_backorders:
        try:
            from oms.server.backorders import BackorderFiller  # noqa: PLC0415

            await BackorderFiller(store, fraud_hold_seconds=args.fraud_hold_seconds,
                                  risk_hold_score=args.risk_hold_score
                                  ).run(max_orders=args.max_orders * 10)
        except Exception:
            log.exception("filling backorders failed; going on with the round")
    if not args.no_reallocate:
        try:
            from oms.server.reallocation_runner import Reallocator  # noqa: PLC0415

            rep = await Reallocator(store).run(time_budget_s=args.time_budget)
            log.info("reallocation: %d orders considered, %d moved, cost %.0f -> %.0f "
                     "(LP bound %.0f)", rep.orders, rep.moved, rep.cost_before, rep.cost_after,
                     rep.lp_lower_bound)
        except Exception:
            log.exception("reallocation failed; planning waves on the current allocation")
    planner = WavePlanner(store, time_budget_s=args.time_budget)
    planned = 0
    for w in await store.warehouses(0.0):
        if stop.is_set():
            break
        if w.disabled:
            continue
        try:
            wave = await planner.plan(w.id, args.max_orders, args.batch_max_orders, args.batch_max_items)
        except Exception as e:  # one warehouse failing must not stop the others
            log.error("wave for %s failed: %s", w.id, e)
            continue
        if not wave.batches:
            log.info("wave %s: no releasable orders", w.id)
            continue
        planned += 1
        n = sum(len(b.order_ids) for b in wave.batches)
        saving = 1 - wave.total_distance_m / wave.baseline_distance_m if wave.baseline_distance_m else 0
        log.info("wave %s: %d orders, %d batches, distance %.0f m, baseline %.0f m, saving %.1f%%",
                 wave.id, n, len(wave.batches), wave.total_distance_m, wave.baseline_distance_m,
                 100 * saving)
    return planned


async def main_async(args: argparse.Namespace) -> int:
    url = args.redis_url or f"unix://{os.path.abspath(args.data_dir)}/redis.sock?db=0"
    store = Store.from_url(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await store.r.ping()
        while True:
            await run_once(store, args, stop)
            if args.once or stop.is_set():
                return 0
            try:
                await asyncio.wait_for(stop.wait(), args.interval)
                return 0
            except asyncio.TimeoutError:
                pass
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ConfigError as e:
        print(f"oms-wave: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
