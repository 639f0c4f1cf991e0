"""ReportingService: counters kept by the scripts, summed over shards."""
from __future__ import annotations

import time

import grpc

from oms.engine.lifecycle import OrderStatus
from oms.v1 import reporting_pb2
from oms.v1 import reporting_pb2_grpc
from oms.server.errors import handle_errors
from oms.server.redis.store import Store


class ReportingServicer(reporting_pb2_grpc.ReportingServiceServicer):
    def __init__(self, store: Store, grace_ms: int = 30_000) -> None:
        self.store = store
        self.grace_ms = grace_ms

    @handle_errors
    async def GetStats(self, request: reporting_pb2.GetStatsRequest,
                       context: grpc.aio.ServicerContext) -> reporting_pb2.Stats:
        k = await self.store.stats()
        by_status = [reporting_pb2.CountByKey(key=OrderStatus(st).name, count=v)
                     for st, v in k.by_status.items() if v]
        by_channel = [reporting_pb2.CountByKey(key=ch, count=v) for ch, v in k.by_channel.items()]
        total = sum(c.count for c in by_channel)
        alloc = k.get("alloc")
        minute = int(time.time() // 60)
        # The last complete minute (the current one is still filling up).
        last_min = k.per_minute.get(minute - 1, 0)
        return reporting_pb2.Stats(
            orders_by_status=by_status, orders_by_channel=by_channel, orders_total=total,
            orders_per_second=last_min / 60.0,
            fill_rate=(alloc - k.get("partial")) / total if total else 0.0,
            split_rate=k.get("split") / alloc if alloc else 0.0,
            mean_allocation_distance_km=k.get("dist_m") / 1000.0 / k.get("ship") if k.get("ship") else 0.0,
            pick_distance_saved_m=k.get("pick_saved_cm") / 100.0,
            orders_per_minute=[float(k.per_minute.get(m, 0)) for m in range(minute - 60, minute)],
            on_time_delivery_rate=k.get("on_time") / k.get("delivered") if k.get("delivered") else 0.0,
            return_rate=k.get("returns") / k.get("shipped") if k.get("shipped") else 0.0,
            waves=k.get("waves"),
            channels=[reporting_pb2.ChannelSyncStats(
                channel_id=c.channel_id, pending=c.pending, lag_ms_p50=c.lag_ms_p50,
                lag_ms_p99=c.lag_ms_p99, pushes=c.pushes, failures=c.failures,
                last_error=c.last_error, last_error_at=c.last_error_at,
                last_push_at=c.last_push_at, rejected_orders=c.rejected_orders,
                updated_at=c.updated_at, fulfillments=c.fulfillments) for c in await self.store.sync_stats()],
            warehouses=[reporting_pb2.WarehouseCounts(warehouse_id=wid, orders_by_status=[
                reporting_pb2.CountByKey(key=OrderStatus(st).name, count=n)
                for st, n in sorted(counts.items()) if n])
                for wid, counts in (await self.store.status_counts_by_warehouse()).items()],
        )

    @handle_errors
    async def Audit(self, request: reporting_pb2.AuditRequest,
                    context: grpc.aio.ServicerContext) -> reporting_pb2.AuditReport:
        released = await self.store.recover(self.grace_ms) if request.recover else 0
        problems = await self.store.audit()
        return reporting_pb2.AuditReport(problems=problems, released_by_recovery=released, ok=not problems)
