"""PlanWave / GetWave / ConfirmPick on the real server."""
from __future__ import annotations

import concurrent.futures as cf
import random

import numpy as np
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine.models import Layout
from oms.engine.routing import exact_route_length, s_shape_route
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.conftest import ADMIN_KEY


def _setup(client: OmsClient, n_skus: int = 60, seed: int = 3) -> None:
    rng = random.Random(seed)
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=10,
                            slots_per_aisle=20, slot_length_m=1.0, aisle_spacing_m=3.0)
    for k in range(n_skus):
        client.set_stock("DSM", f"S{k}", 1000, f"A{rng.randrange(10):02d}-S{rng.randrange(20):03d}")


def _place(client: OmsClient, n: int, seed: int = 5) -> list[c.Order]:
    rng = random.Random(seed)
    reqs = [client.order_request([(f"S{k}", rng.randint(1, 3)) for k in rng.sample(range(60), rng.randint(1, 4))],
                                 postal_code="50010") for _ in range(n)]
    out = client.batch_place_orders(reqs)
    assert all(isinstance(o, c.Order) for o in out)
    for o in out:
        client.release_hold(o.id)  # end the fraud-hold delay so the orders can be waved
    return out


def test_held_orders_never_reach_a_wave(client, server):
    _setup(client)
    rng = random.Random(1)
    client.batch_place_orders([client.order_request([(f"S{rng.randrange(60)}", 1)], postal_code="50010")
                               for _ in range(10)])
    wave = client.plan_wave("DSM", max_orders=100)
    assert wave.id == "" and not wave.batches


def test_plan_wave_routes_and_releases(client, server):
    _setup(client)
    orders = _place(client, 40)
    wave = client.plan_wave("DSM", max_orders=100, batch_max_orders=4, batch_max_items=12)
    assert wave.id.startswith("DSM.")
    seen = [oid for b in wave.batches for oid in b.order_ids]
    assert sorted(seen) == sorted(o.id for o in orders)
    layout = Layout(10, 20, 1.0, 3.0)
    total = 0.0
    by_id = {o.id: o for o in orders}
    for b in wave.batches:
        assert len(b.order_ids) <= 4
        assert sum(a.quantity for oid in b.order_ids for a in by_id[oid].allocations) <= 12 or len(b.order_ids) == 1
        # the stops cover exactly the batch's lines
        want = {}
        for oid in b.order_ids:
            for a in by_id[oid].allocations:
                want[a.sku] = want.get(a.sku, 0) + a.quantity
        got = {}
        for s in b.stops:
            got[s.sku] = got.get(s.sku, 0) + s.quantity
            assert s.location == f"A{s.aisle:02d}-S{s.slot:03d}"
        assert got == want
        aisles = np.array([s.aisle for s in b.stops])
        slots = np.array([s.slot for s in b.stops])
        exact = exact_route_length(aisles, slots, layout)
        assert b.distance_m == pytest.approx(exact, abs=1e-3)
        assert b.distance_m <= b.baseline_distance_m + 1e-6
        assert b.baseline_distance_m == pytest.approx(s_shape_route(aisles, slots, layout)[0], abs=1e-3)
        total += b.distance_m
    assert wave.total_distance_m == pytest.approx(total, abs=1e-2)
    assert wave.total_distance_m <= wave.baseline_distance_m + 1e-6
    for o in orders:
        got = client.get_order(o.id)
        assert got.status == c.ORDER_STATUS_RELEASED
    assert client.fulfillment.GetWave(f.GetWaveRequest(wave_id=wave.id)) == wave
    # a second plan finds nothing left
    assert not client.plan_wave("DSM", max_orders=100).batches
    picked = client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=orders[0].id))
    assert picked.status == c.ORDER_STATUS_PICKED
    with pytest.raises(ClientError) as e:
        client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=orders[1].id + "x"))
    assert e.value.code.name == "NOT_FOUND"


def test_concurrent_planners_never_release_an_order_twice(client, server):
    _setup(client)
    orders = _place(client, 60, seed=9)
    target = f"127.0.0.1:{server.port}"

    def plan(_: int) -> list[str]:
        with OmsClient(target, api_key=ADMIN_KEY) as cl:
            w = cl.plan_wave("DSM", max_orders=40, batch_max_orders=4, batch_max_items=12)
            return [oid for b in w.batches for oid in b.order_ids]

    with cf.ThreadPoolExecutor(4) as ex:
        waves = list(ex.map(plan, range(4)))
    released = [oid for w in waves for oid in w]
    assert len(released) == len(set(released)) == len(orders)
    assert server.run(server.store.audit()) == []


def test_plan_wave_errors(client, server):
    with pytest.raises(ClientError) as e:
        client.plan_wave("NOPE")
    assert e.value.code.name == "NOT_FOUND"
    with pytest.raises(ClientError) as e:
        client.plan_wave("bad id!")
    assert e.value.code.name == "INVALID_ARGUMENT"
    with pytest.raises(ClientError) as e:
        client.fulfillment.GetWave(f.GetWaveRequest(wave_id="DSM.nothere"))
    assert e.value.code.name == "NOT_FOUND"
