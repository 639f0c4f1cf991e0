"""What ``oms-notify`` sends: the e-mail for an order event (plain text and an HTML
alternative), its de-duplication key and its headers. Pure formatting: no Redis, no SMTP."""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, formatdate, parseaddr

from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order, Product, Return
from oms.server.redis.notifications import Delivery

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
        blocks = [Paragraph(f"Thank you for your order {o.id}. Here is what you ordered:"),
                  priced_lines(o, products)]
        st = ev.status or o.status
        if st == OrderStatus.BACKORDERED:
            blocks.append(Paragraph("Some items of this order are on backorder: we will ship as soon as "
                            "they are back in stock and e-mail you when your order is on its way."))
        else:
            allocated: dict[str, int] = {}
            for a in o.allocations:
                allocated[a.sku] = allocated.get(a.sku, 0) + a.quantity
            short = [ln.sku for ln in o.lines if allocated.get(ln.sku, 0) < ln.quantity]
            if short and o.allocations:
                blocks.append(Paragraph("Part of this order is not in stock (" + ", ".join(short) + "): "
                                "we will ship what is in stock now, and you pay only for what "
                                "we ship."))
            if st == OrderStatus.ON_HOLD:
                blocks.append(Paragraph("Your order is being reviewed before we prepare it for shipping. "
                                "No action is needed; we will e-mail you when it ships."))
        blocks.append(Paragraph("Shipping to:\n" + address(o)))
        return f"Order confirmation {o.id}", blocks

    def _shipped(self, ev: Event, o: Order, products: dict[str, Product]):
        blocks = [Paragraph(f"Good news: your order {o.id} has shipped"
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
            blocks.append(KeyValueTable(title, rows, link_row=2))
        if not o.shipments:
            blocks.append(Paragraph("Tracking details will follow."))
        blocks.append(Paragraph("Shipping to:\n" + address(o)))
        return f"Your order {o.id} has shipped", blocks

    def _delivered(self, ev: Event, o: Order, products: dict[str, Product]):
        when = day(o.delivered_at or ev.at_ms)
        return f"Your order {o.id} was delivered", [
            Paragraph(f"Your order {o.id} was delivered on {when}."),
            Paragraph("Shipped to:\n" + address(o)),
            Paragraph("Something not right? You can request a return from your order page.")]

    def _review(self, ev: Event, o: Order, products: dict[str, Product]):
        url = _fmt(self.review_url, order_id=o.id)
        return f"How was your order {o.id}?", [
            Paragraph(f"We hope you are enjoying your order {o.id}. Would you take a minute to tell us "
              f"how we did?"),
            lines_table([(ln.sku, ln.quantity, None) for ln in o.lines], products),
            LinkParagraph("Write a review", url)]

    def _return(self, ev: Event, o: Order, products: dict[str, Product]):
        r = _return_of(ev, o, "REQUESTED")
        if r is None:
            return f"Return requested for order {o.id}", [
                Paragraph(f"We received your return request for order {o.id}.")]
        blocks = [Paragraph(f"We received your return request {r.id} for order {o.id}."),
                  lines_table([(ln.sku, ln.quantity, None) for ln in r.lines], products)]
        if r.reason:
            blocks.append(Paragraph(f"Reason: {r.reason}"))
        blocks.append(Paragraph(f"Please pack the items and write the return id {r.id} on the parcel. "
                        "We will refund you once we have received them."))
        return f"Return {r.id} confirmed", blocks

    def _refund(self, ev: Event, o: Order, products: dict[str, Product]):
        m = re.search(r"refunded (\d+) cents", ev.detail)
        r = _return_of(ev, o, "REFUNDED")
        amount = int(m.group(1)) if m else (r.refunded_cents if r else
                                             (o.payment.refunded_cents if o.payment else 0))
        what = f" for return {r.id}" if r else ""
        blocks = [Paragraph(f"We have refunded {money(amount)}{what} on order {o.id} to your original "
                    f"payment method. It may take a few days to show on your statement.")]
        if r:
            blocks.append(lines_table([(ln.sku, ln.quantity, None) for ln in r.lines], products))
        pay = o.payment
        if pay and pay.captured_cents:
            blocks.append(Paragraph(f"Refunded on this order so far: {money(pay.refunded_cents)} of "
                            f"{money(pay.captured_cents)} paid."))
        return f"Refund of {money(amount)} for order {o.id}", blocks

    def _delayed(self, ev: Event, o: Order, products: dict[str, Product]):
        return f"Your order {o.id} is delayed", [
            Paragraph(f"We are sorry: items of your order {o.id} turned out not to be in stock where we "
              "were going to ship them from."),
            priced_lines(o, products),
            Paragraph("We will ship as soon as we have them, from wherever they are, and e-mail you when "
              "your order is on its way. You can also cancel it free of charge.")]

    def _cancelled(self, ev: Event, o: Order, products: dict[str, Product]):
        reason = ev.detail or ""
        if reason.startswith("payment declined"):
            why = "we could not authorize your payment"
        elif reason and reason != "cancelled by request":
            why = reason
        else:
            why = ""
        blocks = [Paragraph(f"Your order {o.id} has been cancelled" + (f": {why}." if why else ".")),
                  priced_lines(o, products)]
        if o.payment and o.payment.status in ("AUTHORIZED", "VOIDED"):
            blocks.append(Paragraph("You have not been charged; the hold on your payment method will be "
                            "released."))
        elif o.payment and o.payment.status == "DECLINED":
            blocks.append(Paragraph("You have not been charged."))
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
    """One part of an e-mail body, in both formats."""
    text: str
    html: str


class Paragraph(Block):
    """Text; its line breaks kept in the HTML."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.html = "<p>" + html.escape(text).replace("\n", "<br>") + "</p>"


class LinkParagraph(Block):
    """A labelled link on its own line (the URL spelled out in the text version)."""

    def __init__(self, label: str, url: str) -> None:
        self.text = f"{label}: {url}"
        self.html = f'<p><a href="{html.escape(url, quote=True)}">{html.escape(label)}</a></p>'


class KeyValueTable(Block):
    """A titled two-column table; the value in row ``link_row`` is shown as a link."""

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
