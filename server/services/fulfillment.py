"""FulfillmentService: pick waves, pick confirmation, packing, shipping, tracking, delivery,
global re-allocation."""
from __future__ import annotations

import grpc

from oms.engine.errors import ValidationError
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as pb
from oms.v1 import fulfillment_pb2_grpc as rpc
from oms.server import pb_convert, validation as val
from oms.server.errors import handle_errors
from oms.server.backorders import BackorderFiller
from oms.server.redis.store import Store
from oms.server.order_actions import OrderLife
from oms.server.reallocation_runner import Reallocator
from oms.server.wave_planner import WavePlanner, wave_from_json


class FulfillmentServicer(rpc.FulfillmentServiceServicer):
    def __init__(self, store: Store, planner: WavePlanner, life: OrderLife,
                 backorders: BackorderFiller) -> None:
        self.store = store
        self.planner = planner
        self.life = life
        self.backorders = backorders

    @handle_errors
    async def PlanWave(self, request: pb.PlanWaveRequest,
                       context: grpc.aio.ServicerContext) -> pb.Wave:
        wid = pb_convert.check_warehouse_id(request.warehouse_id)
        val.raise_if(
            val.int_violation(request.max_orders, 0, val.MAX_WAVE_ORDERS, "max_orders"),
            val.int_violation(request.batch_max_orders, 0, val.MAX_BATCH_ORDERS, "batch_max_orders"),
            val.int_violation(request.batch_max_items, 0, val.MAX_BATCH_ITEMS, "batch_max_items"))
        wave = await self.planner.plan(wid, request.max_orders or 500, request.batch_max_orders or 8,
                                       request.batch_max_items or 30)
        return pb_convert.encode_wave(wave)

    @handle_errors
    async def GetWave(self, request: pb.GetWaveRequest,
                      context: grpc.aio.ServicerContext) -> pb.Wave:
        pb_convert.check_id(request.wave_id, val.WAVE_ID_RE, "wave_id", "wave")
        return pb_convert.encode_wave(wave_from_json(await self.store.get_wave(request.wave_id)))

    @handle_errors
    async def ConfirmPick(self, request: pb.ConfirmPickRequest,
                          context: grpc.aio.ServicerContext) -> c.Order:
        pb_convert.check_order_id(request.order_id)
        if request.warehouse_id:
            pb_convert.check_warehouse_id(request.warehouse_id)
        return pb_convert.encode_order(await self.life.confirm_pick(request.order_id,
                                                               request.warehouse_id))

    @handle_errors
    async def Reallocate(self, request: pb.ReallocateRequest,
                         context: grpc.aio.ServicerContext) -> pb.ReallocateReport:
        val.raise_if(
            val.int_violation(request.max_orders, 0, val.MAX_SCAN_ORDERS, "max_orders"),
            None if request.time_budget_s == 0 else val.float_violation(
                request.time_budget_s, 0, val.MAX_TIME_BUDGET_S, "time_budget_s", lo_open=True))
        rep = await Reallocator(self.store).run(time_budget_s=request.time_budget_s or 3.0,
                                                max_orders=request.max_orders or 20000)
        return pb.ReallocateReport(
            orders=rep.orders, changed=rep.changed, moved=rep.moved, skipped=rep.skipped,
            cost_before=rep.cost_before, cost_after=rep.cost_after,
            lp_lower_bound=rep.lp_lower_bound, solve_seconds=rep.solve_seconds)

    @handle_errors
    async def FillBackorders(self, request: pb.FillBackordersRequest,
                             context: grpc.aio.ServicerContext) -> pb.FillBackordersReport:
        if not 0 <= request.max_orders <= val.MAX_SCAN_ORDERS:
            raise ValidationError.one("max_orders", f"{request.max_orders} must be in 0..{val.MAX_SCAN_ORDERS}")
        rep = await self.backorders.run(max_orders=request.max_orders or 20000)
        return pb.FillBackordersReport(considered=rep.considered, filled=rep.filled,
                                       waiting=rep.waiting, skipped=rep.skipped)

    @handle_errors
    async def PackOrder(self, request: pb.PackOrderRequest,
                        context: grpc.aio.ServicerContext) -> c.Order:
        pb_convert.check_order_id(request.order_id)
        return pb_convert.encode_order(await self.life.pack(request.order_id))

    @handle_errors
    async def ShipOrder(self, request: pb.ShipOrderRequest,
                        context: grpc.aio.ServicerContext) -> c.Order:
        pb_convert.check_order_id(request.order_id)
        val.raise_if(
            val.pattern_violation(request.carrier, val.CARRIER_RE, "carrier")
            if request.carrier else None,
            val.pattern_violation(request.service_level, val.SERVICE_LEVEL_RE, "service_level")
            if request.service_level else None)
        return pb_convert.encode_order(await self.life.ship(request.order_id, request.carrier,
                                                       request.service_level))

    @handle_errors
    async def RecordTrackingEvent(self, request: pb.RecordTrackingEventRequest,
                                  context: grpc.aio.ServicerContext) -> c.Order:
        val.raise_if(
            val.pattern_violation(request.event_id, val.KEY_RE, "event_id", "event id")
            if request.event_id else None,
            val.pattern_violation(request.type, val.TRACKING_TYPE_RE, "type", "tracking event type")
            if request.type else None,
            val.text_violation(request.location, "location", "tracking.location"))
        val.require_unix_s(request.occurred_at, "occurred_at")
        pb_convert.check_id(request.tracking_number, val.TRACKING_NUMBER_RE, "tracking_number",
                       "tracking number")
        order = await self.life.track(request.tracking_number, request.event_id, request.type,
                                      request.occurred_at * 1000, request.location)
        return pb_convert.encode_order(order)

    @handle_errors
    async def MarkDelivered(self, request: pb.MarkDeliveredRequest,
                            context: grpc.aio.ServicerContext) -> c.Order:
        pb_convert.check_order_id(request.order_id)
        return pb_convert.encode_order(await self.life.mark_delivered(request.order_id))

    @handle_errors
    async def ListShipmentExceptions(self, request: pb.ListShipmentExceptionsRequest,
                                     context: grpc.aio.ServicerContext
                                     ) -> pb.ListShipmentExceptionsResponse:
        val.require_int(request.limit, 0, val.MAX_EXCEPTIONS_LIMIT, "limit")
        orders = await self.life.exceptions(request.limit or 100)
        return pb.ListShipmentExceptionsResponse(orders=[pb_convert.encode_order(o) for o in orders])
