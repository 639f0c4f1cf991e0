"""No-op gRPC ceiling: oms.v1.OrderService with the same message types and no work behind them.

PlaceOrder returns a canned Order, BatchPlaceOrders one canned PlaceOrderResult per request,
PlaceOrders (bidirectional) one canned PlaceOrderResult per request as it arrives. The canned
order looks like a real placed one (3 lines, 3 allocations, history), so the response bytes
match what oms-server sends. Requests are still deserialized by gRPC, as in the real server.
The load client (clients/load/) drives it exactly as it drives oms-server, so the ratio
"oms / echo" is what the service costs on top of Python gRPC itself on this machine.

    python -m benchmarks.echo --listen 127.0.0.1:0     # prints "echo listening on HOST:PORT"
    python -m benchmarks.echo --workers 2              # N processes on one port, as oms-server
"""
from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import AsyncIterator

import grpc

from oms.v1 import common_pb2 as c
from oms.v1 import orders_pb2 as pb
from oms.v1 import orders_pb2_grpc as rpc
from oms.server.workers import fixed_listen, run_workers

MAX_MESSAGE = 64 * 1024 * 1024


def canned_order() -> c.Order:
    now = 1_760_000_000_000
    lines = [("SKU-0007", 1, 1999), ("SKU-0113", 2, 4550), ("SKU-0421", 1, 899)]
    return c.Order(
        id="CHI.01JB6XK3M9Q2ZP8R7T5V4W3Y2A", idempotency_key="ld1a2b3c4dp0-123456", channel="web",
        status=c.ORDER_STATUS_ALLOCATED,
        customer=c.Customer(id="C104729", email="c104729@example.com", name="Customer 104729"),
        ship_to=c.Address(name="Customer 104729", postal_code="60614", country="US",
                          latitude=41.9227, longitude=-87.6533),
        lines=[c.OrderLine(sku=s, quantity=q, unit_price_cents=p) for s, q, p in lines],
        allocations=[c.AllocationLine(sku=s, warehouse_id="CHI", quantity=q, distance_km=4.318)
                     for s, q, _ in lines],
        hold_until=now + 3_600_000, created_at=now, updated_at=now,
        history=[c.HistoryEntry(status=c.ORDER_STATUS_RECEIVED, at_ms=now, reason="received"),
                 c.HistoryEntry(status=c.ORDER_STATUS_ALLOCATED, at_ms=now, reason="allocated")])


class EchoOrders(rpc.OrderServiceServicer):
    def __init__(self) -> None:
        self.order = canned_order()
        self.result = pb.PlaceOrderResult(order=self.order)

    async def PlaceOrder(self, request: pb.PlaceOrderRequest,
                         context: grpc.aio.ServicerContext) -> c.Order:
        return self.order

    async def BatchPlaceOrders(self, request: pb.BatchPlaceOrdersRequest,
                               context: grpc.aio.ServicerContext) -> pb.BatchPlaceOrdersResponse:
        return pb.BatchPlaceOrdersResponse(results=[self.result] * len(request.requests))

    async def PlaceOrders(self, request_iterator: AsyncIterator[pb.PlaceOrderRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PlaceOrderResult]:
        async for _ in request_iterator:
            yield self.result


async def serve(listen: str, reuse_port: bool = False) -> None:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                      ("grpc.max_send_message_length", MAX_MESSAGE),
                                      ("grpc.so_reuseport", 1 if reuse_port else 0)])
    rpc.add_OrderServiceServicer_to_server(EchoOrders(), server)
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"echo listening on {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def _worker(listen: str) -> None:
    asyncio.run(serve(listen, reuse_port=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--workers", type=int, default=1, help="processes on one port (SO_REUSEPORT)")
    args = ap.parse_args(argv)
    if args.workers <= 1:
        asyncio.run(serve(args.listen))
        return 0
    # Like oms-server --workers; each process prints its "listening" line.
    listen = fixed_listen(args.listen)
    run_workers(_worker, [(listen,)] * args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
