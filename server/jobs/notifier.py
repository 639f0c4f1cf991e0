"""The notification worker's loop: reads order events through the consumer group, composes
each e-mail, claims its de-duplication key, sends it, acknowledges the event (see
server/jobs/notify.py for the delivery guarantees)."""
from __future__ import annotations

import asyncio
import logging
import smtplib
import time

from oms.engine.errors import NotFoundError
from oms.server.auth.principal import acting_as
from oms.server.jobs.notify_compose import KINDS, Composer, Event, build_message, mask
from oms.server.jobs.notify_config import NotifyConfig
from oms.server.jobs.smtp_mailer import Mailer, PermanentSendError
from oms.server.redis.notifications import Delivery, Notifications
from oms.server.redis.store import Store, now_ms

log = logging.getLogger("oms.notify")

ACTOR = "system:oms-notify"  # the actor of the events the worker writes (order.followup)


class Notifier:
    def __init__(self, store: Store, notes: Notifications, mailer: Mailer, cfg: NotifyConfig,
                 stop: asyncio.Event) -> None:
        self.store, self.notes, self.mailer, self.cfg, self.stop = store, notes, mailer, cfg, stop
        self.composer = Composer(cfg.tracking_url_template, cfg.review_url_template)
        self._followups = cfg.followups
        self._grouped: set[str] = set()
        self._last_sweep = 0.0
        self.sent = self.skipped = self.failed = 0
        self._smtp_down = False

    async def warehouses(self) -> list[str]:
        wids = [w.id for w in await self.store.warehouses(0.0)]
        new = [w for w in wids if w not in self._grouped]
        if new:
            await self.notes.ensure_groups(new, self.cfg.group, self.cfg.group_start)
            self._grouped.update(new)
            if len(self._grouped) == len(new):  # first time: tidy up consumers of old runs
                await self.notes.prune_consumers(self.cfg.group, wids)
        return wids

    async def followups(self, wids: list[str]) -> int:
        n = 0
        with acting_as(ACTOR):
            for w in wids:
                n += len(await self.store.pop_followups(w, now_ms()))
        if n:
            log.info("follow-ups due: %d review request(s) scheduled", n)
        return n

    async def process(self, deliveries: list[Delivery]) -> None:
        """Handle events one at a time; stops early on SIGTERM or when SMTP is failing (the
        rest stay pending and are taken over by a later stale-claim sweep)."""
        for d in deliveries:
            if self.stop.is_set() or self._smtp_down:
                return
            if await self.handle(d):
                await self.notes.ack(self.cfg.group, [d])

    async def handle(self, d: Delivery) -> bool:
        """Process one event; True when it may be acknowledged."""
        if not d.fields:  # trimmed from the stream while pending: nothing left to send
            return True
        ev = Event.of(d)
        if ev.type not in KINDS:
            return True
        try:
            order = await self.store.get_order(ev.order_id)
        except NotFoundError:
            log.warning("event %s: order %r not found, no e-mail", ev.id, ev.order_id)
            return True
        email = order.customer.email.strip()
        if not email or "@" not in email:
            return True  # no (usable) address: nothing to send
        try:
            products = await self.store.products({ln.sku for ln in order.lines})
            mail = self.composer.compose(ev, order, products)
            msg = build_message(mail, ev, order, self.cfg.from_address) if mail else None
        except Exception:  # a bug or bad data: retrying would fail the same way
            log.exception("event %s (%s of %s): could not compose the e-mail; dropped", ev.id,
                          ev.type, ev.order_id)
            return True
        if mail is None or msg is None:
            return True
        ttl = self.cfg.dedupe_ttl_s
        if not await self.notes.claim_send(mail.dedupe_key, ttl):
            self.skipped += 1
            log.info("event %s: %s e-mail for %s already sent (or claimed); skipped", ev.id,
                     mail.kind, order.id)
            return True
        try:
            await asyncio.to_thread(self.mailer.send, msg)
        except PermanentSendError as e:
            await self.notes.mark_sent(mail.dedupe_key, ttl, note="failed")
            self.failed += 1
            log.error("event %s: %s e-mail for %s refused for good: %s", ev.id, mail.kind,
                      order.id, e)
            return True
        except (smtplib.SMTPException, OSError) as e:
            await self.notes.release_send(mail.dedupe_key)
            self.failed += 1
            self._smtp_down = True
            log.error("event %s: %s e-mail for %s to %s failed, will retry: %s", ev.id, mail.kind,
                      order.id, mask(email), e)
            return False
        await self.notes.mark_sent(mail.dedupe_key, ttl)
        self.sent += 1
        log.info("sent %s e-mail for %s to %s (event %s)", mail.kind, order.id, mask(email), ev.id)
        return True

    async def step(self, *, block_ms: int, sweep: bool | None = None) -> int:
        """One round: follow-ups, the stale-claim sweep (when due, or as ``sweep`` says), one
        read. Returns the number of events handled."""
        wids = await self.warehouses()
        if not wids:
            await self._sleep(block_ms / 1000)
            return 0
        if self._followups:
            await self.followups(wids)
        handled = 0
        sweep_every = min(30.0, max(1.0, self.cfg.claim_idle_ms / 2000))
        if sweep is None:
            sweep = time.monotonic() - self._last_sweep >= sweep_every
        if sweep:
            self._last_sweep = time.monotonic()
            stale = await self.notes.claim_stale(self.cfg.group, self.notes.consumer, wids,
                                                 self.cfg.claim_idle_ms, count=self.cfg.batch)
            if stale:
                log.info("took over %d stale pending event(s)", len(stale))
            await self.process(stale)
            handled += len(stale)
        if self.stop.is_set() or self._smtp_down:
            return handled
        new = await self.notes.read(self.cfg.group, self.notes.consumer, wids,
                                    count=self.cfg.batch, block_ms=block_ms)
        await self.process(new)
        return handled + len(new)

    async def run(self) -> int:
        if self.cfg.once:
            await self.step(block_ms=0, sweep=True)
            self._followups = False  # scheduled once above
            while not self.stop.is_set() and not self._smtp_down:
                if not await self.step(block_ms=0, sweep=False):
                    break
            self._summary()
            return 1 if self._smtp_down else 0
        backoff = 1.0
        while not self.stop.is_set():
            try:
                await self.step(block_ms=self.cfg.block_ms)
            except Exception as e:  # noqa: BLE001 - Redis down, a stream deleted under us...
                log.error("notifier round failed: %s; retrying in %.0f s", e, backoff)
                self._grouped.clear()  # re-create groups if the streams went away
                await self._sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if self._smtp_down:
                log.warning("SMTP failing; pausing %.0f s", backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 60.0)
                self._smtp_down = False
                self._last_sweep = 0.0  # the sweep retries what failed once it is idle enough
            else:
                backoff = 1.0
        self._summary()
        return 0

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            pass

    def _summary(self) -> None:
        log.info("notifier done: %d sent, %d duplicates skipped, %d failed", self.sent,
                 self.skipped, self.failed)
