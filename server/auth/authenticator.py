"""From a call's credentials to a Principal, and whether it may call a method.

Credentials, in this order: ``authorization: Bearer <key>`` metadata (an ``oms_…`` API key, or
a static key given to the server), else the subject CN of a verified client certificate (mTLS)
mapped to a configured principal. Stored keys are read from Redis on first use and then cached
for ``cache_s`` (at most 5 s): a revocation reaches every process within that time, and the
hot path makes no Redis round trip for auth.
"""
from __future__ import annotations

import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from oms.engine.errors import PermissionDeniedError, RateLimitedError, UnauthenticatedError
from oms.server.auth import api_keys
from oms.server.auth.api_keys import ApiKeyRecord, RateLimiter
from oms.server.auth.principal import Principal
from oms.server.auth.scopes import ANY_KEY, scope_for

MAX_CACHE_S = 5.0


class KeyStore(Protocol):
    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...


@dataclass(frozen=True)
class StaticKey:
    """A key given to the server on its command line (``--admin-key``): not stored."""
    token: str
    principal: Principal


def static_admin_key(token: str) -> StaticKey:
    """The ``--admin-key`` value: a full ``oms_<id>_<secret>`` (actor = its key id) or any
    secret of 32+ characters (actor "admin-key")."""
    parsed = api_keys.parse_key(token)
    actor = parsed.key_id if parsed else "admin-key"
    return StaticKey(token, Principal(actor=actor, scopes=frozenset({"admin"}),
                                      key_id=parsed.key_id if parsed else ""))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Authenticator:
    def __init__(self, store: KeyStore, pepper: bytes, *, static_keys: Iterable[StaticKey] = (),
                 mtls_principals: dict[str, Principal] | None = None, cache_s: float = 2.0,
                 max_cache: int = 10_000) -> None:
        if not 0 <= cache_s <= MAX_CACHE_S:
            raise ValueError(f"cache_s must be in 0..{MAX_CACHE_S:g}")
        self.store = store
        self.pepper = pepper
        self.static_keys = tuple(static_keys)
        self.mtls = dict(mtls_principals or {})
        self.cache_s = cache_s
        self.max_cache = max_cache
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self.limiter = RateLimiter()

    # ---- who -------------------------------------------------------------------------------
    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None,
                           peer_cns: Iterable[str] = ()) -> Principal:
        """The caller; UnauthenticatedError when there are no valid credentials."""
        token = bearer_token(metadata)
        if token is not None:
            return await self._by_token(token)
        for cn in peer_cns:
            p = self.mtls.get(cn)
            if p is not None:
                return p
            raise UnauthenticatedError(
                f"client certificate CN={cn[:64]!r} is not a configured principal "
                "(--mtls-principal) and no API key was sent")
        raise UnauthenticatedError(
            "no credentials: send metadata 'authorization: Bearer <api key>'")

    async def _by_token(self, token: str) -> Principal:
        for s in self.static_keys:
            if hmac.compare_digest(s.token.encode(), token.encode()):
                return s.principal
        parsed = api_keys.parse_key(token)
        if parsed is None:
            raise UnauthenticatedError("the bearer value is not an API key (oms_<key_id>_<secret>)")
        rec = await self._record(parsed.key_id)
        if rec is None or not api_keys.secret_matches(self.pepper, parsed.secret, rec.secret_hash):
            raise UnauthenticatedError(f"unknown API key {parsed.key_id}")
        if rec.revoked:
            raise UnauthenticatedError(f"API key {rec.key_id} is revoked")
        if rec.expired(_now_ms()):
            raise UnauthenticatedError(f"API key {rec.key_id} expired")
        return Principal(actor=rec.key_id, scopes=frozenset(rec.scopes),
                         channels=frozenset(rec.channels), key_id=rec.key_id,
                         rate_limit_per_s=rec.rate_limit_per_s)

    async def _record(self, key_id: str) -> ApiKeyRecord | None:
        now = time.monotonic()
        hit = self._cache.get(key_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        rec = await self.store.get_api_key(key_id)
        if self.cache_s > 0 and rec is not None:  # unknown ids are not cached: no growth
            if len(self._cache) >= self.max_cache:
                self._cache.clear()
            self._cache[key_id] = (now + self.cache_s, rec)
        return rec

    def forget(self, key_id: str) -> None:
        """Drop a cached key (this process revoked it: no need to wait for the cache)."""
        self._cache.pop(key_id, None)

    # ---- may they ----------------------------------------------------------------------------
    def authorize(self, principal: Principal, method: str, *, count: bool = True) -> None:
        """PermissionDeniedError naming the scope ``method`` needs when ``principal`` lacks it;
        RateLimitedError when its key is over its rate limit. ``count`` False: an open stream's
        re-check, which is not a new call (the limit counts calls)."""
        scope = scope_for(method)
        if scope is None:
            raise PermissionDeniedError(f"{method[:120]} is not open to any API key")
        if scope != ANY_KEY and not principal.has_scope(scope):
            raise PermissionDeniedError(
                f"API key {principal.actor} lacks the scope {scope!r} that {method} needs")
        rate = principal.rate_limit_per_s
        if rate > 0 and count:
            wait = self.limiter.take(principal.key_id or principal.actor, rate)
            if wait > 0:
                raise RateLimitedError(
                    f"API key {principal.key_id} is over its rate limit of {rate:g} requests/s; "
                    f"retry in {wait:.3f} s", wait)


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The value of ``authorization: Bearer <token>``; None when there is no such header.
    A malformed one is UnauthenticatedError (never silently ignored)."""
    for k, v in metadata or ():
        if k != "authorization":
            continue
        value = v.decode("latin-1") if isinstance(v, bytes) else v
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthenticatedError("the authorization metadata must be 'Bearer <api key>'")
        if len(token) > api_keys.MAX_TOKEN or not token.isascii() or not token.isprintable():
            raise UnauthenticatedError("the bearer value is not an API key")
        return token
    return None
