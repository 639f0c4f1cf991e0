"""Store area: the stock invariant audit and the recovery sweeps.
"""
from __future__ import annotations

import numpy as np

from oms.engine.errors import NotFoundError
from oms.engine.lifecycle import HOLDS_STOCK, SHIPPED_OR_LATER
from oms.server.redis import keys
from oms.server.redis.base import StoreBase, now_ms
from oms.server.redis.records import STAGED, _s


def _record_ms(rec: bytes | str) -> int:
    """When a reservation record ("<ms> <sku> <id> <qty> ...") was written; 0 if unreadable
    (then it is old enough to be checked)."""
    head = (rec.decode() if isinstance(rec, bytes) else rec).split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


class AuditOps(StoreBase):
    """Invariant audit, recovery sweep, orphan sweep."""

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
        phase). Staged moves and other repairs stay with ``recover``.

        It runs on the serving event loop beside traffic, so its cost follows the split parts,
        not every open order: PLACE_ORDERS writes an order and its home reservation in one
        script and orders are never deleted, so only a record of an order homed in another
        warehouse (or with a malformed id) can be an orphan. Records are read a page at a time
        (HSCAN), records younger than the grace are skipped, and the existence checks of a
        page go in one pipeline."""
        released = 0
        cutoff = now_ms() - grace_ms
        for w in await self.warehouses(0.0):
            sh = keys.Shard(w.id)
            cursor = 0
            while True:
                cursor, page = await self.r.hscan(sh.resv, cursor, count=1000)
                suspects: list[tuple[str, str]] = []  # (record id, its order's key; "" malformed)
                for k, rec in page.items():
                    rid = _s(k)
                    if rid.endswith(STAGED) or _record_ms(rec) > cutoff:
                        continue
                    try:
                        home = keys.home_of(rid)
                    except ValueError:
                        suspects.append((rid, ""))
                        continue
                    if home != w.id:
                        suspects.append((rid, keys.Shard(home).order(rid)))
                if suspects:
                    async with self.r.pipeline(transaction=False) as p:
                        for _, ok in suspects:
                            if ok:
                                p.exists(ok)
                        there = iter(await p.execute())
                    for rid, ok in suspects:
                        if not ok or not next(there):
                            released += await self.release(w.id, rid, older_than_ms=cutoff)
                if not int(cursor):
                    break
        return released

    async def take_sweep_turn(self, owner: str, period_ms: int) -> bool:
        """True for the first caller in each ``period_ms``: every worker process runs a
        sweeper, and one sweep per interval is enough."""
        return bool(await self.r.set(keys.SWEEP_TURN, owner, nx=True, px=max(1, period_ms)))
