"""Refunds are bounded by the value of their return (received units x unit price, less what was
refunded on it), checked and recorded atomically on the order: concurrent refunds never pay out
more than allowed, and the gateway's total for the capture always equals the order's."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from oms.clients.client import ClientError
from oms.engine.carriers import RateTableCarrier
from oms.engine.payments import PaymentTransientError
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as r
from oms.server.order_actions import OrderLife
from tests.helpers import audit_clean, gateway

MUG, LAMP = 1500, 4500


def _shipped(client) -> c.Order:
    """An order of 2 mugs and 1 lamp, paid by card, shipped: 7,500 cents captured."""
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 10, "A01-S003")
    client.set_stock("DSM", "LAMP", 3, "A04-S007")
    req = client.order_request([("MUG", 2, MUG), ("LAMP", 1, LAMP)], postal_code="50010",
                               email="ann@example.com", customer_id="C-ann", name="Ann")
    req.payment_token = "tok_visa"
    o = client.orders.PlaceOrder(req)
    client.release_hold(o.id)
    client.plan_wave("DSM", max_orders=10)
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert shipped.payment.status == "CAPTURED" and shipped.payment.captured_cents == 2 * MUG + LAMP
    return shipped


def _return(client, order_id: str, lines: list[tuple[str, int]], receive: bool = True) -> str:
    ret = client.returns.RequestReturn(r.RequestReturnRequest(
        order_id=order_id, lines=[r.ReturnLine(sku=s, quantity=q) for s, q in lines]))
    if receive:
        client.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True))
    return ret.id


def _refund(client, return_id: str, amount: int) -> r.Return:
    return client.returns.IssueRefund(r.IssueRefundRequest(return_id=return_id, amount_cents=amount))


def _refused(client, return_id: str, amount: int) -> ClientError:
    with pytest.raises(ClientError) as e:
        _refund(client, return_id, amount)
    return e.value


def _paid(server, o: c.Order) -> int:
    """What the gateway refunded on the order's capture (read from its ledger)."""
    capture_id = server.run(server.store.get_order(o.id)).payment.capture_id
    assert capture_id
    return gateway(server).refunded_cents(capture_id)


def test_a_refund_is_bounded_by_its_returns_value_not_by_the_capture(client, server):
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 1)])
    for amount in (MUG + 1, 2 * MUG, 2 * MUG + LAMP):  # all within the 7,500 captured
        err = _refused(client, rid, amount)
        assert err.code.name == "FAILED_PRECONDITION", err
        assert str(MUG) in err.message  # names the limit
    assert _paid(server, o) == 0
    after = client.get_order(o.id)
    assert after.payment.refunded_cents == 0 and after.payment.status == "CAPTURED"
    done = _refund(client, rid, MUG)
    assert done.status == "REFUNDED" and done.refunded_cents == MUG
    assert _paid(server, o) == MUG == client.get_order(o.id).payment.refunded_cents
    audit_clean(server)


def test_a_refund_before_the_return_is_received_is_refused(client, server):
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 1)], receive=False)
    err = _refused(client, rid, 100)
    assert err.code.name == "FAILED_PRECONDITION", err
    assert _paid(server, o) == 0
    assert client.returns.GetReturn(r.GetReturnRequest(return_id=rid)).refunded_cents == 0


def test_an_unknown_return_is_not_found(client, server):
    o = _shipped(client)
    other = o.id[:-1] + ("1" if o.id[-1] == "0" else "0")  # well-formed, never placed
    for rid in (f"{o.id}/r9", f"{o.id}/r1", f"{other}/r1"):
        err = _refused(client, rid, 100)
        assert err.code.name == "NOT_FOUND", (rid, err)


def test_partial_refunds_up_to_the_value_then_not_one_cent_more(client, server):
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 2)])
    for amount in (1000, 999, 2 * MUG - 1999):
        _refund(client, rid, amount)
    err = _refused(client, rid, 1)
    assert err.code.name == "FAILED_PRECONDITION" and str(2 * MUG) in err.message
    ret = client.returns.GetReturn(r.GetReturnRequest(return_id=rid))
    assert ret.status == "REFUNDED" and ret.refunded_cents == 2 * MUG
    final = client.get_order(o.id)
    assert final.status == c.ORDER_STATUS_REFUNDED
    assert final.payment.refunded_cents == 2 * MUG and final.payment.status == "PARTIALLY_REFUNDED"
    assert _paid(server, o) == 2 * MUG
    audit_clean(server)


@pytest.mark.parametrize("amounts", [
    [700, 800, 900, 1000, 1100, 1200, 1300, 1400],  # distinct: each its own refund
    [1000] * 8,  # equal: a pending one of the same amount is joined, never paid twice
])
def test_concurrent_refunds_on_one_return_never_pay_more_than_its_value(client, server, amounts):
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 2)])
    value = 2 * MUG
    barrier = threading.Barrier(len(amounts))

    def go(amount: int) -> str:
        barrier.wait()
        try:
            _refund(client, rid, amount)
            return "OK"
        except ClientError as e:
            return e.code.name

    with ThreadPoolExecutor(len(amounts)) as ex:
        codes = list(ex.map(go, amounts))
    assert set(codes) <= {"OK", "FAILED_PRECONDITION"}, codes
    assert "OK" in codes
    after = client.get_order(o.id)
    ret = client.returns.GetReturn(r.GetReturnRequest(return_id=rid))
    paid = _paid(server, o)
    assert paid == after.payment.refunded_cents == ret.refunded_cents <= value
    if len(set(amounts)) == len(amounts):  # every accepted request is exactly one refund
        assert paid == sum(a for a, code in zip(amounts, codes) if code == "OK")
    audit_clean(server)


def test_a_refund_cut_short_by_the_gateway_is_finished_by_its_retry(client, server):
    # The gateway stays unavailable through every attempt: the refund is left pending on the
    # order, where it counts against the bound; the retry pays it once, with the same key.
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 1)])
    flaky = OrderLife(server.store, gateway(server, transient_failures={"refund": 50}),
                      RateTableCarrier())
    with pytest.raises(PaymentTransientError):
        server.run(flaky.refund(rid, 1000))
    assert _paid(server, o) == 0
    assert client.get_order(o.id).payment.refunded_cents == 0
    assert _refused(client, rid, MUG - 999).code.name == "FAILED_PRECONDITION"  # 1000 held
    done = _refund(client, rid, 1000)  # the retry
    assert done.refunded_cents == 1000
    assert _paid(server, o) == 1000 == client.get_order(o.id).payment.refunded_cents
    _refund(client, rid, MUG - 1000)
    assert _paid(server, o) == MUG == client.get_order(o.id).payment.refunded_cents
    assert _refused(client, rid, 1).code.name == "FAILED_PRECONDITION"


def test_a_pending_refund_is_finished_by_any_later_refund_of_its_return(client, server):
    o = _shipped(client)
    rid = _return(client, o.id, [("MUG", 2)])
    flaky = OrderLife(server.store, gateway(server, transient_failures={"refund": 50}),
                      RateTableCarrier())
    with pytest.raises(PaymentTransientError):
        server.run(flaky.refund(rid, 1000))
    _refund(client, rid, 700)  # another amount: its own refund, and it finishes the pending one
    assert _paid(server, o) == 1700 == client.get_order(o.id).payment.refunded_cents
    assert client.returns.GetReturn(r.GetReturnRequest(return_id=rid)).refunded_cents == 1700
