"""Hand-written protobuf encoding of intake results: the bytes of ``oms.v1.Order`` and
``PlaceOrderResult`` straight from the domain objects.

Why: building an ``Order`` message field by field through the Python protobuf API costs about
40 µs (a dozen nested message constructions), more than anything else intake does per order.
Writing the wire format directly is a few µs; the result is parsed back into the message type
once per call (C code), so servicers still return typed messages. Orders that carry packages or
shipments (only ever met when an idempotent repeat returns an older order) go through
``pb_convert.encode_order``. tests/unit/test_wire.py checks every field against ``codec``.
"""
from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from functools import lru_cache

from oms.engine.errors import ItemFailedError, OmsError
from oms.engine.models import Order
from oms.v1 import common_pb2 as c
from oms.v1 import orders_pb2 as o
from oms.server import pb_convert
from oms.server.errors import internal_status, to_status
from oms.server.varint import encode_varint as _varint

log = logging.getLogger(__name__)

_double = struct.Struct("<d").pack
# Lengths below 128 are one byte: a table lookup instead of a call (the function-call count is
# what this module's speed is about).
_B = [bytes((i,)) for i in range(128)]


def _vlen(n: int) -> bytes:
    return _B[n] if n < 128 else _varint(n)


@lru_cache(maxsize=65536)
def _sfield(tag: bytes, s: str) -> bytes:
    """tag + length + UTF-8 of a string field; cached: skus, warehouses, channels and reasons
    repeat across orders. Empty strings are omitted (proto3 default)."""
    if not s:
        return b""
    b = s.encode()
    return tag + _vlen(len(b)) + b


@lru_cache(maxsize=65536)  # statuses, quantities, prices and the batch's timestamps repeat
def _ifield(tag: bytes, n: int) -> bytes:
    return tag + _varint(n) if n else b""


def _dfield(tag: bytes, x: float) -> bytes:
    # proto3 omits a default 0.0 but keeps -0.0 (its bits are not zero)
    return tag + _double(x) if x or str(x)[0] == "-" else b""


@lru_cache(maxsize=4096)  # a batch shares its "received" and "allocated" entries (per actor)
def _history(status: int, at_ms: int, reason: str, actor: str) -> bytes:
    return _sub(_LEN[13], _ifield(_VAR[1], status) + _ifield(_VAR[2], at_ms) + _sfield(_LEN[3], reason)
                + _sfield(_LEN[4], actor))


def _sub(tag: bytes, payload: bytes) -> bytes:
    return tag + _vlen(len(payload)) + payload


# tags (field number << 3 | wire type) of the fields written here
_LEN = [bytes((f << 3 | 2,)) for f in range(16)]  # length-delimited, fields 1..15
_VAR = [bytes((f << 3 | 0,)) for f in range(16)]  # varint, fields 1..15
_F64 = [bytes((f << 3 | 1,)) for f in range(16)]  # 64-bit, fields 1..15
_T16, _T17 = b"\x80\x01", b"\x88\x01"  # varint fields 16, 17
_T18, _T19 = b"\x91\x01", b"\x9a\x01"  # double 18, string 19
_NO_PAYMENT = _sub(_LEN[14], _sfield(_LEN[1], "NONE"))


def order_bytes(order: Order, source: o.PlaceOrderRequest | None = None) -> bytes:
    """The serialized ``oms.v1.Order`` of ``order`` (same message as ``pb_convert.encode_order``).

    ``source``: the request the order was just decoded from and placed by, when the caller has
    it. Customer, ship-to and lines are then its own sub-messages re-serialized in C (the codec
    copies them unchanged; geocoded coordinates are appended, and a later occurrence of a
    scalar field wins when parsed). Fields are not all in field-number order (parsers take any
    order): the ones a batch shares are cached together."""
    if order.packages or order.shipments or order.picked_warehouses:
        return pb_convert.encode_order(order).SerializeToString()
    L, V, B = _LEN, _VAR, _B
    if source is not None:
        customer = source.customer.SerializeToString()
        src = source.ship_to
        address = src.SerializeToString()
        st = order.ship_to
        if src.latitude != st.latitude or src.longitude != st.longitude:
            address += _dfield(_F64[7], st.latitude) + _dfield(_F64[8], st.longitude)
        lines = [ln.SerializeToString() for ln in source.lines]
    else:
        cu, st = order.customer, order.ship_to
        customer = _sfield(L[1], cu.id) + _sfield(L[2], cu.email) + _sfield(L[3], cu.name)
        address = b"".join((
            _sfield(L[1], st.name), _sfield(L[2], st.line1), _sfield(L[3], st.city),
            _sfield(L[4], st.region), _sfield(L[5], st.postal_code), _sfield(L[6], st.country),
            _dfield(_F64[7], st.latitude), _dfield(_F64[8], st.longitude)))
        lines = [_sfield(L[1], ln.sku) + _ifield(V[2], ln.quantity) + _ifield(V[3], ln.unit_price_cents)
                 for ln in order.lines]
    nc, na = len(customer), len(address)
    parts = [_unique(L[1], order.id), _unique(L[2], order.idempotency_key),
             _head(order.channel, order.status),
             L[5], B[nc] if nc < 128 else _varint(nc), customer,
             L[6], B[na] if na < 128 else _varint(na), address]
    for m in lines:
        parts += (L[7], B[len(m)], m) if len(m) < 128 else (L[7], _varint(len(m)), m)
    for a in order.allocations:
        m = _allocation(a.sku, a.warehouse_id, a.quantity, a.distance_km)
        parts += (L[8], B[len(m)] if len(m) < 128 else _varint(len(m)), m)
    parts.append(_times(order.hold_until, order.created_at, order.updated_at, order.promised_by,
                        order.delivered_at))
    for h in order.history:
        parts.append(_history(h.status, h.at_ms, h.reason, h.actor))
    p = order.payment
    if p is None:
        parts.append(_NO_PAYMENT)
    else:
        parts.append(_sub(L[14], b"".join((
            _sfield(L[1], p.status), _ifield(V[2], p.authorized_cents),
            _ifield(V[3], p.captured_cents), _ifield(V[4], p.refunded_cents),
            _sfield(L[5], p.authorization_id)))))
    parts.append(_dfield(_T18, order.risk_score))
    for r in order.risk_reasons:  # repeated: an empty string is an element, written too
        b = r.encode()
        parts += (_T19, _vlen(len(b)), b)
    return b"".join(parts)


def _unique(tag: bytes, s: str) -> bytes:
    """A string field whose value never repeats (order id, idempotency key): not cached."""
    if not s:
        return b""
    b = s.encode()
    return tag + _vlen(len(b)) + b


@lru_cache(maxsize=1024)
def _head(channel: str, status: int) -> bytes:
    return _sfield(_LEN[3], channel) + _ifield(_VAR[4], status)


@lru_cache(maxsize=65536)
def _allocation(sku: str, warehouse_id: str, quantity: int, distance_km: float) -> bytes:
    return (_sfield(_LEN[1], sku) + _sfield(_LEN[2], warehouse_id) + _ifield(_VAR[3], quantity)
            + _dfield(_F64[4], distance_km))


@lru_cache(maxsize=1024)  # a batch shares its timestamps
def _times(hold_until: int, created_at: int, updated_at: int, promised_by: int,
           delivered_at: int) -> bytes:
    return (_ifield(_VAR[10], hold_until) + _ifield(_VAR[11], created_at)
            + _ifield(_VAR[12], updated_at) + _ifield(_T16, promised_by) + _ifield(_T17, delivered_at))


def result_bytes(result: Order | OmsError, source: o.PlaceOrderRequest | None = None) -> bytes:
    """The serialized ``oms.v1.PlaceOrderResult``: the order, or the error as google.rpc.Status."""
    if isinstance(result, OmsError):
        return _sub(_LEN[2], to_status(result).SerializeToString())
    return _sub(_LEN[1], order_bytes(result, source))


def batch_response_bytes(results: Sequence[Order | OmsError],
                         sources: Sequence[o.PlaceOrderRequest | None] | None = None) -> bytes:
    """The serialized ``oms.v1.BatchPlaceOrdersResponse``; ``sources[i]`` as in order_bytes."""
    if sources is None:
        return b"".join([_sub(_LEN[1], result_bytes(r)) for r in results])
    return b"".join([_sub(_LEN[1], result_bytes(r, s)) for r, s in zip(results, sources)])


# ---- per-order isolation --------------------------------------------------------------------
# A result the encoder cannot write (a bug, or a value no check stopped) must fail alone: the
# whole response is built and parsed back once (the fast path), and only if that fails is each
# result encoded and checked on its own, the bad ones replaced by an INTERNAL status that says
# whether the order was placed.

def _unencodable(result: Order | OmsError) -> bytes:
    if isinstance(result, Order):
        msg = (f"order {result.id} was placed, but the server could not encode it; "
               "this is a bug: report it with the order id")
    else:
        msg = f"this order failed ({type(result).__name__}), and the error could not be encoded"
    return _sub(_LEN[2], internal_status(msg).SerializeToString())


def checked_result_bytes(result: Order | OmsError, source: o.PlaceOrderRequest | None = None
                         ) -> bytes:
    """``result_bytes``, parsed back to prove it valid; an INTERNAL status of its own if not."""
    try:
        b = result_bytes(result, source)
        o.PlaceOrderResult.FromString(b)
        return b
    except Exception:
        log.exception("cannot encode the result of %s",
                      result.id if isinstance(result, Order) else type(result).__name__)
        return _unencodable(result)


def place_result(result: Order | OmsError, source: o.PlaceOrderRequest | None = None
                 ) -> o.PlaceOrderResult:
    try:
        return o.PlaceOrderResult.FromString(result_bytes(result, source))
    except Exception:
        return o.PlaceOrderResult.FromString(checked_result_bytes(result, source))


def batch_response(results: Sequence[Order | OmsError],
                   sources: Sequence[o.PlaceOrderRequest | None]) -> o.BatchPlaceOrdersResponse:
    """``BatchPlaceOrdersResponse``: one bad result fails alone, never the response."""
    try:
        return o.BatchPlaceOrdersResponse.FromString(batch_response_bytes(results, sources))
    except Exception:
        return o.BatchPlaceOrdersResponse.FromString(b"".join(
            [_sub(_LEN[1], checked_result_bytes(r, s)) for r, s in zip(results, sources)]))


class UnencodableOrder(ItemFailedError):
    """A placed order that cannot be encoded (unary PlaceOrder): the message says it was placed."""


def order_message(order: Order, source: o.PlaceOrderRequest | None = None) -> c.Order:
    try:
        return c.Order.FromString(order_bytes(order, source))
    except Exception as e:
        raise UnencodableOrder(f"order {order.id} was placed, but the server could not encode "
                               "it; this is a bug: report it with the order id") from e
