"""The notifier's Redis access: consumer groups over the shard event streams, and the
de-duplication claims of the e-mails it sends.

It takes the Store's client (``store.r``) so the notifier has one connection pool.

Delivery semantics
------------------
- **Reading is at-least-once.** Each shard stream ``oms:{w:W}:events`` has a consumer group
  (default ``notifier``). An event read with XREADGROUP stays in the group's pending list until
  it is acknowledged (XACK), which happens only after its e-mail was sent (or it was decided
  that no e-mail is due). A worker that dies, or an event whose send failed, leaves the entry
  pending; ``claim_stale`` (XAUTOCLAIM, Redis >= 6.2) hands entries idle longer than a threshold
  to a live consumer, so every event is processed at least once, possibly more than once.
- **Sending is at-most-once per de-duplication key.** Before it sends, the worker claims the
  e-mail's key with ``SET oms:{n:<sha1(key)>}:sent <consumer> <ms> NX EX ttl``. A second
  delivery of the same event (or a duplicate event of the same fact) finds the key taken and
  is acknowledged without sending. After a successful SMTP transaction the key is marked
  ``sent``; after a failed one it is deleted (``release_send``, compare-and-delete) and the event
  stays pending, so it is tried again later.
- **The gap:** if the worker dies after claiming a key and before the SMTP transaction
  completes (or before it could release the claim), that one e-mail is *lost*, not doubled:
  the claim survives (until its TTL) and the retry skips it. The key's value says which
  consumer claimed it and when, and whether it was ever marked ``sent``, so such losses can be
  found (``claimed ...`` values that never became ``sent ...``).
- Every message carries a deterministic ``Message-ID`` derived from the de-duplication key, so
  mail servers and clients that drop duplicate Message-IDs drop any duplicate too.
- The de-dupe TTL must outlast how long an event can stay pending (default 30 days).

Streams of different shards live in different hash slots (on Redis Cluster, on different
nodes): every command here names one stream. ``read`` sends one non-blocking XREADGROUP per
stream in one pipeline (on a cluster, one per node) and polls every ``POLL_MS`` until its
``block_ms`` is spent, instead of one blocking multi-stream XREADGROUP, which a cluster refuses.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from oms.server.redis import keys, scripts

POLL_MS = 50  # an idle read's pause between two rounds of XREADGROUP


class Delivery(NamedTuple):
    """One stream entry handed to this consumer: (warehouse_id, stream_id, fields). ``fields``
    is empty for an entry that was trimmed from the stream while it was pending."""

    warehouse_id: str
    stream_id: str
    fields: dict[str, str]


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


def _wid(stream_key: str) -> str:
    # "oms:{w:DSM}:events" -> "DSM"
    return stream_key[len(keys.PREFIX) + 3: stream_key.index("}")]


def _fields(raw: dict | None) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in (raw or {}).items()}


def _sort_key(d: Delivery) -> tuple[int, int, str]:
    ms, _, seq = d.stream_id.partition("-")
    return int(ms), int(seq or 0), d.warehouse_id


class Notifications:
    def __init__(self, client: aioredis.Redis, consumer: str) -> None:
        self.r = client
        self.consumer = consumer
        self._claims: dict[str, str] = {}  # dedupe key -> the value we SET (our claim token)

    # ---- consumer groups ------------------------------------------------------------------

    async def ensure_groups(self, warehouse_ids: Iterable[str], group: str,
                            start_id: str = "0") -> None:
        """XGROUP CREATE <stream> <group> <start_id> MKSTREAM for every shard; an existing
        group is left as it is (BUSYGROUP). ``start_id`` "0" (default) delivers every event
        still in the stream the first time; "$" only those appended from now on."""
        for wid in warehouse_ids:
            try:
                await self.r.xgroup_create(keys.Shard(wid).events, group, id=start_id,
                                           mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def read(self, group: str, consumer: str, warehouse_ids: Sequence[str], count: int = 100,
                   block_ms: int | None = None) -> list[Delivery]:
        """New entries (XREADGROUP ``>``) of every shard stream, up to ``count`` per stream,
        merged in id (time) order; waits up to ``block_ms`` (None or 0: not at all) for one."""
        if not warehouse_ids:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (block_ms or 0) / 1000
        while True:
            out = await self._read_each(group, consumer, warehouse_ids, count)
            if out or loop.time() >= deadline:
                return out
            await asyncio.sleep(min(POLL_MS / 1000, max(0.0, deadline - loop.time())))

    async def _read_each(self, group: str, consumer: str, warehouse_ids: Sequence[str],
                         count: int) -> list[Delivery]:
        async with self.r.pipeline(transaction=False) as p:
            for w in warehouse_ids:
                p.xreadgroup(group, consumer, {keys.Shard(w).events: ">"}, count=count)
            replies = await p.execute()
        out: list[Delivery] = []
        for raw in replies:
            if isinstance(raw, dict):  # RESP3 shape
                raw = list(raw.items())
            for stream, entries in raw or []:
                wid = _wid(_s(stream))
                for eid, f in entries:
                    out.append(Delivery(wid, _s(eid), _fields(f)))
        out.sort(key=_sort_key)
        return out

    async def claim_stale(self, group: str, consumer: str, warehouse_ids: Sequence[str],
                          min_idle_ms: int, count: int = 100, limit: int = 1000) -> list[Delivery]:
        """Take over entries pending in ``group`` for longer than ``min_idle_ms`` (a dead
        consumer's, or ones whose send failed) with XAUTOCLAIM, up to about ``limit`` in all.
        Entries deleted from the stream meanwhile come back with empty fields (Redis 6.2) or
        are dropped from the pending list by Redis itself (7.0+)."""
        out: list[Delivery] = []
        for wid in warehouse_ids:
            stream, start = keys.Shard(wid).events, "0-0"
            while len(out) < limit:
                res = await self.r.xautoclaim(stream, group, consumer, min_idle_ms,
                                              start_id=start, count=count)
                nxt, entries = _s(res[0]), res[1]
                for eid, f in entries:
                    if eid is not None:
                        out.append(Delivery(wid, _s(eid), _fields(f)))
                if nxt in ("0-0", "0") or nxt == start:
                    break
                start = nxt
        out.sort(key=_sort_key)
        return out

    async def ack(self, group: str, deliveries: Iterable[Delivery]) -> int:
        """XACK the given entries (one XACK per stream, one pipeline)."""
        by_stream: dict[str, list[str]] = {}
        for d in deliveries:
            by_stream.setdefault(keys.Shard(d.warehouse_id).events, []).append(d.stream_id)
        if not by_stream:
            return 0
        async with self.r.pipeline(transaction=False) as p:
            for stream, ids in by_stream.items():
                p.xack(stream, group, *ids)
            res = await p.execute()
        return sum(int(x) for x in res)

    async def pending_count(self, group: str, warehouse_ids: Sequence[str]) -> int:
        """Entries delivered to some consumer of ``group`` and not acknowledged yet."""
        n = 0
        for wid in warehouse_ids:
            try:
                info = await self.r.xpending(keys.Shard(wid).events, group)
            except ResponseError:  # no such stream/group
                continue
            n += int(info["pending"] if isinstance(info, dict) else info[0])
        return n

    async def prune_consumers(self, group: str, warehouse_ids: Sequence[str],
                              idle_ms: int = 86_400_000) -> int:
        """Delete consumers with nothing pending that were idle longer than ``idle_ms``:
        consumer names carry the pid, so restarts would otherwise pile them up."""
        n = 0
        for wid in warehouse_ids:
            stream = keys.Shard(wid).events
            try:
                consumers = await self.r.xinfo_consumers(stream, group)
            except ResponseError:
                continue
            for c in consumers:
                name = _s(c.get("name"))
                if (name != self.consumer and int(c.get("pending", 0)) == 0
                        and int(c.get("idle", 0)) > idle_ms):
                    await self.r.xgroup_delconsumer(stream, group, name)
                    n += 1
        return n

    # ---- de-duplication ---------------------------------------------------------------------

    async def claim_send(self, dedupe_key: str, ttl_s: int) -> bool:
        """Claim the right to send the e-mail named by ``dedupe_key`` (SET NX EX). False: it
        was sent already, or another attempt claimed it (and may have died doing so)."""
        token = f"claimed {self.consumer} {time.time_ns() // 1_000_000}"
        ok = await self.r.set(keys.notify_sent(dedupe_key), token, nx=True, ex=max(1, int(ttl_s)))
        if ok:
            self._claims[dedupe_key] = token
        return bool(ok)

    async def mark_sent(self, dedupe_key: str, ttl_s: int, note: str = "sent") -> bool:
        """Record that the claimed e-mail went out (``note`` "sent"), or was given up for good
        (e.g. "failed 550 ..."); keeps the claim for ``ttl_s``. False if the claim was no
        longer ours (it expired and was taken again)."""
        token = self._claims.pop(dedupe_key, None)
        if token is None:
            return False
        value = f"{note} {self.consumer} {time.time_ns() // 1_000_000}"
        return bool(await scripts.NOTIFY_MARK(self.r, keys=[keys.notify_sent(dedupe_key)],
                                              args=[token, value, max(1, int(ttl_s))]))

    async def release_send(self, dedupe_key: str) -> bool:
        """Give a claim back after a failed send, so a later retry can send (compare-and-
        delete: only our own claim is removed)."""
        token = self._claims.pop(dedupe_key, None)
        if token is None:
            return False
        return bool(await scripts.NOTIFY_RELEASE(self.r, keys=[keys.notify_sent(dedupe_key)],
                                                 args=[token]))

    async def send_state(self, dedupe_key: str) -> str:
        """The claim's value ("claimed|sent|failed <consumer> <ms>") or "" (for tests/ops)."""
        return _s(await self.r.get(keys.notify_sent(dedupe_key)))
