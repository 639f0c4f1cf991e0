"""``oms-load --setup``: warehouses at real metro ZIPs and stock of every SKU in each, over
gRPC."""
from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from oms.clients.load.order_pool import sku_name
from oms.clients.load.worker import CHANNEL_OPTIONS
from oms.clients.metros import METROS

LAYOUT = dict(aisles=30, slots_per_aisle=60, slot_length_m=1.0, aisle_spacing_m=3.0)


# Retried with backoff (about 7 s in all): the server answers these while Redis is briefly
# unreachable (a restart, a cluster failover) or a race was lost, and both calls set absolute
# values, so a repeat is harmless.
RETRIED = frozenset({"UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"})
BACKOFF_S = (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0)


async def _retried(call: Callable[[], Awaitable[Any]]) -> Any:
    import grpc  # noqa: PLC0415

    for delay in (*BACKOFF_S, None):
        try:
            return await call()
        except grpc.aio.AioRpcError as e:
            if delay is None or e.code().name not in RETRIED:
                raise
        await asyncio.sleep(delay)


async def setup_network(target: str, n_warehouses: int, skus: int, stock: int, hot_skus: int,
                        hot_stock: int, seed: int, concurrency: int = 64,
                        quiet: bool = False, api_key: str = "",
                        tls_ca: str = "") -> dict[str, Any]:
    """Create warehouses at real metro ZIPs and set stock of every SKU in each, over gRPC
    (``api_key`` needs the inventory:write scope)."""
    import grpc  # noqa: PLC0415

    from oms.clients import credentials  # noqa: PLC0415
    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import inventory_pb2 as inv  # noqa: PLC0415
    from oms.v1 import inventory_pb2_grpc as inv_rpc  # noqa: PLC0415

    if not 1 <= n_warehouses <= len(METROS):
        raise SystemExit(f"--warehouses must be 1..{len(METROS)}")
    rng = random.Random(seed)
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    errors: Counter[str] = Counter()
    md = credentials.auth_metadata(api_key) or None
    async with credentials.aio_channel(target, tls_ca=tls_ca, options=CHANNEL_OPTIONS) as ch:
        try:
            await asyncio.wait_for(ch.channel_ready(), 30)
        except asyncio.TimeoutError:
            raise RuntimeError(f"cannot connect to {target} within 30 s") from None
        stub = inv_rpc.InventoryServiceStub(ch)
        whs = METROS[:n_warehouses]
        for wid, name, z in whs:
            await _retried(lambda: stub.UpsertWarehouse(inv.UpsertWarehouseRequest(
                warehouse=c.Warehouse(id=wid, name=name, postal_code=z,
                                      layout=c.WarehouseLayout(**LAYOUT))), timeout=30, metadata=md))
        jobs = [(wid, k) for k in range(skus) for wid, _, _ in whs]
        it = iter(jobs)
        done = 0
        last = 0.0

        async def one() -> None:
            nonlocal done, last
            for wid, k in it:
                on_hand = hot_stock if (k < hot_skus and hot_stock > 0) else stock
                loc = f"A{rng.randrange(LAYOUT['aisles']):02d}-S{rng.randrange(LAYOUT['slots_per_aisle']):03d}"
                req = inv.SetStockRequest(warehouse_id=wid, sku=sku_name(k), on_hand=on_hand,
                                          location=loc)
                try:
                    await _retried(lambda: stub.SetStock(req, timeout=60, metadata=md))
                except grpc.aio.AioRpcError as e:
                    errors[e.code().name] += 1
                done += 1
                now = time.perf_counter()
                if not quiet and now - last > (0.5 if tty else 5.0):
                    last = now
                    print(f"\rsetup: stock {done:,}/{len(jobs):,}", end="" if tty else "\n",
                          file=sys.stderr, flush=True)

        await asyncio.gather(*(one() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    if not quiet:
        print(f"{chr(13) if tty else ''}setup: {n_warehouses} warehouses, {skus} SKUs, {len(jobs):,} stock levels in "
              f"{dt:.1f} s{' errors ' + str(dict(errors)) if errors else ''}", file=sys.stderr)
    return {"warehouses": [w[0] for w in METROS[:n_warehouses]], "skus": skus, "stock": stock,
            "hot_stock": hot_stock, "stock_levels": len(jobs), "seconds": round(dt, 2),
            "errors": dict(errors)}
