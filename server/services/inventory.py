"""InventoryService: warehouses, products, stock. Thin: decode -> store -> encode."""
from __future__ import annotations

import grpc

from oms.v1 import common_pb2 as c
from oms.v1 import inventory_pb2 as pb
from oms.v1 import inventory_pb2_grpc as rpc
from server import codec
from server.errors import handle_errors
from server.redis.store import Store


class InventoryServicer(rpc.InventoryServiceServicer):
    def __init__(self, store: Store) -> None:
        self.store = store

    @handle_errors
    async def UpsertWarehouse(self, request: pb.UpsertWarehouseRequest,
                              context: grpc.aio.ServicerContext) -> c.Warehouse:
        w = codec.decode_warehouse(request.warehouse)
        return codec.encode_warehouse(await self.store.upsert_warehouse(w))

    @handle_errors
    async def ListWarehouses(self, request: pb.ListWarehousesRequest,
                             context: grpc.aio.ServicerContext) -> pb.ListWarehousesResponse:
        whs = await self.store.list_warehouses()
        return pb.ListWarehousesResponse(warehouses=[codec.encode_warehouse(w) for w in whs])

    @handle_errors
    async def UpsertProduct(self, request: pb.UpsertProductRequest,
                            context: grpc.aio.ServicerContext) -> c.Product:
        p = codec.decode_product(request.product)
        return codec.encode_product(await self.store.upsert_product(p))

    @handle_errors
    async def SetStock(self, request: pb.SetStockRequest,
                       context: grpc.aio.ServicerContext) -> c.StockLevel:
        wid = codec.check_warehouse_id(request.warehouse_id)
        sku = codec.check_sku(request.sku)
        if not 0 <= request.on_hand <= codec.MAX_STOCK:
            raise codec.ValidationError.one("on_hand", f"{request.on_hand} must be in 0..{codec.MAX_STOCK}")
        w = await self.store.warehouse(wid)
        loc = codec.check_location(request.location, w.layout)
        return codec.encode_stock(await self.store.set_stock(wid, sku, request.on_hand, loc))

    @handle_errors
    async def AdjustStock(self, request: pb.AdjustStockRequest,
                          context: grpc.aio.ServicerContext) -> c.StockLevel:
        wid = codec.check_warehouse_id(request.warehouse_id)
        sku = codec.check_sku(request.sku)
        if request.delta == 0:
            raise codec.ValidationError.one("delta", "0 changes nothing")
        if abs(request.delta) > codec.MAX_STOCK:
            raise codec.ValidationError.one("delta", f"|{request.delta}| is more than {codec.MAX_STOCK}")
        if len(request.idempotency_key) > codec.MAX_KEY_LEN:
            raise codec.ValidationError.one("idempotency_key", f"longer than {codec.MAX_KEY_LEN}")
        level = await self.store.adjust_stock(wid, sku, request.delta, request.idempotency_key)
        return codec.encode_stock(level)

    @handle_errors
    async def GetStock(self, request: pb.GetStockRequest,
                       context: grpc.aio.ServicerContext) -> pb.GetStockResponse:
        sku = codec.check_sku(request.sku)
        levels = await self.store.get_stock(sku)
        return pb.GetStockResponse(levels=[codec.encode_stock(s) for s in levels],
                                   total_available=sum(max(s.available, 0) for s in levels))
