"""The periodic orphan sweep runs on the serving event loop beside traffic, so its cost must not
grow with every open order: it once checked the existence of every reservation's order each
15 s in every worker, which put open-loop unary PlaceOrder's p99 at 630-811 ms against 20 ms
with the sweep off (about 50,000 orders open). Only a split order's parts in its other
warehouses can be orphans (PLACE_ORDERS writes an order and its home reservation in one
script, and orders are never deleted), and one worker sweeps per interval."""
from __future__ import annotations

import pytest
import redis

from oms.server.jobs.sweeper import Sweeper
from oms.server.redis.store import PlaceEntry, now_ms
from tests import conftest


def _exists_calls(r: redis.Redis) -> int:
    return int(r.info("commandstats").get("cmdstat_exists", {}).get("calls", 0))


def test_sweep_checks_only_records_of_orders_homed_elsewhere(client, server, redis_url) -> None:
    if conftest.ON_CLUSTER:
        pytest.skip("command counts of one redis-server")
    client.upsert_warehouse("DSM", "DSM", postal_code="50309")
    client.upsert_product("A", "a")
    client.set_stock("DSM", "A", 1_000)
    for i in range(60):  # single-warehouse orders: order and reservation written together
        client.place_order(client.order_request([("A", 1, 100)], postal_code="50010",
                                                idempotency_key=f"home-{i}"))

    async def orphans() -> None:
        ids = await server.store.sku_ids(["A"])
        # reservations whose orders were never written (a crash between the two phases)
        await server.store.place_groups({"DSM": [
            PlaceEntry("R", f"CHI.0000orphan{k}", [("A", ids["A"], 2)]) for k in range(3)]}, now_ms())

    server.run(orphans())
    assert client.get_stock("A").levels[0].reserved == 60 + 6
    r = redis.Redis.from_url(redis_url)
    r.config_resetstat()
    assert server.run(server.store.sweep_orphans(0)) == 3
    # one existence check per record of an order homed elsewhere, none for the 60 at home
    assert _exists_calls(r) == 3
    assert client.get_stock("A").levels[0].reserved == 60
    assert server.run(server.store.audit()) == []


def test_sweep_skips_records_younger_than_the_grace(client, server, redis_url) -> None:
    if conftest.ON_CLUSTER:
        pytest.skip("command counts of one redis-server")
    client.upsert_warehouse("DSM", "DSM", postal_code="50309")
    client.upsert_product("A", "a")
    client.set_stock("DSM", "A", 10)

    async def orphan() -> None:
        ids = await server.store.sku_ids(["A"])
        await server.store.place_groups({"DSM": [PlaceEntry("R", "CHI.0000young", [("A", ids["A"], 1)])]},
                                        now_ms())

    server.run(orphan())
    r = redis.Redis.from_url(redis_url)
    r.config_resetstat()
    assert server.run(server.store.sweep_orphans(60_000)) == 0  # may still get its order
    assert _exists_calls(r) == 0
    assert client.get_stock("A").levels[0].reserved == 1


def test_one_sweeper_per_interval_across_workers(server) -> None:
    # each worker process runs a Sweeper; within one interval only the first takes the turn
    a = Sweeper(server.store, interval_s=30.0, grace_ms=10_000)
    b = Sweeper(server.store, interval_s=30.0, grace_ms=10_000)
    assert server.run(a.take_turn()) is True
    assert server.run(b.take_turn()) is False
    assert server.run(a.take_turn()) is False  # the same worker waits for the next interval too
