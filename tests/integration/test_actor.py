"""Every order history entry and every order event names who caused it (issue 13 item 8): the
API key id of the call, or "system:<job>" for work no call started. Real server, real keys."""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Callable, Iterator

import pytest

from oms.clients.client import OmsClient
from oms.server.auth.principal import acting_as
from oms.server.jobs import notifier as notifier_mod
from oms.server.jobs import wave_job
from oms.server.jobs.notify_config import NotifyConfig
from oms.server.redis import keys
from oms.server.redis.base import now_ms
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY
from tests.helpers import add_warehouses

pytestmark = pytest.mark.timeout(120)

req = OmsClient.order_request
ADMIN_ID = ADMIN_KEY.split("_")[1]
WATCH_TIMEOUT = 10.0  # seconds: upper bound of every stream read


@pytest.fixture()
def network(client: OmsClient) -> OmsClient:
    add_warehouses(client, {"DSM": "50309"})
    client.set_stock("DSM", "SKU-A", 1000, "A01-S002")  # a bin: waves need one
    client.set_stock("DSM", "SKU-B", 0, "A02-S005")
    return client


@pytest.fixture()
def keyed(server, network) -> Iterator[Callable[..., tuple[str, OmsClient]]]:
    """Makes (key id, client speaking with that key) pairs."""
    opened: list[OmsClient] = []

    def make(name: str, scopes: list[str]) -> tuple[str, OmsClient]:
        resp = network.create_api_key(name, scopes)
        cl = OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=resp.key)
        opened.append(cl)
        return resp.key_id, cl

    yield make
    for cl in opened:
        cl.close()


def _events(client: OmsClient, order_id: str, types: set[str]) -> dict[str, c.OrderEvent]:
    """The order's events from the start, by type, once every type in ``types`` was seen."""
    got: dict[str, c.OrderEvent] = {}
    stream = client.watch_events(after_event_id="0", order_id=order_id, timeout=WATCH_TIMEOUT)
    try:
        for e in stream:
            got.setdefault(e.type, e)
            if types <= got.keys():
                break
    finally:
        stream.close()
    return got


def _actors(o: c.Order) -> list[tuple[int, str]]:
    return [(h.status, h.actor) for h in o.history]


def test_who_placed_and_who_cancelled(keyed, network):
    shop_id, shop = keyed("shop", ["orders:write", "orders:read"])
    clerk_id, clerk = keyed("clerk", ["orders:write", "orders:read"])
    placed = shop.place_order(req([("SKU-A", 1)], postal_code="50010"))
    # the PlaceOrder reply (hand-written bytes) already names the caller
    assert _actors(placed) == [(c.ORDER_STATUS_RECEIVED, shop_id), (placed.status, shop_id)]
    clerk.cancel_order(placed.id, "customer called")
    o = network.get_order(placed.id)
    assert _actors(o) == [(c.ORDER_STATUS_RECEIVED, shop_id), (placed.status, shop_id),
                          (c.ORDER_STATUS_CANCELLED, clerk_id)]
    ev = _events(network, placed.id, {"order.placed", "order.cancelled"})
    assert ev["order.placed"].actor == shop_id
    assert ev["order.cancelled"].actor == clerk_id


def test_callers_sharing_intake_batches_each_keep_their_name(keyed, network):
    # Concurrent calls are coalesced into shared intake batches: each order still records
    # its own caller, whichever call's task ran the batch.
    callers = [keyed(f"shop{k}", ["orders:write", "orders:read"]) for k in range(3)]

    def place(who: tuple[str, OmsClient]) -> list[tuple[str, c.Order]]:
        return [(who[0], who[1].place_order(req([("SKU-A", 1)], postal_code="50010")))
                for _ in range(8)]

    with cf.ThreadPoolExecutor(len(callers)) as pool:
        results = [x for part in pool.map(place, callers) for x in part]
    kid, cl = callers[0]
    batch = cl.batch_place_orders([req([("SKU-A", 1)], postal_code="50010") for _ in range(3)])
    streamed = list(cl.place_orders_stream(iter([req([("SKU-A", 1)], postal_code="50010")])))
    results += [(kid, o) for o in batch + streamed]
    for key_id, placed in results:
        stored = network.get_order(placed.id)
        assert {a for _, a in _actors(stored)} == {key_id}
        assert _actors(placed) == _actors(stored)


def test_hold_release_and_wave_name_their_callers(keyed, network):
    shop_id, shop = keyed("shop", ["orders:write", "orders:read"])
    planner_id, planner = keyed("planner", ["fulfillment", "orders:write"])
    placed = shop.place_order(req([("SKU-A", 2)], postal_code="50010"))
    planner.release_hold(placed.id)  # same status: an event, no history entry
    wave = planner.plan_wave("DSM")
    assert [oid for b in wave.batches for oid in b.order_ids] == [placed.id]
    o = network.get_order(placed.id)
    assert o.history[-1].status == c.ORDER_STATUS_RELEASED
    assert o.history[-1].actor == planner_id
    ev = _events(network, placed.id, {"order.placed", "order.hold_released", "order.released"})
    assert ev["order.placed"].actor == shop_id
    assert ev["order.hold_released"].actor == planner_id
    assert ev["order.released"].actor == planner_id


def test_backorders_filled_by_a_call_name_the_caller(keyed, network):
    ops_id, ops = keyed("ops", ["fulfillment"])
    placed = network.place_order(req([("SKU-B", 1)], postal_code="50010"))
    assert placed.status == c.ORDER_STATUS_BACKORDERED
    network.set_stock("DSM", "SKU-B", 5, "A02-S005")
    assert ops.fill_backorders().filled == 1
    o = network.get_order(placed.id)
    assert _actors(o) == [(c.ORDER_STATUS_RECEIVED, ADMIN_ID), (c.ORDER_STATUS_BACKORDERED, ADMIN_ID),
                          (o.status, ops_id)]
    assert _events(network, placed.id, {"order.backorder_filled"})["order.backorder_filled"].actor == ops_id


def test_the_wave_job_names_itself(server, network):
    placed = network.place_order(req([("SKU-B", 1)], postal_code="50010"))
    network.set_stock("DSM", "SKU-B", 5, "A02-S005")
    cfg = wave_job.WaveConfig(once=True, no_reallocate=True, fraud_hold_seconds=0, time_budget=1.0)
    assert server.run(wave_job.run_once(server.store, cfg, asyncio.Event())) == 1
    o = network.get_order(placed.id)
    assert [h.actor for h in o.history] == [ADMIN_ID, ADMIN_ID, wave_job.ACTOR, wave_job.ACTOR]
    assert o.history[-1].status == c.ORDER_STATUS_RELEASED
    ev = _events(network, placed.id, {"order.backorder_filled", "order.released"})
    assert ev["order.backorder_filled"].actor == ev["order.released"].actor == "system:oms-wave"


def test_follow_ups_name_the_notifier(server, network):
    placed = network.place_order(req([("SKU-A", 1)], postal_code="50010"))
    # schedule the review request as due (as delivery does, days earlier)
    server.run(server.store.r.zadd(keys.Shard("DSM").followup, {placed.id: now_ms() - 1}))
    n = notifier_mod.Notifier(server.store, None, None, NotifyConfig(), asyncio.Event())  # type: ignore[arg-type]
    assert server.run(n.followups(["DSM"])) == 1
    assert _events(network, placed.id, {"order.followup"})["order.followup"].actor == "system:oms-notify"


def test_work_outside_a_call_is_the_system(server, network):
    from oms.engine.lifecycle import OrderStatus  # noqa: PLC0415

    a, b = (network.place_order(req([("SKU-A", 1)], postal_code="50010")) for _ in range(2))

    async def cancel(order_id: str) -> None:
        await server.store.transition(order_id, OrderStatus.CANCELLED, action="release")

    async def cancel_as_job(order_id: str) -> None:
        with acting_as("system:test-job"):
            await cancel(order_id)

    server.run(cancel(a.id))  # no call and no job: the default principal
    server.run(cancel_as_job(b.id))
    assert network.get_order(a.id).history[-1].actor == "system"
    assert network.get_order(b.id).history[-1].actor == "system:test-job"
