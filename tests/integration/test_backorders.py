"""Backorders on the real server: arrived stock goes to BACKORDERED orders oldest first, the
filled orders go through waves, picking and shipping, and concurrent fillers never oversell."""
from __future__ import annotations

import asyncio
import random


from oms.engine.carriers import RateTableCarrier
from oms.engine.payments import DeterministicGateway
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.server.backorders import BackorderFiller
from oms.server.order_actions import OrderLife
from oms.server.redis.keys import Shard
from oms.server.redis.store import STAGED, StoreLedger
from tests.helpers import audit_clean, on_hand_reserved
from tests.conftest import redis_client, store_for


def _network(client):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=4, slots_per_aisle=10)
    client.upsert_warehouse("LAX", "Los Angeles", postal_code="90012", aisles=4, slots_per_aisle=10)
    client.set_stock("DSM", "KETTLE", 0, "A01-S002")
    client.set_stock("LAX", "KETTLE", 0, "A02-S004")


def test_arrived_stock_fills_the_oldest_backorder_first(client, server):
    _network(client)
    ames = dict(postal_code="50010", email="ann@example.com")
    first = client.place_order(client.order_request([("KETTLE", 2)], **ames))
    second = client.place_order(client.order_request([("KETTLE", 2)], **ames))
    assert first.status == second.status == c.ORDER_STATUS_BACKORDERED
    assert client.fill_backorders().filled == 0  # nothing arrived yet
    # stock arrives far away, for one of them
    client.set_stock("LAX", "KETTLE", 3)
    rep = client.fill_backorders()
    assert (rep.considered, rep.filled, rep.waiting, rep.skipped) == (2, 1, 1, 0)
    o1 = client.get_order(first.id)
    assert o1.status == c.ORDER_STATUS_ALLOCATED
    assert [(a.sku, a.warehouse_id, a.quantity) for a in o1.allocations] == [("KETTLE", "LAX", 2)]
    assert o1.allocations[0].distance_km > 2000
    assert o1.history[-1].reason == "backorder filled from LAX"
    # the fraud hold (an hour here) counts from when the order was placed
    assert o1.hold_until == first.created_at + 3_600_000
    assert client.get_order(second.id).status == c.ORDER_STATUS_BACKORDERED
    assert on_hand_reserved(client, "KETTLE") == {"DSM": (0, 0), "LAX": (3, 2)}
    events = list(client.watch_events(after_event_id="0", order_id=first.id, timeout=1.5))
    assert events[-1].type == "order.backorder_filled"
    by_status = {x.key: x.count for x in client.get_stats().orders_by_status}
    assert by_status == {"ALLOCATED": 1, "BACKORDERED": 1}
    # then near by: the second order ships from Des Moines
    client.set_stock("DSM", "KETTLE", 5)
    assert client.fill_backorders().filled == 1
    o2 = client.get_order(second.id)
    assert [(a.warehouse_id, a.quantity) for a in o2.allocations] == [("DSM", 2)]
    assert client.fill_backorders().considered == 0
    audit_clean(server)


def test_a_filled_order_picked_elsewhere_than_its_home_ships(client, server):
    # The order is homed in Des Moines (nearest when it was placed) but its stock is in Los
    # Angeles: Des Moines's wave releases it without a pick there, Los Angeles's wave picks it.
    _network(client)
    o = client.place_order(client.order_request([("KETTLE", 1)], postal_code="50010"))
    assert o.id.startswith("DSM.")
    client.set_stock("LAX", "KETTLE", 4)
    assert client.fill_backorders().filled == 1
    assert not client.plan_wave("DSM").batches and not client.plan_wave("LAX").batches
    assert client.get_order(o.id).status == c.ORDER_STATUS_ALLOCATED  # the fraud hold first
    client.release_hold(o.id)
    home_wave = client.plan_wave("DSM")
    assert not home_wave.batches
    assert client.get_order(o.id).status == c.ORDER_STATUS_RELEASED
    lax_wave = client.plan_wave("LAX")
    assert [b.order_ids for b in lax_wave.batches] == [[o.id]]
    assert [(s.location, s.quantity) for s in lax_wave.batches[0].stops] == [("A02-S004", 1)]
    assert client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id)).status == \
        c.ORDER_STATUS_PICKED
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert [s.warehouse_id for s in shipped.shipments] == ["LAX"]
    assert on_hand_reserved(client, "KETTLE")["LAX"] == (3, 0)
    audit_clean(server)


def test_a_filled_backorder_that_scored_for_review_goes_on_hold(client, server):
    # At intake a backordered order holds no stock, so it is not put ON_HOLD whatever its fraud
    # score; filling it must not skip the review.
    _network(client)
    o = client.place_order(client.order_request([("KETTLE", 1)], postal_code="50010"))
    assert o.risk_score == 5 and o.status == c.ORDER_STATUS_BACKORDERED
    client.set_stock("DSM", "KETTLE", 4)
    rep = server.run(BackorderFiller(server.store, risk_hold_score=5).run())
    assert rep.filled == 1
    held = client.get_order(o.id)
    assert held.status == c.ORDER_STATUS_ON_HOLD
    assert held.history[-1].reason == ("backorder filled from DSM; on hold for review: "
                                       "first order from this customer")
    assert on_hand_reserved(client, "KETTLE")["DSM"] == (4, 1)  # it keeps its stock while reviewed
    assert client.release_hold(o.id).status == c.ORDER_STATUS_ALLOCATED
    by_status = {x.key: x.count for x in client.get_stats().orders_by_status}
    assert by_status == {"ALLOCATED": 1}
    audit_clean(server)


def test_concurrent_fillers_and_intake_never_oversell(client, server):
    rng = random.Random(7)
    for wid, z in [("DSM", "50309"), ("CHI", "60601"), ("DEN", "80202")]:
        client.upsert_warehouse(wid, postal_code=z)
        for k in range(4):
            client.set_stock(wid, f"S{k}", 0, f"A01-S{k:03d}")
    zips = ["50010", "60601", "80202", "30303", "75201"]

    def req():
        return client.order_request([(f"S{k}", rng.randint(1, 3)) for k in rng.sample(range(4), 2)],
                                    postal_code=rng.choice(zips))

    backordered = client.batch_place_orders([req() for _ in range(60)])
    assert all(o.status == c.ORDER_STATUS_BACKORDERED for o in backordered)
    for wid in ("DSM", "CHI", "DEN"):
        for k in range(4):
            client.set_stock(wid, f"S{k}", rng.randint(5, 15))

    async def race():
        intake = asyncio.to_thread(client.batch_place_orders, [req() for _ in range(40)])
        return await asyncio.gather(*(BackorderFiller(server.store).run() for _ in range(3)), intake)

    *reports, placed = server.run(race())
    assert all(isinstance(o, c.Order) for o in placed)
    # intake may have backordered some of its orders too, and a filler may have filled them
    waited = [o.id for o in backordered] + [o.id for o in placed
                                           if o.status == c.ORDER_STATUS_BACKORDERED]
    orders = [client.get_order(i) for i in waited]
    allocated = [o for o in orders if o.status == c.ORDER_STATUS_ALLOCATED]
    assert sum(r.filled for r in reports) == len(allocated) > 0  # each filled once, by one filler
    assert all(sum(a.quantity for a in o.allocations) == sum(ln.quantity for ln in o.lines)
               for o in allocated)
    audit_clean(server)
    r = redis_client(server.config.redis_url)
    for wid in ("DSM", "CHI", "DEN"):
        assert not [k for k in r.hkeys(Shard(wid).resv) if k.decode().endswith(STAGED)]
        for k in range(4):
            on_hand, reserved = on_hand_reserved(client, f"S{k}")[wid]
            assert 0 <= reserved <= on_hand
    # what is left is still BACKORDERED and is looked at again next round
    rest = client.fill_backorders()
    assert rest.considered == len(orders) - len(allocated)
    audit_clean(server)


def test_a_cancel_between_commit_and_swap_leaves_no_stock_reserved(client, server):
    # The filler commits the order to Los Angeles; before it swaps the staged record in, the
    # customer cancels (the cancel finds no record of the order there yet). The filler must
    # give that stock back after its swap.
    _network(client)
    o = client.place_order(client.order_request([("KETTLE", 2)], postal_code="50010"))
    client.set_stock("LAX", "KETTLE", 5)
    url = server.config.redis_url

    async def fill_with_a_cancel_before_the_swap():
        store = store_for(url)
        life = OrderLife(store, DeterministicGateway(StoreLedger(store, asyncio.get_running_loop())),
                         RateTableCarrier())
        swap = store.swap_records_many

        async def cancel_then_swap(pairs):
            for order_id in {oid for oid, _ in pairs}:
                await life.cancel(order_id, "changed my mind")
            await swap(pairs)

        store.swap_records_many = cancel_then_swap
        try:
            return await BackorderFiller(store).run()
        finally:
            await store.close()

    assert server.run(fill_with_a_cancel_before_the_swap()).filled == 1
    assert client.get_order(o.id).status == c.ORDER_STATUS_CANCELLED
    assert on_hand_reserved(client, "KETTLE")["LAX"] == (5, 0)
    audit_clean(server)


def test_an_allow_partial_backorder_takes_what_has_arrived(client, server):
    _network(client)
    whole = client.place_order(client.order_request([("KETTLE", 5)], postal_code="50010"))
    part = client.place_order(client.order_request([("KETTLE", 5)], postal_code="50010",
                                                   allow_partial=True))
    assert whole.status == part.status == c.ORDER_STATUS_BACKORDERED
    client.set_stock("DSM", "KETTLE", 3)
    rep = client.fill_backorders()
    assert (rep.filled, rep.waiting) == (1, 1)
    assert client.get_order(whole.id).status == c.ORDER_STATUS_BACKORDERED  # whole or nothing
    got = client.get_order(part.id)
    assert got.status == c.ORDER_STATUS_ALLOCATED
    assert [(a.warehouse_id, a.quantity) for a in got.allocations] == [("DSM", 3)]
    assert got.history[-1].reason == "part of the backorder filled from DSM"
    audit_clean(server)
