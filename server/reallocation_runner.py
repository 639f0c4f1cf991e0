"""Global re-allocation of ALLOCATED (not yet released) orders: build the problem from Redis,
solve it with engine.reallocation (OR-Tools LP + exact per-order repair), apply the moves.

A move touches several shards, so it is applied in steps that each are atomic and that a
crash at any point leaves recoverable:
1. stage: reserve the order's new lines in each warehouse whose part changes, under the record
   id "<order>~m" (PLACE_ORDERS kind R: all or nothing per warehouse); on a shortfall release
   what was staged and leave the order as it is;
2. commit: COMMIT_ALLOCATION in the order's home shard switches its allocation only if it is
   still the one the plan started from (the order may have been cancelled or released);
3. swap: SWAP_RECORD in each changed warehouse releases the old record and renames the staged
   one. The recovery sweep finishes step 3, or rolls back a stage whose commit never happened.
Moves that only fit after other moves released stock (cycles) are skipped: staging first means
they would not fit, and releasing first would leave an order briefly without its stock.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oms.engine import geo, reallocation
from oms.engine.errors import OmsError
from oms.engine.lifecycle import HOLDS_STOCK, SHIPPED_OR_LATER, OrderStatus
from oms.engine.models import Allocation, Order
from oms.engine.scoped_allocation import ChannelScopes
from oms.server.redis.store import PlaceEntry, Store, now_ms, staged_id

log = logging.getLogger(__name__)


@dataclass
class ReallocationReport:
    orders: int
    changed: int
    moved: int
    skipped: int
    cost_before: float
    cost_after: float  # of the plan; what was applied is between cost_before and this
    lp_lower_bound: float
    solve_seconds: float


class Reallocator:
    def __init__(self, store: Store, *, shipment_penalty_km: float = 200.0) -> None:
        self.store = store
        self.penalty = shipment_penalty_km

    async def run(self, *, time_budget_s: float = 3.0, max_orders: int = 20000) -> ReallocationReport:
        whs = await self.store.warehouses(0.0)
        orders = [o for o in await self.store.orders_in_status(2, max_orders) if _fully_allocated(o)]
        # A part already on a pick list stays where it is.
        waved = await self.store.waved_parts(orders)
        orders = [o for o in orders if o.id not in waved]
        if not orders or not whs:
            return ReallocationReport(len(orders), 0, 0, 0, 0.0, 0.0, 0.0, 0.0)
        wids = [w.id for w in whs]
        widx = {w: i for i, w in enumerate(wids)}
        sku_index: dict[str, int] = {}
        line_ptr = [0]
        line_sku: list[int] = []
        line_qty: list[int] = []
        cur_line: list[int] = []
        cur_wh: list[int] = []
        cur_qty: list[int] = []
        for o in orders:
            merged = ordered_units(o)
            base = len(line_sku)
            pos = {}
            for k, (sku, q) in enumerate(merged.items()):
                pos[sku] = base + k
                line_sku.append(sku_index.setdefault(sku, len(sku_index)))
                line_qty.append(q)
            line_ptr.append(len(line_sku))
            for a in o.allocations:
                cur_line.append(pos[a.sku])
                cur_wh.append(widx[a.warehouse_id])
                cur_qty.append(a.quantity)
        skus = list(sku_index)
        ids = await self.store.sku_ids(skus)
        free = await self.store.snapshot(wids, np.array([ids[s] for s in skus], dtype=np.int64))
        dist = geo.distance_matrix(
            np.array([o.ship_to.latitude for o in orders]), np.array([o.ship_to.longitude for o in orders]),
            np.array([w.latitude for w in whs]), np.array([w.longitude for w in whs]))
        enabled = np.array([not w.disabled for w in whs], dtype=np.bool_)
        problem = reallocation.ReallocationProblem(
            line_ptr=np.array(line_ptr), line_sku=np.array(line_sku), line_qty=np.array(line_qty),
            dist=dist, free=np.maximum(free, 0), cur_line=np.array(cur_line), cur_wh=np.array(cur_wh),
            cur_qty=np.array(cur_qty), enabled=enabled, shipment_penalty_km=self.penalty,
            allowed=await self._allowed(orders, wids, enabled))
        result = await asyncio.to_thread(reallocation.reallocate, problem, time_budget_s=time_budget_s)
        moved = skipped = 0
        for mv in reallocation.moves(result, problem):
            if mv.release_first:
                skipped += 1
                continue
            o = orders[mv.order]
            new_allocs = [Allocation(skus[line_sku[li]], wids[w], q, round(float(dist[mv.order, w]), 3))
                          for w, rows in sorted(mv.new.items()) for li, q in rows]
            if await apply_allocation(self.store, o, new_allocs, ids, "re-allocated",
                                      stat_deltas(o.allocations, new_allocs)):
                moved += 1
            else:
                skipped += 1
        rep = ReallocationReport(len(orders), int(result.changed.sum()), moved, skipped,
                                 result.cost_before, result.cost_after, result.lp_lower_bound,
                                 result.solve_seconds)
        log.info("re-allocation: %s", rep)
        return rep

    async def _allowed(self, orders: list[Order], wids: list[str], enabled: np.ndarray
                       ) -> np.ndarray | None:
        """Where each order may take new stock: its sales channel's warehouses (None: all).
        An order whose channel has no enabled warehouse left keeps what it holds."""
        chans = await self.store.channels(0.0)
        if not chans:
            return None
        scopes = ChannelScopes(wids, chans, enabled, refuse_disabled=False)
        scope = [scopes.scope(o.channel) for o in orders]
        if all(s == 0 for s in scope):
            return None
        none = np.zeros(len(wids), dtype=np.bool_)
        return np.stack([none if isinstance(s, OmsError) else scopes.masks[s] for s in scope])


@dataclass(frozen=True)
class Move:
    """``order`` (as read: ALLOCATED, or BACKORDERED with nothing reserved) is to take ``new``."""
    order: Order
    new: list[Allocation]
    reason: str
    stats: str  # counter deltas "k=v,k=v" for COMMIT_ALLOCATION
    status: OrderStatus = OrderStatus.ALLOCATED  # ON_HOLD: a filled backorder to be reviewed
    hold_until: int | None = None  # None leaves it


async def apply_allocation(store: Store, o: Order, new_allocs: list[Allocation],
                           ids: dict[str, int], reason: str, stats: str) -> bool:
    """Stage, commit, swap (module docstring) for one order: False, with whatever was staged
    released again, when a warehouse no longer has the stock or the order changed since it
    was read."""
    return (await apply_allocations(store, [Move(o, new_allocs, reason, stats)], ids))[0]


async def apply_allocations(store: Store, moves: Sequence[Move], ids: dict[str, int]) -> list[bool]:
    """``apply_allocation`` for many orders, each step one round trip for all of them. Only for
    moves that do not need stock another of them frees (backorders hold none): every stage
    happens before any swap."""
    groups: dict[str, list[PlaceEntry]] = {}
    staged: list[list[tuple[str, int]]] = []  # per move: (warehouse, its entry in groups[w])
    changed: list[list[str]] = []
    for m in moves:
        old, new = _per_wh(m.order.allocations), _per_wh(m.new)
        ch = [w for w in set(old) | set(new) if old.get(w) != new.get(w)]
        pos = []
        for w in ch:
            if w in new:
                g = groups.setdefault(w, [])
                pos.append((w, len(g)))
                g.append(PlaceEntry("R", staged_id(m.order.id),
                                    [(s, ids[s], q) for s, q in new[w].items()]))
        staged.append(pos)
        changed.append(ch)
    codes = await store.place_groups(groups, now_ms()) if groups else {}
    # Only what a move staged itself (code 1) is its to release. A record that was there already
    # (code 2) belongs to a concurrent mover of the same order (or a crash the recovery sweep
    # will roll back): leave the order to it.
    mine = [[(w, staged_id(m.order.id)) for w, i in pos if codes[w][i] == 1]
            for m, pos in zip(moves, staged)]
    ok = [len(mi) == len(pos) for mi, pos in zip(mine, staged)]
    to_commit = [k for k in range(len(moves)) if ok[k]]
    done = await store.commit_allocations([
        (moves[k].order, moves[k].new, moves[k].reason, moves[k].stats, moves[k].status,
         moves[k].hold_until) for k in to_commit])
    for k, committed in zip(to_commit, done):
        ok[k] = committed
    await store.release_many([p for k in range(len(moves)) if not ok[k] for p in mine[k]])
    won = [k for k in range(len(moves)) if ok[k]]
    await store.swap_records_many([(moves[k].order.id, w) for k in won for w in changed[k]])
    # A cancel that ran between a commit and its swap released the order's records while the
    # new ones were still staged under another id: give back (or, shipped, consume) what the
    # swap just made the order's own.
    now = await store.get_orders([moves[k].order.id for k in won]) if won else []
    release, consume = [], []
    for k, o in zip(won, now):
        if o.status not in HOLDS_STOCK:
            back = [(w, o.id) for w, _ in staged[k]]
            (consume if o.status in SHIPPED_OR_LATER else release).extend(back)
    await store.release_many(release)
    await store.consume_many(consume)
    return ok


def ordered_units(o: Order) -> dict[str, int]:
    """Units ordered per sku (lines of one sku merged), in line order."""
    out: dict[str, int] = {}
    for ln in o.lines:
        out[ln.sku] = out.get(ln.sku, 0) + ln.quantity
    return out


def _fully_allocated(o: Order) -> bool:
    want = ordered_units(o)
    got: dict[str, int] = {}
    for a in o.allocations:
        got[a.sku] = got.get(a.sku, 0) + a.quantity
    return bool(want) and want == got


def _per_wh(allocs: list[Allocation]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for a in allocs:
        d = out.setdefault(a.warehouse_id, {})
        d[a.sku] = d.get(a.sku, 0) + a.quantity
    return out


def stat_deltas(old: list[Allocation], new: list[Allocation]) -> str:
    """Counter changes (shipments, distance, split orders) of going from ``old`` to ``new``."""
    def summary(allocs: list[Allocation]) -> tuple[int, int, int]:
        dist = {a.warehouse_id: a.distance_km for a in allocs}
        return len(dist), int(sum(dist.values()) * 1000), int(len(dist) > 1)

    (s0, d0, p0), (s1, d1, p1) = summary(old), summary(new)
    return f"ship={s1 - s0},dist_m={d1 - d0},split={p1 - p0}"
