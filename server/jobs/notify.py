"""``oms-notify``: the notification worker. It reads every warehouse shard's event stream
through a Redis consumer group and e-mails customers:

  order.placed            order confirmation (lines, total, ship-to; backorder / hold note)
  order.shipped           shipping confirmation (carrier, tracking number and link, ETA)
  order.delivered         delivery notice
  order.followup          review request (with --followups this worker also schedules them)
  order.return_requested  return confirmation (return id, lines)
  order.refunded          refund confirmation (amount)
  order.cancelled         cancellation notice
  order.backordered       delay notice (a stock count took an item's reservation back)

Other events, and orders without a customer e-mail, are acknowledged without an e-mail.

Delivery: events are read at least once (an event is acknowledged only after its e-mail went
out; entries of a dead worker are taken over after --claim-idle-ms). Each e-mail has a
de-duplication key that is claimed in Redis *before* sending, so a retry never sends twice;
if the worker dies between that claim and the end of the SMTP transaction, that e-mail is lost
rather than doubled. A failed send releases the claim and leaves the event pending, to be
retried. Messages carry a deterministic Message-ID. See server/redis/notifications.py.

Several workers may run side by side with the same --group (each with its own --consumer);
they share the work. SIGTERM stops the worker between events. Without --redis-url it uses the
embedded Redis of an ``oms-server`` started with the same --data-dir.
"""
from __future__ import annotations

import asyncio
import logging
import sys

from oms.server.jobs.job_runner import run_job
from oms.server.jobs.notifier import Notifier
from oms.server.jobs.notify_config import NotifyConfig
from oms.server.jobs.smtp_mailer import Mailer
from oms.server.redis.store import Store

log = logging.getLogger("oms.notify")


async def run_notifier(cfg: NotifyConfig, store: Store, url: str, stop: asyncio.Event) -> int:
    notes = store.notifications(cfg.consumer)
    mailer = Mailer(cfg.smtp_host, cfg.smtp_port, user=cfg.smtp_user,
                    password=cfg.smtp_password, starttls=cfg.smtp_starttls,
                    use_ssl=cfg.smtp_ssl, timeout=cfg.smtp_timeout)
    try:
        log.info("notifier %s (group %s) on %s, SMTP %s:%d", cfg.consumer, cfg.group,
                 url.split("@")[-1], cfg.smtp_host, cfg.smtp_port)
        return await Notifier(store, notes, mailer, cfg, stop).run()
    finally:
        await asyncio.to_thread(mailer.close)


def main(argv: list[str] | None = None) -> int:
    return run_job("oms-notify", NotifyConfig, argv, __doc__ or "", run_notifier)


if __name__ == "__main__":
    sys.exit(main())
