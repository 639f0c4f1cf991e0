"""server.redis.resp_pipeline against a real redis-server: same replies as redis-py, errors mapped
the same way, connections never reused in an unknown state."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis
from redis.exceptions import NoScriptError, ResponseError

from oms.server.redis.resp_pipeline import Packed, RawClient, bulk, bulk_int, bulk_str, pack
from oms.server.redis.store import RiskRow, RiskSignals, Store
from tests.conftest import CLUSTER_ONLY_SKIP, ON_CLUSTER

# RawClient against one Redis (the cluster router has its own tests: test_cluster_store.py)
pytestmark = pytest.mark.skipif(ON_CLUSTER, reason=CLUSTER_ONLY_SKIP)

ECHO = "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}"


def test_pack_is_resp() -> None:
    assert pack(("MGET", "a", b"b\r\n", 7)) == b"*4\r\n$4\r\nMGET\r\n$1\r\na\r\n$3\r\nb\r\n\r\n$1\r\n7\r\n"
    with pytest.raises(TypeError):
        pack(("GET", None))


def test_packed_arguments_count_as_many(clean_redis: str) -> None:
    """A Packed piece is n arguments: the array header counts them, Redis sees each one."""
    pre = Packed(3, bulk(b"x") + bulk_int(12) + bulk_str("z\x1fz"))
    assert pack(("RPUSH", "l", pre, "w")) == pack(("RPUSH", "l", "x", 12, "z\x1fz", "w"))

    async def go() -> list:
        c = RawClient(clean_redis)
        try:
            p = c.pipeline()
            p.execute_command("RPUSH", "l", pre, "w")
            p.execute_command("LRANGE", "l", 0, -1)
            return await p.execute()
        finally:
            await c.close()

    assert asyncio.run(go()) == [4, [b"x", b"12", b"z\x1fz", b"w"]]


def test_replies_match_redis_py(clean_redis: str) -> None:
    r = redis.Redis.from_url(clean_redis)
    sha = r.script_load(ECHO)
    r.set("a", b"\x00\x01")

    async def go() -> list:
        c = RawClient(clean_redis)
        try:
            p = c.pipeline()
            p.evalsha(sha, 1, "k", "v", 41)
            p.mget(["a", "missing"])
            return await p.execute()
        finally:
            await c.close()

    got = asyncio.run(go())
    with r.pipeline(transaction=False) as p:
        p.evalsha(sha, 1, "k", "v", 41)
        p.mget(["a", "missing"])
        assert got == p.execute() == [[b"k", b"v", 42], [b"\x00\x01", None]]


def test_error_reply_raises_after_reading_all_and_keeps_the_connection(clean_redis: str) -> None:
    r = redis.Redis.from_url(clean_redis)
    bad = r.script_load("return redis.error_reply('boom')")
    good = r.script_load(ECHO)

    async def go() -> None:
        c = RawClient(clean_redis)
        try:
            p = c.pipeline()
            p.evalsha(bad, 0)
            p.evalsha(good, 1, "k", "v", 1)
            with pytest.raises(ResponseError, match="boom"):
                await p.execute()
            assert len(c._idle) == 1  # reused: every reply was read
            p = c.pipeline()
            p.evalsha(good, 1, "k", "v", 1)
            assert await p.execute() == [[b"k", b"v", 2]]
            p = c.pipeline()
            p.evalsha("0" * 40, 0)
            with pytest.raises(NoScriptError):
                await p.execute()
        finally:
            await c.close()

    asyncio.run(go())


def test_large_replies_span_many_reads(clean_redis: str) -> None:
    r = redis.Redis.from_url(clean_redis)
    blob = bytes(range(256)) * 4096  # 1 MiB
    r.set("big", blob)

    async def go() -> list:
        c = RawClient(clean_redis)
        try:
            p = c.pipeline()
            for _ in range(3):
                p.mget(["big", "big"])
            return await p.execute()
        finally:
            await c.close()

    assert asyncio.run(go()) == [[blob, blob]] * 3


def test_cancelled_call_drops_its_connection(clean_redis: str) -> None:
    r = redis.Redis.from_url(clean_redis)
    slow = r.script_load("local t = redis.call('TIME'); local s = t[1] * 1e6 + t[2] "
                         "repeat local n = redis.call('TIME') until n[1] * 1e6 + n[2] - s > 200000 "
                         "return 1")
    good = r.script_load(ECHO)

    async def go() -> None:
        c = RawClient(clean_redis)
        try:
            p = c.pipeline()
            p.evalsha(slow, 0)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(p.execute(), 0.05)
            assert c._idle == []  # its late reply must never be read as another call's
            p = c.pipeline()
            p.evalsha(good, 1, "k", "v", 5)
            assert await p.execute() == [[b"k", b"v", 6]]
        finally:
            await c.close()

    asyncio.run(go())


def test_store_reloads_scripts_after_a_flush(clean_redis: str) -> None:
    async def go() -> tuple:
        store = Store.from_url(clean_redis)
        try:
            redis.Redis.from_url(clean_redis).script_flush()
            return await store.risk_and_snapshot([RiskRow("c1", "e1", "a1", 100, 0, 0, "US")],
                                                 1_000_000, 3600, [], np.zeros(0, dtype=np.int64))
        finally:
            await store.close()

    signals, available = asyncio.run(go())
    assert signals == [RiskSignals(0, 0, 0, 0, 0, 0, 0, "-")]
    assert available.shape == (0, 0)


def test_snapshot_reads_few_skus_by_entry_and_many_by_array(clean_redis: str) -> None:
    from oms.engine.models import Warehouse  # noqa: PLC0415
    from oms.server.redis.store import SNAPSHOT_FEW_SKUS  # noqa: PLC0415

    async def go() -> tuple:
        store = Store.from_url(clean_redis)
        try:
            for wid in ("DSM", "CHI"):
                await store.upsert_warehouse(Warehouse(wid, wid, 41.6, -93.6))
            n = SNAPSHOT_FEW_SKUS * 40  # ids[:5] is a few of a large catalogue
            for k in range(n):
                await store.set_stock("DSM", f"S{k}", k, "")
                if k % 3 == 0:
                    await store.set_stock("CHI", f"S{k}", 1000 + k, "")
            ids = np.array(list((await store.sku_ids([f"S{k}" for k in range(n)])).values()))
            few = await store.snapshot(["DSM", "CHI", "NONE"], ids[:5])
            many = await store.snapshot(["DSM", "CHI", "NONE"], ids)
            return ids, few, many
        finally:
            await store.close()

    ids, few, many = asyncio.run(go())
    n = len(ids)
    assert many.shape == (3, n) and few.shape == (3, 5)
    assert (few == many[:, :5]).all()
    assert many[0].tolist() == list(range(n))
    assert many[1].tolist() == [1000 + k if k % 3 == 0 else 0 for k in range(n)]
    assert not many[2].any()  # a warehouse without stock reads as zeros
