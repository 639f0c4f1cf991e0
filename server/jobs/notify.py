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

import argparse
import asyncio
import datetime as dt
import hashlib
import html
import logging
import os
import re
import signal
import smtplib
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from oms.engine.errors import NotFoundError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order, Product, Return
from oms.server.config import RULES, ArgParser, Config, ConfigError, between, positive_up_to, resolve
from oms.server.redis.notifications import Delivery, Notifications
from oms.server.redis.store import Store, now_ms

log = logging.getLogger("oms.notify")

# event type -> e-mail kind
KINDS: dict[str, str] = {
    "order.placed": "confirmation",
    "order.shipped": "shipped",
    "order.delivered": "delivered",
    "order.followup": "review",
    "order.return_requested": "return",
    "order.refunded": "refund",
    "order.cancelled": "cancelled",
    "order.backordered": "delayed",
}
# Kinds that happen at most once in an order's life: their de-dupe key is the order (so even a
# duplicated event sends one e-mail). Returns and refunds can repeat: keyed by the event.
ONCE_PER_ORDER = {"confirmation", "shipped", "delivered", "review", "cancelled"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    # Bad flags and values: ConfigError, one line from main() (server/config.py checks).
    p = ArgParser(prog="oms-notify", description=__doc__,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redis-url", help="(env OMS_REDIS_URL)")
    p.add_argument("--data-dir", help="(env OMS_DATA_DIR, default var/redis)")
    p.add_argument("--smtp-host", default=env.get("OMS_SMTP_HOST", "localhost"))
    p.add_argument("--smtp-port",
                   help="default 465 with --smtp-ssl, 587 with --smtp-starttls, else 25")
    p.add_argument("--smtp-user", default=env.get("OMS_SMTP_USER", ""))
    p.add_argument("--smtp-password", default=env.get("OMS_SMTP_PASSWORD", ""),
                   help="prefer the OMS_SMTP_PASSWORD environment variable")
    p.add_argument("--smtp-starttls", action="store_true", default=_env_flag("OMS_SMTP_STARTTLS"))
    p.add_argument("--smtp-ssl", action="store_true", default=_env_flag("OMS_SMTP_SSL"))
    p.add_argument("--smtp-timeout", help="(env OMS_SMTP_TIMEOUT, default 30)")
    p.add_argument("--from-address",
                   default=env.get("OMS_NOTIFY_FROM", "Orders <orders@example.com>"))
    p.add_argument("--tracking-url-template",
                   default=env.get("OMS_TRACKING_URL_TEMPLATE",
                                   "https://track.example.com/{tracking_number}"),
                   help="placeholders: {tracking_number} {carrier} {order_id}")
    p.add_argument("--review-url-template",
                   default=env.get("OMS_REVIEW_URL_TEMPLATE",
                                   "https://shop.example.com/review/{order_id}"),
                   help="placeholder: {order_id}")
    p.add_argument("--consumer",
                   default=env.get("OMS_NOTIFY_CONSUMER", f"{socket.gethostname()}-{os.getpid()}"),
                   help="this worker's name in the consumer group (default host-pid)")
    p.add_argument("--group", default=env.get("OMS_NOTIFY_GROUP", "notifier"))
    p.add_argument("--group-start", default="0",
                   help='where a new consumer group starts: "0" = every event still in the '
                        'streams (default), "$" = only events from now on')
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    p.add_argument("--followups", action="store_true",
                   help="also run the follow-up scheduler (moves due review requests onto "
                        "the event streams, once each)")
    p.add_argument("--claim-idle-ms", type=int, default=60_000,
                   help="take over events pending (unacknowledged) longer than this")
    p.add_argument("--block-ms", type=int, default=1000, help="longest wait for new events")
    p.add_argument("--batch", type=int, default=50, help="events read per stream per call")
    p.add_argument("--dedupe-ttl-s", type=int, default=30 * 86400,
                   help="how long a sent e-mail's de-duplication key is kept")
    p.add_argument("--log-level", help="(env OMS_LOG_LEVEL, default INFO)")
    a = p.parse_args(argv)
    for name in ("redis_url", "data_dir", "log_level"):
        setattr(a, name, resolve(a, name, getattr(Config, name), RULES[name]))
    a.smtp_port = resolve(a, "smtp_port", 0, between(0, 65535))
    a.smtp_timeout = resolve(a, "smtp_timeout", 30.0, positive_up_to(3600))
    if a.smtp_ssl and a.smtp_starttls:
        p.error("--smtp-ssl and --smtp-starttls exclude each other")
    if not a.smtp_port:
        a.smtp_port = 465 if a.smtp_ssl else 587 if a.smtp_starttls else 25
    return a


# ---- composing --------------------------------------------------------------------------

@dataclass(frozen=True)
class Mail:
    kind: str
    dedupe_key: str
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Event:
    warehouse_id: str
    stream_id: str
    order_id: str
    type: str
    status: int
    detail: str
    at_ms: int

    @property
    def id(self) -> str:  # the public OrderEvent id
        return f"{self.stream_id}@{self.warehouse_id}"

    @classmethod
    def of(cls, d: Delivery) -> Event:
        f = d.fields
        try:
            status = int(f.get("s") or 0)
        except ValueError:
            status = 0
        return cls(d.warehouse_id, d.stream_id, f.get("o", ""), f.get("t", ""), status,
                   f.get("d", ""), int(d.stream_id.partition("-")[0] or 0))


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:,.2f}"


def day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%A, %B %d, %Y").replace(" 0", " ")


def _fmt(template: str, **values: str) -> str:
    class Safe(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return template.format_map(Safe(values))


class Composer:
    """Builds the e-mail for an event (plain text and an HTML alternative)."""

    def __init__(self, tracking_url_template: str, review_url_template: str) -> None:
        self.tracking_url = tracking_url_template
        self.review_url = review_url_template

    def compose(self, ev: Event, order: Order, products: dict[str, Product]) -> Mail | None:
        kind = KINDS.get(ev.type)
        if kind is None:
            return None
        key = f"email:{kind}:{order.id}"
        if kind not in ONCE_PER_ORDER:
            key += f":{ev.id}"
        subject, blocks = getattr(self, "_" + kind)(ev, order, products)
        hello = f"Hello {order.customer.name}," if order.customer.name else "Hello,"
        text = "\n\n".join([hello] + [b.text for b in blocks] + ["Thank you for shopping with us."])
        body = "".join(b.html for b in blocks)
        page = (f"<!doctype html><html><body style=\"font-family:sans-serif\">"
                f"<p>{html.escape(hello)}</p>{body}<p>Thank you for shopping with us.</p>"
                f"</body></html>")
        return Mail(kind, key, order.customer.email.strip(), subject, text + "\n", page)

    # Each returns (subject, blocks); a block is a paragraph or a table in both formats.

    def _confirmation(self, ev: Event, o: Order, products: dict[str, Product]):
        blocks = [P(f"Thank you for your order {o.id}. Here is what you ordered:"),
                  priced_lines(o, products)]
        st = ev.status or o.status
        if st == OrderStatus.BACKORDERED:
            blocks.append(P("Some items of this order are on backorder: we will ship as soon as "
                            "they are back in stock and e-mail you when your order is on its way."))
        else:
            allocated: dict[str, int] = {}
            for a in o.allocations:
                allocated[a.sku] = allocated.get(a.sku, 0) + a.quantity
            short = [ln.sku for ln in o.lines if allocated.get(ln.sku, 0) < ln.quantity]
            if short and o.allocations:
                blocks.append(P("Part of this order is not in stock (" + ", ".join(short) + "): "
                                "we will ship what is in stock now, and you pay only for what "
                                "we ship."))
            if st == OrderStatus.ON_HOLD:
                blocks.append(P("Your order is being reviewed before we prepare it for shipping. "
                                "No action is needed; we will e-mail you when it ships."))
        blocks.append(P("Shipping to:\n" + address(o)))
        return f"Order confirmation {o.id}", blocks

    def _shipped(self, ev: Event, o: Order, products: dict[str, Product]):
        blocks = [P(f"Good news: your order {o.id} has shipped"
                    + (f" in {len(o.shipments)} shipments." if len(o.shipments) > 1 else "."))]
        for n, s in enumerate(o.shipments, 1):
            url = _fmt(self.tracking_url, tracking_number=s.tracking_number, carrier=s.carrier,
                       order_id=o.id)
            rows = [("Carrier", f"{s.carrier} {s.service_level}".strip()),
                    ("Tracking number", s.tracking_number),
                    ("Track it", url),
                    ("Estimated delivery", day(s.eta_ms) if s.eta_ms else "to be confirmed")]
            if s.skus:
                rows.append(("Items", ", ".join(s.skus)))
            title = f"Shipment {n}" if len(o.shipments) > 1 else "Shipment"
            blocks.append(KV(title, rows, link_row=2))
        if not o.shipments:
            blocks.append(P("Tracking details will follow."))
        blocks.append(P("Shipping to:\n" + address(o)))
        return f"Your order {o.id} has shipped", blocks

    def _delivered(self, ev: Event, o: Order, products: dict[str, Product]):
        when = day(o.delivered_at or ev.at_ms)
        return f"Your order {o.id} was delivered", [
            P(f"Your order {o.id} was delivered on {when}."),
            P("Shipped to:\n" + address(o)),
            P("Something not right? You can request a return from your order page.")]

    def _review(self, ev: Event, o: Order, products: dict[str, Product]):
        url = _fmt(self.review_url, order_id=o.id)
        return f"How was your order {o.id}?", [
            P(f"We hope you are enjoying your order {o.id}. Would you take a minute to tell us "
              f"how we did?"),
            lines_table([(ln.sku, ln.quantity, None) for ln in o.lines], products),
            LINK("Write a review", url)]

    def _return(self, ev: Event, o: Order, products: dict[str, Product]):
        r = _return_of(ev, o, "REQUESTED")
        if r is None:
            return f"Return requested for order {o.id}", [
                P(f"We received your return request for order {o.id}.")]
        blocks = [P(f"We received your return request {r.id} for order {o.id}."),
                  lines_table([(ln.sku, ln.quantity, None) for ln in r.lines], products)]
        if r.reason:
            blocks.append(P(f"Reason: {r.reason}"))
        blocks.append(P(f"Please pack the items and write the return id {r.id} on the parcel. "
                        "We will refund you once we have received them."))
        return f"Return {r.id} confirmed", blocks

    def _refund(self, ev: Event, o: Order, products: dict[str, Product]):
        m = re.search(r"refunded (\d+) cents", ev.detail)
        r = _return_of(ev, o, "REFUNDED")
        amount = int(m.group(1)) if m else (r.refunded_cents if r else
                                             (o.payment.refunded_cents if o.payment else 0))
        what = f" for return {r.id}" if r else ""
        blocks = [P(f"We have refunded {money(amount)}{what} on order {o.id} to your original "
                    f"payment method. It may take a few days to show on your statement.")]
        if r:
            blocks.append(lines_table([(ln.sku, ln.quantity, None) for ln in r.lines], products))
        pay = o.payment
        if pay and pay.captured_cents:
            blocks.append(P(f"Refunded on this order so far: {money(pay.refunded_cents)} of "
                            f"{money(pay.captured_cents)} paid."))
        return f"Refund of {money(amount)} for order {o.id}", blocks

    def _delayed(self, ev: Event, o: Order, products: dict[str, Product]):
        return f"Your order {o.id} is delayed", [
            P(f"We are sorry: items of your order {o.id} turned out not to be in stock where we "
              "were going to ship them from."),
            priced_lines(o, products),
            P("We will ship as soon as we have them, from wherever they are, and e-mail you when "
              "your order is on its way. You can also cancel it free of charge.")]

    def _cancelled(self, ev: Event, o: Order, products: dict[str, Product]):
        reason = ev.detail or ""
        if reason.startswith("payment declined"):
            why = "we could not authorize your payment"
        elif reason and reason != "cancelled by request":
            why = reason
        else:
            why = ""
        blocks = [P(f"Your order {o.id} has been cancelled" + (f": {why}." if why else ".")),
                  priced_lines(o, products)]
        if o.payment and o.payment.status in ("AUTHORIZED", "VOIDED"):
            blocks.append(P("You have not been charged; the hold on your payment method will be "
                            "released."))
        elif o.payment and o.payment.status == "DECLINED":
            blocks.append(P("You have not been charged."))
        return f"Order {o.id} cancelled", blocks


def _return_of(ev: Event, o: Order, status: str) -> Return | None:
    """The return an event is about. Events carry no return id: take the latest return created
    up to the event (return requests), or the latest one in ``status`` (refunds)."""
    if not o.returns:
        return None
    if status == "REQUESTED":
        before = [r for r in o.returns if r.created_at <= ev.at_ms + 1000]
        return (before or o.returns)[-1]
    done = [r for r in o.returns if r.status == status]
    return (done or o.returns)[-1]


def address(o: Order) -> str:
    a = o.ship_to
    city = " ".join(x for x in (a.city + ("," if a.city and (a.region or a.postal_code) else ""),
                                a.region, a.postal_code) if x)
    parts = [a.name or o.customer.name, a.line1, city, a.country]
    return "\n".join(x for x in parts if x) or "(no address given)"


class Block:
    text: str
    html: str


class P(Block):
    def __init__(self, text: str) -> None:
        self.text = text
        self.html = "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


class LINK(Block):
    def __init__(self, label: str, url: str) -> None:
        self.text = f"{label}: {url}"
        self.html = f'<p><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></p>'


class KV(Block):
    def __init__(self, title: str, rows: list[tuple[str, str]], link_row: int = -1) -> None:
        width = max(len(k) for k, _ in rows)
        self.text = title + "\n" + "\n".join(f"  {k + ':':<{width + 1}} {v}" for k, v in rows)
        cells = []
        for i, (k, v) in enumerate(rows):
            val = (f'<a href="{html.escape(v, quote=True)}">{html.escape(v)}</a>' if i == link_row
                   else html.escape(v))
            cells.append(f"<tr><th align=\"left\">{html.escape(k)}</th><td>{val}</td></tr>")
        self.html = f"<h3>{html.escape(title)}</h3><table>{''.join(cells)}</table>"


def priced_lines(o: Order, products: dict[str, Product]) -> Block:
    return lines_table([(ln.sku, ln.quantity, ln.unit_price_cents) for ln in o.lines], products,
                       total=o.value_cents)


def lines_table(rows: list[tuple[str, int, int | None]], products: dict[str, Product],
                total: int | None = None) -> Block:
    priced = any(p is not None for _, _, p in rows)
    b = Block()
    text, cells = [], []
    for sku, qty, price in rows:
        name = products[sku].name if sku in products and products[sku].name else ""
        label = f"{name} ({sku})" if name else sku
        if priced:
            text.append(f"  {qty} x {label} @ {money(price or 0)} = {money(qty * (price or 0))}")
            cells.append(f"<tr><td>{qty}</td><td>{html.escape(label)}</td>"
                         f"<td align=\"right\">{money(price or 0)}</td>"
                         f"<td align=\"right\">{money(qty * (price or 0))}</td></tr>")
        else:
            text.append(f"  {qty} x {label}")
            cells.append(f"<tr><td>{qty}</td><td>{html.escape(label)}</td></tr>")
    if total is not None:
        text.append(f"  Total: {money(total)}")
        cells.append(f"<tr><th colspan=\"3\" align=\"right\">Total</th>"
                     f"<th align=\"right\">{money(total)}</th></tr>")
    b.text = "\n".join(text)
    b.html = "<table cellpadding=\"4\">" + "".join(cells) + "</table>"
    return b


def message_id(dedupe_key: str, from_address: str) -> str:
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "oms.invalid"
    return f"<{hashlib.sha1(dedupe_key.encode()).hexdigest()}@{domain}>"


def build_message(mail: Mail, ev: Event, order: Order, from_address: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = formataddr((order.customer.name, mail.to)) if order.customer.name else mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(mail.dedupe_key, from_address)
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    msg["X-OMS-Order-Id"] = order.id
    msg["X-OMS-Event-Id"] = ev.id
    msg["X-OMS-Notification"] = mail.kind
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg


def mask(email: str) -> str:
    local, _, domain = email.partition("@")
    return (local[:1] + "***@" + domain) if domain else "***"


# ---- sending ----------------------------------------------------------------------------

class PermanentSendError(Exception):
    """The server refused the message for good (5xx for the recipient): retrying won't help."""


class Mailer:
    """One SMTP connection, reused between messages (checked with NOOP after an idle spell).
    Blocking: called from a thread, one message at a time."""

    def __init__(self, host: str, port: int, *, user: str = "", password: str = "",
                 starttls: bool = False, use_ssl: bool = False, timeout: float = 30.0) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout
        self._conn: smtplib.SMTP | None = None
        self._used = 0.0

    def _connect(self) -> smtplib.SMTP:
        ctx = ssl.create_default_context()
        if self.use_ssl:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                  context=ctx)
        else:
            conn = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                conn.starttls(context=ctx)
        if self.user:
            conn.login(self.user, self.password)
        return conn

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None and time.monotonic() - self._used > 5:
            try:
                if self._conn.noop()[0] != 250:
                    raise smtplib.SMTPServerDisconnected("NOOP refused")
            except (smtplib.SMTPException, OSError):
                self.close()
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    def send(self, msg: EmailMessage) -> None:
        conn = self._connection()
        try:
            conn.send_message(msg)  # one recipient: a refusal raises SMTPRecipientsRefused
        except smtplib.SMTPRecipientsRefused as e:
            if all(code >= 500 for code, _ in e.recipients.values()):
                why = "; ".join(f"{r}: {c} {_s(m)}" for r, (c, m) in e.recipients.items())
                raise PermanentSendError(why) from e
            raise
        except BaseException:
            self.close()  # state unknown: start the next message on a fresh connection
            raise
        finally:
            self._used = time.monotonic()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


def _s(v: bytes | str) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else v


# ---- the worker -------------------------------------------------------------------------

class Notifier:
    def __init__(self, store: Store, notes: Notifications, mailer: Mailer, args: argparse.Namespace,
                 stop: asyncio.Event) -> None:
        self.store, self.notes, self.mailer, self.args, self.stop = store, notes, mailer, args, stop
        self.composer = Composer(args.tracking_url_template, args.review_url_template)
        self._grouped: set[str] = set()
        self._last_sweep = 0.0
        self.sent = self.skipped = self.failed = 0
        self._smtp_down = False

    async def warehouses(self) -> list[str]:
        wids = [w.id for w in await self.store.warehouses(0.0)]
        new = [w for w in wids if w not in self._grouped]
        if new:
            await self.notes.ensure_groups(new, self.args.group, self.args.group_start)
            self._grouped.update(new)
            if len(self._grouped) == len(new):  # first time: tidy up consumers of old runs
                await self.notes.prune_consumers(self.args.group, wids)
        return wids

    async def followups(self, wids: list[str]) -> int:
        n = 0
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
                await self.notes.ack(self.args.group, [d])

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
            msg = build_message(mail, ev, order, self.args.from_address) if mail else None
        except Exception:  # a bug or bad data: retrying would fail the same way
            log.exception("event %s (%s of %s): could not compose the e-mail; dropped", ev.id,
                          ev.type, ev.order_id)
            return True
        if mail is None or msg is None:
            return True
        ttl = self.args.dedupe_ttl_s
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
        if self.args.followups:
            await self.followups(wids)
        handled = 0
        sweep_every = min(30.0, max(1.0, self.args.claim_idle_ms / 2000))
        if sweep is None:
            sweep = time.monotonic() - self._last_sweep >= sweep_every
        if sweep:
            self._last_sweep = time.monotonic()
            stale = await self.notes.claim_stale(self.args.group, self.notes.consumer, wids,
                                                 self.args.claim_idle_ms, count=self.args.batch)
            if stale:
                log.info("took over %d stale pending event(s)", len(stale))
            await self.process(stale)
            handled += len(stale)
        if self.stop.is_set() or self._smtp_down:
            return handled
        new = await self.notes.read(self.args.group, self.notes.consumer, wids,
                                    count=self.args.batch, block_ms=block_ms)
        await self.process(new)
        return handled + len(new)

    async def run(self) -> int:
        if self.args.once:
            await self.step(block_ms=0, sweep=True)
            self.args.followups = False  # scheduled once above
            while not self.stop.is_set() and not self._smtp_down:
                if not await self.step(block_ms=0, sweep=False):
                    break
            self._summary()
            return 1 if self._smtp_down else 0
        backoff = 1.0
        while not self.stop.is_set():
            try:
                await self.step(block_ms=self.args.block_ms)
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


async def main_async(args: argparse.Namespace) -> int:
    url = args.redis_url or f"unix://{os.path.abspath(args.data_dir)}/redis.sock?db=0"
    store = Store.from_url(url)
    notes = Notifications(store.r, args.consumer)
    mailer = Mailer(args.smtp_host, args.smtp_port, user=args.smtp_user,
                    password=args.smtp_password, starttls=args.smtp_starttls,
                    use_ssl=args.smtp_ssl, timeout=args.smtp_timeout)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await store.r.ping()
        log.info("notifier %s (group %s) on %s, SMTP %s:%d", args.consumer, args.group,
                 url.split("@")[-1], args.smtp_host, args.smtp_port)
        return await Notifier(store, notes, mailer, args, stop).run()
    finally:
        await asyncio.to_thread(mailer.close)
        await store.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ConfigError as e:
        print(f"oms-notify: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
