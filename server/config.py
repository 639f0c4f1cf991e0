"""One Config dataclass, filled from command-line flags and ``OMS_*`` environment variables."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields


@dataclass
class Config:
    listen: str = "127.0.0.1:50051"
    redis_url: str = ""  # empty: start an embedded redis-server
    data_dir: str = "var/redis"  # embedded redis data (AOF) directory
    fraud_hold_seconds: int = 3600
    workers: int = 1
    # Scheduling priority (nice) of the embedded redis-server: on cores it shares with the
    # server processes, Redis, the one thread every order passes through, should not wait for
    # a Python worker (batch intake +18 % on 2 cores). Negative needs root or CAP_SYS_NICE;
    # without it Redis keeps the default. 0 = leave it.
    redis_nice: int = -5
    idempotency_ttl_s: int = 24 * 3600
    events_maxlen: int = 1_000_000
    max_batch: int = 1000
    replan_attempts: int = 8
    grace_ms: int = 30_000  # recovery sweep leaves younger in-flight reservations alone
    wave_time_budget_s: float = 4.0  # optimisation budget of one PlanWave
    promise_days: int = 5  # delivery date promised at intake (calendar days)
    risk_hold_score: int = 60  # fraud rules: orders scoring this or more go ON_HOLD for review
    boxes_file: str = ""  # JSON box catalogue for packing; empty = built-in catalogue
    label_dir: str = "var/labels"  # where shipping label PDFs are written
    followup_delay_s: float = 3 * 86400  # review request this long after delivery
    return_window_days: float = 30
    metrics_port: int = 0  # Prometheus /metrics; 0 = off
    log_level: str = "INFO"

    @classmethod
    def from_args(cls, argv: list[str] | None = None) -> "Config":
        base = cls()
        env = os.environ
        parser = argparse.ArgumentParser(prog="oms-server", description="Order management gRPC server")
        for f in fields(cls):
            flag = "--" + f.name.replace("_", "-")
            default = env.get("OMS_" + f.name.upper(), getattr(base, f.name))
            parser.add_argument(flag, type=type(getattr(base, f.name)), default=default,
                                help=f"(env OMS_{f.name.upper()}, default {getattr(base, f.name)!r})")
        ns = parser.parse_args(argv)
        return cls(**{f.name: type(getattr(base, f.name))(getattr(ns, f.name)) for f in fields(cls)})
