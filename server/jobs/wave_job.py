"""``oms-wave``: the wave job. Every ``--interval`` seconds (once with ``--once``) it gives
arrived stock to backordered orders, re-allocates not-yet-released orders over the network,
then plans a pick wave for each enabled warehouse, logging one line per wave. A failing
warehouse is logged and skipped; SIGTERM stops the job between steps.

It talks to Redis directly (the same store and scripts as the server). Without --redis-url
it uses the embedded Redis of an ``oms-server`` started with the same --data-dir.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

from oms.server.auth.principal import acting_as
from oms.server.config import (BATCH_MAX_ITEMS, BATCH_MAX_ORDERS, WAVE_TIME_BUDGET_S, Config,
                               between, option, positive_up_to)
from oms.server.jobs.job_runner import run_job
from oms.server.redis.store import Store
from oms.server.wave_planner import WavePlanner

log = logging.getLogger("oms.wave")

ACTOR = "system:oms-wave"  # the actor of the round's changes (backorders, moves, waves)


@dataclass
class WaveConfig:
    """Flags, else environment variables, else defaults; every value checked (ConfigError).
    The server's settings keep the server's variables, defaults and checks (Config)."""
    redis_url: str = Config.redis_url
    data_dir: str = Config.data_dir
    redis_cluster: bool = option(switch=True, help="--redis-url is a node of a Redis Cluster")
    replica_acks: int = Config.replica_acks  # cluster only: writes wait for N replicas (WAIT)
    interval: float = option(300.0, rule=positive_up_to(7 * 86400), env="OMS_WAVE_INTERVAL",
                             help="seconds between rounds")
    once: bool = option(switch=True, env="")
    max_orders: int = option(2000, rule=between(1, 1_000_000), env="OMS_WAVE_MAX_ORDERS")
    batch_max_orders: int = option(BATCH_MAX_ORDERS, rule=between(1, 1000), env="")
    batch_max_items: int = option(BATCH_MAX_ITEMS, rule=between(1, 100_000), env="")
    time_budget: float = option(WAVE_TIME_BUDGET_S, rule=positive_up_to(600), env="",
                                help="seconds of optimisation per wave")
    no_reallocate: bool = option(switch=True, env="")
    no_backorders: bool = option(switch=True, env="", help="do not fill backorders")
    fraud_hold_seconds: int = option(Config.fraud_hold_seconds,
                                     help="a filled backorder waits this long from when it was "
                                          "placed")
    risk_hold_score: int = option(Config.risk_hold_score,
                                  help="a filled backorder scoring this or more goes ON_HOLD")
    log_level: str = Config.log_level


async def run_once(store: Store, cfg: WaveConfig, stop: asyncio.Event) -> int:
    """One round, as ``ACTOR`` (no call started it); returns the number of waves planned."""
    with acting_as(ACTOR):
        return await _round(store, cfg, stop)


async def _round(store: Store, cfg: WaveConfig, stop: asyncio.Event) -> int:
    if not cfg.no_backorders:
        try:
            from oms.server.backorders import BackorderFiller  # noqa: PLC0415

            await BackorderFiller(store, fraud_hold_seconds=cfg.fraud_hold_seconds,
                                  risk_hold_score=cfg.risk_hold_score
                                  ).run(max_orders=cfg.max_orders * 10)
        except Exception:
            log.exception("filling backorders failed; going on with the round")
    if not cfg.no_reallocate:
        try:
            from oms.server.reallocation_runner import Reallocator  # noqa: PLC0415

            rep = await Reallocator(store).run(time_budget_s=cfg.time_budget)
            log.info("reallocation: %d orders considered, %d moved, cost %.0f -> %.0f "
                     "(LP bound %.0f)", rep.orders, rep.moved, rep.cost_before, rep.cost_after,
                     rep.lp_lower_bound)
        except Exception:
            log.exception("reallocation failed; planning waves on the current allocation")
    planner = WavePlanner(store, time_budget_s=cfg.time_budget)
    planned = 0
    for w in await store.warehouses(0.0):
        if stop.is_set():
            break
        if w.disabled:
            continue
        try:
            wave = await planner.plan(w.id, cfg.max_orders, cfg.batch_max_orders, cfg.batch_max_items)
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


async def run_rounds(cfg: WaveConfig, store: Store, url: str, stop: asyncio.Event) -> int:
    """A round every ``cfg.interval`` seconds until stopped (one with ``--once``)."""
    while True:
        await run_once(store, cfg, stop)
        if cfg.once or stop.is_set():
            return 0
        try:
            await asyncio.wait_for(stop.wait(), cfg.interval)
            return 0
        except asyncio.TimeoutError:
            pass


def main(argv: list[str] | None = None) -> int:
    return run_job("oms-wave", WaveConfig, argv, __doc__ or "", run_rounds)


if __name__ == "__main__":
    sys.exit(main())
