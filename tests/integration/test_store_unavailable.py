"""Redis down (issue 11, finding 9): every call answers UNAVAILABLE (retryable), health says
NOT_SERVING while the store is unreachable and SERVING again once it is back, and the service
recovers by itself: pooled and raw-pipeline connections reconnect."""
from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oms.clients.client import ClientError, OmsClient
from oms.engine.errors import OmsError, UnavailableError
from oms.server.errors import code_for
from oms.server.health import watch_store
from oms.server.redis.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY, ServerThread, server_config
from tests.helpers import poll


def test_unavailable_is_a_retryable_domain_error() -> None:
    assert UnavailableError.retryable and not OmsError.retryable
    assert code_for(UnavailableError("redis down")) == grpc.StatusCode.UNAVAILABLE


def test_redis_down_is_unavailable_and_health_follows(tmp_path: Path) -> None:
    from oms.engine import allocation  # noqa: PLC0415

    allocation.warmup()
    redis = EmbeddedRedis(tmp_path, appendonly=True, fsync="always").start()
    st = ServerThread(server_config(redis.url, redis_cluster=False)).start()
    try:
        async def start_watch() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(
                watch_store(st.server, st.store, interval_s=0.2))

        watch = st.run(start_watch())
        target = f"127.0.0.1:{st.port}"
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))  # open: no key

        def status() -> int:
            return health.Check(health_pb2.HealthCheckRequest()).status

        with OmsClient(target, timeout=60, api_key=ADMIN_KEY) as cl:
            cl.upsert_warehouse("DSM", postal_code="50309")
            cl.set_stock("DSM", "SKU-1", 50, "A00-S001")
            before = cl.place_order(cl.order_request([("SKU-1", 2)], postal_code="50010"))
            assert status() == health_pb2.HealthCheckResponse.SERVING

            redis.stop()
            assert poll(lambda: status() == health_pb2.HealthCheckResponse.NOT_SERVING, 20.0)
            for call in (lambda: cl.get_order(before.id),  # redis-py pool
                         lambda: cl.place_order(cl.order_request([("SKU-1", 1)], postal_code="50010")),
                         lambda: cl.get_stock("SKU-1")):
                with pytest.raises(ClientError) as e:
                    call()
                assert e.value.code == grpc.StatusCode.UNAVAILABLE, e.value

            redis = EmbeddedRedis(tmp_path, appendonly=True, fsync="always").start()  # AOF replayed
            assert poll(lambda: status() == health_pb2.HealthCheckResponse.SERVING, 20.0)
            assert cl.get_order(before.id).id == before.id
            after = cl.place_order(cl.order_request([("SKU-1", 1)], postal_code="50010"))
            assert after.id != before.id
            assert cl.get_stock("SKU-1").levels[0].reserved == 3
        st.loop.call_soon_threadsafe(watch.cancel)
    finally:
        st.stop()
        redis.stop()
