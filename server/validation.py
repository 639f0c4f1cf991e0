"""The input limits of the API: every identifier pattern, string length and number range.

One definition each, used by server/pb_convert.py, the servicers and server/redis/keys.py.
Identifier patterns are ASCII and used with ``fullmatch`` only (``$`` also matches before a
final newline, and ``\\d`` matches any Unicode digit). Every check runs before any work, cache
or write, and its message quotes at most a short prefix of the bad value (engine.errors.quote),
so a long bad input is answered INVALID_ARGUMENT, never "metadata size exceeds".

``FIELD_LIMITS`` is the table README.md quotes (tests/unit/test_validation.py keeps the two in
step).
"""
from __future__ import annotations

import math
import re

from oms.engine import models
from oms.engine.errors import FieldViolation, ValidationError, quote

# ---- identifiers and codes (ASCII, full match) -------------------------------------------

WAREHOUSE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
SKU_RE = re.compile(r"[A-Za-z0-9_./-]{1,64}", re.ASCII)
CHANNEL_RE = re.compile(r"[a-z0-9_-]{1,32}", re.ASCII)
# <home warehouse>.<suffix>; wave ids have the same form.
ORDER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}\.[A-Za-z0-9_-]{1,64}", re.ASCII)
WAVE_ID_RE = ORDER_ID_RE
RETURN_ID_RE = re.compile(ORDER_ID_RE.pattern + r"/r[0-9]{1,6}", re.ASCII)
TRACKING_NUMBER_RE = re.compile(r"[A-Za-z0-9]{1,40}", re.ASCII)
CARRIER_RE = re.compile(r"[A-Za-z0-9_-]{1,32}", re.ASCII)
SERVICE_LEVEL_RE = re.compile(r"[A-Za-z_]{1,32}", re.ASCII)
TRACKING_TYPE_RE = re.compile(r"[A-Z_]{1,32}", re.ASCII)
# Idempotency keys, payment tokens, tracking event ids: printable ASCII.
MAX_KEY_LEN = 128
KEY_RE = re.compile(r"[\x20-\x7e]{1,%d}" % MAX_KEY_LEN, re.ASCII)
# Bin codes: exactly two ASCII digits of aisle, three of slot (defined with parse_location).
LOCATION_RE = models.LOCATION_RE
MAX_AISLES = 100
MAX_SLOTS = 1000
POSTAL_CODE_RE = re.compile(r"[A-Za-z0-9 -]{1,16}", re.ASCII)
PAGE_TOKEN_RE = re.compile(r"[0-9a-f]{1,64}", re.ASCII)

# ---- free text: any Unicode but control characters, length-limited ------------------------

TEXT_LIMITS: dict[str, int] = {
    "customer.id": 128,
    "customer.email": 254,
    "customer.name": 200,
    "address.name": 200,
    "address.line1": 300,
    "address.city": 100,
    "address.region": 100,
    "address.country": 64,
    "warehouse.name": 200,
    "product.name": 300,
    "reason": 500,
    "tracking.location": 200,
}
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Reasons may span lines.
_CONTROL_MULTILINE_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# ---- numbers ------------------------------------------------------------------------------

MAX_LINES = 100
MAX_QTY = 1_000_000
# Stock levels live in a packed int32 array per warehouse (see server/redis/scripts/).
MAX_STOCK = 2**31 - 1
MAX_MONEY_CENTS = 10**11  # one unit price or one amount: 1 billion in currency units
MAX_ORDER_TOTAL_CENTS = 10**13  # sum of quantity x unit price of an order
MAX_WEIGHT_G = 1_000_000
MAX_DIMENSION_MM = 100_000
MAX_LAYOUT_M = 100.0  # slot_length_m, aisle_spacing_m
MIN_WINDOW_DAYS = 1 / 24
MAX_DAYS = 365.0  # window_days, lead_time_days
MAX_TIME_BUDGET_S = 300.0
MAX_SCAN_ORDERS = 100_000  # Reallocate / FillBackorders max_orders
MAX_WAVE_ORDERS = 10_000
MAX_BATCH_ORDERS = 1_000  # PlanWave batch_max_orders
MAX_BATCH_ITEMS = 10_000  # PlanWave batch_max_items
MAX_PAGE_SIZE = 1000
MAX_EXCEPTIONS_LIMIT = 1000
# Unix seconds (RecordTrackingEvent.occurred_at): 2000-01-01 .. 2100-01-01 UTC.
MIN_UNIX_S = 946_684_800
MAX_UNIX_S = 4_102_444_800

FIELD_LIMITS: tuple[tuple[str, str], ...] = (
    ("warehouse id", f"`{WAREHOUSE_ID_RE.pattern}`"),
    ("sku", f"`{SKU_RE.pattern}`"),
    ("channel", f"`{CHANNEL_RE.pattern}` (empty = `web`)"),
    ("order id, wave id", f"`{ORDER_ID_RE.pattern}`"),
    ("return id", "order id + `/r` + 1-6 digits"),
    ("tracking number", f"`{TRACKING_NUMBER_RE.pattern}`"),
    ("carrier", f"`{CARRIER_RE.pattern}`"),
    ("service level", f"`{SERVICE_LEVEL_RE.pattern}`"),
    ("idempotency key, payment token, tracking event id",
     f"printable ASCII, 1-{MAX_KEY_LEN} characters (empty = none)"),
    ("bin location", "`A` + 2 ASCII digits + `-S` + 3 ASCII digits, inside the layout"),
    ("postal code", f"`{POSTAL_CODE_RE.pattern}`"),
    ("page token", f"`{PAGE_TOKEN_RE.pattern}`"),
    *((f"{k} (text)", f"at most {n} characters, no control characters"
       + (" but line breaks and tabs" if k == "reason" else ""))
      for k, n in TEXT_LIMITS.items()),
    ("order lines", f"1..{MAX_LINES}"),
    ("quantity", f"1..{MAX_QTY:,} a line"),
    ("stock (on_hand, counted, \\|delta\\|, reorder_point)", f"0..{MAX_STOCK:,}"),
    ("unit price, product price", f"0..{MAX_MONEY_CENTS:,} cents"),
    ("order total (sum of quantity x unit price), refund amount",
     f"at most {MAX_ORDER_TOTAL_CENTS:,} cents"),
    ("product weight_g", f"0..{MAX_WEIGHT_G:,}"),
    ("product length/width/height_mm", f"0..{MAX_DIMENSION_MM:,}"),
    ("latitude, longitude", "finite, [-90, 90] and [-180, 180]"),
    ("layout aisles, slots_per_aisle", f"1..{MAX_AISLES}, 1..{MAX_SLOTS} (0 = default)"),
    ("layout slot_length_m, aisle_spacing_m", f"finite, (0, {MAX_LAYOUT_M:g}] (0 = default)"),
    ("window_days", f"finite, [1/24, {MAX_DAYS:g}] (0 = 14)"),
    ("lead_time_days", f"finite, (0, {MAX_DAYS:g}]"),
    ("Reallocate time_budget_s", f"finite, (0, {MAX_TIME_BUDGET_S:g}] (0 = 3)"),
    ("Reallocate, FillBackorders max_orders", f"0..{MAX_SCAN_ORDERS:,} (0 = 20,000)"),
    ("PlanWave max_orders, batch_max_orders, batch_max_items",
     f"0..{MAX_WAVE_ORDERS:,}, 0..{MAX_BATCH_ORDERS:,}, 0..{MAX_BATCH_ITEMS:,} (0 = default)"),
    ("occurred_at (unix seconds)", f"0 (= now) or {MIN_UNIX_S}..{MAX_UNIX_S} (years 2000-2100)"),
    ("page_size, limit", f"0..{MAX_PAGE_SIZE} (0 = default)"),
    ("enum values", "a defined number, else INVALID_ARGUMENT"),
)


# ---- checkers -----------------------------------------------------------------------------
# Each returns a FieldViolation or None (decoders collect every bad field), and has a
# raising twin ``require_*`` for servicers that check one field at a time.

def pattern_violation(value: str, pattern: re.Pattern[str], field: str,
                      what: str = "") -> FieldViolation | None:
    if pattern.fullmatch(value) is not None:
        return None
    return FieldViolation(field, f"{quote(value)} is not a valid {what or field} "
                                 f"(must match {pattern.pattern})")


def text_violation(value: str, field: str, kind: str, multiline: bool = False
                   ) -> FieldViolation | None:
    """Free text of class ``kind`` (a key of TEXT_LIMITS)."""
    limit = TEXT_LIMITS[kind]
    if len(value) > limit:
        return FieldViolation(field, f"{len(value)} characters, at most {limit}")
    bad = (_CONTROL_MULTILINE_RE if multiline else CONTROL_RE).search(value)
    if bad is not None:
        return FieldViolation(field, f"control character {bad.group()!r} at {bad.start()} in "
                                     f"{quote(value)}")
    return None


def key_violation(value: str, field: str) -> FieldViolation | None:
    """An optional key (idempotency key, payment token): empty or printable ASCII."""
    if not value or KEY_RE.fullmatch(value) is not None:
        return None
    if len(value) > MAX_KEY_LEN:
        return FieldViolation(field, f"{len(value)} characters, at most {MAX_KEY_LEN}")
    return FieldViolation(field, f"{quote(value)} must be printable ASCII")


def int_violation(value: int, lo: int, hi: int, field: str) -> FieldViolation | None:
    if lo <= value <= hi:
        return None
    return FieldViolation(field, f"{value} must be in {lo}..{hi}")


def float_violation(value: float, lo: float, hi: float, field: str,
                    lo_open: bool = False) -> FieldViolation | None:
    """A finite float in [lo, hi] ((lo, hi] with lo_open). NaN fails every comparison."""
    if math.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi:
        return None
    return FieldViolation(field, f"{value!r} must be finite and in "
                                 f"{'(' if lo_open else '['}{lo:g}, {hi:g}]")


def location_violation(value: str, aisles: int, slots: int, field: str
                       ) -> FieldViolation | None:
    m = LOCATION_RE.fullmatch(value)
    if m is None:
        return FieldViolation(field, f"{quote(value)} is not a bin code like A03-S017")
    if not (int(m.group(1)) < aisles and int(m.group(2)) < slots):
        return FieldViolation(field, f"{quote(value)} is outside the layout ({aisles} aisles x "
                                     f"{slots} slots)")
    return None


def raise_if(*violations: FieldViolation | None) -> None:
    found = [v for v in violations if v is not None]
    if found:
        raise ValidationError(found)


def require_pattern(value: str, pattern: re.Pattern[str], field: str, what: str = "") -> str:
    raise_if(pattern_violation(value, pattern, field, what))
    return value


def require_text(value: str, field: str, kind: str, multiline: bool = False) -> str:
    raise_if(text_violation(value, field, kind, multiline))
    return value


def require_int(value: int, lo: int, hi: int, field: str) -> int:
    raise_if(int_violation(value, lo, hi, field))
    return value


def require_float(value: float, lo: float, hi: float, field: str, lo_open: bool = False) -> float:
    raise_if(float_violation(value, lo, hi, field, lo_open))
    return value


def require_unix_s(value: int, field: str) -> int:
    """A timestamp in unix seconds: 0 (now) or a date in 2000..2100, so the ms value and
    anything derived from it fit an int64 on every later encode."""
    if value != 0:
        raise_if(int_violation(value, MIN_UNIX_S, MAX_UNIX_S, field))
    return value
