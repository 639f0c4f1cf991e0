"""AdminService: API keys. The secret is returned by CreateApiKey only; the store keeps its
keyed hash (server/auth/api_keys.py)."""
from __future__ import annotations

import math
import time

import grpc

from oms.engine.errors import (FieldViolation, NotFoundError, PermissionDeniedError,
                               ValidationError)
from oms.server.auth import api_keys
from oms.server.auth.api_keys import ApiKeyRecord
from oms.server.auth.authenticator import Authenticator
from oms.server.auth.principal import current_actor, current_principal
from oms.server.errors import handle_errors
from oms.server.redis.store import Store
from oms.server.validation import CHANNEL_RE
from oms.v1 import admin_pb2, admin_pb2_grpc

MAX_EXPIRY_MS = 100 * 365 * 86_400_000  # a century from now


def encode_api_key(r: ApiKeyRecord) -> admin_pb2.ApiKey:
    return admin_pb2.ApiKey(key_id=r.key_id, name=r.name, scopes=list(r.scopes),
                            channels=list(r.channels), created_at=r.created_at,
                            created_by=r.created_by, expires_at=r.expires_at, revoked=r.revoked,
                            rate_limit_per_s=r.rate_limit_per_s, revoked_at=r.revoked_at)


def decode_create(req: admin_pb2.CreateApiKeyRequest, now_ms: int) -> tuple[str, list[str],
                                                                          list[str], int, float]:
    bad: list[FieldViolation] = []
    name = req.name.strip()
    if not name or len(name) > api_keys.NAME_MAX or not name.isprintable():
        bad.append(FieldViolation("name", f"must be 1..{api_keys.NAME_MAX} printable characters"))
    scopes = list(dict.fromkeys(req.scopes))
    bad += [FieldViolation("scopes", p) for p in api_keys.check_scopes(scopes)]
    channels = list(dict.fromkeys(req.channels))
    if len(channels) > api_keys.MAX_CHANNELS:
        bad.append(FieldViolation("channels", f"at most {api_keys.MAX_CHANNELS} channels"))
    bad += [FieldViolation(f"channels[{i}]", f"{c[:40]!r} is not a channel id")
            for i, c in enumerate(channels) if not CHANNEL_RE.fullmatch(c)]
    if req.expires_at and not now_ms < req.expires_at <= now_ms + MAX_EXPIRY_MS:
        bad.append(FieldViolation("expires_at", "must be 0 (never) or a unix ms time in the "
                                                "next 100 years"))
    rate = req.rate_limit_per_s
    if not math.isfinite(rate) or not 0 <= rate <= api_keys.MAX_RATE:
        bad.append(FieldViolation("rate_limit_per_s",
                                  f"must be 0 (unlimited) .. {api_keys.MAX_RATE:g}"))
    if bad:
        raise ValidationError(bad)
    return name, scopes, channels, req.expires_at, rate


def check_key_id(value: str) -> str:
    if not api_keys.KEY_ID_RE.fullmatch(value):
        raise ValidationError.one("key_id", f"{value[:40]!r} is not a key id (16 of [a-z0-9])")
    return value


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, store: Store, pepper: bytes, auth: Authenticator | None) -> None:
        self.store = store
        self.pepper = pepper
        self.auth = auth

    @handle_errors
    async def CreateApiKey(self, request: admin_pb2.CreateApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> admin_pb2.CreateApiKeyResponse:
        now = time.time_ns() // 1_000_000
        name, scopes, channels, expires_at, rate = decode_create(request, now)
        caller = current_principal()
        # A channel-bound caller cannot mint a key that escapes its binding.
        if caller.channel_bound and (not channels or not set(channels) <= caller.channels):
            raise PermissionDeniedError(
                f"API key {caller.actor} is bound to channels {sorted(caller.channels)}: the keys "
                "it creates must be bound to some of them")
        key_id, secret = api_keys.new_key_id(), api_keys.new_secret()
        rec = ApiKeyRecord(key_id=key_id, secret_hash=api_keys.hash_secret(self.pepper, secret),
                           name=name, scopes=tuple(scopes), channels=tuple(channels),
                           created_at=now, created_by=current_actor(), expires_at=expires_at,
                           rate_limit_per_s=rate)
        await self.store.create_api_key(rec)
        return admin_pb2.CreateApiKeyResponse(key_id=key_id, secret=secret,
                                              key=api_keys.format_key(key_id, secret),
                                              api_key=encode_api_key(rec))

    @handle_errors
    async def ListApiKeys(self, request: admin_pb2.ListApiKeysRequest,
                          context: grpc.aio.ServicerContext) -> admin_pb2.ListApiKeysResponse:
        return admin_pb2.ListApiKeysResponse(
            api_keys=[encode_api_key(r) for r in await self.store.list_api_keys()])

    @handle_errors
    async def WhoAmI(self, request: admin_pb2.WhoAmIRequest,
                     context: grpc.aio.ServicerContext) -> admin_pb2.WhoAmIResponse:
        p = current_principal()
        name = ""
        if p.key_id:
            rec = await self.store.get_api_key(p.key_id)
            name = rec.name if rec else ""
        return admin_pb2.WhoAmIResponse(actor=p.actor, key_id=p.key_id, name=name,
                                        scopes=sorted(p.scopes), channels=sorted(p.channels))

    @handle_errors
    async def RevokeApiKey(self, request: admin_pb2.RevokeApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> admin_pb2.ApiKey:
        rec = await self.store.revoke_api_key(check_key_id(request.key_id))
        if rec is None:
            raise NotFoundError("API key", request.key_id)
        if self.auth is not None:
            self.auth.forget(rec.key_id)  # this process at once; the others within key_cache_s
        return encode_api_key(rec)
