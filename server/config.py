"""One Config dataclass, filled from command-line flags and ``OMS_*`` environment variables."""
from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, TypeVar

# ---- request defaults --------------------------------------------------------------------
# What a request's unset (0 / empty) field means, in one place: the servicers' decoding
# (server/request_decoding.py), the wave job and Config read these, none repeats the number.
WAVE_MAX_ORDERS = 500  # PlanWave max_orders
BATCH_MAX_ORDERS = 8  # pick-cart limits: orders per batch (PlanWave and the wave job)
BATCH_MAX_ITEMS = 30  # ... and units per batch
WAVE_TIME_BUDGET_S = 4.0  # optimisation budget of one PlanWave (Config, the wave job)
REALLOCATE_TIME_BUDGET_S = 3.0  # Reallocate time_budget_s
SCAN_MAX_ORDERS = 20_000  # Reallocate / FillBackorders max_orders
PAGE_SIZE = 50  # ListOrders page_size
EXCEPTIONS_LIMIT = 100  # ListShipmentExceptions limit
REPLENISHMENT_WINDOW_DAYS = 14.0  # SuggestReplenishment window_days
LEAD_TIME_DAYS = 7.0  # replenishment lead time of a sku without a policy


@dataclass
class Config:
    listen: str = "127.0.0.1:50051"
    redis_url: str = ""  # empty: start an embedded redis-server
    data_dir: str = "var/redis"  # embedded redis data (AOF) directory
    # When the embedded Redis fsyncs its AOF: "always" before each reply (no acknowledged
    # write is lost, even on power loss), "everysec" once a second (up to 1 s can be lost).
    # "always" costs nothing measurable here: intake writes one script call per warehouse group
    # and the AOF fsync overlaps the next call's Python work (benchmarks/bench_fsync.py: batch
    # 4,067 vs 4,033 orders/s, unary 743 vs 636, medians of 3 alternating rounds).
    fsync: str = "always"
    # --redis-url names any node of a Redis Cluster (README "Redis Cluster")
    # (a switch, like option(switch=True), which is defined below this class)
    redis_cluster: bool = field(default=False, metadata={
        "switch": True, "help": "--redis-url is a node of a Redis Cluster"})
    # > 0: start a private cluster of N masters (R replicas each) in --data-dir instead of the
    # single embedded redis-server
    embedded_cluster: int = 0
    embedded_replicas: int = 0
    # > 0: each write batch waits (Redis WAIT, per node it touched) until this many replicas
    # have it, so a master's failover loses no acknowledged write; Redis Cluster only
    replica_acks: int = 0
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
    # Unary PlaceOrder / PlaceOrders coalescing (server/coalescer.py): while orders keep
    # arriving during batches, a small batch waits up to this long for more (0 = never)
    coalesce_wait_ms: float = 2.0
    max_watchers: int = 1000  # open WatchOrderEvents streams per process (server/events_hub.py)
    replan_attempts: int = 8
    grace_ms: int = 30_000  # recovery sweep leaves younger in-flight reservations alone
    # The periodic sweep (server/jobs/sweeper.py): every sweep_interval_s (0 = off) it releases
    # reservations without an order older than orphan_grace_ms (longer than a write phase).
    sweep_interval_s: float = 15.0
    orphan_grace_ms: int = 10_000
    # An idempotency claim's owner has this long to place its order before a retry takes over.
    claim_lease_s: float = 10.0
    wave_time_budget_s: float = WAVE_TIME_BUDGET_S
    promise_days: int = 5  # delivery date promised at intake (calendar days)
    risk_hold_score: int = 60  # fraud rules: orders scoring this or more go ON_HOLD for review
    boxes_file: str = ""  # JSON box catalogue for packing; empty = built-in catalogue
    label_dir: str = "var/labels"  # where shipping label PDFs are written
    followup_delay_s: float = 3 * 86400  # review request this long after delivery
    return_window_days: float = 30
    metrics_port: int = 0  # Prometheus /metrics; 0 = off
    # where /metrics listens: HOST:PORT; empty = the --listen host and --metrics-port
    metrics_listen: str = ""
    log_level: str = "INFO"
    # ---- security (README "Security", server/auth/) ----
    # "off" only for experiments on a loopback address: every caller may do everything
    auth: str = "on"
    # an admin key for this server: a full oms_<id>_<secret> or any secret of 32+ characters
    admin_key: str = ""
    # without --admin-key and with no key stored, the first start writes a new admin key here
    admin_key_file: str = "var/admin.key"
    # the HMAC key of stored key hashes: OMS_AUTH_PEPPER, else this file (created 0600); every
    # server on one Redis needs the same one
    auth_pepper: str = ""
    auth_pepper_file: str = "var/auth.pepper"
    key_cache_s: float = 2.0  # stored keys are re-read after this long (revocation delay)
    tls_cert: str = ""  # PEM certificate chain: serve TLS (with tls_key)
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA: require client certificates signed by it (mTLS)
    # mTLS principals: "CN=scope+scope,CN=scope", e.g. "oms-wave=fulfillment+orders:read"
    mtls_principal: str = ""

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca and not self.tls_cert:
            raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mTLS is TLS)")
        if self.mtls_principal and not self.tls_client_ca:
            raise ConfigError("--mtls-principal needs --tls-client-ca")
        if self.embedded_cluster and self.redis_url:
            raise ConfigError("--embedded-cluster starts its own cluster: leave out --redis-url")
        if self.embedded_replicas and not self.embedded_cluster:
            raise ConfigError("--embedded-replicas needs --embedded-cluster")
        if self.replica_acks and not (self.redis_cluster or self.embedded_cluster):
            raise ConfigError("--replica-acks needs --redis-cluster or --embedded-cluster "
                              "(a single Redis's replicas are not supported)")
        if self.embedded_cluster and self.replica_acks > self.embedded_replicas:
            raise ConfigError(f"--replica-acks {self.replica_acks} needs at least as many "
                              f"--embedded-replicas (has {self.embedded_replicas})")
        if self.auth == "off" and not is_loopback(self.listen):
            raise ConfigError(f"--auth off is refused on {self.listen}: it is for a loopback "
                              "address only (127.0.0.1, ::1, localhost, unix:)")

    @classmethod
    def from_args(cls, argv: list[str] | None = None, prog: str = "oms-server") -> "Config":
        """Flags win over ``OMS_*`` variables, which win over the defaults. Every value given is
        checked (``RULES``); a bad one raises ConfigError naming the flag or the variable."""
        return parse_config(cls, argv, prog, "Order management gRPC server")


# ---- checking ---------------------------------------------------------------------------
# A bad value is refused at startup with one line naming the flag (or variable), the value and
# the accepted range: never a traceback, and never a server that fails on its first request.

class ConfigError(ValueError):
    """A bad flag or ``OMS_*`` value. The message is one line: ``--flag: value must be ...``."""


Rule = Callable[[object], "str | None"]  # the problem with a converted value, None when good
_C = TypeVar("_C")


class ArgParser(argparse.ArgumentParser):
    """argparse raising ConfigError (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message.replace("\n", " ").removeprefix("argument "))


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_of(name: str) -> str:
    return "OMS_" + name.upper()


def between(lo: float, hi: float) -> Rule:
    def rule(v: object) -> str | None:
        return None if lo <= v <= hi else f"must be in {lo:g}..{hi:g}"  # type: ignore[operator]
    return rule


def positive_up_to(hi: float) -> Rule:
    def rule(v: object) -> str | None:
        return None if 0 < v <= hi else f"must be more than 0 and at most {hi:g}"  # type: ignore[operator]
    return rule


def one_of(*choices: str) -> Rule:
    def rule(v: object) -> str | None:
        return None if v in choices else "must be one of " + ", ".join(choices)
    return rule


def non_empty(v: object) -> str | None:
    return None if v else "must not be empty"


def _listen(v: object) -> str | None:
    s = str(v)
    if s.startswith("unix:") and len(s) > 5:
        return None
    m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})", s)
    if m and int(m.group(2)) <= 65535:
        return None
    return "must be HOST:PORT (port 0..65535) or unix:PATH"


def _redis_url(v: object) -> str | None:
    s = str(v)
    if not s or re.match(r"(redis|rediss|unix)://.", s):
        return None
    return "must be empty (embedded Redis) or a redis://, rediss:// or unix:// URL"


def is_loopback(listen: str) -> bool:
    """Whether a --listen address is reachable from this machine only."""
    if listen.startswith("unix:"):
        return True
    host = listen.rsplit(":", 1)[0].strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def _admin_key(v: object) -> str | None:
    s = str(v)
    if not s or (32 <= len(s) <= 256 and s.isascii() and s.isprintable() and " " not in s):
        return None
    return "must be an oms_<id>_<secret> key or a secret of 32..256 printable ASCII characters"


def _pepper(v: object) -> str | None:
    s = str(v)
    return None if not s or len(s) >= 16 else "must be at least 16 characters"


_MTLS_ENTRY = re.compile(r"[^=,]{1,64}=[a-z:]+([+|][a-z:]+)*")


def _mtls(v: object) -> str | None:
    s = str(v)
    if not s or all(_MTLS_ENTRY.fullmatch(e.strip()) for e in s.split(",")):
        return None
    return "must be CN=scope+scope,CN=scope,..."


def _file_or_empty(v: object) -> str | None:
    return None if not v or os.path.isfile(str(v)) else "is not a readable file"


DAY = 86_400
RULES: dict[str, Rule] = {
    "listen": _listen,
    "redis_url": _redis_url,
    "data_dir": non_empty,
    "fsync": one_of("always", "everysec"),
    "embedded_cluster": between(0, 64),
    "embedded_replicas": between(0, 5),
    "replica_acks": between(0, 5),
    "fraud_hold_seconds": between(0, 365 * DAY),
    "workers": between(1, 256),
    "redis_nice": between(-20, 19),
    "idempotency_ttl_s": between(1, 365 * DAY),
    "events_maxlen": between(1, 10**9),
    "max_batch": between(1, 10_000),
    "coalesce_wait_ms": between(0, 50),
    "max_watchers": between(1, 1_000_000),
    "replan_attempts": between(0, 100),
    "grace_ms": between(0, DAY * 1000),
    "sweep_interval_s": between(0, DAY),
    "orphan_grace_ms": between(0, DAY * 1000),
    "claim_lease_s": positive_up_to(3600),
    "wave_time_budget_s": positive_up_to(600),
    "promise_days": between(0, 365),
    "risk_hold_score": between(0, 100),
    "boxes_file": _file_or_empty,
    "label_dir": non_empty,
    "followup_delay_s": between(0, 365 * DAY),
    "return_window_days": between(0, 3650),
    "metrics_port": between(0, 65535),
    "log_level": one_of("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    "metrics_listen": lambda v: None if not v else _listen(v),
    "auth": one_of("on", "off"),
    "admin_key": _admin_key,
    "admin_key_file": non_empty,
    "auth_pepper": _pepper,
    "auth_pepper_file": non_empty,
    "key_cache_s": between(0, 5),
    "tls_cert": _file_or_empty,
    "tls_key": _file_or_empty,
    "tls_client_ca": _file_or_empty,
    "mtls_principal": _mtls,
}
SECRETS = frozenset({"admin_key", "auth_pepper", "api_key"})  # never echoed in an error
_NORMALIZE: dict[str, Callable[[str], str]] = {"log_level": str.upper, "auth": str.lower}

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _shown(raw: str) -> str:
    """The bad value as the message shows it: as typed when short and printable."""
    if raw.isprintable() and 0 < len(raw) <= 40:
        return raw
    return repr(raw[:40]) + ("..." if len(raw) > 40 else "")


def _convert(raw: str, kind: type) -> tuple[object, str | None]:
    if kind is bool:
        low = raw.strip().lower()
        return (low in _TRUE), (None if low in _TRUE + _FALSE else "must be true or false")
    if kind is int:
        if not _INT.fullmatch(raw):
            return None, "is not an integer"
        v = int(raw)
        return v, None if -(2**63) <= v < 2**63 else "is out of range"
    if kind is float:
        if not _FLOAT.fullmatch(raw):
            return None, "is not a number"
        v = float(raw)
        return v, None if math.isfinite(v) else "is out of range"
    if not raw.isprintable() or len(raw) > 4096:
        return None, "must be printable and at most 4096 characters"
    return raw, None


def check_value(name: str, raw: str, source: str, default: object, rule: Rule | None = None) -> object:
    """``raw`` (from ``source``: a flag or variable name) converted to the type of ``default``
    and checked by ``rule``; ConfigError when it is not good."""
    raw = _NORMALIZE.get(name, str)(raw)
    value, problem = _convert(raw, type(default))
    if problem is None and rule is not None:
        problem = rule(value)
    if problem is not None:
        shown = "(the value, not shown: a secret)" if name in SECRETS else _shown(raw)
        raise ConfigError(f"{source}: {shown} {problem}")
    return value


def resolve(ns: argparse.Namespace, name: str, default: object, rule: Rule | None = None,
            env: str | None = None) -> object:
    """Option ``name``: its flag (parsed as a string into ``ns``), else its environment
    variable (``env``, by default ``OMS_<NAME>``; "" for none), else ``default`` (trusted);
    checked."""
    env = env_of(name) if env is None else env
    raw = getattr(ns, name)
    if raw is not None:
        return check_value(name, raw, flag_of(name), default, rule)
    if env and env in os.environ:
        return check_value(name, os.environ[env], env, default, rule)
    return default


# ---- declaring a config -----------------------------------------------------------------
# Every entry point (oms-server, oms-notify, oms-wave) declares one dataclass; parse_config
# builds it from flags and variables the same way. A field without option() metadata gets
# flag --name, variable OMS_NAME and the rule RULES[name] (Config's fields are all like that);
# option() overrides the variable (or "" for none), the rule, the help, or makes a switch.

_MISSING = object()


def option(default: object = _MISSING, *, factory: Callable[[], object] | None = None,
           rule: Rule | None = None, env: str | None = None, help: str = "",  # noqa: A002
           switch: bool = False) -> Any:
    """A config field. ``switch``: a flag without a value (``store_true``), its variable read as
    a yes/no word (anything else is no, as before the common mechanism)."""
    meta = {"rule": rule, "env": env, "help": help, "switch": switch}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=False if switch and default is _MISSING else default, metadata=meta)


def _default(f: Field[Any]) -> object:
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def parse_config(cls: type[_C], argv: list[str] | None, prog: str, description: str = "") -> _C:
    """An instance of the dataclass ``cls``: flags win over variables, which win over the
    defaults; every value given is checked, a bad one raises ConfigError (one line naming the
    flag or the variable). A ``__post_init__`` may raise ConfigError for combinations."""
    parser = ArgParser(prog=prog, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in fields(cls):  # type: ignore[arg-type]
        m = f.metadata
        env = env_of(f.name) if m.get("env") is None else m["env"]
        where = ", ".join(x for x in ((f"env {env}" if env else ""),
                                      ("" if m.get("switch") else f"default {_default(f)!r}")) if x)
        text = " ".join(x for x in (m.get("help", ""), f"({where})" if where else "") if x)
        if m.get("switch"):
            parser.add_argument(flag_of(f.name), action="store_true", default=None, help=text)
        else:
            parser.add_argument(flag_of(f.name), default=None, metavar=f.name.upper(), help=text)
    ns = parser.parse_args(argv)
    values: dict[str, object] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        m = f.metadata
        env = env_of(f.name) if m.get("env") is None else m["env"]
        if m.get("switch"):
            values[f.name] = bool(getattr(ns, f.name)) or (
                bool(env) and os.environ.get(env, "").strip().lower() in _TRUE) or _default(f)
        else:
            rule = m.get("rule") or RULES.get(f.name)
            values[f.name] = resolve(ns, f.name, _default(f), rule, env=env)
    return cls(**values)
