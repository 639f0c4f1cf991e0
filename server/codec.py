"""Proto <-> domain conversion, with validation of everything that comes in.

Decoders raise engine.errors.ValidationError with one FieldViolation per bad field, before any
state is touched. Encoders never fail.
"""
from __future__ import annotations

import functools
import math
import re

from engine import geo
from engine.errors import FieldViolation, ValidationError
from engine.lifecycle import OrderStatus
from engine.models import (
    Address,
    Customer,
    Layout,
    Line,
    Order,
    OrderEvent,
    OrderRequest,
    Package,
    PaymentState,
    Product,
    Return,
    Shipment,
    StockLevel,
    Warehouse,
    Wave,
    parse_location,
)
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as rt
from oms.v1 import orders_pb2 as o
from server.redis.keys import ID_RE, SKU_RE

CHANNEL_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_LINES = 100
MAX_QTY = 1_000_000
MAX_KEY_LEN = 128
# Stock levels live in a packed int32 array per warehouse (see server/redis/scripts.py).
MAX_STOCK = 2**31 - 1


# ---- decoding -------------------------------------------------------------------------------

def decode_warehouse(w: c.Warehouse) -> Warehouse:
    v: list[FieldViolation] = []
    if not ID_RE.match(w.id):
        v.append(FieldViolation("warehouse.id", f"{w.id!r} must match {ID_RE.pattern}"))
    if not -90 <= w.latitude <= 90 or not math.isfinite(w.latitude):
        v.append(FieldViolation("warehouse.latitude", f"{w.latitude} is outside [-90, 90]"))
    if not -180 <= w.longitude <= 180 or not math.isfinite(w.longitude):
        v.append(FieldViolation("warehouse.longitude", f"{w.longitude} is outside [-180, 180]"))
    lat, lon = w.latitude, w.longitude
    if lat == 0 and lon == 0 and w.postal_code:
        found = geo.geocode_us_zip(w.postal_code)
        if found is None:
            v.append(FieldViolation("warehouse.postal_code", f"unknown US postal code {w.postal_code!r}"))
        else:
            lat, lon = found
    layout = Layout()
    if w.HasField("layout"):
        lo = w.layout
        layout = Layout(lo.aisles or layout.aisles, lo.slots_per_aisle or layout.slots_per_aisle,
                        lo.slot_length_m or layout.slot_length_m,
                        lo.aisle_spacing_m or layout.aisle_spacing_m)
        if not (0 < layout.aisles <= 1000 and 0 < layout.slots_per_aisle <= 1000
                and layout.slot_length_m > 0 and layout.aisle_spacing_m > 0):
            v.append(FieldViolation("warehouse.layout", f"layout {lo} must be positive, <= 1000 aisles/slots"))
    if v:
        raise ValidationError(v)
    return Warehouse(w.id, w.name or w.id, lat, lon, w.postal_code, layout, w.disabled)


def decode_product(p: c.Product) -> Product:
    if not SKU_RE.match(p.sku):
        raise ValidationError.one("product.sku", f"{p.sku!r} must match {SKU_RE.pattern}")
    for name in ("unit_price_cents", "weight_g", "length_mm", "width_mm", "height_mm"):
        if getattr(p, name) < 0:
            raise ValidationError.one(f"product.{name}", f"{getattr(p, name)} must be >= 0")
    return Product(p.sku, p.name, p.unit_price_cents, p.weight_g, p.length_mm, p.width_mm, p.height_mm)


def require(value: str, field: str) -> str:
    """An id field that must be present."""
    if not value:
        raise ValidationError.one(field, "required")
    return value


def check_warehouse_id(value: str, field: str = "warehouse_id") -> str:
    if not ID_RE.match(value):
        raise ValidationError.one(field, f"{value!r} must match {ID_RE.pattern}")
    return value


def check_sku(value: str, field: str = "sku") -> str:
    if not SKU_RE.match(value):
        raise ValidationError.one(field, f"{value!r} must match {SKU_RE.pattern}")
    return value


def check_units(value: int, field: str) -> int:
    """A stock figure (on hand, a count): 0..MAX_STOCK, what the packed int32 array holds."""
    if not 0 <= value <= MAX_STOCK:
        raise ValidationError.one(field, f"{value} must be in 0..{MAX_STOCK}")
    return value


def check_location(value: str, layout: Layout, field: str = "location") -> str:
    if not value:
        return value
    try:
        a, s = parse_location(value)
    except ValueError:
        raise ValidationError.one(field, f"{value!r} is not a bin code like A03-S017") from None
    if not (0 <= a < layout.aisles and 0 <= s < layout.slots_per_aisle):
        raise ValidationError.one(
            field, f"{value!r} is outside the layout ({layout.aisles} aisles x "
                   f"{layout.slots_per_aisle} slots)")
    return value


# Skus and channels already seen to match their patterns (bounded; cleared when full): intake
# decodes thousands of lines per second drawn from a catalogue of far fewer skus.
_GOOD: set[str] = set()
_GOOD_MAX = 200_000


@functools.lru_cache(maxsize=65536)
def _geocode(postal_code: str) -> tuple[float, float] | None:
    return geo.geocode_us_zip(postal_code)


def _good(value: str, pattern: re.Pattern[str]) -> bool:
    if pattern.match(value) is None:
        return False
    if len(_GOOD) >= _GOOD_MAX:
        _GOOD.clear()
    _GOOD.add(value)
    return True


def decode_place_order(r: o.PlaceOrderRequest, prefix: str = "") -> OrderRequest:
    """A validated OrderRequest, or ValidationError with every bad field."""
    # Fast path for the common, valid request; anything unusual takes the full check below,
    # which names every violation.
    channel = r.channel or "web"
    pb_lines = r.lines
    idem, token = r.idempotency_key, r.payment_token
    st = r.ship_to
    lat, lon = st.latitude, st.longitude
    if (0 < len(pb_lines) <= MAX_LINES and len(idem) <= MAX_KEY_LEN and len(token) <= MAX_KEY_LEN
            and (channel in _GOOD or _good(channel, CHANNEL_RE))):
        lines = []
        for ln in pb_lines:
            sku, q, price = ln.sku, ln.quantity, ln.unit_price_cents
            if not (0 < q <= MAX_QTY and price >= 0 and (sku in _GOOD or _good(sku, SKU_RE))):
                break
            lines.append(Line(sku, q, price))
        else:
            found: tuple[float, float] | None = (lat, lon)
            if lat == 0 and lon == 0:
                found = _geocode(st.postal_code) if st.postal_code and (
                    not st.country or st.country.upper() in ("US", "USA")) else None
            elif not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails these too
                found = None
            if found is not None:
                cu = r.customer
                return OrderRequest(
                    idem, channel, Customer(cu.id, cu.email, cu.name),
                    Address(st.name, st.line1, st.city, st.region, st.postal_code, st.country,
                            found[0], found[1]),
                    tuple(lines), r.allow_partial, token)
    return _decode_place_order_checked(r, prefix)


def _decode_place_order_checked(r: o.PlaceOrderRequest, prefix: str) -> OrderRequest:
    v: list[FieldViolation] = []
    if len(r.payment_token) > MAX_KEY_LEN:
        v.append(FieldViolation(prefix + "payment_token", f"longer than {MAX_KEY_LEN} characters"))
    if len(r.idempotency_key) > MAX_KEY_LEN:
        v.append(FieldViolation(prefix + "idempotency_key", f"longer than {MAX_KEY_LEN} characters"))
    channel = r.channel or "web"
    if not CHANNEL_RE.match(channel):
        v.append(FieldViolation(prefix + "channel", f"{r.channel!r} must match {CHANNEL_RE.pattern}"))
    if not r.lines:
        v.append(FieldViolation(prefix + "lines", "an order needs at least one line"))
    if len(r.lines) > MAX_LINES:
        v.append(FieldViolation(prefix + "lines", f"{len(r.lines)} lines, at most {MAX_LINES}"))
    lines = []
    for i, ln in enumerate(r.lines):
        if not SKU_RE.match(ln.sku):
            v.append(FieldViolation(f"{prefix}lines[{i}].sku", f"{ln.sku!r} must match {SKU_RE.pattern}"))
        if not 0 < ln.quantity <= MAX_QTY:
            v.append(FieldViolation(f"{prefix}lines[{i}].quantity", f"{ln.quantity} must be in 1..{MAX_QTY}"))
        if ln.unit_price_cents < 0:
            v.append(FieldViolation(f"{prefix}lines[{i}].unit_price_cents", f"{ln.unit_price_cents} must be >= 0"))
        lines.append(Line(ln.sku, ln.quantity, ln.unit_price_cents))
    st = r.ship_to
    lat, lon = st.latitude, st.longitude
    if lat == 0 and lon == 0:
        if not st.postal_code:
            v.append(FieldViolation(prefix + "ship_to", "needs latitude/longitude or a US postal_code"))
        elif st.country and st.country.upper() not in ("US", "USA"):
            v.append(FieldViolation(prefix + "ship_to.postal_code",
                                    f"only US postal codes are geocoded, country is {st.country!r}"))
        else:
            found = geo.geocode_us_zip(st.postal_code)
            if found is None:
                v.append(FieldViolation(prefix + "ship_to.postal_code",
                                        f"unknown US postal code {st.postal_code!r}"))
            else:
                lat, lon = found
    elif not (-90 <= lat <= 90 and -180 <= lon <= 180 and math.isfinite(lat) and math.isfinite(lon)):
        v.append(FieldViolation(prefix + "ship_to", f"latitude {lat}, longitude {lon} out of range"))
    if v:
        raise ValidationError(v)
    cu = r.customer
    return OrderRequest(
        idempotency_key=r.idempotency_key, channel=channel,
        customer=Customer(cu.id, cu.email, cu.name),
        ship_to=Address(st.name, st.line1, st.city, st.region, st.postal_code, st.country, lat, lon),
        lines=tuple(lines), allow_partial=r.allow_partial, payment_token=r.payment_token)


def decode_status(value: int, field: str = "status") -> int:
    if value == 0:
        return 0
    try:
        return int(OrderStatus(value))
    except ValueError:
        raise ValidationError.one(field, f"{value} is not an OrderStatus") from None


# ---- encoding -------------------------------------------------------------------------------

def encode_warehouse(w: Warehouse) -> c.Warehouse:
    lo = w.layout
    return c.Warehouse(id=w.id, name=w.name, latitude=w.latitude, longitude=w.longitude,
                       postal_code=w.postal_code, disabled=w.disabled,
                       layout=c.WarehouseLayout(aisles=lo.aisles, slots_per_aisle=lo.slots_per_aisle,
                                                slot_length_m=lo.slot_length_m,
                                                aisle_spacing_m=lo.aisle_spacing_m))


def encode_product(p: Product) -> c.Product:
    return c.Product(sku=p.sku, name=p.name, unit_price_cents=p.unit_price_cents, weight_g=p.weight_g,
                     length_mm=p.length_mm, width_mm=p.width_mm, height_mm=p.height_mm)


def encode_stock(s: StockLevel) -> c.StockLevel:
    return c.StockLevel(warehouse_id=s.warehouse_id, sku=s.sku, on_hand=s.on_hand,
                        reserved=s.reserved, available=s.available, location=s.location)


def encode_order(x: Order) -> c.Order:
    cu, st = x.customer, x.ship_to
    return c.Order(
        id=x.id, idempotency_key=x.idempotency_key, channel=x.channel, status=x.status,
        customer=c.Customer(id=cu.id, email=cu.email, name=cu.name),
        ship_to=c.Address(name=st.name, line1=st.line1, city=st.city, region=st.region,
                          postal_code=st.postal_code, country=st.country,
                          latitude=st.latitude, longitude=st.longitude),
        lines=[c.OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price_cents=ln.unit_price_cents)
               for ln in x.lines],
        allocations=[c.AllocationLine(sku=a.sku, warehouse_id=a.warehouse_id, quantity=a.quantity,
                                      distance_km=a.distance_km) for a in x.allocations],
        hold_until=x.hold_until, created_at=x.created_at, updated_at=x.updated_at,
        history=[c.HistoryEntry(status=h.status, at_ms=h.at_ms, reason=h.reason) for h in x.history],
        payment=encode_payment(x.payment), packages=[encode_package(p) for p in x.packages],
        shipments=[encode_shipment(sh) for sh in x.shipments], promised_by=x.promised_by,
        delivered_at=x.delivered_at, risk_score=x.risk_score, risk_reasons=x.risk_reasons,
        picked_warehouses=x.picked_warehouses)


def encode_payment(p: PaymentState | None) -> c.Payment:
    if p is None:
        return c.Payment(status="NONE")
    return c.Payment(status=p.status, authorized_cents=p.authorized_cents,
                     captured_cents=p.captured_cents, refunded_cents=p.refunded_cents,
                     authorization_id=p.authorization_id)


def encode_package(p: Package) -> c.Package:
    return c.Package(box=p.box, weight_g=p.weight_g, length_mm=p.length_mm, width_mm=p.width_mm,
                     height_mm=p.height_mm, skus=list(p.skus), warehouse_id=p.warehouse_id)


def encode_shipment(s: Shipment) -> c.Shipment:
    return c.Shipment(id=s.id, warehouse_id=s.warehouse_id, carrier=s.carrier,
                      service_level=s.service_level, tracking_number=s.tracking_number,
                      label_url=s.label_url, packages=[encode_package(p) for p in s.packages],
                      eta=s.eta_ms // 1000, status=s.status, cost_cents=s.cost_cents,
                      skus=list(s.skus))


def encode_return(r: Return) -> rt.Return:
    return rt.Return(id=r.id, order_id=r.order_id, status=r.status, reason=r.reason,
                     lines=[rt.ReturnLine(sku=ln.sku, quantity=ln.quantity) for ln in r.lines],
                     refunded_cents=r.refunded_cents, restocked=r.restock, created_at=r.created_at)


def encode_event(e: OrderEvent) -> c.OrderEvent:
    return c.OrderEvent(event_id=e.event_id, order_id=e.order_id, type=e.type, status=e.status,
                        at_ms=e.at_ms, detail=e.detail, channel=e.channel)


def encode_wave(w: Wave) -> f.Wave:
    return f.Wave(
        id=w.id, warehouse_id=w.warehouse_id, total_distance_m=w.total_distance_m,
        baseline_distance_m=w.baseline_distance_m, created_at=w.created_at,
        batches=[f.PickBatch(
            id=b.id, order_ids=list(b.order_ids), distance_m=b.distance_m,
            baseline_distance_m=b.baseline_distance_m,
            stops=[f.PickStop(location=s.location, aisle=s.aisle, slot=s.slot, sku=s.sku,
                              quantity=s.quantity, order_ids=list(s.order_ids)) for s in b.stops])
            for b in w.batches])
