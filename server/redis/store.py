"""The only module that talks to Redis.

Every state change that must not be lost is one Lua script call (see scripts.py). Methods
take and return engine dataclasses; script return codes become typed exceptions here.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from oms.engine.errors import (ConflictError, NotFoundError, OmsError, PreconditionError, TransitionError,
                           quote)
from oms.engine.lifecycle import HOLDS_STOCK, SHIPPED_OR_LATER, OrderStatus, allowed_sources
from oms.engine.models import (
    Address,
    Allocation,
    Customer,
    HistoryEntry,
    Layout,
    Line,
    Order,
    OrderEvent,
    Package,
    PaymentState,
    Product,
    Return,
    ReturnLine,
    Shipment,
    StockLevel,
    Warehouse,
)
from oms.server.redis import events as event_streams
from oms.server.redis import keys, scripts
from oms.server.redis.resp_pipeline import Packed, RawClient, RawPipeline, bulk, bulk_int, bulk_str
from oms.server.redis.unavailable import Redis as UnavailableAwareRedis
from oms.server.redis.unavailable import SyncRedis

PENDING = "pending:"
TAKEOVER = "takeover"  # claim_keys: claimed from an owner whose lease ended (an order may exist)
# Up to this many distinct skus (and at most 1/32 of the catalogue) a snapshot reads single
# entries (BITFIELD_RO per warehouse) instead of whole packed arrays (MGET): 20 arrays of a
# 10,000-sku catalogue are 800 KB.
SNAPSHOT_FEW_SKUS = 64


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class PlaceEntry:
    """One entry of a PLACE_ORDERS call: a reservation (kind R) or an order with its home
    reservation (kind O). ``lines`` is merged per sku."""

    kind: str
    order_id: str
    lines: list[tuple[str, int, int]]  # (sku, sku id, qty)
    status: int = 0
    channel: str = ""
    idem_digest: str = ""
    hold_until: int = 0
    doc: bytes = b""
    alloc: bytes = b""
    history: bytes = b""
    stat_fields: str = ""
    promised_by: int = 0
    risk: bytes = b"[0,[]]"
    dist_m: int = 0

    def pack(self) -> Packed:
        """The entry's PLACE_ORDERS arguments, packed: kind, id, sku count, the (sku, id, qty)
        triples and, for kind O, its 11 order fields (see the script's header). Repeating
        pieces (triples, statuses, channels, the batch's timestamps) come from caches."""
        lines = self.lines
        oid = self.order_id.encode()
        head = b"$1\r\n%s\r\n$%d\r\n%s\r\n%s%s" % (
            _KIND[self.kind], len(oid), oid, bulk_int(len(lines)),
            b"".join([_triple(s, i, q) for s, i, q in lines]))
        if self.kind != "O":
            return Packed(3 + 3 * len(lines), head)
        ik, doc, al, hist, risk = self.idem_digest.encode(), self.doc, self.alloc, self.history, self.risk
        return Packed(14 + 3 * len(lines), b"%s%s%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n$%d\r\n%s\r\n"
                      b"$%d\r\n%s\r\n%s%s$%d\r\n%s\r\n%s" % (
                          head, bulk_int(self.status), bulk_str(self.channel), len(ik), ik,
                          bulk_int(self.hold_until), len(doc), doc, len(al), al, len(hist), hist,
                          bulk_str(self.stat_fields), bulk_int(self.promised_by), len(risk), risk,
                          bulk_int(self.dist_m)))


_KIND = {"O": b"O", "R": b"R"}


class RiskRow(NamedTuple):
    """What RISK_SIGNALS counts of one order (coordinates in millionths of a degree)."""

    customer: str
    email: str
    address: str  # "" = not counted
    value_cents: int
    lat_e6: int
    lon_e6: int
    country: str


class RiskSignals(NamedTuple):
    """An order's velocity counts (this window and the previous one) and its customer's
    history, before the order."""

    by_customer: int
    by_email: int
    by_address: int
    orders: int
    value_sum: int
    lat_e6_sum: int
    lon_e6_sum: int
    country: str  # "-" = none yet


def _pack_risk(rows: Sequence[RiskRow]) -> Packed:
    return Packed(7 * len(rows), b"".join([
        bulk(c.encode()) + bulk(e.encode()) + bulk(a.encode()) + bulk_int(v) + bulk_int(la) +
        bulk_int(lo) + bulk_str(co) for c, e, a, v, la, lo, co in rows]))


@lru_cache(maxsize=65536)
def _triple(sku: str, sku_id: int, qty: int) -> bytes:
    return bulk(sku.encode()) + bulk(b"%d" % sku_id) + bulk(b"%d" % qty)


def encode_doc(order: Order) -> bytes:
    # orjson writes the Customer and Address dataclasses as objects keyed by field name
    # (what decode_order reads back), in C.
    return orjson.dumps({
        "cu": order.customer, "st": order.ship_to,
        "ln": [(ln.sku, ln.quantity, ln.unit_price_cents) for ln in order.lines],
        "ap": order.allow_partial, "ik": order.idempotency_key,
    })


def encode_alloc(allocs: Iterable[Allocation]) -> bytes:
    # distances are rounded to metres where allocations are made (intake, re-allocation)
    return orjson.dumps([(a.sku, a.warehouse_id, a.quantity, a.distance_km) for a in allocs])


class StaleError(OmsError):
    """An optimistic update lost a race: the order changed after it was read. Retry."""


class Store:
    def __init__(self, client: aioredis.Redis, raw: RawClient, *, events_maxlen: int = 1_000_000,
                 idempotency_ttl_s: int = 86400, claim_lease_s: float = 10.0) -> None:
        self.r = client
        self.raw = raw  # lean pipelines for the hot round trips (same server and database)
        self.events_maxlen = events_maxlen
        self.idempotency_ttl_s = idempotency_ttl_s
        self._claim_life_s = 2 * idempotency_ttl_s + 60  # a claims hash covers one period
        # A pending claim's owner has this long to place the order; after that a retry takes
        # the claim over (the owner died, or its batch was cut off before writing).
        self.claim_lease_s = claim_lease_s
        self._s = {name: client.register_script(src) for name, src in scripts.ALL.items()}
        self._sha = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in scripts.ALL.items()}
        self._wh_cache: tuple[float, list[Warehouse]] | None = None
        self._skus: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, **kw: int) -> "Store":
        # A blocking pool: bursts of concurrent RPCs wait for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=30)
        # Connection errors come out as the retryable StoreUnavailable (UNAVAILABLE).
        return cls(UnavailableAwareRedis(connection_pool=pool), RawClient(url), **kw)

    async def close(self) -> None:
        await self.raw.close()
        await self.r.aclose()

    # Scripts inside pipelines go by EVALSHA directly: redis-py's Script objects make every
    # pipeline that holds one ask SCRIPT EXISTS first, an extra round trip on the hot path.
    # A NOSCRIPT answer (a restarted or flushed Redis) loads the scripts and re-runs the batch;
    # that is safe because NOSCRIPT fails every script call of the batch before any runs.
    def _ev(self, p: RawPipeline, name: str, keys_: Sequence[str], args: Sequence[object]) -> None:
        p.evalsha(self._sha[name], len(keys_), *keys_, *args)

    async def _exec(self, build: Callable[[RawPipeline], None]) -> list[Any]:
        """Run the EVALSHA/MGET calls that ``build(pipeline)`` adds, in one round trip."""
        for attempt in (0, 1):
            try:
                p = self.raw.pipeline()
                build(p)
                return await p.execute()
            except NoScriptError:
                if attempt:
                    raise
            for name, src in scripts.ALL.items():
                await self.r.script_load(src)
        raise AssertionError("unreachable")

    # ---- network registry -------------------------------------------------------------

    async def upsert_warehouse(self, w: Warehouse) -> Warehouse:
        await self.r.hset(keys.WAREHOUSES, w.id, orjson.dumps(asdict(w)))
        self._wh_cache = None
        return w

    async def list_warehouses(self) -> list[Warehouse]:
        raw = await self.r.hgetall(keys.WAREHOUSES)
        out = []
        for v in raw.values():
            d = orjson.loads(v)
            d["layout"] = Layout(**d["layout"])
            out.append(Warehouse(**d))
        return sorted(out, key=lambda w: w.id)

    async def warehouses(self, max_age_s: float = 1.0) -> list[Warehouse]:
        """Warehouses from a short-lived cache: intake reads them on every batch, and they
        change rarely (a disabled flag takes effect within ``max_age_s``)."""
        c = self._wh_cache
        if c is None or time.monotonic() - c[0] > max_age_s:
            c = (time.monotonic(), await self.list_warehouses())
            self._wh_cache = c
        return c[1]

    async def warehouse(self, warehouse_id: str) -> Warehouse:
        for w in await self.warehouses(0.0):
            if w.id == warehouse_id:
                return w
        raise NotFoundError("warehouse", warehouse_id)

    async def upsert_product(self, p: Product) -> Product:
        (sid,) = await self._s["REGISTER_SKUS"](
            keys=[keys.PRODUCTS, keys.SKU_IDS, keys.SKU_SEQ], args=["upsert", p.sku, orjson.dumps(asdict(p))])
        self._skus[p.sku] = int(sid)
        return p

    async def ensure_sku(self, sku: str) -> int:
        """The sku's numeric id, registering a bare product record if it has none."""
        sid = self._skus.get(sku)
        if sid is None:
            (sid,) = await self._s["REGISTER_SKUS"](
                keys=[keys.PRODUCTS, keys.SKU_IDS, keys.SKU_SEQ],
                args=["ensure", sku, orjson.dumps(asdict(Product(sku=sku)))])
            self._skus[sku] = sid = int(sid)
        return sid

    async def sku_ids(self, skus: Iterable[str]) -> dict[str, int]:
        """Ids of the known skus among ``skus`` (unknown ones are left out). Ids never
        change, so they are cached for the life of the process."""
        skus = list(skus)
        missing = sorted({s for s in skus if s not in self._skus})
        if missing:
            found = await self.r.hmget(keys.SKU_IDS, missing)
            for s, v in zip(missing, found):
                if v is not None:
                    self._skus[s] = int(v)
        return {s: self._skus[s] for s in skus if s in self._skus}

    async def products(self, skus: Iterable[str]) -> dict[str, Product]:
        skus = sorted(set(skus))
        if not skus:
            return {}
        raw = await self.r.hmget(keys.PRODUCTS, skus)
        return {s: Product(**orjson.loads(v)) for s, v in zip(skus, raw) if v is not None}

    async def unknown_skus(self, skus: Iterable[str]) -> set[str]:
        skus = set(skus)
        return skus - set(await self.sku_ids(skus))

    # ---- stock --------------------------------------------------------------------------

    async def set_stock(self, warehouse_id: str, sku: str, on_hand: int, location: str, *,
                        clamp: bool = False) -> StockLevel:
        """SET_STOCK. Below what is reserved it refuses (PreconditionError), or with ``clamp``
        sets on_hand to the reserved units instead (the returned level says which)."""
        await self.warehouse(warehouse_id)
        sh = keys.Shard(warehouse_id)
        # Setting stock registers the sku, so a catalogue without dimensions still works.
        sid = await self.ensure_sku(sku)
        res = await self._s["SET_STOCK"](keys=[sh.onhand, sh.reserved, sh.loc, sh.avail],
                                         args=[sku, sid, on_hand, location] + (["clamp"] if clamp else []))
        if res[0] == -1:
            raise PreconditionError(
                f"on_hand {on_hand} for sku {sku!r} in warehouse {warehouse_id!r} is below the "
                f"{res[1]} units reserved by open orders")
        return StockLevel(warehouse_id, sku, int(res[0]), int(res[1]), _s(res[2]))

    async def reservations_of(self, warehouse_id: str, sku: str) -> dict[str, int]:
        """Units of ``sku`` each reservation record of the warehouse holds (record id -> units;
        staged moves end in STAGED). Reads the whole ``resv`` hash: for rare operations."""
        out: dict[str, int] = {}
        for rid, rec in (await self.r.hgetall(keys.Shard(warehouse_id).resv)).items():
            f = _s(rec).split()
            q = sum(int(f[i + 2]) for i in range(1, len(f), 3) if f[i] == sku)
            if q:
                out[_s(rid)] = q
        return out

    async def adjust_stock(self, warehouse_id: str, sku: str, delta: int,
                           idempotency_key: str) -> StockLevel:
        await self.warehouse(warehouse_id)
        ids = await self.sku_ids([sku])
        if sku not in ids:
            raise NotFoundError("sku", sku)
        sh = keys.Shard(warehouse_id)
        res = await self._s["ADJUST_STOCK"](
            keys=[sh.onhand, sh.reserved, sh.loc, sh.adjust(idempotency_key or "-"), sh.avail],
            args=[sku, ids[sku], delta, self.idempotency_ttl_s, "1" if idempotency_key else "0"])
        if res[0] == -1:
            raise PreconditionError(
                f"adjusting sku {sku!r} in warehouse {warehouse_id!r} by {delta} would leave "
                f"on_hand {res[1] + delta} below the {res[2]} units reserved (or below 0)")
        if res[0] == -2:
            raise PreconditionError(
                f"adjusting sku {sku!r} in warehouse {warehouse_id!r} by {delta} would take "
                f"on_hand to {res[1] + delta}, past the maximum {2**31 - 1}")
        return StockLevel(warehouse_id, sku, int(res[0]), int(res[1]), _s(res[2]))

    async def get_stock(self, sku: str) -> list[StockLevel]:
        if await self.unknown_skus([sku]):
            raise NotFoundError("sku", sku)
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                sh = keys.Shard(w.id)
                p.hget(sh.onhand, sku)
                p.hget(sh.reserved, sku)
                p.hget(sh.loc, sku)
            raw = await p.execute()
        out = []
        for i, w in enumerate(whs):
            oh, rs, loc = raw[3 * i: 3 * i + 3]
            if oh is None and rs is None:
                continue
            out.append(StockLevel(w.id, sku, int(oh or 0), int(rs or 0), _s(loc)))
        return out

    async def snapshot(self, warehouse_ids: Sequence[str], sku_ids: np.ndarray) -> np.ndarray:
        """available[w, k] = on_hand - reserved of sku id ``sku_ids[k]`` in warehouse w, in one
        round trip. A snapshot can be stale by the time it is used; PLACE_ORDERS re-checks
        atomically."""
        _, available = await self.risk_and_snapshot([], 0, 0, warehouse_ids, sku_ids)
        return available

    async def risk_and_snapshot(self, rows: Sequence[RiskRow], now: int, window_s: int,
                                warehouse_ids: Sequence[str], sku_ids: np.ndarray
                                ) -> tuple[list[RiskSignals], np.ndarray]:
        """RISK_SIGNALS (if ``rows``) and the availability snapshot (if warehouses and skus) in
        ONE round trip (intake's hot path)."""
        n_w, n_k = len(warehouse_ids), len(sku_ids)
        read = n_w > 0 and n_k > 0
        avail_keys = [keys.Shard(wid).avail for wid in warehouse_ids] if read else []
        # A few skus of a large catalogue (small batches: unary and streaming intake): read just
        # those entries of each array (BITFIELD_RO), not whole arrays. Otherwise one MGET of the
        # arrays: copying bytes is cheaper for Redis than decoding many BITFIELD operations.
        # (On Redis Cluster either is per shard: the keys live in different slots.)
        few = read and n_k <= SNAPSHOT_FEW_SKUS and n_k * 32 <= len(self._skus)  # skus seen ~ catalogue
        ops = [a for i in sku_ids.tolist() for a in ("GET", "i32", f"#{i}")] if few else []

        def build(p: RawPipeline) -> None:
            if rows:
                self._ev(p, "RISK_SIGNALS", [keys.RISK + "seen"], [keys.RISK, now, window_s, _pack_risk(rows)])
            if few:
                p.same_command_per_key("BITFIELD_RO", avail_keys, ops)
            elif read:
                p.mget(avail_keys)

        raw = await self._exec(build)
        signals: list[RiskSignals] = []
        if rows:
            flat = raw[0]
            signals = [RiskSignals(*flat[i:i + 7], _s(flat[i + 7])) for i in range(0, len(flat), 8)]
        if not read:
            return signals, np.zeros((n_w, n_k), dtype=np.int64)
        if few:
            return signals, np.array(raw[-n_w:], dtype=np.int64).reshape(n_w, n_k)
        return signals, _unpack_avail(raw[-1], sku_ids)

    # ---- placement ----------------------------------------------------------------------

    async def place_groups(self, groups: dict[str, list[PlaceEntry]], now: int) -> dict[str, list[int]]:
        """One PLACE_ORDERS call per warehouse, all in one pipeline round trip. Returns the
        per-entry codes (1 written, 2 already present, 0 short) per warehouse."""
        order = [w for w, es in groups.items() if es]
        if not order:
            return {}
        calls = []
        for wid in order:
            sh = keys.Shard(wid)
            # The shard's key mapping lives as long as a claim can (two periods): a claim stays
            # "pending" after its order is placed and is resolved from this mapping.
            args: list[object] = [sh.prefix, now, self.events_maxlen, self._claim_life_s]
            args += [e.pack() for e in groups[wid]]
            calls.append(([sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats, sh.avail], args))

        def build(p: RawPipeline) -> None:
            for k, a in calls:
                self._ev(p, "PLACE_ORDERS", k, a)

        raw = await self._exec(build)
        return {wid: [int(x) for x in res] for wid, res in zip(order, raw)}

    async def release(self, warehouse_id: str, order_id: str, older_than_ms: int = 0) -> bool:
        sh = keys.Shard(warehouse_id)
        return bool(await self._s["RELEASE_RESERVATION"](
            keys=_release_keys(sh), args=[order_id, older_than_ms]))

    async def release_many(self, pairs: Sequence[tuple[str, str]], *, writeoff: str = "") -> None:
        """Give back what each (warehouse, record id) holds; ``writeoff``: that sku's units
        are written off instead (on_hand drops with reserved: a stock count found them missing)."""
        if not pairs:
            return
        extra = [f"writeoff:{writeoff}"] if writeoff else []

        def build(p: RawPipeline) -> None:
            for wid, oid in pairs:
                sh = keys.Shard(wid)
                self._ev(p, "RELEASE_RESERVATION", _release_keys(sh), [oid, 0, *extra])

        await self._exec(build)

    # ---- idempotency --------------------------------------------------------------------

    def _claim_hashes(self, digest: str, period: int | None = None) -> tuple[str, str]:
        if period is None:
            period = int(time.time()) // self.idempotency_ttl_s
        return keys.idem_claims(digest, period), keys.idem_claims(digest, period - 1)

    async def _claims_call(self, mode: str, per_bucket: dict[tuple[str, str], list[str]]
                           ) -> dict[tuple[str, str], list[bytes]]:
        order = list(per_bucket)
        def build(p: RawPipeline) -> None:
            for hashes in order:
                self._ev(p, "CLAIM_KEYS", list(hashes),
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
        answers = await self._claims_call("claim", per_bucket)
        pos = {h: 0 for h in per_bucket}
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

    async def wait_for_key(self, idem_key: str, timeout_s: float = 5.0) -> str:
        """Wait until a concurrent request that holds ``idem_key`` has its order id. The order
        script writes a per-shard mapping, so a claim left pending (intake leaves a placed
        order's claim pending; or its process died) is resolved from that mapping."""
        deadline = time.monotonic() + timeout_s
        delay = 0.002
        while True:
            v = await self._claim_value(idem_key)
            if v is not None and not v.startswith(PENDING):
                return v
            if v is None:
                raise ConflictError(f"the request with idempotency_key {idem_key!r} failed; retry it")
            found = await self._idem_in_shards(idem_key)
            if found:
                await self.finish_keys([(idem_key, found)], [])
                return found
            if time.monotonic() > deadline:
                raise ConflictError(f"a request with idempotency_key {idem_key!r} is still in progress")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    async def _idem_in_shards(self, idem_key: str) -> str:
        digest = keys.digest(idem_key)
        async with self.r.pipeline(transaction=False) as p:
            for w in await self.warehouses():
                p.get(f"{keys.shard(w.id)}idem:{digest}")
            raw = await p.execute()
        return next((_s(v) for v in raw if v is not None), "")

    # ---- orders -------------------------------------------------------------------------

    async def get_order(self, order_id: str) -> Order:
        return (await self.get_orders([order_id]))[0]

    async def get_orders(self, order_ids: Sequence[str]) -> list[Order]:
        shards = []
        for oid in order_ids:
            try:
                shards.append(keys.Shard(keys.home_of(oid)))
            except ValueError:
                raise NotFoundError("order", oid) from None
        async with self.r.pipeline(transaction=False) as p:
            for oid, sh in zip(order_ids, shards):
                p.hgetall(sh.order(oid))
            raw = await p.execute()
        out = []
        for oid, h in zip(order_ids, raw):
            if not h:
                raise NotFoundError("order", oid)
            out.append(decode_order(oid, h))
        return out

    async def list_orders(self, status: int, channel: str, page_size: int,
                          after: str) -> tuple[list[Order], str]:
        """Orders in creation order (the time-sortable id suffix), paged by that suffix, so
        paging is stable while intake goes on: new orders sort after every cursor."""
        whs = await self.warehouses(0.0)
        fetch = page_size
        picked: list[tuple[str, str]] = []  # (suffix, order id)
        cursor = after
        while True:
            async with self.r.pipeline(transaction=False) as p:
                for w in whs:
                    sh = keys.Shard(w.id)
                    idx = sh.idx_status(status) if status else (
                        sh.idx_channel(channel) if channel else sh.idx_all())
                    lo = f"({w.id}.{cursor}" if cursor else "-"
                    p.zrangebylex(idx, lo, "+", 0, fetch)
                raw = await p.execute()
            cands = sorted((_s(m).rpartition(".")[2], _s(m)) for ids in raw for m in ids)
            if not cands:
                break
            cands = cands[:fetch]
            orders = await self.get_orders([oid for _, oid in cands])
            for (suffix, _), o in zip(cands, orders):
                if channel and status and o.channel != channel:
                    continue
                picked.append((suffix, o.id))
                if len(picked) == page_size:
                    break
            cursor = cands[-1][0]
            if len(picked) >= page_size or not (status and channel):
                break
        result = await self.get_orders([oid for _, oid in picked[:page_size]])
        token = picked[page_size - 1][0] if len(picked) >= page_size else ""
        return result, token

    async def transition(self, order_id: str, target: OrderStatus, *, action: str = "none",
                         reason: str = "", event: str = "", extra: dict[str, str] | None = None,
                         expect_updated_at: int | None = None, followup_at: int | None = None
                         ) -> tuple[bool, Order]:
        """Run TRANSITION; returns (changed, order after). Raises NotFoundError,
        TransitionError, or StaleError when ``expect_updated_at`` no longer matches.
        ``action`` releases/consumes the reservation in the home shard only: the caller
        handles the other warehouses of a split order."""
        try:
            home = keys.home_of(order_id)
        except ValueError:
            raise NotFoundError("order", order_id) from None
        sh = keys.Shard(home)
        srcs = "," + ",".join(str(int(s)) for s in allowed_sources(target)) + ","
        args: list[object] = [sh.prefix, now_ms(), self.events_maxlen, order_id, int(target), srcs,
                              action, reason, event or f"order.{target.name.lower()}",
                              "" if expect_updated_at is None else expect_updated_at,
                              "" if followup_at is None else followup_at]
        for k, v in (extra or {}).items():
            args += [k, v]
        res = await self._s["TRANSITION"](
            keys=[sh.order(order_id), sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats,
                  sh.avail, sh.followup], args=args)
        code = int(res[0])
        if code == -1:
            raise NotFoundError("order", order_id)
        if code == -2:
            raise TransitionError(order_id, OrderStatus(int(res[1])).name, target.name)
        if code == -3:
            raise StaleError(f"order {order_id!r} changed while it was being updated")
        return code == 1, await self.get_order(order_id)

    async def consume_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """Consume reservations (stock shipped) in non-home warehouses; idempotent."""
        if not pairs:
            return
        def build(p: RawPipeline) -> None:
            for wid, oid in pairs:
                sh = keys.Shard(wid)
                self._ev(p, "RELEASE_RESERVATION", _release_keys(sh),
                         [oid, 0, "consume"])

        await self._exec(build)

    # ---- replenishment ------------------------------------------------------------------------

    async def set_replenishment_policy(self, warehouse_id: str, sku: str, reorder_point: int,
                                       lead_time_days: float) -> None:
        await self.warehouse(warehouse_id)
        if sku not in await self.sku_ids([sku]):
            raise NotFoundError("sku", sku)
        await self.r.hset(keys.Shard(warehouse_id).replen, sku,
                          orjson.dumps({"reorder_point": reorder_point, "lead_time_days": lead_time_days}))

    async def replenishment_inputs(self, warehouse_id: str, window_days: float, now: int
                                   ) -> list[tuple[str, int, int, int, dict]]:
        """(sku, on_hand, reserved, sold in window, policy) for every sku stocked in the
        warehouse; sales are the units reserved per day (PLACE_ORDERS keeps them)."""
        sh = keys.Shard(warehouse_id)
        today = now // 86_400_000
        days = max(1, int(-(-window_days // 1)))
        async with self.r.pipeline(transaction=False) as p:
            p.hgetall(sh.onhand)
            p.hgetall(sh.reserved)
            p.hgetall(sh.replen)
            for d in range(days):
                p.hgetall(f"{sh.prefix}sold:{today - d}")
            raw = await p.execute()
        onhand = {_s(k): int(v) for k, v in raw[0].items()}
        reserved = {_s(k): int(v) for k, v in raw[1].items()}
        policy = {_s(k): orjson.loads(v) for k, v in raw[2].items()}
        sold: dict[str, int] = {}
        for h in raw[3:]:
            for k, v in h.items():
                sold[_s(k)] = sold.get(_s(k), 0) + int(v)
        return [(sku, onhand.get(sku, 0), reserved.get(sku, 0), sold.get(sku, 0), policy.get(sku, {}))
                for sku in sorted(set(onhand) | set(policy))]

    # ---- fraud signals and follow-ups ----------------------------------------------------------

    async def pop_followups(self, warehouse_id: str, now: int, limit: int = 500) -> list[str]:
        sh = keys.Shard(warehouse_id)
        res = await self._s["POP_FOLLOWUPS"](keys=[sh.followup, sh.events, sh.stats],
                                             args=[sh.prefix, now, self.events_maxlen, limit])
        return [_s(x) for x in res]

    # ---- shipping -----------------------------------------------------------------------------

    async def shipment_seq(self, slot: str) -> int:
        return int(await self._s["SHIPMENT_SEQ"](keys=[keys.SHIP_SLOTS, keys.SHIP_SEQ], args=[slot]))

    async def map_tracking(self, pairs: Sequence[tuple[str, str]]) -> None:
        async with self.r.pipeline(transaction=False) as p:
            for tracking, oid in pairs:
                p.set(keys.tracking(tracking), oid)
            await p.execute()

    async def order_of_tracking(self, tracking_number: str) -> str | None:
        v = await self.r.get(keys.tracking(tracking_number))
        return _s(v) if v is not None else None

    # ---- re-allocation ----------------------------------------------------------------------

    async def orders_in_status(self, status: int, limit: int) -> list[Order]:
        """Orders of every shard in one status (oldest first per shard), up to ``limit``."""
        out: list[Order] = []
        for w in await self.warehouses(0.0):
            ids = [_s(m) for m in await self.r.zrange(keys.Shard(w.id).idx_status(status), 0, limit - 1)]
            for i in range(0, len(ids), 1000):
                out += [o for o in await self.get_orders(ids[i:i + 1000]) if o.status == status]
            if len(out) >= limit:
                break
        return out[:limit]

    async def commit_allocation(self, order: Order, new_allocs: Sequence[Allocation],
                                reason: str, stat_deltas: str) -> bool:
        return (await self.commit_allocations(
            [(order, new_allocs, reason, stat_deltas, OrderStatus.ALLOCATED, None)]))[0]

    async def commit_allocations(
            self, items: Sequence[tuple[Order, Sequence[Allocation], str, str, OrderStatus, int | None]]
    ) -> list[bool]:
        """COMMIT_ALLOCATION for each (order as read, new allocation, reason, counter deltas,
        new status, new hold_until or None), in one round trip: an ALLOCATED order stays so, a
        BACKORDERED one becomes ALLOCATED or ON_HOLD, if its status and allocation are still
        the ones read; False where not."""
        now = now_ms()

        def build(p: RawPipeline) -> None:
            for order, new_allocs, reason, stat_deltas, status, hold_until in items:
                sh = keys.Shard(keys.home_of(order.id))
                filled = order.status == OrderStatus.BACKORDERED
                self._ev(p, "COMMIT_ALLOCATION", [sh.order(order.id), sh.events, sh.stats],
                         [now, self.events_maxlen, order.id, encode_alloc(order.allocations),
                          encode_alloc(new_allocs), reason, stat_deltas, int(order.status),
                          sh.prefix, "order.backorder_filled" if filled else "order.reallocated",
                          int(status), "" if hold_until is None else hold_until])

        return [bool(x) for x in await self._exec(build)] if items else []

    async def swap_records(self, order_id: str, warehouse_ids: Iterable[str]) -> None:
        await self.swap_records_many([(order_id, w) for w in warehouse_ids])

    async def swap_records_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        """SWAP_RECORD for each (order id, warehouse id), in one round trip."""
        def build(p: RawPipeline) -> None:
            for order_id, wid in pairs:
                sh = keys.Shard(wid)
                self._ev(p, "SWAP_RECORD", [sh.onhand, sh.reserved, sh.resv, sh.avail],
                         [order_id, staged_id(order_id)])

        if pairs:
            await self._exec(build)

    # ---- waves --------------------------------------------------------------------------

    async def releasable_orders(self, warehouse_id: str, limit: int, now: int) -> list[Order]:
        """ALLOCATED orders homed at the warehouse whose hold has ended, oldest first."""
        sh = keys.Shard(warehouse_id)
        out: list[Order] = []
        start = 0
        page = max(limit, 200)
        while len(out) < limit:
            ids = [_s(m) for m in await self.r.zrange(sh.idx_status(int(OrderStatus.ALLOCATED)),
                                                      start, start + page - 1)]
            if not ids:
                break
            start += len(ids)
            for o in await self.get_orders(ids):
                if o.status == OrderStatus.ALLOCATED and o.hold_until <= now:
                    out.append(o)
                    if len(out) == limit:
                        break
        return out

    async def locations(self, warehouse_id: str, skus: Sequence[str]) -> dict[str, str]:
        if not skus:
            return {}
        vals = await self.r.hmget(keys.Shard(warehouse_id).loc, list(skus))
        return {s: _s(v) for s, v in zip(skus, vals) if v}

    async def release_wave(self, warehouse_id: str, wave_id: str, wave_json: bytes,
                           saved_cm: int, order_ids: Sequence[str], part_ids: Sequence[str],
                           now: int) -> list[str]:
        """Run RELEASE_WAVE; returns the ids that were not releasable ([] = released)."""
        sh = keys.Shard(warehouse_id)
        res = await self._s["RELEASE_WAVE"](
            keys=[sh.wave(wave_id), sh.waves, sh.events, sh.stats, sh.waved],
            args=[sh.prefix, now, self.events_maxlen, wave_id, wave_json, saved_cm,
                  len(order_ids), *order_ids, *part_ids])
        return [] if int(res[0]) == 1 else [_s(x) for x in res[1:]]

    async def waved_parts(self, orders: Sequence[Order]) -> set[str]:
        """Ids of the given orders with a part already waved outside their home warehouse."""
        pairs = [(w, o.id) for o in orders for w in o.warehouses if w != keys.home_of(o.id)]
        if not pairs:
            return set()
        async with self.r.pipeline(transaction=False) as p:
            for w, oid in pairs:
                p.sismember(keys.Shard(w).waved, oid)
            raw = await p.execute()
        return {oid for (_, oid), hit in zip(pairs, raw) if hit}

    async def releasable_parts(self, warehouse_id: str, limit: int, now: int) -> list[Order]:
        """Split orders homed in another warehouse whose part here is not waved yet and that
        are past their hold (ALLOCATED or already RELEASED by their home), oldest first."""
        sh = keys.Shard(warehouse_id)
        ids = [_s(k) for k in await self.r.hkeys(sh.resv)]
        ids = [i for i in ids if not i.endswith(STAGED) and keys.home_of(i) != warehouse_id]
        if not ids:
            return []
        ids.sort(key=lambda i: i.rpartition(".")[2])
        waved = await self.r.smismember(sh.waved, ids)
        ids = [i for i, w in zip(ids, waved) if not w]
        out: list[Order] = []
        for k in range(0, len(ids), 500):
            for o in await self.get_orders(ids[k:k + 500]):
                if o.status in (OrderStatus.ALLOCATED, OrderStatus.RELEASED) and o.hold_until <= now:
                    out.append(o)
            if len(out) >= limit:
                break
        return out[:limit]

    async def get_wave(self, wave_id: str) -> bytes:
        try:
            home = keys.home_of(wave_id)
        except ValueError:
            raise NotFoundError("wave", wave_id) from None
        raw = await self.r.get(keys.Shard(home).wave(wave_id))
        if raw is None:
            raise NotFoundError("wave", wave_id)
        return raw

    # ---- events -------------------------------------------------------------------------

    async def read_events(self, cursor: dict[str, str], block_ms: int, count: int = 500
                          ) -> list[OrderEvent]:
        """XREAD over every shard's stream from ``cursor`` (warehouse -> stream id); advances
        the cursor. Events come back merged in id (time) order, and never past the last id of
        a stream whose read was cut at ``count`` (it may hold older events not read yet), so
        that resuming after any delivered event id skips nothing."""
        return await event_streams.read(self.r, await self.warehouses(), cursor, block_ms, count)

    async def read_events_upto(self, cursor: dict[str, str], upto: dict[str, str],
                               count: int = 500) -> tuple[list[OrderEvent], bool]:
        """One non-blocking page of history: the events after ``cursor`` up to ``upto`` (both
        warehouse -> stream id), merged in id order; advances the cursor. True when the page
        reached every bound."""
        return await event_streams.read_upto(self.r, cursor, upto, count)

    def event_tail(self) -> event_streams.EventTail:
        """A blocking event reader on a connection of its own, outside the request pool (the
        event hub's tailer). The caller closes it (``aclose``)."""
        return event_streams.EventTail(self.r, self.warehouses)

    async def event_cursor(self, after_event_id: str) -> dict[str, str]:
        """Cursor for resuming after ``after_event_id`` ("<ms>-<seq>@<warehouse>"). Other
        shards restart at the start of that millisecond, so a resume may repeat an event of the
        same millisecond but never skips one (at-least-once)."""
        whs = await self.warehouses(0.0)
        if not after_event_id:
            ids = await self._last_ids([w.id for w in whs])
            return dict(zip([w.id for w in whs], ids))
        if after_event_id == "0":
            return {w.id: "0-0" for w in whs}
        try:
            sid, wid = event_streams.parse_event_id(after_event_id)
        except ValueError as e:
            raise OmsError(f"malformed event id {after_event_id[:32]!r}: {e}") from None
        ms = event_streams.sid_key(sid)[0]
        before = f"{ms - 1}-{event_streams.U64_MAX}" if ms > 0 else "0-0"
        return {w.id: (sid if w.id == wid else before) for w in whs}

    async def _last_ids(self, wids: Sequence[str]) -> list[str]:
        async with self.r.pipeline(transaction=False) as p:
            for wid in wids:
                p.xrevrange(keys.Shard(wid).events, count=1)
            raw = await p.execute()
        return [_s(r[0][0]) if r else "0-0" for r in raw]

    # ---- reporting ------------------------------------------------------------------------

    async def counters(self) -> dict[str, int]:
        """Every shard's stats counters, summed. Per-minute counters older than
        ``scripts.MINUTES_KEPT`` minutes that PLACE_ORDERS did not drop (a shard took no order
        that many minutes later) are deleted on the way."""
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                p.hgetall(keys.Shard(w.id).stats)
            raw = await p.execute()
        oldest = now_ms() // 60_000 - scripts.MINUTES_KEPT
        total: dict[str, int] = {}
        stale: list[tuple[str, list[str]]] = []
        for w, h in zip(whs, raw):
            old = []
            for k, v in h.items():
                name = _s(k)
                if name.startswith("m:") and int(name[2:]) <= oldest:
                    old.append(name)
                    continue
                total[name] = total.get(name, 0) + int(v)
            if old:
                stale.append((keys.Shard(w.id).stats, old))
        if stale:
            async with self.r.pipeline(transaction=False) as p:
                for key, names in stale:
                    p.hdel(key, *names)
                await p.execute()
        return total

    # ---- audit and recovery ---------------------------------------------------------------

    async def audit(self) -> list[str]:
        """Check the stock invariants; return one line per problem (empty list: all good).

        - reserved[w, sku] equals the sum of the reservation records of w for that sku;
        - available (on_hand - reserved) is never negative, reserved never negative;
        - every reservation record belongs to an order that holds stock and lists it;
        - every order that holds stock has its reservation in every warehouse it lists, with
          the quantities of its allocation.
        """
        problems: list[str] = []
        whs = await self.warehouses(0.0)
        holding = {int(s) for s in HOLDS_STOCK}
        expected: dict[tuple[str, str], dict[str, int]] = {}  # (wh, order) -> sku -> qty
        for w in whs:
            sh = keys.Shard(w.id)
            for st in holding:
                ids = [_s(m) for m in await self.r.zrange(sh.idx_status(st), 0, -1)]
                for i in range(0, len(ids), 1000):
                    for o in await self.get_orders(ids[i:i + 1000]):
                        for a in o.allocations:
                            d = expected.setdefault((a.warehouse_id, o.id), {})
                            d[a.sku] = d.get(a.sku, 0) + a.quantity
        seen: set[tuple[str, str]] = set()
        for w in whs:
            sh = keys.Shard(w.id)
            onhand = {_s(k): int(v) for k, v in (await self.r.hgetall(sh.onhand)).items()}
            reserved = {_s(k): int(v) for k, v in (await self.r.hgetall(sh.reserved)).items()}
            summed: dict[str, int] = {}
            for oid_b, rec in (await self.r.hgetall(sh.resv)).items():
                oid = _s(oid_b)
                toks = _s(rec).split()
                # Sum repeats of a sku: a record naming one twice (e.g. a sku "NL\n" next to
                # "NL" once split on whitespace) must not hide units from the check below.
                held: dict[str, int] = {}
                if (len(toks) - 1) % 3 or not all(
                        t.lstrip("-").isdigit() for t in toks[3::3]):
                    problems.append(f"{w.id}: reservation record of {oid} is malformed: "
                                    f"{_s(rec)[:80]!r}")
                    continue
                for i in range(1, len(toks), 3):
                    held[toks[i]] = held.get(toks[i], 0) + int(toks[i + 2])
                    if int(toks[i + 2]) <= 0:
                        problems.append(f"{w.id}: reservation of {oid} holds {toks[i + 2]} of "
                                        f"{toks[i]!r}")
                for sku, q in held.items():
                    summed[sku] = summed.get(sku, 0) + q
                if oid.endswith(STAGED):
                    problems.append(f"{w.id}: staged re-allocation {oid} not finished "
                                    "(run the recovery sweep)")
                    continue
                want = expected.get((w.id, oid))
                seen.add((w.id, oid))
                if want is None:
                    problems.append(f"{w.id}: reservation of {oid} has no order holding stock here")
                elif want != held:
                    problems.append(f"{w.id}: reservation of {oid} is {held}, order says {want}")
            for sku in set(reserved) | set(summed):
                if reserved.get(sku, 0) != summed.get(sku, 0):
                    problems.append(f"{w.id}/{sku}: reserved {reserved.get(sku, 0)} != sum of "
                                    f"reservations {summed.get(sku, 0)}")
            packed = await self.r.get(sh.avail) or b""
            avail = np.frombuffer(packed, dtype=">i4")
            ids = await self.sku_ids(set(onhand) | set(reserved))
            for sku in set(onhand) | set(reserved):
                free = onhand.get(sku, 0) - reserved.get(sku, 0)
                if reserved.get(sku, 0) < 0:
                    problems.append(f"{w.id}/{sku}: reserved {reserved.get(sku, 0)} is negative")
                elif free < 0:
                    problems.append(f"{w.id}/{sku}: on_hand {onhand.get(sku, 0)} reserved "
                                    f"{reserved.get(sku, 0)}: available is negative")
                sid = ids.get(sku)
                packed_free = int(avail[sid]) if sid is not None and sid < len(avail) else 0
                if packed_free != free:
                    problems.append(f"{w.id}/{sku}: packed available {packed_free} != on_hand - "
                                    f"reserved {free}")
        for (wid, oid) in expected:
            if (wid, oid) not in seen:
                problems.append(f"{wid}: order {oid} holds stock here but has no reservation")
        return problems

    async def recover(self, grace_ms: int = 30_000) -> int:
        """Recovery sweep: release reservations whose order does not exist (older than the
        grace period, so in-flight placements are left alone), no longer holds stock, or no
        longer lists that warehouse. Returns how many were released."""
        released = 0
        cutoff = now_ms() - grace_ms
        holding = {int(s) for s in HOLDS_STOCK}
        for w in await self.warehouses(0.0):
            sh = keys.Shard(w.id)
            for oid_b in await self.r.hkeys(sh.resv):
                rid = _s(oid_b)
                oid = rid[:-len(STAGED)] if rid.endswith(STAGED) else rid
                try:
                    o = await self.get_order(oid)
                except NotFoundError:
                    o = None
                if rid != oid:
                    # A staged re-allocation: finish it if the order committed to it (its
                    # allocation lists exactly what is staged), else roll it back.
                    if o is not None and o.status in holding and w.id in o.warehouses:
                        rec = _s(await self.r.hget(sh.resv, rid)).split()
                        staged = {rec[i]: int(rec[i + 2]) for i in range(1, len(rec), 3)}
                        want: dict[str, int] = {}
                        for a in o.allocations:
                            if a.warehouse_id == w.id:
                                want[a.sku] = want.get(a.sku, 0) + a.quantity
                        if staged == want:
                            await self.swap_records(oid, [w.id])
                            continue
                    released += await self.release(w.id, rid, older_than_ms=cutoff)
                elif o is None:
                    released += await self.release(w.id, oid, older_than_ms=cutoff)
                elif o.status in {int(x) for x in SHIPPED_OR_LATER}:
                    # Shipped, but this warehouse's part was not consumed yet (crash).
                    await self.consume_many([(w.id, oid)])
                    released += 1
                elif o.status not in holding or w.id not in o.warehouses:
                    released += await self.release(w.id, oid)
        return released

    async def sweep_orphans(self, grace_ms: int) -> int:
        """The periodic part of the recovery sweep: release reservations whose order does not
        exist and that are older than ``grace_ms`` (a placement writes its order one round trip
        after its other warehouses' reservations, so the grace must exceed the longest write
        phase). Existence checks pipelined 1,000 at a time: cheap enough to run every few
        seconds beside traffic. Staged moves and other repairs stay with ``recover``."""
        released = 0
        cutoff = now_ms() - grace_ms
        for w in await self.warehouses(0.0):
            sh = keys.Shard(w.id)
            ids = [_s(k) for k in await self.r.hkeys(sh.resv)]
            ids = [rid for rid in ids if not rid.endswith(STAGED)]
            for at in range(0, len(ids), 1000):
                page = ids[at:at + 1000]
                order_keys = []
                for rid in page:
                    try:
                        order_keys.append(keys.Shard(keys.home_of(rid)).order(rid))
                    except ValueError:
                        order_keys.append("")
                async with self.r.pipeline(transaction=False) as p:
                    for k in order_keys:
                        p.exists(k or sh.resv + ":none")
                    there = await p.execute()
                for rid, k, n in zip(page, order_keys, there):
                    if not k or not n:
                        released += await self.release(w.id, rid, older_than_ms=cutoff)
        return released


STAGED = "~m"


def _release_keys(sh: keys.Shard) -> list[str]:
    """KEYS of RELEASE_RESERVATION."""
    return [sh.onhand, sh.reserved, sh.resv, sh.avail, sh.waved]


def staged_id(order_id: str) -> str:
    """Record id of a reservation staged for a re-allocation move."""
    return order_id + STAGED


def decode_order(order_id: str, h: dict[bytes, bytes]) -> Order:
    doc = orjson.loads(h[b"doc"])
    risk = orjson.loads(h.get(b"risk", b"[0,[]]"))
    returns, tev = [], set()
    for k, v in h.items():
        if k.startswith(b"ret:"):
            returns.append(decode_return(v))
        elif k.startswith(b"tev:"):
            tev.add(_s(k[4:]))
    return Order(
        id=order_id,
        idempotency_key=doc.get("ik", ""),
        channel=_s(h[b"ch"]),
        status=int(h[b"st"]),
        customer=Customer(**doc["cu"]),
        ship_to=Address(**doc["st"]),
        lines=[Line(s, q, p) for s, q, p in doc["ln"]],
        allocations=[Allocation(s, w, q, d) for s, w, q, d in orjson.loads(h[b"al"])],
        hold_until=int(h.get(b"hu", 0)),
        created_at=int(h[b"ca"]),
        updated_at=int(h[b"ua"]),
        history=[HistoryEntry(int(s), int(t), r) for s, t, r in orjson.loads(h[b"hist"])],
        allow_partial=bool(doc.get("ap", False)),
        wave_id=_s(h.get(b"wave", b"")),
        payment=PaymentState(**orjson.loads(h[b"pay"])) if b"pay" in h else None,
        packages=[_package(d) for d in orjson.loads(h.get(b"pkg", b"[]"))],
        shipments=[_shipment(d) for d in orjson.loads(h.get(b"shp", b"[]"))],
        promised_by=int(h.get(b"pb", 0) or 0),
        delivered_at=int(h.get(b"dlv", 0) or 0),
        risk_score=float(risk[0]),
        risk_reasons=list(risk[1]),
        returns=sorted(returns, key=lambda r: r.created_at),
        tracking_events=tev,
        picked_warehouses=_s(h[b"pkw"]).split(",") if h.get(b"pkw") else [],
    )


def _package(d: dict) -> Package:
    d = dict(d)
    d["skus"] = tuple(d.get("skus", ()))
    return Package(**d)


def _shipment(d: dict) -> Shipment:
    d = dict(d)
    d["packages"] = tuple(_package(p) for p in d.get("packages", ()))
    d["skus"] = tuple(d.get("skus", ()))
    return Shipment(**d)


def decode_return(raw: bytes) -> Return:
    d = orjson.loads(raw)
    d["lines"] = tuple(ReturnLine(s, q) for s, q in d["lines"])
    return Return(**d)


def encode_return(r: Return) -> bytes:
    d = asdict(r)
    d["lines"] = [[ln.sku, ln.quantity] for ln in r.lines]
    return orjson.dumps(d)


def _unpack_avail(raw: Sequence[bytes | None], sku_ids: np.ndarray) -> np.ndarray:
    """available[w, k] from the warehouses' packed arrays: one numpy gather over all of them
    (an array shorter than the largest id reads as 0 past its end)."""
    n, k = len(raw), len(sku_ids)
    if not n or not k:
        return np.zeros((n, k), dtype=np.int64)
    width = 4 * (int(sku_ids.max()) + 1)
    rows = [b[:width] if b and len(b) >= width else (b or b"").ljust(width, b"\0") for b in raw]
    table = np.frombuffer(b"".join(rows), dtype=">i4").reshape(n, width // 4)
    return table[:, sku_ids].astype(np.int64)


def _lease_end(claim: str) -> int:
    """Lease end (ms) of a ``pending:<token>:<ms>`` claim; 0 (ended) for one without."""
    tail = claim.rsplit(":", 1)[-1]
    return int(tail) if claim.count(":") >= 2 and tail.isdigit() else 0


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v


class RedisLedger:
    """engine.payments.Ledger on Redis: write-once string keys (``SETNX`` then ``GET``, safe
    because values are never changed), so every server process shares the gateway's memory
    and a payment is never made twice. Synchronous: the gateway is called from a thread."""

    def __init__(self, url: str) -> None:
        self.r = SyncRedis.from_url(url)  # connection errors: StoreUnavailable

    def get(self, key: str) -> str | None:
        v = self.r.get(keys.ledger(key))
        return None if v is None else _s(v)

    def set_if_absent(self, key: str, value: str) -> str:
        k = keys.ledger(key)
        self.r.setnx(k, value)
        return _s(self.r.get(k))
