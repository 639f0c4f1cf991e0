"""Reading the shard event streams (``oms:{w:W}:events``): event ids, merged reads over every
shard, bounded catch-up reads, and the connection of the event hub's tailer.

An event id is ``<ms>-<seq>@<warehouse>``: the Redis stream id (two unsigned 64-bit numbers)
and the shard it lives in. Reads over several shards come back merged in id (time) order and
never past the last id of a stream whose read was cut at ``count`` (it may hold older events
not read yet), so resuming after any delivered event id skips nothing.

Each shard stream is read by its own XREAD (the streams live in different hash slots, on Redis
Cluster on different nodes), all of a round in one pipeline (on a cluster, one per node), and
the replies are merged here. Reads never block: a blocking read of several streams would need
one multi-key XREAD (not possible on a cluster) or one connection per stream (grows with the
warehouses). A read that finds nothing polls again after ``POLL_MS`` until its ``block_ms``
is spent, so a new event reaches the tailer within about ``POLL_MS`` plus one round trip.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import redis.asyncio as aioredis

from oms.engine.models import OrderEvent, Warehouse
from oms.server.redis import keys

U64_MAX = 2**64 - 1
# ASCII digits only (``\d`` and ``int()`` also take "²", "١" or "1_0"); 20 digits hold 2^64 - 1,
# the range is checked after. The warehouse part is checked with keys.ID_RE.
_EVENT_ID_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})@(.{1,64})", re.ASCII | re.DOTALL)
EVENT_ID_FORMAT = "<ms>-<seq>@<warehouse>, each number below 2^64"
POLL_MS = 25  # an idle reader's pause between two rounds of reads


def parse_event_id(text: str) -> tuple[str, str]:
    """(stream id, warehouse id) of an event id, the stream id in canonical form (no leading
    zeros). ValueError if ``text`` is not an event id."""
    m = _EVENT_ID_RE.fullmatch(text)
    if m is None or keys.ID_RE.fullmatch(m[3]) is None:
        raise ValueError(f"not an event id ({EVENT_ID_FORMAT})")
    ms, seq = int(m[1]), int(m[2])
    if ms > U64_MAX or seq > U64_MAX:
        raise ValueError(f"stream id out of range ({EVENT_ID_FORMAT})")
    return f"{ms}-{seq}", m[3]


def sid_key(stream_id: str) -> tuple[int, int]:
    """Sort key of a stream id ``<ms>-<seq>`` as Redis gives it out."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _merge(raw: Any, cursor: dict[str, str], count: int,
           upto: Mapping[str, str] | None) -> tuple[list[OrderEvent], bool]:
    """The events of an XREAD reply in id order, cut at the horizon (the smallest last id of
    a stream that returned ``count`` entries); advances ``cursor`` over what is delivered.
    Entries past ``upto[warehouse]`` are left out (that stream is then read to its bound).
    Also returns whether nothing was cut at a horizon."""
    out: list[tuple[tuple[int, int], str, str, OrderEvent]] = []
    horizon: tuple[int, int] | None = None
    for stream, entries in raw or []:
        key = _s(stream)
        wid = key[len(keys.PREFIX) + 3: key.index("}")]
        end = sid_key(upto[wid]) if upto is not None else None
        past_end = False
        for eid, f in entries:
            sid = _s(eid)
            pos = sid_key(sid)
            if end is not None and pos > end:
                past_end = True
                break
            out.append((pos, wid, sid, OrderEvent(
                event_id=f"{sid}@{wid}", order_id=_s(f[b"o"]), type=_s(f[b"t"]),
                status=int(f[b"s"]), at_ms=pos[0], detail=_s(f.get(b"d", b"")),
                channel=_s(f.get(b"c", b"")), actor=_s(f.get(b"a", b"")))))
        if not past_end and len(entries) >= count:
            last = sid_key(_s(entries[-1][0]))
            horizon = last if horizon is None or last < horizon else horizon
    out.sort(key=lambda t: (t[0], t[1]))
    delivered = []
    for pos, wid, sid, ev in out:
        if horizon is not None and pos > horizon:
            break
        cursor[wid] = sid
        delivered.append(ev)
    return delivered, horizon is None


async def read(r: aioredis.Redis, warehouses: list[Warehouse], cursor: dict[str, str],
               block_ms: int, count: int = 500) -> list[OrderEvent]:
    """XREAD of every warehouse's stream from ``cursor`` (warehouse -> stream id), waiting
    up to ``block_ms`` (0: not at all) for an event; advances the cursor."""
    # A warehouse that appeared after the cursor was made: all its events are new.
    streams = {keys.Shard(w.id).events: cursor.setdefault(w.id, "0-0") for w in warehouses}
    if not streams:
        if block_ms:
            await asyncio.sleep(block_ms / 1000)
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + block_ms / 1000
    while True:
        raw = await _xread_each(r, streams, count)
        if raw or loop.time() >= deadline:
            return _merge(raw, cursor, count, None)[0]
        await asyncio.sleep(min(POLL_MS / 1000, max(0.0, deadline - loop.time())))


async def read_upto(r: aioredis.Redis, cursor: dict[str, str], upto: Mapping[str, str],
                    count: int = 500) -> tuple[list[OrderEvent], bool]:
    """One page of the events after ``cursor[w]`` (absent: the start) up to and including
    ``upto[w]``, for the shards in ``upto``, without blocking; advances the cursor. The flag
    says the page reached every bound (no further page is needed)."""
    streams = {}
    for wid, end in upto.items():
        start = cursor.get(wid, "0-0")
        if sid_key(start) < sid_key(end):
            streams[keys.Shard(wid).events] = start
    if not streams:
        return [], True
    return _merge(await _xread_each(r, streams, count), cursor, count, upto)


async def _xread_each(r: aioredis.Redis | aioredis.RedisCluster, streams: Mapping[str, str],
                      count: int) -> list[tuple[Any, Any]]:
    """One non-blocking XREAD per stream, in one pipeline; the replies in XREAD's multi-stream
    shape ([stream, entries] for each stream that had any)."""
    async with r.pipeline(transaction=False) as p:
        for key, start in streams.items():
            p.xread({key: start}, count=count)
        replies = await p.execute()
    raw: list[tuple[Any, Any]] = []
    for reply in replies:
        if isinstance(reply, dict):  # RESP3 shape
            raw.extend(reply.items())
        elif reply:
            raw.extend(reply)
    return raw


class EventTail:
    """The event hub tailer's reader of every shard stream. On a single Redis it reads on a
    connection of its own, outside the request pool, so a burst of requests waiting for
    pooled connections does not delay the events; on a cluster it uses the store's client
    (its reads never block, and it has a pool per node)."""

    def __init__(self, client: aioredis.Redis | aioredis.RedisCluster,
                 warehouses: Callable[[], Awaitable[list[Warehouse]]]) -> None:
        self._pool: aioredis.ConnectionPool | None = None
        self._r = client
        if not isinstance(client, aioredis.RedisCluster):
            shared = client.connection_pool
            self._pool = aioredis.ConnectionPool(connection_class=shared.connection_class,
                                                 max_connections=1, **shared.connection_kwargs)
            # the same client class as the store's (it maps "Redis down" to the domain error)
            self._r = type(client)(connection_pool=self._pool)
        self._warehouses = warehouses

    async def read(self, cursor: dict[str, str], block_ms: int, count: int = 500
                   ) -> list[OrderEvent]:
        """Events after ``cursor`` on every current warehouse (re-listed each call, cached by
        the store for a second, so new shards are picked up)."""
        return await read(self._r, await self._warehouses(), cursor, block_ms, count)

    async def aclose(self) -> None:
        if self._pool is not None:  # else the store's client, closed with the store
            await self._r.aclose()
            await self._pool.disconnect()
