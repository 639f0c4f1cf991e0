"""Issue 11 finding 8 (isolation): an unexpected error while processing ONE order fails only
that order, never its batch-mates (coalesced unary calls included), the batch call or a
PlaceOrders stream, and its outcome is unambiguous. The failure is provoked on real paths: a
payment token on which the built-in gateway malfunctions (``tok_malfunction``), and an order
value too large for the payment record."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.v1 import common_pb2 as c

pytestmark = pytest.mark.timeout(120)

req = OmsClient.order_request
BAD = 3  # position of the bad order


@pytest.fixture()
def shop(client):
    client.upsert_warehouse("DSM", "DSM", postal_code="50309")
    client.upsert_product("S1", "s1")
    client.set_stock("DSM", "S1", 100_000)
    return client


def _batch(prefix: str, n: int, bad: str) -> list:
    rs = [req([("S1", 1, 100)], postal_code="50010", idempotency_key=f"{prefix}-{i}") for i in range(n)]
    for r in rs:
        r.payment_token = "tok_visa"
    if bad == "malfunction":
        rs[BAD].payment_token = "tok_malfunction"
    else:  # 2^62 x 4: the order total does not fit in int64 cents
        rs[BAD].lines[0].unit_price_cents = 2**62
        rs[BAD].lines[0].quantity = 4
    return rs


def _check(results: list, rs: list, client) -> None:
    assert len(results) == len(rs)
    for i, (res, r) in enumerate(zip(results, rs)):
        if i == BAD:
            if isinstance(res, ClientError):
                # its own status; if it says the order was placed, a retry finds it
                assert res.code != grpc.StatusCode.UNKNOWN
            else:
                assert res.idempotency_key == r.idempotency_key
            continue
        assert isinstance(res, c.Order), res
        assert res.payment.status == "AUTHORIZED"


@pytest.mark.parametrize("bad", ["malfunction", "overflow"])
def test_batch_survives_one_bad_order_and_its_retry(shop, server, bad):
    rs = _batch(f"b{bad}", 10, bad)
    first = shop.batch_place_orders(rs)
    _check(first, rs, shop)
    again = shop.batch_place_orders(rs)  # the retry: same keys, same orders
    _check(again, rs, shop)
    for i, (a, b) in enumerate(zip(first, again)):
        if i != BAD:
            assert a.id == b.id
    if isinstance(first[BAD], c.Order):
        assert again[BAD].id == first[BAD].id
    assert server.run(server.store.audit()) == []


@pytest.mark.parametrize("bad", ["malfunction", "overflow"])
def test_coalesced_unary_calls_fail_alone(shop, server, bad):
    rs = _batch(f"u{bad}", 20, bad)

    def call(r):
        try:
            return shop.place_order(r)
        except ClientError as e:
            return e

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(call, rs))
    _check(results, rs, shop)
    assert server.run(server.store.audit()) == []


@pytest.mark.parametrize("bad", ["malfunction", "overflow"])
def test_stream_goes_on_past_one_bad_order(shop, server, bad):
    rs = _batch(f"s{bad}", 10, bad)
    results = list(shop.place_orders_stream(rs))
    _check(results, rs, shop)
    assert server.run(server.store.audit()) == []


def test_malfunctioning_gateway_leaves_the_order_placed_and_unpaid(shop, server):
    """The unexpected error comes after the order was written: the result says so."""
    rs = _batch("m", BAD + 1, "malfunction")
    res = shop.batch_place_orders(rs)[BAD]
    assert isinstance(res, c.Order)
    assert res.payment.status in ("", "NONE")
    assert shop.get_order(res.id).id == res.id
