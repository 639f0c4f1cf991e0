"""Stored API keys: one hash per key (``oms:{auth}:key:<id>``) and a sorted set of ids by
creation time, all in the ``{auth}`` slot. Only the keyed hash of a secret is stored."""
from __future__ import annotations

import orjson

from oms.server.auth.api_keys import ApiKeyRecord
from oms.server.redis import keys
from oms.server.redis.base import StoreBase, now_ms


def _encode(rec: ApiKeyRecord) -> dict[str, bytes]:
    return {
        "h": rec.secret_hash.encode(), "n": rec.name.encode(),
        "sc": orjson.dumps(list(rec.scopes)), "ch": orjson.dumps(list(rec.channels)),
        "ca": str(rec.created_at).encode(), "cb": rec.created_by.encode(),
        "ex": str(rec.expires_at).encode(), "rv": b"1" if rec.revoked else b"0",
        "rl": repr(float(rec.rate_limit_per_s)).encode(),
    }  # "ra" (revoked at) is written by the first revocation only


def _decode(key_id: str, h: dict[bytes, bytes]) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=key_id, secret_hash=h[b"h"].decode(), name=h[b"n"].decode(),
        scopes=tuple(orjson.loads(h[b"sc"])), channels=tuple(orjson.loads(h[b"ch"])),
        created_at=int(h[b"ca"]), created_by=h[b"cb"].decode(), expires_at=int(h[b"ex"]),
        revoked=h[b"rv"] == b"1", revoked_at=int(h.get(b"ra", b"0")),
        rate_limit_per_s=float(h[b"rl"]))


class ApiKeyOps(StoreBase):
    async def create_api_key(self, rec: ApiKeyRecord) -> None:
        """Store a new key. Key ids are random (64 bits): a clash is refused, never merged."""
        k = keys.api_key(rec.key_id)
        if not await self.r.hsetnx(k, "h", rec.secret_hash):
            raise ValueError(f"api key id {rec.key_id} exists")
        async with self.r.pipeline(transaction=True) as p:
            p.hset(k, mapping=_encode(rec))
            p.zadd(keys.API_KEYS, {rec.key_id: rec.created_at})
            await p.execute()

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        h = await self.r.hgetall(keys.api_key(key_id))
        return _decode(key_id, h) if h else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every stored key, newest first."""
        ids = [i.decode() for i in await self.r.zrevrange(keys.API_KEYS, 0, -1)]
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for i in ids:
                p.hgetall(keys.api_key(i))
            rows = await p.execute()
        return [_decode(i, h) for i, h in zip(ids, rows) if h]

    async def count_api_keys(self) -> int:
        return int(await self.r.zcard(keys.API_KEYS))

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """Mark a key revoked (kept for the record); None when there is no such key."""
        k = keys.api_key(key_id)
        if not await self.r.exists(k):
            return None
        async with self.r.pipeline(transaction=True) as p:
            p.hset(k, "rv", b"1")
            p.hsetnx(k, "ra", str(now_ms()))  # the first revocation's time is kept
            p.hgetall(k)
            *_, h = await p.execute()
        return _decode(key_id, h)
