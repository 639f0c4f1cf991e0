"""oms-channels' engine: keeps each channel's published stock equal to its available-to-sell.

``ChannelSync`` polls every warehouse's packed ``avail`` array and stock version; when a version
moved it diffs the arrays to find the SKUs whose availability changed, and marks them dirty
(with the time the change was seen) on every channel that sells from that warehouse and lists
the SKU. Each channel has its own ``ChannelPusher`` task (a slow or failing channel never holds
up another) that sends its dirty SKUs, batched, under these rules:

- at most one push in flight per SKU (a channel sends one batch at a time) and at most one push
  per SKU per ``min_interval_s``; changes meanwhile coalesce: the newest value wins;
- the value sent is read when the batch is sent, from the stock itself (``channel_levels``):
  a change seen while a push is in flight marks the SKU dirty again and it goes again after,
  with the newer value; sends are sequential per channel, so an older value never follows a
  newer one;
- 429 / 5xx / connection errors back the whole channel off (exponential, base 0.5 s, cap
  30 s, jitter), honouring ``Retry-After``; other refusals drop the SKUs until the next
  reconciliation and are recorded as the last error;
- Shopify compare-and-set: a stale answer (the shop sold units we have not seen yet) backs the
  SKU off and sends it again; after ``stale_limit`` stale answers in a row, unconditionally;
- reconciliation on start and every ``reconcile_s``: every listed SKU, through the same rules.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from oms.engine.channels import Channel
from oms.server.channels.availability import changed_ids, channel_levels
from oms.server.channels.connectors import (DEFAULT_TIMEOUT, Connector, PushError, StockUpdate,
                                            connector_for)
from oms.server.redis.base import now_ms
from oms.server.redis.channel_sync import SyncReport
from oms.server.redis.store import Store

log = logging.getLogger("oms.channels")

LAGS_KEPT = 1000


@dataclass(frozen=True)
class PushPolicy:
    min_interval_s: float = 1.0   # at most one push per SKU per this (seconds)
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    stale_limit: int = 3          # compare-stale answers before an unconditional set
    timeout: aiohttp.ClientTimeout = field(default=DEFAULT_TIMEOUT)


def backoff_s(policy: PushPolicy, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: [0.5, 1] × min(cap, base × 2^attempt)."""
    d = min(policy.backoff_cap_s, policy.backoff_base_s * (2 ** min(attempt, 30)))
    return d * (0.5 + 0.5 * rng.random())


class ChannelPusher:
    """One channel's dirty SKUs and the task that pushes them (see the module docstring)."""

    def __init__(self, store: Store, channel: Channel, connector: Connector,
                 policy: PushPolicy, rng: random.Random) -> None:
        self.store = store
        self.channel = channel
        self.connector = connector
        self.policy = policy
        self.rng = rng
        # SKU -> when the oldest change not yet pushed was seen (monotonic); None: only a
        # reconciliation wants it (no lag is counted for it).
        self.dirty: dict[str, float | None] = {}
        self.inflight: set[str] = set()
        self.last_sent: dict[str, float] = {}   # SKU -> monotonic time of its last send
        self.last_value: dict[str, int] = {}    # SKU -> the value the channel accepted
        self.stale: dict[str, int] = {}         # SKU -> compare-stale answers in a row
        self.not_before: dict[str, float] = {}  # SKU -> backoff after a stale answer
        self.blocked_until = 0.0                # channel backoff after 429/5xx/errors
        self.attempt = 0
        self.lags: collections.deque[float] = collections.deque(maxlen=LAGS_KEPT)
        self.pushes = 0          # since the last report
        self.failures = 0
        self.total_pushes = 0    # since start (Prometheus)
        self.total_failures = 0
        self.last_error = ""
        self.last_error_at = 0
        self.last_push_at = 0
        self.wake = asyncio.Event()
        self._stopped = False

    # -- what to push ---------------------------------------------------------------------

    def listed(self, skus: Iterable[str]) -> list[str]:
        """The SKUs of ``skus`` this channel publishes."""
        return [s for s in skus if self.connector.item_id(s) is not None]

    def mark(self, skus: Iterable[str], seen_at: float | None) -> None:
        """Mark SKUs dirty; the earliest unpushed change's time is kept (for the lag)."""
        n = 0
        for s in skus:
            if s in self.dirty:
                old = self.dirty[s]
                if seen_at is not None and (old is None or seen_at < old):
                    self.dirty[s] = seen_at
            else:
                self.dirty[s] = seen_at
            n += 1
        if n:
            self.wake.set()

    @property
    def pending(self) -> int:
        return len(self.dirty) + len(self.inflight)

    @property
    def idle(self) -> bool:
        """Nothing dirty or in flight (``--once`` waits for this)."""
        return not self.dirty and not self.inflight

    def _due(self, now: float) -> tuple[list[str], float]:
        """(the next batch, or [] and the seconds until one may be due)."""
        if now < self.blocked_until:
            return [], self.blocked_until - now
        iv = self.policy.min_interval_s
        batch: list[str] = []
        wait = 1.0
        # With compare-and-set, SKUs whose channel value we know go in batches of their own
        # (the API's "ignore compare" flag is per request).
        known: bool | None = None
        for s in self.dirty:
            ready = max(self.last_sent.get(s, -1e18) + iv, self.not_before.get(s, 0.0))
            if ready > now:
                wait = min(wait, ready - now)
                continue
            if self.connector.has_compare:
                k = self._compare(s) is not None
                if known is None:
                    known = k
                elif k != known:
                    continue
            batch.append(s)
            if len(batch) >= self.connector.max_batch:
                break
        return batch, wait

    def _compare(self, sku: str) -> int | None:
        if self.stale.get(sku, 0) >= self.policy.stale_limit:
            return None
        return self.last_value.get(sku)

    # -- the task ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopped = True
        self.wake.set()

    async def run(self) -> None:
        while not self._stopped:
            batch, wait = self._due(time.monotonic())
            if not batch:
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=max(wait, 0.001))
                except TimeoutError:
                    pass
                continue
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug or Redis error must not kill the task
                log.exception("channel %s: push failed", self.channel.id)
                self._failed(f"{type(e).__name__}: {e}", True, None)
                await asyncio.sleep(0.1)

    async def _send(self, batch: list[str]) -> None:
        seen = {s: self.dirty.pop(s) for s in batch}
        self.inflight.update(batch)
        try:
            try:
                levels, _ = await channel_levels(self.store, self.channel, batch)
            except Exception:
                self.mark_seen(seen)  # not sent: the SKUs stay dirty
                raise
            updates = [StockUpdate(sku=lv.sku, item_id=self.connector.item_id(lv.sku) or lv.sku,
                                   quantity=lv.available_to_sell, version=lv.version,
                                   compare=self._compare(lv.sku) if self.connector.has_compare
                                   else None)
                       for lv in levels]
            sent_at = time.monotonic()
            for s in batch:
                self.last_sent[s] = sent_at
            try:
                res = await self.connector.set_stock(updates)
            except PushError as e:
                self._failed(e.message, e.retryable, e.retry_after_s)
                if e.retryable:
                    self.mark_seen(seen)
                return
        finally:
            self.inflight.difference_update(batch)
        now = time.monotonic()
        by_sku = {u.sku: u for u in updates}
        self.attempt = 0
        for s in res.accepted:
            self.last_value[s] = by_sku[s].quantity
            self.stale.pop(s, None)
            self.not_before.pop(s, None)
            t = seen.get(s)
            if t is not None:
                self.lags.append((now - t) * 1000.0)
        if res.accepted:
            self.pushes += len(res.accepted)
            self.total_pushes += len(res.accepted)
            self.last_push_at = now_ms()
        for s in res.stale:
            n = self.stale.get(s, 0) + 1
            self.stale[s] = n
            self.not_before[s] = now + backoff_s(self.policy, n - 1, self.rng)
        if res.stale:
            self._failed(f"compare quantity stale for {len(res.stale)} SKU(s), e.g. "
                         f"{res.stale[0][:40]}", True, None, back_off=False)
        for s, msg in res.errors.items():
            self._failed(f"{s[:40]}: {msg}", False, None)
        done = set(res.accepted) | set(res.errors)
        self.mark_seen({s: t for s, t in seen.items() if s not in done})

    def mark_seen(self, seen: dict[str, float | None]) -> None:
        """Put SKUs back, keeping the time their change was first seen."""
        for s, t in seen.items():
            self.mark((s,), t)

    def _failed(self, message: str, retryable: bool, retry_after_s: float | None,
                back_off: bool = True) -> None:
        self.failures += 1
        self.total_failures += 1
        self.last_error = message
        self.last_error_at = now_ms()
        log.warning("channel %s: %s", self.channel.id, message)
        if retryable and back_off:
            d = backoff_s(self.policy, self.attempt, self.rng)
            if retry_after_s is not None:
                d = retry_after_s
            self.attempt += 1
            self.blocked_until = time.monotonic() + d

    # -- reporting ------------------------------------------------------------------------

    def lag_percentiles(self) -> tuple[float, float]:
        if not self.lags:
            return 0.0, 0.0
        a = np.fromiter(self.lags, dtype=np.float64)
        return float(np.percentile(a, 50)), float(np.percentile(a, 99))

    def take_report(self) -> SyncReport:
        """Counter deltas since the last report, and the current figures."""
        p50, p99 = self.lag_percentiles()
        rep = SyncReport(self.channel.id, pushes=self.pushes, failures=self.failures,
                         pending=self.pending, lag_ms_p50=p50, lag_ms_p99=p99,
                         last_error=self.last_error, last_error_at=self.last_error_at,
                         last_push_at=self.last_push_at)
        self.pushes = self.failures = 0
        return rep


@dataclass
class _Running:
    pusher: ChannelPusher
    session: aiohttp.ClientSession
    task: asyncio.Task[None]


class ChannelSync:
    """Every channel's pusher, the change poller, reconciliation and the reports."""

    def __init__(self, store: Store, *, poll_s: float = 0.1, reconcile_s: float = 300.0,
                 policy: PushPolicy | None = None, report_s: float = 1.0, seed: int = 0,
                 metrics: object | None = None) -> None:
        self.store = store
        self.poll_s = poll_s
        self.reconcile_s = reconcile_s
        self.report_s = report_s
        self.policy = policy or PushPolicy()
        self.rng = random.Random(seed)
        self.metrics = metrics  # a ChannelMetrics (server/jobs/channel_sync.py) or None
        self.running: dict[str, _Running] = {}
        self._prev: dict[str, tuple[int, bytes]] = {}  # warehouse -> (version, avail)
        self._id_sku: dict[int, str] = {}
        self._enabled: tuple[str, ...] | None = None

    def pusher(self, channel_id: str) -> ChannelPusher | None:
        r = self.running.get(channel_id)
        return r.pusher if r else None

    # -- channels -------------------------------------------------------------------------

    async def refresh_channels(self) -> None:
        """Start a pusher for each new pushable channel, replace one whose record changed
        (it reconciles), stop one that went away or was disabled."""
        wanted = {c.id: c for c in (await self.store.channels(max_age_s=1.0)).values()
                  if c.push.base_url and not c.disabled}
        for cid in list(self.running):
            if cid not in wanted or wanted[cid] != self.running[cid].pusher.channel:
                await self._stop(cid)
        for cid, ch in wanted.items():
            if cid not in self.running:
                session = aiohttp.ClientSession(timeout=self.policy.timeout)
                conn = connector_for(ch, session, self.policy.timeout)
                if conn is None:
                    await session.close()
                    continue
                p = ChannelPusher(self.store, ch, conn, self.policy,
                                  random.Random(self.rng.random()))
                self.running[cid] = _Running(p, session, asyncio.create_task(
                    p.run(), name=f"oms-channels:{cid}"))
                await self._reconcile(p)

    async def _stop(self, cid: str) -> None:
        r = self.running.pop(cid)
        r.pusher.stop()
        r.task.cancel()
        await asyncio.gather(r.task, return_exceptions=True)
        await r.session.close()

    async def close(self) -> None:
        for cid in list(self.running):
            await self._stop(cid)

    # -- reconciliation and change detection -------------------------------------------------

    async def _skus(self, refresh: bool = False) -> dict[int, str]:
        if refresh or not self._id_sku:
            self._id_sku = {i: s for s, i in (await self.store.all_sku_ids()).items()}
        return self._id_sku

    async def _reconcile(self, p: ChannelPusher) -> None:
        items = p.channel.push.sku_items
        skus = list(items) if items else list((await self._skus(refresh=True)).values())
        p.mark(p.listed(skus), None)

    async def reconcile_all(self) -> None:
        for r in list(self.running.values()):
            await self._reconcile(r.pusher)

    async def poll(self) -> None:
        """One look at every warehouse's availability: mark the SKUs that changed."""
        seen_at = time.monotonic()
        whs = await self.store.warehouses(max_age_s=5.0)
        ids = [w.id for w in whs]
        enabled = tuple(sorted(w.id for w in whs if not w.disabled))
        # versions first; the arrays only of the warehouses whose version moved
        seqs = (await self.store.stock_versions(ids)).tolist()
        moved = [w for w, v in zip(ids, seqs) if w not in self._prev or self._prev[w][0] != v]
        arrays, versions = await self.store.read_avail_arrays(moved)
        if self._enabled is not None and enabled != self._enabled:
            await self.reconcile_all()  # a warehouse came or went: every ATS may have moved
        self._enabled = enabled
        changed: dict[str, set[int]] = {}
        for w, arr, ver in zip(moved, arrays, versions.tolist()):
            prev = self._prev.get(w)
            self._prev[w] = (ver, arr)
            if prev is None or prev[0] == ver:
                continue
            diff = changed_ids(prev[1], arr)
            if diff.size:
                changed[w] = set(diff.tolist())
        if not changed:
            return
        id_sku = await self._skus()
        if any(i not in id_sku for ids_ in changed.values() for i in ids_):
            id_sku = await self._skus(refresh=True)
        for r in self.running.values():
            p = r.pusher
            mine: set[int] = set()
            for w, ids_ in changed.items():
                if p.channel.allows(w):
                    mine |= ids_
            if mine:
                p.mark(p.listed(id_sku[i] for i in mine if i in id_sku), seen_at)

    async def report(self) -> None:
        reps = [r.pusher.take_report() for r in self.running.values()]
        await self.store.report_sync(reps)
        if self.metrics is not None:
            self.metrics.update([r.pusher for r in self.running.values()])  # type: ignore[attr-defined]

    # -- loops ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: poll, push, reconcile every ``reconcile_s``, report every
        ``report_s``. Redis errors are logged and retried on the next poll."""
        next_reconcile = time.monotonic() + self.reconcile_s
        next_report = 0.0
        next_channels = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now >= next_channels:
                        await self.refresh_channels()
                        next_channels = now + 1.0
                    await self.poll()
                    if now >= next_reconcile:
                        await self.reconcile_all()
                        next_reconcile = now + self.reconcile_s
                    if now >= next_report:
                        await self.report()
                        next_report = now + self.report_s
                except Exception:  # noqa: BLE001 - keep the worker alive over Redis hiccups
                    log.exception("oms-channels round failed")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
                except TimeoutError:
                    pass
        finally:
            try:
                await self.report()
            except Exception:  # noqa: BLE001
                log.exception("final report failed")
            await self.close()

    async def run_once(self, deadline_s: float = 60.0) -> bool:
        """One reconciliation of every channel, then return when every pusher is idle (True)
        or after ``deadline_s`` (False)."""
        end = time.monotonic() + deadline_s
        try:
            await self.refresh_channels()
            await self.poll()
            while time.monotonic() < end:
                if all(r.pusher.idle for r in self.running.values()):
                    return True
                await asyncio.sleep(0.02)
            return False
        finally:
            await self.report()
            await self.close()
