"""Pick-wave planning: take a warehouse's releasable orders, batch and route them with the
engine, and release them atomically with the stored wave (RELEASE_WAVE).

If another planner released some of the same orders first, the script changes nothing and
names them; the wave is re-planned without them, so an order is never released twice.
"""
from __future__ import annotations

import asyncio
import logging

import numpy as np
import orjson

from oms.engine import batching, routing
from oms.engine.errors import ConflictError, NotFoundError, TransitionError, ValidationError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Allocation, Order, PickBatch, PickStop, Wave, location_code, parse_location
from oms.server.config import WAVE_TIME_BUDGET_S
from oms.server.intake import new_order_id
from oms.server.redis.store import StaleError, Store, now_ms

log = logging.getLogger(__name__)


def wave_to_json(w: Wave) -> bytes:
    return orjson.dumps(w)


def wave_from_json(raw: bytes) -> Wave:
    d = orjson.loads(raw)
    return Wave(
        id=d["id"], warehouse_id=d["warehouse_id"], total_distance_m=d["total_distance_m"],
        baseline_distance_m=d["baseline_distance_m"], created_at=d["created_at"],
        batches=tuple(PickBatch(
            id=b["id"], order_ids=tuple(b["order_ids"]), distance_m=b["distance_m"],
            baseline_distance_m=b["baseline_distance_m"],
            stops=tuple(PickStop(s["location"], s["aisle"], s["slot"], s["sku"], s["quantity"],
                                 tuple(s["order_ids"])) for s in b["stops"]))
            for b in d["batches"]))


class WavePlanner:
    def __init__(self, store: Store, *, time_budget_s: float = WAVE_TIME_BUDGET_S, attempts: int = 5) -> None:
        self.store = store
        self.time_budget_s = time_budget_s
        self.attempts = attempts

    async def plan(self, warehouse_id: str, max_orders: int, batch_max_orders: int,
                   batch_max_items: int, method: str = "auto") -> Wave:
        if max_orders <= 0 or max_orders > 20000:
            raise ValidationError.one("max_orders", f"{max_orders} must be in 1..20000")
        if batch_max_orders <= 0:
            raise ValidationError.one("batch_max_orders", f"{batch_max_orders} must be >= 1")
        if batch_max_items <= 0:
            raise ValidationError.one("batch_max_items", f"{batch_max_items} must be >= 1")
        wh = await self.store.warehouse(warehouse_id)
        excluded: set[str] = set()
        for _ in range(self.attempts):
            now = now_ms()
            homed = [o for o in await self.store.releasable_orders(
                warehouse_id, max_orders + len(excluded), now) if o.id not in excluded]
            elsewhere = [o for o in homed if o.allocations
                         and all(a.warehouse_id != wh.id for a in o.allocations)]
            if elsewhere:
                await self._release_picked_elsewhere(elsewhere)
                homed = [o for o in homed if o not in elsewhere]
            parts = [o for o in await self.store.releasable_parts(
                warehouse_id, max_orders + len(excluded), now) if o.id not in excluded]
            # Oldest first over both (ids sort by creation time after the home prefix).
            orders = sorted(homed + parts, key=lambda o: o.id.rpartition(".")[2])[:max_orders]
            skus = sorted({a.sku for o in orders for a in o.allocations if a.warehouse_id == wh.id})
            locs = await self.store.locations(wh.id, skus)
            picks, kept = self._pick_orders(orders, wh.id, locs, wh.layout)
            if not kept:
                # Nothing to release: an empty wave, not stored.
                return Wave(id="", warehouse_id=wh.id, batches=(), total_distance_m=0.0,
                            baseline_distance_m=0.0, created_at=now)
            plan = await asyncio.to_thread(
                batching.plan_batches, picks, wh.layout, batch_max_orders, batch_max_items,
                method, self.time_budget_s)
            wave = self._wave(wh.id, kept, picks, plan, wh.layout, now)
            saved_cm = int(round((wave.baseline_distance_m - wave.total_distance_m) * 100))
            part_ids = {o.id for o in parts}
            bad = await self.store.release_wave(
                wh.id, wave.id, wave_to_json(wave), saved_cm,
                [o.id for o, _ in kept if o.id not in part_ids],
                [o.id for o, _ in kept if o.id in part_ids], now)
            if not bad:
                return wave
            excluded.update(bad)
            log.info("wave for %s: %d orders were released elsewhere; re-planning", wh.id, len(bad))
        raise ConflictError(f"orders of warehouse {warehouse_id!r} kept changing while planning; retry")

    async def _release_picked_elsewhere(self, orders: list[Order]) -> None:
        """Orders homed here with nothing to pick here (a backorder filled, or a re-allocation
        that moved every line, to other warehouses): their status lives here, their picks in
        the other warehouses' waves (``releasable_parts``), so they are released without a pick
        list of this warehouse. Unless they changed since they were read: then next round."""
        for o in orders:
            where = ", ".join(sorted(o.warehouses))
            try:
                await self.store.transition(
                    o.id, OrderStatus.RELEASED, reason=f"released; picked in {where}",
                    event="order.released", expect_updated_at=o.updated_at)
            except (StaleError, TransitionError, NotFoundError):
                continue

    @staticmethod
    def _pick_orders(orders: list[Order], wid: str, locs: dict[str, str], layout: object
                     ) -> tuple[list[batching.PickOrder], list[tuple[Order, list[Allocation]]]]:
        """The pick lines of each order at this warehouse; ``kept`` pairs every waveable order
        with its allocation rows here, in the order of its PickOrder lines."""
        picks, kept = [], []
        for o in orders:
            rows = [a for a in o.allocations if a.warehouse_id == wid]
            if not rows or any(a.sku not in locs for a in rows):
                # Without a bin location a line cannot be picked: the order waits (stays
                # ALLOCATED) until SetStock gives its sku a location.
                log.warning("order %s has a sku without a bin location in %s; not waved", o.id, wid)
                continue
            coords = [parse_location(locs[a.sku]) for a in rows]
            picks.append(batching.PickOrder(
                order_ref=len(kept), aisles=np.array([c[0] for c in coords], dtype=np.int64),
                slots=np.array([c[1] for c in coords], dtype=np.int64),
                qty=np.array([a.quantity for a in rows], dtype=np.int64)))
            kept.append((o, rows))
        return picks, kept

    @staticmethod
    def _wave(wid: str, kept: list[tuple[Order, list[Allocation]]], picks: list[batching.PickOrder],
              plan: batching.BatchPlan, layout: object, now: int) -> Wave:
        wave_id = new_order_id(wid, now)
        batches = []
        for b, members in enumerate(plan.batches):
            stops: list[PickStop] = []
            aisles, slots = [], []
            for oi, li in plan.routes[b]:
                o, rows = kept[int(oi)]
                row = rows[int(li)]
                a, s = int(picks[int(oi)].aisles[li]), int(picks[int(oi)].slots[li])
                aisles.append(a)
                slots.append(s)
                last = stops[-1] if stops else None
                if last and last.aisle == a and last.slot == s and last.sku == row.sku:
                    ids = last.order_ids if o.id in last.order_ids else last.order_ids + (o.id,)
                    stops[-1] = PickStop(last.location, a, s, row.sku, last.quantity + row.quantity, ids)
                else:
                    stops.append(PickStop(location_code(a, s), a, s, row.sku, row.quantity, (o.id,)))
            base, _ = routing.s_shape_route(np.array(aisles, dtype=np.int64),
                                            np.array(slots, dtype=np.int64), layout)
            batches.append(PickBatch(
                id=f"{wave_id}/{b + 1}", order_ids=tuple(kept[i][0].id for i in members),
                stops=tuple(stops), distance_m=round(float(plan.distances[b]), 3),
                baseline_distance_m=round(float(base), 3)))
        return Wave(id=wave_id, warehouse_id=wid, batches=tuple(batches),
                    total_distance_m=round(float(plan.total_distance), 3),
                    baseline_distance_m=round(float(plan.baseline_distance), 3), created_at=now)
