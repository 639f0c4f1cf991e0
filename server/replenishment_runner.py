"""SuggestReplenishment's work: read each warehouse's stock, sales and policies from the store,
turn them into engine inputs and run engine/replenishment.py (the pure arithmetic)."""
from __future__ import annotations

from oms.engine import replenishment
from oms.engine.replenishment import ReplenishmentInput, Suggestion
from oms.server.config import LEAD_TIME_DAYS
from oms.server.redis.store import Store, now_ms
from oms.server.request_decoding import ReplenishmentQuery


async def suggest(store: Store, query: ReplenishmentQuery,
                  default_lead_time_days: float = LEAD_TIME_DAYS) -> list[Suggestion]:
    """Suggestions for one warehouse (``query.warehouse_id``) or all; those of quantity 0 only
    with ``query.include_zero``."""
    if query.warehouse_id:
        whs = [await store.warehouse(query.warehouse_id)]
    else:
        whs = await store.list_warehouses()
    window = query.window_days
    inputs: list[ReplenishmentInput] = []
    now = now_ms()
    for w in whs:
        for sku, on_hand, reserved, sold, pol in await store.replenishment_inputs(w.id, window,
                                                                                   now):
            inputs.append(ReplenishmentInput(
                warehouse_id=w.id, sku=sku, on_hand=on_hand, reserved=min(reserved, on_hand),
                inbound=0, sold_in_window=sold, window_days=window,
                lead_time_days=float(pol.get("lead_time_days", default_lead_time_days)),
                reorder_point=int(pol["reorder_point"]) if pol.get("reorder_point") else None))
    return [s for s in replenishment.suggest_many(inputs)
            if query.include_zero or s.suggested_qty > 0]
