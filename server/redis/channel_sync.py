"""Store area: what oms-channels reports about each channel it pushes stock to.

Key (keys.channel_sync): ``oms:{c:<id>}:sync``, a hash: ``pushes`` and ``failures`` (counters,
HINCRBY: they add up over worker restarts and over several workers), ``pending``,
``lag_p50``/``lag_p99`` (ms), ``last_error``, ``last_error_at``, ``last_push_at``,
``updated_at`` (unix ms; a report older than a few seconds means the worker stopped).
"""
from __future__ import annotations

from dataclasses import dataclass

from oms.server.redis import keys
from oms.server.redis.base import StoreBase, now_ms

LAST_ERROR_MAX = 300


@dataclass(frozen=True)
class SyncReport:
    """One report of a channel's pusher: counter deltas since its last report and the
    current figures."""
    channel_id: str
    pushes: int = 0
    failures: int = 0
    pending: int = 0
    lag_ms_p50: float = 0.0
    lag_ms_p99: float = 0.0
    last_error: str = ""
    last_error_at: int = 0
    last_push_at: int = 0


@dataclass(frozen=True)
class SyncStats:
    channel_id: str
    pending: int
    lag_ms_p50: float
    lag_ms_p99: float
    pushes: int
    failures: int
    last_error: str
    last_error_at: int
    last_push_at: int
    rejected_orders: int
    updated_at: int
    fulfillments: int = 0  # the shipment pusher's count (channel_shipments.py)


class ChannelSyncOps(StoreBase):
    """oms-channels' per-channel stock push statistics."""

    async def report_sync(self, reports: list[SyncReport]) -> None:
        """Write reports (one round trip). Zero timestamps keep the stored ones."""
        if not reports:
            return
        now = now_ms()
        async with self.r.pipeline(transaction=False) as p:
            for rep in reports:
                k = keys.channel_sync(rep.channel_id)
                if rep.pushes:
                    p.hincrby(k, "pushes", rep.pushes)
                if rep.failures:
                    p.hincrby(k, "failures", rep.failures)
                m: dict[str, str] = {"pending": str(rep.pending),
                                     "lag_p50": repr(float(rep.lag_ms_p50)),
                                     "lag_p99": repr(float(rep.lag_ms_p99)),
                                     "updated_at": str(now)}
                if rep.last_error_at:
                    m["last_error"] = rep.last_error[:LAST_ERROR_MAX]
                    m["last_error_at"] = str(rep.last_error_at)
                if rep.last_push_at:
                    m["last_push_at"] = str(rep.last_push_at)
                p.hset(k, mapping=m)
            await p.execute()

    async def sync_stats(self) -> list[SyncStats]:
        """Every channel's stats that oms-channels reported (with its rejected orders and
        shipments marked), by channel id; channels with nothing to report are left out."""
        ids = sorted(i.decode() for i in await self.r.smembers(keys.CHANNELS))
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for i in ids:
                p.hgetall(keys.channel_sync(i))
                p.zcard(keys.channel_rejected(i)[1])
                p.hget(keys.channel_shipment_stats(i), "fulfillments")
            raw = await p.execute()
        out = []
        for n, i in enumerate(ids):
            h, rejected, shipped = raw[3 * n], int(raw[3 * n + 1] or 0), int(raw[3 * n + 2] or 0)
            if not h and not rejected and not shipped:
                continue

            def g(f: str, h: dict[bytes, bytes] = h) -> bytes:
                return h.get(f.encode(), b"0") or b"0"
            out.append(SyncStats(
                channel_id=i, pending=int(g("pending")), lag_ms_p50=float(g("lag_p50")),
                lag_ms_p99=float(g("lag_p99")), pushes=int(g("pushes")),
                failures=int(g("failures")),
                last_error=h.get(b"last_error", b"").decode("utf-8", "replace"),
                last_error_at=int(g("last_error_at")), last_push_at=int(g("last_push_at")),
                rejected_orders=rejected, updated_at=int(g("updated_at")),
                fulfillments=shipped))
        return out
