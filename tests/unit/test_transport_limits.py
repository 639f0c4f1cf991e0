"""The request size caps (server/transport.py) fit the documented field limits
(server/validation.py), and server/errors.py caps every status so it fits in the trailers."""
from __future__ import annotations

import re

from google.rpc import error_details_pb2
from hypothesis import given
from hypothesis import strategies as st

from oms.engine.errors import FieldViolation, PreconditionError, ValidationError
from oms.v1 import common_pb2 as c
from oms.v1 import orders_pb2 as o
from oms.server import validation as v
from oms.server.errors import MAX_MESSAGE_BYTES, MAX_VIOLATIONS_BYTES, clip, to_status
from oms.server.transport import DEFAULT_REQUEST_LIMIT, MAX_ORDER_BYTES, batch_receive_limit

W = "\U0001F600"  # the widest character: 4 bytes of UTF-8


def _max_len(rx: re.Pattern[str]) -> int:
    return int(re.findall(r"\{1,(\d+)\}", rx.pattern)[-1])


def _largest_order() -> o.PlaceOrderRequest:
    t = v.TEXT_LIMITS
    return o.PlaceOrderRequest(
        idempotency_key="k" * v.MAX_KEY_LEN, channel="c" * _max_len(v.CHANNEL_RE),
        payment_token="t" * v.MAX_KEY_LEN, allow_partial=True,
        customer=c.Customer(id=W * t["customer.id"], email=W * t["customer.email"],
                            name=W * t["customer.name"]),
        ship_to=c.Address(name=W * t["address.name"], line1=W * t["address.line1"],
                          city=W * t["address.city"], region=W * t["address.region"],
                          postal_code="9" * _max_len(v.POSTAL_CODE_RE),
                          country=W * t["address.country"], latitude=-89.9, longitude=-179.9),
        # negative numbers take the longest varint (10 bytes)
        lines=[c.OrderLine(sku="S" * _max_len(v.SKU_RE), quantity=-1, unit_price_cents=-1)
               for _ in range(v.MAX_LINES)])


def test_largest_valid_order_fits_the_caps() -> None:
    one = _largest_order().ByteSize()
    assert one + 4 <= MAX_ORDER_BYTES  # + its tag and length inside a batch
    assert 4 * one <= DEFAULT_REQUEST_LIMIT  # PlaceOrder and a PlaceOrders message: room to spare
    batch = o.BatchPlaceOrdersRequest(requests=[_largest_order()] * 1000)
    assert batch.ByteSize() <= batch_receive_limit(1000)


def test_batch_limit_scales_with_max_batch() -> None:
    assert batch_receive_limit(1) == DEFAULT_REQUEST_LIMIT
    assert batch_receive_limit(2000) == 2 * batch_receive_limit(1000)


@given(st.text(max_size=2000), st.integers(16, 1024))
def test_clip_is_a_byte_bounded_prefix(text: str, limit: int) -> None:
    out = clip(text, limit)
    assert len(out.encode("utf-8", "replace")) <= limit
    if out != text:
        assert out.endswith("...") and text.startswith(out[:-3])


def test_status_of_a_huge_error_is_capped() -> None:
    long = "é" * 100_000
    st_ = to_status(PreconditionError(f"order {long} is not cancellable"))
    assert len(st_.message.encode()) <= MAX_MESSAGE_BYTES
    many = ValidationError([FieldViolation(f"lines[{i}].sku" + W * 500, long) for i in range(100)])
    st_ = to_status(many)
    assert len(st_.message.encode()) <= MAX_MESSAGE_BYTES
    br = error_details_pb2.BadRequest()
    st_.details[0].Unpack(br)
    assert br.ByteSize() <= MAX_VIOLATIONS_BYTES + 200
    assert all(len(fv.description.encode()) <= MAX_MESSAGE_BYTES for fv in br.field_violations)
    assert "more violation(s) not shown" in br.field_violations[-1].description
    assert st_.ByteSize() < 4096  # base64 in the trailers: well under the 8 KB soft limit


def test_short_errors_are_untouched() -> None:
    err = ValidationError([FieldViolation("lines[0].sku", "'NL\\n' must match [A-Z]+")])
    st_ = to_status(err)
    br = error_details_pb2.BadRequest()
    st_.details[0].Unpack(br)
    assert br.field_violations[0].description == "'NL\\n' must match [A-Z]+"
    assert br.field_violations[0].field == "lines[0].sku"
