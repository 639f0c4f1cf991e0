"""Store area: the shipment pusher's Redis state (server/channels/shipments.py).

- **Events.** The pusher reads the shard event streams ``oms:{w:W}:events`` through its own
  consumer group (default ``channel-shipments``), with the notifier's consumer-group code
  (``Notifications``: one non-blocking XREADGROUP per stream in one pipeline, XAUTOCLAIM of
  stale entries, XACK per stream). An entry is acknowledged only once every shipment of its
  order was pushed or failed for good, so delivery is at-least-once.
- **Markers.** ``oms:{c:<channel>}:shp:<sha1 of shipment id>`` makes the push of one shipment
  to one channel happen once: ``claim_shipment_push`` SETs it NX with a short TTL (the claim's
  life must outlast one push) before the push; ``confirm_shipment_push`` rewrites it to
  ``pushed ...`` (or ``failed ...``) with a long TTL if the claim is still ours; a retryable
  failure releases it (compare-and-delete) so a retry can claim it again. A second worker, a
  second group or a re-delivered event finds the marker taken and pushes nothing. A worker
  that dies between the push and the confirmation leaves a claim that expires, after which the
  shipment is pushed again: at least once, never twice while the claim lives.
- **Counters.** ``oms:{c:<channel>}:shpstats`` (hash): ``fulfillments`` (shipments the channel
  accepted), ``failures`` (failed attempts, each retry counts), ``last_error``,
  ``last_error_at``, ``last_push_at`` (unix ms).

Marker values: ``claimed|pushed|failed <consumer> <ms>[ <note>]``.
"""
from __future__ import annotations

from dataclasses import dataclass

from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase, now_ms
from oms.server.redis.notifications import Notifications

ERROR_MAX = 300  # characters of an error message kept as last_error


@dataclass(frozen=True)
class ShipmentPushStats:
    """One channel's shipment-push counters (unix ms; 0: never)."""
    channel_id: str
    fulfillments: int = 0
    failures: int = 0
    last_error: str = ""
    last_error_at: int = 0
    last_push_at: int = 0


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


class ChannelShipmentOps(StoreBase):
    """The shipment pusher's consumer group, per-shipment markers and per-channel counters."""

    def shipment_events(self, consumer: str) -> Notifications:
        """Consumer-group access to the shard event streams for ``consumer`` (the notifier's
        implementation; the pusher passes its own group name to every call)."""
        return Notifications(self.r, consumer)

    # -- markers --------------------------------------------------------------------------

    async def claim_shipment_push(self, channel_id: str, shipment_id: str, token: str,
                                  ttl_s: int) -> bool:
        """Claim the push of ``shipment_id`` to ``channel_id`` (SET NX EX) with ``token``
        ("claimed <consumer> <ms>"). False: it is pushed, failed for good, or claimed by
        another attempt (``shipment_push_state`` says which)."""
        return bool(await self.r.set(keys.channel_shipment(channel_id, shipment_id), token,
                                     nx=True, ex=max(1, int(ttl_s))))

    async def confirm_shipment_push(self, channel_id: str, shipment_id: str, token: str,
                                    value: str, ttl_s: int) -> bool:
        """Replace our claim by ``value`` ("pushed ..." or "failed ...") for ``ttl_s``. False if
        the claim was no longer ours (it expired and was taken again)."""
        return bool(await scripts.NOTIFY_MARK(
            self.r, keys=[keys.channel_shipment(channel_id, shipment_id)],
            args=[token, value, max(1, int(ttl_s))]))

    async def release_shipment_push(self, channel_id: str, shipment_id: str, token: str) -> bool:
        """Give our claim back after a retryable failure (compare-and-delete)."""
        return bool(await scripts.NOTIFY_RELEASE(
            self.r, keys=[keys.channel_shipment(channel_id, shipment_id)], args=[token]))

    async def shipment_push_state(self, channel_id: str, shipment_id: str) -> str:
        """The marker's value, or "" when there is none."""
        return _s(await self.r.get(keys.channel_shipment(channel_id, shipment_id)))

    # -- counters -------------------------------------------------------------------------

    async def note_shipment_pushed(self, channel_id: str) -> None:
        k = keys.channel_shipment_stats(channel_id)
        async with self.r.pipeline(transaction=True) as p:
            p.hincrby(k, "fulfillments", 1)
            p.hset(k, "last_push_at", now_ms())
            await p.execute()

    async def note_shipment_failure(self, channel_id: str, error: str) -> None:
        k = keys.channel_shipment_stats(channel_id)
        async with self.r.pipeline(transaction=True) as p:
            p.hincrby(k, "failures", 1)
            p.hset(k, mapping={"last_error": error[:ERROR_MAX], "last_error_at": now_ms()})
            await p.execute()

    async def shipment_push_stats(self, channel_id: str) -> ShipmentPushStats:
        h = {_s(k): _s(v) for k, v in
             (await self.r.hgetall(keys.channel_shipment_stats(channel_id))).items()}
        return ShipmentPushStats(
            channel_id, fulfillments=int(h.get("fulfillments") or 0),
            failures=int(h.get("failures") or 0), last_error=h.get("last_error", ""),
            last_error_at=int(h.get("last_error_at") or 0),
            last_push_at=int(h.get("last_push_at") or 0))
