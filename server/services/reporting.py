"""ReportingService: counters kept by the scripts, summed over shards."""
from __future__ import annotations

import time

import grpc

from oms.engine.lifecycle import OrderStatus
from oms.v1 import reporting_pb2 as pb
from oms.v1 import reporting_pb2_grpc as rpc
from oms.server.errors import handle_errors
from oms.server.redis.store import Store


class ReportingServicer(rpc.ReportingServiceServicer):
    def __init__(self, store: Store, grace_ms: int = 30_000) -> None:
        self.store = store
        self.grace_ms = grace_ms

    @handle_errors
    async def GetStats(self, request: pb.GetStatsRequest,
                       context: grpc.aio.ServicerContext) -> pb.Stats:
        k = await self.store.counters()
        by_status = [pb.CountByKey(key=OrderStatus(int(name[3:])).name, count=v)
                     for name, v in sorted(k.items()) if name.startswith("st:") and v]
        by_channel = [pb.CountByKey(key=name[3:], count=v)
                      for name, v in sorted(k.items()) if name.startswith("ch:")]
        total = sum(c.count for c in by_channel)
        alloc = k.get("alloc", 0)
        minute = int(time.time() // 60)
        # The last complete minute (the current one is still filling up).
        last_min = k.get(f"m:{minute - 1}", 0)
        return pb.Stats(
            orders_by_status=by_status, orders_by_channel=by_channel, orders_total=total,
            orders_per_second=last_min / 60.0,
            fill_rate=(alloc - k.get("partial", 0)) / total if total else 0.0,
            split_rate=k.get("split", 0) / alloc if alloc else 0.0,
            mean_allocation_distance_km=k.get("dist_m", 0) / 1000.0 / k["ship"] if k.get("ship") else 0.0,
            pick_distance_saved_m=k.get("pick_saved_cm", 0) / 100.0,
            orders_per_minute=[float(k.get(f"m:{m}", 0)) for m in range(minute - 60, minute)],
            on_time_delivery_rate=k.get("on_time", 0) / k["delivered"] if k.get("delivered") else 0.0,
            return_rate=k.get("returns", 0) / k["shipped"] if k.get("shipped") else 0.0,
            waves=k.get("waves", 0),
        )

    @handle_errors
    async def Audit(self, request: pb.AuditRequest,
                    context: grpc.aio.ServicerContext) -> pb.AuditReport:
        released = await self.store.recover(self.grace_ms) if request.recover else 0
        problems = await self.store.audit()
        return pb.AuditReport(problems=problems, released_by_recovery=released, ok=not problems)
