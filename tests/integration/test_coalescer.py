"""The Coalescer under concurrent callers and garbage collection: every caller gets its own
result, and no batch is lost while it waits on Redis (asyncio holds tasks only weakly)."""
from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from oms.engine.models import Customer, Address, Line, Order, OrderRequest, Warehouse
from oms.server.coalescer import Coalescer
from oms.server.intake import Intake
from oms.server.redis.store import Store
from tests.conftest import store_for


def _req(i: int) -> OrderRequest:
    return OrderRequest(f"co-{i}", "web", Customer(f"C{i}", f"c{i}@example.com", "x"),
                        Address(postal_code="50309", country="US", latitude=41.6, longitude=-93.6),
                        (Line("SKU-A", 1, 100), Line("SKU-B", 1, 100)))


async def _two_stocked_warehouses(store: Store) -> None:
    for wid, lat, lon in (("DSM", 41.6, -93.6), ("CHI", 41.9, -87.6)):
        await store.upsert_warehouse(Warehouse(wid, wid, lat, lon))
        for sku in ("SKU-A", "SKU-B"):
            await store.set_stock(wid, sku, 10_000, "")


def test_concurrent_single_orders_all_complete_under_gc(clean_redis: str) -> None:
    async def go() -> list:
        store = store_for(clean_redis)
        try:
            await _two_stocked_warehouses(store)
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


def test_a_small_batch_gathers_callers_that_arrive_over_a_few_loop_turns(clean_redis: str) -> None:
    """Under load gRPC hands calls to the servicer over several turns of the event loop; a
    batch that starts small waits a few turns so that they share it."""
    async def go(turns: int) -> tuple[list[int], list]:
        store = store_for(clean_redis)
        try:
            await _two_stocked_warehouses(store)
            intake = Intake(store, fraud_hold_seconds=0)
            sizes: list[int] = []
            place = intake.place

            async def recording_place(requests):  # the real intake, batch sizes recorded
                sizes.append(len(requests))
                return await place(requests)

            intake.place = recording_place  # type: ignore[method-assign]
            co = Coalescer(intake, gather_turns=turns)

            async def caller(i: int) -> list:
                for _ in range(i % 4):  # arrives i % 4 loop turns after the first
                    await asyncio.sleep(0)
                return await co.submit([_req(1000 * turns + i)])

            results = await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(12))), 60)
            assert not await store.audit()
            return sizes, results
        finally:
            await store.close()

    gathered, results = asyncio.run(go(4))
    assert gathered == [12]
    assert all(isinstance(r[0], Order) for r in results)
    assert len({r[0].id for r in results}) == 12
    eager, _ = asyncio.run(go(0))
    assert len(eager) > 1 and sum(eager) == 12  # without the turns the late callers wait


class _Recording:
    """The real intake, with the size of every batch it is given recorded."""

    def __init__(self, intake: Intake) -> None:
        self.sizes: list[int] = []
        self._place = intake.place
        intake.place = self.place  # type: ignore[method-assign]

    async def place(self, requests):  # type: ignore[no-untyped-def]
        self.sizes.append(len(requests))
        return await self._place(requests)


@asynccontextmanager
async def _coalescer(clean_redis: str, **kw: Any) -> AsyncIterator[tuple[Store, Coalescer, _Recording]]:
    """A Coalescer over the real intake on two stocked warehouses, its batch sizes recorded."""
    store = store_for(clean_redis)
    try:
        await _two_stocked_warehouses(store)
        intake = Intake(store, fraud_hold_seconds=0)
        rec = _Recording(intake)
        yield store, Coalescer(intake, **kw), rec
    finally:
        await store.close()


def test_a_lone_caller_never_waits_for_company(clean_redis: str) -> None:
    """c=1: no order ever arrives while its batch runs, so a long window is never opened."""
    async def go() -> tuple[Coalescer, list[int]]:
        async with _coalescer(clean_redis, wait_s=30.0) as (_, co, rec):
            for i in range(25):
                (res,) = await asyncio.wait_for(co.submit([_req(5000 + i)]), 20)
                assert isinstance(res, Order)
            return co, rec.sizes

    co, sizes = asyncio.run(go())
    assert co.waits == 0 and co.arrivals == 0
    assert sizes == [1] * 25


def _stream_of_callers(clean_redis: str, wait_s: float, n: int, every_s: float, base: int
                       ) -> tuple[Coalescer, list[int], list]:
    """Callers that arrive on their own schedule (open loop), whatever the answers do."""
    async def go() -> tuple[Coalescer, list[int], list]:
        async with _coalescer(clean_redis, wait_s=wait_s) as (store, co, rec):
            calls = []
            for i in range(n):
                calls.append(asyncio.create_task(co.submit([_req(base + i)])))
                await asyncio.sleep(every_s)
            results = await asyncio.wait_for(asyncio.gather(*calls), 60)
            assert not await store.audit()
            return co, rec.sizes, results

    return asyncio.run(go())


def test_while_orders_arrive_during_batches_a_small_batch_waits_for_more(clean_redis: str) -> None:
    """Open-loop arrivals faster than a batch: with the window, batches wait and get bigger;
    without it (wait 0) they never wait."""
    co, sizes, results = _stream_of_callers(clean_redis, 0.05, 80, 0.001, 6000)
    assert all(isinstance(r[0], Order) for r in results)
    assert len({r[0].id for r in results}) == 80 and sum(sizes) == 80
    assert co.waits > 0
    off, sizes_off, results_off = _stream_of_callers(clean_redis, 0.0, 80, 0.001, 7000)
    assert off.waits == 0 and sum(sizes_off) == 80
    assert all(isinstance(r[0], Order) for r in results_off)


def test_the_wait_ends_once_enough_orders_are_waiting(clean_redis: str) -> None:
    """A window of a minute still lets a batch start as soon as company() orders wait: twice
    the usual arrivals during a batch, here 4 (callers in a closed loop are all back)."""
    async def go() -> tuple[Coalescer, list[int]]:
        async with _coalescer(clean_redis, wait_s=60.0, min_parallel=4,
                              busy_horizon_s=60.0) as (_, co, rec):
            co.arrivals, co._arrivals_at = 2.0, asyncio.get_running_loop().time()  # busy
            assert co.company() == 4
            first = asyncio.create_task(co.submit([_req(8000)]))
            for _ in range(10):
                await asyncio.sleep(0)
            assert co.waits == 0 and co._company is not None  # it is waiting
            rest = [asyncio.create_task(co.submit([_req(8001 + i)])) for i in range(3)]
            got = await asyncio.wait_for(asyncio.gather(first, *rest), 20)
            assert all(isinstance(r[0], Order) for r in got)
            return co, rec.sizes

    co, sizes = asyncio.run(go())
    assert co.waits == 1 and sizes[0] == 4


def test_after_a_quiet_spell_the_first_order_does_not_wait(clean_redis: str) -> None:
    async def go() -> Coalescer:
        async with _coalescer(clean_redis, wait_s=60.0, busy_horizon_s=0.05) as (_, co, _rec):
            # busy a while ago
            co.arrivals, co._arrivals_at = 5.0, asyncio.get_running_loop().time() - 1.0
            (res,) = await asyncio.wait_for(co.submit([_req(9000)]), 20)
            assert isinstance(res, Order)
            return co

    assert asyncio.run(go()).waits == 0


def test_company_is_twice_the_usual_arrivals_within_bounds() -> None:
    co = Coalescer(None, min_parallel=16)  # type: ignore[arg-type] - only the arithmetic
    for arrivals, enough in ((0.0, 2), (0.6, 2), (1.2, 3), (3.2, 7), (7.9, 16), (50.0, 16)):
        co.arrivals = arrivals
        assert co.company() == enough, arrivals
