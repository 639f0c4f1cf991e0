"""Recorded-looking Shopify ``orders/create`` webhooks for the demo and the channels benchmark.

``orders_create`` builds the Order resource Shopify sends (the shape of
tests/fixtures/webhooks/shopify_orders_create.json: id, email, customer, shipping_address with
zip/country/latitude/longitude, line_items with sku/quantity/price, totals), deterministic for
a given ``random.Random``. ``sign`` is the ``X-Shopify-Hmac-Sha256`` header (base64
HMAC-SHA256 of the raw body with the channel's webhook secret), ``headers`` the whole set.
``malformed`` gives bodies oms-web must answer 400, ``unknown_sku`` one it records as rejected.

``post_all`` sends many deliveries to oms-web from an aiohttp session with a fixed number in
flight and returns every answer with its time; ``FeedResult`` sums them up.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

FIRST_NAMES = ("Ava", "Liam", "Noah", "Emma", "Mia", "Lucas", "Zoe", "Ethan", "Isla", "Omar")
LAST_NAMES = ("Smith", "Garcia", "Nguyen", "Johnson", "Brown", "Patel", "Kim", "Lopez", "Chen")
STREETS = ("Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Park Blvd", "2nd St")
# (zip, latitude, longitude, city, state code); city and state may be "".
Address = tuple[str, float, float, str, str]
Line = tuple[str, int, int]  # (sku, quantity, unit price in cents)


def _money(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def orders_create(order_id: int, lines: Sequence[Line], address: Address, rng: random.Random,
                  created_at: str = "2026-03-14T10:00:00-05:00") -> dict[str, Any]:
    """One Shopify Order resource as an ``orders/create`` webhook carries it."""
    z, lat, lon, city, state = address
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first.lower()}.{last.lower()}{rng.randrange(1000)}@example.com"
    customer_id = 7_000_000_000_000 + rng.randrange(10**9)
    subtotal = sum(q * p for _, q, p in lines)
    shipping = 0 if subtotal >= 5000 else 799
    ship = {"first_name": first, "last_name": last, "name": f"{first} {last}",
            "address1": f"{rng.randint(1, 9999)} {rng.choice(STREETS)}", "address2": None,
            "phone": None, "company": None, "city": city, "zip": z, "province": state or None,
            "province_code": state or None, "country": "United States", "country_code": "US",
            # Shopify sends coordinates rounded to 4 decimals (and null when it has none)
            "latitude": round(lat, 4) if lat or lon else None,
            "longitude": round(lon, 4) if lat or lon else None}
    items = [{"id": order_id * 100 + n,
              "admin_graphql_api_id": f"gid://shopify/LineItem/{order_id * 100 + n}",
              "fulfillable_quantity": q, "fulfillment_service": "manual",
              "fulfillment_status": None, "gift_card": False, "grams": 250 * q,
              "name": f"Product {sku}", "price": _money(p),
              "price_set": {"shop_money": {"amount": _money(p), "currency_code": "USD"},
                            "presentment_money": {"amount": _money(p), "currency_code": "USD"}},
              "product_exists": True, "product_id": 632_910_000 + n, "properties": [],
              "quantity": q, "requires_shipping": True, "sku": sku, "taxable": True,
              "title": f"Product {sku}", "total_discount": "0.00",
              "variant_id": 808_950_000 + n, "variant_inventory_management": "shopify",
              "variant_title": None, "vendor": None, "tax_lines": [], "duties": [],
              "discount_allocations": []}
             for n, (sku, q, p) in enumerate(lines)]
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "app_id": 580111, "browser_ip": None, "buyer_accepts_marketing": rng.random() < 0.3,
        "cancel_reason": None, "cancelled_at": None, "closed_at": None, "confirmed": True,
        "contact_email": email, "created_at": created_at, "currency": "USD",
        "current_subtotal_price": _money(subtotal), "current_total_price":
            _money(subtotal + shipping), "current_total_tax": "0.00", "customer_locale": "en",
        "email": email, "financial_status": "paid", "fulfillment_status": None,
        "name": f"#{order_id % 100000}", "note": None, "number": order_id % 100000,
        "order_number": 1000 + order_id % 100000, "phone": None, "presentment_currency": "USD",
        "processed_at": created_at, "source_name": "web", "subtotal_price": _money(subtotal),
        "tags": "", "taxes_included": False, "test": False, "total_discounts": "0.00",
        "total_line_items_price": _money(subtotal), "total_price": _money(subtotal + shipping),
        "total_tax": "0.00", "total_weight": sum(i["grams"] for i in items),
        "updated_at": created_at, "billing_address": dict(ship),
        "customer": {"id": customer_id, "email": email, "accepts_marketing": False,
                     "first_name": first, "last_name": last, "state": "enabled", "note": None,
                     "verified_email": True, "tax_exempt": False, "phone": None, "tags": "",
                     "currency": "USD"},
        "discount_applications": [], "fulfillments": [], "line_items": items,
        "payment_terms": None, "refunds": [], "shipping_address": ship,
        "shipping_lines": [{"id": order_id * 10, "code": "Standard", "price": _money(shipping),
                            "discounted_price": _money(shipping), "source": "shopify",
                            "title": "Standard Shipping", "tax_lines": [],
                            "discount_allocations": []}]}


def random_order(order_id: int, rng: random.Random, skus: Sequence[str],
                 weights: Sequence[float] | None, prices: dict[str, int],
                 addresses: Sequence[Address]) -> dict[str, Any]:
    """An order of 1-4 distinct SKUs (drawn by ``weights``) to a random address of
    ``addresses``."""
    picks = dict.fromkeys(rng.choices(skus, weights=weights, k=rng.randint(1, 4)))
    lines = [(s, rng.choice((1, 1, 1, 2)), prices[s]) for s in picks]
    return orders_create(order_id, lines, rng.choice(addresses), rng)


def body(order: dict[str, Any]) -> bytes:
    return orjson.dumps(order)


def sign(secret: str, raw: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of HMAC-SHA256(secret, raw body)."""
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def headers(raw: bytes, secret: str, webhook_id: str, topic: str = "orders/create",
            shop_domain: str = "demo-shop.myshopify.com") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(secret, raw), "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Shop-Domain": shop_domain, "X-Shopify-API-Version": "2024-07"}


def malformed(order: dict[str, Any], n: int) -> bytes:
    """A broken variant (``n`` picks which) of a valid order: oms-web answers 400."""
    bad = orjson.loads(orjson.dumps(order))
    kind = n % 4
    if kind == 0:
        return b'{"id": ' + str(order["id"]).encode() + b', "line_items": ['  # cut off
    if kind == 1:
        del bad["line_items"]
    elif kind == 2:
        bad["line_items"][0]["quantity"] = "two"
    else:
        bad["line_items"][0]["price"] = "free"
    return orjson.dumps(bad)


def unknown_sku(order: dict[str, Any], n: int) -> dict[str, Any]:
    """The order with one line's SKU replaced by one the service does not know (rejected)."""
    bad = orjson.loads(orjson.dumps(order))
    bad["line_items"][0]["sku"] = f"DISCONTINUED-{n:03d}"
    return bad


# -- sending ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    raw: bytes
    headers: dict[str, str]
    tag: str = "order"   # what the caller meant it to be: order, malformed, unknown, replay


@dataclass
class Answer:
    tag: str
    status: int
    body: dict[str, Any]
    t_sent: float        # time.monotonic()
    t_answered: float


@dataclass
class FeedResult:
    answers: list[Answer] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return max(self.ended - self.started, 1e-9)

    def count(self, tag: str | None = None, *, status: int | None = None,
              key: str | None = None) -> int:
        return sum(1 for a in self.answers if (tag is None or a.tag == tag)
                   and (status is None or a.status == status) and (key is None or key in a.body))

    @property
    def orders(self) -> int:
        """Deliveries that became an order (first deliveries, not replays)."""
        return sum(1 for a in self.answers if a.tag == "order" and "order_id" in a.body)

    def latency_ms(self, q: float) -> float:
        lat = sorted((a.t_answered - a.t_sent) * 1000 for a in self.answers)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0


async def post_all(url: str, deliveries: Iterable[Delivery], in_flight: int = 16,
                   timeout_s: float = 60.0) -> FeedResult:
    """POST every delivery to ``url`` with at most ``in_flight`` requests open; ``deliveries``
    may be a generator (drawn lazily, so a caller can stop it)."""
    res = FeedResult(started=time.monotonic())
    it: Iterator[Delivery] = iter(deliveries)
    conn = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=conn,
                                     timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
        async def worker() -> None:
            for d in it:  # one shared iterator: each delivery goes once
                t0 = time.monotonic()
                try:
                    async with s.post(url, data=d.raw, headers=d.headers) as r:
                        text = await r.read()
                        status = r.status
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    res.answers.append(Answer(d.tag, 0, {"error": str(e)[:100]}, t0,
                                              time.monotonic()))
                    continue
                try:
                    doc = orjson.loads(text)
                except orjson.JSONDecodeError:
                    doc = {"text": text[:100].decode(errors="replace")}
                res.answers.append(Answer(d.tag, status, doc if isinstance(doc, dict) else {},
                                          t0, time.monotonic()))

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    res.ended = time.monotonic()
    return res
