"""The order record codec and the packed script arguments: pure functions between engine
dataclasses and the bytes Redis holds (order hash fields, returns, allocations, the
packed availability arrays, PLACE_ORDERS entries and RISK_SIGNALS rows). No I/O.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import orjson

from oms.engine.models import (
    Address,
    Allocation,
    Customer,
    HistoryEntry,
    Line,
    Order,
    Package,
    PaymentState,
    Return,
    ReturnLine,
    Shipment,
)
from oms.server.redis import keys
from oms.server.redis.resp_pipeline import Packed, bulk, bulk_int, bulk_str


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
    actor: str = ""  # who placed it (its order.placed event)

    def pack(self) -> Packed:
        """The entry's PLACE_ORDERS arguments, packed: kind, id, sku count, the (sku, id, qty)
        triples and, for kind O, its 12 order fields (see the script's header). Repeating
        pieces (triples, statuses, channels, the batch's timestamps) come from caches."""
        lines = self.lines
        oid = self.order_id.encode()
        head = b"$1\r\n%s\r\n$%d\r\n%s\r\n%s%s" % (
            _KIND[self.kind], len(oid), oid, bulk_int(len(lines)),
            b"".join([_triple(s, i, q) for s, i, q in lines]))
        if self.kind != "O":
            return Packed(3 + 3 * len(lines), head)
        ik, doc, al, hist, risk = self.idem_digest.encode(), self.doc, self.alloc, self.history, self.risk
        return Packed(15 + 3 * len(lines), b"%s%s%s$%d\r\n%s\r\n%s$%d\r\n%s\r\n$%d\r\n%s\r\n"
                      b"$%d\r\n%s\r\n%s%s$%d\r\n%s\r\n%s%s" % (
                          head, bulk_int(self.status), bulk_str(self.channel), len(ik), ik,
                          bulk_int(self.hold_until), len(doc), doc, len(al), al, len(hist), hist,
                          bulk_str(self.stat_fields), bulk_int(self.promised_by), len(risk), risk,
                          bulk_int(self.dist_m), bulk_str(self.actor)))


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


_NONE = b"$0\r\n\r\n"  # an empty bulk string: a field this bucket does not count


_NONE4 = _NONE * 4


def _pack_risk(rows: Sequence[RiskRow]) -> list[tuple[int, Packed, list[int]]]:
    """RISK_SIGNALS' arguments, one call per bucket the rows touch: (bucket, args, where each
    value of its answer goes: ``8 * row + RiskSignals index``). Each signal field of a row goes
    to its own bucket, in batch order; the history values go with the history field (the
    customer's, else the e-mail's)."""
    args: list[list[bytes]] = [[] for _ in range(keys.RISK_BUCKETS)]
    plans: list[list[int]] = [[] for _ in range(keys.RISK_BUCKETS)]
    bucket_of = keys.risk_bucket
    for i, (c, e, a, v, la, lo, co) in enumerate(rows):
        base = 8 * i
        if c:
            f = b"c:" + c.encode()
            n = bucket_of(f)
            args[n].append(bulk(f) + bulk_int(v) + bulk_int(la) + bulk_int(lo) + bulk_str(co))
            plans[n] += (base, base + 3, base + 4, base + 5, base + 6, base + 7)
        if e:
            f = b"e:" + e.encode()
            n = bucket_of(f)
            if c:
                args[n].append(bulk(f) + _NONE4)
                plans[n].append(base + 1)
            else:
                args[n].append(bulk(f) + bulk_int(v) + bulk_int(la) + bulk_int(lo) + bulk_str(co))
                plans[n] += (base + 1, base + 3, base + 4, base + 5, base + 6, base + 7)
        if a:
            f = b"a:" + a.encode()
            n = bucket_of(f)
            args[n].append(bulk(f) + _NONE4)
            plans[n].append(base + 2)
    return [(n, Packed(len(p) * 5, b"".join(p)), plans[n]) for n, p in enumerate(args) if p]


def _combine_risk(n_rows: int, plans: Sequence[list[int]], answers: Sequence[list]
                  ) -> list[RiskSignals]:
    """Each row's signals from the bucket calls' answers (``plans``: where each value of a
    call's answer goes, as ``_pack_risk`` gave them). A value not in any answer (a field the
    row does not have) is 0, and "-" for the country."""
    acc: list = [0, 0, 0, 0, 0, 0, 0, "-"] * n_rows
    put = acc.__setitem__
    for plan, flat in zip(plans, answers):
        deque(map(put, plan, flat), 0)  # acc[pos] = val for each, in C
    return [RiskSignals(*acc[k:k + 7], _s(acc[k + 7])) for k in range(0, 8 * n_rows, 8)]


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


STAGED = "~m"


def idempotency_digest(idem_key: str) -> str:
    """How a client's idempotency key is stored (PlaceEntry.idem_digest)."""
    return keys.digest(idem_key)


def home_warehouse(order_id: str) -> str:
    """The warehouse whose shard holds the order (its id says which); ValueError for an id
    that names none."""
    return keys.home_of(order_id)


def staged_id(order_id: str) -> str:
    """Record id of a reservation staged for a re-allocation move."""
    return order_id + STAGED


def _tracking_entry(event_id: str, v: str) -> tuple[str, str, str, int, str]:
    """A ``tev:`` field: "type|at|tracking number|location" (older records: "type|at|location").
    """
    parts = v.split("|", 3)
    if len(parts) == 4 and (parts[2] == "" or parts[2].isalnum()):
        kind, at, tn, loc = parts
    else:
        kind, at, loc = (v.split("|", 2) + ["", "", ""])[:3]
        tn = ""
    return event_id, tn, kind, int(at) if at.isdigit() else 0, loc


def decode_order(order_id: str, h: dict[bytes, bytes]) -> Order:
    doc = orjson.loads(h[b"doc"])
    risk = orjson.loads(h.get(b"risk", b"[0,[]]"))
    returns, tev, log = [], set(), []
    for k, v in h.items():
        if k.startswith(b"ret:"):
            returns.append(decode_return(v))
        elif k.startswith(b"tev:"):
            eid = _s(k[4:])
            tev.add(eid)
            log.append(_tracking_entry(eid, _s(v)))
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
        history=decode_history(h[b"hist"]),
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
        tracking_log=sorted(log, key=lambda e: (e[3], e[0])),
        picked_warehouses=_s(h[b"pkw"]).split(",") if h.get(b"pkw") else [],
    )


def decode_history(raw: bytes) -> list[HistoryEntry]:
    """Entries are [status, at_ms, reason, actor]; those written before the actor was
    recorded have three elements (actor "")."""
    return [HistoryEntry(int(e[0]), int(e[1]), *e[2:4]) for e in orjson.loads(raw)]


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


def _s(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode() if isinstance(v, bytes) else v

