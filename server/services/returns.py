"""ReturnsService: return requests, receipt (restock or write-off), refunds. Thin servicer."""
from __future__ import annotations

import grpc

from oms.v1 import returns_pb2
from oms.v1 import returns_pb2_grpc
from oms.server import pb_convert
from oms.server import request_decoding as decode
from oms.server.errors import handle_errors
from oms.server.order_actions import OrderLife


class ReturnsServicer(returns_pb2_grpc.ReturnsServiceServicer):
    def __init__(self, life: OrderLife) -> None:
        self.life = life

    @handle_errors
    async def RequestReturn(self, request: returns_pb2.RequestReturnRequest,
                            context: grpc.aio.ServicerContext) -> returns_pb2.Return:
        cmd = decode.decode_request_return(request)
        ret = await self.life.request_return(cmd.order_id, cmd.lines, cmd.reason)
        return pb_convert.encode_return(ret)

    @handle_errors
    async def ReceiveReturn(self, request: returns_pb2.ReceiveReturnRequest,
                            context: grpc.aio.ServicerContext) -> returns_pb2.Return:
        decode.check_return_id(request.return_id)
        return pb_convert.encode_return(await self.life.receive_return(request.return_id, request.restock))

    @handle_errors
    async def IssueRefund(self, request: returns_pb2.IssueRefundRequest,
                          context: grpc.aio.ServicerContext) -> returns_pb2.Return:
        return_id, amount_cents = decode.decode_refund(request)
        return pb_convert.encode_return(await self.life.refund(return_id, amount_cents))

    @handle_errors
    async def GetReturn(self, request: returns_pb2.GetReturnRequest,
                        context: grpc.aio.ServicerContext) -> returns_pb2.Return:
        decode.check_return_id(request.return_id)
        _, ret = await self.life.get_return(request.return_id)
        return pb_convert.encode_return(ret)
