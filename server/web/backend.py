"""oms-web's gRPC connection to oms-server: one asyncio channel, the stubs it calls, and its own
API key sent as ``authorization: Bearer <key>`` on every call.

The key needs the scopes ``channels:ingest`` (VerifyWebhook, CompleteWebhookDelivery,
RecordRejectedOrder) and ``orders:write`` (PlaceOrder, CancelOrder); a key bound to channels
serves only those channels' webhooks (another channel's path answers 404).
"""
from __future__ import annotations

from dataclasses import dataclass

import grpc

from oms.clients.credentials import aio_channel, auth_metadata
from oms.v1 import (
    admin_pb2_grpc,
    channels_pb2_grpc,
    fulfillment_pb2_grpc,
    inventory_pb2_grpc,
    orders_pb2_grpc,
    reporting_pb2_grpc,
    returns_pb2_grpc,
)


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"
    target: str = "127.0.0.1:50051"  # oms-server
    api_key: str = ""
    tls_ca: str = ""  # PEM CA that signed oms-server's certificate (TLS to the target)
    timeout_s: float = 10.0  # per gRPC call
    log_level: str = "INFO"
    # The operator console (server/web/console): sessions end after this long idle, and
    # after session_max_s in any case; sign-in attempts per client address per minute.
    session_idle_s: float = 1800.0
    session_max_s: float = 12 * 3600.0
    login_attempts_per_min: int = 10
    tls_cert: str = ""  # PEM certificate + key: oms-web serves HTTPS (session cookies Secure)
    tls_key: str = ""


class Backend:
    """The stubs oms-web calls, on one channel made inside the running event loop."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.metadata = auth_metadata(config.api_key)
        self.timeout = config.timeout_s
        self.channel: grpc.aio.Channel = aio_channel(config.target, tls_ca=config.tls_ca)
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.channels = channels_pb2_grpc.ChannelServiceStub(self.channel)
        # The console's stubs: it calls them with the signed-in user's key (console/calls.py),
        # never with this edge's own key.
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.fulfillment = fulfillment_pb2_grpc.FulfillmentServiceStub(self.channel)
        self.returns = returns_pb2_grpc.ReturnsServiceStub(self.channel)
        self.reporting = reporting_pb2_grpc.ReportingServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
