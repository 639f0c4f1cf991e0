"""Issue 11 finding 4: a batch cut off by its deadline (or cancelled anywhere) leaves no
damage. Once a batch starts writing it finishes or rolls back; a pending claim whose owner is
gone is taken over after its lease; a retry always ends with the order; the periodic sweep
releases reservations left without an order."""
from __future__ import annotations

import asyncio
import random
import time

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine.models import Address, Customer, Line, OrderRequest
from oms.v1 import orders_pb2 as pb
from oms.server.intake import Intake
from oms.server.redis.store import PENDING, PlaceEntry, now_ms
from tests.conftest import ADMIN_KEY, ServerThread, server_config

pytestmark = pytest.mark.timeout(240)

req = OmsClient.order_request


@pytest.fixture()
def split_network(client):
    """Every order of the tests below is split: sku A only in DSM, sku B only in CHI, so a
    placement writes a reservation (kind R) before its order (kind O)."""
    client.upsert_warehouse("DSM", "DSM", postal_code="50309")
    client.upsert_warehouse("CHI", "CHI", postal_code="60601")
    client.upsert_product("A", "a")
    client.upsert_product("B", "b")
    client.set_stock("DSM", "A", 1_000_000)
    client.set_stock("CHI", "B", 1_000_000)
    return client


def _requests(prefix: str, n: int) -> list[pb.PlaceOrderRequest]:
    return [req([("A", 1, 100), ("B", 1, 100)], postal_code="50010", idempotency_key=f"{prefix}-{i}")
            for i in range(n)]


def _settled(server, keys: list[str]) -> dict[str, str]:
    """The claim of each key once no request is at work on it (claims of placed orders are
    finished off the critical path, so give that a moment)."""
    for _ in range(200):
        vals = {k: server.run(server.store._claim_value(k)) for k in keys}
        if not any(v is None or v.startswith(PENDING) for v in vals.values()):
            return vals
        time.sleep(0.05)
    return vals


def _check_resolved(client, server, keys: list[str]) -> None:
    orders = list(client.iter_orders())
    by_key: dict[str, list[str]] = {}
    for o in orders:
        by_key.setdefault(o.idempotency_key, []).append(o.id)
    for k in keys:
        assert len(by_key.get(k, [])) == 1, (k, by_key.get(k))
    claims = _settled(server, keys)
    for k in keys:
        assert claims[k] == by_key[k][0], (k, claims[k])  # no pending claim left
    assert server.run(server.store.audit()) == []
    assert server.run(server.store.sweep_orphans(0)) == 0  # no orphaned reservation


def test_tiny_deadlines_then_retry(split_network, server):
    client = split_network
    keys: list[str] = []
    batches = []
    for n, deadline in enumerate([0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.04] * 2):
        batch = _requests(f"d{n}", 20)
        batches.append(batch)
        keys += [r.idempotency_key for r in batch]
        try:
            client.orders.BatchPlaceOrders(pb.BatchPlaceOrdersRequest(requests=batch), timeout=deadline)
        except ClientError as e:
            assert e.code == grpc.StatusCode.DEADLINE_EXCEEDED, e
    for batch in batches:  # the retries, with a long deadline
        results = client.batch_place_orders(batch)
        assert all(not isinstance(r, Exception) for r in results), results
        assert [r.idempotency_key for r in results] == [q.idempotency_key for q in batch]
    _check_resolved(client, server, keys)


def _domain(r: pb.PlaceOrderRequest) -> OrderRequest:
    return OrderRequest(
        idempotency_key=r.idempotency_key, channel=r.channel,
        customer=Customer(r.customer.id, r.customer.email, r.customer.name),
        ship_to=Address("", "", "", "", r.ship_to.postal_code, "US", 41.6, -93.6),
        lines=[Line(ln.sku, ln.quantity, ln.unit_price_cents) for ln in r.lines])


def test_batches_cancelled_at_random_points_then_retried(split_network, server):
    """100 trials: the caller of a 20-order batch is cancelled after a random number of event
    loop turns (fixed seed), then the batch is retried with the same keys."""
    intake = Intake(server.store)
    rng = random.Random(11)
    keys: list[str] = []

    async def trial(t: int) -> None:
        batch = [_domain(r) for r in _requests(f"c{t}", 20)]
        keys.extend(r.idempotency_key for r in batch)
        call = asyncio.ensure_future(intake.place(batch))
        for _ in range(rng.randrange(0, 60)):
            await asyncio.sleep(0)
        call.cancel()
        try:
            await call
        except asyncio.CancelledError:
            pass
        results = await intake.place(batch)
        assert all(not isinstance(r, Exception) for r in results), results

    for t in range(100):
        server.run(trial(t))
    _check_resolved(split_network, server, keys)


def test_expired_claim_is_taken_over_by_a_retry(split_network, server):
    """A claim whose owner died before placing (its lease over) does not block the key."""
    (r,) = _requests("dead", 1)
    assert server.run(server.store.claim_keys([r.idempotency_key], "deadowner", lease_s=0)) == [None]
    order = split_network.place_order(r)
    assert order.idempotency_key == r.idempotency_key
    again = split_network.place_order(r)
    assert again.id == order.id
    _check_resolved(split_network, server, [r.idempotency_key])


def test_claim_of_a_dead_owner_that_placed_returns_its_order(split_network, server):
    """The owner placed the order but died before finishing its claim: a retry after the lease
    returns that order instead of placing a second one."""
    (r,) = _requests("placed", 1)
    first = split_network.place_order(r)
    k = r.idempotency_key
    _settled(server, [k])
    # the claim as the dead owner left it: pending, lease over (the order is in its shard)
    server.run(server.store.finish_keys([(k, f"{PENDING}deadowner:1")], []))
    again = split_network.place_order(r)
    assert again.id == first.id
    _check_resolved(split_network, server, [k])


def test_periodic_sweep_releases_young_orphans(clean_redis):
    cfg = server_config(clean_redis, sweep_interval_s=0.05, orphan_grace_ms=100)
    assert cfg.orphan_grace_ms < cfg.grace_ms  # younger than the startup sweep's grace
    st = ServerThread(cfg).start()
    try:
        with OmsClient(f"127.0.0.1:{st.port}", timeout=60, api_key=ADMIN_KEY) as client:
            client.upsert_warehouse("DSM", "DSM", postal_code="50309")
            client.upsert_product("A", "a")
            client.set_stock("DSM", "A", 10)

            async def orphan() -> None:
                ids = await st.store.sku_ids(["A"])
                # a reservation whose order was never written (a crash between the phases)
                await st.store.place_groups({"DSM": [PlaceEntry("R", "CHI.0000orphan", [("A", ids["A"], 4)])]},
                                            now_ms())

            st.run(orphan())
            assert client.get_stock("A").levels[0].reserved == 4
            for _ in range(400):  # many sweep intervals
                if client.get_stock("A").levels[0].reserved == 0:
                    break
                time.sleep(0.05)
            assert client.get_stock("A").levels[0].reserved == 0
            assert st.run(st.store.audit()) == []
    finally:
        st.stop()
