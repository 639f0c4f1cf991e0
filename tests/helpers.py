"""Helpers shared by the integration tests (they take the conftest fixtures as arguments)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oms.clients.client import OmsClient


def levels(client: OmsClient, sku: str) -> dict[str, tuple[int, int, int]]:
    """warehouse id -> (on_hand, reserved, available) of ``sku``."""
    return {s.warehouse_id: (s.on_hand, s.reserved, s.available)
            for s in client.get_stock(sku).levels}


def audit_clean(server: Any) -> None:
    """The store's own consistency audit finds nothing (``server``: conftest's ServerThread)."""
    assert server.run(server.store.audit()) == []


def add_warehouses(client: OmsClient, postal_codes: Mapping[str, str]) -> OmsClient:
    """One warehouse per id (named after it) at each postal code; the client, for fixtures."""
    for wid, z in postal_codes.items():
        client.upsert_warehouse(wid, wid, postal_code=z)
    return client
