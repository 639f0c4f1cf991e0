"""EventHub: every WatchOrderEvents stream of a server process is fed by ONE shared tailer.

Why: a watcher that blocks in XREAD holds a Redis connection the whole time; with one
blocking read per watcher, 64 watchers took every connection of the request pool and every
other RPC waited 30 s and failed. Now:

- One tailer task per process reads every shard stream (one non-blocking XREAD per stream in
  one pipeline, again after ``events.POLL_MS`` when a round found nothing: a cluster refuses a
  multi-stream XREAD, and a blocking read per stream would take a connection per warehouse)
  on a connection of its own (``Store.event_tail``, outside the request pool; on a cluster
  the store's per-node pools) and hands each batch of events to the subscribers' queues. It re-lists the warehouses on every read (cached for a second), so a
  shard that appears at runtime is read from its first event. It runs while at least one
  stream is open and stops (closing its connection) when the last one ends.
- A watcher resuming from an ``after_event_id`` first reads the history after it in pages
  (short, non-blocking reads on the request pool), then subscribes; at that moment it takes
  the tailer's position and reads history up to exactly there, and everything after comes
  from the fan-out. Events are delivered in id (time) order, at least once: an event the
  history and the fan-out both hold is delivered once (per shard, nothing at or below the
  last delivered id is delivered again).
- Each subscriber's queue is bounded (``queue_limit`` events): a watcher that cannot keep up
  is dropped with RESOURCE_EXHAUSTED naming the event id to resume from, instead of letting
  the queue grow.
- At most ``max_watchers`` streams per process (RESOURCE_EXHAUSTED beyond).
- A watcher of a channel-bound key gets only its channels' events (every event carries its
  order's channel), filtered per watcher; an unbound watcher pays one check per batch.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator

from oms.engine.errors import ResourceExhaustedError, ValidationError, quote
from oms.engine.models import OrderEvent
from oms.server import validation as val
from oms.server.redis.events import EVENT_ID_FORMAT, parse_event_id, sid_key
from oms.server.redis.store import Store

log = logging.getLogger(__name__)

DEFAULT_MAX_WATCHERS = 1000
DEFAULT_QUEUE_LIMIT = 10_000  # events waiting for one watcher; more and it is dropped
PAGE = 500  # events per history read


def check_watch_request(after_event_id: str, order_id: str) -> None:
    """ValidationError unless ``after_event_id`` is "", "0" or an event id (numbers of
    ASCII digits that fit in 64 bits, a valid warehouse id) and ``order_id`` is empty or an
    order id."""
    if after_event_id not in ("", "0"):
        try:
            parse_event_id(after_event_id)
        except ValueError:
            raise ValidationError.one(
                "after_event_id", f"{quote(after_event_id)} is not an event id: expected "
                                  f'{EVENT_ID_FORMAT}, "" (new events) or "0" (all)') from None
    if order_id:
        val.require_pattern(order_id, val.ORDER_ID_RE, "order_id", "order id")


class _Subscriber:
    __slots__ = ("order_id", "channels", "limit", "queue", "wake", "dropped")

    def __init__(self, order_id: str, limit: int, channels: frozenset[str] = frozenset()
                 ) -> None:
        self.order_id = order_id
        self.channels = channels
        self.limit = limit
        self.queue: deque[OrderEvent] = deque()
        self.wake = asyncio.Event()
        self.dropped = False

    def offer(self, batch: list[OrderEvent]) -> bool:
        """Queue the batch's events for this watcher; False if that would pass its limit."""
        if self.order_id:
            batch = [e for e in batch if e.order_id == self.order_id]
        if self.channels:
            batch = [e for e in batch if e.channel in self.channels]
        if not batch:
            return True
        if len(self.queue) + len(batch) > self.limit:
            return False
        self.queue.extend(batch)
        self.wake.set()
        return True

    def drop(self) -> None:
        self.dropped = True
        self.queue.clear()
        self.wake.set()

    async def take(self) -> list[OrderEvent]:
        """Everything queued, waiting for at least one event; [] once dropped."""
        while not self.queue and not self.dropped:
            self.wake.clear()
            await self.wake.wait()
        out = list(self.queue)
        self.queue.clear()
        return out


class EventHub:
    def __init__(self, store: Store, *, max_watchers: int = DEFAULT_MAX_WATCHERS,
                 queue_limit: int = DEFAULT_QUEUE_LIMIT, block_ms: int = 1000) -> None:
        self.store = store
        self.max_watchers = max_watchers
        self.queue_limit = queue_limit
        self.block_ms = block_ms
        self._subs: set[_Subscriber] = set()
        self._watchers = 0
        self._cursor: dict[str, str] = {}  # the tailer's position: warehouse -> stream id
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()  # cancelled tailers not finished yet

    @property
    def watchers(self) -> int:
        """Open watch streams (catching up or live)."""
        return self._watchers

    @property
    def live(self) -> int:
        """Watch streams subscribed to the tailer."""
        return len(self._subs)

    @property
    def tailing(self) -> bool:
        """Whether a tailer (and its Redis connection) exists."""
        return self._task is not None or bool(self._ending)

    async def watch(self, after_event_id: str, order_id: str = "",
                    channels: frozenset[str] = frozenset()) -> AsyncIterator[OrderEvent]:
        """The events after ``after_event_id`` ("" = from now, "0" = from the start), only
        those of ``order_id`` if given, only those of ``channels`` if any (a channel-bound
        key's), until the caller stops iterating."""
        check_watch_request(after_event_id, order_id)
        if self._watchers >= self.max_watchers:
            raise ResourceExhaustedError(
                f"{self._watchers} watch streams are open, at most {self.max_watchers} per "
                "server process (max_watchers); retry later")
        self._watchers += 1
        sub: _Subscriber | None = None
        last = after_event_id  # the id to resume from if this watcher is dropped
        try:
            await self._start()
            pos: dict[str, str] = {}
            if after_event_id:
                pos = await self.store.event_cursor(after_event_id)
                # Far behind: history alone, towards wherever the tailer is now.
                done = False
                while not done:
                    page, done = await self.store.read_events_upto(pos, dict(self._cursor), PAGE)
                    for e in page:
                        if ((not order_id or e.order_id == order_id)
                                and (not channels or e.channel in channels)):
                            last = e.event_id
                            yield e
            sub = _Subscriber(order_id, self.queue_limit, channels)
            self._subs.add(sub)
            upto = dict(self._cursor)  # taken with the subscription: the fan-out is after it
            if after_event_id:
                done = False
                while not done:
                    page, done = await self.store.read_events_upto(pos, upto, PAGE)
                    for e in page:
                        if ((not order_id or e.order_id == order_id)
                                and (not channels or e.channel in channels)):
                            last = e.event_id
                            yield e
            else:
                pos = upto
                last = _resume_id(upto)
            while True:
                batch = await sub.take()
                if sub.dropped:
                    raise ResourceExhaustedError(
                        f"watcher too slow: more than {self.queue_limit} events waiting; resume "
                        f"with after_event_id={last}")
                for e in batch:
                    sid, _, wid = e.event_id.partition("@")
                    seen = pos.get(wid)
                    if seen is not None and sid_key(sid) <= sid_key(seen):
                        continue  # delivered from history already
                    pos[wid] = sid
                    last = e.event_id
                    yield e
        finally:
            self._watchers -= 1
            if sub is not None:
                self._subs.discard(sub)
            if self._watchers == 0:
                self._stop()

    async def close(self) -> None:
        """Stop the tailer now (server shutdown); open watchers get no more events."""
        self._stop()
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)

    # ---- the tailer ---------------------------------------------------------------------

    async def _start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._ready = ready = loop.create_future()
            self._task = loop.create_task(self._tail(ready), name="event-hub-tailer")
        assert self._ready is not None
        # shielded: a watcher that goes away while waiting must not cancel the others' wait
        await asyncio.shield(self._ready)

    def _stop(self) -> None:
        task, self._task, self._ready = self._task, None, None
        if task is not None and not task.done():
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _tail(self, ready: asyncio.Future[None]) -> None:
        tail = self.store.event_tail()
        try:
            try:
                cursor = await self.store.event_cursor("")
            except Exception as e:  # noqa: BLE001 - handed to the watchers waiting for it
                ready.set_exception(e)
                ready.exception()  # retrieved here too: no "never retrieved" warning
                if self._task is asyncio.current_task():
                    self._task = self._ready = None  # the next watcher starts a new one
                return
            self._cursor = cursor
            ready.set_result(None)
            failures = 0
            # Stopping is a cancel, and this check: redis-py can absorb a cancellation that
            # lands while a read is being torn down, so the loop also ends once it is no
            # longer the hub's tailer (within one block_ms).
            while self._task is asyncio.current_task():
                try:
                    batch = await tail.read(cursor, self.block_ms)
                except Exception as e:  # noqa: BLE001 - the tailer outlives a Redis outage
                    failures += 1
                    if failures == 1:
                        log.warning("event hub: reading events failed (%s); retrying", e)
                    await asyncio.sleep(min(5.0, 0.05 * 2 ** failures))
                    continue
                if failures:
                    log.info("event hub: reading events again")
                    failures = 0
                if batch and self._task is asyncio.current_task():  # a stopped one hands out nothing
                    self._fan_out(batch)
        finally:
            await tail.aclose()

    def _fan_out(self, batch: list[OrderEvent]) -> None:
        for sub in list(self._subs):
            if not sub.offer(batch):
                sub.drop()
                self._subs.discard(sub)


def _resume_id(cursor: dict[str, str]) -> str:
    """An event id to resume a watcher from that started at ``cursor`` and got nothing yet:
    the shard furthest behind, since a resume re-reads the other shards from that event's
    millisecond on. Empty shards ("0-0") do not count: whatever they get later is newer than
    every event read so far. "0" if every shard is empty."""
    started = {w: sid for w, sid in cursor.items() if sid_key(sid) > (0, 0)}
    if not started:
        return "0"
    wid = min(started, key=lambda w: sid_key(started[w]))
    return f"{started[wid]}@{wid}"
