"""Store area: writing and giving back reservations (PLACE_ORDERS, RELEASE_RESERVATION,
SWAP_RECORD).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase
from oms.server.redis.records import PlaceEntry, staged_id
from oms.server.redis.resp_pipeline import RawPipeline


def _release_keys(sh: keys.Shard) -> list[str]:
    """KEYS of RELEASE_RESERVATION."""
    return [sh.onhand, sh.reserved, sh.resv, sh.avail, sh.waved, sh.stockseq]


def _place_keys(sh: keys.Shard, entries: Sequence[PlaceEntry], now: int) -> list[str]:
    """KEYS of one PLACE_ORDERS call: the fixed head, each order's hash and idempotency
    mapping in entry order (the script reads them by position), then the index keys its
    orders go into. Declaring them all lets Redis Cluster redirect the call before it runs."""
    ks = [sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats, sh.avail, sh.stockseq,
          sh.sold(now // 86_400_000), sh.idx_all()]
    po, pi = sh.prefix + "o:", sh.prefix + "idem:"
    statuses: set[int] = set()
    channels: set[str] = set()
    for e in entries:
        if e.kind == "O":
            ks.append(po + e.order_id)
            if e.idem_digest:
                ks.append(pi + e.idem_digest)
            statuses.add(e.status)
            channels.add(e.channel)
    ks += [sh.idx_status(st) for st in statuses]
    ks += [sh.idx_channel(ch) for ch in channels]
    return ks


class PlacementOps(StoreBase):
    """Placement and release of reservations across shards."""

    async def place_groups(self, groups: dict[str, list[PlaceEntry]], now: int) -> dict[str, list[int]]:
        """One PLACE_ORDERS call per warehouse, all in one pipeline round trip. Returns the
        per-entry codes (1 written, 2 already present, 0 short) per warehouse."""
        order = [w for w, es in groups.items() if es]
        if not order:
            return {}
        calls = []
        for wid in order:
            sh = keys.Shard(wid)
            # The shard's key mapping lives as long as a claim can (two periods): a claim stays
            # "pending" after its order is placed and is resolved from this mapping.
            args: list[object] = [sh.prefix, now, self.events_maxlen, self._claim_life_s]
            args += [e.pack() for e in groups[wid]]
            calls.append((_place_keys(sh, groups[wid], now), args))

        def build(p: RawPipeline) -> None:
            for k, a in calls:
                scripts.PLACE_ORDERS.add_to(p, k, a)

        raw = await self._exec(build)
        return {wid: [int(x) for x in res] for wid, res in zip(order, raw)}

    async def release(self, warehouse_id: str, order_id: str, older_than_ms: int = 0) -> bool:
        sh = keys.Shard(warehouse_id)
        return bool(await scripts.RELEASE_RESERVATION(
            self.r, keys=_release_keys(sh), args=[order_id, older_than_ms]))

    async def release_many(self, pairs: Sequence[tuple[str, str]], *, writeoff: str = "") -> None:
        """Give back what each (warehouse, record id) holds; ``writeoff``: that sku's units
        are written off instead (on_hand drops with reserved: a stock count found them missing)."""
        if not pairs:
            return
        extra = [f"writeoff:{writeoff}"] if writeoff else []

        def build(p: RawPipeline) -> None:
            for wid, oid in pairs:
                sh = keys.Shard(wid)
                scripts.RELEASE_RESERVATION.add_to(p, _release_keys(sh), [oid, 0, *extra])

        await self._exec(build)

    async def consume_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Consume reservations (stock shipped) in non-home warehouses; idempotent."""
        if not pairs:
            return
        def build(p: RawPipeline) -> None:
            for wid, oid in pairs:
                sh = keys.Shard(wid)
                scripts.RELEASE_RESERVATION.add_to(p, _release_keys(sh),
                         [oid, 0, "consume"])

        await self._exec(build)

    async def swap_records(self, order_id: str, warehouse_ids: Iterable[str]) -> None:
        await self.swap_records_many([(order_id, w) for w in warehouse_ids])

    async def swap_records_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """SWAP_RECORD for each (order id, warehouse id), in one round trip."""
        def build(p: RawPipeline) -> None:
            for order_id, wid in pairs:
                sh = keys.Shard(wid)
                scripts.SWAP_RECORD.add_to(p, [sh.onhand, sh.reserved, sh.resv, sh.avail,
                                               sh.stockseq], [order_id, staged_id(order_id)])

        if pairs:
            await self._exec(build)
