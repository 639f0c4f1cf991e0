"""Store area: stock levels (set/adjust/read), the availability snapshot intake reads, bin
locations and replenishment inputs.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import orjson

from oms.engine.errors import NotFoundError, PreconditionError
from oms.engine.models import StockLevel
from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase
from oms.server.redis.scripts import risk as risk_scripts
from oms.server.redis.records import RiskRow, RiskSignals, _combine_risk, _pack_risk, _s, _unpack_avail
from oms.server.redis.resp_pipeline import RawPipeline

# Up to this many distinct skus (and at most 1/32 of the catalogue) a snapshot reads single
# entries (BITFIELD_RO per warehouse) instead of whole packed arrays (MGET): 20 arrays of a
# 10,000-sku catalogue are 800 KB.
SNAPSHOT_FEW_SKUS = 64


class StockOps(StoreBase):
    """Stock levels, availability snapshots, locations, replenishment."""

    _risk_migrated = False  # set on the store once migrate_risk_history ran

    async def set_stock(self, warehouse_id: str, sku: str, on_hand: int, location: str, *,
                        clamp: bool = False) -> StockLevel:
        """SET_STOCK. Below what is reserved it refuses (PreconditionError), or with ``clamp``
        sets on_hand to the reserved units instead (the returned level says which)."""
        await self.warehouse(warehouse_id)
        sh = keys.Shard(warehouse_id)
        # Setting stock registers the sku, so a catalogue without dimensions still works.
        sid = await self.ensure_sku(sku)
        res = await scripts.SET_STOCK(self.r, keys=[sh.onhand, sh.reserved, sh.loc, sh.avail,
                                                    sh.stockseq],
                                         args=[sku, sid, on_hand, location] + (["clamp"] if clamp else []))
        if res[0] == -1:
            raise PreconditionError(
                f"on_hand {on_hand} for sku {sku!r} in warehouse {warehouse_id!r} is below the "
                f"{res[1]} units reserved by open orders")
        return StockLevel(warehouse_id, sku, int(res[0]), int(res[1]), _s(res[2]))

    async def reservations_of(self, warehouse_id: str, sku: str) -> dict[str, int]:
        """Units of ``sku`` each reservation record of the warehouse holds (record id -> units;
        staged moves end in STAGED). Reads the whole ``resv`` hash: for rare operations."""
        out: dict[str, int] = {}
        for rid, rec in (await self.r.hgetall(keys.Shard(warehouse_id).resv)).items():
            f = _s(rec).split()
            q = sum(int(f[i + 2]) for i in range(1, len(f), 3) if f[i] == sku)
            if q:
                out[_s(rid)] = q
        return out

    async def adjust_stock(self, warehouse_id: str, sku: str, delta: int,
                           idempotency_key: str) -> StockLevel:
        await self.warehouse(warehouse_id)
        ids = await self.sku_ids([sku])
        if sku not in ids:
            raise NotFoundError("sku", sku)
        sh = keys.Shard(warehouse_id)
        res = await scripts.ADJUST_STOCK(
            self.r, keys=[sh.onhand, sh.reserved, sh.loc, sh.adjust(idempotency_key or "-"), sh.avail,
                          sh.stockseq],
            args=[sku, ids[sku], delta, self.idempotency_ttl_s, "1" if idempotency_key else "0"])
        if res[0] == -1:
            raise PreconditionError(
                f"adjusting sku {sku!r} in warehouse {warehouse_id!r} by {delta} would leave "
                f"on_hand {res[1] + delta} below the {res[2]} units reserved (or below 0)")
        if res[0] == -2:
            raise PreconditionError(
                f"adjusting sku {sku!r} in warehouse {warehouse_id!r} by {delta} would take "
                f"on_hand to {res[1] + delta}, past the maximum {2**31 - 1}")
        return StockLevel(warehouse_id, sku, int(res[0]), int(res[1]), _s(res[2]))

    async def list_stock(self, warehouse_ids: list[str], sku_prefix: str, after: str,
                         limit: int) -> tuple[list[StockLevel], str]:
        """Stock of the registered SKUs after ``after`` (SKU order) starting with ``sku_prefix``:
        up to ``limit`` SKUs, each with its level in every warehouse that has a record of it;
        and the last SKU looked at when more may follow ("" otherwise). The SKU list is the
        product registry's (HKEYS): fine for catalogues of up to some 100k SKUs."""
        skus = sorted(s for s in (k.decode() for k in await self.r.hkeys(keys.SKU_IDS))
                      if s > after and s.startswith(sku_prefix))
        page, more = skus[:limit], len(skus) > limit
        if not page or not warehouse_ids:
            return [], ""
        async with self.r.pipeline(transaction=False) as p:
            for w in warehouse_ids:
                sh = keys.Shard(w)
                p.hmget(sh.onhand, page)
                p.hmget(sh.reserved, page)
                p.hmget(sh.loc, page)
            raw = await p.execute()
        out = []
        for k, sku in enumerate(page):
            for i, w in enumerate(warehouse_ids):
                oh, rs, loc = raw[3 * i][k], raw[3 * i + 1][k], raw[3 * i + 2][k]
                if oh is None and rs is None:
                    continue
                out.append(StockLevel(w, sku, int(oh or 0), int(rs or 0), _s(loc)))
        return out, page[-1] if more else ""

    async def get_stock(self, sku: str) -> list[StockLevel]:
        if await self.unknown_skus([sku]):
            raise NotFoundError("sku", sku)
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                sh = keys.Shard(w.id)
                p.hget(sh.onhand, sku)
                p.hget(sh.reserved, sku)
                p.hget(sh.loc, sku)
            raw = await p.execute()
        out = []
        for i, w in enumerate(whs):
            oh, rs, loc = raw[3 * i: 3 * i + 3]
            if oh is None and rs is None:
                continue
            out.append(StockLevel(w.id, sku, int(oh or 0), int(rs or 0), _s(loc)))
        return out

    async def snapshot(self, warehouse_ids: Sequence[str], sku_ids: np.ndarray) -> np.ndarray:
        """available[w, k] = on_hand - reserved of sku id ``sku_ids[k]`` in warehouse w, in one
        round trip. A snapshot can be stale by the time it is used; PLACE_ORDERS re-checks
        atomically."""
        _, available = await self.risk_and_snapshot([], 0, 0, warehouse_ids, sku_ids)
        return available

    async def risk_and_snapshot(self, rows: Sequence[RiskRow], now: int, window_s: int,
                                warehouse_ids: Sequence[str], sku_ids: np.ndarray
                                ) -> tuple[list[RiskSignals], np.ndarray]:
        """RISK_SIGNALS (if ``rows``: one call per fraud-counter bucket the rows touch) and
        the availability snapshot (if warehouses and skus) in ONE round trip."""
        _, signals, available = await self.claim_risk_and_snapshot(
            [], "", rows, now, window_s, warehouse_ids, sku_ids)
        return signals, available

    async def claim_risk_and_snapshot(
            self, idem_keys: Sequence[str], token: str, rows: Sequence[RiskRow], now: int,
            window_s: int, warehouse_ids: Sequence[str], sku_ids: np.ndarray
    ) -> tuple[list[str | None], list[RiskSignals], np.ndarray]:
        """``claim_keys(idem_keys, token)``, ``risk_and_snapshot`` in ONE round trip (intake's
        hot path: a unary order pays one round trip fewer than claiming first). The claims and
        the counts run side by side, so a row whose key turns out to be taken was counted
        all the same: the caller takes it back with ``undo_risk``."""
        where, per_bucket = self._claim_plan(idem_keys, token) if idem_keys else ([], {})  # type: ignore[attr-defined]
        if rows and not self._risk_migrated:
            await self.migrate_risk_history()
        risk_calls = _pack_risk(rows) if rows else []
        # the velocity windows RISK_SIGNALS reads (declared keys: its window arithmetic)
        win_n = now // (window_s * 1000) if risk_calls else 0
        win, prev = f"v:{win_n}", f"v:{win_n - 1}"
        n_w, n_k = len(warehouse_ids), len(sku_ids)
        read = n_w > 0 and n_k > 0
        avail_keys = [keys.Shard(wid).avail for wid in warehouse_ids] if read else []
        # A few skus of a large catalogue (small batches: unary and streaming intake): read just
        # those entries of each array (BITFIELD_RO), not whole arrays. Otherwise one MGET of the
        # arrays: copying bytes is cheaper for Redis than decoding many BITFIELD operations.
        # (On Redis Cluster either is per shard: the keys live in different slots.)
        few = read and n_k <= SNAPSHOT_FEW_SKUS and n_k * 32 <= len(self._skus)  # skus seen ~ catalogue
        ops = [a for i in sku_ids.tolist() for a in ("GET", "i32", f"#{i}")] if few else []

        def build(p: RawPipeline) -> None:
            if per_bucket:
                self._add_claims(p, per_bucket)  # type: ignore[attr-defined]
            for bucket, args, _ in risk_calls:
                prefix = keys.risk(bucket)
                scripts.RISK_SIGNALS.add_to(p, [prefix + win, prefix + prev, prefix + "hist"],
                                            [prefix, now, window_s, args])
            if few:
                p.same_command_per_key("BITFIELD_RO", avail_keys, ops)
            elif read:
                p.mget(avail_keys)

        raw = await self._exec(build)
        claims: list[str | None] = []
        if per_bucket:
            claims = self._claim_answers(where, dict(zip(per_bucket, raw)))  # type: ignore[attr-defined]
            raw = raw[len(per_bucket):]
        signals: list[RiskSignals] = []
        if rows:
            signals = _combine_risk(len(rows), [idx for _, _, idx in risk_calls],
                                    raw[:len(risk_calls)])
        if not read:
            return claims, signals, np.zeros((n_w, n_k), dtype=np.int64)
        if few:
            return claims, signals, np.array(raw[-n_w:], dtype=np.int64).reshape(n_w, n_k)
        return claims, signals, _unpack_avail(raw[-1], sku_ids)

    async def undo_risk(self, rows: Sequence[RiskRow], now: int, window_s: int) -> None:
        """Take back what RISK_SIGNALS counted for ``rows`` at ``now`` (orders that were not
        placed after all: their idempotency key was taken). One RISK_UNDO per bucket."""
        per: dict[int, list[object]] = {}
        for c, e, a, v, la, lo, co in rows:
            hist = [v, la, lo, co]
            for f, h in ((f"c:{c}" if c else "", hist), (f"e:{e}" if e else "", [] if c else hist),
                         (f"a:{a}" if a else "", [])):
                if f:
                    per.setdefault(keys.risk_bucket(f), []).extend([f, *(h or ["", "", "", ""])])
        await asyncio.gather(*[
            risk_scripts.RISK_UNDO(self.r, keys=[f"{keys.risk(b)}v:{now // (window_s * 1000)}",
                                                 keys.risk(b) + "hist"],
                                   args=[keys.risk(b), now, window_s, *args])
            for b, args in per.items()])

    async def migrate_risk_history(self, chunk: int = 500) -> int:
        """Move customer history kept under the single ``{risk}`` slot (before the counters
        were spread over buckets) into the buckets, once per store, before its first fraud
        check; returns the entries this call moved. Velocity windows are not moved: they are
        short and restart. Each chunk is removed from the old hash before it is merged, so
        processes migrating at once never count an entry twice; one that dies in between
        loses that chunk's history (the rules then treat those customers as new)."""
        moved = 0
        old = keys.LEGACY_RISK + "hist"
        while True:
            got = await risk_scripts.RISK_HIST_TAKE(self.r, keys=[old], args=[chunk])
            if not got:
                break
            by_bucket: dict[int, list[bytes | str]] = {}
            for i in range(0, len(got), 2):
                by_bucket.setdefault(keys.risk_bucket(_s(got[i])), []).extend(got[i:i + 2])
            for bucket, pairs in by_bucket.items():
                await risk_scripts.RISK_HIST_MERGE(self.r, keys=[keys.risk(bucket) + "hist"],
                                                   args=pairs)
            moved += len(got) // 2
        self._risk_migrated = True
        return moved

    async def set_replenishment_policy(self, warehouse_id: str, sku: str, reorder_point: int,
                                       lead_time_days: float) -> None:
        await self.warehouse(warehouse_id)
        if sku not in await self.sku_ids([sku]):
            raise NotFoundError("sku", sku)
        await self.r.hset(keys.Shard(warehouse_id).replen, sku,
                          orjson.dumps({"reorder_point": reorder_point, "lead_time_days": lead_time_days}))

    async def replenishment_inputs(self, warehouse_id: str, window_days: float, now: int
                                   ) -> list[tuple[str, int, int, int, dict]]:
        """(sku, on_hand, reserved, sold in window, policy) for every sku stocked in the
        warehouse; sales are the units reserved per day (PLACE_ORDERS keeps them)."""
        sh = keys.Shard(warehouse_id)
        today = now // 86_400_000
        days = max(1, int(-(-window_days // 1)))
        async with self.r.pipeline(transaction=False) as p:
            p.hgetall(sh.onhand)
            p.hgetall(sh.reserved)
            p.hgetall(sh.replen)
            for d in range(days):
                p.hgetall(f"{sh.prefix}sold:{today - d}")
            raw = await p.execute()
        onhand = {_s(k): int(v) for k, v in raw[0].items()}
        reserved = {_s(k): int(v) for k, v in raw[1].items()}
        policy = {_s(k): orjson.loads(v) for k, v in raw[2].items()}
        sold: dict[str, int] = {}
        for h in raw[3:]:
            for k, v in h.items():
                sold[_s(k)] = sold.get(_s(k), 0) + int(v)
        return [(sku, onhand.get(sku, 0), reserved.get(sku, 0), sold.get(sku, 0), policy.get(sku, {}))
                for sku in sorted(set(onhand) | set(policy))]

    async def locations(self, warehouse_id: str, skus: Sequence[str]) -> dict[str, str]:
        if not skus:
            return {}
        vals = await self.r.hmget(keys.Shard(warehouse_id).loc, list(skus))
        return {s: _s(v) for s, v in zip(skus, vals) if v}
