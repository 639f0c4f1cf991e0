"""Hand-written protobuf encoding of intake results: the bytes of ``oms.v1.Order`` and
``PlaceOrderResult`` straight from the domain objects.

Why: building an ``Order`` message field by field through the Python protobuf API costs about
40 µs (a dozen nested message constructions), more than anything else intake does per order.
Writing the wire format directly is a few µs; the result is parsed back into the message type
once per call (C code), so servicers still return typed messages. Orders that carry packages or
shipments (only ever met when an idempotent repeat returns an older order) go through
``codec.encode_order``. tests/unit/test_wire.py checks every field against ``codec``.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import lru_cache

from engine.errors import OmsError
from engine.models import Order
from server import codec
from server.errors import to_status

_double = struct.Struct("<d").pack


@lru_cache(maxsize=8192)
def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64: two's complement, ten bytes
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def _len(field: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or sub-message)."""
    return _key(field, 2) + _varint(len(payload)) + payload


def _str(field: int, s: str) -> bytes:
    return _len(field, s.encode()) if s else b""


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n) if n else b""


def _dbl(field: int, x: float) -> bytes:
    # proto3 omits a default 0.0 but keeps -0.0 (its bits are not zero)
    return _key(field, 1) + _double(x) if x or str(x)[0] == "-" else b""


def _customer(order: Order) -> bytes:
    cu = order.customer
    return _str(1, cu.id) + _str(2, cu.email) + _str(3, cu.name)


def _address(order: Order) -> bytes:
    st = order.ship_to
    return (_str(1, st.name) + _str(2, st.line1) + _str(3, st.city) + _str(4, st.region)
            + _str(5, st.postal_code) + _str(6, st.country) + _dbl(7, st.latitude)
            + _dbl(8, st.longitude))


def _payment(order: Order) -> bytes:
    p = order.payment
    if p is None:
        return _str(1, "NONE")
    return (_str(1, p.status) + _int(2, p.authorized_cents) + _int(3, p.captured_cents)
            + _int(4, p.refunded_cents) + _str(5, p.authorization_id))


def order_bytes(order: Order) -> bytes:
    """The serialized ``oms.v1.Order`` of ``order`` (same message as ``codec.encode_order``)."""
    if order.packages or order.shipments:
        return codec.encode_order(order).SerializeToString()
    parts = [_str(1, order.id), _str(2, order.idempotency_key), _str(3, order.channel),
             _int(4, order.status), _len(5, _customer(order)), _len(6, _address(order))]
    for ln in order.lines:
        parts.append(_len(7, _str(1, ln.sku) + _int(2, ln.quantity) + _int(3, ln.unit_price_cents)))
    for a in order.allocations:
        parts.append(_len(8, _str(1, a.sku) + _str(2, a.warehouse_id) + _int(3, a.quantity)
                          + _dbl(4, a.distance_km)))
    parts += [_int(10, order.hold_until), _int(11, order.created_at), _int(12, order.updated_at)]
    for h in order.history:
        parts.append(_len(13, _int(1, h.status) + _int(2, h.at_ms) + _str(3, h.reason)))
    parts += [_len(14, _payment(order)), _int(16, order.promised_by), _int(17, order.delivered_at),
              _dbl(18, order.risk_score)]
    for r in order.risk_reasons:
        parts.append(_len(19, r.encode()))
    return b"".join(parts)


def result_bytes(result: Order | OmsError) -> bytes:
    """The serialized ``oms.v1.PlaceOrderResult``: the order, or the error as google.rpc.Status."""
    if isinstance(result, OmsError):
        return _len(2, to_status(result).SerializeToString())
    return _len(1, order_bytes(result))


def batch_response_bytes(results: Sequence[Order | OmsError]) -> bytes:
    """The serialized ``oms.v1.BatchPlaceOrdersResponse``."""
    return b"".join([_len(1, result_bytes(r)) for r in results])
