"""Live resharding on a 3-master Redis Cluster of its own (runs in the normal suite too): while
batch intake runs into one busy warehouse, that warehouse's slot moves to another master by the
standard procedure (CLUSTER SETSLOT IMPORTING/MIGRATING, MIGRATE in chunks, SETSLOT NODE).
Scripts that meet the slot mid-migration get ASK (keys moved) or TRYAGAIN (keys partly moved);
the store follows them, and what it cannot settle in time comes back UNAVAILABLE, which the
client retries with the same idempotency keys. No other error, nothing lost, nothing oversold."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

from oms.clients.client import OmsClient
from oms.server.redis import keys
from oms.server.redis.cluster_routing import slot_of
from oms.server.redis.embedded_cluster import EmbeddedCluster
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY, ServerThread, server_config
from tests.helpers import audit_clean, on_hand_reserved, poll
from tests.integration.test_cluster_failover import RETRYABLE, Intake

STOCK = 100_000
WH = "BUSY"


@pytest.fixture()
def cluster(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    with EmbeddedCluster(tmp_path / "cluster", masters=3, appendonly=False) as cl:
        yield cl


def _owner(r: redis.Redis, slot: int) -> tuple[str, int]:
    for lo, hi, master, *_ in r.execute_command("CLUSTER SLOTS"):
        if int(lo) <= slot <= int(hi):
            host = master[0].decode() if isinstance(master[0], bytes) else master[0]
            return host, int(master[1])
    raise AssertionError(f"slot {slot} not served")


class SlotMove:
    """The standard procedure, step by step, so the test can hold the slot mid-migration."""

    def __init__(self, cluster: EmbeddedCluster, slot: int) -> None:
        self.slot = slot
        self.masters = {n.address: redis.Redis(n.host, n.port) for n in cluster.refresh_roles()
                        if n.role == "master"}
        self.src_addr = _owner(next(iter(self.masters.values())), slot)
        self.dst_addr = next(a for a in self.masters if a != self.src_addr)
        self.src, self.dst = self.masters[self.src_addr], self.masters[self.dst_addr]
        self.src_id = self.src.execute_command("CLUSTER MYID")
        self.dst_id = self.dst.execute_command("CLUSTER MYID")

    def begin(self) -> None:
        self.dst.execute_command("CLUSTER SETSLOT", self.slot, "IMPORTING", self.src_id)
        self.src.execute_command("CLUSTER SETSLOT", self.slot, "MIGRATING", self.dst_id)

    def migrate(self, limit: int, chunk: int = 10) -> int:
        """MIGRATE up to ``limit`` keys of the slot, ``chunk`` at a time; returns how many."""
        moved = 0
        while moved < limit:
            ks = self.src.execute_command("CLUSTER GETKEYSINSLOT", self.slot, min(chunk, limit - moved))
            if not ks:
                break
            self.src.execute_command("MIGRATE", self.dst_addr[0], self.dst_addr[1], "", 0, 5000,
                                     "KEYS", *ks)
            moved += len(ks)
        return moved

    def finish(self) -> None:
        # the target first, then the source, then the others (as redis-cli --cluster does)
        order = [self.dst, self.src, *(r for a, r in self.masters.items()
                                       if a not in (self.src_addr, self.dst_addr))]
        for r in order:
            r.execute_command("CLUSTER SETSLOT", self.slot, "NODE", self.dst_id)

    def close(self) -> None:
        for r in self.masters.values():
            r.close()


def test_live_resharding_of_a_busy_warehouse(cluster: EmbeddedCluster) -> None:
    st = ServerThread(server_config(cluster.url, redis_cluster=True, claim_lease_s=1.0)).start()
    try:
        with OmsClient(f"127.0.0.1:{st.port}", timeout=30, api_key=ADMIN_KEY) as client:
            _reshard_under_intake(cluster, st, client)
    finally:
        st.stop()


def _reshard_under_intake(cluster: EmbeddedCluster, st: ServerThread, client: OmsClient) -> None:
    client.upsert_warehouse(WH, WH, postal_code="50309")
    skus = ("SKU-F1", "SKU-F2")
    for sku in skus:
        client.set_stock(WH, sku, STOCK)
    slot = slot_of(keys.Shard(WH).onhand)
    move = SlotMove(cluster, slot)
    redirects: Counter[str] = st.store.raw.redirects
    intake = Intake(client, "reshard")
    thread = intake.start()
    try:
        assert poll(lambda: intake.batches >= 10 or intake.failure is not None, 60)
        move.begin()
        # half the keys moved: scripts get ASK at the source and TRYAGAIN at the target
        move.migrate(move.src.execute_command("CLUSTER COUNTKEYSINSLOT", slot) // 2)
        seen = sum(redirects.values())
        assert poll(lambda: sum(redirects.values()) > seen or intake.failure is not None, 30)
        while move.migrate(1000):
            pass
        # every key on the target, the slot not yet handed over: ASK, and there TRYAGAIN. A
        # placement declares the keys it creates (every script declares every key it touches),
        # and a node runs a script whose declared keys are not all there only once the slot is
        # handed over: redirected before it runs, never stopped half-way
        asks, tries = redirects["ASK"], redirects["TRYAGAIN"]
        assert poll(lambda: (redirects["ASK"] > asks and redirects["TRYAGAIN"] > tries)
                    or intake.failure is not None, 30)
        move.finish()
        assert _owner(move.src, slot) == move.dst_addr
        resumed = intake.batches
        assert poll(lambda: intake.batches >= resumed + 10 or intake.failure is not None, 60)
    finally:
        intake.stop.set()
        thread.join(120)
        move.close()
    assert not thread.is_alive()
    if intake.failure is not None:
        raise intake.failure
    print(f"\nresharding: {len(intake.acked)} orders acknowledged; store redirects "
          f"{dict(redirects)}; errors the client retried {dict(intake.errors)}")
    assert redirects["ASK"] > 0 and redirects["MOVED"] > 0
    assert set(intake.errors) <= {code.name for code in RETRYABLE}

    placed: Counter[str] = Counter()
    for oid, (wid, sku, qty) in intake.acked.items():
        o = client.get_order(oid)
        assert o.id == oid and o.status == c.ORDER_STATUS_ALLOCATED
        placed[sku] += qty
    for sku in skus:
        ((wid, (on_hand, reserved)),) = on_hand_reserved(client, sku).items()
        assert wid == WH and on_hand == STOCK
        assert reserved == placed[sku] <= STOCK
    audit_clean(st)
    assert grpc.StatusCode.INTERNAL.name not in intake.errors
