"""A channel poller's read of a warehouse: its stock version is read before its availability
array. The other order let a stock write land between the two reads and vanish from every later
poll (array older than its version: the version never moves again), which left a shop with a
stale level in a fresh-clone CI run."""
from __future__ import annotations

import asyncio
import threading

import pytest
import redis

from oms.server.redis import keys
from tests.conftest import ON_CLUSTER, store_for


@pytest.mark.skipif(ON_CLUSTER, reason="MONITOR of one node; the pipeline's order is the same")
def test_the_version_is_read_before_the_array(clean_redis: str) -> None:
    seen: list[tuple[str, ...]] = []
    ready, done = threading.Event(), threading.Event()

    def monitor() -> None:
        r = redis.Redis.from_url(clean_redis)
        with r.monitor() as m:
            ready.set()
            for cmd in m.listen():
                parts = tuple(cmd["command"].split())
                if parts and parts[0] == "PING":
                    done.set()
                    return
                seen.append(parts)

    t = threading.Thread(target=monitor, daemon=True)
    t.start()
    assert ready.wait(10)

    async def go() -> None:
        store = store_for(clean_redis)
        try:
            await store.read_avail_arrays(["DSM", "CHI"])
            await store.r.ping()  # ends the monitor
        finally:
            await store.close()

    asyncio.run(go())
    assert done.wait(10)
    t.join(10)
    gets = [p[1] for p in seen if p[0] == "GET"]
    for w in ("DSM", "CHI"):
        sh = keys.Shard(w)
        assert sh.stockseq in gets and sh.avail in gets, gets
        assert gets.index(sh.stockseq) < gets.index(sh.avail), gets
