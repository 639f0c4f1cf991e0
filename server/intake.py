"""Order intake: plan a batch of orders with the allocation kernel, make the plan real with
one PLACE_ORDERS call per warehouse, re-plan what a stale snapshot got wrong.

Steps for a batch (every order independent, results in request order):
1. one round trip: idempotency claims (CLAIM_KEYS, one call per bucket), the fraud counts
   (RISK_SIGNALS) and one availability snapshot for the batch's skus; repeats (a key already
   taken) have their fraud counts taken back (RISK_UNDO) and resolve to the first order;
2. one ``engine.allocation.allocate`` call
   (one per channel scope when the batch has orders of channels limited to some warehouses:
   ``engine.scoped_allocation``; an order of a disabled channel fails alone);
3. split orders: reservations in their non-home warehouses first (kind R entries);
4. home entries (kind O: the order record, its home reservation, indexes, event, counters)
   in one atomic script per warehouse;
5. any entry short of stock (the snapshot was stale): compensate (release its R entries) and
   re-plan those orders with a fresh snapshot.
A crash between 3 and 4 leaves reservations without an order; the recovery sweep releases
them after a grace period, and ``oms audit`` reports any that remain.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from oms.engine import allocation, fraud, geo, scoped_allocation
from oms.engine.errors import (ConflictError, ItemFailedError, NotFoundError, OmsError, PreconditionError,
                           ValidationError, quote)
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Allocation, HistoryEntry, Order, OrderRequest, Warehouse
from oms.engine.scoped_allocation import ChannelScopes
from oms.server.auth.principal import current_actor
from oms.server.redis.store import (PENDING, TAKEOVER, PlaceEntry, RiskRow, RiskSignals, Store, encode_alloc,
                                encode_doc, idempotency_digest, now_ms)

log = logging.getLogger(__name__)

Result = Order | OmsError
# A batch's channel scope masks, and the scope of each request index not in scope 0.
_Scoped = tuple[list[np.ndarray], dict[int, int]]


class _IdGen:
    """Order ids ``<home>.<suffix>``; the suffix is time-sortable (ms in hex first) and unique
    across processes (random instance part + counter)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._inst = secrets.token_hex(4)
        # A forked worker takes a new instance part (asking getpid() per id is a syscall).
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._lock = threading.Lock()
        self._inst = secrets.token_hex(4)

    def __call__(self, home: str, ms: int) -> str:
        with self._lock:
            self._n = n = (self._n + 1) & 0xFFFFFF
        return f"{home}.{ms:011x}{self._inst}{n:06x}"


new_order_id = _IdGen()


@dataclass(slots=True)
class _Claim:
    """A batch's idempotency claims: ``pending`` (request index -> key) not claimed yet;
    ``got`` each claimed index's answer (None: this request owns the key; TAKEOVER; or the
    order id / pending claim of the request that holds it)."""
    token: str
    pending: dict[int, str]
    got: dict[int, str | None] = field(default_factory=dict)


@dataclass(slots=True)
class _Planned:
    idx: int  # position in the request list
    req: OrderRequest
    order: Order
    home: str
    secondary: dict[str, list[tuple[str, int, int]]]  # warehouse -> merged (sku, id, qty)
    home_lines: list[tuple[str, int, int]]
    distance_km: float  # sum over the warehouses shipping (each counted once)
    partial: bool  # allocated less than ordered (allow_partial)


class Intake:
    def __init__(self, store: Store, *, fraud_hold_seconds: int = 3600, replan_attempts: int = 8,
                 authorize: Callable[[Order, str], Awaitable[Order]] | None = None,
                 risk: fraud.RiskConfig | None = None, promise_days: int = 5) -> None:
        self.store = store
        self.fraud_hold_ms = fraud_hold_seconds * 1000
        self.replan_attempts = replan_attempts
        self.authorize = authorize
        self.risk = risk or fraud.RiskConfig()
        self.promise_ms = promise_days * 86_400_000
        self._background: set[asyncio.Task[Any]] = set()

    async def place(self, requests: Sequence[OrderRequest | OmsError]) -> list[Result]:
        """Place independent orders. An entry that is already an error (failed validation)
        passes through untouched, so results stay in request order.

        The work runs as its own task behind ``asyncio.shield``: gRPC cancels a handler whose
        deadline passed or whose client went away, and a cancel between two writes left
        reservations without their order and claims pending with nobody to finish them. Once
        a batch starts it finishes (or rolls back) whatever its caller does."""
        task = asyncio.get_running_loop().create_task(self._place(requests))
        self._background.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # retrieved here: a caller cancelled meanwhile never sees it
            log.debug("intake batch failed: %r", task.exception())

    async def _place(self, requests: Sequence[OrderRequest | OmsError], depth: int = 0
                     ) -> list[Result]:
        results: list[Result | None] = [r if isinstance(r, OmsError) else None for r in requests]
        todo = [i for i, r in enumerate(requests) if not isinstance(r, OmsError)]
        if not todo:
            return results  # type: ignore[return-value]

        # Unknown skus are NOT_FOUND before anything is claimed or reserved.
        unknown = await self.store.unknown_skus({ln.sku for i in todo for ln in requests[i].lines})
        if unknown:
            keep = []
            for i in todo:
                bad = sorted({ln.sku for ln in requests[i].lines} & unknown)
                if bad:
                    results[i] = NotFoundError("sku", bad[0])
                else:
                    keep.append(i)
            todo = keep

        # Idempotency: the first request of a key in this batch claims it; later ones in the
        # batch, and requests whose key is already claimed, resolve to that order.
        first_of: dict[str, int] = {}
        followers: list[tuple[int, int]] = []
        claimants: list[int] = []
        for i in todo:
            k = requests[i].idempotency_key
            if not k:
                claimants.append(i)
            elif k in first_of:
                followers.append((i, first_of[k]))
            else:
                first_of[k] = i
                claimants.append(i)
        keyed = [i for i in claimants if requests[i].idempotency_key]
        # The keys are claimed in the batch's first round trip (with the fraud counts and the
        # snapshot: one round trip fewer per batch); _Claim carries each key's answer back.
        claim = _Claim(secrets.token_hex(8), {i: requests[i].idempotency_key for i in keyed})
        placed = await self._place_new([(i, requests[i]) for i in claimants], claim) \
            if claimants else {}
        existing: list[tuple[int, str]] = []
        taken_over: list[int] = []
        adopted: list[tuple[str, str]] = []  # (key, order id) of claims taken over and resolved
        for i, c in claim.got.items():
            if c == TAKEOVER:
                taken_over.append(i)
            elif c is not None:
                existing.append((i, c))
        if taken_over:
            # The previous owner's lease ended: it died, or was cut off, maybe after placing
            # the order. Its order, if any, is in the shard mapping written with it; without
            # one, this request (which owns the claim now) places it.
            found = await asyncio.gather(*[self.store.idem_order(requests[i].idempotency_key)
                                           for i in taken_over])
            again = []
            for i, oid in zip(taken_over, found):
                claim.got[i] = None
                if oid:
                    existing.append((i, oid))
                    adopted.append((requests[i].idempotency_key, oid))
                else:
                    again.append((i, requests[i]))
            if again:
                placed.update(await self._place_new(again, claim))
        token = claim.token
        if self.authorize:
            paying = [i for i, r in placed.items() if isinstance(r, Order) and requests[i].payment_token
                      and r.status != OrderStatus.BACKORDERED]
            paid = await asyncio.gather(*[self._authorize(placed[i], requests[i].payment_token)
                                          for i in paying])
            placed.update(zip(paying, paid))
        for i, res in placed.items():
            results[i] = res
        # Off the critical path: placed orders' claims get their order id (a pending claim
        # then always means a request at work), failed requests give their keys back so that
        # a retry can place the order. One whose outcome is unknown keeps its claim: when the
        # lease ends a retry takes it over and finds the order or places it.
        done = adopted + [(requests[i].idempotency_key, r.id) for i, r in placed.items()
                          if isinstance(r, Order) and requests[i].idempotency_key]
        dropped = [requests[i].idempotency_key for i, r in placed.items()
                   if not isinstance(r, Order) and requests[i].idempotency_key
                   and not (isinstance(r, ItemFailedError) and r.maybe_written)]
        if done or dropped:
            task = asyncio.get_running_loop().create_task(
                self.store.finish_keys(done, dropped, token))
            self._background.add(task)
            task.add_done_callback(self._settled)

        for i, value in existing:
            results[i] = await self._resolve_existing(requests[i], value, depth)
        for i, j in followers:
            results[i] = results[j]
        return results  # type: ignore[return-value]

    async def _authorize(self, order: Order, token: str) -> Result:
        try:
            return await self.authorize(order, token)  # type: ignore[misc]
        except OmsError as e:
            # The gateway stayed unavailable after its retries. The order exists with its
            # stock; report it placed and unpaid (payment.status NONE) rather than lose it.
            log.warning("payment for %s failed: %s", order.id, e)
            return order
        except Exception:
            # A bug in this one order's payment step: the order exists all the same, and its
            # batch-mates are not affected. Report it as placed and unpaid, as above.
            log.exception("payment for %s failed unexpectedly", order.id)
            return order

    @staticmethod
    def _risk_rows(reqs: list[OrderRequest], values: list[int]) -> list[RiskRow]:
        rows = []
        for r, value in zip(reqs, values):
            to = r.ship_to
            addr = f"{to.postal_code}|{to.line1}".lower() if to.line1 else ""
            rows.append(RiskRow(r.customer.id, r.customer.email.lower(), addr, value,
                                round(to.latitude * 1e6), round(to.longitude * 1e6),
                                (to.country or "US").upper()))
        return rows

    def _assess(self, reqs: list[OrderRequest], values: list[int], signals: list[RiskSignals]
                ) -> list[fraud.RiskAssessment]:
        """Fraud rules for each order, from the velocity and history counters (RISK_SIGNALS)."""
        cfg = self.risk
        out = []
        for r, value, sig in zip(reqs, values, signals):
            h_n = sig.orders
            hist = fraud.CustomerHistory(
                orders=h_n, mean_value_cents=sig.value_sum / h_n if h_n else 0.0,
                usual_lat=sig.lat_e6_sum / 1e6 / h_n if h_n else None,
                usual_lon=sig.lon_e6_sum / 1e6 / h_n if h_n else None,
                usual_country="" if sig.country == "-" else sig.country)
            out.append(fraud.assess(fraud.RiskInput(
                order_value_cents=value, customer=hist, orders_by_customer_in_window=sig.by_customer,
                orders_by_email_in_window=sig.by_email, orders_by_address_in_window=sig.by_address,
                ship_country=(r.ship_to.country or "US").upper(),
                ship_lat=r.ship_to.latitude, ship_lon=r.ship_to.longitude), cfg,
                validate=False))  # counters from Redis, coordinates checked by the codec
        return out

    async def _resolve_existing(self, req: OrderRequest, value: str, depth: int) -> Result:
        """The order of a key someone else claimed. A claim that was given back, or whose
        owner's lease ended with no order, gets a fresh attempt here: a retry ends with the
        order, never with "still in progress" for ever."""
        try:
            oid = value
            if value.startswith(PENDING):
                oid = await self.store.resolve_claim(req.idempotency_key)
                if not oid:
                    if depth >= 2:  # claimed and lost twice more meanwhile: a busy key
                        return ConflictError(f"idempotency_key {quote(req.idempotency_key)} is "
                                             "contended; retry")
                    return (await self._place([req], depth + 1))[0]
            return await self.store.get_order(oid)
        except OmsError as e:
            return e

    async def _place_new(self, items: list[tuple[int, OrderRequest]], claim: "_Claim"
                         ) -> dict[int, Result]:
        """Place orders that own their claims. An unexpected error (a bug) met before anything
        was written is narrowed down by placing each half of the orders on its own, so that
        only the order causing it fails; one met after writes began fails the orders not known
        to be placed, as maybe written (they keep their claims: a retry resolves them)."""
        out: dict[int, Result] = {}
        writing = [False]
        try:
            await self._place_batch(items, out, writing, claim)
        except OmsError:
            raise
        except Exception:
            # not the requests whose key turned out to be someone else's: they resolve to
            # that order
            rest = [(i, r) for i, r in items if i not in out and claim.got.get(i) is None]
            if writing[0] or len(rest) == 1:
                log.exception("placing %d orders failed unexpectedly", len(rest))
                msg = ("unexpected error while placing this order; it may have been placed: "
                       "retry with the same idempotency_key") if writing[0] else \
                    "unexpected error while placing this order; nothing was written"
                for i, _ in rest:
                    out[i] = ItemFailedError(msg, maybe_written=writing[0])
            else:
                log.warning("placing %d orders failed unexpectedly before writing; placing "
                            "them in halves to isolate the cause", len(rest))
                mid = len(rest) // 2
                for half in (rest[:mid], rest[mid:]):
                    out.update(await self._place_new(half, claim))
        return out

    async def _place_batch(self, items: list[tuple[int, OrderRequest]], out: dict[int, Result],
                           writing: list[bool], claim: "_Claim") -> None:
        whs = [w for w in await self.store.warehouses() if not w.disabled]
        if not whs:
            # a repeat still resolves to its order: claim apart before failing the others
            items = await self._claim_apart(items, claim)
            err = PreconditionError("no enabled warehouse: add one with UpsertWarehouse")
            out.update((i, err) for i, _ in items)
            return
        # Each order ships only from its channel's warehouses (engine.scoped_allocation); one
        # that cannot (a disabled channel) fails alone. Cached: no round trip on most batches.
        scoped: _Scoped | None = None
        chans = await self.store.channels()
        if chans:
            scopes = ChannelScopes([w.id for w in whs], chans)
            got = {i: scopes.scope(r.channel) for i, r in items}
            if any(isinstance(s, OmsError) for s in got.values()):
                items = await self._claim_apart(items, claim)
            out.update((i, s) for i, s in got.items() if isinstance(s, OmsError)
                       and claim.got.get(i) is None)
            items = [(i, r) for i, r in items if not isinstance(got.get(i), OmsError)]
            if not items:
                return
            scope_of = {i: s for i, s in got.items() if isinstance(s, int) and s}
            scoped = (scopes.masks, scope_of) if scope_of else None
        # One round trip for the idempotency claims, the fraud counters and the first
        # availability snapshot.
        skus = list(dict.fromkeys(ln.sku for _, r in items for ln in r.lines))
        ids = await self.store.sku_ids(skus)
        reqs = [r for _, r in items]
        values = [sum([ln.quantity * ln.unit_price_cents for ln in r.lines]) for r in reqs]
        rows = self._risk_rows(reqs, values)
        to_claim = [i for i, _ in items if i in claim.pending]
        now, window = now_ms(), int(self.risk.velocity_window_s)
        answers, signals, available = await self.store.claim_risk_and_snapshot(
            [claim.pending.pop(i) for i in to_claim], claim.token, rows, now, window,
            [w.id for w in whs], np.array([ids[s] for s in skus], dtype=np.int64))
        claim.got.update(zip(to_claim, answers))
        if any(c is not None for c in answers):
            # Repeats (the key was taken) were counted with the rest: take their counts back
            # and leave them out (_place resolves them). Batch-mates of the same customer
            # counted after one in this call saw one too many; repeats are rare.
            lost = [k for k, (i, _) in enumerate(items) if claim.got.get(i) is not None]
            await self.store.undo_risk([rows[k] for k in lost], now, window)
            keep = [k for k in range(len(items)) if claim.got.get(items[k][0]) is None]
            items, reqs, values, signals = ([xs[k] for k in keep]
                                            for xs in (items, reqs, values, signals))
            if not items:
                return
        risks = dict(zip([i for i, _ in items], self._assess(reqs, values, signals)))
        prefetched: tuple[list[str], np.ndarray] | None = (skus, available)
        pending = items
        for attempt in range(self.replan_attempts):
            if not pending:
                break
            failed = await self._attempt(pending, whs, out, risks, writing, prefetched, scoped)
            prefetched = None  # a re-plan reads fresh availability
            if failed:
                log.debug("re-planning %d orders after a stale snapshot (attempt %d)",
                          len(failed), attempt + 1)
            pending = failed
        for i, _ in pending:
            out[i] = ConflictError(
                f"stock for this order kept changing under {self.replan_attempts} attempts; retry")

    async def _claim_apart(self, items: list[tuple[int, OrderRequest]], claim: "_Claim"
                           ) -> list[tuple[int, OrderRequest]]:
        """Claim the keys of ``items`` not claimed yet on their own (a batch that fails before
        its first round trip); returns the items whose claims this request owns."""
        todo = [i for i, _ in items if i in claim.pending]
        if todo:
            got = await self.store.claim_keys([claim.pending.pop(i) for i in todo], claim.token)
            claim.got.update(zip(todo, got))
        return [(i, r) for i, r in items if claim.got.get(i) is None]

    async def _attempt(self, items: list[tuple[int, OrderRequest]], whs: list[Warehouse],
                       out: dict[int, Result], risks: dict[int, fraud.RiskAssessment],
                       writing: list[bool], prefetched: tuple[list[str], np.ndarray] | None = None,
                       scoped: _Scoped | None = None) -> list[tuple[int, OrderRequest]]:
        now = now_ms()
        planned = await self._plan(items, whs, now, risks, prefetched, scoped)
        # Each order's record is encoded before anything is written: one that cannot be (a
        # bug) fails alone instead of stopping its batch-mates between the two phases.
        entries: dict[str, PlaceEntry] = {}
        plans = []
        for p in planned:
            try:
                entries[p.order.id] = self._home_entry(p)
            except Exception:
                log.exception("order %s cannot be encoded", p.order.id)
                out[p.idx] = ItemFailedError("unexpected error while encoding this order; "
                                             "nothing was written")
                continue
            plans.append(p)
        writing[0] = True
        # Phase 1: reservations of split orders outside their home warehouse.
        groups: dict[str, list[PlaceEntry]] = {}
        for p in plans:
            for wid, lines in p.secondary.items():
                groups.setdefault(wid, []).append(PlaceEntry("R", p.order.id, lines))
        failed_ids: set[str] = set()
        compensate: list[tuple[str, str]] = []
        if groups:
            codes = await self.store.place_groups(groups, now)
            for wid, es in groups.items():
                for e, c in zip(es, codes[wid]):
                    if c == 0:
                        failed_ids.add(e.order_id)
            for wid, es in groups.items():
                for e, c in zip(es, codes[wid]):
                    if c != 0 and e.order_id in failed_ids:
                        compensate.append((wid, e.order_id))
        # Phase 2: the order records with their home reservations.
        homes: dict[str, list[PlaceEntry]] = {}
        live = [p for p in plans if p.order.id not in failed_ids]
        for p in live:
            homes.setdefault(p.home, []).append(entries[p.order.id])
        retry: list[tuple[int, OrderRequest]] = []
        if homes:
            codes = await self.store.place_groups(homes, now)
            by_id = {p.order.id: p for p in live}
            for wid, es in homes.items():
                for e, c in zip(es, codes[wid]):
                    p = by_id[e.order_id]
                    if c == 0:
                        failed_ids.add(p.order.id)
                        compensate += [(w, p.order.id) for w in p.secondary]
                    else:
                        out[p.idx] = p.order
        await self.store.release_many(compensate)
        for p in plans:
            if p.order.id in failed_ids:
                retry.append((p.idx, p.req))
        return retry

    def _home_entry(self, p: _Planned) -> PlaceEntry:
        o = p.order
        # The script adds the per-minute volume, status and channel counters itself.
        flags, dist_m = "backorder=1", 0
        if o.status != OrderStatus.BACKORDERED:
            n_wh = len(p.secondary) + 1
            flags = _FLAGS[n_wh > 1, p.partial].format(n_wh)
            dist_m = int(p.distance_km * 1000)
        return PlaceEntry(
            "O", o.id, p.home_lines, status=o.status, channel=o.channel,
            idem_digest=idempotency_digest(o.idempotency_key) if o.idempotency_key else "",
            hold_until=o.hold_until, doc=encode_doc(o), alloc=encode_alloc(o.allocations),
            history=orjson.dumps([[h.status, h.at_ms, h.reason, h.actor] for h in o.history]),
            stat_fields=flags, promised_by=o.promised_by,
            risk=orjson.dumps([o.risk_score, o.risk_reasons]), dist_m=dist_m,
            actor=o.history[0].actor)

    async def _plan(self, items: list[tuple[int, OrderRequest]], whs: list[Warehouse],
                    now: int, risks: dict[int, fraud.RiskAssessment],
                    prefetched: tuple[list[str], np.ndarray] | None = None,
                    scoped: _Scoped | None = None) -> list[_Planned]:
        sku_index: dict[str, int] = {}
        line_ptr = [0]
        line_sku: list[int] = []
        line_qty: list[int] = []
        for _, req in items:
            for ln in req.lines:
                line_sku.append(sku_index.setdefault(ln.sku, len(sku_index)))
                line_qty.append(ln.quantity)
            line_ptr.append(len(line_sku))
        skus = list(sku_index)
        ids = await self.store.sku_ids(skus)
        sku_ids = np.array([ids[s] for s in skus], dtype=np.int64)
        wids = [w.id for w in whs]
        if prefetched is not None:
            col = {s: k for k, s in enumerate(prefetched[0])}
            available = prefetched[1][:, [col[s] for s in skus]]
        else:
            available = await self.store.snapshot(wids, sku_ids)
        lat = np.array([r.ship_to.latitude for _, r in items], dtype=np.float64)
        lon = np.array([r.ship_to.longitude for _, r in items], dtype=np.float64)
        # The arrays are built here with the kernels' dtypes, and the codec checked every
        # coordinate and quantity: the kernels' input checks are skipped.
        dist = geo.distance_matrix(lat, lon, np.array([w.latitude for w in whs], dtype=np.float64),
                                   np.array([w.longitude for w in whs], dtype=np.float64), check=False)
        args = (np.array(line_ptr, dtype=np.int64), np.array(line_sku, dtype=np.int64),
                np.array(line_qty, dtype=np.int64), dist,
                np.ascontiguousarray(available, dtype=np.int64))
        partial = np.array([r.allow_partial for _, r in items], dtype=np.bool_)
        if scoped is None:  # every order may use every enabled warehouse: one kernel call
            plan = allocation.allocate(*args, np.ones(len(whs), dtype=np.bool_), partial,
                                       inplace=True, check=False)
            nearest = np.argmin(dist, axis=1).tolist() if len(wids) else []
        else:  # one kernel call per channel scope, on the same availability
            masks, scope_of = scoped
            scope = np.array([scope_of.get(i, 0) for i, _ in items], dtype=np.int64)
            plan = scoped_allocation.allocate_scoped(*args, masks, scope, partial, inplace=True,
                                                     check=False)
            # a backordered order waits at the nearest warehouse it may ship from
            nearest = scoped_allocation.nearest_allowed(dist, masks, scope).tolist()

        # Plain Python lists and shared immutable pieces: per-order numpy scalar access and
        # object construction are what this loop costs.
        dist_rows = dist.tolist()
        row_ptr = plan.row_ptr().tolist()
        a_line, a_wh, a_qty = plan.alloc_line.tolist(), plan.alloc_wh.tolist(), plan.alloc_qty.tolist()
        # The history entries orders share, per actor: a batch carries the orders of
        # concurrent calls, each request its own caller's actor.
        default_actor = current_actor()
        shared: dict[str, tuple[HistoryEntry, HistoryEntry, HistoryEntry]] = {}
        hold_until, promised_by = now + self.fraud_hold_ms, now + self.promise_ms
        out = []
        for k, (idx, req) in enumerate(items):
            r0, r1 = row_ptr[k], row_ptr[k + 1]
            risk = risks.get(idx)
            drow = dist_rows[k]
            lines = req.lines
            actor = req.actor or default_actor
            entries = shared.get(actor)
            if entries is None:
                shared[actor] = entries = (
                    HistoryEntry(int(OrderStatus.RECEIVED), now, "received", actor),
                    HistoryEntry(int(OrderStatus.ALLOCATED), now,
                                 _reason(OrderStatus.ALLOCATED, None), actor),
                    HistoryEntry(int(OrderStatus.BACKORDERED), now,
                                 _reason(OrderStatus.BACKORDERED, None), actor))
            received, allocated, backordered = entries
            allocs: list[Allocation] = []
            per_wh: dict[int, dict[str, int]] = {}
            shipped_km = 0.0
            units = 0
            base = line_ptr[k]
            for r in range(r0, r1):
                w, q = a_wh[r], a_qty[r]
                sku = lines[a_line[r] - base].sku
                km = round(drow[w], 3)
                allocs.append(Allocation(sku, wids[w], q, km))
                d = per_wh.get(w)
                if d is None:
                    per_wh[w] = d = {}
                    shipped_km += km
                d[sku] = d.get(sku, 0) + q
                units += q
            if allocs:
                # Home = nearest warehouse of the allocation; its part is atomic with the record.
                hw = next(iter(per_wh)) if len(per_wh) == 1 else \
                    min(per_wh, key=lambda w: (drow[w], wids[w]))
                if risk is not None and risk.hold:
                    status = OrderStatus.ON_HOLD  # keeps its stock until reviewed (ReleaseHold)
                    last = HistoryEntry(int(status), now, _reason(status, risk), actor)
                else:
                    status, last = OrderStatus.ALLOCATED, allocated
            else:
                hw, status, last = nearest[k], OrderStatus.BACKORDERED, backordered
            home = wids[hw]
            order = Order(
                id=new_order_id(home, now), idempotency_key=req.idempotency_key,
                channel=req.channel, status=int(status), customer=req.customer,
                ship_to=req.ship_to, lines=list(lines), allocations=allocs,
                hold_until=hold_until if allocs else 0, created_at=now, updated_at=now,
                history=[received, last], allow_partial=req.allow_partial,
                promised_by=promised_by, risk_score=float(risk.score) if risk else 0.0,
                risk_reasons=list(risk.reasons) if risk else [])
            home_part = per_wh.pop(hw, {})
            out.append(_Planned(
                idx, req, order, home,
                {wids[w]: [(s, ids[s], q) for s, q in d.items()] for w, d in per_wh.items()},
                [(s, ids[s], q) for s, q in home_part.items()],
                shipped_km,
                units < sum(ln.quantity for ln in lines) if allocs else False))
        return out


# stats flags of a placed order by (split, partial); {} is the number of warehouses shipping
_FLAGS = {(False, False): "alloc=1,ship={}", (True, False): "alloc=1,ship={},split=1",
          (False, True): "alloc=1,ship={},partial=1", (True, True): "alloc=1,ship={},split=1,partial=1"}


def _reason(status: OrderStatus, risk: fraud.RiskAssessment | None) -> str:
    if status == OrderStatus.ON_HOLD and risk is not None:
        return "held for review: " + "; ".join(risk.reasons)
    return "allocated" if status == OrderStatus.ALLOCATED else "no stock in the network"


__all__ = ["Intake", "ValidationError", "new_order_id"]
