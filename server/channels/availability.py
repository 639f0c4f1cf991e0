"""A channel's available-to-sell, computed from the stock itself (the on_hand and reserved
hashes, the truth): what GetAvailability answers, WatchAvailability streams and oms-channels
pushes. One function, so the three can never disagree.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oms.engine.channels import Channel, available_to_sell
from oms.server.redis.store import Store


@dataclass(frozen=True)
class Level:
    sku: str
    available_to_sell: int
    network_available: int
    reserved: int
    version: int


async def channel_warehouses(store: Store, channel: Channel) -> list[str]:
    """The enabled warehouses whose stock a channel may sell: its own, or every one."""
    return [w.id for w in await store.warehouses()
            if not w.disabled and channel.allows(w.id)]


async def channel_levels(store: Store, channel: Channel, skus: Sequence[str]
                         ) -> tuple[list[Level], int]:
    """(one Level per sku, in order; the channel's version). A disabled channel publishes 0.
    The version is Σ of the warehouses' stock versions: it grows with every stock change in
    them, so a later read never carries a smaller version."""
    whs = await channel_warehouses(store, channel)
    read = await store.read_stock(whs, skus)
    version = int(read.seq.sum())
    if not skus:
        return [], version
    reserved = read.reserved.sum(axis=0)
    network = (read.on_hand - read.reserved).sum(axis=0) if whs else \
        np.zeros(len(skus), dtype=np.int64)
    if channel.disabled:
        ats = np.zeros(len(skus), dtype=np.int64)
    else:
        safety = np.array([channel.safety(s) for s in skus], dtype=np.int64)
        ats = available_to_sell(network, channel.share_bp, safety)
    if not whs:
        reserved = np.zeros(len(skus), dtype=np.int64)
    return [Level(s, int(a), int(n), int(r), version)
            for s, a, n, r in zip(skus, ats.tolist(), network.tolist(), reserved.tolist())], \
        version


def changed_ids(old: bytes, new: bytes) -> np.ndarray:
    """Indexes (sku ids) whose big-endian int32 entry differs between two packed arrays (a
    missing tail reads 0, as BITFIELD does)."""
    n = max(len(old), len(new)) // 4
    a = np.zeros(n, dtype=">i4")
    b = np.zeros(n, dtype=">i4")
    if len(old) >= 4:
        a[:len(old) // 4] = np.frombuffer(old, dtype=">i4", count=len(old) // 4)
    if len(new) >= 4:
        b[:len(new) // 4] = np.frombuffer(new, dtype=">i4", count=len(new) // 4)
    return np.flatnonzero(a != b)
