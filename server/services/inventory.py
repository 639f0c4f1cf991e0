"""InventoryService: warehouses, products, stock. Thin: decode -> store -> encode."""
from __future__ import annotations

import grpc

from oms.v1 import common_pb2
from oms.v1 import inventory_pb2
from oms.v1 import inventory_pb2_grpc
from oms.server import pb_convert, replenishment_runner
from oms.server import request_decoding as decode
from oms.server.config import LEAD_TIME_DAYS
from oms.server.errors import handle_errors
from oms.engine.errors import NotFoundError
from oms.server.redis.store import Store
from oms.server.stockcount import StockCounter


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, store: Store, default_lead_time_days: float = LEAD_TIME_DAYS) -> None:
        self.store = store
        self.default_lead_time_days = default_lead_time_days

    @handle_errors
    async def UpsertWarehouse(self, request: inventory_pb2.UpsertWarehouseRequest,
                              context: grpc.aio.ServicerContext) -> common_pb2.Warehouse:
        w = pb_convert.decode_warehouse(request.warehouse)
        return pb_convert.encode_warehouse(await self.store.upsert_warehouse(w))

    @handle_errors
    async def ListWarehouses(self, request: inventory_pb2.ListWarehousesRequest,
                             context: grpc.aio.ServicerContext) -> inventory_pb2.ListWarehousesResponse:
        whs = await self.store.list_warehouses()
        return inventory_pb2.ListWarehousesResponse(warehouses=[pb_convert.encode_warehouse(w) for w in whs])

    @handle_errors
    async def UpsertProduct(self, request: inventory_pb2.UpsertProductRequest,
                            context: grpc.aio.ServicerContext) -> common_pb2.Product:
        p = pb_convert.decode_product(request.product)
        return pb_convert.encode_product(await self.store.upsert_product(p))

    @handle_errors
    async def SetStock(self, request: inventory_pb2.SetStockRequest,
                       context: grpc.aio.ServicerContext) -> common_pb2.StockLevel:
        cmd = decode.decode_set_stock(request)
        # The location is checked against the layout of the warehouse (NOT_FOUND first).
        w = await self.store.warehouse(cmd.warehouse_id)
        loc = pb_convert.check_location(cmd.location, w.layout)
        return pb_convert.encode_stock(
            await self.store.set_stock(cmd.warehouse_id, cmd.sku, cmd.on_hand, loc))

    @handle_errors
    async def RecordStockCount(self, request: inventory_pb2.RecordStockCountRequest,
                               context: grpc.aio.ServicerContext) -> inventory_pb2.RecordStockCountResponse:
        cmd = decode.decode_stock_count(request)
        await self.store.warehouse(cmd.warehouse_id)
        if cmd.sku not in await self.store.sku_ids([cmd.sku]):
            raise NotFoundError("sku", cmd.sku)
        res = await StockCounter(self.store).record(cmd.warehouse_id, cmd.sku, cmd.counted,
                                                    cmd.reason)
        return inventory_pb2.RecordStockCountResponse(level=pb_convert.encode_stock(res.level),
                                           backordered_order_ids=res.backordered)

    @handle_errors
    async def AdjustStock(self, request: inventory_pb2.AdjustStockRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.StockLevel:
        cmd = decode.decode_adjust_stock(request)
        level = await self.store.adjust_stock(cmd.warehouse_id, cmd.sku, cmd.delta,
                                              cmd.idempotency_key)
        return pb_convert.encode_stock(level)

    @handle_errors
    async def GetStock(self, request: inventory_pb2.GetStockRequest,
                       context: grpc.aio.ServicerContext) -> inventory_pb2.GetStockResponse:
        sku = pb_convert.check_sku(request.sku)
        levels = await self.store.get_stock(sku)
        return inventory_pb2.GetStockResponse(levels=[pb_convert.encode_stock(s) for s in levels],
                                   total_available=sum(max(s.available, 0) for s in levels))

    @handle_errors
    async def ListStock(self, request: inventory_pb2.ListStockRequest,
                        context: grpc.aio.ServicerContext) -> inventory_pb2.ListStockResponse:
        q = decode.decode_list_stock(request)
        if q.warehouse_id:
            whs = [(await self.store.warehouse(q.warehouse_id)).id]
        else:
            whs = [w.id for w in await self.store.warehouses(0.0)]
        levels, token = await self.store.list_stock(whs, q.sku_prefix, q.page_token, q.page_size)
        return inventory_pb2.ListStockResponse(
            levels=[pb_convert.encode_stock(s) for s in levels], next_page_token=token)

    @handle_errors
    async def SetReplenishmentPolicy(self, request: inventory_pb2.SetReplenishmentPolicyRequest,
                                     context: grpc.aio.ServicerContext) -> inventory_pb2.ReplenishmentPolicy:
        cmd = decode.decode_replenishment_policy(request)
        await self.store.set_replenishment_policy(cmd.warehouse_id, cmd.sku, cmd.reorder_point,
                                                  cmd.lead_time_days)
        return request.policy

    @handle_errors
    async def SuggestReplenishment(self, request: inventory_pb2.SuggestReplenishmentRequest,
                                   context: grpc.aio.ServicerContext) -> inventory_pb2.SuggestReplenishmentResponse:
        out = await replenishment_runner.suggest(self.store,
                                                 decode.decode_suggest_replenishment(request),
                                                 self.default_lead_time_days)
        return inventory_pb2.SuggestReplenishmentResponse(suggestions=[inventory_pb2.ReplenishmentSuggestion(
            warehouse_id=s.warehouse_id, sku=s.sku, daily_velocity=s.daily_velocity,
            available=s.available, reorder_point=int(round(s.reorder_point_used)),
            suggested_quantity=s.suggested_qty, reason=s.reason) for s in out])
