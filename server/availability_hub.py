"""AvailabilityHub: every WatchAvailability stream of a server process is fed by ONE shared
poller (modelled on server/events_hub.py).

Why one: a watcher that polled the stock itself would cost a Redis round trip per watcher
every interval; N watchers of the same warehouses would read the same arrays N times.

- The poller runs while at least one watcher is subscribed (started by the first, stopped when
  the last leaves). Every ``interval_s`` it reads each warehouse's stock version (one GET per
  warehouse, one pipeline); only for the warehouses whose version moved does it read the packed
  ``avail`` array (``Store.read_avail_arrays``), diff it against the previous one and hand the
  changed sku ids and warehouses to every subscriber. The first read is the baseline: nothing
  is notified for it, and a watcher subscribes before it reads its snapshot, so every change
  after the snapshot is notified (a change both in the snapshot and notified is recomputed to
  the same value and not sent twice: the watcher sends only what differs from what it sent).
- A notification is only a hint of WHICH SKUs changed: each watcher recomputes their levels
  from the stock hashes (``channel_levels``: the truth), so a stream never disagrees with
  GetAvailability.
- Each subscriber's backlog is a set of sku ids (coalesced: a SKU that changed ten times while
  the watcher was busy is recomputed once, with its newest value), bounded by
  ``pending_limit``: past it the backlog collapses to "everything changed".
- At most ``max_per_key`` open streams per API key (RESOURCE_EXHAUSTED beyond).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from oms.engine.channels import Channel
from oms.engine.errors import ResourceExhaustedError
from oms.server.channels.availability import Level, changed_ids, channel_levels
from oms.server.redis.store import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.1
DEFAULT_MAX_PER_KEY = 1000
DEFAULT_PENDING_LIMIT = 100_000  # sku ids waiting for one watcher; past it: "everything"


class Change:
    """What one subscriber has not yet handled: changed sku ids (or all) in some warehouses."""
    __slots__ = ("ids", "everything", "warehouses")

    def __init__(self) -> None:
        self.ids: set[int] = set()
        self.everything = False
        self.warehouses: set[str] = set()


class Subscriber:
    __slots__ = ("limit", "pending", "wake")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = Change()
        self.wake = asyncio.Event()

    def offer(self, ids: np.ndarray, warehouses: set[str]) -> None:
        p = self.pending
        p.warehouses |= warehouses
        if not p.everything:
            p.ids.update(ids.tolist())
            if len(p.ids) > self.limit:  # coalesce the backlog: recompute every watched SKU
                p.everything = True
                p.ids = set()
        self.wake.set()

    async def take(self) -> Change:
        """The backlog, waiting until there is one."""
        while not self.pending.warehouses:
            self.wake.clear()
            await self.wake.wait()
        out, self.pending = self.pending, Change()
        return out


class AvailabilityHub:
    def __init__(self, store: Store, *, interval_s: float = DEFAULT_INTERVAL_S,
                 max_per_key: int = DEFAULT_MAX_PER_KEY,
                 pending_limit: int = DEFAULT_PENDING_LIMIT) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_per_key = max_per_key
        self.pending_limit = pending_limit
        self._subs: set[Subscriber] = set()
        self._per_key: dict[str, int] = {}
        self._arrays: dict[str, tuple[int, bytes]] = {}  # warehouse -> (version, avail)
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()
        self.polls = 0  # rounds the poller has read (tests: it runs, and it stops)

    @property
    def watchers(self) -> int:
        return len(self._subs)

    @property
    def polling(self) -> bool:
        return self._task is not None or bool(self._ending)

    @contextlib.asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscriber]:
        """A subscription for one stream of API key ``key``, live inside the ``async with``.
        The poller has its baseline when the subscriber is handed out: every stock change
        after that is offered to it."""
        n = self._per_key.get(key, 0)
        if n >= self.max_per_key:
            raise ResourceExhaustedError(
                f"{n} availability watch streams are open for this API key, at most "
                f"{self.max_per_key} (max_watchers); retry later")
        self._per_key[key] = n + 1
        sub = Subscriber(self.pending_limit)
        self._subs.add(sub)
        try:
            await self._start()
            yield sub
        finally:
            self._subs.discard(sub)
            left = self._per_key[key] - 1
            if left:
                self._per_key[key] = left
            else:
                del self._per_key[key]
            if not self._subs:
                self._stop()

    async def close(self) -> None:
        """Stop the poller now (server shutdown)."""
        self._stop()
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)

    # ---- the poller ---------------------------------------------------------------------

    async def _start(self) -> None:
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._ready = ready = loop.create_future()
            self._task = loop.create_task(self._poll(ready), name="availability-hub-poller")
        assert self._ready is not None
        # shielded: a watcher that goes away while waiting must not cancel the others' wait
        await asyncio.shield(self._ready)

    def _stop(self) -> None:
        task, self._task, self._ready = self._task, None, None
        if task is not None and not task.done():
            task.cancel()
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _read(self, notify: bool) -> None:
        """One round: versions of every warehouse, the arrays of those that moved, the diff."""
        whs = [w.id for w in await self.store.warehouses()]
        seqs = await self.store.stock_versions(whs)
        moved = [w for w, s in zip(whs, seqs.tolist()) if self._arrays.get(w, (-1, b""))[0] != s]
        self.polls += 1
        if not moved:
            return
        arrays, versions = await self.store.read_avail_arrays(moved)
        ids: list[np.ndarray] = []
        for w, raw, v in zip(moved, arrays, versions.tolist()):
            # a warehouse that appeared after the baseline: every stocked SKU of it is new
            old = self._arrays.get(w, (0, b""))[1]
            self._arrays[w] = (v, raw)
            ids.append(changed_ids(old, raw))
        if not notify or self._task is not asyncio.current_task():
            return  # the baseline, or a stopped poller: it hands out nothing
        changed = np.unique(np.concatenate(ids))
        if changed.size:  # on_hand and reserved moved together: available did not change
            wset = set(moved)
            for sub in list(self._subs):
                sub.offer(changed, wset)

    async def _poll(self, ready: asyncio.Future[None]) -> None:
        self._arrays = {}
        try:
            await self._read(notify=False)
        except Exception as e:  # noqa: BLE001 - handed to the watchers waiting for it
            ready.set_exception(e)
            ready.exception()  # retrieved here too: no "never retrieved" warning
            if self._task is asyncio.current_task():
                self._task = self._ready = None  # the next watcher starts a new one
            return
        ready.set_result(None)
        failures = 0
        while self._task is asyncio.current_task():
            await asyncio.sleep(self.interval_s if not failures
                                else min(5.0, 0.05 * 2 ** failures))
            try:
                await self._read(notify=True)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the poller outlives a Redis outage
                failures += 1
                if failures == 1:
                    log.warning("availability hub: reading stock versions failed (%s); "
                                "retrying", e)
                continue
            if failures:
                log.info("availability hub: reading stock versions again")
                failures = 0


@dataclass(frozen=True)
class Update:
    levels: list[Level]
    version: int
    snapshot: bool


async def watch_levels(hub: AvailabilityHub, channel: Channel, skus: Sequence[str],
                       after_version: int, key: str, recheck_s: float = 1.0
                       ) -> AsyncIterator[Update]:
    """The levels of ``skus`` (empty: every registered SKU, including any registered later)
    of ``channel``: a snapshot unless ``after_version`` is the channel's version now, then one
    Update per observed change set with only the SKUs whose available_to_sell or
    network_available differ from what was sent. The channel's record is looked at again every
    ``recheck_s`` (from the store's shared cache): a new share, safety stock or disabled flag
    is sent as a change of every watched SKU."""
    store = hub.store
    async with hub.subscribe(key) as sub:
        every = not skus
        ids = await (store.all_sku_ids() if every else store.sku_ids(skus))
        names = {i: s for s, i in ids.items()}
        watched = sorted(ids) if every else list(skus)
        unresolved = set() if every else set(skus) - set(ids)
        levels, version = await channel_levels(store, channel, watched)
        last = {x.sku: (x.available_to_sell, x.network_available) for x in levels}
        if after_version != version:
            yield Update(levels, version, True)
        while True:
            try:
                change = await asyncio.wait_for(sub.take(), recheck_s)
            except asyncio.TimeoutError:
                change = None
            fresh = (await store.channels(recheck_s)).get(channel.id, channel)
            if fresh.updated_at != channel.updated_at:
                channel, change = fresh, Change()
                change.everything = True
            if change is None:
                continue
            if change.everything:
                todo = list(watched)
            elif not any(channel.allows(w) for w in change.warehouses):
                continue  # other warehouses' stock: not this channel's
            else:
                if (every or unresolved) and any(i not in names for i in change.ids):
                    # SKUs registered since: every-SKU watchers take them on, others resolve
                    # the ids of the SKUs they asked for that had none yet
                    found = await (store.all_sku_ids() if every else store.sku_ids(unresolved))
                    for s, i in found.items():
                        if i not in names:
                            names[i] = s
                            unresolved.discard(s)
                            if every:
                                watched.append(s)
                todo = sorted(names[i] for i in change.ids if i in names)
            if not todo:
                continue
            levels, version = await channel_levels(store, channel, todo)
            out = []
            for x in levels:
                now = (x.available_to_sell, x.network_available)
                if last.get(x.sku) != now:
                    last[x.sku] = now
                    out.append(x)
            if out:
                yield Update(out, version, False)
