"""The service on a 3-master Redis Cluster of its own (runs in the normal suite too): orders into
warehouses whose shards live on different masters, split orders across masters, compensation
under contention, the audit, and MOVED after a slot is migrated by hand."""
from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from oms.clients.client import ClientError, OmsClient
from oms.server.redis import keys
from oms.server.redis.cluster_routing import slot_of
from oms.server.redis.embedded_cluster import EmbeddedCluster
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY, ServerThread, server_config
from tests.helpers import audit_clean, on_hand_reserved


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(tmp_path_factory.mktemp("own-cluster"), masters=3, appendonly=False) as cl:
        yield cl


@pytest.fixture(scope="module")
def cserver(cluster: EmbeddedCluster) -> Iterator[ServerThread]:
    st = ServerThread(server_config(cluster.url, redis_cluster=True)).start()
    yield st
    st.stop()


@pytest.fixture()
def cclient(cserver: ServerThread, cluster: EmbeddedCluster) -> Iterator[OmsClient]:
    rc = redis.RedisCluster.from_url(cluster.url)
    rc.flushall(target_nodes=rc.PRIMARIES)
    rc.close()
    cserver.store.reset_caches()
    with OmsClient(f"127.0.0.1:{cserver.port}", timeout=60, api_key=ADMIN_KEY) as cl:
        yield cl


def _master_of(cluster: EmbeddedCluster, key: str) -> tuple[str, int]:
    rc = redis.RedisCluster.from_url(cluster.url)
    try:
        node = rc.get_node_from_key(key)
        return node.host, node.port
    finally:
        rc.close()


def _warehouses_on_different_masters(cluster: EmbeddedCluster, n: int, prefix: str) -> list[str]:
    """``n`` warehouse ids whose shards live on ``n`` different masters."""
    found: dict[tuple[str, int], str] = {}
    for i in range(1000):
        wid = f"{prefix}{i}"
        found.setdefault(_master_of(cluster, keys.Shard(wid).onhand), wid)
        if len(found) == n:
            return list(found.values())
    raise AssertionError("no warehouse ids on enough masters")


def _req(lines: list[tuple[str, int]], postal_code: str = "50010"):
    return OmsClient.order_request(lines, postal_code=postal_code)


def test_orders_into_warehouses_on_every_master(cluster, cserver, cclient) -> None:
    whs = _warehouses_on_different_masters(cluster, 3, "W")
    for wid, z in zip(whs, ("50309", "60601", "80202")):
        cclient.upsert_warehouse(wid, wid, postal_code=z)
        cclient.set_stock(wid, "SKU-A", 5)
    # one order near each warehouse: each lands on its own master
    placed = cclient.batch_place_orders([_req([("SKU-A", 2)], z) for z in ("50309", "60601", "80202")])
    assert all(not isinstance(o, ClientError) and o.status == c.ORDER_STATUS_ALLOCATED for o in placed)
    assert {o.allocations[0].warehouse_id for o in placed} == set(whs)
    assert on_hand_reserved(cclient, "SKU-A") == {w: (5, 2) for w in whs}
    for o in placed:
        assert cclient.get_order(o.id).id == o.id
    audit_clean(cserver)


def test_split_order_spans_two_masters(cluster, cserver, cclient) -> None:
    a, b = _warehouses_on_different_masters(cluster, 2, "S")
    cclient.upsert_warehouse(a, a, postal_code="50309")
    cclient.upsert_warehouse(b, b, postal_code="60601")
    cclient.set_stock(a, "SKU-S", 4)
    cclient.set_stock(b, "SKU-S", 7)
    o = cclient.place_order(_req([("SKU-S", 10)]))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert {x.warehouse_id: x.quantity for x in o.allocations} == {a: 4, b: 6}
    assert on_hand_reserved(cclient, "SKU-S") == {a: (4, 4), b: (7, 6)}
    cclient.cancel_order(o.id)
    assert on_hand_reserved(cclient, "SKU-S") == {a: (4, 0), b: (7, 0)}
    audit_clean(cserver)


def test_split_orders_under_contention_compensate_across_masters(cluster, cserver, cclient) -> None:
    """Split orders from many threads on scarce stock: reservations that lose the race on the
    second master are compensated on the first; nothing oversold, the books balance."""
    a, b = _warehouses_on_different_masters(cluster, 2, "C")
    cclient.upsert_warehouse(a, a, postal_code="50309")
    cclient.upsert_warehouse(b, b, postal_code="60601")
    cclient.set_stock(a, "SKU-C", 30)
    cclient.set_stock(b, "SKU-C", 30)
    rng = random.Random(7)
    sizes = [rng.randint(20, 40) for _ in range(24)]

    def place(n: int):
        try:
            return cclient.place_order(_req([("SKU-C", n)]))
        except ClientError as e:
            return e

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(place, sizes))
    ok = [r for r in results if not isinstance(r, ClientError)
          and r.status == c.ORDER_STATUS_ALLOCATED]
    assert ok, "at least the first order fits"
    held = on_hand_reserved(cclient, "SKU-C")
    assert all(r <= h for h, r in held.values())
    assert sum(r for _, r in held.values()) == sum(
        x.quantity for o in ok for x in o.allocations)
    audit_clean(cserver)


async def _store_compensates(store, a: str, b: str) -> dict[str, list[int]]:
    from oms.server.redis.records import PlaceEntry  # noqa: PLC0415
    from oms.server.redis.store import now_ms  # noqa: PLC0415

    sid = (await store.sku_ids(["SKU-D"]))["SKU-D"]
    oid = "o-comp-1"
    got = await store.place_groups({a: [PlaceEntry("R", oid, [("SKU-D", sid, 3)])],
                                    b: [PlaceEntry("R", oid, [("SKU-D", sid, 3)])]}, now_ms())
    await store.release_many([(a, oid)])  # what intake does for an order short anywhere
    return got


def test_second_masters_short_reservation_is_released_on_the_first(cluster, cserver, cclient) -> None:
    """One order's reservations on two masters in one round trip: the second is short (no
    stock), so intake's compensation gives back the first; the books end as they began."""
    a, b = _warehouses_on_different_masters(cluster, 2, "D")
    cclient.upsert_warehouse(a, a, postal_code="50309")
    cclient.upsert_warehouse(b, b, postal_code="60601")
    cclient.set_stock(a, "SKU-D", 5)
    cclient.set_stock(b, "SKU-D", 0)
    got = cserver.run(_store_compensates(cserver.store, a, b))
    assert got == {a: [1], b: [0]}
    assert on_hand_reserved(cclient, "SKU-D") == {a: (5, 0), b: (0, 0)}
    audit_clean(cserver)


def _migrate_slot(cluster: EmbeddedCluster, slot: int) -> None:
    """Move ``slot`` with its keys to another master by hand (CLUSTER SETSLOT / MIGRATE)."""
    rc = redis.RedisCluster.from_url(cluster.url)
    try:
        masters = {(n.host, n.port): redis.Redis(n.host, n.port) for n in rc.get_primaries()}
        src_addr = _owner(next(iter(masters.values())), slot)
        dst_addr = next(a for a in masters if a != src_addr)
        src, dst = masters[src_addr], masters[dst_addr]
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        while ks := src.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", dst_addr[0], dst_addr[1], "", 0, 5000, "KEYS", *ks)
        for r in masters.values():
            r.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
    finally:
        rc.close()


def _owner(r: redis.Redis, slot: int) -> tuple[str, int]:
    for lo, hi, master, *_ in r.execute_command("CLUSTER SLOTS"):
        if int(lo) <= slot <= int(hi):
            host = master[0].decode() if isinstance(master[0], bytes) else master[0]
            return host, int(master[1])
    raise AssertionError(f"slot {slot} not served")


def test_order_into_a_migrated_slot_follows_moved(cluster, cserver, cclient) -> None:
    (wid,) = _warehouses_on_different_masters(cluster, 1, "M")
    cclient.upsert_warehouse(wid, wid, postal_code="50309")
    cclient.set_stock(wid, "SKU-M", 10)
    first = cclient.place_order(_req([("SKU-M", 1)]))
    slot = slot_of(keys.Shard(wid).onhand)
    before = _owner(redis.Redis.from_url(cluster.url), slot)
    _migrate_slot(cluster, slot)
    assert _owner(redis.Redis.from_url(cluster.url), slot) != before
    # the server's slot maps still point at the old master: MOVED, refresh, re-send
    second = cclient.place_order(_req([("SKU-M", 2)]))
    assert second.status == c.ORDER_STATUS_ALLOCATED
    assert on_hand_reserved(cclient, "SKU-M") == {wid: (10, 3)}
    assert cclient.get_order(first.id).id == first.id
    audit_clean(cserver)

