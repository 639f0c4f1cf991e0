"""create_server(config) -> (server, port): the grpc.aio server with every service, health
checking and reflection. The caller owns the Redis connection (see server/cli.py)."""
from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from oms.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    channels_pb2,
    channels_pb2_grpc,
    fulfillment_pb2,
    fulfillment_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    reporting_pb2,
    reporting_pb2_grpc,
    returns_pb2,
    returns_pb2_grpc,
)
from oms.server.auth.bootstrap import build_authenticator, load_pepper
from oms.server.auth.interceptor import AuthInterceptor
from oms.server.auth.tls import server_credentials
from oms.server.availability_hub import AvailabilityHub
from oms.server.backorders import BackorderFiller
from oms.server.channel_decoding import REQUEST_LIMITS as CHANNEL_REQUEST_LIMITS
from oms.server.config import is_loopback
from oms.server.config import Config
from oms.server.events_hub import EventHub
from oms.server.intake import Intake
from oms.server.jobs.sweeper import Sweeper
from oms.server.redis.store import Store
from oms.server.wave_planner import WavePlanner
from oms.engine import carriers, packing, payments
from oms.engine.fraud import RiskConfig
from oms.server.metrics import MetricsInterceptor
from oms.server.order_actions import OrderLife
from oms.server.redis.store import StoreLedger
from oms.server.reflection import enable_reflection
from oms.server.transport import batch_receive_limit, transport_interceptor
from oms.server.services.admin import AdminServicer
from oms.server.services.channels import ChannelServicer
from oms.server.services.fulfillment import FulfillmentServicer
from oms.server.services.returns import ReturnsServicer
from oms.server.services.inventory import InventoryServicer
from oms.server.services.orders import OrderServicer
from oms.server.services.reporting import ReportingServicer

SERVICE_NAMES = (
    inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,
    orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
    fulfillment_pb2.DESCRIPTOR.services_by_name["FulfillmentService"].full_name,
    returns_pb2.DESCRIPTOR.services_by_name["ReturnsService"].full_name,
    reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    channels_pb2.DESCRIPTOR.services_by_name["ChannelService"].full_name,
)

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024  # replies: a ListOrders page or batch result of 1,000 orders


def build_order_life(config: Config, store: Store) -> OrderLife:
    """Order actions with the built-in gateway. Called on the loop that serves: the gateway's
    ledger runs on the store's client, on that loop (one Redis client per process)."""
    ledger = StoreLedger(store, asyncio.get_running_loop())
    boxes = None
    if config.boxes_file:
        with open(config.boxes_file, encoding="utf-8") as f:
            boxes = packing.load_boxes(f.read())
    return OrderLife(store, payments.DeterministicGateway(ledger),
                     carriers.RateTableCarrier(), boxes=boxes, label_dir=config.label_dir,
                     followup_delay_s=config.followup_delay_s,
                     return_window_days=config.return_window_days)


def create_server(config: Config, store: Store, *, reuse_port: bool = False
                  ) -> tuple[grpc.aio.Server, int]:
    """Build the server and bind ``config.listen`` (port 0 picks a free one). Not started."""
    options = [
        # requests: a BatchPlaceOrders of max_batch full orders; other methods are capped
        # much lower per method by the transport interceptor
        ("grpc.max_receive_message_length", max(batch_receive_limit(config.max_batch),
                                                *CHANNEL_REQUEST_LIMITS.values())),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]
    pepper = load_pepper(config)
    auth = build_authenticator(config, store, pepper)
    interceptors: list[grpc.aio.ServerInterceptor] = (
        [MetricsInterceptor()] if config.metrics_port or config.metrics_listen else [])
    # who is calling, before any work; then the size caps (innermost: metrics see both)
    interceptors.append(AuthInterceptor(auth))
    transport = transport_interceptor(config.max_batch)
    transport.limits.update(CHANNEL_REQUEST_LIMITS)  # a channel's SKU maps, a webhook body
    interceptors.append(transport)
    server = grpc.aio.server(options=options, interceptors=interceptors)
    life = build_order_life(config, store)
    intake = Intake(store, fraud_hold_seconds=config.fraud_hold_seconds,
                    replan_attempts=config.replan_attempts, authorize=life.authorize,
                    risk=RiskConfig(hold_score=config.risk_hold_score),
                    promise_days=config.promise_days)
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(store), server)
    # one shared event tailer for every WatchOrderEvents stream of this process
    server.events_hub = hub = EventHub(store, max_watchers=config.max_watchers)  # type: ignore[attr-defined]
    orders_pb2_grpc.add_OrderServiceServicer_to_server(
        OrderServicer(store, intake, life, config.max_batch, hub=hub,
                      coalesce_wait_s=config.coalesce_wait_ms / 1000), server)
    reporting_pb2_grpc.add_ReportingServiceServicer_to_server(ReportingServicer(store, config.grace_ms), server)
    fulfillment_pb2_grpc.add_FulfillmentServiceServicer_to_server(
        FulfillmentServicer(store, WavePlanner(store, time_budget_s=config.wave_time_budget_s), life,
                            BackorderFiller(store, fraud_hold_seconds=config.fraud_hold_seconds,
                                            risk_hold_score=config.risk_hold_score)),
        server)
    returns_pb2_grpc.add_ReturnsServiceServicer_to_server(ReturnsServicer(life), server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(store, pepper, auth), server)
    # one shared stock poller for every WatchAvailability stream of this process
    server.availability_hub = ahub = AvailabilityHub(  # type: ignore[attr-defined]
        store, max_per_key=config.max_watchers)
    channels_pb2_grpc.add_ChannelServiceServicer_to_server(ChannelServicer(store, ahub), server)

    health_servicer = health.aio.HealthServicer() if hasattr(health, "aio") else health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(SERVICE_NAMES + (health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if config.tls_cert:
        port = server.add_secure_port(config.listen, server_credentials(
            config.tls_cert, config.tls_key, config.tls_client_ca))
    else:
        if not is_loopback(config.listen):
            log.warning("listening on %s WITHOUT TLS: API keys and orders cross the network in "
                        "plain text (use --tls-cert/--tls-key)", config.listen)
        port = server.add_insecure_port(config.listen)
    if auth is None:
        log.warning("--auth off: every caller on %s may do everything (experiments only)",
                    config.listen)
    server.authenticator = auth  # type: ignore[attr-defined]
    # started by mark_serving, on the loop that serves (create_server may run outside one)
    store.claim_lease_s = config.claim_lease_s
    server.sweeper = Sweeper(store, interval_s=config.sweep_interval_s,  # type: ignore[attr-defined]
                             grace_ms=config.orphan_grace_ms)
    server.health = health_servicer  # type: ignore[attr-defined]
    server.health_names = ("",) + SERVICE_NAMES  # type: ignore[attr-defined]
    return server, port


async def mark_serving(server: grpc.aio.Server) -> None:
    server.sweeper.start()  # type: ignore[attr-defined]
    for name in server.health_names:  # type: ignore[attr-defined]
        await server.health.set(name, health_pb2.HealthCheckResponse.SERVING)  # type: ignore[attr-defined]
