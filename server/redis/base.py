"""The store's shared plumbing: ``StoreBase`` holds the clients, the settings and the caches
every area mixin uses, and runs pipelined script batches (``_exec``, reloading scripts on
NOSCRIPT). ``Store`` (store.py) is this base plus the area mixins.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Self

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from oms.engine.errors import OmsError
from oms.engine.models import Warehouse
from oms.server.redis import scripts
from oms.server.redis.notifications import Notifications
from oms.server.redis.cluster_routing import ClusterRawClient
from oms.server.redis.resp_pipeline import RawClient, RawPipeline
from oms.server.redis.unavailable import Redis as UnavailableAwareRedis
from oms.server.redis.unavailable import RedisCluster as UnavailableAwareCluster
from oms.server.redis.unavailable import unavailable


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class StaleError(OmsError):
    """An optimistic update lost a race: the order changed after it was read. Retry."""


class StoreBase:
    """Clients, settings and caches shared by the store's area mixins."""

    def __init__(self, client: aioredis.Redis, raw: RawClient, *, events_maxlen: int = 1_000_000,
                 idempotency_ttl_s: int = 86400, claim_lease_s: float = 10.0) -> None:
        self.r = client
        self.cluster = isinstance(client, UnavailableAwareCluster)
        self.raw = raw  # lean pipelines for the hot round trips (same server and database)
        self.events_maxlen = events_maxlen
        self.idempotency_ttl_s = idempotency_ttl_s
        self._claim_life_s = 2 * idempotency_ttl_s + 60  # a claims hash covers one period
        # A pending claim's owner has this long to place the order; after that a retry takes
        # the claim over (the owner died, or its batch was cut off before writing).
        self.claim_lease_s = claim_lease_s
        self._wh_cache: tuple[float, list[Warehouse]] | None = None
        self._skus: dict[str, int] = {}

    def reset_caches(self) -> None:
        """Forget the cached warehouses and sku ids: after the database was emptied or
        rewritten behind this store's back (tests flush Redis between cases)."""
        self._wh_cache = None
        self._ch_cache = None
        self._skus.clear()

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, replica_acks: int = 0, **kw: int) -> Self:
        """A store on ``url``; with ``cluster``, on the Redis Cluster that ``url`` names a node
        of. Callers ``await ping()`` before use: on a cluster that reads the slot map.
        ``replica_acks`` N > 0 (cluster only): every write waits for N replicas (WAIT)."""
        if cluster:
            # Connections per node; a blocking wait instead of failing under bursts, as below.
            client = UnavailableAwareCluster.from_url(url, max_connections=64)
            raw = ClusterRawClient(url, replica_acks=replica_acks)
            if replica_acks:
                client.acked = raw
            return cls(client, raw, **kw)  # type: ignore[arg-type]
        if replica_acks:
            raise ValueError("replica acks need a Redis Cluster")
        # A blocking pool: bursts of concurrent RPCs wait for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=30)
        # Connection errors come out as the retryable StoreUnavailable (UNAVAILABLE).
        return cls(UnavailableAwareRedis(connection_pool=pool), RawClient(url), **kw)

    async def close(self) -> None:
        await self.raw.close()
        await self.r.aclose()

    async def ping(self) -> bool:
        """PING Redis; raises StoreUnavailable when it does not answer. On a cluster the first
        call also discovers the nodes and slots, eagerly: redis-py's lazy initialisation under
        concurrent first calls is a known failure."""
        if self.cluster:
            try:
                await self.r.initialize()  # type: ignore[attr-defined]
            except Exception as e:  # noqa: BLE001 - any discovery failure is "not reachable"
                raise unavailable(e) from e
            await self.raw.start()  # type: ignore[attr-defined]
        return bool(await self.r.ping())

    def notifications(self, consumer: str) -> Notifications:
        """The notifier's consumer-group and send-claim access, on this store's pool."""
        return Notifications(self.r, consumer)

    # Scripts inside pipelines go by EVALSHA directly (``LuaScript.add_to``): redis-py's Script
    # objects make every pipeline that holds one ask SCRIPT EXISTS first, an extra round trip
    # on the hot path. A NOSCRIPT answer (a restarted or flushed Redis) loads the scripts and
    # re-runs the batch; that is safe because NOSCRIPT fails every script call of the batch
    # before any runs.
    async def _exec(self, build: Callable[[RawPipeline], None]) -> list[Any]:
        """Run the EVALSHA/MGET calls that ``build(pipeline)`` adds, in one round trip."""
        for attempt in (0, 1):
            try:
                p = self.raw.pipeline()
                build(p)
                return await p.execute()
            except NoScriptError:
                if attempt:
                    raise
            await scripts.load_all(self.r)
        raise AssertionError("unreachable")
