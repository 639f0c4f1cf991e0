"""FulfillmentService: pick waves and pick confirmation. Packing, shipping, tracking and
delivery belong to the order-life issue and answer UNIMPLEMENTED until it lands."""
from __future__ import annotations

import grpc

from engine.errors import ValidationError
from engine.lifecycle import OrderStatus
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as pb
from oms.v1 import fulfillment_pb2_grpc as rpc
from server import codec
from server.errors import handle_errors
from server.redis.store import Store
from server.reallocate import Reallocator
from server.waves import WavePlanner, wave_from_json


class FulfillmentServicer(rpc.FulfillmentServiceServicer):
    def __init__(self, store: Store, planner: WavePlanner) -> None:
        self.store = store
        self.planner = planner

    @handle_errors
    async def PlanWave(self, request: pb.PlanWaveRequest,
                       context: grpc.aio.ServicerContext) -> pb.Wave:
        wid = codec.check_warehouse_id(request.warehouse_id)
        wave = await self.planner.plan(wid, request.max_orders or 500, request.batch_max_orders or 8,
                                       request.batch_max_items or 30)
        return codec.encode_wave(wave)

    @handle_errors
    async def GetWave(self, request: pb.GetWaveRequest,
                      context: grpc.aio.ServicerContext) -> pb.Wave:
        if not request.wave_id:
            raise ValidationError.one("wave_id", "required")
        return codec.encode_wave(wave_from_json(await self.store.get_wave(request.wave_id)))

    @handle_errors
    async def ConfirmPick(self, request: pb.ConfirmPickRequest,
                          context: grpc.aio.ServicerContext) -> c.Order:
        if not request.order_id:
            raise ValidationError.one("order_id", "required")
        _, order = await self.store.transition(request.order_id, OrderStatus.PICKED,
                                               reason="pick confirmed", event="order.picked")
        return codec.encode_order(order)

    @handle_errors
    async def Reallocate(self, request: pb.ReallocateRequest,
                         context: grpc.aio.ServicerContext) -> pb.ReallocateReport:
        if request.max_orders < 0 or request.time_budget_s < 0:
            raise ValidationError.one("max_orders", "max_orders and time_budget_s must be >= 0")
        rep = await Reallocator(self.store).run(time_budget_s=request.time_budget_s or 3.0,
                                                max_orders=request.max_orders or 20000)
        return pb.ReallocateReport(
            orders=rep.orders, changed=rep.changed, moved=rep.moved, skipped=rep.skipped,
            cost_before=rep.cost_before, cost_after=rep.cost_after,
            lp_lower_bound=rep.lp_lower_bound, solve_seconds=rep.solve_seconds)
