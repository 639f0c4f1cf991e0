"""The embedded Redis Cluster (server/redis/embedded_cluster.py) on real redis-server nodes:
creation, keys on every master, roles, restart on the same directory, failover, clean stop."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from oms.server.redis.embedded_cluster import (
    BUS_OFFSET,
    EmbeddedCluster,
    EmbeddedClusterError,
    _port_free,
    free_port_pairs,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]


def _redis_pids_under(root: Path) -> list[int]:
    """redis-server processes working in a directory under ``root`` (Redis chdirs to --dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if comm.startswith("redis-server") and cwd.is_relative_to(root):
            found.append(int(entry.name))
    return found


def _client(cluster: EmbeddedCluster) -> RedisCluster:
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                        decode_responses=True)


def _keys_on_every_master(rc: RedisCluster, masters: int) -> dict[int, str]:
    """One key per master port, each under its own hash tag."""
    by_port: dict[int, str] = {}
    for i in range(1000):
        key = f"{{tag{i}}}:k"
        by_port.setdefault(rc.get_node_from_key(key).port, key)
        if len(by_port) == masters:
            return by_port
    raise AssertionError(f"keys reached only {sorted(by_port)}")


def _ids(cluster: EmbeddedCluster) -> list[str]:
    out = []
    for host, port in cluster.startup_nodes:
        r = redis.Redis(host=host, port=port, decode_responses=True)
        out.append(r.execute_command("CLUSTER MYID"))
        r.close()
    return out


def test_free_port_pairs_are_free_with_their_bus_ports() -> None:
    ports = free_port_pairs(6)
    assert len(set(ports) | {p + BUS_OFFSET for p in ports}) == 12
    assert all(_port_free(p) and _port_free(p + BUS_OFFSET) for p in ports)


def test_three_masters_serve_every_slot_and_come_back_after_a_restart(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path, masters=3)
    with cluster:
        master_ports = {n.port for n in cluster.nodes}
        assert [n.role for n in cluster.nodes] == ["master"] * 3
        assert cluster.url == f"redis://127.0.0.1:{cluster.nodes[0].port}"
        assert all(n.pid in _redis_pids_under(tmp_path) for n in cluster.nodes)
        rc = _client(cluster)
        try:
            keys = _keys_on_every_master(rc, 3)
            assert set(keys) == master_ports
            for port, key in keys.items():
                rc.set(key, f"v{port}")
            assert {port: rc.get(key) for port, key in keys.items()} == {
                port: f"v{port}" for port in keys}
            nodes = rc.cluster_nodes()
            assert sorted(v["flags"].replace("myself,", "") for v in nodes.values()) == ["master"] * 3
        finally:
            rc.close()
        ids = _ids(cluster)
        ports = [n.port for n in cluster.nodes]

    assert _redis_pids_under(tmp_path) == []

    # Same directory: the same nodes on the same ports (nodes.conf, no new create), data from AOF.
    again = EmbeddedCluster(tmp_path, masters=3)
    with again:
        assert [n.port for n in again.nodes] == ports
        assert _ids(again) == ids
        rc = _client(again)
        try:
            assert {port: rc.get(key) for port, key in keys.items()} == {
                port: f"v{port}" for port in keys}
        finally:
            rc.close()
    assert _redis_pids_under(tmp_path) == []


def test_a_directory_has_one_owner_and_one_shape(tmp_path: Path) -> None:
    with EmbeddedCluster(tmp_path, masters=3):
        with pytest.raises(EmbeddedClusterError, match="in use"):
            EmbeddedCluster(tmp_path, masters=3).start()
    with pytest.raises(EmbeddedClusterError, match="3 masters and 0 replicas"):
        EmbeddedCluster(tmp_path, masters=3, replicas=1).start()
    assert _redis_pids_under(tmp_path) == []


def _wait_for(pred, what: str, limit_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """A bounded wait for the cluster to converge (failure detection and election)."""
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_replicas_take_over_a_killed_master_with_its_acknowledged_writes(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(tmp_path, masters=3, replicas=1)
    with cluster:
        roles = [n.role for n in cluster.nodes]
        assert roles.count("master") == 3 and roles.count("replica") == 3
        replicated = {n.replicates for n in cluster.nodes if n.role == "replica"}
        assert replicated == {n.index for n in cluster.nodes if n.role == "master"}
        rc = _client(cluster)
        try:
            flags = sorted(v["flags"].replace("myself,", "") for v in rc.cluster_nodes().values())
            assert flags == ["master"] * 3 + ["slave"] * 3
            keys = _keys_on_every_master(rc, 3)
            victim = cluster.nodes[0]
            key = keys[victim.port]
            rc.set(key, "kept")
            # WAIT: the replica has the write before the master dies.
            assert rc.get_redis_connection(rc.get_node_from_key(key)).execute_command(
                "WAIT", 1, 10000) == 1
        finally:
            rc.close()
        heir = next(n for n in cluster.nodes if n.replicates == victim.index)

        cluster.kill_node(victim.index, signal.SIGKILL)
        _wait_for(lambda: cluster.refresh_roles()[heir.index].role == "master", "the failover")
        r = redis.Redis(host=heir.host, port=heir.port, decode_responses=True)
        try:
            assert r.get(key) == "kept"
        finally:
            r.close()

        # The old master rejoins (its nodes.conf) as the new master's replica.
        cluster.restart_node(victim.index)
        _wait_for(lambda: cluster.refresh_roles()[victim.index].replicates == heir.index,
                  "the old master to rejoin as a replica")
    assert _redis_pids_under(tmp_path) == []


def test_fewer_than_three_masters_are_created_by_hand(tmp_path: Path) -> None:
    """redis-cli refuses clusters under 3 masters; the scaling benchmark needs 1 and 2."""
    with EmbeddedCluster(tmp_path, masters=2, replicas=1) as cluster:
        assert [(n.role, n.replicates) for n in cluster.nodes] == [
            ("master", None), ("master", None), ("replica", 0), ("replica", 1)]
        rc = _client(cluster)
        try:
            keys = _keys_on_every_master(rc, 2)
            for key in keys.values():
                rc.set(key, "x")
            assert [rc.get(k) for k in keys.values()] == ["x", "x"]
        finally:
            rc.close()
    assert _redis_pids_under(tmp_path) == []
