"""API keys: the ``oms_<key_id>_<secret>`` format, the keyed hash that is stored instead of the
secret, the stored record, and a per-key rate limiter. No I/O here.

Only HMAC-SHA256(pepper, secret) is stored: a dump of Redis without the server's pepper (a
file or variable, never in Redis) gives nothing to call with, and the secret has 256 bits, so
one fast keyed hash is enough (no password stretching is needed for random secrets).
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass, field

from oms.server.auth.scopes import SCOPES

KEY_ID_RE = re.compile(r"[a-z0-9]{16}")
# token_urlsafe(32): 43 characters of [A-Za-z0-9_-]
_KEY_RE = re.compile(r"oms_([a-z0-9]{16})_([A-Za-z0-9_-]{32,128})")
MIN_STATIC_SECRET = 32
MAX_TOKEN = 256  # longer bearer values are refused before any work
NAME_MAX = 100
MAX_CHANNELS = 64
MAX_RATE = 1_000_000.0


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str


def parse_key(token: str) -> ParsedKey | None:
    """The parts of an ``oms_<key_id>_<secret>`` string; None when it is not one."""
    m = _KEY_RE.fullmatch(token)
    return ParsedKey(m.group(1), m.group(2)) if m else None


def format_key(key_id: str, secret: str) -> str:
    return f"oms_{key_id}_{secret}"


def new_key_id() -> str:
    return secrets.token_hex(8)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(pepper: bytes, secret: str) -> str:
    return hmac.new(pepper, secret.encode("ascii"), hashlib.sha256).hexdigest()


def secret_matches(pepper: bytes, secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of the secret's keyed hash with the stored one."""
    return hmac.compare_digest(hash_secret(pepper, secret).encode(), stored_hash.encode())


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key (everything but the secret)."""
    key_id: str
    secret_hash: str
    name: str
    scopes: tuple[str, ...]
    channels: tuple[str, ...] = ()
    created_at: int = 0  # unix ms
    created_by: str = ""
    expires_at: int = 0  # unix ms, 0 = never
    revoked: bool = False
    revoked_at: int = 0
    rate_limit_per_s: float = 0.0  # 0 = unlimited

    def expired(self, now_ms: int) -> bool:
        return bool(self.expires_at) and now_ms >= self.expires_at


def check_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """Problems with a requested scope list (empty when good)."""
    if not scopes:
        return ["at least one scope is needed"]
    return [f"unknown scope {s[:40]!r} (known: {', '.join(SCOPES)})"
            for s in scopes if s not in SCOPES]


@dataclass
class RateLimiter:
    """Token buckets per key id, in this process: ``rate`` requests a second with a burst of
    one second's worth. With ``--workers N`` each process counts for itself."""
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (tokens, t)

    def take(self, key_id: str, rate: float, now: float | None = None) -> float:
        """0.0 when the call may go ahead, else the seconds until it could."""
        if rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        burst = max(1.0, rate)
        tokens, t = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - t) * rate)
        if tokens >= 1.0:
            if len(self._buckets) >= self.max_keys and key_id not in self._buckets:
                self._buckets.clear()  # bounded; forgetting buckets only forgives callers
            self._buckets[key_id] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / rate
