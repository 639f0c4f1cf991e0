"""oms-server as a process: embedded Redis with AOF, health, metrics, clean SIGTERM stop."""
from __future__ import annotations

import signal
import socket
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oms.clients.client import OmsClient
from oms.v1 import common_pb2 as c
from tests.helpers import ADMIN_KEY, start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_redis_metrics_and_restart(tmp_path: Path) -> None:
    metrics = _free_port()
    proc, target = start_server(tmp_path, "--metrics-port", str(metrics))
    try:
        ch = grpc.insecure_channel(target)
        assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status == \
            health_pb2.HealthCheckResponse.SERVING
        with OmsClient(target, api_key=ADMIN_KEY) as cl:
            cl.upsert_warehouse("DSM", postal_code="50309")
            cl.set_stock("DSM", "SKU-1", 5, "A00-S001")
            o = cl.place_order(cl.order_request([("SKU-1", 2)], postal_code="50010", channel="pos"))
            assert o.status == c.ORDER_STATUS_ALLOCATED
        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
        assert 'oms_rpc_latency_seconds_count{code="OK",method="PlaceOrder"} 1.0' in body
        assert 'oms_orders_placed_total{channel="pos",status="ALLOCATED"} 1.0' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # one Redis: in the data dir; --embedded-cluster: in each node's sub-directory
    assert (tmp_path / "appendonly.aof").exists() or any(tmp_path.glob("appendonlydir/*")) \
        or any(tmp_path.glob("node-*/appendonly*"))
    # Restart on the same data directory: the order survived (AOF).
    proc, target = start_server(tmp_path, "--metrics-port", str(_free_port()))
    try:
        with OmsClient(target, api_key=ADMIN_KEY) as cl:
            assert cl.get_order(o.id).status == c.ORDER_STATUS_ALLOCATED
            assert cl.get_stock("SKU-1").levels[0].reserved == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
