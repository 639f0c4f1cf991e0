"""The scope table against the API itself: every method of every ``oms.v1`` service needs exactly
one known scope, and the table names no method the API lacks (deny by default means a method
missing from the table is refused to everyone, so a new RPC must fail here first)."""
from __future__ import annotations

import importlib
import pkgutil

import oms.v1
from oms.server.auth import scopes


def _api_methods() -> set[str]:
    """"/oms.v1.Service/Method" for every service of every generated oms.v1 module."""
    out: set[str] = set()
    for mod in pkgutil.iter_modules(oms.v1.__path__):
        if not mod.name.endswith("_pb2"):
            continue
        desc = importlib.import_module(f"oms.v1.{mod.name}").DESCRIPTOR
        for svc in desc.services_by_name.values():
            out |= {f"/{svc.full_name}/{m.name}" for m in svc.methods}
    return out


def test_the_walk_finds_every_service() -> None:
    services = {scopes.service_of(m) for m in _api_methods()}
    assert {"oms.v1.OrderService", "oms.v1.InventoryService", "oms.v1.FulfillmentService",
            "oms.v1.ReturnsService", "oms.v1.ReportingService",
            "oms.v1.AdminService"} <= services


def test_every_method_has_a_scope() -> None:
    missing = sorted(_api_methods() - scopes.METHOD_SCOPES.keys())
    assert not missing, f"methods with no scope (refused to everyone): {missing}"


def test_the_table_names_only_real_methods() -> None:
    stale = sorted(scopes.METHOD_SCOPES.keys() - _api_methods())
    assert not stale, f"the scope table names methods the API lacks: {stale}"


def test_every_scope_is_known() -> None:
    unknown = {m: s for m, s in scopes.METHOD_SCOPES.items() if s not in (*scopes.SCOPES, scopes.ANY_KEY)}
    assert not unknown


def test_streaming_methods_are_covered() -> None:
    assert scopes.scope_for("/oms.v1.OrderService/PlaceOrders") == scopes.ORDERS_WRITE
    assert scopes.scope_for("/oms.v1.OrderService/WatchOrderEvents") == scopes.ORDERS_READ


def test_open_services_are_only_health_and_reflection() -> None:
    assert scopes.is_open("/grpc.health.v1.Health/Check")
    assert scopes.is_open("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    assert not any(scopes.is_open(m) for m in _api_methods())
    assert all(s.startswith(("grpc.health.", "grpc.reflection.")) for s in scopes.OPEN_SERVICES)


def test_unknown_methods_have_no_scope() -> None:
    assert scopes.scope_for("/oms.v1.OrderService/DropTables") is None
    assert scopes.scope_for("/oms.v1.OrderService/") is None
    assert scopes.scope_for("") is None
