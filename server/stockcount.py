"""Stock counts that find less than open orders have reserved (damage, theft, miscounts).

SetStock refuses an on-hand figure below what is reserved: it would oversell. A physical count
is a fact, though, so RecordStockCount accepts it and makes room. The orders holding the sku in
that warehouse that are not on a pick list yet (ALLOCATED or ON_HOLD, no part waved anywhere)
give up their reservations, newest first so that the oldest keep theirs, until what stays
reserved fits the count; FillBackorders (the wave job, every round) then sources them again
from wherever stock is.

Intake must not take the units being freed, or the count would chase it for ever. So, after
checking that enough orders can give way (if not, nothing changes):
1. SET_STOCK with "clamp" lowers on_hand to what is reserved now: available 0, no new
   reservation of the sku can be made there;
2. each order given up goes to BACKORDERED with no allocation in one TRANSITION, and its
   reservation in the counted warehouse is dropped with the sku's units *written off*
   (on_hand falls with reserved, available stays 0; its other skus are given back), in the
   TRANSITION when that warehouse is its home, else by RELEASE_RESERVATION right after;
   its other warehouses are released as for a cancel;
3. SET_STOCK writes the count, which now covers what stays reserved.
A crash between the TRANSITION and a non-home write-off leaves the record to the recovery
sweep, which gives it back (available rises, on_hand stays above the count): repeating the count
finishes it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from oms.engine.errors import ConflictError, NotFoundError, PreconditionError, TransitionError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order, StockLevel
from oms.server.redis.order_update import OrderUpdate
from oms.server.redis.store import STAGED, StaleError, Store, home_warehouse

log = logging.getLogger(__name__)

# Orders whose reservation a count may take back: not on any pick list yet.
_BUMPABLE = (OrderStatus.ALLOCATED, OrderStatus.ON_HOLD)


@dataclass(frozen=True)
class CountResult:
    level: StockLevel
    backordered: list[str]  # orders that gave up their reservation, newest first


class StockCounter:
    def __init__(self, store: Store, *, attempts: int = 5) -> None:
        self.store = store
        self.attempts = attempts

    async def record(self, warehouse_id: str, sku: str, counted: int, reason: str = "") -> CountResult:
        why = f"stock count: {counted} {sku} in {warehouse_id}" + (f" ({reason})" if reason else "")
        bumped: list[str] = []
        for _ in range(self.attempts):
            chosen, short = await self._choose(warehouse_id, sku, counted)
            if short > 0:
                raise PreconditionError(
                    f"a count of {counted} {sku!r} in {warehouse_id!r} leaves {short} units "
                    "reserved by orders already on pick lists: confirm or cancel those picks first")
            level = await self.store.set_stock(warehouse_id, sku, counted, "", clamp=True)
            if level.on_hand == counted:
                if bumped:
                    log.info("stock count %s/%s = %d: %d order(s) backordered", warehouse_id, sku,
                             counted, len(bumped))
                return CountResult(level, bumped)
            # available is 0 now: choose again on what is reserved at this moment
            chosen, _ = await self._choose(warehouse_id, sku, counted)
            for o in chosen:
                if await self._backorder(o, warehouse_id, sku, why + "; reservation given up"):
                    bumped.append(o.id)
        raise ConflictError(f"orders for {sku!r} in {warehouse_id!r} kept changing while the count "
                            f"of {counted} was recorded; retry")

    async def _choose(self, warehouse_id: str, sku: str, counted: int) -> tuple[list[Order], int]:
        """The newest orders that can give way, enough to bring what is reserved down to
        ``counted``, and how many units would stay over it even with all of them."""
        holders = await self.store.reservations_of(warehouse_id, sku)
        need = sum(holders.values()) - counted
        if need <= 0:
            return [], 0
        orders = await self.store.get_orders([oid for oid in holders if not oid.endswith(STAGED)])
        waved = await self.store.waved_parts(orders)
        candidates = sorted((o for o in orders if o.status in _BUMPABLE and o.id not in waved),
                            key=lambda o: o.id.rpartition(".")[2], reverse=True)
        chosen: list[Order] = []
        freed = 0
        for o in candidates:
            if freed >= need:
                break
            chosen.append(o)
            freed += holders[o.id]
        return chosen, need - freed

    async def _backorder(self, o: Order, warehouse_id: str, sku: str, reason: str) -> bool:
        """Back to BACKORDERED with nothing reserved, ``sku`` written off in the counted
        warehouse; False if the order changed meanwhile (nothing done)."""
        home = home_warehouse(o.id)
        try:
            await self.store.transition(
                o.id, OrderStatus.BACKORDERED,
                action=f"writeoff:{sku}" if home == warehouse_id else "release", reason=reason,
                event="order.backordered", expect_updated_at=o.updated_at,
                update=OrderUpdate().allocation_cleared())
        except (StaleError, TransitionError, NotFoundError):
            return False
        if home != warehouse_id:
            await self.store.release_many([(warehouse_id, o.id)], writeoff=sku)
        await self.store.release_many([(w, o.id) for w in o.warehouses if w not in (home, warehouse_id)])
        return True
