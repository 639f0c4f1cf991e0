"""Webhook bodies of the three platforms, parsed into one neutral ``WebhookOrder``.

Pure: no HTTP, gRPC or Redis here. Every function raises ``PayloadError`` (a ``ValueError``)
with a short reason on anything malformed; the edge answers it as 400 with that reason.

Numbers are read with ``json.loads(parse_float=Decimal)``: a price such as 0.29 is the exact
decimal 0.29, and 0.29 × 100 is 29 cents, never the float 28.999…. A price with more than two
decimals (WooCommerce's ``price`` is subtotal ÷ quantity, e.g. 33.333333) is rounded to the
cent, half to even.

What is checked here is the shape (types, presence, counts, lengths); whether a SKU exists or a
postal code can be geocoded is the server's call (an order it refuses is recorded as rejected).

Generic webhook (``POST /webhooks/generic/<channel id>``), a JSON object::

    {"event": "order.created" | "order.cancelled",
     "id": "<the channel's order id: [A-Za-z0-9_.-]{1,64}>",
     "email": "buyer@example.com",
     "customer": {"id": "c-42", "name": "Ada Lovelace"},
     "ship_to": {"name": "...", "line1": "...", "city": "...", "region": "...",
                 "postal_code": "50309", "country": "US",
                 "latitude": 41.59, "longitude": -93.62},
     "lines": [{"sku": "TSHIRT-RED-M", "quantity": 2, "unit_price_cents": 1999}]}

``email``, ``customer``, ``ship_to`` and each of their fields are optional (latitude/longitude
absent or both 0: the server geocodes a US postal code); ``lines`` needs 1..1000 entries with a
quantity of 1..1,000,000 and a unit price of 0..10^11 cents (an order the server refuses, e.g.
over its 100 lines an order or with an unknown SKU, is recorded as rejected). Headers:
``X-OMS-Signature: sha256=<hex HMAC-SHA256 of the raw body with the channel's webhook secret>``
and ``X-OMS-Delivery-Id: <unique per delivery, repeated on a retry>``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from oms.engine.channels import EXTERNAL_ID_RE_TEXT
from oms.engine.errors import quote

MAX_BODY = 1 << 20  # bytes
MAX_LINES = 1000
MAX_QTY = 1_000_000
MAX_PRICE_CENTS = 10**11
MAX_SKU_LEN = 64
# The server's limits on an order's free text (server/validation.py TEXT_LIMITS); a longer
# value is refused here already, with the field's name.
TEXT_CAPS = {"customer_id": 128, "email": 254, "customer_name": 200, "name": 200,
             "line1": 300, "city": 100, "region": 100, "postal_code": 16, "country": 64}
EXTERNAL_ID_RE = re.compile(EXTERNAL_ID_RE_TEXT, re.ASCII)
_DECIMAL_TEXT_RE = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,12})?", re.ASCII)
_CENT = Decimal("0.01")
_MAX_PRICE = Decimal(MAX_PRICE_CENTS) / 100
GENERIC_EVENTS = ("order.created", "order.cancelled")


class PayloadError(ValueError):
    """A malformed webhook body; ``str(e)`` is the reason (short, quoting at most a prefix)."""


@dataclass(frozen=True)
class WebhookLine:
    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class ShipTo:
    name: str = ""
    line1: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    latitude: float = 0.0  # both 0: not given (the server geocodes a US postal code)
    longitude: float = 0.0


@dataclass(frozen=True)
class WebhookOrder:
    external_id: str
    lines: tuple[WebhookLine, ...]
    customer_id: str = ""
    customer_name: str = ""
    email: str = ""
    ship_to: ShipTo = field(default_factory=ShipTo)
    cancelled: bool = False  # the platform says this order is cancelled

    @property
    def skus(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ln.sku for ln in self.lines))


# ---- JSON and field readers -----------------------------------------------------------------

def _no_constant(name: str) -> Any:
    raise PayloadError(f"{name} is not a number")


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (floats as exact Decimals)."""
    if len(body) > MAX_BODY:
        raise PayloadError(f"body of {len(body)} bytes, at most {MAX_BODY}")
    try:
        doc = json.loads(body, parse_float=Decimal, parse_constant=_no_constant)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, int digits
        raise PayloadError(f"not JSON: {str(e)[:80]}") from None
    if not isinstance(doc, dict):
        raise PayloadError("the body is not a JSON object")
    return doc


def _obj(doc: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An optional nested object (absent or null: empty)."""
    v = doc.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise PayloadError(f"{where}{key} is not an object")
    return v


def _text(doc: dict[str, Any], key: str, where: str, cap: int) -> str:
    """An optional string (absent or null: ""); numbers are taken as their text (ids)."""
    v = doc.get(key)
    if v is None:
        return ""
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise PayloadError(f"{where}{key} is not a string")
    s = str(v).strip()
    if len(s) > cap:
        raise PayloadError(f"{where}{key} has {len(s)} characters, at most {cap}")
    return s


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _capped(value: str, what: str, cap: int) -> str:
    if len(value) > cap:
        raise PayloadError(f"{what} has {len(value)} characters, at most {cap}")
    return value


def _external_id(doc: dict[str, Any]) -> str:
    v = doc.get("id")
    if isinstance(v, int) and not isinstance(v, bool):
        if v <= 0:
            raise PayloadError(f"id {quote(v)} is not a positive integer")
        v = str(v)
    if not isinstance(v, str) or not v:
        raise PayloadError("id is missing" if v is None else "id is not a string or integer")
    if EXTERNAL_ID_RE.fullmatch(v) is None:
        raise PayloadError(f"id {quote(v)} does not match {EXTERNAL_ID_RE_TEXT}")
    return v


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(v, Decimal) and v == v.to_integral_value():
        v = int(v)  # 2.0
    if isinstance(v, bool) or not isinstance(v, int):
        raise PayloadError(f"{what} is not an integer")
    if not lo <= v <= hi:
        raise PayloadError(f"{what} {v} out of range {lo}..{hi:,}")
    return v


def decimal_cents(v: Any, what: str) -> int:
    """A money amount in currency units (a decimal string like "199.00", or a JSON number) as
    whole cents, exactly (rounded half to even beyond two decimals)."""
    if isinstance(v, str):
        if _DECIMAL_TEXT_RE.fullmatch(v.strip()) is None:
            raise PayloadError(f"{what} {quote(v)} is not a decimal amount")
        v = Decimal(v.strip())
    elif isinstance(v, int) and not isinstance(v, bool):
        v = Decimal(v)
    elif not isinstance(v, Decimal):
        raise PayloadError(f"{what} is missing" if v is None else f"{what} is not a number")
    if not v.is_finite() or v < 0 or v > _MAX_PRICE:
        raise PayloadError(f"{what} {quote(str(v))} out of range 0..{MAX_PRICE_CENTS // 100:,}")
    try:
        cents = (v.quantize(_CENT, rounding=ROUND_HALF_EVEN) * 100).to_integral_exact()
    except InvalidOperation:
        raise PayloadError(f"{what} {quote(str(v))} is not a decimal amount") from None
    return int(cents)


def _coordinate(v: Any, what: str, limit: float) -> float:
    if v is None or v == "":
        return 0.0
    try:
        f = float(v) if isinstance(v, (Decimal, int, str)) and not isinstance(v, bool) else None
    except ValueError:
        f = None
    if f is None or not math.isfinite(f) or not -limit <= f <= limit:
        raise PayloadError(f"{what} {quote(str(v))} is not a number in -{limit:g}..{limit:g}")
    return f


def _lines(items: Any, where: str, price_key: str, cents: bool) -> tuple[WebhookLine, ...]:
    """Order lines: each with sku, quantity and a unit price (``cents``: an integer number of
    cents, else a decimal amount)."""
    if items is None:
        raise PayloadError(f"{where} is missing")
    if not isinstance(items, list):
        raise PayloadError(f"{where} is not a list")
    if not items:
        raise PayloadError(f"{where} is empty: an order needs at least one line")
    if len(items) > MAX_LINES:
        raise PayloadError(f"{where} has {len(items)} lines, at most {MAX_LINES}")
    out = []
    for i, it in enumerate(items):
        p = f"{where}[{i}]"
        if not isinstance(it, dict):
            raise PayloadError(f"{p} is not an object")
        sku = it.get("sku")
        if not isinstance(sku, str) or not sku.strip():
            raise PayloadError(f"{p}.sku is missing" if sku in (None, "") else
                               f"{p}.sku is not a string")
        sku = _capped(sku.strip(), f"{p}.sku", MAX_SKU_LEN)
        qty = _int(it.get("quantity"), f"{p}.quantity", 1, MAX_QTY)
        if cents:
            price = _int(it.get(price_key, 0), f"{p}.{price_key}", 0, MAX_PRICE_CENTS)
        else:
            price = decimal_cents(it.get(price_key), f"{p}.{price_key}")
        out.append(WebhookLine(sku, qty, price))
    return tuple(out)


# ---- the platforms --------------------------------------------------------------------------

def shopify_order(doc: dict[str, Any]) -> WebhookOrder:
    """A Shopify ``orders/create`` / ``orders/cancelled`` body (the Order resource):
    id, email, customer{id, first_name, last_name, email}, shipping_address{first_name,
    last_name, name, address1, city, province_code, zip, country_code, latitude, longitude},
    line_items[{sku, quantity, price: "19.99"}], cancelled_at."""
    ext = _external_id(doc)
    lines = _lines(doc.get("line_items"), "line_items", "price", cents=False)
    cu = _obj(doc, "customer", "")
    sa = _obj(doc, "shipping_address", "")
    w = "shipping_address."
    ship = ShipTo(
        name=_capped(_text(sa, "name", w, 200) or _join(_text(sa, "first_name", w, 200),
                                                       _text(sa, "last_name", w, 200)),
                     w + "name", TEXT_CAPS["name"]),
        line1=_capped(_join(_text(sa, "address1", w, 300), _text(sa, "address2", w, 300)),
                      w + "address1", TEXT_CAPS["line1"]),
        city=_text(sa, "city", w, TEXT_CAPS["city"]),
        region=_text(sa, "province_code", w, TEXT_CAPS["region"])
        or _text(sa, "province", w, TEXT_CAPS["region"]),
        postal_code=_text(sa, "zip", w, TEXT_CAPS["postal_code"]),
        country=_text(sa, "country_code", w, TEXT_CAPS["country"])
        or _text(sa, "country", w, TEXT_CAPS["country"]),
        latitude=_coordinate(sa.get("latitude"), w + "latitude", 90),
        longitude=_coordinate(sa.get("longitude"), w + "longitude", 180))
    name = _join(_text(cu, "first_name", "customer.", 200), _text(cu, "last_name", "customer.", 200))
    return WebhookOrder(
        external_id=ext, lines=lines,
        customer_id=_text(cu, "id", "customer.", TEXT_CAPS["customer_id"]),
        customer_name=_capped(name or ship.name, "customer name", TEXT_CAPS["customer_name"]),
        email=(_text(doc, "email", "", TEXT_CAPS["email"])
               or _text(doc, "contact_email", "", TEXT_CAPS["email"])
               or _text(cu, "email", "customer.", TEXT_CAPS["email"])),
        ship_to=ship, cancelled=doc.get("cancelled_at") not in (None, ""))


def woocommerce_order(doc: dict[str, Any]) -> WebhookOrder:
    """A WooCommerce ``order.created`` / ``order.updated`` body (the REST API v3 order): id,
    status, customer_id, billing{first_name, last_name, email}, shipping{first_name,
    last_name, address_1, address_2, city, state, postcode, country}, line_items[{sku,
    quantity, price}] (price a JSON number, read exactly)."""
    ext = _external_id(doc)
    status = _text(doc, "status", "", 32)
    lines = _lines(doc.get("line_items"), "line_items", "price", cents=False)
    bi = _obj(doc, "billing", "")
    sh = _obj(doc, "shipping", "")
    w = "shipping."
    ship_name = _join(_text(sh, "first_name", w, 200), _text(sh, "last_name", w, 200))
    bill_name = _join(_text(bi, "first_name", "billing.", 200),
                      _text(bi, "last_name", "billing.", 200))
    ship = ShipTo(
        name=_capped(ship_name or bill_name, w + "name", TEXT_CAPS["name"]),
        line1=_capped(_join(_text(sh, "address_1", w, 300), _text(sh, "address_2", w, 300)),
                      w + "address_1", TEXT_CAPS["line1"]),
        city=_text(sh, "city", w, TEXT_CAPS["city"]),
        region=_text(sh, "state", w, TEXT_CAPS["region"]),
        postal_code=_text(sh, "postcode", w, TEXT_CAPS["postal_code"]),
        country=_text(sh, "country", w, TEXT_CAPS["country"]))
    cid = doc.get("customer_id")
    return WebhookOrder(
        external_id=ext, lines=lines,
        customer_id="" if cid in (None, 0, "0") else _text(doc, "customer_id", "",
                                                             TEXT_CAPS["customer_id"]),
        customer_name=_capped(bill_name or ship_name, "billing name", TEXT_CAPS["customer_name"]),
        email=_text(bi, "email", "billing.", TEXT_CAPS["email"]),
        ship_to=ship, cancelled=status == "cancelled")


def generic_event(doc: dict[str, Any]) -> str:
    """The generic body's ``event`` (any string up to 64 characters; the edge acts on
    GENERIC_EVENTS and ignores others)."""
    ev = doc.get("event")
    if not isinstance(ev, str) or not ev:
        raise PayloadError("event is missing" if ev in (None, "") else "event is not a string")
    return _capped(ev, "event", 64)


def generic_order(doc: dict[str, Any]) -> WebhookOrder:
    """The documented generic body (module docstring)."""
    ext = _external_id(doc)
    lines = _lines(doc.get("lines"), "lines", "unit_price_cents", cents=True)
    cu = _obj(doc, "customer", "")
    st = _obj(doc, "ship_to", "")
    w = "ship_to."
    ship = ShipTo(
        **{k: _text(st, k, w, TEXT_CAPS[k])
           for k in ("name", "line1", "city", "region", "postal_code", "country")},
        latitude=_coordinate(st.get("latitude"), w + "latitude", 90),
        longitude=_coordinate(st.get("longitude"), w + "longitude", 180))
    return WebhookOrder(
        external_id=ext, lines=lines,
        customer_id=_text(cu, "id", "customer.", TEXT_CAPS["customer_id"]),
        customer_name=_text(cu, "name", "customer.", TEXT_CAPS["customer_name"]),
        email=_text(doc, "email", "", TEXT_CAPS["email"]),
        ship_to=ship, cancelled=generic_event(doc) == "order.cancelled")
