"""InventoryService against the real server on real Redis: warehouses (by coordinates and by
geocoded US ZIP, with layout), ListWarehouses, SetStock / AdjustStock (idempotent on key),
GetStock per warehouse and for the network, and the refusals that must change nothing."""
from __future__ import annotations

import grpc
import pytest

from oms.clients.client import ClientError
from oms.engine import geo
from oms.v1 import common_pb2 as c
from tests.helpers import INVALID, LOCATED, NOT_FOUND, PRECONDITION, audit_clean, levels

pytestmark = pytest.mark.timeout(60)

def stock_state(client, sku: str):
    resp = client.get_stock(sku)
    return sorted((s.warehouse_id, s.on_hand, s.reserved, s.available, s.location)
                  for s in resp.levels), resp.total_available


def expect_error(code: grpc.StatusCode, fn, *args, **kw) -> ClientError:
    with pytest.raises(ClientError) as ei:
        fn(*args, **kw)
    assert ei.value.code == code, str(ei.value)
    return ei.value


# ---- warehouses ----------------------------------------------------------------------------

def test_warehouse_by_coordinates_with_layout(client):
    w = client.upsert_warehouse("RNO", "Reno", latitude=39.5296, longitude=-119.8138,
                                aisles=12, slots_per_aisle=40, slot_length_m=1.2,
                                aisle_spacing_m=3.5)
    assert w.id == "RNO" and w.name == "Reno"
    assert w.latitude == pytest.approx(39.5296) and w.longitude == pytest.approx(-119.8138)
    assert (w.layout.aisles, w.layout.slots_per_aisle) == (12, 40)
    assert w.layout.slot_length_m == pytest.approx(1.2)
    assert w.layout.aisle_spacing_m == pytest.approx(3.5)
    assert not w.disabled
    (listed,) = client.list_warehouses()
    assert listed == w


def test_warehouse_by_postal_code_is_geocoded(client):
    w = client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    lat, lon = geo.geocode_us_zip("50309")
    assert w.latitude == pytest.approx(lat, abs=1e-6)
    assert w.longitude == pytest.approx(lon, abs=1e-6)
    assert w.postal_code == "50309"
    # Des Moines, Iowa: plausibility of the offline geocoding itself.
    assert 41.0 < w.latitude < 42.0 and -94.5 < w.longitude < -93.0
    # a warehouse without a layout gets a usable default
    assert w.layout.aisles > 0 and w.layout.slots_per_aisle > 0
    assert w.layout.slot_length_m > 0 and w.layout.aisle_spacing_m > 0


def test_list_warehouses_and_update(client):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    client.upsert_warehouse("DEN", "Denver", latitude=39.7491, longitude=-104.9946)
    assert sorted(w.id for w in client.list_warehouses()) == ["CHI", "DEN", "DSM"]
    # upsert of an existing id updates it, never duplicates it
    client.upsert_warehouse("CHI", "Chicago Loop", postal_code="60601", disabled=True)
    whs = {w.id: w for w in client.list_warehouses()}
    assert sorted(whs) == ["CHI", "DEN", "DSM"]
    assert whs["CHI"].name == "Chicago Loop" and whs["CHI"].disabled
    assert not whs["DSM"].disabled


@pytest.mark.parametrize("kw, field", [
    ({"postal_code": "00000"}, "warehouse.postal_code"),
    ({"postal_code": "ABCDE"}, "warehouse.postal_code"),
    ({"latitude": 95.0, "longitude": 10.0}, "warehouse.latitude"),
    ({"latitude": 10.0, "longitude": -190.0}, "warehouse.longitude"),
    ({"postal_code": "50309", "aisles": -1, "slots_per_aisle": 10}, "warehouse.layout"),
])
def test_bad_warehouse_is_refused_and_not_stored(client, kw, field):
    e = expect_error(INVALID, client.upsert_warehouse, "BAD", "bad", **kw)
    assert field in [f for f, _ in e.field_violations]
    assert client.list_warehouses() == []


def test_bad_warehouse_id_is_invalid(client):
    e = expect_error(INVALID, client.upsert_warehouse, "bad id!", postal_code="50309")
    assert e.field_violations
    assert client.list_warehouses() == []


# ---- stock ---------------------------------------------------------------------------------

@pytest.fixture()
def two_wh(client):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=10,
                            slots_per_aisle=40, slot_length_m=1.0, aisle_spacing_m=3.0)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=10,
                            slots_per_aisle=40, slot_length_m=1.0, aisle_spacing_m=3.0)
    return client


def test_set_stock_and_get_stock(two_wh):
    client = two_wh
    s = client.set_stock("DSM", "SKU-1", 7, "A03-S017")
    assert (s.warehouse_id, s.sku, s.on_hand, s.reserved, s.available, s.location) == \
        ("DSM", "SKU-1", 7, 0, 7, "A03-S017")
    client.set_stock("CHI", "SKU-1", 4, "A00-S000")
    assert levels(client, "SKU-1", LOCATED) == {"DSM": (7, 0, 7, "A03-S017"), "CHI": (4, 0, 4, "A00-S000")}
    assert client.get_stock("SKU-1").total_available == 11
    # empty location keeps the current one; SetStock replaces on_hand
    s = client.set_stock("DSM", "SKU-1", 9)
    assert (s.on_hand, s.location) == (9, "A03-S017")
    assert client.get_stock("SKU-1").total_available == 13
    # a sku stocked in one warehouse only lists that warehouse
    client.set_stock("CHI", "SKU-2", 3)
    assert set(levels(client, "SKU-2")) == {"CHI"}


def test_get_stock_reserved_and_available_after_order(two_wh, server):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 5, "A01-S001")
    client.set_stock("CHI", "SKU-1", 6, "A01-S002")
    o = client.place_order(client.order_request([("SKU-1", 3)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    lv = levels(client, "SKU-1")
    assert lv["DSM"] == (5, 3, 2)
    assert lv["CHI"] == (6, 0, 6)
    resp = client.get_stock("SKU-1")
    assert resp.total_available == 8
    for s in resp.levels:
        assert s.available == s.on_hand - s.reserved
    audit_clean(server)


def test_adjust_stock_idempotent_on_key(two_wh, server):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 10, "A02-S005")
    first = client.adjust_stock("DSM", "SKU-1", 5, "receipt", idempotency_key="rcpt-1")
    assert (first.on_hand, first.reserved, first.available) == (15, 0, 15)
    again = client.adjust_stock("DSM", "SKU-1", 5, "receipt", idempotency_key="rcpt-1")
    assert again == first
    assert levels(client, "SKU-1")["DSM"] == (15, 0, 15)
    # a different key is a different adjustment
    s = client.adjust_stock("DSM", "SKU-1", -4, "damaged", idempotency_key="dmg-1")
    assert s.on_hand == 11
    assert client.adjust_stock("DSM", "SKU-1", -4, "damaged", idempotency_key="dmg-1") == s
    assert levels(client, "SKU-1")["DSM"] == (11, 0, 11)
    # no key: every call applies
    client.adjust_stock("DSM", "SKU-1", 1)
    client.adjust_stock("DSM", "SKU-1", 1)
    assert levels(client, "SKU-1")["DSM"] == (13, 0, 13)
    audit_clean(server)


def test_adjust_stock_repeat_after_other_changes_does_not_reapply(two_wh, server):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 10)
    first = client.adjust_stock("DSM", "SKU-1", 5, "receipt", idempotency_key="rcpt-9")
    assert first.on_hand == 15
    o = client.place_order(client.order_request([("SKU-1", 2)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    again = client.adjust_stock("DSM", "SKU-1", 5, "receipt", idempotency_key="rcpt-9")
    assert again.on_hand == 15  # not applied a second time
    assert levels(client, "SKU-1")["DSM"] == (15, 2, 13)
    audit_clean(server)


def _reserve_four(client):
    client.set_stock("DSM", "SKU-1", 6, "A01-S001")
    o = client.place_order(client.order_request([("SKU-1", 4)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert levels(client, "SKU-1")["DSM"] == (6, 4, 2)
    return o


def test_set_stock_below_reserved_is_refused(two_wh, server):
    client = two_wh
    _reserve_four(client)
    before = stock_state(client, "SKU-1")
    expect_error(PRECONDITION, client.set_stock, "DSM", "SKU-1", 3)
    assert stock_state(client, "SKU-1") == before
    # exactly the reserved amount is allowed (available 0)
    s = client.set_stock("DSM", "SKU-1", 4)
    assert (s.on_hand, s.reserved, s.available) == (4, 4, 0)
    audit_clean(server)


def test_adjust_stock_below_reserved_is_refused(two_wh, server):
    client = two_wh
    _reserve_four(client)
    before = stock_state(client, "SKU-1")
    expect_error(PRECONDITION, client.adjust_stock, "DSM", "SKU-1", -3, "shrink",
                 idempotency_key="shrink-1")
    assert stock_state(client, "SKU-1") == before
    expect_error(PRECONDITION, client.adjust_stock, "DSM", "SKU-1", -100)
    assert stock_state(client, "SKU-1") == before
    # the refused key was not burnt: a valid adjustment with it applies
    s = client.adjust_stock("DSM", "SKU-1", -2, "shrink", idempotency_key="shrink-1")
    assert (s.on_hand, s.reserved, s.available) == (4, 4, 0)
    audit_clean(server)


def test_unknown_warehouse_is_not_found(two_wh, server):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 5)
    before = stock_state(client, "SKU-1")
    expect_error(NOT_FOUND, client.set_stock, "NOPE", "SKU-1", 5)
    expect_error(NOT_FOUND, client.adjust_stock, "NOPE", "SKU-1", 5, idempotency_key="k")
    assert stock_state(client, "SKU-1") == before
    audit_clean(server)


@pytest.mark.parametrize("loc", ["B01-S001", "A1", "A03S017", "A03-Sxyz", "A10-S000",
                                 "A00-S040", "garbage"])
def test_bad_location_code_is_invalid(two_wh, server, loc):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 5, "A01-S001")
    before = stock_state(client, "SKU-1")
    e = expect_error(INVALID, client.set_stock, "DSM", "SKU-1", 9, loc)
    assert "location" in [f for f, _ in e.field_violations]
    assert stock_state(client, "SKU-1") == before
    audit_clean(server)


@pytest.mark.parametrize("on_hand", [2**31 - 1, 2**31, 3_000_000_000, 2**53 + 1, 2**63 - 1])
def test_large_on_hand_is_exact_or_refused(two_wh, server, on_hand):
    """A very large on_hand is either refused as INVALID_ARGUMENT (changing nothing) or kept
    exactly: GetStock reports it, an order is allocated from it, the books balance. Never
    INTERNAL, never a silently wrong level."""
    client = two_wh
    client.set_stock("DSM", "SKU-1", 5)
    before = stock_state(client, "SKU-1")
    try:
        s = client.set_stock("DSM", "SKU-1", on_hand)
    except ClientError as e:
        assert e.code == INVALID, str(e)
        assert stock_state(client, "SKU-1") == before
        audit_clean(server)
        return
    assert (s.on_hand, s.reserved, s.available) == (on_hand, 0, on_hand)
    assert levels(client, "SKU-1")["DSM"] == (on_hand, 0, on_hand)
    o = client.place_order(client.order_request([("SKU-1", 2)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert [(a.warehouse_id, a.quantity) for a in o.allocations] == [("DSM", 2)]
    assert levels(client, "SKU-1")["DSM"] == (on_hand, 2, on_hand - 2)
    audit_clean(server)


def test_adjust_stock_past_int32_is_exact_or_refused(two_wh, server):
    client = two_wh
    client.set_stock("DSM", "SKU-1", 2**31 - 10)
    before = stock_state(client, "SKU-1")
    try:
        s = client.adjust_stock("DSM", "SKU-1", 100, "big receipt", idempotency_key="big-1")
    except ClientError as e:
        assert e.code in (INVALID, PRECONDITION), str(e)
        assert stock_state(client, "SKU-1") == before
        audit_clean(server)
        return
    assert (s.on_hand, s.available) == (2**31 + 90, 2**31 + 90)
    o = client.place_order(client.order_request([("SKU-1", 1)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert levels(client, "SKU-1")["DSM"] == (2**31 + 90, 1, 2**31 + 89)
    audit_clean(server)
