"""InventoryService: warehouses, products, stock. Thin: decode -> store -> encode."""
from __future__ import annotations

import grpc

from oms.v1 import common_pb2 as c
from oms.v1 import inventory_pb2 as pb
from oms.v1 import inventory_pb2_grpc as rpc
from oms.server import pb_convert, validation as val
from oms.server.errors import handle_errors
from oms.engine import replenishment
from oms.engine.errors import NotFoundError
from oms.server.redis.store import Store, now_ms
from oms.server.stockcount import StockCounter


class InventoryServicer(rpc.InventoryServiceServicer):
    def __init__(self, store: Store, default_lead_time_days: float = 7.0) -> None:
        self.store = store
        self.default_lead_time_days = default_lead_time_days

    @handle_errors
    async def UpsertWarehouse(self, request: pb.UpsertWarehouseRequest,
                              context: grpc.aio.ServicerContext) -> c.Warehouse:
        w = pb_convert.decode_warehouse(request.warehouse)
        return pb_convert.encode_warehouse(await self.store.upsert_warehouse(w))

    @handle_errors
    async def ListWarehouses(self, request: pb.ListWarehousesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListWarehousesResponse:
        whs = await self.store.list_warehouses()
        return pb.ListWarehousesResponse(warehouses=[pb_convert.encode_warehouse(w) for w in whs])

    @handle_errors
    async def UpsertProduct(self, request: pb.UpsertProductRequest,
                            context: grpc.aio.ServicerContext) -> c.Product:
        p = pb_convert.decode_product(request.product)
        return pb_convert.encode_product(await self.store.upsert_product(p))

    @handle_errors
    async def SetStock(self, request: pb.SetStockRequest,
                       context: grpc.aio.ServicerContext) -> c.StockLevel:
        wid = pb_convert.check_warehouse_id(request.warehouse_id)
        sku = pb_convert.check_sku(request.sku)
        pb_convert.check_units(request.on_hand, "on_hand")
        w = await self.store.warehouse(wid)
        loc = pb_convert.check_location(request.location, w.layout)
        return pb_convert.encode_stock(await self.store.set_stock(wid, sku, request.on_hand, loc))

    @handle_errors
    async def RecordStockCount(self, request: pb.RecordStockCountRequest,
                               context: grpc.aio.ServicerContext) -> pb.RecordStockCountResponse:
        wid = pb_convert.check_warehouse_id(request.warehouse_id)
        sku = pb_convert.check_sku(request.sku)
        pb_convert.check_units(request.counted, "counted")
        val.require_text(request.reason, "reason", "reason", multiline=True)
        await self.store.warehouse(wid)
        if sku not in await self.store.sku_ids([sku]):
            raise NotFoundError("sku", sku)
        res = await StockCounter(self.store).record(wid, sku, request.counted, request.reason)
        return pb.RecordStockCountResponse(level=pb_convert.encode_stock(res.level),
                                           backordered_order_ids=res.backordered)

    @handle_errors
    async def AdjustStock(self, request: pb.AdjustStockRequest,
                          context: grpc.aio.ServicerContext) -> c.StockLevel:
        wid = pb_convert.check_warehouse_id(request.warehouse_id)
        sku = pb_convert.check_sku(request.sku)
        if request.delta == 0:
            raise pb_convert.ValidationError.one("delta", "0 changes nothing")
        if abs(request.delta) > pb_convert.MAX_STOCK:
            raise pb_convert.ValidationError.one("delta", f"|{request.delta}| is more than {pb_convert.MAX_STOCK}")
        val.raise_if(val.key_violation(request.idempotency_key, "idempotency_key"),
                     val.text_violation(request.reason, "reason", "reason", multiline=True))
        level = await self.store.adjust_stock(wid, sku, request.delta, request.idempotency_key)
        return pb_convert.encode_stock(level)

    @handle_errors
    async def GetStock(self, request: pb.GetStockRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetStockResponse:
        sku = pb_convert.check_sku(request.sku)
        levels = await self.store.get_stock(sku)
        return pb.GetStockResponse(levels=[pb_convert.encode_stock(s) for s in levels],
                                   total_available=sum(max(s.available, 0) for s in levels))

    @handle_errors
    async def SetReplenishmentPolicy(self, request: pb.SetReplenishmentPolicyRequest,
                                     context: grpc.aio.ServicerContext) -> pb.ReplenishmentPolicy:
        pol = request.policy
        wid = pb_convert.check_warehouse_id(pol.warehouse_id, "policy.warehouse_id")
        sku = pb_convert.check_sku(pol.sku, "policy.sku")
        val.raise_if(
            val.int_violation(pol.reorder_point, 0, val.MAX_STOCK, "policy.reorder_point"),
            val.float_violation(pol.lead_time_days, 0, val.MAX_DAYS, "policy.lead_time_days",
                                lo_open=True))
        await self.store.set_replenishment_policy(wid, sku, pol.reorder_point, pol.lead_time_days)
        return pol

    @handle_errors
    async def SuggestReplenishment(self, request: pb.SuggestReplenishmentRequest,
                                   context: grpc.aio.ServicerContext) -> pb.SuggestReplenishmentResponse:
        window = val.require_float(request.window_days or 14.0, val.MIN_WINDOW_DAYS, val.MAX_DAYS,
                                   "window_days")
        if request.warehouse_id:
            whs = [await self.store.warehouse(pb_convert.check_warehouse_id(request.warehouse_id))]
        else:
            whs = await self.store.list_warehouses()
        inputs = []
        now = now_ms()
        for w in whs:
            for sku, on_hand, reserved, sold, pol in await self.store.replenishment_inputs(w.id, window, now):
                inputs.append(replenishment.ReplenishmentInput(
                    warehouse_id=w.id, sku=sku, on_hand=on_hand, reserved=min(reserved, on_hand),
                    inbound=0, sold_in_window=sold, window_days=window,
                    lead_time_days=float(pol.get("lead_time_days", self.default_lead_time_days)),
                    reorder_point=int(pol["reorder_point"]) if pol.get("reorder_point") else None))
        out = [s for s in replenishment.suggest_many(inputs) if request.include_zero or s.suggested_qty > 0]
        return pb.SuggestReplenishmentResponse(suggestions=[pb.ReplenishmentSuggestion(
            warehouse_id=s.warehouse_id, sku=s.sku, daily_velocity=s.daily_velocity,
            available=s.available, reorder_point=int(round(s.reorder_point_used)),
            suggested_quantity=s.suggested_qty, reason=s.reason) for s in out])
