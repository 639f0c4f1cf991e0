"""The Coalescer under concurrent callers and garbage collection: every caller gets its own
result, and no batch is lost while it waits on Redis (asyncio holds tasks only weakly)."""
from __future__ import annotations

import asyncio
import gc

from engine.models import Customer, Address, Line, Order, OrderRequest, Warehouse
from server.intake import Coalescer, Intake
from server.redis.store import Store


def _req(i: int) -> OrderRequest:
    return OrderRequest(f"co-{i}", "web", Customer(f"C{i}", f"c{i}@example.com", "x"),
                        Address(postal_code="50309", country="US", latitude=41.6, longitude=-93.6),
                        (Line("SKU-A", 1, 100), Line("SKU-B", 1, 100)))


def test_concurrent_single_orders_all_complete_under_gc(clean_redis: str) -> None:
    async def go() -> list:
        store = Store.from_url(clean_redis)
        try:
            for wid, lat, lon in (("DSM", 41.6, -93.6), ("CHI", 41.9, -87.6)):
                await store.upsert_warehouse(Warehouse(wid, wid, lat, lon))
                for sku in ("SKU-A", "SKU-B"):
                    await store.set_stock(wid, sku, 10_000, "")
            co = Coalescer(Intake(store, fraud_hold_seconds=0), min_parallel=4)
            stop = asyncio.Event()

            async def collector() -> None:  # collect garbage while batches wait on Redis
                while not stop.is_set():
                    gc.collect()
                    await asyncio.sleep(0)

            gc_task = asyncio.create_task(collector())
            results = []
            for wave in range(5):  # waves of callers arriving together, as under load
                results += await asyncio.wait_for(asyncio.gather(
                    *(co.submit([_req(wave * 64 + i)]) for i in range(64))), 60)
            stop.set()
            await gc_task
            assert not await store.audit()  # stock invariants hold
            return results
        finally:
            await store.close()

    results = asyncio.run(go())
    orders = [r[0] for r in results]
    assert all(isinstance(o, Order) for o in orders), [o for o in orders if not isinstance(o, Order)][:3]
    assert len({o.id for o in orders}) == 320
    assert [o.idempotency_key for o in orders] == [f"co-{i}" for i in range(320)]
