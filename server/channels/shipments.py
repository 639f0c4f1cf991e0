"""The shipment pusher: when an order that came from a channel ships, its carrier, tracking
number and tracking link go back to the channel (Shopify fulfillment, WooCommerce order
completed with tracking, the generic ``POST /shipments``).

Runs inside ``oms-channels`` beside the stock pusher (``run(stop)``; ``run_once()`` processes
what is pending and returns).

Which orders: an ``order.shipped`` event whose order's idempotency key is an external order key
"<platform>:<channel id>:<platform order id>" (``engine.channels``) of the order's own channel,
where that channel is registered, not disabled and has a push target. Every other event is
acknowledged at once.

Guarantees (the Redis side is server/redis/channel_shipments.py):
- At-least-once: events come through a consumer group and are acknowledged only after every
  shipment of the order was pushed or refused for good. A worker that dies leaves them
  pending; the stale sweep (XAUTOCLAIM) hands them to a live worker.
- Once per (order, shipment) on a channel: a marker is claimed (SET NX, TTL) before the push
  and confirmed after it, so a second worker, a second group or a re-delivered event pushes
  nothing. A retryable failure releases the marker; only a worker killed between the push and
  the confirmation can cause a second push, after the claim expired.
- Retryable failures (429, 5xx, timeouts) back off per channel, honouring ``Retry-After``:
  the failing channel's deliveries wait in memory (in order, still pending in Redis) while
  other channels go on; each channel is drained by its own task, so a slow shop holds up no
  other. A permanent failure (another 4xx) is recorded as the channel's ``last_error``, the
  marker says ``failed`` and the event is acknowledged. Both count in the channel's
  ``failures``; accepted shipments count in ``fulfillments``.

Units: each shipment goes with the SKUs and quantities it carries (``shipment_items``: the
order's allocations in its warehouse), so an order split over warehouses is fulfilled on
Shopify shipment by shipment, each with its own tracking.

Tracking link: the carrier's public tracking page when it is a known carrier (or
``tracking_url_template`` is set), else the shipment's label URL.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from oms.engine.channels import Channel, ChannelKind, parse_external_order_key
from oms.engine.errors import NotFoundError
from oms.engine.models import Order, Shipment
from oms.server.channels.connectors import Connector, PushError, connector_for
from oms.server.redis.base import now_ms
from oms.server.redis.notifications import Delivery
from oms.server.redis.store import Store

log = logging.getLogger("oms.channels.shipments")

SHIPPED_EVENT = "order.shipped"

# Public tracking pages of the big parcel carriers, by upper-case carrier name. The built-in
# rate-table carrier (OMSX) has none: its shipments link their label.
PUBLIC_TRACKING = {
    "UPS": "https://www.ups.com/track?tracknum={tracking_number}",
    "FEDEX": "https://www.fedex.com/fedextrack/?trknbr={tracking_number}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={tracking_number}",
    "DHL": "https://www.dhl.com/global-en/home/tracking/tracking-express.html"
           "?submit=1&tracking-id={tracking_number}",
}

# The platform an external order key names -> the channel kinds whose connector speaks it.
_PLATFORM_KINDS = {"shopify": {ChannelKind.SHOPIFY}, "woocommerce": {ChannelKind.WOOCOMMERCE}}

DONE, RETRY, BUSY = "done", "retry", "busy"  # what became of one event


def _host_pid() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ShipmentPushConfig:
    group: str = "channel-shipments"  # the consumer group on every shard event stream
    group_start: str = "0"  # a new group: "0" every event still in the streams, "$" new only
    consumer: str = field(default_factory=_host_pid)
    batch: int = 200  # entries per stream per read
    block_ms: int = 1000  # an idle read's wait
    claim_idle_ms: int = 60_000  # take over entries pending longer than this
    claim_ttl_s: int = 300  # a push claim's life: longer than one push can take
    marker_ttl_s: int = 30 * 86_400  # how long a pushed/failed marker is kept
    retry_base_s: float = 1.0  # first back-off of a channel; doubles per failure
    retry_max_s: float = 300.0
    max_held: int = 10_000  # deliveries waiting in memory before reading pauses
    tracking_url_template: str = ""  # {tracking_number} {carrier} {order_id}; "": built-in


def tracking_url(s: Shipment, order_id: str, template: str = "") -> str:
    """The link pushed with a shipment: ``template`` if given, else the carrier's public
    tracking page, else the label URL."""
    tpl = template or PUBLIC_TRACKING.get(s.carrier.upper(), "")
    if not tpl:
        return s.label_url
    q = urllib.parse.quote
    return tpl.format(tracking_number=q(s.tracking_number, safe=""),
                      carrier=q(s.carrier, safe=""), order_id=q(order_id, safe=""))


ConnectorFactory = Callable[[Channel, aiohttp.ClientSession], Connector | None]


class ShipmentPusher:
    """Pushes shipped orders' tracking to their channels; see the module docstring."""

    def __init__(self, store: Store, cfg: ShipmentPushConfig | None = None, *,
                 make_connector: ConnectorFactory = connector_for) -> None:
        self.store = store
        self.cfg = cfg or ShipmentPushConfig()
        self.events = store.shipment_events(self.cfg.consumer)
        self._make_connector = make_connector
        self.stop = asyncio.Event()
        self._grouped: set[str] = set()
        self._held: dict[str, list[Delivery]] = {}  # channel -> deliveries waiting, in order
        self._held_ids: set[tuple[str, str]] = set()
        self._next_at: dict[str, float] = {}  # channel -> monotonic time of its next try
        self._fails: dict[str, int] = {}  # channel -> consecutive retryable failures
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._connectors: dict[str, tuple[Channel, Connector | None]] = {}
        self._last_sweep = 0.0
        self.pushed = self.skipped = self.failed = self.retried = 0

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Push until ``stop`` is set; Redis errors are logged and retried with back-off."""
        self.stop = stop
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    await self.step(block_ms=self.cfg.block_ms)
                    backoff = 1.0
                except Exception as e:  # noqa: BLE001 - Redis down, a stream deleted under us
                    log.error("shipment push round failed: %s; retrying in %.0f s", e, backoff)
                    self._grouped.clear()  # re-create groups if the streams went away
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 60.0)
        finally:
            await self._finish_tasks()
            await self.aclose()
            log.info("shipment pusher done: %d pushed, %d already pushed, %d refused, "
                     "%d retried", self.pushed, self.skipped, self.failed, self.retried)

    async def run_once(self) -> int:
        """Process every pending event once (the stale sweep, then new events until none are
        left) and return how many were read. Channels in back-off keep their events pending
        (in memory and in Redis) for a later call; sessions stay open until ``aclose``."""
        self.stop = asyncio.Event()
        n = await self.step(block_ms=0, sweep=True)
        await self._finish_tasks()
        while True:
            got = await self.step(block_ms=0, sweep=False)
            await self._finish_tasks()
            if not got:
                break
            n += got
        return n

    async def step(self, *, block_ms: int, sweep: bool | None = None) -> int:
        """One round: the stale sweep (when due, or as ``sweep`` says), one read, and a drain
        task for every channel with due deliveries. Returns the number of entries read."""
        wids = await self.warehouses()
        if not wids:
            await self._sleep(block_ms / 1000)
            return 0
        n = 0
        if sweep is None:
            every = min(30.0, max(1.0, self.cfg.claim_idle_ms / 2000))
            sweep = time.monotonic() - self._last_sweep >= every
        if sweep:
            self._last_sweep = time.monotonic()
            stale = await self.events.claim_stale(self.cfg.group, self.cfg.consumer, wids,
                                                  self.cfg.claim_idle_ms, count=self.cfg.batch)
            n += len(stale)
            await self._dispatch(stale)
        self._kick()
        if len(self._held_ids) < self.cfg.max_held and not self.stop.is_set():
            new = await self.events.read(self.cfg.group, self.cfg.consumer, wids,
                                         count=self.cfg.batch, block_ms=self._wait_ms(block_ms))
            n += len(new)
            await self._dispatch(new)
        else:
            await self._sleep(self._wait_ms(block_ms) / 1000)
        self._kick()
        return n

    async def warehouses(self) -> list[str]:
        wids = [w.id for w in await self.store.warehouses(0.0)]
        new = [w for w in wids if w not in self._grouped]
        if new:
            await self.events.ensure_groups(new, self.cfg.group, self.cfg.group_start)
            first = not self._grouped
            self._grouped.update(new)
            if first:  # consumer names carry the pid: tidy up those of old runs
                await self.events.prune_consumers(self.cfg.group, wids)
        return wids

    def _wait_ms(self, block_ms: int) -> int:
        """``block_ms``, shortened to the earliest back-off end of a channel with deliveries
        and no drain running (a running drain picks up what is added meanwhile)."""
        due = [self._next_at.get(c, 0.0) for c, lst in self._held.items()
               if lst and (c not in self._tasks or self._tasks[c].done())]
        if not due:
            return block_ms
        return max(0, min(block_ms, int((min(due) - time.monotonic()) * 1000)))

    async def _dispatch(self, deliveries: Iterable[Delivery]) -> None:
        """Hold the shipped events of pushing channels (per channel, in order); acknowledge
        the rest."""
        deliveries = [d for d in deliveries if (d.warehouse_id, d.stream_id) not in self._held_ids]
        if not deliveries:
            return
        channels: dict[str, Channel] | None = None
        acks: list[Delivery] = []
        for d in deliveries:
            cid = d.fields.get("c", "")
            if d.fields.get("t") != SHIPPED_EVENT or not cid:
                acks.append(d)
                continue
            if channels is None:
                channels = await self.store.channels(0.0)
            if not _pushes(channels.get(cid)):
                acks.append(d)
                continue
            self._held.setdefault(cid, []).append(d)
            self._held_ids.add((d.warehouse_id, d.stream_id))
        await self.events.ack(self.cfg.group, acks)

    def _kick(self) -> None:
        now = time.monotonic()
        for cid, lst in self._held.items():
            t = self._tasks.get(cid)
            if lst and (t is None or t.done()) and self._next_at.get(cid, 0.0) <= now:
                self._tasks[cid] = asyncio.create_task(self._drain(cid), name=f"ship-{cid}")

    async def _finish_tasks(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for cid, t in list(self._tasks.items()):
            if t.done():
                if not t.cancelled() and t.exception() is not None:
                    log.error("channel %s: shipment drain failed: %s", cid, t.exception())
                del self._tasks[cid]

    async def _drain(self, cid: str) -> None:
        """Push one channel's held deliveries in order until none are left, the channel
        backs off, or the worker stops."""
        lst = self._held.get(cid, [])
        while lst and not self.stop.is_set():
            d = lst[0]
            try:
                outcome = await self.handle(cid, d)
                if outcome == DONE:
                    await self.events.ack(self.cfg.group, [d])
            except Exception as e:  # noqa: BLE001 - Redis trouble: keep it pending, try later
                log.error("channel %s: event %s failed: %s", cid, d.stream_id, e)
                self._back_off(cid, None)
                return
            if outcome == RETRY:
                return
            lst.pop(0)
            self._held_ids.discard((d.warehouse_id, d.stream_id))
            # BUSY: another attempt holds a claim; the entry stays pending and the stale
            # sweep brings it back once that claim is pushed or has expired.

    # ---- one event --------------------------------------------------------------------------

    async def handle(self, cid: str, d: Delivery) -> str:
        """Push every shipment of the event's order; DONE (acknowledge), RETRY (keep it,
        the channel backs off) or BUSY (keep it pending, let it go from memory)."""
        ch = (await self.store.channels(1.0)).get(cid)
        if not _pushes(ch):
            return DONE
        assert ch is not None
        oid = d.fields.get("o", "")
        try:
            order = await self.store.get_order(oid)
        except (NotFoundError, ValueError):
            log.warning("channel %s: shipped order %r not found; nothing pushed", cid, oid[:64])
            return DONE
        ext = _external_order_id(order, ch)
        if ext is None:
            return DONE
        if isinstance(ext, PushError):
            await self._refused(ch.id, order.id, ext)
            return DONE
        conn = self._connector(ch)
        if conn is None:
            return DONE
        for s in order.shipments:
            outcome = await self._push_one(ch, conn, order, ext, s)
            if outcome != DONE:
                return outcome
        return DONE

    async def _push_one(self, ch: Channel, conn: Connector, order: Order, ext: str,
                        s: Shipment) -> str:
        token = f"claimed {self.cfg.consumer} {now_ms()}"
        for _ in range(2):  # the second try: a claim that vanished between SET NX and GET
            if await self.store.claim_shipment_push(ch.id, s.id, token, self.cfg.claim_ttl_s):
                break
            state = await self.store.shipment_push_state(ch.id, s.id)
            if state.startswith(("pushed ", "failed ")):
                self.skipped += 1
                return DONE
            if state:
                return BUSY
        else:
            return BUSY
        url = tracking_url(s, order.id, self.cfg.tracking_url_template)
        try:
            await conn.mark_shipped(ext, s.carrier, s.tracking_number, url, s.id,
                                    items=shipment_items(order, s))
        except PushError as e:
            if e.retryable:
                await self.store.release_shipment_push(ch.id, s.id, token)
                await self.store.note_shipment_failure(ch.id, f"{s.id}: {e.message}")
                self.retried += 1
                self._back_off(ch.id, e.retry_after_s)
                log.warning("channel %s: shipment %s not pushed, will retry: %s", ch.id, s.id,
                            e.message)
                return RETRY
            await self.store.confirm_shipment_push(
                ch.id, s.id, token, f"failed {self.cfg.consumer} {now_ms()} {e.message[:200]}",
                self.cfg.marker_ttl_s)
            await self._refused(ch.id, order.id, e, s.id)
            return DONE
        except Exception as e:  # a connector bug: keep the event, make it visible, back off
            await self.store.release_shipment_push(ch.id, s.id, token)
            await self.store.note_shipment_failure(ch.id, f"{s.id}: {type(e).__name__}: {e}")
            self.retried += 1
            self._back_off(ch.id, None)
            log.exception("channel %s: shipment %s: unexpected push error", ch.id, s.id)
            return RETRY
        if not await self.store.confirm_shipment_push(
                ch.id, s.id, token, f"pushed {self.cfg.consumer} {now_ms()}",
                self.cfg.marker_ttl_s):
            log.warning("channel %s: shipment %s pushed after its claim expired", ch.id, s.id)
        await self.store.note_shipment_pushed(ch.id)
        self.pushed += 1
        self._fails.pop(ch.id, None)
        log.info("channel %s: shipment %s of %s (order %s) pushed", ch.id, s.id, order.id, ext)
        return DONE

    async def _refused(self, cid: str, order_id: str, e: PushError, shipment_id: str = "") -> None:
        self.failed += 1
        await self.store.note_shipment_failure(cid, f"{shipment_id or order_id}: {e.message}")
        log.error("channel %s: shipment of %s refused for good: %s", cid, order_id, e.message)

    def _back_off(self, cid: str, retry_after_s: float | None) -> None:
        n = self._fails[cid] = self._fails.get(cid, 0) + 1
        delay = min(self.cfg.retry_max_s, self.cfg.retry_base_s * 2 ** min(n - 1, 30))
        if retry_after_s is not None:  # the channel said when: no sooner (an hour at most)
            delay = min(max(retry_after_s, 0.0), 3600.0)
        self._next_at[cid] = time.monotonic() + delay

    # ---- connectors -------------------------------------------------------------------------

    def _connector(self, ch: Channel) -> Connector | None:
        """The channel's connector, made again when the channel record changed; each channel
        has its own HTTP session (a slow shop's pool holds up no other)."""
        cached = self._connectors.get(ch.id)
        if cached is not None and cached[0] == ch:
            return cached[1]
        session = self._sessions.get(ch.id)
        if session is None or session.closed:
            session = self._sessions[ch.id] = aiohttp.ClientSession()
        conn = self._make_connector(ch, session)
        self._connectors[ch.id] = (ch, conn)
        return conn

    async def aclose(self) -> None:
        """Close the HTTP sessions (``run`` does it on its way out)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        self._connectors.clear()
        for s in sessions:
            await s.close()

    async def __aenter__(self) -> "ShipmentPusher":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._finish_tasks()
        await self.aclose()

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass


def shipment_items(order: Order, s: Shipment) -> dict[str, int] | None:
    """SKU -> units that ``s`` carries: the order's allocations in the shipment's warehouse
    (``s.skus`` lists each SKU once, so the quantities come from there), limited to ``s.skus``
    when it names any. None when the order has no allocation there (nothing to go by)."""
    wanted = set(s.skus)
    items: dict[str, int] = {}
    for a in order.allocations:
        if a.warehouse_id == s.warehouse_id and (not wanted or a.sku in wanted) \
                and a.quantity > 0:
            items[a.sku] = items.get(a.sku, 0) + a.quantity
    return items or None


def _pushes(ch: Channel | None) -> bool:
    return ch is not None and not ch.disabled and bool(ch.push.base_url)


def _external_order_id(order: Order, ch: Channel) -> str | PushError | None:
    """The platform's order id of ``order`` on ``ch``; None when the order did not come from
    that channel's webhook (nothing to push); a PushError when its key names another platform
    than the channel's (recorded as a refusal: pushing would reach the wrong kind of shop)."""
    parsed = parse_external_order_key(order.idempotency_key)
    if parsed is None:
        return None
    platform, cid, ext = parsed
    if cid != ch.id or order.channel != ch.id:
        return None
    kinds = _PLATFORM_KINDS.get(platform)
    speaks = (ch.kind in kinds) if kinds is not None else (
        ch.kind not in (ChannelKind.SHOPIFY, ChannelKind.WOOCOMMERCE))
    if not speaks:
        return PushError(False, None, f"order {order.id}: a {platform} order on a "
                                      f"{ch.kind.name.lower()} channel; not pushed")
    return ext
