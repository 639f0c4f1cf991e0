"""Redis clients whose "cannot reach Redis" errors are the domain's retryable
``UnavailableError``, so the gRPC layer answers UNAVAILABLE instead of INTERNAL.

Translation happens here, at the client, once: every store method, script call and pipeline
goes through ``execute_command`` or ``Pipeline.execute``, so no store method needs its own
handler, and no module outside ``server/redis/`` sees a redis-py exception.
"""
from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline as _AsyncPipeline
from redis.asyncio.cluster import ClusterPipeline as _AsyncClusterPipeline
from redis.asyncio.cluster import RedisCluster as _AsyncRedisCluster
from redis.exceptions import ClusterDownError, MasterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from oms.engine.errors import UnavailableError

# ConnectionError covers refused/reset sockets, a full connection pool and LOADING (a Redis
# replaying its AOF after a restart); TimeoutError a socket timeout. Other redis-py errors
# (error replies, WATCH conflicts) are answers, not outages, and pass unchanged.
_DOWN = (RedisConnectionError, RedisTimeoutError)
# On a cluster, also a failover or a migration that outlasted redis-py's own retries.
_CLUSTER_DOWN = (*_DOWN, ClusterDownError, MasterDownError, TryAgainError, SlotNotCoveredError)


class StoreUnavailable(UnavailableError, RedisConnectionError):
    """Redis is unreachable. Both a domain error (UNAVAILABLE, retryable) and redis-py's
    ConnectionError, so code inside ``server/redis/`` that handles the latter still does."""


def unavailable(exc: BaseException) -> StoreUnavailable:
    """The domain error for a redis-py connection or timeout error (message kept short)."""
    return StoreUnavailable(f"store unavailable: {str(exc)[:200]}")


class Redis(aioredis.Redis):
    """``redis.asyncio.Redis`` raising ``StoreUnavailable`` when Redis cannot be reached (after
    redis-py's own retries, which ride over a restart of a second or two)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)
        except StoreUnavailable:
            raise
        except _DOWN as e:
            raise unavailable(e) from e

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> "Pipeline":
        return Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class Pipeline(_AsyncPipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error)
        except StoreUnavailable:
            raise
        except _DOWN as e:
            raise unavailable(e) from e

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().immediate_execute_command(*args, **options)
        except StoreUnavailable:
            raise
        except _DOWN as e:
            raise unavailable(e) from e



class RedisCluster(_AsyncRedisCluster):
    """``redis.asyncio.cluster.RedisCluster`` raising ``StoreUnavailable`` when the cluster
    cannot serve (a node unreachable, a failover or slot migration not settled in time).

    With ``--replica-acks``, ``acked`` is the store's ``ClusterRawClient``: the state changes
    made outside the hot pipelines (scripts such as a cancel or a stock change, and HSET) go
    through it, so they too end with WAIT on the connection that wrote them (redis-py would
    send a WAIT on whatever pooled connection, which counts another client's writes)."""

    acked: Any = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.acked is not None and not kwargs and args:
            name = str(args[0]).upper()
            if name == "EVALSHA" and int(args[2]) > 0:
                return await self.acked.execute_one(args, args[3])
            if name == "HSET":
                return await self.acked.execute_one(args, args[1])
        try:
            return await super().execute_command(*args, **kwargs)
        except StoreUnavailable:
            raise
        except _CLUSTER_DOWN as e:
            raise unavailable(e) from e

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> "ClusterPipeline":
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # type: ignore[return-value]
        return ClusterPipeline(self, transaction)


class ClusterPipeline(_AsyncClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except StoreUnavailable:
            raise
        except _CLUSTER_DOWN as e:
            raise unavailable(e) from e
