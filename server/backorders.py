"""Backorder filling: BACKORDERED orders take stock that arrived since they were placed.

Oldest first over every shard: an order placed earlier is served first (a later order can only
take what the earlier ones left). Each order is allocated by the intake policy (the
nearest warehouse that can ship everything, else the fewest warehouses: engine.allocation;
whole, unless it was placed with ``allow_partial``) on a snapshot of what is available now,
then applied like re-allocation moves (``apply_allocations``, many orders per round trip), in
steps that are each atomic and that a crash at any point leaves recoverable
(server/reallocation_runner.py): stage the reservations under "<order>~m", COMMIT_ALLOCATION (only if
the order is still BACKORDERED with no allocation: it becomes ALLOCATED, event
``order.backorder_filled``), then SWAP_RECORD. Stock taken meanwhile by intake makes a stage
fail: the order stays BACKORDERED for the next round. Orders whose skus are unknown, or that
no warehouse set can ship now, wait too. An order of a sales channel limited to some
warehouses is filled from those only (engine.scoped_allocation).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from oms.engine import allocation, geo
from oms.engine.errors import OmsError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Allocation
from oms.engine.scoped_allocation import ChannelScopes, allocate_scoped
from oms.server.reallocation_runner import Move, apply_allocations, ordered_units, stat_deltas
from oms.server.redis.store import Store, now_ms

log = logging.getLogger(__name__)

# Orders applied per round trip of each step (stage, commit, swap): a few hundred keeps each
# pipeline, and each PLACE_ORDERS call in it, short enough not to stall other clients.
CHUNK = 200


@dataclass(frozen=True)
class BackorderReport:
    considered: int  # BACKORDERED orders looked at
    filled: int  # now ALLOCATED
    waiting: int  # no stock for them yet (or unknown skus)
    skipped: int  # planned, but the stock or the order changed meanwhile: next round


class BackorderFiller:
    """``fraud_hold_seconds`` and ``risk_hold_score`` are intake's (server Config): a filled
    order waits out the fraud hold counted from when it was placed, and one whose fraud score
    at intake asked for a review (it was not held then: it held no stock) goes ON_HOLD."""

    def __init__(self, store: Store, *, fraud_hold_seconds: int = 3600,
                 risk_hold_score: int = 60) -> None:
        self.store = store
        self.fraud_hold_ms = fraud_hold_seconds * 1000
        self.risk_hold_score = risk_hold_score

    async def run(self, *, max_orders: int = 20000) -> BackorderReport:
        now = now_ms()
        orders = await self.store.orders_in_status(int(OrderStatus.BACKORDERED), max_orders)
        orders.sort(key=lambda o: o.id.rpartition(".")[2])  # creation time, over all shards
        whs = await self.store.warehouses(0.0)
        merged = [ordered_units(o) for o in orders]
        ids = await self.store.sku_ids({s for m in merged for s in m})
        # A channel's orders take only from its warehouses; one whose warehouses are all
        # disabled waits. A disabled channel refuses new orders, but its backorders are served.
        scopes = ChannelScopes([w.id for w in whs], await self.store.channels(0.0),
                               np.array([not w.disabled for w in whs], dtype=np.bool_),
                               refuse_disabled=False)
        scope = [scopes.scope(o.channel) for o in orders]
        known = [k for k, m in enumerate(merged)
                 if m and all(s in ids for s in m) and not isinstance(scope[k], OmsError)]
        if not known or not whs:
            return BackorderReport(len(orders), 0, len(orders), 0)
        sku_index: dict[str, int] = {}
        line_ptr, line_sku, line_qty = [0], [], []
        for k in known:
            for sku, q in merged[k].items():
                line_sku.append(sku_index.setdefault(sku, len(sku_index)))
                line_qty.append(q)
            line_ptr.append(len(line_sku))
        skus = list(sku_index)
        available = await self.store.snapshot([w.id for w in whs],
                                              np.array([ids[s] for s in skus], dtype=np.int64))
        picked = [orders[k] for k in known]
        dist = geo.distance_matrix(
            np.array([o.ship_to.latitude for o in picked]), np.array([o.ship_to.longitude for o in picked]),
            np.array([w.latitude for w in whs]), np.array([w.longitude for w in whs]))
        plan = allocate_scoped(
            np.array(line_ptr, dtype=np.int64), np.array(line_sku, dtype=np.int64),
            np.array(line_qty, dtype=np.int64), dist, np.maximum(available, 0), scopes.masks,
            [scope[k] for k in known], np.array([o.allow_partial for o in picked], dtype=np.bool_))
        row_ptr = plan.row_ptr()
        moves = []
        for k, o in enumerate(picked):
            if plan.status[k] == allocation.BACKORDERED:
                continue
            allocs = [Allocation(skus[line_sku[int(plan.alloc_line[r])]], whs[int(plan.alloc_wh[r])].id,
                                 int(plan.alloc_qty[r]), round(float(dist[k, int(plan.alloc_wh[r])]), 3))
                      for r in range(int(row_ptr[k]), int(row_ptr[k + 1]))]
            reason = f"backorder filled from {', '.join(sorted({a.warehouse_id for a in allocs}))}"
            stats = "alloc=1,backorder_filled=1," + stat_deltas([], allocs)
            if plan.status[k] == allocation.PARTIAL:
                reason = "part of the " + reason
                stats += ",partial=1"
            status = OrderStatus.ALLOCATED
            if o.risk_score >= self.risk_hold_score:
                status = OrderStatus.ON_HOLD
                reason += "; on hold for review: " + "; ".join(o.risk_reasons)
            hold_until = o.created_at + self.fraud_hold_ms
            moves.append(Move(o, allocs, reason, stats, status, hold_until if hold_until > now else 0))
        filled = 0
        for i in range(0, len(moves), CHUNK):
            filled += sum(await apply_allocations(self.store, moves[i:i + CHUNK], ids))
        skipped = len(moves) - filled
        rep = BackorderReport(len(orders), filled, len(orders) - filled - skipped, skipped)
        if orders:
            log.info("backorders: %s", rep)
        return rep
