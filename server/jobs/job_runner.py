"""What every background job's ``main()`` does (``oms-notify``, ``oms-wave``): build its config
dataclass from flags and ``OMS_*`` variables (a bad value: one line, exit status 2), set up
logging, open the store (``--redis-url``, else the embedded Redis or embedded cluster of an
``oms-server`` started with the same ``--data-dir``), stop on SIGTERM/SIGINT, run the job, close the store."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from oms.server.config import ConfigError, parse_config
from oms.server.redis.store import Store


class JobConfig(Protocol):
    redis_url: str
    redis_cluster: bool
    replica_acks: int
    data_dir: str
    log_level: str


C = TypeVar("C", bound=JobConfig)
# The job itself: (its config, the open store, the store's URL, the stop event) -> exit status.
JobBody = Callable[[C, Store, str, asyncio.Event], Awaitable[int]]


def store_url(redis_url: str, data_dir: str) -> str:
    """``redis_url``, else the unix socket of the embedded Redis that ``oms-server`` runs in
    ``data_dir`` (server/redis/embedded.py puts it there)."""
    return redis_url or f"unix://{os.path.abspath(data_dir)}/redis.sock?db=0"


def store_target(redis_url: str, data_dir: str, redis_cluster: bool) -> tuple[str, bool]:
    """(URL, cluster?): ``redis_url`` as given; else the embedded cluster an ``oms-server
    --embedded-cluster`` runs in ``data_dir`` (its ``cluster.json`` names the nodes), else the
    embedded single Redis there."""
    if not redis_url:
        from oms.server.redis.embedded_cluster import recorded_url  # noqa: PLC0415

        found = recorded_url(data_dir)
        if found:
            return found, True
    return store_url(redis_url, data_dir), redis_cluster


def run_job(prog: str, config_cls: type[C], argv: list[str] | None, description: str,
            body: JobBody[C]) -> int:
    """A job's whole ``main()``; returns the exit status."""
    try:
        cfg = parse_config(config_cls, argv, prog, description)
    except ConfigError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(_run(cfg, body))


async def _run(cfg: C, body: JobBody[C]) -> int:
    url, cluster = store_target(cfg.redis_url, cfg.data_dir, cfg.redis_cluster)
    store = Store.from_url(url, cluster=cluster, replica_acks=cfg.replica_acks if cluster else 0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await store.ping()  # fail at once, not on the first round, when Redis is not there
        return await body(cfg, store, url, stop)
    finally:
        await store.close()
