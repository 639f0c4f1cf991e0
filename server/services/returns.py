"""ReturnsService: return requests, receipt (restock or write-off), refunds. Thin servicer."""
from __future__ import annotations

import grpc

from oms.engine.models import ReturnLine
from oms.v1 import returns_pb2 as pb
from oms.v1 import returns_pb2_grpc as rpc
from oms.server import pb_convert, validation as val
from oms.server.errors import handle_errors
from oms.server.order_actions import OrderLife


def _check_return_id(value: str) -> str:
    return pb_convert.check_id(value, val.RETURN_ID_RE, "return_id", "return")


class ReturnsServicer(rpc.ReturnsServiceServicer):
    def __init__(self, life: OrderLife) -> None:
        self.life = life

    @handle_errors
    async def RequestReturn(self, request: pb.RequestReturnRequest,
                            context: grpc.aio.ServicerContext) -> pb.Return:
        pb_convert.check_order_id(request.order_id)
        if len(request.lines) > val.MAX_LINES:
            raise val.ValidationError.one("lines", f"{len(request.lines)} lines, at most {val.MAX_LINES}")
        v = [val.text_violation(request.reason, "reason", "reason", multiline=True)]
        for i, ln in enumerate(request.lines):
            v += [val.pattern_violation(ln.sku, val.SKU_RE, f"lines[{i}].sku", "sku"),
                  val.int_violation(ln.quantity, 1, val.MAX_QTY, f"lines[{i}].quantity")]
        val.raise_if(*v)
        ret = await self.life.request_return(
            request.order_id, [ReturnLine(ln.sku, ln.quantity) for ln in request.lines], request.reason)
        return pb_convert.encode_return(ret)

    @handle_errors
    async def ReceiveReturn(self, request: pb.ReceiveReturnRequest,
                            context: grpc.aio.ServicerContext) -> pb.Return:
        _check_return_id(request.return_id)
        return pb_convert.encode_return(await self.life.receive_return(request.return_id, request.restock))

    @handle_errors
    async def IssueRefund(self, request: pb.IssueRefundRequest,
                          context: grpc.aio.ServicerContext) -> pb.Return:
        _check_return_id(request.return_id)
        val.require_int(request.amount_cents, 0, val.MAX_ORDER_TOTAL_CENTS, "amount_cents")
        return pb_convert.encode_return(await self.life.refund(request.return_id, request.amount_cents))

    @handle_errors
    async def GetReturn(self, request: pb.GetReturnRequest,
                        context: grpc.aio.ServicerContext) -> pb.Return:
        _check_return_id(request.return_id)
        _, ret = await self.life.get_return(request.return_id)
        return pb_convert.encode_return(ret)
