"""Fraud rules on the real server: velocity puts orders ON_HOLD, held orders never reach a
wave, ReleaseHold and CancelOrder resolve them."""
from __future__ import annotations

from oms.v1 import common_pb2 as c


def _setup(client) -> None:
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 100, "A01-S001")


def test_velocity_burst_is_held_and_never_waved(client, server):
    _setup(client)
    orders = [client.place_order(client.order_request([("MUG", 1, 1500)], postal_code="50010",
                                                      customer_id="C-burst", email="b@example.com"))
              for _ in range(6)]
    statuses = [o.status for o in orders]
    assert statuses[:3] == [c.ORDER_STATUS_ALLOCATED] * 3
    held = [o for o in orders if o.status == c.ORDER_STATUS_ON_HOLD]
    assert len(held) >= 2 and all(o.risk_reasons for o in held)
    assert any("in the last" in r or "orders" in r for r in held[0].risk_reasons)
    # held orders keep their stock
    assert client.get_stock("MUG").levels[0].reserved == 6
    for o in orders:
        if o.status == c.ORDER_STATUS_ALLOCATED:
            client.release_hold(o.id)  # end the fraud-hold delay of the good ones
    wave = client.plan_wave("DSM", max_orders=100)
    waved = {x for b in wave.batches for x in b.order_ids}
    assert waved == {o.id for o in orders if o.status == c.ORDER_STATUS_ALLOCATED}
    assert not waved & {o.id for o in held}
    # review: one released, one cancelled
    ok = client.release_hold(held[0].id, "reviewed")
    assert ok.status == c.ORDER_STATUS_ALLOCATED
    gone = client.cancel_order(held[1].id, "fraud confirmed")
    assert gone.status == c.ORDER_STATUS_CANCELLED
    assert client.get_stock("MUG").levels[0].reserved == 5
    assert server.run(server.store.audit()) == []


def test_other_customers_are_not_affected(client, server):
    _setup(client)
    for i in range(6):
        o = client.place_order(client.order_request([("MUG", 1, 1500)], postal_code="50010",
                                                    customer_id=f"C-{i}", email=f"c{i}@example.com"))
        assert o.status == c.ORDER_STATUS_ALLOCATED
