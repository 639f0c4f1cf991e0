"""Bad requests, one table: each gets its documented status code (never INTERNAL/UNKNOWN),
INVALID_ARGUMENT carries google.rpc.BadRequest field violations, and nothing changes: GetStock
before == after, no order was written, audit() is clean."""
from __future__ import annotations

import math

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.v1 import common_pb2 as c
from tests.helpers import EXHAUSTED, INVALID, NOT_FOUND, PRECONDITION, audit_clean

pytestmark = pytest.mark.timeout(60)

req = OmsClient.order_request

NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

AMES = "50010"
GOOD_LINE = [("SKU-1", 1)]


@pytest.fixture()
def net(client, server):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=10,
                            slots_per_aisle=40, slot_length_m=1.0, aisle_spacing_m=3.0)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    client.set_stock("DSM", "SKU-1", 5, "A01-S002")
    client.set_stock("CHI", "SKU-1", 5, "A01-S002")
    # one existing order so that "unchanged" covers reservations and order records too
    existing = client.place_order(req([("SKU-1", 2)], postal_code=AMES))
    assert existing.status == c.ORDER_STATUS_ALLOCATED
    return client


def snapshot(client):
    st = client.get_stock("SKU-1")
    levels = sorted((s.warehouse_id, s.on_hand, s.reserved, s.available, s.location)
                    for s in st.levels)
    orders = sorted((x.id, x.status, x.updated_at) for x in client.iter_orders())
    return levels, st.total_available, orders


def _ids(client):
    return [x.id for x in client.iter_orders()]


BAD_PLACE = [
    ("no lines", req([], postal_code=AMES), INVALID, "lines"),
    ("quantity 0", req([("SKU-1", 0)], postal_code=AMES), INVALID, "lines[0].quantity"),
    ("quantity negative", req([("SKU-1", -3)], postal_code=AMES), INVALID, "lines[0].quantity"),
    ("second line bad", req([("SKU-1", 1), ("SKU-1", -1)], postal_code=AMES), INVALID,
     "lines[1].quantity"),
    ("bad sku chars", req([("SKU 1!", 1)], postal_code=AMES), INVALID, "lines[0].sku"),
    ("empty sku", req([("", 1)], postal_code=AMES), INVALID, "lines[0].sku"),
    ("negative price", req([("SKU-1", 1, -5)], postal_code=AMES), INVALID,
     "lines[0].unit_price_cents"),
    ("unknown sku", req([("SKU-404", 1)], postal_code=AMES), NOT_FOUND, None),
    ("unknown sku among good", req([("SKU-1", 1), ("SKU-404", 1)], postal_code=AMES),
     NOT_FOUND, None),
    ("no coordinates no postal code", req(GOOD_LINE), INVALID, "ship_to"),
    ("unknown postal code", req(GOOD_LINE, postal_code="00000"), INVALID, "ship_to.postal_code"),
    ("malformed postal code", req(GOOD_LINE, postal_code="ABC"), INVALID, "ship_to.postal_code"),
    ("non-US postal code", req(GOOD_LINE, postal_code="50010", country="CA"), INVALID,
     "ship_to.postal_code"),
    ("latitude 200", req(GOOD_LINE, latitude=200.0, longitude=-93.0), INVALID, "ship_to"),
    ("longitude -500", req(GOOD_LINE, latitude=41.0, longitude=-500.0), INVALID, "ship_to"),
    ("latitude NaN", req(GOOD_LINE, latitude=math.nan, longitude=-93.0), INVALID, "ship_to"),
    ("bad channel", req(GOOD_LINE, postal_code=AMES, channel="Web Shop!"), INVALID, "channel"),
    ("idempotency key too long", req(GOOD_LINE, postal_code=AMES, idempotency_key="k" * 129),
     INVALID, "idempotency_key"),
]


def _fields(err: ClientError) -> list[str]:
    return [f for f, _ in err.field_violations]


def _field_ok(fields: list[str], want: str) -> bool:
    return any(f == want or f.endswith("." + want) or f.endswith("]." + want) for f in fields)


@pytest.mark.parametrize("via", ["unary", "batch", "stream"])
@pytest.mark.parametrize("name, request_, code, field", BAD_PLACE, ids=[b[0] for b in BAD_PLACE])
def test_bad_place_order(net, server, via, name, request_, code, field):
    client = net
    before = snapshot(client)
    if via == "unary":
        with pytest.raises(ClientError) as ei:
            client.place_order(request_)
        err = ei.value
    elif via == "batch":
        res = client.batch_place_orders([request_])
        assert len(res) == 1
        err = res[0]
    else:
        res = list(client.place_orders_stream(iter([request_])))
        assert len(res) == 1
        err = res[0]
    assert isinstance(err, ClientError), err
    assert err.code not in NEVER
    assert err.code == code, str(err)
    if code == INVALID:
        assert _field_ok(_fields(err), field), _fields(err)
    assert snapshot(client) == before
    audit_clean(server)


BAD_CALLS = [
    ("GetOrder unknown id", lambda cl: cl.get_order("DSM.00000000000deadbeef000001"),
     NOT_FOUND, None),
    ("GetOrder unknown home", lambda cl: cl.get_order("ZZZ.00000000000deadbeef000001"),
     NOT_FOUND, None),
    ("GetOrder malformed id", lambda cl: cl.get_order("not-an-order-id"), NOT_FOUND, None),
    ("GetOrder malformed id 2", lambda cl: cl.get_order("a b.c/../d"), NOT_FOUND, None),
    ("GetOrder empty id", lambda cl: cl.get_order(""), INVALID, "order_id"),
    ("CancelOrder unknown", lambda cl: cl.cancel_order("DSM.00000000000deadbeef000001"),
     NOT_FOUND, None),
    ("CancelOrder malformed", lambda cl: cl.cancel_order("nope"), NOT_FOUND, None),
    ("ReleaseHold unknown", lambda cl: cl.release_hold("DSM.00000000000deadbeef000001"),
     NOT_FOUND, None),
    ("ListOrders page_size 5000", lambda cl: cl.list_orders(page_size=5000), INVALID,
     "page_size"),
    ("ListOrders page_size negative", lambda cl: cl.list_orders(page_size=-1), INVALID,
     "page_size"),
    ("ListOrders bad page_token", lambda cl: cl.list_orders(page_token="not a token!"),
     INVALID, "page_token"),
    ("ListOrders bad status", lambda cl: cl.list_orders(status=99), INVALID, "status"),
    ("ListOrders bad channel", lambda cl: cl.list_orders(channel="Bad Channel!"), INVALID,
     "channel"),
    ("SetStock negative", lambda cl: cl.set_stock("DSM", "SKU-1", -1), INVALID, "on_hand"),
    ("SetStock bad warehouse id", lambda cl: cl.set_stock("bad id!", "SKU-1", 5), INVALID,
     "warehouse_id"),
    ("SetStock unknown warehouse", lambda cl: cl.set_stock("NOPE", "SKU-1", 5), NOT_FOUND, None),
    ("SetStock bad sku", lambda cl: cl.set_stock("DSM", "SKU 1!", 5), INVALID, "sku"),
    ("SetStock bad location", lambda cl: cl.set_stock("DSM", "SKU-1", 9, "X99"), INVALID,
     "location"),
    ("SetStock location outside layout", lambda cl: cl.set_stock("DSM", "SKU-1", 9, "A10-S000"),
     INVALID, "location"),
    ("SetStock below reserved", lambda cl: cl.set_stock("DSM", "SKU-1", 1), PRECONDITION, None),
    ("AdjustStock delta 0", lambda cl: cl.adjust_stock("DSM", "SKU-1", 0), INVALID, "delta"),
    ("AdjustStock below reserved", lambda cl: cl.adjust_stock("DSM", "SKU-1", -4),
     PRECONDITION, None),
    ("AdjustStock unknown warehouse", lambda cl: cl.adjust_stock("NOPE", "SKU-1", 1),
     NOT_FOUND, None),
    ("AdjustStock unknown sku", lambda cl: cl.adjust_stock("DSM", "SKU-404", 1), NOT_FOUND, None),
    ("AdjustStock key too long",
     lambda cl: cl.adjust_stock("DSM", "SKU-1", 1, idempotency_key="k" * 129), INVALID,
     "idempotency_key"),
    ("GetStock unknown sku", lambda cl: cl.get_stock("SKU-404"), NOT_FOUND, None),
    ("GetStock bad sku", lambda cl: cl.get_stock("SKU 1!"), INVALID, "sku"),
    ("UpsertWarehouse bad postal code",
     lambda cl: cl.upsert_warehouse("NEW", postal_code="00000"), INVALID,
     "warehouse.postal_code"),
    ("UpsertWarehouse latitude 200",
     lambda cl: cl.upsert_warehouse("NEW", latitude=200.0, longitude=1.0), INVALID,
     "warehouse.latitude"),
    ("BatchPlaceOrders 1001", lambda cl: cl.batch_place_orders(
        [req(GOOD_LINE, postal_code=AMES) for _ in range(1001)]), EXHAUSTED, None),
    ("WatchOrderEvents malformed after_event_id",
     lambda cl: list(cl.watch_events(after_event_id="garbage", timeout=5)), INVALID,
     "after_event_id"),
]


@pytest.mark.parametrize("name, call, code, field", BAD_CALLS, ids=[b[0] for b in BAD_CALLS])
def test_bad_request(net, server, name, call, code, field):
    client = net
    before = snapshot(client)
    whs_before = client.list_warehouses()
    with pytest.raises(ClientError) as ei:
        call(client)
    err = ei.value
    assert err.code not in NEVER, str(err)
    assert err.code == code, str(err)
    if code == INVALID:
        assert _field_ok(_fields(err), field), _fields(err)
    assert snapshot(client) == before
    assert client.list_warehouses() == whs_before
    audit_clean(server)


def test_release_hold_on_cancelled_is_failed_precondition(net, server):
    client = net
    (existing,) = list(client.iter_orders())
    client.cancel_order(existing.id)
    before = snapshot(client)
    with pytest.raises(ClientError) as ei:
        client.release_hold(existing.id)
    assert ei.value.code == PRECONDITION
    assert snapshot(client) == before
    audit_clean(server)


def test_bad_batch_entries_do_not_spoil_good_ones(net, server):
    """Every row of BAD_PLACE inside one batch, interleaved with good orders."""
    client = net
    requests, kinds = [], []
    for i, (_, bad, code, field) in enumerate(BAD_PLACE):
        requests.append(req([("SKU-1", 1)], postal_code=AMES, customer_id=f"good{i}"))
        kinds.append(None)
        requests.append(bad)
        kinds.append((code, field))
    stock_before = client.get_stock("SKU-1").total_available
    res = client.batch_place_orders(requests)
    assert len(res) == len(requests)
    n_good = 0
    for r, k, rq in zip(res, kinds, requests):
        if k is None:
            assert isinstance(r, c.Order), r
            assert r.customer.id == rq.customer.id
            n_good += 1
        else:
            assert isinstance(r, ClientError), r
            assert r.code == k[0], str(r)
            if k[0] == INVALID:
                assert _field_ok(_fields(r), k[1]), _fields(r)
    allocated = sum(1 for r in res if isinstance(r, c.Order)
                    and r.status == c.ORDER_STATUS_ALLOCATED)
    assert client.get_stock("SKU-1").total_available == stock_before - allocated
    assert len(_ids(client)) == 1 + n_good
    audit_clean(server)
