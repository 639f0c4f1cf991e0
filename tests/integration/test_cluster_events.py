"""Events, the notifier and the fraud counters on a 3-master Redis Cluster (issue 14 item 2):
shard streams on different masters merge in time order and resume, the notifier's consumer
group reads and acknowledges across nodes, and fraud signals whose buckets live on different
nodes come out as a single Redis would count them. Own EmbeddedCluster: runs in every suite."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from oms.engine.models import Warehouse
from oms.server.redis import keys
from oms.server.redis.embedded_cluster import EmbeddedCluster
from oms.server.redis.records import RiskRow, RiskSignals
from oms.server.redis.store import Store

WINDOW_S = 600


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(Path(tmp_path_factory.mktemp("c2cluster")), masters=3,
                         appendonly=False) as c:
        yield c


def _slot_owner(c: EmbeddedCluster) -> dict[int, int]:
    """slot -> port of the master serving it."""
    import redis  # noqa: PLC0415

    host, port = c.startup_nodes[0]
    r = redis.Redis(host=host, port=port)
    try:
        owner: dict[int, int] = {}
        for lo, hi, master, *_ in r.execute_command("CLUSTER SLOTS"):
            for s in range(lo, hi + 1):
                owner[s] = master[1]
        return owner
    finally:
        r.close()


def _port_of(owner: dict[int, int], key: str) -> int:
    return owner[key_slot(key.encode())]


async def _store(c: EmbeddedCluster) -> Store:
    store = Store.from_url(c.url, cluster=True)
    await store.ping()
    assert isinstance(store.r, RedisCluster)
    await store.r.flushall(target_nodes=RedisCluster.PRIMARIES)
    store.reset_caches()
    return store


def _warehouses_on_every_master(owner: dict[int, int]) -> list[str]:
    by_port: dict[int, str] = {}
    for i in range(1000):
        wid = f"W{i}"
        by_port.setdefault(_port_of(owner, keys.Shard(wid).events), wid)
        if len(by_port) == 3:
            return sorted(by_port.values())
    raise AssertionError("no warehouse ids on every master")


async def _add_warehouses(store: Store, wids: list[str]) -> None:
    for wid in wids:
        await store.upsert_warehouse(Warehouse(wid, wid, 40.0, -90.0))


async def _xadd(store: Store, wid: str, sid: str, order: str) -> None:
    await store.r.xadd(keys.Shard(wid).events, {"o": order, "t": "placed", "s": 1, "c": "web",
                                                "a": "system"}, id=sid)


def test_events_of_shards_on_different_masters_merge_in_time_order_and_resume(
        cluster: EmbeddedCluster) -> None:
    owner = _slot_owner(cluster)

    async def go() -> None:
        store = await _store(cluster)
        try:
            wids = _warehouses_on_every_master(owner)
            assert len({_port_of(owner, keys.Shard(w).events) for w in wids}) == 3
            await _add_warehouses(store, wids)
            # interleaved across the masters, one warehouse running ahead in bursts
            plan = [(wids[(i * 7 // 3) % 3], f"{1000 + i}-0") for i in range(30)]
            for wid, sid in plan:
                await _xadd(store, wid, sid, f"{wid}.{sid}")
            expected = [f"{sid}@{wid}" for wid, sid in plan]

            # small pages: the horizon cut must keep the merge in order and skip nothing
            cursor = {w: "0-0" for w in wids}
            got: list[str] = []
            for _ in range(100):
                page = await store.read_events(cursor, 0, count=2)
                if not page:
                    break
                got += [e.event_id for e in page]
            assert got == expected

            # resume after any delivered event: the rest, in order
            for k in (0, 4, 17, 29):
                pos = await store.event_cursor(expected[k])
                rest: list[str] = []
                done = False
                while not done:
                    page, done = await store.read_events_upto(pos, dict(cursor), 3)
                    rest += [e.event_id for e in page]
                assert rest == expected[k + 1:], k

            # the tailer's reader waits for a new event on any node
            tail = store.event_tail()
            try:
                reader = asyncio.create_task(tail.read(cursor, 5000))
                await asyncio.sleep(0.05)
                await _xadd(store, wids[1], "5000-0", "late")
                assert [e.event_id for e in await reader] == [f"5000-0@{wids[1]}"]
            finally:
                await tail.aclose()
        finally:
            await store.close()

    asyncio.run(go())


def test_notifier_reads_and_acknowledges_across_nodes(cluster: EmbeddedCluster) -> None:
    owner = _slot_owner(cluster)

    async def go() -> None:
        store = await _store(cluster)
        try:
            wids = _warehouses_on_every_master(owner)
            notes = store.notifications("c2-test")
            await notes.ensure_groups(wids, "notifier")
            await notes.ensure_groups(wids, "notifier")  # existing groups are kept
            for i in range(9):
                await _xadd(store, wids[i % 3], f"{2000 + i}-0", f"o{i}")
            first = await notes.read("notifier", "a", wids, count=2)
            # up to 2 per stream, merged in time order
            assert [d.stream_id for d in first] == ["2000-0", "2001-0", "2002-0", "2003-0",
                                                    "2004-0", "2005-0"]
            assert {d.warehouse_id for d in first} == set(wids)
            assert await notes.pending_count("notifier", wids) == 6
            assert await notes.ack("notifier", first[:4]) == 4
            assert await notes.pending_count("notifier", wids) == 2
            rest = await notes.read("notifier", "a", wids, count=100, block_ms=100)
            assert [d.stream_id for d in rest] == ["2006-0", "2007-0", "2008-0"]
            # a dead consumer's pending entries go to a live one, from every node
            stale = await notes.claim_stale("notifier", "b", wids, min_idle_ms=0)
            assert [d.stream_id for d in stale] == ["2004-0", "2005-0", "2006-0", "2007-0",
                                                    "2008-0"]
            assert await notes.ack("notifier", stale) == 5
            assert await notes.pending_count("notifier", wids) == 0
            # an idle read waits (polling every stream) and sees an event on any node
            reader = asyncio.create_task(notes.read("notifier", "a", wids, block_ms=5000))
            await asyncio.sleep(0.05)
            await _xadd(store, wids[2], "9000-0", "late")
            assert [(d.warehouse_id, d.stream_id) for d in await reader] == [(wids[2], "9000-0")]
        finally:
            await store.close()

    asyncio.run(go())


def _reference(rows: list[RiskRow]) -> list[RiskSignals]:
    """What RISK_SIGNALS counts, in plain Python: one Redis, one window, rows in order."""
    vel: dict[str, int] = {}
    hist: dict[str, list] = {}
    out = []
    for r in rows:
        fields = ["c:" + r.customer if r.customer else "", "e:" + r.email if r.email else "",
                  "a:" + r.address if r.address else ""]
        counts = [vel.get(f, 0) if f else 0 for f in fields]
        for f in fields:
            if f:
                vel[f] = vel.get(f, 0) + 1
        w = fields[0] or fields[1]
        h = hist.get(w, [0, 0, 0, 0, "-"]) if w else [0, 0, 0, 0, "-"]
        out.append(RiskSignals(*counts, *h))
        if w:
            hist[w] = [h[0] + 1, h[1] + r.value_cents, h[2] + r.lat_e6, h[3] + r.lon_e6,
                       h[4] if h[4] != "-" else (r.country or "-")]
    return out


def test_fraud_signals_across_buckets_on_different_nodes_count_as_on_one_redis(
        cluster: EmbeddedCluster) -> None:
    owner = _slot_owner(cluster)
    rows = []
    for i in range(60):
        cust = f"cust{i % 7}" if i % 5 else ""
        rows.append(RiskRow(cust, f"mail{i % 11}@example.com", f"5000{i % 4}|{i % 3} main st",
                            1000 + i, 40_000_000 + i, -90_000_000 - i, ["US", "CA"][i % 2]))
    # a row whose three signals fall in buckets on three different masters, and its repeats
    buckets = {
        f: keys.risk_bucket(f) for r in rows
        for f in ("c:" + r.customer, "e:" + r.email, "a:" + r.address)}
    assert len({_port_of(owner, keys.risk(b) + "hist") for b in buckets.values()}) == 3

    async def go() -> None:
        store = await _store(cluster)
        try:
            empty = np.zeros(0, dtype=np.int64)
            now = 1_700_000_000_000
            first, _ = await store.risk_and_snapshot(rows[:25], now, WINDOW_S, [], empty)
            second, _ = await store.risk_and_snapshot(rows[25:], now, WINDOW_S, [], empty)
            assert first + second == _reference(rows)
        finally:
            await store.close()

    asyncio.run(go())


def test_history_under_the_single_risk_slot_moves_into_the_buckets(
        cluster: EmbeddedCluster) -> None:
    async def go() -> None:
        store = await _store(cluster)
        try:
            old = keys.LEGACY_RISK + "hist"
            await store.r.hset(old, mapping={
                f"c:old{i}": f"{i + 1} {100 * (i + 1)} 5 6 US" for i in range(1200)})
            await store.r.hset(old, "e:x@example.com", "2 300 7 8 CA")
            empty = np.zeros(0, dtype=np.int64)
            assert await store.migrate_risk_history(chunk=100) == 1201
            assert not await store.r.exists(old)
            sig, _ = await store.risk_and_snapshot(
                [RiskRow("old7", "", "", 50, 1, 2, "MX"), RiskRow("", "x@example.com", "", 10, 0,
                                                                  0, "US")],
                1_700_000_000_000, WINDOW_S, [], empty)
            assert sig[0][3:] == (8, 800, 5, 6, "US")
            assert sig[1][3:] == (2, 300, 7, 8, "CA")
            # merging into a bucket that already counts a migrated customer adds both up
            await store.r.hset(old, "c:old7", "1 1 1 1 DE")
            assert await store.migrate_risk_history() == 1
            got = await store.r.hget(keys.risk(keys.risk_bucket("c:old7")) + "hist", "c:old7")
            assert got == b"10 851 7 9 DE"
        finally:
            await store.close()

    asyncio.run(go())
