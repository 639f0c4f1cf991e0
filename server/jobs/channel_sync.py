"""``oms-channels``: keeps each sales channel's published stock equal to its available-to-sell
(Shopify, WooCommerce, generic JSON webhook; see server/channels/connectors.py for the APIs and
the webhook schema, server/channels/pusher.py for the rules).

Every --poll-ms it reads every warehouse's availability array and stock version; the SKUs that
changed are pushed to each channel that sells them: at most one push per SKU per second, the
newest value, absolute sets (Shopify with compare-and-set), retried with backoff honouring
Retry-After on 429/5xx. Every --reconcile-s (and on start) every listed SKU is pushed again.
Per-channel pending, lag p50/p99, pushes, failures and the last error go to Redis every second
(GetStats.channels) and, with --metrics-listen, to Prometheus.

Beside it runs the shipment pusher (server/channels/shipments.py): every order.shipped event of
an order that came in through a channel's webhook marks the order fulfilled on that channel
(carrier, tracking number, tracking link), exactly once per shipment.

--once: one reconciliation of every channel, wait until it is pushed (at most --once-timeout-s),
exit 0 (1 if something was left). Without --redis-url it uses the embedded Redis of an
``oms-server`` started with the same --data-dir. SIGTERM stops it.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from oms.server.channels.pusher import ChannelPusher, ChannelSync
from oms.server.channels.shipments import ShipmentPushConfig, ShipmentPusher
from oms.server.config import RULES, Config, between, option, positive_up_to
from oms.server.jobs.job_runner import run_job
from oms.server.redis.store import Store

log = logging.getLogger("oms.channels")


@dataclass
class ChannelSyncConfig:
    redis_url: str = Config.redis_url
    data_dir: str = Config.data_dir
    redis_cluster: bool = option(switch=True, help="--redis-url is a node of a Redis Cluster")
    replica_acks: int = Config.replica_acks
    poll_ms: int = option(100, rule=between(10, 60_000), env="OMS_CHANNELS_POLL_MS",
                          help="milliseconds between looks at the stock")
    reconcile_s: float = option(300.0, rule=positive_up_to(7 * 86400),
                                env="OMS_CHANNELS_RECONCILE_S",
                                help="seconds between full reconciliations")
    metrics_listen: str = option("", rule=RULES["metrics_listen"],
                                 env="OMS_CHANNELS_METRICS_LISTEN",
                                 help="HOST:PORT for Prometheus /metrics; empty: none")
    once: bool = option(switch=True, env="", help="one reconciliation, then exit")
    once_timeout_s: float = option(60.0, rule=positive_up_to(3600), env="")
    tracking_url_template: str = option(
        "", env="OMS_CHANNELS_TRACKING_URL",
        help="link pushed with a shipment: {tracking_number} {carrier} {order_id}; empty: the "
             "carrier's public tracking page, else the label URL")
    log_level: str = Config.log_level


class ChannelMetrics:
    """Prometheus figures per channel, on a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.pending = Gauge("oms_channel_pending", "SKUs changed and not yet pushed",
                             ["channel"], registry=r)
        self.lag = Gauge("oms_channel_push_lag_ms", "stock change seen -> channel answered",
                         ["channel", "quantile"], registry=r)
        self.pushes = Counter("oms_channel_pushes", "stock sets the channel accepted",
                              ["channel"], registry=r)
        self.failures = Counter("oms_channel_push_failures", "push attempts that failed",
                                ["channel"], registry=r)
        self._seen: dict[str, tuple[int, int]] = {}

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=self.registry)

    def update(self, pushers: Iterable[ChannelPusher]) -> None:
        for p in pushers:
            cid = p.channel.id
            p50, p99 = p.lag_percentiles()
            self.pending.labels(cid).set(p.pending)
            self.lag.labels(cid, "0.5").set(p50)
            self.lag.labels(cid, "0.99").set(p99)
            # Pushers are replaced when a channel changes: count by difference, never back.
            last_p, last_f = self._seen.get(cid, (0, 0))
            if p.total_pushes < last_p or p.total_failures < last_f:
                last_p, last_f = 0, 0
            self.pushes.labels(cid).inc(p.total_pushes - last_p)
            self.failures.labels(cid).inc(p.total_failures - last_f)
            self._seen[cid] = (p.total_pushes, p.total_failures)


async def run_channels(cfg: ChannelSyncConfig, store: Store, url: str,
                       stop: asyncio.Event) -> int:
    metrics = None
    if cfg.metrics_listen:
        metrics = ChannelMetrics()
        metrics.serve(cfg.metrics_listen)
    sync = ChannelSync(store, poll_s=cfg.poll_ms / 1000.0, reconcile_s=cfg.reconcile_s,
                       metrics=metrics)
    log.info("oms-channels on %s (poll %d ms, reconcile %.0f s)", url.split("@")[-1],
             cfg.poll_ms, cfg.reconcile_s)
    shipments = ShipmentPusher(store, ShipmentPushConfig(
        tracking_url_template=cfg.tracking_url_template))
    if cfg.once:
        done = await sync.run_once(cfg.once_timeout_s)
        if not done:
            log.warning("not everything was pushed within %.0f s", cfg.once_timeout_s)
        try:
            n = await shipments.run_once()
        finally:
            await shipments.aclose()
        log.info("%d shipment event(s) handled", n)
        return 0 if done else 1
    try:
        await asyncio.gather(sync.run(stop), shipments.run(stop))
    finally:
        await shipments.aclose()
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_job("oms-channels", ChannelSyncConfig, argv, __doc__ or "", run_channels)


if __name__ == "__main__":
    sys.exit(main())
