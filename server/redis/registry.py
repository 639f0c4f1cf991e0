"""Store area: the network registry (warehouses, products, sku ids) and its caches.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict

import orjson

from oms.engine.errors import NotFoundError
from oms.engine.models import (
    Layout,
    Product,
    Warehouse,
)
from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase


class RegistryOps(StoreBase):
    """Warehouses, products and sku ids."""

    async def upsert_warehouse(self, w: Warehouse) -> Warehouse:
        await self.r.hset(keys.WAREHOUSES, w.id, orjson.dumps(asdict(w)))
        self._wh_cache = None
        return w

    async def list_warehouses(self) -> list[Warehouse]:
        raw = await self.r.hgetall(keys.WAREHOUSES)
        out = []
        for v in raw.values():
            d = orjson.loads(v)
            d["layout"] = Layout(**d["layout"])
            out.append(Warehouse(**d))
        return sorted(out, key=lambda w: w.id)

    async def warehouses(self, max_age_s: float = 1.0) -> list[Warehouse]:
        """Warehouses from a short-lived cache: intake reads them on every batch, and they
        change rarely (a disabled flag takes effect within ``max_age_s``)."""
        c = self._wh_cache
        if c is None or time.monotonic() - c[0] > max_age_s:
            c = (time.monotonic(), await self.list_warehouses())
            self._wh_cache = c
        return c[1]

    async def warehouse(self, warehouse_id: str) -> Warehouse:
        for w in await self.warehouses(0.0):
            if w.id == warehouse_id:
                return w
        raise NotFoundError("warehouse", warehouse_id)

    async def upsert_product(self, p: Product) -> Product:
        (sid,) = await scripts.REGISTER_SKUS(
            self.r, keys=[keys.PRODUCTS, keys.SKU_IDS, keys.SKU_SEQ], args=["upsert", p.sku, orjson.dumps(asdict(p))])
        self._skus[p.sku] = int(sid)
        return p

    async def ensure_sku(self, sku: str) -> int:
        """The sku's numeric id, registering a bare product record if it has none."""
        sid = self._skus.get(sku)
        if sid is None:
            (sid,) = await scripts.REGISTER_SKUS(
                self.r, keys=[keys.PRODUCTS, keys.SKU_IDS, keys.SKU_SEQ],
                args=["ensure", sku, orjson.dumps(asdict(Product(sku=sku)))])
            self._skus[sku] = sid = int(sid)
        return sid

    async def sku_ids(self, skus: Iterable[str]) -> dict[str, int]:
        """Ids of the known skus among ``skus`` (unknown ones are left out). Ids never
        change, so they are cached for the life of the process."""
        skus = list(skus)
        missing = sorted({s for s in skus if s not in self._skus})
        if missing:
            found = await self.r.hmget(keys.SKU_IDS, missing)
            for s, v in zip(missing, found):
                if v is not None:
                    self._skus[s] = int(v)
        return {s: self._skus[s] for s in skus if s in self._skus}

    async def products(self, skus: Iterable[str]) -> dict[str, Product]:
        skus = sorted(set(skus))
        if not skus:
            return {}
        raw = await self.r.hmget(keys.PRODUCTS, skus)
        return {s: Product(**orjson.loads(v)) for s, v in zip(skus, raw) if v is not None}

    async def unknown_skus(self, skus: Iterable[str]) -> set[str]:
        skus = set(skus)
        return skus - set(await self.sku_ids(skus))
