"""FulfillmentService: pick waves, pick confirmation, packing, shipping, tracking, delivery,
global re-allocation."""
from __future__ import annotations

import grpc

from oms.v1 import common_pb2
from oms.v1 import fulfillment_pb2
from oms.v1 import fulfillment_pb2_grpc
from oms.server import pb_convert, validation as val
from oms.server import request_decoding as decode
from oms.server.errors import handle_errors
from oms.server.backorders import BackorderFiller
from oms.server.redis.store import Store
from oms.server.order_actions import OrderLife
from oms.server.reallocation_runner import Reallocator
from oms.server.wave_planner import WavePlanner, wave_from_json


class FulfillmentServicer(fulfillment_pb2_grpc.FulfillmentServiceServicer):
    def __init__(self, store: Store, planner: WavePlanner, life: OrderLife,
                 backorders: BackorderFiller) -> None:
        self.store = store
        self.planner = planner
        self.life = life
        self.backorders = backorders

    @handle_errors
    async def PlanWave(self, request: fulfillment_pb2.PlanWaveRequest,
                       context: grpc.aio.ServicerContext) -> fulfillment_pb2.Wave:
        cmd = decode.decode_plan_wave(request)
        wave = await self.planner.plan(cmd.warehouse_id, cmd.max_orders, cmd.batch_max_orders,
                                       cmd.batch_max_items)
        return pb_convert.encode_wave(wave)

    @handle_errors
    async def GetWave(self, request: fulfillment_pb2.GetWaveRequest,
                      context: grpc.aio.ServicerContext) -> fulfillment_pb2.Wave:
        pb_convert.check_id(request.wave_id, val.WAVE_ID_RE, "wave_id", "wave")
        return pb_convert.encode_wave(wave_from_json(await self.store.get_wave(request.wave_id)))

    @handle_errors
    async def ListWaves(self, request: fulfillment_pb2.ListWavesRequest,
                        context: grpc.aio.ServicerContext) -> fulfillment_pb2.ListWavesResponse:
        warehouse_id, size = decode.decode_list_waves(request)
        await self.store.warehouse(warehouse_id)  # NOT_FOUND for an unknown warehouse
        waves = [wave_from_json(r) for r in await self.store.list_waves(warehouse_id, size)]
        return fulfillment_pb2.ListWavesResponse(waves=[fulfillment_pb2.WaveSummary(
            id=w.id, warehouse_id=w.warehouse_id, created_at=w.created_at, batches=len(w.batches),
            orders=len({o for b in w.batches for o in b.order_ids}),
            total_distance_m=w.total_distance_m, baseline_distance_m=w.baseline_distance_m)
            for w in waves])

    @handle_errors
    async def ConfirmPick(self, request: fulfillment_pb2.ConfirmPickRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.Order:
        order_id, warehouse_id = decode.decode_confirm_pick(request)
        return pb_convert.encode_order(await self.life.confirm_pick(order_id, warehouse_id))

    @handle_errors
    async def Reallocate(self, request: fulfillment_pb2.ReallocateRequest,
                         context: grpc.aio.ServicerContext) -> fulfillment_pb2.ReallocateReport:
        cmd = decode.decode_reallocate(request)
        rep = await Reallocator(self.store).run(time_budget_s=cmd.time_budget_s,
                                                max_orders=cmd.max_orders)
        return fulfillment_pb2.ReallocateReport(
            orders=rep.orders, changed=rep.changed, moved=rep.moved, skipped=rep.skipped,
            cost_before=rep.cost_before, cost_after=rep.cost_after,
            lp_lower_bound=rep.lp_lower_bound, solve_seconds=rep.solve_seconds)

    @handle_errors
    async def FillBackorders(self, request: fulfillment_pb2.FillBackordersRequest,
                             context: grpc.aio.ServicerContext) -> fulfillment_pb2.FillBackordersReport:
        rep = await self.backorders.run(max_orders=decode.decode_fill_backorders(request))
        return fulfillment_pb2.FillBackordersReport(considered=rep.considered, filled=rep.filled,
                                       waiting=rep.waiting, skipped=rep.skipped)

    @handle_errors
    async def PackOrder(self, request: fulfillment_pb2.PackOrderRequest,
                        context: grpc.aio.ServicerContext) -> common_pb2.Order:
        pb_convert.check_order_id(request.order_id)
        return pb_convert.encode_order(await self.life.pack(request.order_id))

    @handle_errors
    async def ShipOrder(self, request: fulfillment_pb2.ShipOrderRequest,
                        context: grpc.aio.ServicerContext) -> common_pb2.Order:
        cmd = decode.decode_ship_order(request)
        return pb_convert.encode_order(await self.life.ship(cmd.order_id, cmd.carrier,
                                                            cmd.service_level))

    @handle_errors
    async def RecordTrackingEvent(self, request: fulfillment_pb2.RecordTrackingEventRequest,
                                  context: grpc.aio.ServicerContext) -> common_pb2.Order:
        cmd = decode.decode_tracking_event(request)
        order = await self.life.track(cmd.tracking_number, cmd.event_id, cmd.type,
                                      cmd.occurred_at_ms, cmd.location)
        return pb_convert.encode_order(order)

    @handle_errors
    async def MarkDelivered(self, request: fulfillment_pb2.MarkDeliveredRequest,
                            context: grpc.aio.ServicerContext) -> common_pb2.Order:
        pb_convert.check_order_id(request.order_id)
        return pb_convert.encode_order(await self.life.mark_delivered(request.order_id))

    @handle_errors
    async def ListShipmentExceptions(self, request: fulfillment_pb2.ListShipmentExceptionsRequest,
                                     context: grpc.aio.ServicerContext
                                     ) -> fulfillment_pb2.ListShipmentExceptionsResponse:
        orders = await self.life.exceptions(decode.decode_exceptions_limit(request))
        return fulfillment_pb2.ListShipmentExceptionsResponse(orders=[pb_convert.encode_order(o) for o in orders])
