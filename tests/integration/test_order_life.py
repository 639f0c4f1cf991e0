"""The whole order life through the public gRPC API: stock, payment, shipments, returns."""
from __future__ import annotations


import pytest

from oms.clients.client import ClientError
from oms.engine.carriers import RateTableCarrier, validate_tracking_number
from oms.engine.lifecycle import OrderStatus
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import reporting_pb2 as rep
from oms.v1 import returns_pb2 as r
from oms.server.order_actions import OrderLife
from oms.server.redis.keys import Shard
from tests.helpers import audit_clean, gateway, on_hand_reserved
from tests.conftest import redis_client


def _setup(client) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=6, slots_per_aisle=10)
    client.upsert_product("MUG", "Mug", unit_price_cents=1500, weight_g=400, length_mm=120,
                          width_mm=100, height_mm=100)
    client.upsert_product("LAMP", "Lamp", unit_price_cents=4500, weight_g=2000, length_mm=400,
                          width_mm=250, height_mm=250)
    client.set_stock("DSM", "MUG", 10, "A01-S003")
    client.set_stock("DSM", "LAMP", 3, "A04-S007")
    client.set_stock("CHI", "MUG", 10, "A02-S001")


def _to_packed(client, oid):
    client.release_hold(oid)
    wave = client.plan_wave("DSM", max_orders=10)
    assert oid in [x for b in wave.batches for x in b.order_ids]
    assert client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=oid)).status == c.ORDER_STATUS_PICKED
    packed = client.fulfillment.PackOrder(f.PackOrderRequest(order_id=oid))
    assert packed.status == c.ORDER_STATUS_PACKED
    return packed


def test_walk_an_order_through_every_state_to_refunded(client, server, tmp_path):
    _setup(client)
    o = client.place_order(client.order_request(
        [("MUG", 2, 1500), ("LAMP", 1, 4500)], postal_code="50010", email="ann@example.com",
        customer_id="C-ann", name="Ann"))
    assert o.status == c.ORDER_STATUS_ALLOCATED and o.payment.status == "NONE"
    # with a card: authorised at intake
    o = client.orders.PlaceOrder(_with_token(client, "tok_visa"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert o.payment.status == "AUTHORIZED" and o.payment.authorized_cents == 7500
    assert o.hold_until > 0 and o.promised_by > o.created_at
    assert on_hand_reserved(client, "MUG")["DSM"] == (10, 4)

    packed = _to_packed(client, o.id)
    assert packed.packages and all(p.box for p in packed.packages)
    assert sorted(s for p in packed.packages for s in p.skus) == ["LAMP", "MUG", "MUG"]

    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert shipped.status == c.ORDER_STATUS_SHIPPED
    (sh,) = shipped.shipments
    assert sh.warehouse_id == "DSM" and validate_tracking_number(sh.tracking_number)
    assert sh.label_url.startswith("file://") and open(sh.label_url[7:], "rb").read(4) == b"%PDF"
    assert sh.eta * 1000 <= shipped.promised_by  # cheapest service that meets the promise
    assert shipped.payment.status == "CAPTURED" and shipped.payment.captured_cents == 7500
    # stock left the building: on_hand and reserved both drop
    assert on_hand_reserved(client, "MUG")["DSM"] == (8, 2) and on_hand_reserved(client, "LAMP")["DSM"] == (2, 1)

    tn = sh.tracking_number
    t1 = client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e1", type="IN_TRANSIT", location="Des Moines, IA"))
    assert t1.shipments[0].status == "IN_TRANSIT"
    again = client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e1", type="IN_TRANSIT", location="Des Moines, IA"))
    assert again.updated_at == t1.updated_at  # idempotent on event_id
    exc = client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e2", type="EXCEPTION", location="weather"))
    assert exc.shipments[0].eta > t1.shipments[0].eta - 1
    listed = client.fulfillment.ListShipmentExceptions(f.ListShipmentExceptionsRequest())
    assert [x.id for x in listed.orders] == [o.id]
    delivered = client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e3", type="DELIVERED", location="Ames, IA"))
    assert delivered.status == c.ORDER_STATUS_DELIVERED and delivered.delivered_at > 0
    # every carrier event is on the order, oldest first, with its shipment's tracking number
    assert [(e.event_id, e.tracking_number, e.type, e.location)
            for e in client.get_order(o.id).tracking_events] == [
        ("e1", tn, "IN_TRANSIT", "Des Moines, IA"), ("e2", tn, "EXCEPTION", "weather"),
        ("e3", tn, "DELIVERED", "Ames, IA")]
    assert all(e.occurred_at > 0 for e in delivered.tracking_events)
    counts = {w.warehouse_id: {x.key: x.count for x in w.orders_by_status}
              for w in client.reporting.GetStats(rep.GetStatsRequest()).warehouses}
    assert counts["DSM"]["DELIVERED"] == 1
    assert not client.fulfillment.ListShipmentExceptions(f.ListShipmentExceptionsRequest()).orders

    # returns: no more than shipped
    with pytest.raises(ClientError) as e:
        client.returns.RequestReturn(r.RequestReturnRequest(
            order_id=o.id, lines=[r.ReturnLine(sku="MUG", quantity=3)], reason="too many"))
    assert e.value.code.name == "INVALID_ARGUMENT"
    ret = client.returns.RequestReturn(r.RequestReturnRequest(
        order_id=o.id, lines=[r.ReturnLine(sku="MUG", quantity=1)], reason="chipped"))
    assert ret.status == "REQUESTED"
    assert client.get_order(o.id).status == c.ORDER_STATUS_RETURN_REQUESTED
    received = client.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True))
    assert received.status == "RECEIVED" and received.restocked
    assert client.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True)).status == "RECEIVED"
    assert on_hand_reserved(client, "MUG")["DSM"] == (9, 2)  # restocked once
    assert client.get_order(o.id).status == c.ORDER_STATUS_RETURNED
    with pytest.raises(ClientError) as e:
        client.returns.IssueRefund(r.IssueRefundRequest(return_id=ret.id, amount_cents=8000))
    assert e.value.code.name == "FAILED_PRECONDITION"  # more than the return is worth
    refunded = client.returns.IssueRefund(r.IssueRefundRequest(return_id=ret.id, amount_cents=1500))
    assert refunded.status == "REFUNDED" and refunded.refunded_cents == 1500
    final = client.get_order(o.id)
    assert final.status == c.ORDER_STATUS_REFUNDED
    assert final.payment.refunded_cents == 1500 and final.payment.status == "PARTIALLY_REFUNDED"
    assert [h.status for h in final.history] == [
        c.ORDER_STATUS_RECEIVED, c.ORDER_STATUS_ALLOCATED, c.ORDER_STATUS_RELEASED,
        c.ORDER_STATUS_PICKED, c.ORDER_STATUS_PACKED, c.ORDER_STATUS_SHIPPED,
        c.ORDER_STATUS_DELIVERED, c.ORDER_STATUS_RETURN_REQUESTED, c.ORDER_STATUS_RETURNED,
        c.ORDER_STATUS_REFUNDED]
    stats = client.get_stats()
    assert stats.return_rate > 0 and stats.on_time_delivery_rate == 1.0
    audit_clean(server)


def _with_token(client, token):
    req = client.order_request([("MUG", 2, 1500), ("LAMP", 1, 4500)], postal_code="50010",
                               email="ann@example.com", customer_id="C-ann2", name="Ann")
    req.payment_token = token
    return req


def test_declined_payment_cancels_and_releases(client, server):
    _setup(client)
    o = client.orders.PlaceOrder(_with_token(client, "tok_decline"))
    assert o.status == c.ORDER_STATUS_CANCELLED and o.payment.status == "DECLINED"
    assert on_hand_reserved(client, "MUG")["DSM"] == (10, 0)
    t = client.orders.PlaceOrder(_with_token(client, "tok_transient_2"))
    assert t.status == c.ORDER_STATUS_ALLOCATED and t.payment.status == "AUTHORIZED"
    audit_clean(server)


def test_cancel_voids_the_authorization(client, server):
    _setup(client)
    o = client.orders.PlaceOrder(_with_token(client, "tok_visa"))
    auth = o.payment.authorization_id
    assert o.payment.status == "AUTHORIZED" and on_hand_reserved(client, "MUG")["DSM"] == (10, 2)
    x = client.cancel_order(o.id, "customer changed their mind")
    assert x.status == c.ORDER_STATUS_CANCELLED and x.payment.status == "VOIDED"
    assert x.payment.authorization_id == auth and x.payment.authorized_cents == 7500
    assert on_hand_reserved(client, "MUG")["DSM"] == (10, 0)
    gw = gateway(server)
    assert gw.voided(auth) and gw.captures(auth) == []
    again = client.cancel_order(o.id)  # a repeat changes nothing
    assert again.payment.status == "VOIDED" and again.updated_at == x.updated_at
    events = list(client.watch_events(after_event_id="0", order_id=o.id, timeout=1.5))
    assert [(e.type, e.detail) for e in events[-2:]] == [
        ("order.cancelled", "customer changed their mind"),
        ("order.payment_voided", "payment authorization voided: 7500 cents released")]
    audit_clean(server)


def test_repeating_a_cancel_cut_short_voids_the_authorization(client, server):
    # The first CancelOrder died after its status change: the order is CANCELLED with its
    # authorization still open. The client's retry finishes the job.
    _setup(client)
    o = client.orders.PlaceOrder(_with_token(client, "tok_visa"))
    server.run(server.store.transition(o.id, OrderStatus.CANCELLED, action="release",
                                       reason="cancelled by request", event="order.cancelled"))
    assert client.get_order(o.id).payment.status == "AUTHORIZED"
    x = client.cancel_order(o.id)
    assert x.status == c.ORDER_STATUS_CANCELLED and x.payment.status == "VOIDED"
    assert gateway(server).voided(o.payment.authorization_id)


def test_an_authorization_landing_after_a_cancel_is_voided(client, server):
    # Intake authorises after placing; if the order was cancelled (or released to a wave) while
    # the gateway answered, the authorization is recorded on the order as it is now, and voided
    # when that is CANCELLED.
    _setup(client)
    req = _with_token(client, "")
    placed = client.orders.PlaceOrder(req)
    assert placed.payment.status == "NONE"
    client.cancel_order(placed.id)
    stale = server.run(server.store.get_order(placed.id))
    stale.status = int(OrderStatus.ALLOCATED)  # what intake still holds
    gw = gateway(server)
    life = OrderLife(server.store, gw, RateTableCarrier())
    after = server.run(life.authorize(stale, "tok_visa"))
    assert after.status == OrderStatus.CANCELLED and after.payment.status == "VOIDED"
    assert gw.voided(after.payment.authorization_id)
    assert client.get_order(placed.id).payment.status == "VOIDED"


def test_a_partial_order_is_charged_only_for_what_ships(client, server):
    _setup(client)
    req = client.order_request([("MUG", 2, 1500), ("LAMP", 5, 4500)], postal_code="50010",
                               email="ann@example.com", allow_partial=True)
    req.payment_token = "tok_visa"
    o = client.orders.PlaceOrder(req)
    # 3 of the 5 lamps exist: all of it is authorised, 2 mugs and 3 lamps are reserved
    assert o.payment.status == "AUTHORIZED" and o.payment.authorized_cents == 25_500
    assert sorted((a.sku, a.quantity) for a in o.allocations) == [("LAMP", 3), ("MUG", 2)]
    _to_packed(client, o.id)
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert shipped.payment.status == "CAPTURED" and shipped.payment.captured_cents == 16_500
    gw = gateway(server)
    auth = o.payment.authorization_id
    assert gw.captured_cents(auth) == 16_500 and gw.voided(auth)  # the other 9,000 released
    audit_clean(server)


def test_split_order_ships_each_warehouse_part(client, server):
    _setup(client)
    client.set_stock("DSM", "MUG", 1)
    o = client.place_order(client.order_request([("MUG", 3)], postal_code="50010"))
    assert {a.warehouse_id for a in o.allocations} == {"CHI"} or len({a.warehouse_id for a in o.allocations}) >= 1
    client.set_stock("CHI", "LAMP", 5, "A01-S001")
    client.set_stock("DSM", "VASE", 5, "A03-S002")
    # no single warehouse has both: VASE only in DSM, 5 LAMPs only in CHI
    o2 = client.place_order(client.order_request([("VASE", 1), ("LAMP", 5)], postal_code="50010"))
    whs = {a.warehouse_id for a in o2.allocations}
    assert whs == {"DSM", "CHI"}
    client.release_hold(o2.id)
    home = o2.id.split(".")[0]
    other = ({"DSM", "CHI"} - {home}).pop()
    w_home = client.plan_wave(home, max_orders=10)
    w_other = client.plan_wave(other, max_orders=10)
    # each warehouse's wave picks that warehouse's part of the split order, once
    for wave, wid in ((w_home, home), (w_other, other)):
        stops = [s for b in wave.batches if o2.id in b.order_ids for s in b.stops if o2.id in s.order_ids]
        want = sorted((a.sku, a.quantity) for a in o2.allocations if a.warehouse_id == wid)
        assert sorted((s.sku, s.quantity) for s in stops) == want
    assert not [b for b in client.plan_wave(other, max_orders=10).batches if o2.id in b.order_ids]
    r = redis_client(server.config.redis_url)
    waved = Shard(other).waved
    assert r.smembers(waved) == {o2.id.encode()}
    # each warehouse confirms its own part: PICKED (and packable) only when both have
    part = client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o2.id, warehouse_id=other))
    assert part.status == c.ORDER_STATUS_RELEASED and list(part.picked_warehouses) == [other]
    with pytest.raises(ClientError) as e:
        client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o2.id))
    assert e.value.code.name == "FAILED_PRECONDITION"
    again = client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o2.id, warehouse_id=other))
    assert again.updated_at == part.updated_at  # a repeat changes nothing
    with pytest.raises(ClientError) as e:
        client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o2.id, warehouse_id="NOPE"))
    assert e.value.code.name == "INVALID_ARGUMENT" and "NOPE" in str(e.value)
    picked = client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o2.id, warehouse_id=home))
    assert picked.status == c.ORDER_STATUS_PICKED
    assert sorted(picked.picked_warehouses) == sorted([home, other])
    assert [h.status for h in picked.history].count(c.ORDER_STATUS_PICKED) == 1
    packed = client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o2.id))
    assert {p.warehouse_id for p in packed.packages} == {"DSM", "CHI"}
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o2.id, service_level="EXPRESS"))
    assert {s.warehouse_id for s in shipped.shipments} == {"DSM", "CHI"}
    assert len({s.tracking_number for s in shipped.shipments}) == 2
    assert not r.exists(waved)  # the part left the building: its waved mark goes with it
    assert all(s.service_level == "EXPRESS" for s in shipped.shipments)
    audit_clean(server)
    delivered = client.fulfillment.MarkDelivered(f.MarkDeliveredRequest(order_id=o2.id))
    assert delivered.status == c.ORDER_STATUS_DELIVERED


ILLEGAL = [
    # (state the order is brought to, call, expected code)
    ("ALLOCATED", "ConfirmPick", "FAILED_PRECONDITION"),
    ("ALLOCATED", "PackOrder", "FAILED_PRECONDITION"),
    ("ALLOCATED", "ShipOrder", "FAILED_PRECONDITION"),
    ("ALLOCATED", "MarkDelivered", "FAILED_PRECONDITION"),
    ("ALLOCATED", "RequestReturn", "FAILED_PRECONDITION"),
    ("CANCELLED", "ConfirmPick", "FAILED_PRECONDITION"),
    ("CANCELLED", "ReleaseHold", "FAILED_PRECONDITION"),
    ("CANCELLED", "PackOrder", "FAILED_PRECONDITION"),
    ("PICKED", "ShipOrder", "FAILED_PRECONDITION"),
    ("PICKED", "CancelOrder", "FAILED_PRECONDITION"),
    ("PACKED", "ConfirmPick", "FAILED_PRECONDITION"),
    ("PACKED", "CancelOrder", "FAILED_PRECONDITION"),
    ("SHIPPED", "CancelOrder", "FAILED_PRECONDITION"),
    ("SHIPPED", "PackOrder", "FAILED_PRECONDITION"),
    ("BACKORDERED", "ConfirmPick", "FAILED_PRECONDITION"),
    ("BACKORDERED", "ShipOrder", "FAILED_PRECONDITION"),
]


def _bring(client, state):
    if state == "BACKORDERED":
        return client.place_order(client.order_request([("LAMP", 50)], postal_code="50010"))
    o = client.place_order(client.order_request([("MUG", 1, 1500)], postal_code="50010"))
    if state == "CANCELLED":
        return client.cancel_order(o.id)
    if state == "ALLOCATED":
        return o
    client.release_hold(o.id)
    client.plan_wave("DSM", max_orders=10)
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    if state == "PICKED":
        return client.get_order(o.id)
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    if state == "PACKED":
        return client.get_order(o.id)
    return client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))


def _call(client, name, oid):
    if name == "ConfirmPick":
        return client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=oid))
    if name == "PackOrder":
        return client.fulfillment.PackOrder(f.PackOrderRequest(order_id=oid))
    if name == "ShipOrder":
        return client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=oid))
    if name == "MarkDelivered":
        return client.fulfillment.MarkDelivered(f.MarkDeliveredRequest(order_id=oid))
    if name == "RequestReturn":
        return client.returns.RequestReturn(r.RequestReturnRequest(
            order_id=oid, lines=[r.ReturnLine(sku="MUG", quantity=1)]))
    if name == "ReleaseHold":
        return client.release_hold(oid)
    if name == "CancelOrder":
        return client.cancel_order(oid)
    raise AssertionError(name)


@pytest.mark.parametrize("state,call,code", ILLEGAL)
def test_illegal_transitions_change_nothing(client, server, state, call, code):
    _setup(client)
    o = _bring(client, state)
    before = client.get_order(o.id)
    stock = (on_hand_reserved(client, "MUG"), on_hand_reserved(client, "LAMP"))
    with pytest.raises(ClientError) as e:
        _call(client, call, o.id)
    assert e.value.code.name == code, str(e.value)
    assert client.get_order(o.id) == before
    assert (on_hand_reserved(client, "MUG"), on_hand_reserved(client, "LAMP")) == stock
    audit_clean(server)


def test_an_authorization_landing_after_a_hold_release_keeps_the_release(client, server):
    # Intake placed the order ON_HOLD and authorises it; meanwhile an operator released the
    # hold. Recording the payment must not put the order back on hold.
    _setup(client)
    placed = client.orders.PlaceOrder(_with_token(client, ""))
    server.run(server.store.transition(placed.id, OrderStatus.ON_HOLD, reason="risky"))
    stale = server.run(server.store.get_order(placed.id))  # what intake holds: ON_HOLD
    client.release_hold(placed.id)  # ON_HOLD -> ALLOCATED, meanwhile
    life = OrderLife(server.store, gateway(server), RateTableCarrier())
    after = server.run(life.authorize(stale, "tok_visa"))
    assert after.status == OrderStatus.ALLOCATED and after.payment.status == "AUTHORIZED"
    assert client.get_order(placed.id).status == c.ORDER_STATUS_ALLOCATED
