"""Signed order webhooks in: ``POST /webhooks/{shopify|woocommerce|generic}/{channel_id}``.

Per delivery:

1. The path's channel id must match ``[a-z0-9_-]{1,32}`` (404); the body is read up to 1 MiB
   (413); the signature header must be there (401).
2. oms-server checks the signature with the channel's write-only secret in constant time
   (VerifyWebhook): not valid → 401 and nothing stored; an unknown channel, or one whose kind
   does not fit the path (shopify: SHOPIFY; woocommerce: WOOCOMMERCE; generic: GENERIC, WEB,
   POS, MARKETPLACE) → 404; a disabled channel → 409, so the platform retries the delivery
   and the order arrives once the channel is enabled again (platforms give up after their own
   retry window); a delivery id completed before → 200 ``{"duplicate": true, "outcome": …}``.
3. The body is parsed (``payloads``; malformed → 400 ``{"error": reason}``) and acted on:
   - create → PlaceOrder with idempotency key ``<platform>:<channel id>:<order id>`` and the
     order's channel = the channel id → 200 ``{"order_id", "status"}``. A repeated or
     concurrent delivery (any delivery id) resolves to the same order. A SKU the service does
     not know, or an order it refuses as invalid, is recorded as rejected (ListRejectedOrders)
     and answered 200 ``{"rejected": reason}``, so the platform stops retrying.
   - cancel → PlaceOrder with the same key (the existing order; created first if this is the
     first the edge hears of it), then CancelOrder → 200 ``{"cancelled": true, "order_id"}``;
     an order past cancelling → 200 ``{"cancelled": false, "reason"}``.
   - any other topic → 200 ``{"ignored": topic}``.
4. The delivery is marked complete with its outcome (de-duplication for 24 h).

oms-server unreachable or failing → 503, so the platform retries. Topics: Shopify
``X-Shopify-Topic`` orders/create, orders/cancelled; WooCommerce ``X-WC-Webhook-Topic``
order.created, order.updated with status cancelled (WooCommerce's unsigned ping on saving a
webhook, body ``webhook_id=<n>``, answers 200 and stores nothing); generic: the body's
``event`` (payloads.py documents the JSON).
"""
from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web

from oms.engine.channels import ChannelKind, external_order_key
from oms.server.validation import CHANNEL_RE
from oms.server.web import payloads
from oms.server.web.backend import Backend
from oms.server.web.payloads import PayloadError, WebhookOrder
from oms.v1 import channels_pb2 as ch_pb
from oms.v1 import common_pb2, orders_pb2

log = logging.getLogger("oms.web.webhooks")

BACKEND = web.AppKey("backend", Backend)
MAX_SIGNATURE = 256
MAX_OUTCOME = 200
MAX_REASON = 500
_DELIVERY_RE = re.compile(r"[\x20-\x7e]{1,128}", re.ASCII)
_WC_PING_RE = re.compile(rb"webhook_id=[0-9]{1,20}", re.ASCII)
# ABORTED: a concurrent delivery of the same order holds its idempotency key; it settles in
# milliseconds, so a short bounded retry turns replays into the one order.
_ABORTED_TRIES = 40
# gRPC answers that mean "this order will never be taken as sent": record it as rejected.
_REJECT_CODES = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)


@dataclass(frozen=True)
class Platform:
    name: str  # the path segment, the VerifyWebhook scheme and the idempotency key's prefix
    signature_header: str
    delivery_header: str
    topic_header: str  # "" : the topic is in the body
    kinds: frozenset[ChannelKind]


PLATFORMS = {p.name: p for p in (
    Platform("shopify", "X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Topic",
             frozenset({ChannelKind.SHOPIFY})),
    Platform("woocommerce", "X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID",
             "X-WC-Webhook-Topic", frozenset({ChannelKind.WOOCOMMERCE})),
    Platform("generic", "X-OMS-Signature", "X-OMS-Delivery-Id", "",
             frozenset({ChannelKind.GENERIC, ChannelKind.WEB, ChannelKind.POS,
                        ChannelKind.MARKETPLACE})),
)}


class _Unavailable(Exception):
    """oms-server could not answer; the platform should retry (503)."""


def _json(http_status: int, /, **body: Any) -> web.Response:
    return web.json_response(body, status=http_status)


def add_routes(app: web.Application) -> None:
    app.router.add_post(r"/webhooks/{platform:shopify|woocommerce|generic}/{channel_id}", receive)


async def receive(request: web.Request) -> web.Response:
    p = PLATFORMS[request.match_info["platform"]]
    channel_id = request.match_info["channel_id"]
    if CHANNEL_RE.fullmatch(channel_id) is None:
        return _json(404, error="no such channel")
    if request.content_length is not None and request.content_length > payloads.MAX_BODY:
        return _json(413, error=f"body of {request.content_length} bytes, at most "
                                f"{payloads.MAX_BODY}")
    try:
        body = await request.read()  # client_max_size caps a chunked body too
    except web.HTTPRequestEntityTooLarge:
        return _json(413, error=f"body over {payloads.MAX_BODY} bytes")
    signature = request.headers.get(p.signature_header, "")
    delivery_id = request.headers.get(p.delivery_header, "")
    if not signature and p.name == "woocommerce" and _WC_PING_RE.fullmatch(body):
        return _json(200, ignored="ping")
    if not signature or len(signature) > MAX_SIGNATURE:
        return _json(401, error=f"missing or malformed {p.signature_header} header")
    if delivery_id and _DELIVERY_RE.fullmatch(delivery_id) is None:
        return _json(400, error=f"{p.delivery_header} must be 1-128 printable ASCII characters")
    backend = request.app[BACKEND]
    try:
        return await _deliver(backend, p, channel_id, request, body, signature, delivery_id)
    except _Unavailable as e:
        log.warning("%s/%s delivery %r: oms-server: %s", p.name, channel_id, delivery_id, e)
        return _json(503, error=f"oms-server: {e}")


async def _deliver(b: Backend, p: Platform, channel_id: str, request: web.Request, body: bytes,
                   signature: str, delivery_id: str) -> web.Response:
    try:
        v = await b.channels.VerifyWebhook(ch_pb.VerifyWebhookRequest(
            channel_id=channel_id, scheme=p.name, signature=signature, body=body,
            delivery_id=delivery_id), metadata=b.metadata, timeout=b.timeout)
    except grpc.aio.AioRpcError as e:
        if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
            return _json(404, error="no such channel")
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return _json(400, error=e.details() or "invalid")
        raise _Unavailable(e.code().name) from None
    if not v.valid:
        log.info("%s/%s delivery %r: bad signature", p.name, channel_id, delivery_id)
        return _json(401, error="signature does not match")
    if v.kind not in p.kinds:
        return _json(404, error=f"channel {channel_id} does not take {p.name} webhooks")
    if v.disabled:
        return _json(409, error=f"channel {channel_id} is disabled; retry later")
    if v.duplicate:
        log.info("%s/%s delivery %r: duplicate (%s)", p.name, channel_id, delivery_id, v.outcome)
        return _json(200, duplicate=True, outcome=v.outcome)

    try:
        action, topic, order = _decide(p, request, body)
    except PayloadError as e:
        log.info("%s/%s delivery %r: malformed: %s", p.name, channel_id, delivery_id, e)
        return _json(400, error=str(e))
    if order is None:
        outcome, answer = f"ignored {topic}", {"ignored": topic}
    elif action == "create":
        outcome, answer = await _create(b, p, channel_id, order, delivery_id)
    else:
        outcome, answer = await _cancel(b, p, channel_id, order)
    await _complete(b, channel_id, delivery_id, outcome)
    log.info("%s/%s delivery %r topic %s: %s", p.name, channel_id, delivery_id, topic, outcome)
    return _json(200, **answer)


def _decide(p: Platform, request: web.Request, body: bytes
            ) -> tuple[str, str, WebhookOrder | None]:
    """(action "create" | "cancel" | "ignore", the topic, the order unless ignored)."""
    if p.name == "generic":
        doc = payloads.load_json(body)
        topic = payloads.generic_event(doc)
        if topic not in payloads.GENERIC_EVENTS:
            return "ignore", topic, None
        order = payloads.generic_order(doc)
        return ("cancel" if order.cancelled else "create"), topic, order
    topic = request.headers.get(p.topic_header, "")
    if not topic:
        raise PayloadError(f"missing {p.topic_header} header")
    topic = topic[:64]
    if p.name == "shopify":
        if topic not in ("orders/create", "orders/cancelled"):
            return "ignore", topic, None
        order = payloads.shopify_order(payloads.load_json(body))
        return ("create" if topic == "orders/create" else "cancel"), topic, order
    if topic not in ("order.created", "order.updated"):
        return "ignore", topic, None
    order = payloads.woocommerce_order(payloads.load_json(body))
    if topic == "order.created":
        return "create", topic, order
    if order.cancelled:
        return "cancel", topic, order
    return "ignore", topic, None


def _place_request(p: Platform, channel_id: str, o: WebhookOrder) -> orders_pb2.PlaceOrderRequest:
    s = o.ship_to
    return orders_pb2.PlaceOrderRequest(
        idempotency_key=external_order_key(p.name, channel_id, o.external_id),
        channel=channel_id,
        customer=common_pb2.Customer(id=o.customer_id, email=o.email, name=o.customer_name),
        ship_to=common_pb2.Address(name=s.name, line1=s.line1, city=s.city, region=s.region,
                                   postal_code=s.postal_code, country=s.country,
                                   latitude=s.latitude, longitude=s.longitude),
        lines=[common_pb2.OrderLine(sku=ln.sku, quantity=ln.quantity,
                                    unit_price_cents=ln.unit_price_cents) for ln in o.lines])


async def _call(b: Backend, method: Any, request: Any) -> Any:
    """One unary call, retried while a concurrent twin holds the idempotency key (ABORTED)."""
    for attempt in range(_ABORTED_TRIES):
        try:
            return await method(request, metadata=b.metadata, timeout=b.timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.ABORTED or attempt == _ABORTED_TRIES - 1:
                raise
            await asyncio.sleep(min(0.01 * 2 ** attempt, 0.25))
    raise AssertionError("unreachable")


async def _place(b: Backend, p: Platform, channel_id: str, o: WebhookOrder) -> common_pb2.Order:
    order = await _call(b, b.orders.PlaceOrder, _place_request(p, channel_id, o))
    if order.channel != channel_id:  # keys are namespaced by channel: never another's order
        raise _Unavailable(f"order {order.id} belongs to another channel")
    return order


async def _create(b: Backend, p: Platform, channel_id: str, o: WebhookOrder, delivery_id: str
                  ) -> tuple[str, dict[str, Any]]:
    try:
        order = await _place(b, p, channel_id, o)
    except grpc.aio.AioRpcError as e:
        if e.code() not in _REJECT_CODES:
            raise _Unavailable(e.code().name) from None
        reason = (e.details() or e.code().name)[:MAX_REASON]
        await _reject(b, channel_id, o, reason, delivery_id)
        return f"rejected: {reason}"[:MAX_OUTCOME], {"rejected": reason}
    return f"order {order.id}", {"order_id": order.id,
                                 "status": common_pb2.OrderStatus.Name(order.status)}


async def _reject(b: Backend, channel_id: str, o: WebhookOrder, reason: str,
                  delivery_id: str) -> None:
    # the skus as the platform sent them, those the record can hold (printable, ≤ 64)
    skus = [s for s in o.skus if s.isascii() and s.isprintable()][:1000]
    try:
        await b.channels.RecordRejectedOrder(ch_pb.RecordRejectedOrderRequest(
            rejected=ch_pb.RejectedOrder(channel_id=channel_id, external_id=o.external_id,
                                         reason=reason, delivery_id=delivery_id, skus=skus)),
            metadata=b.metadata, timeout=b.timeout)
    except grpc.aio.AioRpcError as e:
        raise _Unavailable(f"RecordRejectedOrder: {e.code().name}") from None


async def _cancel(b: Backend, p: Platform, channel_id: str, o: WebhookOrder
                  ) -> tuple[str, dict[str, Any]]:
    try:
        order = await _place(b, p, channel_id, o)
    except grpc.aio.AioRpcError as e:
        if e.code() not in _REJECT_CODES:
            raise _Unavailable(e.code().name) from None
        reason = (e.details() or e.code().name)[:MAX_REASON]
        return f"not cancelled: {reason}"[:MAX_OUTCOME], {"cancelled": False, "reason": reason}
    if order.status != common_pb2.ORDER_STATUS_CANCELLED:
        try:
            order = await _call(b, b.orders.CancelOrder, orders_pb2.CancelOrderRequest(
                order_id=order.id, reason=f"cancelled on {p.name}"))
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise _Unavailable(e.code().name) from None
            reason = (e.details() or e.code().name)[:MAX_REASON]
            return (f"not cancelled {order.id}: {reason}"[:MAX_OUTCOME],
                    {"cancelled": False, "order_id": order.id, "reason": reason})
    return f"cancelled {order.id}", {"cancelled": True, "order_id": order.id}


async def _complete(b: Backend, channel_id: str, delivery_id: str, outcome: str) -> None:
    if not delivery_id:
        return  # no id to de-duplicate on: the idempotency key alone makes repeats one order
    try:
        await b.channels.CompleteWebhookDelivery(ch_pb.CompleteWebhookDeliveryRequest(
            channel_id=channel_id, delivery_id=delivery_id, outcome=outcome),
            metadata=b.metadata, timeout=b.timeout)
    except grpc.aio.AioRpcError as e:
        # the work is done and a retry is harmless (the same order), but say so
        log.warning("%s delivery %r: CompleteWebhookDelivery: %s", channel_id, delivery_id,
                    e.code().name)

