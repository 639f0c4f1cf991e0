"""Intake claims idempotency keys in the same round trip as the fraud counts (RISK_SIGNALS), so a
repeat is counted before it is known to be one; it must be taken back (RISK_UNDO). However a key
is repeated (one after the other, at once from many threads, within one batch, or after its
first owner's lease ended), the customer's velocity and history count the order once."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from oms.engine import fraud
from oms.server.redis.store import RiskRow, now_ms
from oms.v1 import common_pb2 as c

WINDOW_S = fraud.RiskConfig().velocity_window_s


def _setup(client) -> None:
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 1000, "A01-S001")


def _request(client, customer: str, key: str):
    return client.order_request([("MUG", 1, 1500)], postal_code="50010", customer_id=customer,
                                email=f"{customer}@example.com", idempotency_key=key)


def _counted(server, customer: str) -> tuple[int, int, int, int]:
    """(orders by customer in the window, by e-mail, history orders, history value), as the
    next order of ``customer`` would see them (the probe counts itself after reading)."""
    (sig,), _ = server.run(server.store.risk_and_snapshot(
        [RiskRow(customer, f"{customer}@example.com", "", 1, 0, 0, "US")], now_ms(), WINDOW_S,
        [], np.zeros(0, dtype=np.int64)))
    return sig.by_customer, sig.by_email, sig.orders, sig.value_sum


def test_sequential_repeats_are_counted_once(client, server) -> None:
    _setup(client)
    req = _request(client, "rep-seq", "key-seq")
    first = client.place_order(req)
    assert first.status == c.ORDER_STATUS_ALLOCATED
    for _ in range(5):
        assert client.place_order(req).id == first.id
    assert _counted(server, "rep-seq") == (1, 1, 1, 1500)


def test_repeats_within_one_batch_and_across_batches_are_counted_once(client, server) -> None:
    _setup(client)
    req = _request(client, "rep-batch", "key-batch")
    first, *rest = client.batch_place_orders([req] * 4)
    assert [o.id for o in rest] == [first.id] * 3
    again = client.batch_place_orders([req, _request(client, "other", "key-other")])
    assert again[0].id == first.id
    assert _counted(server, "rep-batch") == (1, 1, 1, 1500)
    assert _counted(server, "other") == (1, 1, 1, 1500)


def test_concurrent_repeats_are_one_order_counted_once(client, server) -> None:
    _setup(client)
    req = _request(client, "rep-conc", "key-conc")
    with ThreadPoolExecutor(16) as ex:
        ids = list(ex.map(lambda _: client.place_order(req).id, range(32)))
    assert len(set(ids)) == 1
    with ThreadPoolExecutor(16) as ex:  # and again, once the first order is settled
        ids += list(ex.map(lambda _: client.place_order(req).id, range(32)))
    assert len(set(ids)) == 1
    assert _counted(server, "rep-conc") == (1, 1, 1, 1500)


def test_taken_over_claim_without_an_order_is_counted_once(client, server) -> None:
    """A claim whose owner died before placing: the retry takes it over (counted, taken back,
    then counted again when it places the order): one order, counted once."""
    _setup(client)
    req = _request(client, "rep-dead", "key-dead")
    assert server.run(server.store.claim_keys(["key-dead"], "deadowner", lease_s=0)) == [None]
    order = client.place_order(req)
    assert order.status == c.ORDER_STATUS_ALLOCATED
    assert client.place_order(req).id == order.id
    assert _counted(server, "rep-dead") == (1, 1, 1, 1500)


def test_repeat_resolves_to_its_order_when_no_warehouse_is_enabled(client, server) -> None:
    """A batch that fails before its first round trip (every warehouse disabled) still claims
    its keys: a repeat gets its order, a new key fails and keeps no claim."""
    _setup(client)
    req = _request(client, "rep-off", "key-off")
    first = client.place_order(req)
    client.upsert_warehouse("DSM", postal_code="50309", disabled=True)
    server.store.reset_caches()
    again, new = client.batch_place_orders([req, _request(client, "rep-new", "key-new")])
    assert again.id == first.id
    assert "no enabled warehouse" in str(new)
    client.upsert_warehouse("DSM", postal_code="50309")
    server.store.reset_caches()
    placed = client.place_order(_request(client, "rep-new", "key-new"))  # the key was given back
    assert placed.status == c.ORDER_STATUS_ALLOCATED
