"""server.response_bytes writes the same messages as pb_convert.encode_order, for every field."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from oms.engine.errors import NotFoundError, ValidationError
from oms.engine.models import (
    Address,
    Allocation,
    Customer,
    HistoryEntry,
    Line,
    Order,
    Package,
    PaymentState,
    Shipment,
)
from oms.v1 import common_pb2 as c
from oms.v1 import orders_pb2 as pb
from oms.server import pb_convert, response_bytes
from oms.server.errors import to_status

text = st.text(max_size=12)
i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
small = st.integers(min_value=0, max_value=10**13)
real = st.floats(allow_nan=False, width=64)

orders = st.builds(
    Order,
    id=text, idempotency_key=text, channel=text, status=st.integers(0, 13),
    customer=st.builds(Customer, text, text, text),
    ship_to=st.builds(Address, text, text, text, text, text, text, real, real),
    lines=st.lists(st.builds(Line, text, i64, i64), max_size=4),
    allocations=st.lists(st.builds(Allocation, text, text, i64, real), max_size=4),
    hold_until=small, created_at=i64, updated_at=small,
    history=st.lists(st.builds(HistoryEntry, st.integers(0, 13), small, text,
                               st.sampled_from(["", "k1a2b3c4d5e6f7g8", "system:oms-wave"]) | text),
                     max_size=3),
    payment=st.none() | st.builds(PaymentState, st.sampled_from(["AUTHORIZED", "CAPTURED"]),
                                  text, small, small, text, small),
    promised_by=small, delivered_at=small, risk_score=real,
    risk_reasons=st.lists(text, max_size=3),
)


def _same(a: c.Order, b: c.Order) -> None:
    # compare as messages (field order and -0.0 vs 0.0 may differ in bytes only)
    assert a == b, f"\n{a}\n!=\n{b}"


@settings(max_examples=300, deadline=None)
@given(orders)
def test_order_bytes_parse_to_codec_message(order: Order) -> None:
    _same(c.Order.FromString(response_bytes.order_bytes(order)), pb_convert.encode_order(order))


@settings(max_examples=100, deadline=None)
@given(orders)
def test_results_and_batch(order: Order) -> None:
    err = NotFoundError("sku", "X-1")
    got = pb.BatchPlaceOrdersResponse.FromString(response_bytes.batch_response_bytes([order, err, order]))
    want = pb.BatchPlaceOrdersResponse(results=[
        pb.PlaceOrderResult(order=pb_convert.encode_order(order)),
        pb.PlaceOrderResult(error=to_status(err)),
        pb.PlaceOrderResult(order=pb_convert.encode_order(order))])
    assert got == want


def test_field_errors_keep_their_details() -> None:
    err = ValidationError.one("lines[0].quantity", "0 must be in 1..1000000")
    got = pb.PlaceOrderResult.FromString(response_bytes.result_bytes(err))
    assert got.error == to_status(err)
    assert got.error.details  # the BadRequest field violation travels


def test_orders_with_packages_or_shipments_fall_back_to_codec() -> None:
    o = Order("W.1", "", "web", 8, Customer("c"), Address(latitude=1.5, longitude=-2.0),
              [Line("A", 1, 100)], [Allocation("A", "W", 1, 3.0)],
              packages=[Package("S", 100, 10, 10, 10, ("A",), "W")],
              shipments=[Shipment("W.1/1", "W", "rt", "GROUND", "1Z", "", (), 0, 500, "IN_TRANSIT", ("A",))])
    assert c.Order.FromString(response_bytes.order_bytes(o)) == pb_convert.encode_order(o)


def test_history_actor_is_field_4() -> None:
    o = Order("W.1", "", "web", 7, Customer("c"), Address(latitude=1.5, longitude=-2.0), [], [],
              history=[HistoryEntry(1, 5, "received", "k1a2b3c4d5e6f7g8"),
                       HistoryEntry(7, 9, "cancelled", "mtls:ops"), HistoryEntry(2, 9, "old")])
    m = c.Order.FromString(response_bytes.order_bytes(o))
    assert [h.actor for h in m.history] == ["k1a2b3c4d5e6f7g8", "mtls:ops", ""]
    assert m == pb_convert.encode_order(o)


def test_zero_and_negative_zero() -> None:
    o = Order("W.1", "", "web", 2, Customer(), Address(latitude=-0.0, longitude=0.0), [], [],
              risk_score=0.0)
    m = c.Order.FromString(response_bytes.order_bytes(o))
    assert math.copysign(1.0, m.ship_to.latitude) == -1.0
    assert m == pb_convert.encode_order(o)


# Request text the edge accepts: no control or line-separator characters (server/validation.py).
plain_text = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
requests = st.builds(
    lambda cid, email, name, zip_or_point, lines, extra: _request(cid, email, name, zip_or_point,
                                                                  lines, extra),
    plain_text, plain_text, plain_text,
    st.sampled_from(["50309", "10001", "94103"]) | st.tuples(
        st.floats(-89, 89), st.floats(-179, 179)).filter(lambda p: p != (0.0, 0.0)),  # 0,0 = none
    st.lists(st.tuples(st.sampled_from(["A-1", "B.2", "C_3"]), st.integers(1, 1000),
                       st.integers(0, 10**6)), min_size=1, max_size=4),
    st.booleans())


def _request(cid: str, email: str, name: str, where: object, lines: list, extra: bool
             ) -> pb.PlaceOrderRequest:
    r = pb.PlaceOrderRequest(customer=c.Customer(id=cid, email=email, name=name),
                             lines=[c.OrderLine(sku=s, quantity=q, unit_price_cents=p)
                                    for s, q, p in lines])
    if isinstance(where, str):
        r.ship_to.postal_code, r.ship_to.country = where, "US"
    else:
        r.ship_to.latitude, r.ship_to.longitude = where  # type: ignore[misc]
    if extra:
        r.ship_to.line1, r.ship_to.city = "1 Main St", "Springfield"
    return r


@settings(max_examples=200, deadline=None)
@given(requests, orders)
def test_order_bytes_from_the_source_request(req: pb.PlaceOrderRequest, other: Order) -> None:
    # what intake does: the placed order shares the decoded request's parts
    d = pb_convert.decode_place_order(req)
    o = Order(other.id, d.idempotency_key, d.channel, other.status, d.customer, d.ship_to,
              list(d.lines), other.allocations, hold_until=other.hold_until,
              created_at=other.created_at, updated_at=other.updated_at, history=other.history,
              payment=other.payment, promised_by=other.promised_by, risk_score=other.risk_score,
              risk_reasons=other.risk_reasons)
    want = pb_convert.encode_order(o)
    _same(c.Order.FromString(response_bytes.order_bytes(o, req)), want)
    got = pb.BatchPlaceOrdersResponse.FromString(response_bytes.batch_response_bytes([o, o], [req, None]))
    assert list(got.results) == [pb.PlaceOrderResult(order=want)] * 2
