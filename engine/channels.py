"""Sales channels: what a channel is, and the available-to-sell it may publish.

available_to_sell = max(0, floor(share × Σ available in the channel's warehouses) − safety),
with the share kept in basis points (0.01 %) so the floor is exact integer arithmetic: a float
product such as 0.29 × 100 is 28.999…, and a published figure must never round up.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class ChannelKind(enum.IntEnum):
    """Mirrors ``oms.v1.ChannelKind`` (same numbers)."""
    UNSPECIFIED = 0
    WEB = 1
    POS = 2
    SHOPIFY = 3
    WOOCOMMERCE = 4
    MARKETPLACE = 5
    GENERIC = 6


@dataclass(frozen=True)
class PushTarget:
    """Where oms-channels pushes: base URL, credentials (write-only in the API) and the
    SKU -> channel item id mapping (Shopify inventory item, WooCommerce product)."""
    base_url: str = ""
    access_token: str = ""
    consumer_key: str = ""
    consumer_secret: str = ""
    location_id: str = ""
    sku_items: dict[str, str] = field(default_factory=dict)

    @property
    def has_credentials(self) -> bool:
        return bool(self.access_token or self.consumer_key or self.consumer_secret)


@dataclass(frozen=True)
class Channel:
    id: str
    name: str = ""
    kind: ChannelKind = ChannelKind.UNSPECIFIED
    warehouse_ids: tuple[str, ...] = ()  # empty: every warehouse
    safety_stock: int = 0
    sku_safety_stock: dict[str, int] = field(default_factory=dict)
    share_bp: int = 10_000  # max share in basis points: 10,000 = 100 %
    webhook_secret: str = ""
    push: PushTarget = field(default_factory=PushTarget)
    disabled: bool = False
    updated_at: int = 0

    def safety(self, sku: str) -> int:
        return self.sku_safety_stock.get(sku, self.safety_stock)

    def allows(self, warehouse_id: str) -> bool:
        return not self.warehouse_ids or warehouse_id in self.warehouse_ids


def share_bp(pct: float) -> int:
    """A percentage 0..100 as basis points (rounded to the nearest 0.01 %)."""
    return int(round(pct * 100))


def available_to_sell(network_available: np.ndarray, share_bp: int, safety: np.ndarray
                      ) -> np.ndarray:
    """max(0, floor(network_available × share_bp / 10,000) − safety), elementwise, int64.

    ``network_available`` is Σ (on_hand − reserved) over the channel's warehouses per SKU; a
    negative entry (not reachable while stock ≥ reserved holds) publishes 0."""
    n = np.maximum(np.asarray(network_available, dtype=np.int64), 0)
    shared = (n * np.int64(share_bp)) // np.int64(10_000)
    return np.maximum(shared - np.asarray(safety, dtype=np.int64), 0)


# An order that came in through a channel's webhook carries the idempotency key
# "<platform>:<channel id>:<the platform's order id>": a repeated delivery is the same order,
# and the shipment pusher finds the platform's order id from the key alone.
PLATFORMS = ("shopify", "woocommerce", "generic")
EXTERNAL_ID_RE_TEXT = r"[A-Za-z0-9_.-]{1,64}"


def external_order_key(platform: str, channel_id: str, external_id: str) -> str:
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform[:16]!r}")
    return f"{platform}:{channel_id}:{external_id}"


def parse_external_order_key(key: str) -> tuple[str, str, str] | None:
    """(platform, channel id, external order id) of a webhook order's idempotency key, else
    None."""
    parts = key.split(":", 2)
    if len(parts) != 3 or parts[0] not in PLATFORMS or not parts[1] or not parts[2]:
        return None
    return parts[0], parts[1], parts[2]
