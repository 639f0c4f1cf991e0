"""Store area: sales channels (their records, webhook deliveries, rejected orders) and the
stock reads available-to-sell is computed from.

Keys (names in keys.py):
- ``oms:{ch}:channels``: set of channel ids; ``oms:{ch}:channel:<id>``: hash with ``doc`` (the
  public config, JSON), ``updated_at`` and the write-only secrets as separate fields (``ws``
  webhook secret, ``at`` access token, ``ck``/``cs`` consumer key/secret). An upsert HSETs only
  the secrets it was given, in the same command as the doc: one atomic write, and an upsert
  without secrets keeps the stored ones.
- ``oms:{c:<id>}:dlv:<sha1 of delivery id>``: a completed webhook delivery (its outcome), 24 h.
- ``oms:{c:<id>}:rejected`` (hash external id -> JSON) and ``oms:{c:<id>}:rejected:ix`` (zset by
  time): orders the channel sent that could not be taken, the newest REJECTED_KEPT kept.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from oms.engine.channels import Channel, ChannelKind, PushTarget
from oms.server.redis import keys
from oms.server.redis.base import StoreBase, now_ms

DELIVERY_TTL_S = 86_400
REJECTED_KEPT = 10_000

_SECRET_FIELDS = (("ws", "webhook_secret"), ("at", "access_token"), ("ck", "consumer_key"),
                  ("cs", "consumer_secret"))


@dataclass(frozen=True)
class RejectedOrder:
    channel_id: str
    external_id: str
    reason: str
    received_at: int = 0
    delivery_id: str = ""
    skus: tuple[str, ...] = ()


@dataclass(frozen=True)
class StockRead:
    """Stock of some SKUs in some warehouses, read in one round trip: on_hand[w, k],
    reserved[w, k] (int64) and each warehouse's stock version ``seq[w]``."""
    warehouse_ids: tuple[str, ...]
    skus: tuple[str, ...]
    on_hand: np.ndarray
    reserved: np.ndarray
    seq: np.ndarray


def _encode_doc(ch: Channel) -> bytes:
    p = ch.push
    return orjson.dumps({
        "name": ch.name, "kind": int(ch.kind), "wh": list(ch.warehouse_ids),
        "safety": ch.safety_stock, "sku_safety": ch.sku_safety_stock, "share_bp": ch.share_bp,
        "disabled": ch.disabled,
        "push": {"base_url": p.base_url, "location_id": p.location_id, "sku_items": p.sku_items},
    })


def _decode(channel_id: str, h: dict[bytes, bytes]) -> Channel:
    d = orjson.loads(h[b"doc"])
    s = {name: h.get(f.encode(), b"").decode() for f, name in _SECRET_FIELDS}
    p = d["push"]
    return Channel(
        id=channel_id, name=d["name"], kind=ChannelKind(d["kind"]), warehouse_ids=tuple(d["wh"]),
        safety_stock=d["safety"], sku_safety_stock=dict(d["sku_safety"]), share_bp=d["share_bp"],
        webhook_secret=s["webhook_secret"], disabled=d["disabled"],
        updated_at=int(h.get(b"updated_at", b"0")),
        push=PushTarget(base_url=p["base_url"], access_token=s["access_token"],
                        consumer_key=s["consumer_key"], consumer_secret=s["consumer_secret"],
                        location_id=p["location_id"], sku_items=dict(p["sku_items"])))


class ChannelOps(StoreBase):
    """Channel records, deliveries, rejected orders, and stock reads for available-to-sell."""

    _ch_cache: tuple[float, dict[str, Channel]] | None = None

    async def upsert_channel(self, ch: Channel) -> Channel:
        """Create or replace ``ch``; empty secrets keep the stored ones. Returns the stored
        channel (with its secrets: callers strip them before answering)."""
        k = keys.channel(ch.id)
        now = now_ms()
        mapping: dict[str, bytes | str] = {"doc": _encode_doc(ch), "updated_at": str(now)}
        for f, name in _SECRET_FIELDS:
            v = getattr(ch, name) if name == "webhook_secret" else getattr(ch.push, name)
            if v:
                mapping[f] = v
        async with self.r.pipeline(transaction=True) as p:
            p.hset(k, mapping=mapping)
            p.sadd(keys.CHANNELS, ch.id)
            p.hgetall(k)
            *_, h = await p.execute()
        self._ch_cache = None
        return _decode(ch.id, h)

    async def get_channel(self, channel_id: str) -> Channel | None:
        h = await self.r.hgetall(keys.channel(channel_id))
        return _decode(channel_id, h) if h else None

    async def list_channels(self) -> list[Channel]:
        ids = sorted(i.decode() for i in await self.r.smembers(keys.CHANNELS))
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for i in ids:
                p.hgetall(keys.channel(i))
            rows = await p.execute()
        return [_decode(i, h) for i, h in zip(ids, rows) if h]

    async def channels(self, max_age_s: float = 1.0) -> dict[str, Channel]:
        """Channels by id from a short-lived cache (intake reads them on every batch; an
        upsert through this process is seen at once, through another within ``max_age_s``)."""
        c = self._ch_cache
        if c is None or time.monotonic() - c[0] > max_age_s:
            c = (time.monotonic(), {ch.id: ch for ch in await self.list_channels()})
            self._ch_cache = c
        return c[1]

    # -- stock reads ----------------------------------------------------------------------

    async def read_stock(self, warehouse_ids: Sequence[str], skus: Sequence[str]) -> StockRead:
        """on_hand, reserved of ``skus`` in ``warehouse_ids`` and each warehouse's stock
        version, in one round trip (a pipeline per node on a cluster). Read from the hashes,
        the truth: what a returned call wrote is seen."""
        n_w, n_k = len(warehouse_ids), len(skus)
        oh = np.zeros((n_w, n_k), dtype=np.int64)
        rs = np.zeros((n_w, n_k), dtype=np.int64)
        seq = np.zeros(n_w, dtype=np.int64)
        if n_w:
            async with self.r.pipeline(transaction=False) as p:
                for w in warehouse_ids:
                    sh = keys.Shard(w)
                    if n_k:
                        p.hmget(sh.onhand, list(skus))
                        p.hmget(sh.reserved, list(skus))
                    p.get(sh.stockseq)
                raw = await p.execute()
            step = 3 if n_k else 1
            for i in range(n_w):
                part = raw[i * step:(i + 1) * step]
                if n_k:
                    oh[i] = [int(v or 0) for v in part[0]]
                    rs[i] = [int(v or 0) for v in part[1]]
                seq[i] = int(part[-1] or 0)
        return StockRead(tuple(warehouse_ids), tuple(skus), oh, rs, seq)

    async def stock_versions(self, warehouse_ids: Sequence[str]) -> np.ndarray:
        """Each warehouse's stock version, in one round trip: what pollers read every interval
        before reading the (larger) arrays of the warehouses whose version moved."""
        return (await self.read_stock(warehouse_ids, ())).seq

    async def read_avail_arrays(self, warehouse_ids: Sequence[str]
                                ) -> tuple[list[bytes], np.ndarray]:
        """Each warehouse's packed ``avail`` array (big-endian int32 by sku id; see
        scripts/__init__) and stock version, in one round trip: what a watcher polls to see
        which SKUs changed without reading every hash."""
        if not warehouse_ids:
            return [], np.zeros(0, dtype=np.int64)
        # The version before the array: a stock write may land between the two reads (another
        # client's command on the node), and an array older than its version would hide that
        # write from every later poll (the version no longer moves); a newer array is harmless.
        async with self.r.pipeline(transaction=False) as p:
            for w in warehouse_ids:
                sh = keys.Shard(w)
                p.get(sh.stockseq)
                p.get(sh.avail)
            raw = await p.execute()
        return ([raw[2 * i + 1] or b"" for i in range(len(warehouse_ids))],
                np.array([int(raw[2 * i] or 0) for i in range(len(warehouse_ids))],
                         dtype=np.int64))

    async def all_sku_ids(self) -> dict[str, int]:
        """Every registered SKU with its numeric id (index into ``avail`` arrays)."""
        raw = await self.r.hgetall(keys.SKU_IDS)
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- webhook deliveries ---------------------------------------------------------------

    async def delivery_outcome(self, channel_id: str, delivery_id: str) -> str | None:
        v = await self.r.get(keys.channel_delivery(channel_id, delivery_id))
        return None if v is None else v.decode()

    async def complete_delivery(self, channel_id: str, delivery_id: str, outcome: str) -> bool:
        """Mark a delivery done; False if it was already (the first outcome is kept)."""
        return bool(await self.r.set(keys.channel_delivery(channel_id, delivery_id), outcome,
                                     nx=True, ex=DELIVERY_TTL_S))

    # -- rejected orders ------------------------------------------------------------------

    async def record_rejected(self, r: RejectedOrder) -> RejectedOrder:
        """Keep a rejected order once per (channel, external id): a repeat returns the first."""
        h, ix = keys.channel_rejected(r.channel_id)
        doc = orjson.dumps({"reason": r.reason, "at": r.received_at, "dlv": r.delivery_id,
                            "skus": list(r.skus)})
        async with self.r.pipeline(transaction=True) as p:
            p.hsetnx(h, r.external_id, doc)
            p.zadd(ix, {r.external_id: r.received_at}, nx=True)
            p.zcard(ix)
            p.hget(h, r.external_id)
            _, _, n, stored = await p.execute()
        if n > REJECTED_KEPT:
            old = await self.r.zrange(ix, 0, n - REJECTED_KEPT - 1)
            if old:
                async with self.r.pipeline(transaction=True) as p:
                    p.zrem(ix, *old)
                    p.hdel(h, *old)
                    await p.execute()
        return _rejected(r.channel_id, r.external_id, stored)

    async def list_rejected(self, channel_id: str, limit: int) -> list[RejectedOrder]:
        """Newest first."""
        h, ix = keys.channel_rejected(channel_id)
        ids = await self.r.zrevrange(ix, 0, limit - 1)
        if not ids:
            return []
        docs = await self.r.hmget(h, ids)
        return [_rejected(channel_id, i.decode(), d) for i, d in zip(ids, docs) if d]

    async def count_rejected(self, channel_id: str) -> int:
        return int(await self.r.zcard(keys.channel_rejected(channel_id)[1]))


def _rejected(channel_id: str, external_id: str, doc: bytes) -> RejectedOrder:
    d = orjson.loads(doc)
    return RejectedOrder(channel_id, external_id, d["reason"], d["at"], d["dlv"], tuple(d["skus"]))
