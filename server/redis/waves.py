"""Store area: wave release (RELEASE_WAVE) and the orders and parts a wave may take.
"""
from __future__ import annotations

from collections.abc import Sequence

from oms.engine.errors import NotFoundError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order
from oms.server.auth.principal import current_actor
from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase
from oms.server.redis.records import STAGED, _s


class WaveOps(StoreBase):
    """What a wave may release, releasing it, reading it back."""

    async def releasable_orders(self, warehouse_id: str, limit: int, now: int) -> list[Order]:
        """ALLOCATED orders homed at the warehouse whose hold has ended, oldest first."""
        sh = keys.Shard(warehouse_id)
        out: list[Order] = []
        start = 0
        page = max(limit, 200)
        while len(out) < limit:
            ids = [_s(m) for m in await self.r.zrange(sh.idx_status(int(OrderStatus.ALLOCATED)),
                                                      start, start + page - 1)]
            if not ids:
                break
            start += len(ids)
            for o in await self.get_orders(ids):
                if o.status == OrderStatus.ALLOCATED and o.hold_until <= now:
                    out.append(o)
                    if len(out) == limit:
                        break
        return out

    async def release_wave(self, warehouse_id: str, wave_id: str, wave_json: bytes,
                           saved_cm: int, order_ids: Sequence[str], part_ids: Sequence[str],
                           now: int) -> list[str]:
        """Run RELEASE_WAVE; returns the ids that were not releasable ([] = released)."""
        sh = keys.Shard(warehouse_id)
        res = await scripts.RELEASE_WAVE(
            self.r, keys=[sh.wave(wave_id), sh.waves, sh.events, sh.stats, sh.waved,
                          sh.idx_status(int(OrderStatus.ALLOCATED)),
                          sh.idx_status(int(OrderStatus.RELEASED)),
                          *(sh.order(oid) for oid in order_ids)],
            args=[now, self.events_maxlen, wave_id, wave_json, saved_cm,
                  current_actor(), len(order_ids), *order_ids, *part_ids])
        return [] if int(res[0]) == 1 else [_s(x) for x in res[1:]]

    async def waved_parts(self, orders: Sequence[Order]) -> set[str]:
        """Ids of the given orders with a part already waved outside their home warehouse."""
        pairs = [(w, o.id) for o in orders for w in o.warehouses if w != keys.home_of(o.id)]
        if not pairs:
            return set()
        async with self.r.pipeline(transaction=False) as p:
            for w, oid in pairs:
                p.sismember(keys.Shard(w).waved, oid)
            raw = await p.execute()
        return {oid for (_, oid), hit in zip(pairs, raw) if hit}

    async def releasable_parts(self, warehouse_id: str, limit: int, now: int) -> list[Order]:
        """Split orders homed in another warehouse whose part here is not waved yet and that
        are past their hold (ALLOCATED or already RELEASED by their home), oldest first."""
        sh = keys.Shard(warehouse_id)
        ids = [_s(k) for k in await self.r.hkeys(sh.resv)]
        ids = [i for i in ids if not i.endswith(STAGED) and keys.home_of(i) != warehouse_id]
        if not ids:
            return []
        ids.sort(key=lambda i: i.rpartition(".")[2])
        waved = await self.r.smismember(sh.waved, ids)
        ids = [i for i, w in zip(ids, waved) if not w]
        out: list[Order] = []
        for k in range(0, len(ids), 500):
            for o in await self.get_orders(ids[k:k + 500]):
                if o.status in (OrderStatus.ALLOCATED, OrderStatus.RELEASED) and o.hold_until <= now:
                    out.append(o)
            if len(out) >= limit:
                break
        return out[:limit]

    async def list_waves(self, warehouse_id: str, limit: int) -> list[bytes]:
        """A warehouse's newest ``limit`` waves (their JSON), newest first."""
        sh = keys.Shard(warehouse_id)
        ids = await self.r.zrevrange(sh.waves, 0, limit - 1)
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for i in ids:
                p.get(sh.wave(i.decode()))
            raw = await p.execute()
        return [r for r in raw if r is not None]

    async def get_wave(self, wave_id: str) -> bytes:
        try:
            home = keys.home_of(wave_id)
        except ValueError:
            raise NotFoundError("wave", wave_id) from None
        raw = await self.r.get(keys.Shard(home).wave(wave_id))
        if raw is None:
            raise NotFoundError("wave", wave_id)
        return raw
