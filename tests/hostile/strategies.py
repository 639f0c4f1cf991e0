"""Hypothesis strategies for every RPC's request, built from the proto descriptors alone.

Each field gets a mix of plausible values (ids that exist in the seeded world, so a request
gets past the first check and reaches deeper code) and hostile ones chosen by the field's type:
boundary lengths, control and non-ASCII characters, integer extremes, non-finite floats,
unknown enum numbers. Plausible values come first in every ``one_of`` so that shrinking walks
towards a request whose only odd field is the one that matters."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor as d
from google.protobuf import message_factory
from hypothesis import strategies as st

from oms.server.varint import encode_varint as _varint
from oms.v1 import (channels_pb2, fulfillment_pb2, inventory_pb2, orders_pb2, reporting_pb2,
                    returns_pb2)
from tests.hostile.world import SKUS, WAREHOUSES, World

MODULES = (orders_pb2, inventory_pb2, fulfillment_pb2, returns_pb2, reporting_pb2, channels_pb2)
FD = d.FieldDescriptor

GENERIC_LENGTHS = (1, 32, 33, 64, 65, 128, 129, 256, 1024, 100_000)
INT32 = (0, -1, 1, 2**31 - 1, -2**31)
INT64 = INT32 + (2**31, 2**32, 2**53, 2**53 + 1, 2**62, 2**63 - 1, -2**63)
UINT64 = (0, 1, 2**32, 2**53, 2**64 - 1)
FLOATS = (0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e308, -1e308, 1e-300, -1.0,
          1e-9, 2.0**63)
UNKNOWN_ENUMS = (99, -1, 2**31 - 1)
# Appended, prepended or substituted into plausible values.
ODD_CHARS = ("\n", "\r", "\x00", "\t", " ", "\x7f", "\u0085", "\u2028", "\ufeff", "\u202e",
             "\u200b", "é", "ß", "日本", "😀", "\U0001d7d9")
ODD_STRINGS = (" ", "  ", "\n", "١", "²", "١٢٣", "A٣-S١٧", "A03-S017\n", "A3-S17", "A99-S999",
               "../../etc/passwd", "%s%n", "{w:DSM}", "oms:{net}:warehouses", "*", "?", "'\"",
               "DSM.", ".x", "DSM.x.y", "-1", "0x10", "1e309", "NaN", "null", "\\", "a b",
               "99999999999999999999999-0@DSM", "18446744073709551616-0@DSM", "²-1@DSM",
               "١-١@DSM", "0-0@", "@DSM", "-@DSM", "0-0@NOPE")


@dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. oms.v1.OrderService
    name: str
    input: d.Descriptor
    output: d.Descriptor
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def id(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.name}"


def all_rpcs() -> list[Rpc]:
    """Every method of every service in the oms.v1 file descriptors."""
    out = []
    for mod in MODULES:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            for m in svc.methods:
                out.append(Rpc(svc.full_name, m.name, m.input_type, m.output_type, m.client_streaming,
                               m.server_streaming))
    return out


def message_class(desc: d.Descriptor) -> type:
    return message_factory.GetMessageClass(desc)


# ---- limits ---------------------------------------------------------------------------------

def _validation() -> Any:
    try:  # being written alongside this suite; its table sharpens the boundaries when present
        from oms.server import validation
    except Exception:
        return None
    return validation


_PATTERN_OF = {  # field name -> attribute of server.validation holding its pattern
    "warehouse_id": "WAREHOUSE_ID_RE", "sku": "SKU_RE", "skus": "SKU_RE",
    "channel": "CHANNEL_RE", "order_id": "ORDER_ID_RE", "wave_id": "WAVE_ID_RE",
    "return_id": "RETURN_ID_RE", "tracking_number": "TRACKING_NUMBER_RE",
    "carrier": "CARRIER_RE", "service_level": "SERVICE_LEVEL_RE", "type": "TRACKING_TYPE_RE",
    "postal_code": "POSTAL_CODE_RE", "page_token": "PAGE_TOKEN_RE", "location": "LOCATION_RE",
}
_KEY_FIELDS = {"idempotency_key", "payment_token", "event_id"}


def limits_for(msg: d.Descriptor, f: d.FieldDescriptor) -> list[int]:
    """Documented length limits of a string field (from server.validation), else none."""
    v = _validation()
    if v is None:
        return []
    found: set[int] = set()
    try:
        text = getattr(v, "TEXT_LIMITS", {})
        for key in (f"{msg.name.lower()}.{f.name}", f.name):
            if key in text:
                found.add(int(text[key]))
        if f.name == "location" and msg.name == "RecordTrackingEventRequest":
            found.add(int(text.get("tracking.location", 0)))
        if f.name in _KEY_FIELDS:
            found.add(int(getattr(v, "MAX_KEY_LEN", 0)))
        pat = getattr(v, _PATTERN_OF.get(f.name, "") or "_none", None)
        if msg.name == "Warehouse" and f.name == "id":
            pat = getattr(v, "WAREHOUSE_ID_RE", None)
        if pat is not None:
            found |= {int(n) for n in re.findall(r"\{\d+,(\d+)\}", pat.pattern)}
    except Exception:
        return sorted(x for x in found if x > 0)
    return sorted(x for x in found if x > 0)


# ---- plausible values -----------------------------------------------------------------------

def plausible(world: World, msg: d.Descriptor, f: d.FieldDescriptor) -> st.SearchStrategy:
    """Values that exist or are valid, by field name (and the message for ambiguous names)."""
    n, m = f.name, msg.name
    pools: dict[str, Any] = {
        "warehouse_id": WAREHOUSES, "sku": SKUS, "skus": SKUS,
        "order_id": world.order_ids, "order_ids": world.order_ids,
        "return_id": world.return_ids, "wave_id": world.wave_ids,
        "tracking_number": world.tracking_numbers,
        "after_event_id": ["", "0", *world.event_ids],
        "channel": ["web", "pos", ""], "payment_token": ["", "tok_visa", "tok_decline"],
        "carrier": ["", *world.carriers], "service_level": ["", "GROUND", "EXPRESS"],
        "type": ["IN_TRANSIT", "DELIVERED", "EXCEPTION", "OUT_FOR_DELIVERY"],
        "event_id": ["ev-1", "seed-e1"], "email": ["ann@example.com"], "name": ["Ann"],
        "line1": ["1 Main St"], "city": ["Ames"], "region": ["IA"], "country": ["US", ""],
        "postal_code": ["50010", "50309"], "reason": ["", "customer asked"],
        "page_token": [""], "quantity": [1, 2], "unit_price_cents": [1500, 0],
        "on_hand": [10, 60], "counted": [5, 60], "delta": [1, -1, 5], "reorder_point": [0, 5],
        "page_size": [0, 10], "max_orders": [0, 10], "batch_max_orders": [0, 4],
        "batch_max_items": [0, 30], "time_budget_s": [0.2], "window_days": [0.0, 14.0],
        "lead_time_days": [3.0], "amount_cents": [100, 1500], "limit": [0, 10],
        "aisles": [6], "slots_per_aisle": [10], "slot_length_m": [1.0],
        "aisle_spacing_m": [3.0], "weight_g": [400], "length_mm": [120], "width_mm": [100],
        "height_mm": [100], "occurred_at": [0, 1_700_000_000], "latitude": [0.0, 41.6],
        "longitude": [0.0, -93.6],
        # ChannelService (the seeded world has channel "web"; see world.seed)
        "channel_id": ["web", "pos"], "warehouse_ids": WAREHOUSES, "scheme": ["shopify", "generic"],
        "delivery_id": ["", "seed-d1", "d-2"], "external_id": ["seed-1", "1002"],
        "after_version": [0, 1], "base_url": ["", "https://shop.example.com"],
        "webhook_secret": ["", "another-secret-0123"], "location_id": ["", "loc-1"],
        "safety_stock": [0, 3], "max_share_pct": [50.0, 100.0], "outcome": ["order x"],
    }
    special: dict[tuple[str, str], Any] = {
        ("Warehouse", "id"): [*WAREHOUSES, "NEWWH"], ("Product", "sku"): [*SKUS, "SKU-NEW"],
        ("Customer", "id"): ["C-1", "C-9", ""], ("Warehouse", "name"): ["New Hub"],
        ("Product", "name"): ["Mug"], ("Warehouse", "postal_code"): ["50309", "60601"],
        ("Warehouse", "latitude"): [41.6], ("Warehouse", "longitude"): [-93.6],
        ("SetStockRequest", "location"): ["", "A01-S003", "A02-S005"],
        ("RecordTrackingEventRequest", "location"): ["Ames, IA", ""],
        ("ReturnLine", "quantity"): [1],
        ("Channel", "id"): ["web", "pos"], ("Channel", "kind"): [1, 3, 6],
        ("SkuSafetyStockEntry", "key"): SKUS, ("SkuSafetyStockEntry", "value"): [0, 2],
        ("SkuItemsEntry", "key"): SKUS, ("SkuItemsEntry", "value"): ["1", "gid://item/2"],
    }
    if (m, n) in special:
        return st.sampled_from(special[(m, n)])
    if n == "idempotency_key":
        return st.one_of(st.just(""), st.integers(0, 10**6).map(lambda i: f"hk-{i}"),
                         st.sampled_from(world.idempotency_keys or ["hk"]))
    pool = pools.get(n)
    if pool:
        return st.sampled_from(list(pool))
    return _typed_default(f)


def _typed_default(f: d.FieldDescriptor) -> st.SearchStrategy:
    t = f.type
    if t == FD.TYPE_STRING:
        return st.sampled_from(["", "x", "Ann"])
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=8)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_ENUM:
        return st.sampled_from([v.number for v in f.enum_type.values])
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        return st.sampled_from([0.0, 1.0])
    return st.integers(0, 10)


# ---- hostile values -------------------------------------------------------------------------

def _lengths(msg: d.Descriptor, f: d.FieldDescriptor) -> list[int]:
    lim = limits_for(msg, f)
    return sorted({0, *GENERIC_LENGTHS, *lim, *(x + 1 for x in lim), *(max(x - 1, 1) for x in lim)})


def hostile_string(world: World, msg: d.Descriptor, f: d.FieldDescriptor) -> st.SearchStrategy:
    base = plausible(world, msg, f).filter(lambda v: isinstance(v, str))
    sized = st.tuples(st.sampled_from(_lengths(msg, f)), base, st.booleans()).map(
        lambda t: ("A" * t[0]) if t[2] or not t[1] else (t[1] + "9" * t[0])[:t[0]])
    odd = st.tuples(base, st.sampled_from(ODD_CHARS), st.sampled_from(("end", "start", "mid"))).map(
        lambda t: t[0] + t[1] if t[2] == "end" else t[1] + t[0] if t[2] == "start"
        else t[0][: len(t[0]) // 2] + t[1] + t[0][len(t[0]) // 2:])
    digits = base.map(lambda s: s.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    return st.one_of(st.just(""), sized, odd, digits, st.sampled_from(ODD_STRINGS),
                     st.text(max_size=40))


def hostile_scalar(world: World, msg: d.Descriptor, f: d.FieldDescriptor) -> st.SearchStrategy:
    t = f.type
    if t == FD.TYPE_STRING:
        return hostile_string(world, msg, f)
    if t == FD.TYPE_BYTES:
        return st.binary(max_size=64)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_ENUM:
        return st.sampled_from([*(v.number for v in f.enum_type.values), *UNKNOWN_ENUMS])
    if t == FD.TYPE_DOUBLE:
        return st.one_of(st.sampled_from(FLOATS), st.floats())
    if t == FD.TYPE_FLOAT:
        return st.one_of(st.sampled_from(FLOATS), st.floats(width=32)).map(_as_f32)
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.one_of(st.sampled_from(INT32), st.integers(-2**31, 2**31 - 1))
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.sampled_from((0, 1, 2**31, 2**32 - 1))
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.sampled_from(UINT64)
    return st.one_of(st.sampled_from(INT64), st.integers(-2**63, 2**63 - 1))


def _as_f32(x: float) -> float:
    import struct

    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return float("inf") if x > 0 else float("-inf")


def _pick(odds: int, good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """``bad`` once in ``odds + 1`` draws. The flag shrinks towards False, so a shrunk example
    keeps only the hostile fields that matter."""
    return st.sampled_from([False] * odds + [True]).flatmap(lambda h: bad if h else good)


def leaves(msg: d.Descriptor, depth: int = 0) -> int:
    """Scalar fields in a request tree: about one of them is made hostile per example."""
    n = 0
    for f in msg.fields:
        if f.type == FD.TYPE_MESSAGE:
            n += leaves(f.message_type, depth + 1) if depth < 3 else 0
        else:
            n += 1
    return n


def field_value(world: World, msg: d.Descriptor, f: d.FieldDescriptor, depth: int, odds: int
                ) -> st.SearchStrategy:
    if f.type == FD.TYPE_MESSAGE:
        if depth >= 3:
            return st.none()
        sub = message_dict(world, f.message_type, depth + 1, odds)
        if f.is_repeated:
            return _pick(odds, st.lists(sub, min_size=1, max_size=3), st.just([]))
        return _pick(odds, sub, st.none())
    good = plausible(world, msg, f)
    bad = hostile_scalar(world, msg, f)
    if f.is_repeated:
        return _pick(odds, st.lists(good, min_size=1, max_size=3),
                     st.lists(_pick(1, good, bad), min_size=0, max_size=3))
    return _pick(odds, good, bad)


def message_dict(world: World, msg: d.Descriptor, depth: int = 0, odds: int = 3
                 ) -> st.SearchStrategy:
    """A dict field name -> value (None: unset) for ``msg``, recursively."""
    return st.fixed_dictionaries({f.name: field_value(world, msg, f, depth, odds)
                                  for f in msg.fields})


def build(msg: d.Descriptor, values: dict[str, Any]) -> Any:
    """The protobuf message for a generated dict."""
    out = message_class(msg)()
    fill(out, values)
    return out


def fill(out: Any, values: dict[str, Any]) -> None:
    for f in out.DESCRIPTOR.fields:
        v = values.get(f.name)
        if v is None:
            continue
        if f.type == FD.TYPE_MESSAGE:
            if f.message_type.GetOptions().map_entry:  # map<k, v>: entries of {key, value}
                _fill_map(getattr(out, f.name), f.message_type, v)
            elif f.is_repeated:
                for item in v:
                    fill(getattr(out, f.name).add(), item)
            else:
                fill(getattr(out, f.name), v)
                getattr(out, f.name).SetInParent()
        elif f.is_repeated:
            getattr(out, f.name).extend(v)
        else:
            setattr(out, f.name, v)


def _fill_map(m: Any, entry: d.Descriptor, items: list[dict[str, Any]]) -> None:
    kf, vf = entry.fields_by_name["key"], entry.fields_by_name["value"]
    for item in items:
        k = item.get("key")
        k = kf.default_value if k is None else k
        v = item.get("value")
        if vf.type == FD.TYPE_MESSAGE:
            fill(m[k], v or {})
        else:
            m[k] = vf.default_value if v is None else v


def request(world: World, rpc: Rpc) -> st.SearchStrategy:
    """One request message of ``rpc`` (a list of 1-3 for a client stream)."""
    odds = max(3, leaves(rpc.input))
    one = message_dict(world, rpc.input, 0, odds).map(lambda v: build(rpc.input, v))
    if rpc.client_streaming:
        return st.lists(one, min_size=1, max_size=3)
    return one


# ---- undecodable bytes ----------------------------------------------------------------------

def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _broken_for(msg: d.Descriptor) -> Iterator[bytes]:
    yield b"\xff"  # a tag varint cut short
    yield b"\x80" * 11  # an over-long varint
    yield _tag(1, 7)  # wire type 7 does not exist
    yield b"\x00"  # field number 0
    for f in msg.fields:
        yield _tag(f.number, 2) + _varint(2**40) + b"xx"  # length prefix far past the end
        yield _tag(f.number, 2) + _varint(2**63) + b"x"
        yield _tag(f.number, 2) + _varint(5) + b"ab"  # truncated payload
        if f.type == FD.TYPE_STRING:
            yield _tag(f.number, 2) + _varint(3) + b"\xff\xfe\xc0"  # invalid UTF-8
            yield _tag(f.number, 2) + _varint(2) + b"\xed\xa0"  # truncated surrogate
        if f.type == FD.TYPE_MESSAGE:
            inner = b"".join(_broken_for_shallow(f.message_type))
            yield _tag(f.number, 2) + _varint(len(inner)) + inner
        if f.type in (FD.TYPE_INT64, FD.TYPE_INT32, FD.TYPE_ENUM, FD.TYPE_BOOL):
            yield _tag(f.number, 0) + b"\xff" * 10 + b"\x01"  # a varint of 11 bytes
            yield _tag(f.number, 0)  # the value missing
        if f.type == FD.TYPE_DOUBLE:
            yield _tag(f.number, 1) + b"\x00\x00"  # 2 of 8 bytes


def _broken_for_shallow(msg: d.Descriptor) -> Iterator[bytes]:
    for f in msg.fields:
        if f.type == FD.TYPE_STRING:
            yield _tag(f.number, 2) + _varint(2) + b"\xc3\x28"


def raw_bytes(world: World, rpc: Rpc) -> st.SearchStrategy:
    """Bytes that do not decode as the request (or decode to something odd): broken
    constructions per field, a valid request cut short, or random bytes."""
    broken = sorted(set(_broken_for(rpc.input)))
    valid = message_dict(world, rpc.input).map(lambda v: build(rpc.input, v).SerializeToString())
    cut = st.tuples(valid, st.integers(1, 64)).filter(lambda t: len(t[0]) > 1).map(
        lambda t: t[0][: max(1, len(t[0]) - t[1])])
    glued = st.tuples(valid, st.sampled_from(broken)).map(lambda t: t[0] + t[1])
    return st.one_of(st.sampled_from(broken), cut, glued, st.binary(min_size=1, max_size=64))

