"""RecordStockCount on the real server: a count below what is reserved is accepted, the newest
orders not yet on a pick list give their reservations back (BACKORDERED), the oldest keep
theirs, and FillBackorders sources the bumped orders again elsewhere."""
from __future__ import annotations

import pytest

from oms.clients.client import ClientError
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY
from tests.helpers import audit_clean, on_hand_reserved


@pytest.fixture()
def shop(client):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=4, slots_per_aisle=10)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=4, slots_per_aisle=10)
    client.set_stock("DSM", "KETTLE", 10, "A01-S002")
    client.set_stock("CHI", "KETTLE", 0, "A02-S004")
    return client


def test_a_short_count_backorders_the_newest_orders_and_they_are_filled_again(shop, server):
    client = shop
    first, second, third = (client.place_order(client.order_request([("KETTLE", 3)], postal_code="50010"))
                            for _ in range(3))
    assert on_hand_reserved(client, "KETTLE")["DSM"] == (10, 9)
    res = client.record_stock_count("DSM", "KETTLE", 5, "cycle count")
    # 9 reserved, 5 counted: the newest two give theirs up, the oldest keeps its 3
    assert list(res.backordered_order_ids) == [third.id, second.id]
    assert (res.level.on_hand, res.level.reserved) == (5, 3)
    assert client.get_order(first.id).status == c.ORDER_STATUS_ALLOCATED
    for o in (second, third):
        got = client.get_order(o.id)
        assert got.status == c.ORDER_STATUS_BACKORDERED and not got.allocations
        assert got.history[-1].reason == ("stock count: 5 KETTLE in DSM (cycle count); "
                                          "reservation given up")
    audit_clean(server)
    # stock in Chicago: both are sourced again, oldest first
    client.set_stock("CHI", "KETTLE", 4)
    rep = client.fill_backorders()
    assert (rep.filled, rep.waiting) == (2, 0)
    # the older one first: Des Moines has 2 left, so Chicago ships all 3; the newer one is split
    assert [(a.warehouse_id, a.quantity) for a in client.get_order(second.id).allocations] == [("CHI", 3)]
    assert sorted((a.warehouse_id, a.quantity) for a in client.get_order(third.id).allocations) == \
        [("CHI", 1), ("DSM", 2)]
    assert on_hand_reserved(client, "KETTLE") == {"DSM": (5, 5), "CHI": (4, 4)}
    audit_clean(server)


def test_a_count_at_or_above_the_reservations_bumps_nobody(shop, server):
    client = shop
    o = client.place_order(client.order_request([("KETTLE", 4)], postal_code="50010"))
    res = client.record_stock_count("DSM", "KETTLE", 4)
    assert not res.backordered_order_ids and (res.level.on_hand, res.level.reserved) == (4, 4)
    assert client.get_order(o.id).status == c.ORDER_STATUS_ALLOCATED


def test_orders_on_a_pick_list_keep_their_stock(shop, server):
    client = shop
    o = client.place_order(client.order_request([("KETTLE", 6)], postal_code="50010"))
    client.release_hold(o.id)
    assert any(o.id in b.order_ids for b in client.plan_wave("DSM").batches)  # RELEASED
    with pytest.raises(ClientError) as e:
        client.record_stock_count("DSM", "KETTLE", 2)
    assert e.value.code.name == "FAILED_PRECONDITION" and "pick lists" in str(e.value)
    assert on_hand_reserved(client, "KETTLE")["DSM"] == (10, 6)  # nothing changed
    assert client.get_order(o.id).status == c.ORDER_STATUS_RELEASED


def test_a_split_order_bumped_by_a_count_releases_every_warehouse(shop, server):
    client = shop
    client.set_stock("CHI", "KETTLE", 5)
    client.set_stock("DSM", "KETTLE", 4)
    split = client.place_order(client.order_request([("KETTLE", 7)], postal_code="50010"))
    assert {a.warehouse_id for a in split.allocations} == {"DSM", "CHI"}
    res = client.record_stock_count("CHI", "KETTLE", 1)
    assert list(res.backordered_order_ids) == [split.id]
    assert on_hand_reserved(client, "KETTLE") == {"DSM": (4, 0), "CHI": (1, 0)}
    audit_clean(server)


def test_unknown_sku_or_warehouse(shop):
    with pytest.raises(ClientError) as e:
        shop.record_stock_count("DSM", "NOPE", 1)
    assert e.value.code.name == "NOT_FOUND"
    with pytest.raises(ClientError) as e:
        shop.record_stock_count("XXX", "KETTLE", 1)
    assert e.value.code.name == "NOT_FOUND"
    with pytest.raises(ClientError) as e:
        shop.record_stock_count("DSM", "KETTLE", -1)
    assert e.value.code.name == "INVALID_ARGUMENT"


def test_a_count_racing_intake_never_oversells(shop, server):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from oms.clients.client import OmsClient

    client = shop
    client.set_stock("DSM", "KETTLE", 40)
    for _ in range(8):
        client.place_order(client.order_request([("KETTLE", 2)], postal_code="50010"))
    barrier = threading.Barrier(2)

    def intake():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            return [cl.place_order(cl.order_request([("KETTLE", 1)], postal_code="50010"))
                    for _ in range(15)]

    def count():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            return cl.record_stock_count("DSM", "KETTLE", 6, "recount")

    with ThreadPoolExecutor(2) as ex:
        placed, res = ex.submit(intake), ex.submit(count)
        placed, res = placed.result(), res.result()
    on_hand, reserved = on_hand_reserved(client, "KETTLE")["DSM"]
    # the count held: intake could not take the units being freed, later orders backordered
    assert res.level.on_hand == on_hand == 6 and reserved <= 6
    assert all(o.status in (c.ORDER_STATUS_ALLOCATED, c.ORDER_STATUS_BACKORDERED) for o in placed)
    audit_clean(server)


def test_only_the_counted_sku_is_written_off(shop, server):
    client = shop
    client.set_stock("DSM", "MUG", 10, "A03-S001")
    o = client.place_order(client.order_request([("KETTLE", 4), ("MUG", 2)], postal_code="50010"))
    assert on_hand_reserved(client, "MUG")["DSM"] == (10, 2)
    res = client.record_stock_count("DSM", "KETTLE", 1)
    assert list(res.backordered_order_ids) == [o.id]
    assert on_hand_reserved(client, "KETTLE")["DSM"] == (1, 0)
    assert on_hand_reserved(client, "MUG")["DSM"] == (10, 0)  # given back, not written off
    audit_clean(server)
