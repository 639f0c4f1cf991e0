"""The embedded redis-server belongs to one oms-server (issue 11, findings 5 and 9): it dies
with its owner, one data directory has one redis-server, a killed redis-server is restarted on
its AOF, and no acknowledged order is lost when either process is killed mid-intake."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.v1 import common_pb2 as c
from tests.conftest import ON_CLUSTER
from tests.helpers import ADMIN_KEY, poll, server_cmd, start_server

pytestmark = [pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc"),
              pytest.mark.skipif(ON_CLUSTER, reason="the single embedded redis-server's process "
                                 "ownership; not under --redis-cluster")]

# What a caller may see while a dependency is down or coming back: retryable codes only.
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _redis_pids(data: Path) -> list[int]:
    """Live redis-server processes serving ``data`` (found by their command line)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            # Redis rewrites its title: "redis-server unixsocket:<data>/redis.sock"
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ")
            comm = (d / "comm").read_text().strip()
            state = next((ln for ln in (d / "status").read_text().splitlines()
                          if ln.startswith("State:")), "")
        except OSError:
            continue
        if "Z" in state.split()[1:2]:
            continue  # a zombie holds nothing
        if comm == "redis-server" and str(data).encode() in cmdline:
            out.append(int(d.name))
    return out


def _setup(target: str) -> None:
    with OmsClient(target, api_key=ADMIN_KEY) as cl:
        cl.upsert_warehouse("DSM", postal_code="50309")
        cl.set_stock("DSM", "SKU-1", 1_000_000, "A00-S001")


def _req(i: int, tag: str) -> object:
    return OmsClient.order_request([("SKU-1", 1)], postal_code="50010", channel="web",
                                   idempotency_key=f"{tag}-{i}")


@contextmanager
def _intake(target: str, tag: str, batch: int) -> Iterator[tuple[list[str], list[grpc.StatusCode]]]:
    """Place orders in a loop on another thread until the block ends: yields the ids of the
    acknowledged orders and the codes of the failed calls."""
    acked: list[str] = []
    codes: list[grpc.StatusCode] = []
    stop = threading.Event()

    def loop() -> None:
        with OmsClient(target, timeout=10, api_key=ADMIN_KEY) as cl:
            i = 0
            while not stop.is_set():
                try:
                    if batch == 1:
                        acked.append(cl.place_order(_req(i, tag)).id)
                    else:
                        for r in cl.batch_place_orders([_req(i + k, tag) for k in range(batch)]):
                            if isinstance(r, ClientError):
                                codes.append(r.code)
                            else:
                                acked.append(r.id)
                except ClientError as e:
                    codes.append(e.code)
                    time.sleep(0.05)
                i += batch

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield acked, codes
    finally:
        stop.set()
        t.join(30)


def _all_there(target: str, ids: list[str]) -> None:
    with OmsClient(target, timeout=30, api_key=ADMIN_KEY) as cl:
        for oid in ids:
            assert cl.get_order(oid).status == c.ORDER_STATUS_ALLOCATED


def test_kill_9_of_the_server_takes_its_redis_down_and_restart_serves_the_data(tmp_path: Path) -> None:
    proc, target = start_server(tmp_path, "--fsync", "always")
    try:
        _setup(target)
        with OmsClient(target, api_key=ADMIN_KEY) as cl:
            o = cl.place_order(_req(0, "before"))
        assert len(_redis_pids(tmp_path)) == 1
    finally:
        proc.kill()
        proc.wait()
    assert poll(lambda: not _redis_pids(tmp_path)), "redis-server outlived its oms-server"
    proc, target = start_server(tmp_path, "--fsync", "always")
    try:
        _all_there(target, [o.id])
        assert len(_redis_pids(tmp_path)) == 1
    finally:
        _stop(proc)
    assert poll(lambda: not _redis_pids(tmp_path))


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    proc, target = start_server(tmp_path)
    try:
        _setup(target)
        second = subprocess.run(server_cmd(tmp_path), capture_output=True, text=True, timeout=60,
                                stdin=subprocess.DEVNULL)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        assert "in use" in second.stderr, second.stderr
        assert len(_redis_pids(tmp_path)) == 1
        with OmsClient(target, api_key=ADMIN_KEY) as cl:  # the first one never noticed
            assert cl.get_stock("SKU-1").levels[0].on_hand == 1_000_000
    finally:
        _stop(proc)


def test_kill_9_of_the_server_mid_intake_loses_no_acknowledged_order(tmp_path: Path) -> None:
    proc, target = start_server(tmp_path, "--fsync", "always")
    try:
        _setup(target)
        with _intake(target, "k9s", batch=20) as (acked, _codes):
            assert poll(lambda: len(acked) >= 40, 30)
            proc.kill()
            proc.wait()
        assert acked
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert poll(lambda: not _redis_pids(tmp_path))
    proc, target = start_server(tmp_path, "--fsync", "always")
    try:
        _all_there(target, acked)
    finally:
        _stop(proc)


def test_kill_9_of_redis_mid_intake_is_retryable_and_recovers(tmp_path: Path) -> None:
    proc, target = start_server(tmp_path, "--fsync", "always")
    try:
        _setup(target)
        (first,) = _redis_pids(tmp_path)
        with _intake(target, "k9r", batch=1) as (acked, codes):
            assert poll(lambda: len(acked) >= 10, 30)
            os.kill(first, signal.SIGKILL)
            # The supervisor starts a new redis-server on the same AOF.
            assert poll(lambda: _redis_pids(tmp_path) not in ([], [first]))
            n = len(acked)
            assert poll(lambda: len(acked) >= n + 10, 30), codes
        assert set(codes) <= RETRYABLE, codes
        ch = grpc.insecure_channel(target)
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

        stub = health_pb2_grpc.HealthStub(ch)
        assert poll(lambda: stub.Check(health_pb2.HealthCheckRequest()).status ==
                     health_pb2.HealthCheckResponse.SERVING)
        _all_there(target, acked)
        assert len(_redis_pids(tmp_path)) == 1
    finally:
        _stop(proc)
