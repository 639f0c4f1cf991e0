"""ReturnsService: return requests, receipt (restock or write-off), refunds. Thin servicer."""
from __future__ import annotations

import grpc

from engine.models import ReturnLine
from oms.v1 import returns_pb2 as pb
from oms.v1 import returns_pb2_grpc as rpc
from server import codec
from server.errors import handle_errors
from server.orderlife import OrderLife


class ReturnsServicer(rpc.ReturnsServiceServicer):
    def __init__(self, life: OrderLife) -> None:
        self.life = life

    @handle_errors
    async def RequestReturn(self, request: pb.RequestReturnRequest,
                            context: grpc.aio.ServicerContext) -> pb.Return:
        codec.require(request.order_id, "order_id")
        for i, ln in enumerate(request.lines):
            codec.check_sku(ln.sku, f"lines[{i}].sku")
        ret = await self.life.request_return(
            request.order_id, [ReturnLine(ln.sku, ln.quantity) for ln in request.lines], request.reason)
        return codec.encode_return(ret)

    @handle_errors
    async def ReceiveReturn(self, request: pb.ReceiveReturnRequest,
                            context: grpc.aio.ServicerContext) -> pb.Return:
        codec.require(request.return_id, "return_id")
        return codec.encode_return(await self.life.receive_return(request.return_id, request.restock))

    @handle_errors
    async def IssueRefund(self, request: pb.IssueRefundRequest,
                          context: grpc.aio.ServicerContext) -> pb.Return:
        codec.require(request.return_id, "return_id")
        return codec.encode_return(await self.life.refund(request.return_id, request.amount_cents))

    @handle_errors
    async def GetReturn(self, request: pb.GetReturnRequest,
                        context: grpc.aio.ServicerContext) -> pb.Return:
        codec.require(request.return_id, "return_id")
        _, ret = await self.life.get_return(request.return_id)
        return codec.encode_return(ret)
