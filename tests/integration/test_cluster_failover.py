"""Failover on a 3-master + 3-replica Redis Cluster of its own (runs in the normal suite too):
batch intake runs while one master is killed with SIGKILL; its replica takes over and intake
resumes by itself (calls during the failover fail UNAVAILABLE and succeed on retry with the
same idempotency keys). With ``--replica-acks 1`` every acknowledged order survives; without,
the test measures (and prints) what was lost, which the README documents."""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis

from oms.clients.client import ClientError, OmsClient
from oms.server.redis import keys
from oms.server.redis.embedded_cluster import EmbeddedCluster
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY, ServerThread, server_config
from tests.helpers import audit_clean, on_hand_reserved, poll

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED}
STOCK = 100_000
SKUS = ("SKU-F1", "SKU-F2")
ZIPS = ("50309", "60601", "80202")
BATCH = 10


@dataclass
class Intake:
    """Batch intake in a thread: each order has its own idempotency key and is retried with it
    until acknowledged; ``acked`` maps order id -> (warehouse, sku, quantity)."""

    client: OmsClient
    run: str
    acked: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    failure: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    deadline_s: float = 90.0

    def start(self) -> threading.Thread:
        t = threading.Thread(target=self._loop, daemon=True)
        t.start()
        return t

    def _loop(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                pending = {}
                for _ in range(BATCH):
                    n += 1
                    pending[f"{self.run}-{n}"] = OmsClient.order_request(
                        [(SKUS[n % 2], 1 + n % 3)], postal_code=ZIPS[n % 3],
                        idempotency_key=f"{self.run}-{n}")
                self._place(pending)
                self.batches += 1
        except BaseException as e:  # surfaced by the test
            self.failure = e

    def _place(self, pending: dict[str, object]) -> None:
        end = time.monotonic() + self.deadline_s
        while pending:
            if time.monotonic() > end:
                raise AssertionError(f"orders not acknowledged in {self.deadline_s}s: {self.errors}")
            ks = list(pending)
            try:
                results = self.client.batch_place_orders([pending[k] for k in ks])
            except ClientError as e:
                if e.code not in RETRYABLE:
                    raise
                self.errors[e.code.name] += 1
                time.sleep(0.05)
                continue
            for k, r in zip(ks, results):
                if isinstance(r, ClientError):
                    if r.code not in RETRYABLE:
                        raise AssertionError(f"{k}: {r}")
                    self.errors[r.code.name] += 1
                    continue
                assert r.status == c.ORDER_STATUS_ALLOCATED, r
                (a,) = r.allocations
                self.acked[r.id] = (a.warehouse_id, r.lines[0].sku, a.quantity)
                del pending[k]
            if pending:
                time.sleep(0.05)


def _node_of(cluster: EmbeddedCluster, key: str) -> int:
    rc = redis.RedisCluster.from_url(cluster.url)
    try:
        node = rc.get_node_from_key(key)
        return next(n.index for n in cluster.nodes if n.port == node.port)
    finally:
        rc.close()


def _warehouses_per_master(cluster: EmbeddedCluster) -> list[tuple[str, int]]:
    """(warehouse id, master node index): one warehouse on each master, in ``ZIPS`` order."""
    found: dict[int, str] = {}
    for i in range(1000):
        found.setdefault(_node_of(cluster, keys.Shard(f"F{i}").onhand), f"F{i}")
        if len(found) == 3:
            return [(w, m) for m, w in found.items()]
    raise AssertionError("no warehouse ids on every master")


def _failover(tmp: Path, replica_acks: int) -> tuple[Intake, int]:
    """Run the scenario; returns the intake and how many acknowledged orders are missing."""
    with EmbeddedCluster(tmp, masters=3, replicas=1, appendonly=False,
                         node_timeout_ms=1000) as cluster:
        st = ServerThread(server_config(cluster.url, redis_cluster=True,
                                        replica_acks=replica_acks, claim_lease_s=1.0)).start()
        try:
            with OmsClient(f"127.0.0.1:{st.port}", timeout=30, api_key=ADMIN_KEY) as client:
                return _intake_through_failover(cluster, st, client, f"acks{replica_acks}")
        finally:
            st.stop()


def _intake_through_failover(cluster: EmbeddedCluster, st: ServerThread, client: OmsClient,
                             run: str) -> tuple[Intake, int]:
    whs = _warehouses_per_master(cluster)
    for (wid, _), z in zip(whs, ZIPS):
        client.upsert_warehouse(wid, wid, postal_code=z)
        for sku in SKUS:
            client.set_stock(wid, sku, STOCK)
    victim = whs[0][1]
    replica = next(n.index for n in cluster.nodes if n.replicates == victim)
    intake = Intake(client, run)
    thread = intake.start()
    try:
        assert poll(lambda: intake.batches >= 15 or intake.failure is not None, 60)
        cluster.kill_node(victim, signal.SIGKILL)
        killed_at = intake.batches
        # the replica takes over (node timeout 1 s, then an election)
        assert poll(lambda: cluster.refresh_roles()[replica].role == "master", 30), "no failover"
        # the old master comes back as the new master's replica (so WAIT 1 can succeed again)
        cluster.restart_node(victim)
        assert poll(lambda: cluster.refresh_roles()[victim].role == "replica", 30)
        resumed = intake.batches
        assert poll(lambda: intake.batches >= resumed + 15 or intake.failure is not None, 60)
    finally:
        intake.stop.set()
        thread.join(120)
    assert not thread.is_alive()
    if intake.failure is not None:
        raise intake.failure
    assert intake.batches > killed_at
    print(f"\n{run}: {len(intake.acked)} orders acknowledged, retried errors {dict(intake.errors)}")

    missing = 0
    placed: Counter[tuple[str, str]] = Counter()
    for oid, (wid, sku, qty) in intake.acked.items():
        try:
            assert client.get_order(oid).id == oid
        except ClientError as e:
            assert e.code == grpc.StatusCode.NOT_FOUND, e
            missing += 1
            continue
        placed[(wid, sku)] += qty
    # nothing oversold; what is reserved is what the surviving orders hold
    for sku in SKUS:
        for wid, (on_hand, reserved) in on_hand_reserved(client, sku).items():
            assert on_hand == STOCK and reserved <= on_hand
            assert placed[(wid, sku)] <= STOCK
            assert reserved == placed[(wid, sku)], (wid, sku, reserved, placed[(wid, sku)])
    audit_clean(st)
    print(f"{run}: {missing} acknowledged orders missing after the failover")
    return intake, missing


@pytest.fixture()
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("failover")


def test_failover_with_replica_acks_loses_no_acknowledged_order(workdir: Path) -> None:
    intake, missing = _failover(workdir, replica_acks=1)
    assert missing == 0
    assert intake.errors, "the failover was not noticed (no call failed and was retried)"


def test_failover_without_replica_acks_measures_the_loss(workdir: Path) -> None:
    """Replication is asynchronous: writes a master acknowledged in its last moments may not
    have reached its replica. Measured and printed, not asserted (the README reports it)."""
    intake, missing = _failover(workdir, replica_acks=0)
    assert len(intake.acked) > 0 and missing <= len(intake.acked)
