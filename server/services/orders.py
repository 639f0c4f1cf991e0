"""OrderService: intake (unary, batch, stream), reads, cancel, events. Thin servicer."""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from oms.engine.errors import ItemFailedError, OmsError, ResourceExhaustedError, ValidationError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order
from oms.v1 import common_pb2
from oms.v1 import orders_pb2
from oms.v1 import orders_pb2_grpc
from oms.server import pb_convert, validation as val, response_bytes
from oms.server import channel_access
from oms.server import request_decoding as decode
from oms.server.auth.principal import Principal, current_principal
from oms.server.events_hub import EventHub
from oms.server.errors import code_for, handle_errors, handle_stream_errors
from oms.server.metrics import ORDER_ERRORS, ORDERS_PLACED
from oms.server.coalescer import Coalescer
from oms.server.intake import Intake
from oms.server.order_actions import OrderLife
from oms.server.redis.store import Store

STREAM_MICROBATCH = 256


def _count(results: list) -> None:
    placed: Counter[tuple[int, str]] = Counter()
    for r in results:
        if isinstance(r, OmsError):
            ORDER_ERRORS.labels(code_for(r).name).inc()
        else:
            placed[r.status, r.channel] += 1
    for (status, channel), n in placed.items():  # one metric update per label set, not per order
        ORDERS_PLACED.labels(OrderStatus(status).name, channel).inc(n)


def _sources(requests: list[orders_pb2.PlaceOrderRequest], decoded: list, results: list) -> list:
    """For each result, the request message it was placed from (so that the response re-uses
    its sub-messages), or None: an error, or an order that came from elsewhere (an idempotent
    repeat returns the stored order). Placed orders share the decoded request's Customer."""
    return [q if isinstance(r, Order) and not isinstance(d, OmsError) and r.customer is d.customer
            else None for q, d, r in zip(requests, decoded, results)]


def _decode_all(requests: list[orders_pb2.PlaceOrderRequest], p: Principal) -> list:
    """Each request decoded, or its error: a ValidationError, or for a channel-bound key an
    order of another channel (PERMISSION_DENIED, not decoded; only that order fails)."""
    out: list = []
    bound = p.channels
    for r in requests:
        if bound and (refused := channel_access.foreign_order(r, p)) is not None:
            out.append(refused)
            continue
        try:
            out.append(pb_convert.decode_place_order(r))
        except ValidationError as e:
            out.append(e)
    return out


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, store: Store, intake: Intake, life: OrderLife, max_batch: int = 1000,
                 hub: EventHub | None = None, coalesce_wait_s: float = 0.002) -> None:
        self.store = store
        self.hub = hub if hub is not None else EventHub(store)
        self.intake = intake
        self.life = life
        self.max_batch = max_batch
        self.coalescer = Coalescer(intake, max_batch=max_batch, wait_s=coalesce_wait_s)

    @handle_errors
    async def PlaceOrder(self, request: orders_pb2.PlaceOrderRequest,
                         context: grpc.aio.ServicerContext) -> common_pb2.Order:
        """A channel-bound key may place only in its channels (else PERMISSION_DENIED)."""
        p = current_principal()
        if p.channels and (refused := channel_access.foreign_order(request, p)) is not None:
            raise refused
        req = pb_convert.decode_place_order(request)
        (res,) = await self.coalescer.submit([req])
        if p.channels:
            (res,) = channel_access.hide_foreign([res], p)
        _count([res])
        if isinstance(res, OmsError):
            raise res
        (src,) = _sources([request], [req], [res])
        return response_bytes.order_message(res, src)

    @handle_errors
    async def BatchPlaceOrders(self, request: orders_pb2.BatchPlaceOrdersRequest,
                               context: grpc.aio.ServicerContext) -> orders_pb2.BatchPlaceOrdersResponse:
        """An order outside a channel-bound key's channels fails alone (PERMISSION_DENIED in
        its result); the others are placed."""
        n = len(request.requests)
        if n > self.max_batch:
            raise ResourceExhaustedError(f"batch of {n} orders, at most {self.max_batch} a call")
        requests = list(request.requests)
        p = current_principal()
        decoded = _decode_all(requests, p)
        results = await self.intake.place(decoded)
        if p.channels:
            results = channel_access.hide_foreign(results, p)
        _count(results)
        return response_bytes.batch_response(results, _sources(requests, decoded, results))

    async def PlaceOrders(self, request_iterator: AsyncIterator[orders_pb2.PlaceOrderRequest],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[orders_pb2.PlaceOrderResult]:
        """Micro-batching: a reader task queues requests; each round takes whatever has
        arrived (up to STREAM_MICROBATCH) and places it with one intake call, so results stay
        in request order and one bad order never ends the stream (nor one of another channel
        than a channel-bound key's: its result is PERMISSION_DENIED)."""
        principal = current_principal()
        queue: asyncio.Queue[orders_pb2.PlaceOrderRequest | None] = asyncio.Queue()

        async def reader() -> None:
            try:
                async for r in request_iterator:
                    await queue.put(r)
            finally:
                await queue.put(None)

        task = asyncio.create_task(reader())
        try:
            done = False
            while not done:
                first = await queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < STREAM_MICROBATCH and not queue.empty():
                    nxt = queue.get_nowait()
                    if nxt is None:
                        done = True
                        break
                    batch.append(nxt)
                decoded = _decode_all(batch, principal)
                try:
                    results = await self.coalescer.submit(decoded)
                except Exception as e:  # noqa: BLE001 - the stream outlives one bad round
                    # Each order of the round gets its own error; the stream goes on.
                    err = e if isinstance(e, OmsError) else ItemFailedError(
                        "unexpected error while placing this order; it may have been placed: "
                        "retry with the same idempotency_key", maybe_written=True)
                    results = [d if isinstance(d, OmsError) else err for d in decoded]
                if principal.channels:
                    results = channel_access.hide_foreign(results, principal)
                _count(results)
                for r, src in zip(results, _sources(batch, decoded, results)):
                    yield response_bytes.place_result(r, src)
        finally:
            task.cancel()

    @handle_errors
    async def GetOrder(self, request: orders_pb2.GetOrderRequest,
                       context: grpc.aio.ServicerContext) -> common_pb2.Order:
        """Another channel's order is NOT_FOUND to a channel-bound key, as a missing one."""
        pb_convert.check_order_id(request.order_id)
        order = await self.store.get_order(request.order_id)
        channel_access.check_visible(order, request.order_id, current_principal())
        return pb_convert.encode_order(order)

    @handle_errors
    async def ListOrders(self, request: orders_pb2.ListOrdersRequest,
                         context: grpc.aio.ServicerContext) -> orders_pb2.ListOrdersResponse:
        """A channel-bound key lists only its channels (server/channel_access.py)."""
        q = decode.decode_list_orders(request)
        orders, nxt = await channel_access.list_orders(self.store, q, current_principal())
        return orders_pb2.ListOrdersResponse(orders=[pb_convert.encode_order(o) for o in orders],
                                     next_page_token=nxt)

    @handle_errors
    async def CancelOrder(self, request: orders_pb2.CancelOrderRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.Order:
        """A channel-bound key cancels only its channels' orders: another's is NOT_FOUND, and
        is checked before anything changes."""
        order_id, reason = decode.decode_reason_for_order(request)
        p = current_principal()
        if p.channels:
            channel_access.check_visible(await self.store.get_order(order_id), order_id, p)
        return pb_convert.encode_order(await self.life.cancel(order_id, reason))

    @handle_errors
    async def ReleaseHold(self, request: orders_pb2.ReleaseHoldRequest,
                          context: grpc.aio.ServicerContext) -> common_pb2.Order:
        """Refused to every channel-bound key (PERMISSION_DENIED)."""
        channel_access.refuse_bound(current_principal(), "releasing a fraud hold")
        pb_convert.check_order_id(request.order_id)
        val.require_text(request.reason, "reason", "reason", multiline=True)
        return pb_convert.encode_order(await self.life.release_hold(request.order_id, request.reason))

    @handle_stream_errors
    async def WatchOrderEvents(self, request: orders_pb2.WatchOrderEventsRequest,
                               context: grpc.aio.ServicerContext) -> AsyncIterator[common_pb2.OrderEvent]:
        # Every watcher is fed by the process's one event tailer (server/events_hub.py): no
        # watcher holds a Redis connection of the request pool. A channel-bound key gets only
        # its channels' events (another channel's order_id: nothing).
        async with aclosing(self.hub.watch(request.after_event_id, request.order_id,
                                           current_principal().channels)) as events:
            async for e in events:
                yield pb_convert.encode_event(e)
