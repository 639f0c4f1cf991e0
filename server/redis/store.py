"""``Store``: the store's one entry point, the shared plumbing (base.py) plus one mixin per area
(registry, stock, placement, claims, orders, waves, reporting, audit, ledger, api keys,
channels). The record codec
lives in records.py and the payment ledger in ledger.py; their names are re-exported here so
callers import everything from this module.

Every state change that must not be lost is one Lua script call (see scripts/). Methods
take and return engine dataclasses; script return codes become typed exceptions.
"""
from __future__ import annotations

from oms.server.redis.api_keys import ApiKeyOps
from oms.server.redis.audit import AuditOps
from oms.server.redis.base import StaleError, StoreBase, now_ms
from oms.server.redis.channel_shipments import ChannelShipmentOps
from oms.server.redis.channel_sync import ChannelSyncOps
from oms.server.redis.channels import ChannelOps
from oms.server.redis.claims import PENDING, TAKEOVER, ClaimOps
from oms.server.redis.ledger import LedgerOps, StoreLedger
from oms.server.redis.orders import OrderOps
from oms.server.redis.placement import PlacementOps
from oms.server.redis.records import (STAGED, PlaceEntry, RiskRow, RiskSignals, decode_order, decode_return,
                                      encode_alloc, encode_doc, encode_return, home_warehouse,
                                      idempotency_digest, staged_id)
from oms.server.redis.registry import RegistryOps
from oms.server.redis.reporting import ReportingOps
from oms.server.redis.stock import SNAPSHOT_FEW_SKUS, StockOps
from oms.server.redis.waves import WaveOps

__all__ = [
    "PENDING", "SNAPSHOT_FEW_SKUS", "STAGED", "TAKEOVER", "PlaceEntry", "RiskRow",
    "RiskSignals", "StaleError", "Store", "StoreBase", "StoreLedger", "decode_order", "decode_return",
    "encode_alloc", "encode_doc", "encode_return", "home_warehouse", "idempotency_digest",
    "now_ms", "staged_id",
]


class Store(RegistryOps, StockOps, PlacementOps, ClaimOps, OrderOps, WaveOps, ReportingOps,
            AuditOps, LedgerOps, ApiKeyOps, ChannelOps, ChannelShipmentOps,
            ChannelSyncOps):
    """The Redis store: every area's operations on one set of clients and caches (an area
    calls another's methods through ``self``)."""
