"""Store area: what readers follow: the shards' event streams and the stats counters.
"""
from __future__ import annotations

from collections.abc import Sequence

from oms.engine.errors import OmsError
from oms.engine.models import OrderEvent
from oms.server.redis import events as event_streams
from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase, now_ms
from oms.server.redis.records import _s
from oms.server.redis.stats import Counters, parse_counters


class ReportingOps(StoreBase):
    """Event stream reads and cursors; stats counters."""

    async def read_events(self, cursor: dict[str, str], block_ms: int, count: int = 500
                          ) -> list[OrderEvent]:
        """One XREAD of each shard's stream from ``cursor`` (warehouse -> stream id), polled
        until an event or ``block_ms`` (see events.py); advances the cursor. Events come back merged in id (time) order, and never past the last id of
        a stream whose read was cut at ``count`` (it may hold older events not read yet), so
        that resuming after any delivered event id skips nothing."""
        return await event_streams.read(self.r, await self.warehouses(), cursor, block_ms, count)

    async def read_events_upto(self, cursor: dict[str, str], upto: dict[str, str],
                               count: int = 500) -> tuple[list[OrderEvent], bool]:
        """One non-blocking page of history: the events after ``cursor`` up to ``upto`` (both
        warehouse -> stream id), merged in id order; advances the cursor. True when the page
        reached every bound."""
        return await event_streams.read_upto(self.r, cursor, upto, count)

    def event_tail(self) -> event_streams.EventTail:
        """A blocking event reader on a connection of its own, outside the request pool (the
        event hub's tailer). The caller closes it (``aclose``)."""
        return event_streams.EventTail(self.r, self.warehouses)

    async def event_cursor(self, after_event_id: str) -> dict[str, str]:
        """Cursor for resuming after ``after_event_id`` ("<ms>-<seq>@<warehouse>"). Other
        shards restart at the start of that millisecond, so a resume may repeat an event of the
        same millisecond but never skips one (at-least-once)."""
        whs = await self.warehouses(0.0)
        if not after_event_id:
            ids = await self._last_ids([w.id for w in whs])
            return dict(zip([w.id for w in whs], ids))
        if after_event_id == "0":
            return {w.id: "0-0" for w in whs}
        try:
            sid, wid = event_streams.parse_event_id(after_event_id)
        except ValueError as e:
            raise OmsError(f"malformed event id {after_event_id[:32]!r}: {e}") from None
        ms = event_streams.sid_key(sid)[0]
        before = f"{ms - 1}-{event_streams.U64_MAX}" if ms > 0 else "0-0"
        return {w.id: (sid if w.id == wid else before) for w in whs}

    async def _last_ids(self, wids: Sequence[str]) -> list[str]:
        async with self.r.pipeline(transaction=False) as p:
            for wid in wids:
                p.xrevrange(keys.Shard(wid).events, count=1)
            raw = await p.execute()
        return [_s(r[0][0]) if r else "0-0" for r in raw]

    async def stats(self) -> Counters:
        """Every shard's stats counters, summed and parsed (see ``counters``)."""
        return parse_counters(await self.counters())

    async def status_counts_by_warehouse(self) -> dict[str, dict[int, int]]:
        """Orders by status per home warehouse, from the shards' ``st:<status>`` counters."""
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                p.hgetall(keys.Shard(w.id).stats)
            raw = await p.execute()
        return {w.id: {int(_s(k)[3:]): int(v) for k, v in h.items() if _s(k).startswith("st:")}
                for w, h in zip(whs, raw)}

    async def counters(self) -> dict[str, int]:
        """Every shard's stats counters, summed. Per-minute counters older than
        ``scripts.MINUTES_KEPT`` minutes that PLACE_ORDERS did not drop (a shard took no order
        that many minutes later) are deleted on the way."""
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                p.hgetall(keys.Shard(w.id).stats)
            raw = await p.execute()
        oldest = now_ms() // 60_000 - scripts.MINUTES_KEPT
        total: dict[str, int] = {}
        stale: list[tuple[str, list[str]]] = []
        for w, h in zip(whs, raw):
            old = []
            for k, v in h.items():
                name = _s(k)
                if name.startswith("m:") and int(name[2:]) <= oldest:
                    old.append(name)
                    continue
                total[name] = total.get(name, 0) + int(v)
            if old:
                stale.append((keys.Shard(w.id).stats, old))
        if stale:
            async with self.r.pipeline(transaction=False) as p:
                for key, names in stale:
                    p.hdel(key, *names)
                await p.execute()
        return total
