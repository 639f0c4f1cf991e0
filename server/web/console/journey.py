"""An order's journey (the timeline of its order page) and the points of its map. Pure: built
from the GetOrder answer (plus the returns and the wave batch when the page fetched them), no
I/O except the offline place look-up of ``locate``.

Each timeline entry has a stable lower-case type, the page's ``data-event`` (tests and
browser tests rely on these):

    placed            the order was received (history RECEIVED)
    payment           the card payment was authorised
    reserved          stock reserved (intake, a backorder filled): where, how far
    reallocated       the re-allocation moved the reservation to cheaper warehouses
    on_hold           held for fraud review, with the risk score and reasons
    released          the hold was released (by whom, why)
    backordered       no stock in the network (or a stock count took it back)
    wave              released to a pick wave (wave id and the batch holding the order)
    picked            pick confirmed (a split order's part: "part picked in <warehouse>")
    packed            packed, with the boxes chosen
    shipped           handed to the carrier: carrier, service, tracking number and link
    tracking          a carrier tracking event (type, time, location)
    delivered         delivered
    cancelled         cancelled (by request, payment declined or voided)
    return_requested  a return was requested (lines and reason when GetReturn answered)
    returned          the return was received (restocked or written off)
    refunded          money refunded
    refund_refused    the gateway refused a refund
    note              any other history entry (kept, so nothing is hidden)

Entries come from the order's history (each status change with its reason and actor), in
history order, which is time order, and from the order's carrier events (``tracking_events``,
oldest first): one "tracking" entry per event, at the time the carrier gave, naming its
shipment by tracking number (a stable sort by time merges the two; on a tie a tracking event
goes after the history before "delivered" and before "delivered" itself, which that event
caused). The final delivery is also the "delivered" entry, with the place the carrier gave.
An oms-server older than ``Order.tracking_events`` sends none: then, as before, a SHIPPED
order shows each shipment's latest tracking status at the order's last update.
"""
from __future__ import annotations

import re
import threading
import urllib.parse
from dataclasses import dataclass, field

from oms.v1 import common_pb2, fulfillment_pb2, returns_pb2

__all__ = ["EVENT_TYPES", "Entry", "MapPoint", "build_journey", "locate", "tracking_link",
           "home_warehouse", "shipping_warehouses", "tracking_entries", "tracking_locations",
           "wave_of"]

EVENT_TYPES = ("placed", "payment", "reserved", "reallocated", "on_hold", "released",
               "backordered", "wave", "picked", "packed", "shipped", "tracking", "delivered",
               "cancelled", "return_requested", "returned", "refunded", "refund_refused", "note")

S = common_pb2.OrderStatus
_TRACK_KINDS = ("in_transit", "out_for_delivery", "exception", "delivered")
_WAVE_RE = re.compile(r"wave (\S+)")

# The carriers' public tracking pages (the same as server/channels/shipments.py pushes).
_PUBLIC_TRACKING = {
    "UPS": "https://www.ups.com/track?tracknum={t}",
    "FEDEX": "https://www.fedex.com/fedextrack/?trknbr={t}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={t}",
    "DHL": "https://www.dhl.com/en/express/tracking.html?AWB={t}",
}


@dataclass
class Entry:
    """One timeline entry."""

    type: str
    at_ms: int
    title: str
    actor: str = ""
    reason: str = ""
    details: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, href)
    location: str = ""
    tracking_number: str = ""  # a "tracking" entry's shipment
    tracking_type: str = ""  # a "tracking" entry's carrier event type (IN_TRANSIT, ...)


@dataclass(frozen=True)
class MapPoint:
    kind: str  # ship_to | warehouse | tracking
    x: float
    y: float
    label: str
    ref: str = ""  # warehouse id, tracking type


def wave_of(reason: str) -> str:
    """The wave id of a history reason ``"wave <id>"`` (the pick-wave release), else ""."""
    m = _WAVE_RE.fullmatch(reason)
    return m.group(1) if m else ""


def home_warehouse(order_id: str) -> str:
    """An order id is ``<home warehouse>.<suffix>``."""
    return order_id.partition(".")[0]


def shipping_warehouses(order: common_pb2.Order) -> list[str]:
    """The warehouses that ship the order: its shipments', else its allocations', in first-seen
    order (the home warehouse for an order with neither)."""
    out: list[str] = []
    for w in [s.warehouse_id for s in order.shipments] or \
             [a.warehouse_id for a in order.allocations]:
        if w and w not in out:
            out.append(w)
    return out


def tracking_link(carrier: str, tracking_number: str, label_url: str = "") -> str:
    tpl = _PUBLIC_TRACKING.get(carrier.upper())
    if tpl and tracking_number:
        return tpl.format(t=urllib.parse.quote(tracking_number, safe=""))
    return label_url if label_url.startswith(("https://", "http://")) else ""


def _track_kind(reason: str) -> tuple[str, str] | None:
    """(kind, location) of a tracking entry's reason ``"<kind> <location>"``."""
    head, _, rest = reason.partition(" ")
    if head in _TRACK_KINDS:
        return head, rest.strip()
    return None


def _delivered_location(reason: str) -> str:
    m = re.fullmatch(r"delivered \((.*)\)", reason)
    return m.group(1).strip() if m else ""


def _classify(h: common_pb2.HistoryEntry, prev: int, shipped_seen: bool) -> str:
    st, r = h.status, h.reason
    if st == S.ORDER_STATUS_RECEIVED:
        return "placed"
    if r == "payment authorised":
        return "payment"
    if r.startswith("refund of ") and "refused" in r:
        return "refund_refused"
    if r.startswith("refunded "):
        return "refunded"
    if r.startswith("return received"):
        return "returned"
    if st == S.ORDER_STATUS_SHIPPED and shipped_seen and _track_kind(r):
        return "tracking"
    simple = {S.ORDER_STATUS_ON_HOLD: "on_hold", S.ORDER_STATUS_BACKORDERED: "backordered",
              S.ORDER_STATUS_PICKED: "picked", S.ORDER_STATUS_PACKED: "packed",
              S.ORDER_STATUS_SHIPPED: "shipped", S.ORDER_STATUS_DELIVERED: "delivered",
              S.ORDER_STATUS_CANCELLED: "cancelled",
              S.ORDER_STATUS_RETURN_REQUESTED: "return_requested",
              S.ORDER_STATUS_RETURNED: "returned", S.ORDER_STATUS_REFUNDED: "refunded"}
    if st in simple:
        return simple[st]
    if st == S.ORDER_STATUS_ALLOCATED:
        if prev == S.ORDER_STATUS_ON_HOLD or (prev == st and "hold" in r):
            return "released"
        if r == "re-allocated":
            return "reallocated"
        return "reserved"
    if st == S.ORDER_STATUS_RELEASED:
        if r.startswith("part picked"):
            return "picked"
        if _WAVE_RE.fullmatch(r) or r.startswith("released; picked in"):
            return "wave"
        return "released"
    return "note"


_TITLES = {"placed": "Order placed", "payment": "Payment authorised",
           "reserved": "Stock reserved", "reallocated": "Re-allocated",
           "on_hold": "Held for fraud review", "released": "Hold released",
           "backordered": "Backordered", "wave": "Released to a pick wave",
           "picked": "Picked", "packed": "Packed", "shipped": "Shipped",
           "tracking": "Tracking event", "delivered": "Delivered", "cancelled": "Cancelled",
           "return_requested": "Return requested", "returned": "Return received",
           "refunded": "Refunded", "refund_refused": "Refund refused", "note": "Update"}


def _allocation_details(order: common_pb2.Order) -> list[str]:
    by_wh: dict[str, list[common_pb2.AllocationLine]] = {}
    for a in order.allocations:
        by_wh.setdefault(a.warehouse_id, []).append(a)
    out = []
    for w, lines in by_wh.items():
        items = ", ".join(f"{a.quantity} × {a.sku}" for a in lines)
        out.append(f"{w}: {items} — {lines[0].distance_km:,.0f} km to the customer")
    return out


def _package_details(order: common_pb2.Order) -> list[str]:
    return [f"{p.box} ({p.length_mm}×{p.width_mm}×{p.height_mm} mm, {p.weight_g:,} g)"
            + (f" from {p.warehouse_id}" if p.warehouse_id else "")
            + (f": {', '.join(p.skus)}" if p.skus else "") for p in order.packages]


def build_journey(order: common_pb2.Order,
                  returns: list[returns_pb2.Return] | None = None,
                  wave: fulfillment_pb2.Wave | None = None) -> list[Entry]:
    """The order's timeline, oldest first (see the module docstring for the types)."""
    out: list[Entry] = []
    prev = 0
    shipped_seen = False
    returns_left = list(returns or [])
    for h in order.history:
        kind = _classify(h, prev, shipped_seen)
        e = Entry(type=kind, at_ms=h.at_ms, title=_TITLES[kind], actor=h.actor, reason=h.reason)
        if kind == "reserved" or kind == "reallocated":
            e.details = _allocation_details(order)
        elif kind == "on_hold":
            e.details = [f"risk score {order.risk_score:.0f}/100"] + list(order.risk_reasons)
        elif kind == "wave":
            m = _WAVE_RE.fullmatch(h.reason)
            if m:
                e.links.append((f"wave {m.group(1)}", f"/waves/{urllib.parse.quote(m.group(1))}"))
                if wave is not None and wave.id == m.group(1):
                    for b in wave.batches:
                        if order.id in b.order_ids:
                            e.details.append(f"batch {b.id}: {len(b.order_ids)} order(s), "
                                             f"{len(b.stops)} stop(s), {b.distance_m:,.0f} m walk")
        elif kind == "packed":
            e.details = _package_details(order)
        elif kind == "shipped":
            shipped_seen = True
            for s in order.shipments:
                e.details.append(f"{s.carrier} {s.service_level} from {s.warehouse_id}: "
                                 f"tracking {s.tracking_number}")
                link = tracking_link(s.carrier, s.tracking_number, s.label_url)
                if link:
                    e.links.append((f"track {s.tracking_number}", link))
        elif kind == "tracking":
            k, loc = _track_kind(h.reason) or ("", "")
            e.title = "Tracking: " + k.replace("_", " ")
            e.location = loc
        elif kind == "delivered":
            e.location = _delivered_location(h.reason)
        elif kind == "return_requested" and returns_left:
            r = returns_left.pop(0)
            e.details = [f"return {r.id}: " + ", ".join(f"{ln.quantity} × {ln.sku}"
                                                        for ln in r.lines)]
            if r.refunded_cents:
                e.details.append(f"refunded so far: {r.refunded_cents / 100:,.2f}")
        out.append(e)
        if h.status != 0:
            prev = h.status
    if order.tracking_events:
        # the events themselves: drop history entries that repeat one (older records)
        out = [e for e in out if e.type != "tracking"]
        out.extend(tracking_entries(order))
    else:
        out.extend(_latest_tracking(order))
    # Ties: history before "delivered" (0), then tracking (1), then "delivered" and after (2).
    rank, late = [], False
    for e in out:
        late = late or e.type == "delivered"
        rank.append(1 if e.type == "tracking" else 2 if late else 0)
    order_of = {id(e): (e.at_ms, r) for e, r in zip(out, rank)}
    out.sort(key=lambda x: order_of[id(x)])  # stable: history order within one millisecond
    return out


def tracking_entries(order: common_pb2.Order) -> list[Entry]:
    """One "tracking" entry per carrier event of the order, oldest first: its type, time,
    place and the shipment it belongs to (carrier, tracking number, shipping warehouse)."""
    ships = {s.tracking_number: s for s in order.shipments if s.tracking_number}
    out = []
    for ev in sorted(order.tracking_events, key=lambda t: (t.occurred_at, t.event_id)):
        kind = ev.type.upper()
        e = Entry(type="tracking", at_ms=ev.occurred_at,
                  title="Tracking: " + (kind.lower().replace("_", " ") or "event"),
                  location=ev.location.strip(), tracking_number=ev.tracking_number,
                  tracking_type=kind)
        s = ships.get(ev.tracking_number)
        if s is not None:
            e.details.append(f"{s.carrier} {s.tracking_number} from {s.warehouse_id}")
            link = tracking_link(s.carrier, s.tracking_number, s.label_url)
            if link:
                e.links.append((f"track {s.tracking_number}", link))
        elif ev.tracking_number:
            e.details.append(f"shipment {ev.tracking_number}")
        else:
            e.details.append("shipment not recorded (an event from before it was kept)")
        if kind == "EXCEPTION":
            e.details.append("ETA moved by the carrier")
        out.append(e)
    return out


def _latest_tracking(order: common_pb2.Order) -> list[Entry]:
    """For an oms-server that sends no ``tracking_events``: each shipment's latest tracking
    status of a SHIPPED order, at the order's last update (no later than the event itself,
    which was that update or before it)."""
    if order.status != S.ORDER_STATUS_SHIPPED:
        return []
    out = []
    for s in order.shipments:
        if s.status in ("", "LABEL_CREATED"):
            continue
        e = Entry(type="tracking", at_ms=order.updated_at,
                  title=f"Tracking: {s.status.lower().replace('_', ' ')} (latest)",
                  details=[f"{s.carrier} {s.tracking_number} from {s.warehouse_id}"
                           + (" — ETA moved by the carrier" if s.status == "EXCEPTION" else "")],
                  tracking_number=s.tracking_number, tracking_type=s.status)
        link = tracking_link(s.carrier, s.tracking_number, s.label_url)
        if link:
            e.links.append((f"track {s.tracking_number}", link))
        out.append(e)
    return out


# --------------------------------------------------------------------------- places


def tracking_locations(entries: list[Entry]) -> list[tuple[str, str]]:
    """(type label, location text) of the entries that name a place."""
    return [(e.title, e.location) for e in entries if e.location]


_ZIP_IN_TEXT = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")
_CITY_ST = re.compile(r"([A-Za-z][A-Za-z .'-]{0,40}),\s*([A-Z]{2})(?![A-Za-z])")
_city_lock = threading.Lock()
_cities: dict[tuple[str, str], tuple[float, float]] | None = None


def _city_index() -> dict[tuple[str, str], tuple[float, float]]:
    """(CITY, ST) -> mean of its standard ZIPs' centroids (built once, ~1 s: call it off the
    event loop the first time)."""
    global _cities
    if _cities is not None:
        return _cities
    with _city_lock:
        if _cities is None:
            from oms.engine.geo import all_us_zips  # noqa: PLC0415 - numba + 40k ZIPs: lazily

            acc: dict[tuple[str, str], list[float]] = {}
            for _, lat, lon, city, st in all_us_zips():
                a = acc.setdefault((city.upper(), st.upper()), [0.0, 0.0, 0.0])
                a[0] += lat
                a[1] += lon
                a[2] += 1
            _cities = {k: (v[0] / v[2], v[1] / v[2]) for k, v in acc.items()}
        return _cities


def locate(text: str) -> tuple[float, float] | None:
    """(lat, lon) of a tracking location, offline: a US ZIP in it, else "City, ST"; None when
    neither is there or known. The first call may take a second (it loads the ZIP data)."""
    if not text:
        return None
    m = _ZIP_IN_TEXT.search(text)
    if m:
        from oms.engine.geo import geocode_us_zip  # noqa: PLC0415 - numba: lazily

        hit = geocode_us_zip(m.group(1))
        if hit is not None:
            return hit
    m2 = _CITY_ST.search(text)
    if m2:
        return _city_index().get((m2.group(1).strip().upper(), m2.group(2)))
    return None
