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
from oms.v1 import channels_pb2_grpc, orders_pb2_grpc


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1:8080"
    target: str = "127.0.0.1:50051"  # oms-server
    api_key: str = ""
    tls_ca: str = ""  # PEM CA that signed oms-server's certificate (TLS to the target)
    timeout_s: float = 10.0  # per gRPC call
    log_level: str = "INFO"


class Backend:
    """The stubs oms-web calls, on one channel made inside the running event loop."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.metadata = auth_metadata(config.api_key)
        self.timeout = config.timeout_s
        self.channel: grpc.aio.Channel = aio_channel(config.target, tls_ca=config.tls_ca)
        self.orders = orders_pb2_grpc.OrderServiceStub(self.channel)
        self.channels = channels_pb2_grpc.ChannelServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()
