"""ChannelService: sales channels, their available-to-sell, and the webhook edge's checks.
Thin: decode (server/channel_decoding.py) -> one call -> encode.

Channel-bound API keys (server/channel_access.py): another channel does not exist for them
(NOT_FOUND, the very answer of a missing one), lists show only theirs, and UpsertChannel is
back-office work (PERMISSION_DENIED).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import aclosing

import grpc

from oms.engine.channels import Channel
from oms.engine.errors import NotFoundError
from oms.server import channel_decoding as cd
from oms.server.auth.principal import Principal, current_principal
from oms.server.availability_hub import AvailabilityHub, watch_levels
from oms.server.channel_access import refuse_bound
from oms.server.channels.availability import channel_levels
from oms.server.errors import handle_errors, handle_stream_errors
from oms.server.redis.base import now_ms
from oms.server.redis.channels import RejectedOrder
from oms.server.redis.store import Store
from oms.v1 import channels_pb2 as pb
from oms.v1 import channels_pb2_grpc


def signature_valid(scheme: str, secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the HMAC-SHA256 of ``body`` under ``secret``: base64 for
    "shopify"/"woocommerce" (X-Shopify-Hmac-Sha256, X-WC-Webhook-Signature), hex, optionally
    "sha256="-prefixed, for "generic". Constant time; no secret: never valid."""
    if not secret:
        return False
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    if scheme == "generic":
        given = signature.removeprefix("sha256=").lower()
        expected = digest.hex()
    else:
        given, expected = signature, base64.b64encode(digest).decode()
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


async def _visible(store: Store, p: Principal, channel_id: str) -> Channel:
    """The channel, if it exists for the caller; NotFoundError (the same for a missing one and
    another channel of a bound key) if not."""
    ch = await store.get_channel(channel_id) if p.may_see_channel(channel_id) else None
    if ch is None:
        raise NotFoundError("channel", channel_id)
    return ch


async def _upsert(store: Store, ch: Channel) -> Channel:
    """Store ``ch`` once every warehouse it names exists (NOT_FOUND names the first that
    does not)."""
    if ch.warehouse_ids:
        known = {w.id for w in await store.warehouses(0.0)}
        missing = [w for w in ch.warehouse_ids if w not in known]
        if missing:
            raise NotFoundError("warehouse", missing[0])
    return await store.upsert_channel(ch)


async def _rejected(store: Store, p: Principal, channel_id: str, limit: int
                    ) -> list[RejectedOrder]:
    """Newest first: one channel's, or every visible channel's merged."""
    if channel_id:
        await _visible(store, p, channel_id)
        return await store.list_rejected(channel_id, limit)
    ids = [c.id for c in await store.list_channels() if p.may_see_channel(c.id)]
    pages = await asyncio.gather(*(store.list_rejected(i, limit) for i in ids))
    merged = sorted((r for page in pages for r in page),
                    key=lambda r: (-r.received_at, r.channel_id, r.external_id))
    return merged[:limit]


class ChannelServicer(channels_pb2_grpc.ChannelServiceServicer):
    def __init__(self, store: Store, hub: AvailabilityHub) -> None:
        self.store = store
        self.hub = hub

    @handle_errors
    async def UpsertChannel(self, request: pb.UpsertChannelRequest,
                            context: grpc.aio.ServicerContext) -> pb.Channel:
        refuse_bound(current_principal(), "UpsertChannel")
        ch = cd.decode_channel(request.channel)
        return cd.encode_channel(await _upsert(self.store, ch))

    @handle_errors
    async def ListChannels(self, request: pb.ListChannelsRequest,
                           context: grpc.aio.ServicerContext) -> pb.ListChannelsResponse:
        p = current_principal()
        return pb.ListChannelsResponse(channels=[
            cd.encode_channel(c) for c in await self.store.list_channels()
            if p.may_see_channel(c.id)])

    @handle_errors
    async def GetChannel(self, request: pb.GetChannelRequest,
                         context: grpc.aio.ServicerContext) -> pb.Channel:
        cid = cd.require_channel_id(request.channel_id)
        return cd.encode_channel(await _visible(self.store, current_principal(), cid))

    @handle_errors
    async def GetAvailability(self, request: pb.GetAvailabilityRequest,
                              context: grpc.aio.ServicerContext) -> pb.GetAvailabilityResponse:
        q = cd.decode_availability(request)
        ch = await _visible(self.store, current_principal(), q.channel_id)
        skus = q.skus or sorted(await self.store.all_sku_ids())
        levels, version = await channel_levels(self.store, ch, skus)
        return pb.GetAvailabilityResponse(levels=[cd.encode_level(x) for x in levels],
                                          version=version)

    @handle_stream_errors
    async def WatchAvailability(self, request: pb.WatchAvailabilityRequest,
                                context: grpc.aio.ServicerContext
                                ) -> AsyncIterator[pb.AvailabilityUpdate]:
        # Every watcher is fed by the process's one poller (server/availability_hub.py).
        q = cd.decode_watch(request)
        p = current_principal()
        ch = await _visible(self.store, p, q.channel_id)
        async with aclosing(watch_levels(self.hub, ch, q.skus, q.after_version,
                                         p.key_id or p.actor)) as updates:
            async for u in updates:
                yield pb.AvailabilityUpdate(channel_id=ch.id, version=u.version,
                                            snapshot=u.snapshot,
                                            levels=[cd.encode_level(x) for x in u.levels])

    @handle_errors
    async def VerifyWebhook(self, request: pb.VerifyWebhookRequest,
                            context: grpc.aio.ServicerContext) -> pb.VerifyWebhookResponse:
        w = cd.decode_verify(request)
        ch = await _visible(self.store, current_principal(), w.channel_id)
        outcome = (await self.store.delivery_outcome(ch.id, w.delivery_id)
                   if w.delivery_id else None)
        return pb.VerifyWebhookResponse(
            valid=signature_valid(w.scheme, ch.webhook_secret, w.body, w.signature),
            kind=int(ch.kind), disabled=ch.disabled, duplicate=outcome is not None,
            outcome=outcome or "")

    @handle_errors
    async def CompleteWebhookDelivery(self, request: pb.CompleteWebhookDeliveryRequest,
                                      context: grpc.aio.ServicerContext
                                      ) -> pb.CompleteWebhookDeliveryResponse:
        cid, delivery_id, outcome = cd.decode_complete(request)
        await _visible(self.store, current_principal(), cid)
        return pb.CompleteWebhookDeliveryResponse(
            first=await self.store.complete_delivery(cid, delivery_id, outcome))

    @handle_errors
    async def RecordRejectedOrder(self, request: pb.RecordRejectedOrderRequest,
                                  context: grpc.aio.ServicerContext) -> pb.RejectedOrder:
        r = cd.decode_rejected(request.rejected, now_ms())
        await _visible(self.store, current_principal(), r.channel_id)
        return cd.encode_rejected(await self.store.record_rejected(r))

    @handle_errors
    async def ListRejectedOrders(self, request: pb.ListRejectedOrdersRequest,
                                 context: grpc.aio.ServicerContext
                                 ) -> pb.ListRejectedOrdersResponse:
        cid, limit = cd.decode_list_rejected(request)
        rows = await _rejected(self.store, current_principal(), cid, limit)
        return pb.ListRejectedOrdersResponse(rejected=[cd.encode_rejected(r) for r in rows])
