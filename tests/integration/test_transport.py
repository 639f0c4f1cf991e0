"""Hostile bytes on the wire, on the real server: undecodable protobuf, oversized requests and
errors that would not fit in the trailers. Every one is answered with a clear status (never
UNKNOWN, INTERNAL or "metadata size exceeds hard limit"), logged on one line without a
traceback, and the server keeps answering."""
from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from oms.clients import credentials
from oms.v1 import common_pb2 as c
from oms.v1 import orders_pb2 as o
from oms.server.transport import DEFAULT_REQUEST_LIMIT, batch_receive_limit
from tests.conftest import ADMIN_KEY

ORDERS = "/oms.v1.OrderService/"

# (what, bytes): each fails to decode as any request type with a string field 1
UNDECODABLE = [
    ("truncated", b"\x0a\x05ab"),
    ("invalid utf-8", b"\x0a\x02\xff\xfe"),
    ("huge length prefix", b"\x0a\xff\xff\xff\xff\x0f" + b"x" * 16),
    ("bad varint", b"\x08" + b"\xff" * 11),
]
NESTED_BAD_UTF8 = o.PlaceOrderRequest(channel="web").SerializeToString() + b"\x1a\x04\x0a\x02\xc3\x28"


@pytest.fixture()
def channel(server) -> Iterator[grpc.Channel]:
    # with the key: the hostile bytes must reach the decoders, past the auth interceptor
    with credentials.channel(f"127.0.0.1:{server.port}", api_key=ADMIN_KEY, options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024)]) as ch:
        yield ch


def _unary(channel: grpc.Channel, method: str, raw: bytes) -> bytes:
    return channel.unary_unary(ORDERS + method)(raw, timeout=60)


def _code(call, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        out = call(*args, **kw)
        if isinstance(out, Iterator):
            list(out)
    return e.value.code(), e.value.details() or ""


def _still_serving(client) -> None:
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    assert [w.id for w in client.list_warehouses()] == ["DSM"]


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]


@pytest.mark.parametrize("what,raw", UNDECODABLE + [("nested bad utf-8", NESTED_BAD_UTF8)])
def test_unary_undecodable_is_invalid_argument(channel, client, caplog, what: str, raw: bytes
                                               ) -> None:
    caplog.set_level(logging.WARNING)
    # the nested case is bad only as a PlaceOrderRequest (elsewhere it is an unknown field)
    methods = ("PlaceOrder",) if raw is NESTED_BAD_UTF8 else ("GetOrder", "PlaceOrder", "CancelOrder")
    for method in methods:
        code, details = _code(_unary, channel, method, raw)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (what, method, code, details)
        assert "protobuf" in details
    _no_tracebacks(caplog)
    lines = [r for r in caplog.records if r.name == "oms.server.transport"]
    assert len(lines) == len(methods) and all("\n" not in r.getMessage() for r in lines)
    _still_serving(client)


@pytest.mark.parametrize("what,raw", UNDECODABLE)
def test_server_streaming_undecodable_is_invalid_argument(channel, client, caplog, what: str,
                                                          raw: bytes) -> None:
    caplog.set_level(logging.WARNING)
    watch = channel.unary_stream(ORDERS + "WatchOrderEvents")
    code, details = _code(watch, raw, timeout=60)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (what, code, details)
    _no_tracebacks(caplog)
    _still_serving(client)


def _stock(client) -> None:
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 100, "A01-S001")


def _good_order(client, key: str) -> bytes:
    return client.order_request([("MUG", 1, 1500)], postal_code="50010",
                                idempotency_key=key, customer_id="C-1",
                                email="c1@example.com").SerializeToString()


@pytest.mark.parametrize("what,raw", UNDECODABLE + [("nested bad utf-8", NESTED_BAD_UTF8)])
def test_bidi_stream_answers_up_to_the_bad_message(channel, client, caplog, what: str, raw: bytes
                                                   ) -> None:
    caplog.set_level(logging.WARNING)
    _stock(client)
    stream = channel.stream_stream(ORDERS + "PlaceOrders")
    got: list[bytes] = []
    with pytest.raises(grpc.RpcError) as e:
        for r in stream(iter([_good_order(client, "k1"), raw, _good_order(client, "k2")]),
                        timeout=60):
            got.append(r)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (what, e.value.details())
    # the order before the bad message was placed and answered; nothing after it ran
    assert len(got) == 1
    assert o.PlaceOrderResult.FromString(got[0]).order.status == c.ORDER_STATUS_ALLOCATED
    assert client.get_stock("MUG").levels[0].reserved == 1
    _no_tracebacks(caplog)
    # a bad first message ends the stream at once
    code, _ = _code(stream, iter([raw]), timeout=60)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(client)


def test_oversized_request_is_refused_before_any_work(channel, client, caplog) -> None:
    caplog.set_level(logging.WARNING)
    big = o.GetOrderRequest(order_id="x" * (DEFAULT_REQUEST_LIMIT + 1)).SerializeToString()
    code, details = _code(_unary, channel, "GetOrder", big)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"{DEFAULT_REQUEST_LIMIT:,}-byte limit" in details
    stream = channel.stream_stream(ORDERS + "PlaceOrders")
    code, details = _code(stream, iter([big]), timeout=60)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    _no_tracebacks(caplog)
    _still_serving(client)


def _full_order(i: int) -> o.PlaceOrderRequest:
    """An order at the documented maximum size: every text field long and 4-byte UTF-8 (the
    quantity 0 makes it fail validation, so no stock is touched)."""
    w = "\U0001F600"
    return o.PlaceOrderRequest(
        idempotency_key=f"{i:0128d}", channel="web", payment_token="t" * 128,
        customer=c.Customer(id=w * 128, email=w * 254, name=w * 200),
        ship_to=c.Address(name=w * 200, line1=w * 300, city=w * 100, region=w * 100,
                          postal_code="9" * 16, country=w * 64, latitude=-89.5, longitude=-179.5),
        lines=[c.OrderLine(sku="S" * 64, quantity=0, unit_price_cents=-1) for _ in range(100)])


def test_batch_of_1000_full_orders_fits_and_one_more_does_not(channel, server) -> None:
    limit = batch_receive_limit(server.config.max_batch)
    one = _full_order(0).ByteSize()
    n = server.config.max_batch
    batch = o.BatchPlaceOrdersRequest(requests=[_full_order(i) for i in range(n)])
    assert batch.ByteSize() <= limit
    resp = o.BatchPlaceOrdersResponse.FromString(
        _unary(channel, "BatchPlaceOrders", batch.SerializeToString()))
    assert len(resp.results) == n
    assert all(r.WhichOneof("result") == "error" for r in resp.results)
    extra = (limit - batch.ByteSize()) // one + 1
    batch.requests.extend(_full_order(n + i) for i in range(extra))
    assert batch.ByteSize() > limit
    code, _ = _code(_unary, channel, "BatchPlaceOrders", batch.SerializeToString())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED


def _trailer_safe(code: grpc.StatusCode, details: str) -> None:
    assert code not in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN,
                        grpc.StatusCode.INTERNAL), (code, details[:200])
    assert len(details.encode()) <= 512


@pytest.mark.parametrize("char", ["x", "é", "\U0001F600"])
def test_long_bad_values_never_overflow_the_trailers(client, char: str) -> None:
    """Whatever an error quotes, its status fits in the trailers (message and details capped)."""
    n = (DEFAULT_REQUEST_LIMIT - 1024) // len(char.encode())
    stub = client._orders_raw
    for call, req in (
            (stub.GetOrder, o.GetOrderRequest(order_id=char * n)),
            (stub.ListOrders, o.ListOrdersRequest(channel=char * n)),
            (stub.CancelOrder, o.CancelOrderRequest(order_id=char * n, reason=char * 100)),
            # many violations at once: a hundred long, bad SKUs
            (stub.PlaceOrder, o.PlaceOrderRequest(
                channel="web", customer=c.Customer(id="C-1"), ship_to=c.Address(postal_code="50010"),
                lines=[c.OrderLine(sku=char * (n // 120) + str(i), quantity=1)
                       for i in range(100)]))):
        _trailer_safe(*_code(call, req, timeout=60))
