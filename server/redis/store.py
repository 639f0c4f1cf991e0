"""The only module that talks to Redis.

Every state change that must not be lost is one Lua script call (see scripts.py). Methods
take and return engine dataclasses; script return codes become typed exceptions here.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import orjson
import redis.asyncio as aioredis

from engine.errors import ConflictError, NotFoundError, OmsError, PreconditionError, TransitionError
from engine.lifecycle import HOLDS_STOCK, OrderStatus, allowed_sources
from engine.models import (
    Address,
    Allocation,
    Customer,
    HistoryEntry,
    Layout,
    Line,
    Order,
    OrderEvent,
    Product,
    StockLevel,
    Warehouse,
)
from server.redis import keys, scripts

PENDING = "pending:"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class PlaceEntry:
    """One entry of a PLACE_ORDERS call: a reservation (kind R) or an order with its home
    reservation (kind O). ``lines`` is merged per sku."""

    kind: str
    order_id: str
    lines: list[tuple[str, int]]
    status: int = 0
    channel: str = ""
    idem_digest: str = ""
    hold_until: int = 0
    doc: bytes = b""
    alloc: bytes = b""
    history: bytes = b""
    stat_fields: str = ""


def encode_doc(order: Order) -> bytes:
    return orjson.dumps({
        "cu": asdict(order.customer),
        "st": asdict(order.ship_to),
        "ln": [[ln.sku, ln.quantity, ln.unit_price_cents] for ln in order.lines],
        "ap": order.allow_partial,
        "ik": order.idempotency_key,
    })


def encode_alloc(allocs: Iterable[Allocation]) -> bytes:
    return orjson.dumps([[a.sku, a.warehouse_id, a.quantity, round(a.distance_km, 3)] for a in allocs])


class Store:
    def __init__(self, client: aioredis.Redis, *, events_maxlen: int = 1_000_000,
                 idempotency_ttl_s: int = 86400) -> None:
        self.r = client
        self.events_maxlen = events_maxlen
        self.idempotency_ttl_s = idempotency_ttl_s
        self._s = {name: client.register_script(src) for name, src in scripts.ALL.items()}
        self._wh_cache: tuple[float, list[Warehouse]] | None = None
        self._skus: set[str] = set()

    @classmethod
    def from_url(cls, url: str, **kw: int) -> "Store":
        return cls(aioredis.Redis.from_url(url, decode_responses=False), **kw)

    async def close(self) -> None:
        await self.r.aclose()

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
        await self.r.hset(keys.PRODUCTS, p.sku, orjson.dumps(asdict(p)))
        self._skus.add(p.sku)
        return p

    async def unknown_skus(self, skus: Iterable[str]) -> set[str]:
        missing = {s for s in skus if s not in self._skus}
        if missing:
            ordered = sorted(missing)
            found = await self.r.hmget(keys.PRODUCTS, ordered)
            for s, v in zip(ordered, found):
                if v is not None:
                    self._skus.add(s)
                    missing.discard(s)
        return missing

    # ---- stock --------------------------------------------------------------------------

    async def set_stock(self, warehouse_id: str, sku: str, on_hand: int, location: str) -> StockLevel:
        await self.warehouse(warehouse_id)
        sh = keys.Shard(warehouse_id)
        if sku not in self._skus:
            # Setting stock registers the sku, so a catalogue without dimensions still works.
            await self.r.hsetnx(keys.PRODUCTS, sku, orjson.dumps(asdict(Product(sku=sku))))
            self._skus.add(sku)
        res = await self._s["SET_STOCK"](keys=[sh.onhand, sh.reserved, sh.loc],
                                         args=[sku, on_hand, location])
        if res[0] == -1:
            raise PreconditionError(
                f"on_hand {on_hand} for sku {sku!r} in warehouse {warehouse_id!r} is below the "
                f"{res[1]} units reserved by open orders")
        return StockLevel(warehouse_id, sku, int(res[0]), int(res[1]), _s(res[2]))

    async def adjust_stock(self, warehouse_id: str, sku: str, delta: int,
                           idempotency_key: str) -> StockLevel:
        await self.warehouse(warehouse_id)
        if await self.unknown_skus([sku]):
            raise NotFoundError("sku", sku)
        sh = keys.Shard(warehouse_id)
        res = await self._s["ADJUST_STOCK"](
            keys=[sh.onhand, sh.reserved, sh.loc, sh.adjust(idempotency_key or "-")],
            args=[sku, delta, self.idempotency_ttl_s, "1" if idempotency_key else "0"])
        if res[0] == -1:
            raise PreconditionError(
                f"adjusting sku {sku!r} in warehouse {warehouse_id!r} by {delta} would leave "
                f"on_hand {res[1] + delta} below the {res[2]} units reserved (or below 0)")
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

    async def snapshot(self, warehouse_ids: Sequence[str], skus: Sequence[str]) -> np.ndarray:
        """available[w, s] = on_hand - reserved, read in one pipeline round trip. A snapshot
        can be stale by the time it is used; PLACE_ORDERS re-checks atomically."""
        if not skus:
            return np.zeros((len(warehouse_ids), 0), dtype=np.int64)
        async with self.r.pipeline(transaction=False) as p:
            for wid in warehouse_ids:
                sh = keys.Shard(wid)
                p.hmget(sh.onhand, skus)
                p.hmget(sh.reserved, skus)
            raw = await p.execute()
        out = np.zeros((len(warehouse_ids), len(skus)), dtype=np.int64)
        for i in range(len(warehouse_ids)):
            oh = np.array([int(v) if v is not None else 0 for v in raw[2 * i]], dtype=np.int64)
            rs = np.array([int(v) if v is not None else 0 for v in raw[2 * i + 1]], dtype=np.int64)
            out[i] = oh - rs
        return out

    # ---- placement ----------------------------------------------------------------------

    async def place_groups(self, groups: dict[str, list[PlaceEntry]], now: int) -> dict[str, list[int]]:
        """One PLACE_ORDERS call per warehouse, all in one pipeline round trip. Returns the
        per-entry codes (1 written, 2 already present, 0 short) per warehouse."""
        order = [w for w, es in groups.items() if es]
        if not order:
            return {}
        async with self.r.pipeline(transaction=False) as p:
            for wid in order:
                sh = keys.Shard(wid)
                args: list[object] = [sh.prefix, now, self.events_maxlen, len(groups[wid])]
                for e in groups[wid]:
                    args += [e.kind, e.order_id, len(e.lines)]
                    for sku, q in e.lines:
                        args += [sku, q]
                    if e.kind == "O":
                        args += [e.status, e.channel, e.idem_digest, e.hold_until, e.doc, e.alloc,
                                 e.history, self.idempotency_ttl_s, e.stat_fields]
                await self._s["PLACE_ORDERS"](
                    keys=[sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats], args=args, client=p)
            raw = await p.execute()
        return {wid: [int(x) for x in res] for wid, res in zip(order, raw)}

    async def release(self, warehouse_id: str, order_id: str, older_than_ms: int = 0) -> bool:
        sh = keys.Shard(warehouse_id)
        return bool(await self._s["RELEASE_RESERVATION"](
            keys=[sh.reserved, sh.resv], args=[order_id, older_than_ms]))

    async def release_many(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        async with self.r.pipeline(transaction=False) as p:
            for wid, oid in pairs:
                sh = keys.Shard(wid)
                await self._s["RELEASE_RESERVATION"](keys=[sh.reserved, sh.resv], args=[oid, 0], client=p)
            await p.execute()

    # ---- idempotency --------------------------------------------------------------------

    async def claim_keys(self, idem_keys: Sequence[str], token: str) -> list[str | None]:
        """Claim each key (SET NX). None where this call now owns the key, else the value
        already there: an order id, or ``pending:...`` while another request is placing it."""
        if not idem_keys:
            return []
        async with self.r.pipeline(transaction=False) as p:
            for k in idem_keys:
                p.set(keys.idem_claim(k), PENDING + token, nx=True, ex=self.idempotency_ttl_s)
                p.get(keys.idem_claim(k))
            raw = await p.execute()
        return [None if raw[2 * i] else _s(raw[2 * i + 1]) for i in range(len(idem_keys))]

    async def finish_keys(self, done: Sequence[tuple[str, str]], dropped: Sequence[str]) -> None:
        if not done and not dropped:
            return
        async with self.r.pipeline(transaction=False) as p:
            for k, oid in done:
                p.set(keys.idem_claim(k), oid, ex=self.idempotency_ttl_s)
            for k in dropped:
                p.delete(keys.idem_claim(k))
            await p.execute()

    async def wait_for_key(self, idem_key: str, timeout_s: float = 5.0) -> str:
        """Wait until a concurrent request that holds ``idem_key`` has its order id."""
        deadline = time.monotonic() + timeout_s
        delay = 0.005
        while True:
            v = await self.r.get(keys.idem_claim(idem_key))
            if v is not None and not v.startswith(PENDING.encode()):
                return _s(v)
            if v is None:
                raise ConflictError(f"the request with idempotency_key {idem_key!r} failed; retry it")
            if time.monotonic() > deadline:
                raise ConflictError(f"a request with idempotency_key {idem_key!r} is still in progress")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

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
                         reason: str = "", event: str = "", extra: dict[str, str] | None = None
                         ) -> tuple[bool, Order]:
        """Run TRANSITION; returns (changed, order after). Raises NotFoundError or
        TransitionError. ``action`` releases/consumes the reservation in the home shard only:
        the caller handles the other warehouses of a split order."""
        try:
            home = keys.home_of(order_id)
        except ValueError:
            raise NotFoundError("order", order_id) from None
        sh = keys.Shard(home)
        srcs = "," + ",".join(str(int(s)) for s in allowed_sources(target)) + ","
        args: list[object] = [sh.prefix, now_ms(), self.events_maxlen, order_id, int(target), srcs,
                              action, reason, event or f"order.{target.name.lower()}"]
        for k, v in (extra or {}).items():
            args += [k, v]
        res = await self._s["TRANSITION"](
            keys=[sh.order(order_id), sh.onhand, sh.reserved, sh.resv, sh.events, sh.stats],
            args=args)
        code = int(res[0])
        if code == -1:
            raise NotFoundError("order", order_id)
        if code == -2:
            raise TransitionError(order_id, OrderStatus(int(res[1])).name, target.name)
        return code == 1, await self.get_order(order_id)

    # ---- events -------------------------------------------------------------------------

    async def read_events(self, cursor: dict[str, str], block_ms: int, count: int = 500
                          ) -> list[OrderEvent]:
        """XREAD over every shard's stream from ``cursor`` (warehouse -> stream id); advances
        the cursor. Events come back merged in id (time) order."""
        whs = await self.warehouses()
        streams = {keys.Shard(w.id).events: cursor.setdefault(w.id, "$") for w in whs}
        raw = await self.r.xread(streams, count=count, block=block_ms or None)
        out: list[tuple[bytes, OrderEvent]] = []
        for stream, entries in raw or []:
            key = _s(stream)
            wid = key[len(keys.PREFIX) + 3: key.index("}")]
            for eid, f in entries:
                sid = _s(eid)
                cursor[wid] = sid
                ms, _, seq = sid.partition("-")
                out.append(((int(ms), int(seq), wid), OrderEvent(
                    event_id=f"{sid}@{wid}", order_id=_s(f[b"o"]), type=_s(f[b"t"]),
                    status=int(f[b"s"]), at_ms=int(ms), detail=_s(f.get(b"d", b"")),
                    channel=_s(f.get(b"c", b"")))))
        out.sort(key=lambda t: t[0])
        return [e for _, e in out]

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
        sid, _, wid = after_event_id.partition("@")
        ms, _, seq = sid.partition("-")
        if not ms.isdigit() or not seq.isdigit() or not wid:
            raise OmsError(f"malformed event id {after_event_id!r}, expected <ms>-<seq>@<warehouse>")
        before = f"{int(ms) - 1}-18446744073709551615" if int(ms) > 0 else "0-0"
        return {w.id: (sid if w.id == wid else before) for w in whs}

    async def _last_ids(self, wids: Sequence[str]) -> list[str]:
        async with self.r.pipeline(transaction=False) as p:
            for wid in wids:
                p.xrevrange(keys.Shard(wid).events, count=1)
            raw = await p.execute()
        return [_s(r[0][0]) if r else "0-0" for r in raw]

    # ---- reporting ------------------------------------------------------------------------

    async def counters(self) -> dict[str, int]:
        whs = await self.warehouses(0.0)
        async with self.r.pipeline(transaction=False) as p:
            for w in whs:
                p.hgetall(keys.Shard(w.id).stats)
            raw = await p.execute()
        total: dict[str, int] = {}
        for h in raw:
            for k, v in h.items():
                total[_s(k)] = total.get(_s(k), 0) + int(v)
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
                held = {toks[i]: int(toks[i + 1]) for i in range(1, len(toks), 2)}
                for sku, q in held.items():
                    summed[sku] = summed.get(sku, 0) + q
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
            for sku in set(onhand) | set(reserved):
                if reserved.get(sku, 0) < 0 or onhand.get(sku, 0) - reserved.get(sku, 0) < 0:
                    problems.append(f"{w.id}/{sku}: on_hand {onhand.get(sku, 0)} reserved "
                                    f"{reserved.get(sku, 0)}: available is negative")
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
                oid = _s(oid_b)
                try:
                    o = await self.get_order(oid)
                except NotFoundError:
                    o = None
                if o is None:
                    released += await self.release(w.id, oid, older_than_ms=cutoff)
                elif o.status not in holding or w.id not in o.warehouses:
                    released += await self.release(w.id, oid)
        return released


def decode_order(order_id: str, h: dict[bytes, bytes]) -> Order:
    doc = orjson.loads(h[b"doc"])
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
    )


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v
