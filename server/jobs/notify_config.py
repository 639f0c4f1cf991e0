"""``oms-notify``'s settings: one dataclass, built from flags and ``OMS_*`` variables by the
server's own mechanism (server/config.py ``parse_config``: same checks, one-line errors)."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from oms.server.config import Config, ConfigError, between, option, positive_up_to


def _host_pid() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class NotifyConfig:
    redis_url: str = Config.redis_url
    data_dir: str = Config.data_dir
    redis_cluster: bool = option(switch=True, help="--redis-url is a node of a Redis Cluster")
    replica_acks: int = Config.replica_acks  # cluster only: writes wait for N replicas (WAIT)
    smtp_host: str = "localhost"
    smtp_port: int = option(0, rule=between(0, 65535),
                            help="0: 465 with --smtp-ssl, 587 with --smtp-starttls, else 25")
    smtp_user: str = ""
    smtp_password: str = option("", help="prefer the OMS_SMTP_PASSWORD environment variable")
    smtp_starttls: bool = option(switch=True, env="OMS_SMTP_STARTTLS")
    smtp_ssl: bool = option(switch=True, env="OMS_SMTP_SSL")
    smtp_timeout: float = option(30.0, rule=positive_up_to(3600))
    from_address: str = option("Orders <orders@example.com>", env="OMS_NOTIFY_FROM")
    tracking_url_template: str = option("https://track.example.com/{tracking_number}",
                                        help="placeholders: {tracking_number} {carrier} {order_id}")
    review_url_template: str = option("https://shop.example.com/review/{order_id}",
                                      help="placeholder: {order_id}")
    consumer: str = option(factory=_host_pid, env="OMS_NOTIFY_CONSUMER",
                           help="this worker's name in the consumer group (default host-pid)")
    group: str = option("notifier", env="OMS_NOTIFY_GROUP")
    group_start: str = option("0", env="", help='where a new consumer group starts: "0" = every '
                              'event still in the streams (default), "$" = only events from now on')
    once: bool = option(switch=True, env="", help="process what is there, then exit")
    followups: bool = option(switch=True, env="",
                             help="also run the follow-up scheduler (moves due review requests "
                                  "onto the event streams, once each)")
    claim_idle_ms: int = option(60_000, env="",
                                help="take over events pending (unacknowledged) longer than this")
    block_ms: int = option(1000, env="", help="longest wait for new events")
    batch: int = option(50, env="", help="events read per stream per call")
    dedupe_ttl_s: int = option(30 * 86400, env="",
                               help="how long a sent e-mail's de-duplication key is kept")
    log_level: str = Config.log_level

    def __post_init__(self) -> None:
        if self.smtp_ssl and self.smtp_starttls:
            raise ConfigError("--smtp-ssl and --smtp-starttls exclude each other")
        if not self.smtp_port:
            self.smtp_port = 465 if self.smtp_ssl else 587 if self.smtp_starttls else 25
