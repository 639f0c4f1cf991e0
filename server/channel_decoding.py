"""ChannelService requests: decode and validate every field (each violation named, with at most
a short prefix of its value), and convert channels between proto and engine.

Pure: no store, no I/O. Whether the warehouses a channel names exist is the servicer's check
(NOT_FOUND, after this one). Answers never carry a secret: ``encode_channel`` sets
``has_webhook_secret`` / ``push.has_credentials`` instead.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from oms.engine.channels import EXTERNAL_ID_RE_TEXT, Channel, ChannelKind, PushTarget, share_bp
from oms.engine.errors import FieldViolation, quote
from oms.server import validation as val
from oms.server.channels.availability import Level
from oms.server.redis.channels import RejectedOrder
from oms.v1 import channels_pb2 as pb

MAX_NAME = 100
MAX_WAREHOUSES = 64
MAX_SAFETY = 10**9
MAX_MAP = 100_000  # sku_safety_stock, push.sku_items entries
MAX_URL = 512
MAX_CREDENTIAL = 512
MAX_SKUS = 1000  # GetAvailability, WatchAvailability, a rejected order's skus
MAX_BODY = 1024 * 1024  # a webhook body
MAX_OUTCOME = 200
MAX_REASON = 500
MAX_REJECTED_SKU = 64
MAX_PAGE = 500
DEFAULT_PAGE = 100
SCHEMES = ("shopify", "woocommerce", "generic")
# Violations reported per map or list field: one bad entry in 100,000 is named, not all of them
# (the status trailer is capped anyway; see server/errors.py).
_MAX_REPORTED = 10

SECRET_RE = re.compile(r"[\x20-\x7e]{16,256}", re.ASCII)
CREDENTIAL_RE = re.compile(r"[\x20-\x7e]{0,%d}" % MAX_CREDENTIAL, re.ASCII)
LOCATION_ID_RE = re.compile(r"[A-Za-z0-9_-]{0,64}", re.ASCII)
ITEM_ID_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}", re.ASCII)
EXTERNAL_ID_RE = re.compile(EXTERNAL_ID_RE_TEXT, re.ASCII)
# A URL travels in HTTP requests as is: no spaces, no control characters, ASCII only.
_URL_CHARS_RE = re.compile(r"[\x21-\x7e]+", re.ASCII)
_PRINTABLE_RE = re.compile(r"[\x20-\x7e]*", re.ASCII)
_CONTROL_RE = val.CONTROL_RE
_CONTROL_MULTILINE_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # reasons may span lines
_KINDS = frozenset(int(k) for k in ChannelKind if k != ChannelKind.UNSPECIFIED)


# Request caps (bytes) for the transport interceptor (server/transport.py), above the 64 KB
# default: an UpsertChannel at every limit (100,000 sku_items of a 64-character SKU and a
# 128-character item id: 200 bytes each; 100,000 sku_safety_stock entries: 74 bytes each) is
# about 27.4 MB; a webhook body up to 1 MiB; 1,000 SKUs of 64 characters about 67 KB.
_SERVICE = "/oms.v1.ChannelService/"
REQUEST_LIMITS: dict[str, int] = {
    _SERVICE + "UpsertChannel": 28 * 1024 * 1024,
    _SERVICE + "VerifyWebhook": MAX_BODY + 8 * 1024,
    _SERVICE + "GetAvailability": 128 * 1024,
    _SERVICE + "WatchAvailability": 128 * 1024,
    _SERVICE + "RecordRejectedOrder": 128 * 1024,
}


@dataclass(frozen=True)
class SkuQuery:
    channel_id: str
    skus: tuple[str, ...]  # empty: every registered SKU


@dataclass(frozen=True)
class WatchQuery(SkuQuery):
    after_version: int = 0


@dataclass(frozen=True)
class WebhookCheck:
    channel_id: str
    scheme: str
    signature: str
    body: bytes
    delivery_id: str


# ---- field checks ------------------------------------------------------------------------

def channel_id_violation(value: str, field: str) -> FieldViolation | None:
    if not value:
        return FieldViolation(field, "required")
    return val.pattern_violation(value, val.CHANNEL_RE, field, "channel id")


def require_channel_id(value: str, field: str = "channel_id") -> str:
    val.raise_if(channel_id_violation(value, field))
    return value


def _text(value: str, limit: int, field: str, multiline: bool = False) -> FieldViolation | None:
    if len(value) > limit:
        return FieldViolation(field, f"{len(value)} characters, at most {limit}")
    bad = (_CONTROL_MULTILINE_RE if multiline else _CONTROL_RE).search(value)
    if bad is not None:
        return FieldViolation(field, f"control character {bad.group()!r} at {bad.start()} in "
                                     f"{quote(value)}")
    return None


def _printable(value: str, lo: int, hi: int, field: str) -> FieldViolation | None:
    """Printable ASCII, lo..hi characters."""
    if not lo <= len(value) <= hi:
        return FieldViolation(field, f"{len(value)} characters, must be {lo}..{hi}")
    if _PRINTABLE_RE.fullmatch(value) is None:
        return FieldViolation(field, "must be printable ASCII")  # a secret: never quoted
    return None


def url_violation(value: str, field: str) -> FieldViolation | None:
    """An http(s) URL with a host, at most MAX_URL characters, without credentials or a
    fragment (empty: nothing is pushed)."""
    if not value:
        return None
    if len(value) > MAX_URL:
        return FieldViolation(field, f"{len(value)} characters, at most {MAX_URL}")
    if _URL_CHARS_RE.fullmatch(value) is None:
        return FieldViolation(field, f"{quote(value)}: only printable ASCII without spaces")
    try:
        u = urlsplit(value)
        u.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return FieldViolation(field, f"{quote(value)} is not a URL ({quote(str(e), 60)})")
    if u.scheme not in ("http", "https"):
        return FieldViolation(field, f"{quote(value)}: the scheme must be http or https")
    if u.username is not None or u.password is not None:
        # never quoted: the value holds a credential
        return FieldViolation(field, "credentials in the URL are refused: use the push "
                                     "target's access_token / consumer_key / consumer_secret")
    if not u.hostname:
        return FieldViolation(field, f"{quote(value)} has no host")
    if u.fragment or "#" in value:
        return FieldViolation(field, f"{quote(value)}: a fragment (#…) is refused")
    return None


def _count_violation(n: int, limit: int, field: str) -> FieldViolation | None:
    if n > limit:
        return FieldViolation(field, f"{n} entries, at most {limit:,}")
    return None


def _sku_map_violations(m: Mapping[str, object], field: str, value_ok, what: str
                        ) -> list[FieldViolation]:
    if len(m) > MAX_MAP:
        return [FieldViolation(field, f"{len(m):,} entries, at most {MAX_MAP:,}")]
    out: list[FieldViolation] = []
    for k, v in m.items():
        if val.SKU_RE.fullmatch(k) is None:
            out.append(FieldViolation(f"{field}[{quote(k, 16)}]",
                                      f"{quote(k)} is not a valid sku (must match "
                                      f"{val.SKU_RE.pattern})"))
        elif not value_ok(v):
            out.append(FieldViolation(f"{field}[{k}]", f"{quote(v)} {what}"))
        if len(out) >= _MAX_REPORTED:
            break
    return out


def sku_list(skus: Iterable[str], field: str, limit: int = MAX_SKUS) -> tuple[str, ...]:
    """SKUs to read: each matching the SKU pattern, at most ``limit``; duplicates dropped
    (first kept)."""
    skus = list(skus)
    val.raise_if(_count_violation(len(skus), limit, field))
    bad = [FieldViolation(f"{field}[{i}]", f"{quote(s)} is not a valid sku (must match "
                                           f"{val.SKU_RE.pattern})")
           for i, s in enumerate(skus) if val.SKU_RE.fullmatch(s) is None][:_MAX_REPORTED]
    val.raise_if(*bad)
    return tuple(dict.fromkeys(skus))


# ---- channels ----------------------------------------------------------------------------

def decode_channel(c: pb.Channel, field: str = "channel") -> Channel:
    """The engine Channel of an UpsertChannel request; ValidationError naming every bad field."""
    v: list[FieldViolation | None] = [channel_id_violation(c.id, f"{field}.id"),
                                      _text(c.name, MAX_NAME, f"{field}.name")]
    if c.kind not in _KINDS:
        v.append(FieldViolation(f"{field}.kind", f"{c.kind} is not a channel kind (1..6)"))
    whs = list(c.warehouse_ids)
    v.append(_count_violation(len(whs), MAX_WAREHOUSES, f"{field}.warehouse_ids"))
    if len(whs) <= MAX_WAREHOUSES:
        for i, w in enumerate(whs):
            v.append(val.pattern_violation(w, val.WAREHOUSE_ID_RE, f"{field}.warehouse_ids[{i}]",
                                           "warehouse id"))
        if len(set(whs)) != len(whs):
            dup = next(w for i, w in enumerate(whs) if w in whs[:i])
            v.append(FieldViolation(f"{field}.warehouse_ids", f"{quote(dup)} is listed twice"))
    v.append(val.int_violation(c.safety_stock, 0, MAX_SAFETY, f"{field}.safety_stock"))
    v.extend(_sku_map_violations(c.sku_safety_stock, f"{field}.sku_safety_stock",
                                 lambda n: 0 <= n <= MAX_SAFETY, f"must be in 0..{MAX_SAFETY}"))
    pct = c.max_share_pct if c.HasField("max_share_pct") else 100.0
    v.append(val.float_violation(pct, 0.0, 100.0, f"{field}.max_share_pct"))
    if c.webhook_secret:
        v.append(_printable(c.webhook_secret, 16, 256, f"{field}.webhook_secret"))
    p = c.push
    v.append(url_violation(p.base_url, f"{field}.push.base_url"))
    for name in ("access_token", "consumer_key", "consumer_secret"):
        v.append(_printable(getattr(p, name), 0, MAX_CREDENTIAL, f"{field}.push.{name}"))
    v.append(val.pattern_violation(p.location_id, LOCATION_ID_RE, f"{field}.push.location_id",
                                   "location id"))
    v.extend(_sku_map_violations(p.sku_items, f"{field}.push.sku_items",
                                 lambda s: ITEM_ID_RE.fullmatch(s) is not None,
                                 f"is not a channel item id (must match {ITEM_ID_RE.pattern})"))
    val.raise_if(*v)
    return Channel(
        id=c.id, name=c.name, kind=ChannelKind(c.kind), warehouse_ids=tuple(whs),
        safety_stock=c.safety_stock, sku_safety_stock=dict(c.sku_safety_stock),
        share_bp=share_bp(pct) if math.isfinite(pct) else 10_000,
        webhook_secret=c.webhook_secret, disabled=c.disabled,
        push=PushTarget(base_url=p.base_url, access_token=p.access_token,
                        consumer_key=p.consumer_key, consumer_secret=p.consumer_secret,
                        location_id=p.location_id, sku_items=dict(p.sku_items)))


def encode_channel(ch: Channel) -> pb.Channel:
    """The answer: every public field; the secrets only as has_webhook_secret and
    push.has_credentials."""
    p = ch.push
    out = pb.Channel(
        id=ch.id, name=ch.name, kind=int(ch.kind), warehouse_ids=list(ch.warehouse_ids),
        safety_stock=ch.safety_stock, sku_safety_stock=ch.sku_safety_stock,
        disabled=ch.disabled, has_webhook_secret=bool(ch.webhook_secret),
        updated_at=ch.updated_at,
        push=pb.PushTarget(base_url=p.base_url, location_id=p.location_id,
                           sku_items=p.sku_items, has_credentials=p.has_credentials))
    out.max_share_pct = ch.share_bp / 100
    return out


# ---- availability ------------------------------------------------------------------------

def decode_availability(r: pb.GetAvailabilityRequest) -> SkuQuery:
    return SkuQuery(require_channel_id(r.channel_id), sku_list(r.skus, "skus"))


def decode_watch(r: pb.WatchAvailabilityRequest) -> WatchQuery:
    cid = require_channel_id(r.channel_id)
    skus = sku_list(r.skus, "skus")
    val.raise_if(val.int_violation(r.after_version, 0, 2**63 - 1, "after_version"))
    return WatchQuery(cid, skus, r.after_version)


def encode_level(x: Level) -> pb.AvailabilityLevel:
    return pb.AvailabilityLevel(sku=x.sku, available_to_sell=x.available_to_sell,
                                network_available=x.network_available, reserved=x.reserved,
                                version=x.version)


# ---- webhooks ----------------------------------------------------------------------------

def _delivery_id_violation(value: str, field: str) -> FieldViolation | None:
    return None if not value else _printable(value, 1, val.MAX_KEY_LEN, field)


def decode_verify(r: pb.VerifyWebhookRequest) -> WebhookCheck:
    v = [channel_id_violation(r.channel_id, "channel_id"),
         _delivery_id_violation(r.delivery_id, "delivery_id")]
    if r.scheme not in SCHEMES:
        v.append(FieldViolation("scheme", f"{quote(r.scheme)} is not one of "
                                          f"{', '.join(SCHEMES)}"))
    if len(r.body) > MAX_BODY:
        v.append(FieldViolation("body", f"{len(r.body):,} bytes, at most {MAX_BODY:,}"))
    # a signature is never quoted back; a longer one than any HMAC encoding cannot be valid
    if len(r.signature) > 256:
        v.append(FieldViolation("signature", f"{len(r.signature)} characters, at most 256"))
    val.raise_if(*v)
    return WebhookCheck(r.channel_id, r.scheme, r.signature, r.body, r.delivery_id)


def decode_complete(r: pb.CompleteWebhookDeliveryRequest) -> tuple[str, str, str]:
    v = [channel_id_violation(r.channel_id, "channel_id"),
         _printable(r.delivery_id, 1, val.MAX_KEY_LEN, "delivery_id"),
         _text(r.outcome, MAX_OUTCOME, "outcome")]
    val.raise_if(*v)
    return r.channel_id, r.delivery_id, r.outcome


def decode_rejected(r: pb.RejectedOrder, now_ms: int, field: str = "rejected") -> RejectedOrder:
    """A rejected order to keep; received_at 0 = ``now_ms``."""
    v: list[FieldViolation | None] = [
        channel_id_violation(r.channel_id, f"{field}.channel_id"),
        val.pattern_violation(r.external_id, EXTERNAL_ID_RE, f"{field}.external_id",
                              "external order id"),
        _text(r.reason, MAX_REASON, f"{field}.reason", multiline=True),
        _delivery_id_violation(r.delivery_id, f"{field}.delivery_id"),
        _count_violation(len(r.skus), MAX_SKUS, f"{field}.skus")]
    if r.received_at:
        v.append(val.int_violation(r.received_at, val.MIN_UNIX_S * 1000, val.MAX_UNIX_S * 1000,
                                   f"{field}.received_at"))
    if len(r.skus) <= MAX_SKUS:
        # the skus a platform sent, as sent (they may be unknown here: that may be the reason)
        bad = (_printable(s, 1, MAX_REJECTED_SKU, f"{field}.skus[{i}]")
               for i, s in enumerate(r.skus))
        v.extend([b for b in bad if b is not None][:_MAX_REPORTED])
    val.raise_if(*v)
    return RejectedOrder(r.channel_id, r.external_id, r.reason, r.received_at or now_ms,
                         r.delivery_id, tuple(r.skus))


def encode_rejected(x: RejectedOrder) -> pb.RejectedOrder:
    return pb.RejectedOrder(channel_id=x.channel_id, external_id=x.external_id, reason=x.reason,
                            received_at=x.received_at, delivery_id=x.delivery_id,
                            skus=list(x.skus))


def decode_list_rejected(r: pb.ListRejectedOrdersRequest) -> tuple[str, int]:
    """(channel id or "" for every visible channel, page size)."""
    v = [channel_id_violation(r.channel_id, "channel_id") if r.channel_id else None]
    if r.page_size:
        v.append(val.int_violation(r.page_size, 1, MAX_PAGE, "page_size"))
    val.raise_if(*v)
    return r.channel_id, r.page_size or DEFAULT_PAGE
