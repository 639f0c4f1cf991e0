"""Store area: idempotency claims (claim, finish, resolve a key held by another request).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from oms.engine.errors import ConflictError, quote
from oms.server.redis import keys, scripts
from oms.server.redis.base import StoreBase, now_ms
from oms.server.redis.records import _s
from oms.server.redis.resp_pipeline import RawPipeline

PENDING = "pending:"


TAKEOVER = "takeover"  # claim_keys: claimed from an owner whose lease ended (an order may exist)


def _lease_end(claim: str) -> int:
    """Lease end (ms) of a ``pending:<token>:<ms>`` claim; 0 (ended) for one without."""
    tail = claim.rsplit(":", 1)[-1]
    return int(tail) if claim.count(":") >= 2 and tail.isdigit() else 0


class ClaimOps(StoreBase):
    """Idempotency-key claims and their resolution to order ids."""

    def _claim_hashes(self, digest: str, period: int | None = None) -> tuple[str, str]:
        if period is None:
            period = int(time.time()) // self.idempotency_ttl_s
        return keys.idem_claims(digest, period), keys.idem_claims(digest, period - 1)

    async def _claims_call(self, mode: str, per_bucket: dict[tuple[str, str], list[str]]
                           ) -> dict[tuple[str, str], list[bytes]]:
        order = list(per_bucket)
        def build(p: RawPipeline) -> None:
            for hashes in order:
                scripts.CLAIM_KEYS.add_to(p, list(hashes),
                         [mode, self._claim_life_s, *per_bucket[hashes]])

        raw = await self._exec(build)
        return dict(zip(order, raw))

    async def claim_keys(self, idem_keys: Sequence[str], token: str,
                         lease_s: float | None = None) -> list[str | None]:
        """Claim each key for ``lease_s`` (default ``claim_lease_s``). None where this call now
        owns the key, TAKEOVER where it owns it after the previous owner's lease ended (look
        for that owner's order before placing one), else the value already there: an order
        id, or ``pending:...`` while a live owner is placing it."""
        if not idem_keys:
            return []
        where, per_bucket = self._claim_plan(idem_keys, token, lease_s)
        return self._claim_answers(where, await self._claims_call("claim", per_bucket))

    def _claim_plan(self, idem_keys: Sequence[str], token: str, lease_s: float | None = None
                    ) -> tuple[list[tuple[str, str]], dict[tuple[str, str], list[str]]]:
        """CLAIM_KEYS' calls for ``claim_keys``: each key's bucket, and the arguments per
        bucket (one call each)."""
        now = now_ms()
        lease_ms = int((self.claim_lease_s if lease_s is None else lease_s) * 1000)
        value = f"{PENDING}{token}:{now + lease_ms}"
        # one period for the whole call (a boundary passing mid-call must not split it), and
        # the bucket hashes computed once per key
        period = int(time.time()) // self.idempotency_ttl_s
        digests = [keys.digest(k) for k in idem_keys]
        where = [self._claim_hashes(d, period) for d in digests]
        per_bucket: dict[tuple[str, str], list[str]] = {}
        for h, d in zip(where, digests):
            per_bucket.setdefault(h, [value, now]).append(d)
        return where, per_bucket

    def _add_claims(self, p: RawPipeline, per_bucket: dict[tuple[str, str], list[str]]) -> None:
        for hashes, args in per_bucket.items():
            scripts.CLAIM_KEYS.add_to(p, list(hashes), ["claim", self._claim_life_s, *args])

    @staticmethod
    def _claim_answers(where: list[tuple[str, str]],
                       answers: dict[tuple[str, str], list[bytes]]) -> list[str | None]:
        pos = {h: 0 for h in answers}
        out: list[str | None] = []
        for h in where:
            v = answers[h][pos[h]]
            pos[h] += 1
            out.append(_s(v) or None)
        return out

    async def finish_keys(self, done: Sequence[tuple[str, str]], dropped: Sequence[str],
                          token: str = "") -> None:
        """Record the order id of each ``done`` key, drop the ``dropped`` claims. With the
        owner's ``token``, only claims still pending for that owner change."""
        per_bucket: dict[tuple[str, str], list[str]] = {}
        for k, oid in [*done, *((k, "") for k in dropped)]:
            d = keys.digest(k)
            per_bucket.setdefault(self._claim_hashes(d), [token]).extend((d, oid))
        if per_bucket:
            await self._claims_call("finish", per_bucket)

    async def _claim_value(self, idem_key: str) -> str | None:
        d = keys.digest(idem_key)
        cur, prev = self._claim_hashes(d)
        async with self.r.pipeline(transaction=False) as p:
            p.hget(cur, d)
            p.hget(prev, d)
            a, b = await p.execute()
        v = a if a is not None else b
        return None if v is None else _s(v)

    async def resolve_claim(self, idem_key: str) -> str:
        """The order id of a key claimed by another request, waiting while a live owner is
        within its lease; "" when the claim is gone (its request failed) or its lease ended
        with no order behind it: the caller then makes a fresh attempt. Never waits much
        longer than one lease."""
        deadline = time.monotonic() + self.claim_lease_s + 1.0
        delay = 0.002
        while True:
            v = await self._claim_value(idem_key)
            if v is not None and not v.startswith(PENDING):
                return v
            if v is None:
                return ""
            found = await self._idem_in_shards(idem_key)
            if found:
                await self.finish_keys([(idem_key, found)], [])
                return found
            if _lease_end(v) <= now_ms():
                return ""
            if time.monotonic() > deadline:  # an owner whose clock runs ahead of ours
                raise ConflictError(f"a request with idempotency_key {quote(idem_key)} is still "
                                    "in progress; retry")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def idem_order(self, idem_key: str) -> str:
        """The id of the order placed with ``idem_key`` (the shards' mappings), or ""."""
        return await self._idem_in_shards(idem_key)

    async def _idem_in_shards(self, idem_key: str) -> str:
        digest = keys.digest(idem_key)
        ks = [keys.Shard(w.id).idem(digest) for w in await self.warehouses()]
        if not ks:
            return ""
        # the lean pipeline: on Redis Cluster it follows ASK/TRYAGAIN of a shard whose slot is
        # migrating (a takeover's lookup while PLACE_ORDERS waits for that slot), per slot
        (raw,) = await self._exec(lambda p: p.mget(ks))
        return next((_s(v) for v in raw if v is not None), "")
