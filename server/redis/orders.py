"""Store area: order records: read, list, transition, commit re-allocations, follow-ups,
shipment sequence numbers and tracking numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

from oms.engine.errors import NotFoundError, TransitionError
from oms.engine.lifecycle import OrderStatus, allowed_sources
from oms.engine.models import (
    Allocation,
    Order,
)
from oms.server.auth.principal import current_actor
from oms.server.redis import keys, scripts
from oms.server.redis.base import StaleError, StoreBase, now_ms
from oms.server.redis.order_update import OrderUpdate
from oms.server.redis.records import _s, decode_order, encode_alloc
from oms.server.redis.resp_pipeline import RawPipeline


class OrderOps(StoreBase):
    """Order reads, listing and state changes."""

    async def get_order(self, order_id: str) -> Order:
        return (await self.get_orders([order_id]))[0]

    async def get_orders(self, order_ids: Sequence[str]) -> list[Order]:
        shards = []
        for oid in order_ids:
            try:
                shards.append(keys.Shard(keys.home_of(oid)))
            except ValueError:
                raise NotFoundError("order", oid) from None
        async with self.r.pipeline(transaction=False) as p:
            for oid, sh in zip(order_ids, shards):
                p.hgetall(sh.order(oid))
            raw = await p.execute()
        out = []
        for oid, h in zip(order_ids, raw):
            if not h:
                raise NotFoundError("order", oid)
            out.append(decode_order(oid, h))
        return out

    async def list_orders(self, status: int, channel: str, page_size: int,
                          after: str) -> tuple[list[Order], str]:
        """Orders in creation order (the time-sortable id suffix), paged by that suffix, so
        paging is stable while intake goes on: new orders sort after every cursor."""
        whs = await self.warehouses(0.0)
        fetch = page_size
        picked: list[tuple[str, str]] = []  # (suffix, order id)
        cursor = after
        while True:
            async with self.r.pipeline(transaction=False) as p:
                for w in whs:
                    sh = keys.Shard(w.id)
                    idx = sh.idx_status(status) if status else (
                        sh.idx_channel(channel) if channel else sh.idx_all())
                    lo = f"({w.id}.{cursor}" if cursor else "-"
                    p.zrangebylex(idx, lo, "+", 0, fetch)
                raw = await p.execute()
            cands = sorted((_s(m).rpartition(".")[2], _s(m)) for ids in raw for m in ids)
            if not cands:
                break
            cands = cands[:fetch]
            orders = await self.get_orders([oid for _, oid in cands])
            for (suffix, _), o in zip(cands, orders):
                if channel and status and o.channel != channel:
                    continue
                picked.append((suffix, o.id))
                if len(picked) == page_size:
                    break
            cursor = cands[-1][0]
            if len(picked) >= page_size or not (status and channel):
                break
        result = await self.get_orders([oid for _, oid in picked[:page_size]])
        token = picked[page_size - 1][0] if len(picked) >= page_size else ""
        return result, token

    async def transition(self, order_id: str, target: OrderStatus, *, action: str = "none",
                         reason: str = "", event: str = "", extra: dict[str, str] | None = None,
                         expect_updated_at: int | None = None, followup_at: int | None = None,
                         update: OrderUpdate | None = None) -> tuple[bool, Order]:
        """Run TRANSITION; returns (changed, order after). Raises NotFoundError,
        TransitionError, or StaleError when ``expect_updated_at`` no longer matches.
        ``update``: record changes written in the same step (``extra``: the same as raw
        fields, for server/redis/ only).
        ``action`` releases/consumes the reservation in the home shard only: the caller
        handles the other warehouses of a split order."""
        try:
            home = keys.home_of(order_id)
        except ValueError:
            raise NotFoundError("order", order_id) from None
        sh = keys.Shard(home)
        sources = [int(s) for s in allowed_sources(target)]
        srcs = "," + ",".join(str(s) for s in sources) + ","
        args: list[object] = [now_ms(), self.events_maxlen, order_id, int(target), srcs,
                              action, reason, event or f"order.{target.name.lower()}",
                              "" if expect_updated_at is None else expect_updated_at,
                              "" if followup_at is None else followup_at, current_actor()]
        for k, v in (extra or {}).items():
            args += [k, v]
        for k, v in (update.fields() if update is not None else {}).items():
            args += [k, v]
        # every index the order may leave is declared: its status is only read inside
        res = await scripts.TRANSITION(
            self.r, keys=[sh.order(order_id), sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats,
                          sh.avail, sh.followup, sh.stockseq, sh.idx_status(int(target)),
                          *(sh.idx_status(s) for s in sources)], args=args)
        code = int(res[0])
        if code == -1:
            raise NotFoundError("order", order_id)
        if code == -2:
            raise TransitionError(order_id, OrderStatus(int(res[1])).name, target.name)
        if code == -3:
            raise StaleError(f"order {order_id!r} changed while it was being updated")
        return code == 1, await self.get_order(order_id)

    async def pop_followups(self, warehouse_id: str, now: int, limit: int = 500) -> list[str]:
        """Send the follow-ups due at ``now`` (up to ``limit``); returns the order ids taken.
        The due ids are read first so that POP_FOLLOWUPS can declare their order hashes; the
        script takes only those still due, so concurrent callers never take one twice."""
        sh = keys.Shard(warehouse_id)
        due = [_s(m) for m in await self.r.zrangebyscore(sh.followup, "-inf", now, 0, limit)]
        if not due:
            return []
        res = await scripts.POP_FOLLOWUPS(self.r, keys=[sh.followup, sh.events, sh.stats,
                                                        *(sh.order(oid) for oid in due)],
                                          args=[now, self.events_maxlen, current_actor(), *due])
        return [_s(x) for x in res]

    async def shipment_seq(self, slot: str) -> int:
        return int(await scripts.SHIPMENT_SEQ(self.r, keys=[keys.SHIP_SLOTS, keys.SHIP_SEQ], args=[slot]))

    async def map_tracking(self, pairs: Sequence[tuple[str, str]]) -> None:
        async with self.r.pipeline(transaction=False) as p:
            for tracking, oid in pairs:
                p.set(keys.tracking(tracking), oid)
            await p.execute()

    async def order_of_tracking(self, tracking_number: str) -> str | None:
        v = await self.r.get(keys.tracking(tracking_number))
        return _s(v) if v is not None else None

    async def orders_in_status(self, status: int, limit: int) -> list[Order]:
        """Orders of every shard in one status (oldest first per shard), up to ``limit``."""
        out: list[Order] = []
        for w in await self.warehouses(0.0):
            ids = [_s(m) for m in await self.r.zrange(keys.Shard(w.id).idx_status(status), 0, limit - 1)]
            for i in range(0, len(ids), 1000):
                out += [o for o in await self.get_orders(ids[i:i + 1000]) if o.status == status]
            if len(out) >= limit:
                break
        return out[:limit]

    async def commit_allocation(self, order: Order, new_allocs: Sequence[Allocation],
                                reason: str, stat_deltas: str) -> bool:
        return (await self.commit_allocations(
            [(order, new_allocs, reason, stat_deltas, OrderStatus.ALLOCATED, None)]))[0]

    async def commit_allocations(
            self, items: Sequence[tuple[Order, Sequence[Allocation], str, str, OrderStatus, int | None]]
    ) -> list[bool]:
        """COMMIT_ALLOCATION for each (order as read, new allocation, reason, counter deltas,
        new status, new hold_until or None), in one round trip: an ALLOCATED order stays so, a
        BACKORDERED one becomes ALLOCATED or ON_HOLD, if its status and allocation are still
        the ones read; False where not."""
        now, actor = now_ms(), current_actor()

        def build(p: RawPipeline) -> None:
            for order, new_allocs, reason, stat_deltas, status, hold_until in items:
                sh = keys.Shard(keys.home_of(order.id))
                filled = order.status == OrderStatus.BACKORDERED
                scripts.COMMIT_ALLOCATION.add_to(
                    p, [sh.order(order.id), sh.events, sh.stats, sh.idx_status(int(order.status)),
                        sh.idx_status(int(status))],
                    [now, self.events_maxlen, order.id, encode_alloc(order.allocations),
                     encode_alloc(new_allocs), reason, stat_deltas, int(order.status),
                     "order.backorder_filled" if filled else "order.reallocated",
                     int(status), "" if hold_until is None else hold_until, actor])

        return [bool(x) for x in await self._exec(build)] if items else []
