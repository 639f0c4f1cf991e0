"""Helpers shared by the integration tests (they take the conftest fixtures as arguments)."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

from oms.clients.client import OmsClient
from oms.engine.payments import DeterministicGateway
from oms.server.redis.store import StoreLedger
from tests import conftest
from tests.conftest import ADMIN_KEY

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

LEVEL = ("on_hand", "reserved", "available")
HELD = ("on_hand", "reserved")
LOCATED = (*LEVEL, "location")


def levels(client: OmsClient, sku: str, fields: Sequence[str] = LEVEL) -> dict[str, tuple[Any, ...]]:
    """warehouse id -> the ``fields`` of ``sku``'s stock level there (default: on_hand,
    reserved, available; ``HELD``: on_hand, reserved; ``LOCATED``: and the location)."""
    return {s.warehouse_id: tuple(getattr(s, f) for f in fields)
            for s in client.get_stock(sku).levels}


def on_hand_reserved(client: OmsClient, sku: str) -> dict[str, tuple[int, int]]:
    """warehouse id -> (on_hand, reserved) of ``sku``."""
    return levels(client, sku, HELD)  # type: ignore[return-value]


def audit_clean(server: Any) -> None:
    """The store's own consistency audit finds nothing (``server``: conftest's ServerThread)."""
    assert server.run(server.store.audit()) == []


def add_warehouses(client: OmsClient, postal_codes: Mapping[str, str],
                   stock: Mapping[str, int] | None = None) -> OmsClient:
    """One warehouse per id (named after it) at each postal code, each with ``stock`` (sku ->
    on hand) if given; the client, for fixtures."""
    stock = stock or {}
    for wid, z in postal_codes.items():
        client.upsert_warehouse(wid, wid, postal_code=z)
        for sku, n in stock.items():
            client.set_stock(wid, sku, n)
    return client


def gateway(server: Any, **kw: Any) -> DeterministicGateway:
    """The payment gateway the server uses (same Redis ledger), to inspect or to fail on cue."""
    return DeterministicGateway(StoreLedger(server.store, server.loop), **kw)


def poll(cond: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    """Wait for a condition that a separate process reaches; ``timeout_s`` only bounds a hang."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def server_cmd(data: Path, *extra: str, admin_key: str | None = ADMIN_KEY,
               cluster: bool | None = None) -> list[str]:
    """The command line of an oms-server child process on data dir ``data`` (any port). Its
    pepper and key files are in ``data``, never the repo's var/; callers send ``admin_key``
    (conftest's ADMIN_KEY by default). ``admin_key=None``: no static key, so the first start
    writes a new admin key to ``data/admin.key`` (``admin_key_in(data)``). ``cluster``: on a
    3-master ``--embedded-cluster`` instead of one embedded Redis (default: the session's mode,
    pytest ``--redis-cluster``)."""
    auth = ["--admin-key-file", str(data / "admin.key"),
            "--auth-pepper-file", str(data / "auth.pepper")]
    if admin_key is not None:
        auth += ["--admin-key", admin_key]
    if conftest.ON_CLUSTER if cluster is None else cluster:
        auth += ["--embedded-cluster", "3"]
    return [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir", str(data),
            "--label-dir", str(data / "labels"), "--log-level", "WARNING", *auth, *extra]


def admin_key_in(data: Path) -> str:
    """The admin key a server started with ``admin_key=None`` wrote into its data dir."""
    return (data / "admin.key").read_text(encoding="ascii").strip()


def start_server(data: Path, *extra: str, admin_key: str | None = ADMIN_KEY,
                 cluster: bool | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start an oms-server child process (``server_cmd``); it and the address it says it
    listens on."""
    p = subprocess.Popen(server_cmd(data, *extra, admin_key=admin_key, cluster=cluster),
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for line in p.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
    raise AssertionError(f"server exited with {p.wait()}")
