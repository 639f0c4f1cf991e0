"""Proto <-> domain conversion, with validation of everything that comes in.

Decoders raise engine.errors.ValidationError with one FieldViolation per bad field, before any
state is touched. Encoders never fail.
"""
from __future__ import annotations

import functools
import math
import re

from oms.engine import geo
from oms.engine.errors import FieldViolation, NotFoundError, ValidationError, quote
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import (
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
)
from oms.v1 import common_pb2
from oms.v1 import fulfillment_pb2
from oms.v1 import returns_pb2
from oms.v1 import orders_pb2
from oms.server import validation as val
from oms.server.auth.principal import current_actor
from oms.server.validation import (
    CHANNEL_RE,
    MAX_KEY_LEN,
    MAX_LINES,
    MAX_MONEY_CENTS,
    MAX_ORDER_TOTAL_CENTS,
    MAX_QTY,
    MAX_STOCK,
    POSTAL_CODE_RE,
    SKU_RE,
    WAREHOUSE_ID_RE,
)

ID_RE = WAREHOUSE_ID_RE  # the old name, kept for callers
DEFAULT_CHANNEL = "web"  # an order placed without a channel is in this one
__all__ = ["CHANNEL_RE", "ID_RE", "MAX_KEY_LEN", "MAX_LINES", "MAX_QTY", "MAX_STOCK", "SKU_RE"]


# ---- decoding -------------------------------------------------------------------------------

def decode_warehouse(w: common_pb2.Warehouse) -> Warehouse:
    v: list[FieldViolation | None] = [
        val.pattern_violation(w.id, WAREHOUSE_ID_RE, "warehouse.id", "warehouse id"),
        val.text_violation(w.name, "warehouse.name", "warehouse.name"),
        val.float_violation(w.latitude, -90, 90, "warehouse.latitude"),
        val.float_violation(w.longitude, -180, 180, "warehouse.longitude"),
    ]
    pc_bad = bool(w.postal_code) and POSTAL_CODE_RE.fullmatch(w.postal_code) is None
    if pc_bad:
        v.append(val.pattern_violation(w.postal_code, POSTAL_CODE_RE, "warehouse.postal_code",
                                       "postal code"))
    lat, lon = w.latitude, w.longitude
    if lat == 0 and lon == 0 and w.postal_code and not pc_bad:
        found = geo.geocode_us_zip(w.postal_code)
        if found is None:
            v.append(FieldViolation("warehouse.postal_code",
                                    f"unknown US postal code {quote(w.postal_code)}"))
        else:
            lat, lon = found
    layout = Layout()
    if w.HasField("layout"):
        lo = w.layout
        # 0 = the default; the layout is one field for callers (violations name the part).
        v += [val.int_violation(lo.aisles, 0, val.MAX_AISLES, "warehouse.layout"),
              val.int_violation(lo.slots_per_aisle, 0, val.MAX_SLOTS, "warehouse.layout")]
        for name in ("slot_length_m", "aisle_spacing_m"):
            x = getattr(lo, name)
            if x != 0:
                bad = val.float_violation(x, 0, val.MAX_LAYOUT_M, "warehouse.layout", lo_open=True)
                if bad is not None:
                    v.append(FieldViolation(bad.field, f"{name}: {bad.description}"))
        layout = Layout(lo.aisles or layout.aisles, lo.slots_per_aisle or layout.slots_per_aisle,
                        lo.slot_length_m or layout.slot_length_m,
                        lo.aisle_spacing_m or layout.aisle_spacing_m)
    val.raise_if(*v)
    return Warehouse(w.id, w.name or w.id, lat, lon, w.postal_code, layout, w.disabled)


def decode_product(p: common_pb2.Product) -> Product:
    v = [val.pattern_violation(p.sku, SKU_RE, "product.sku", "sku"),
         val.text_violation(p.name, "product.name", "product.name"),
         val.int_violation(p.unit_price_cents, 0, MAX_MONEY_CENTS, "product.unit_price_cents"),
         val.int_violation(p.weight_g, 0, val.MAX_WEIGHT_G, "product.weight_g")]
    for name in ("length_mm", "width_mm", "height_mm"):
        v.append(val.int_violation(getattr(p, name), 0, val.MAX_DIMENSION_MM, f"product.{name}"))
    val.raise_if(*v)
    return Product(p.sku, p.name, p.unit_price_cents, p.weight_g, p.length_mm, p.width_mm, p.height_mm)


def require(value: str, field: str) -> str:
    """An id field that must be present."""
    if not value:
        raise ValidationError.one(field, "required")
    return value


def check_id(value: str, pattern: re.Pattern[str], field: str, kind: str) -> str:
    """The id of something to look up (order, wave, return, tracking number): empty or longer
    than any id -> INVALID_ARGUMENT; any other mismatch names nothing -> NOT_FOUND."""
    require(value, field)
    if pattern.fullmatch(value) is None:
        if len(value) > _MAX_ID_LEN:
            raise ValidationError.one(field, f"{len(value)} characters, longer than any {kind} id")
        raise NotFoundError(kind, value)
    return value


_MAX_ID_LEN = 128  # longer than every id pattern allows (return ids are the longest, 105)


def check_order_id(value: str, field: str = "order_id") -> str:
    return check_id(value, val.ORDER_ID_RE, field, "order")


def check_warehouse_id(value: str, field: str = "warehouse_id") -> str:
    return val.require_pattern(value, WAREHOUSE_ID_RE, field, "warehouse id")


def check_sku(value: str, field: str = "sku") -> str:
    return val.require_pattern(value, SKU_RE, field, "sku")


def check_units(value: int, field: str) -> int:
    """A stock figure (on hand, a count): 0..MAX_STOCK, what the packed int32 array holds."""
    return val.require_int(value, 0, MAX_STOCK, field)


def check_location(value: str, layout: Layout, field: str = "location") -> str:
    if not value:
        return value
    val.raise_if(val.location_violation(value, layout.aisles, layout.slots_per_aisle, field))
    return value


# Skus and channels already seen to match their patterns (bounded; cleared when full): intake
# decodes thousands of lines per second drawn from a catalogue of far fewer skus.
_GOOD: set[str] = set()
_GOOD_MAX = 200_000


@functools.lru_cache(maxsize=65536)
def _geocode(postal_code: str) -> tuple[float, float] | None:
    """Only ever called with a postal code that matched POSTAL_CODE_RE (at most 16 ASCII
    characters), so the cache is bounded in bytes as well as in entries."""
    return geo.geocode_us_zip(postal_code)


def _good(value: str, pattern: re.Pattern[str]) -> bool:
    if pattern.fullmatch(value) is None:
        return False
    if len(_GOOD) >= _GOOD_MAX:
        _GOOD.clear()
    _GOOD.add(value)
    return True


_KEY_RE = val.KEY_RE
_TL = val.TEXT_LIMITS
_CONTROL_RE = val.CONTROL_RE


def _texts_ok(cu: common_pb2.Customer, st: common_pb2.Address) -> bool:
    """Every free-text field of an order within its limits (one regex over all of them)."""
    return (len(cu.id) <= _TL["customer.id"] and len(cu.email) <= _TL["customer.email"]
            and len(cu.name) <= _TL["customer.name"] and len(st.name) <= _TL["address.name"]
            and len(st.line1) <= _TL["address.line1"] and len(st.city) <= _TL["address.city"]
            and len(st.region) <= _TL["address.region"]
            and len(st.country) <= _TL["address.country"]
            and _CONTROL_RE.search("".join((cu.id, cu.email, cu.name, st.name, st.line1, st.city,
                                            st.region, st.country))) is None)


def decode_place_order(r: orders_pb2.PlaceOrderRequest, prefix: str = "") -> OrderRequest:
    """A validated OrderRequest, or ValidationError with every bad field. It carries the
    running call's actor: intake batches mix the orders of concurrent calls."""
    # Fast path for the common, valid request; anything unusual takes the full check below,
    # which names every violation. Every check here is one the checked path makes too.
    channel = r.channel or DEFAULT_CHANNEL
    pb_lines = r.lines
    idem, token = r.idempotency_key, r.payment_token
    st = r.ship_to
    cu = r.customer
    lat, lon = st.latitude, st.longitude
    pc = st.postal_code
    if (0 < len(pb_lines) <= MAX_LINES and (not idem or _KEY_RE.fullmatch(idem))
            and (not token or _KEY_RE.fullmatch(token))
            and (channel in _GOOD or _good(channel, CHANNEL_RE))
            and (not pc or POSTAL_CODE_RE.fullmatch(pc)) and _texts_ok(cu, st)):
        lines = []
        total = 0
        for ln in pb_lines:
            sku, q, price = ln.sku, ln.quantity, ln.unit_price_cents
            if not (0 < q <= MAX_QTY and 0 <= price <= MAX_MONEY_CENTS
                    and (sku in _GOOD or _good(sku, SKU_RE))):
                break
            total += q * price
            lines.append(Line(sku, q, price))
        else:
            found: tuple[float, float] | None = (lat, lon)
            if total > MAX_ORDER_TOTAL_CENTS:
                found = None
            elif lat == 0 and lon == 0:
                found = _geocode(pc) if pc and (
                    not st.country or st.country.upper() in ("US", "USA")) else None
            elif not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails these too
                found = None
            if found is not None:
                return OrderRequest(
                    idem, channel, Customer(cu.id, cu.email, cu.name),
                    Address(st.name, st.line1, st.city, st.region, pc, st.country,
                            found[0], found[1]),
                    tuple(lines), r.allow_partial, token, current_actor())
    return _decode_place_order_checked(r, prefix)


def _decode_place_order_checked(r: orders_pb2.PlaceOrderRequest, prefix: str) -> OrderRequest:
    v: list[FieldViolation | None] = [
        val.key_violation(r.payment_token, prefix + "payment_token"),
        val.key_violation(r.idempotency_key, prefix + "idempotency_key"),
    ]
    channel = r.channel or DEFAULT_CHANNEL
    v.append(val.pattern_violation(channel, CHANNEL_RE, prefix + "channel", "channel"))
    if not r.lines:
        v.append(FieldViolation(prefix + "lines", "an order needs at least one line"))
    if len(r.lines) > MAX_LINES:
        v.append(FieldViolation(prefix + "lines", f"{len(r.lines)} lines, at most {MAX_LINES}"))
    lines = []
    total = 0
    for i, ln in enumerate(r.lines[:MAX_LINES]):
        p = f"{prefix}lines[{i}]."
        v += [val.pattern_violation(ln.sku, SKU_RE, p + "sku", "sku"),
              val.int_violation(ln.quantity, 1, MAX_QTY, p + "quantity"),
              val.int_violation(ln.unit_price_cents, 0, MAX_MONEY_CENTS, p + "unit_price_cents")]
        total += ln.quantity * ln.unit_price_cents
        lines.append(Line(ln.sku, ln.quantity, ln.unit_price_cents))
    if total > MAX_ORDER_TOTAL_CENTS:
        v.append(FieldViolation(prefix + "lines", f"order total {total} cents is more than "
                                                  f"{MAX_ORDER_TOTAL_CENTS}"))
    cu, st = r.customer, r.ship_to
    for kind, value in (("customer.id", cu.id), ("customer.email", cu.email),
                        ("customer.name", cu.name)):
        v.append(val.text_violation(value, prefix + kind, kind))
    for name in ("name", "line1", "city", "region", "country"):
        v.append(val.text_violation(getattr(st, name), f"{prefix}ship_to.{name}", f"address.{name}"))
    pc = st.postal_code
    pc_bad = val.pattern_violation(pc, POSTAL_CODE_RE, prefix + "ship_to.postal_code",
                                   "postal code") if pc else None
    v.append(pc_bad)
    lat, lon = st.latitude, st.longitude
    if lat == 0 and lon == 0:
        if not pc:
            v.append(FieldViolation(prefix + "ship_to", "needs latitude/longitude or a US postal_code"))
        elif pc_bad is not None:
            pass  # reported above; never geocoded (nor cached)
        elif st.country and st.country.upper() not in ("US", "USA"):
            v.append(FieldViolation(prefix + "ship_to.postal_code",
                                    f"only US postal codes are geocoded, country is "
                                    f"{quote(st.country)}"))
        else:
            found = _geocode(pc)
            if found is None:
                v.append(FieldViolation(prefix + "ship_to.postal_code",
                                        f"unknown US postal code {quote(pc)}"))
            else:
                lat, lon = found
    elif not (-90 <= lat <= 90 and -180 <= lon <= 180 and math.isfinite(lat) and math.isfinite(lon)):
        v.append(FieldViolation(prefix + "ship_to", f"latitude {lat}, longitude {lon} out of range"))
    val.raise_if(*v)
    return OrderRequest(
        idempotency_key=r.idempotency_key, channel=channel,
        customer=Customer(cu.id, cu.email, cu.name),
        ship_to=Address(st.name, st.line1, st.city, st.region, pc, st.country, lat, lon),
        lines=tuple(lines), allow_partial=r.allow_partial, payment_token=r.payment_token,
        actor=current_actor())


def decode_status(value: int, field: str = "status") -> int:
    if value == 0:
        return 0
    try:
        return int(OrderStatus(value))
    except ValueError:
        raise ValidationError.one(field, f"{value} is not an OrderStatus") from None


# ---- encoding -------------------------------------------------------------------------------

def encode_warehouse(w: Warehouse) -> common_pb2.Warehouse:
    lo = w.layout
    return common_pb2.Warehouse(id=w.id, name=w.name, latitude=w.latitude, longitude=w.longitude,
                       postal_code=w.postal_code, disabled=w.disabled,
                       layout=common_pb2.WarehouseLayout(aisles=lo.aisles, slots_per_aisle=lo.slots_per_aisle,
                                                slot_length_m=lo.slot_length_m,
                                                aisle_spacing_m=lo.aisle_spacing_m))


def encode_product(p: Product) -> common_pb2.Product:
    return common_pb2.Product(sku=p.sku, name=p.name, unit_price_cents=p.unit_price_cents, weight_g=p.weight_g,
                     length_mm=p.length_mm, width_mm=p.width_mm, height_mm=p.height_mm)


def encode_stock(s: StockLevel) -> common_pb2.StockLevel:
    return common_pb2.StockLevel(warehouse_id=s.warehouse_id, sku=s.sku, on_hand=s.on_hand,
                        reserved=s.reserved, available=s.available, location=s.location)


def encode_order(x: Order) -> common_pb2.Order:
    cu, st = x.customer, x.ship_to
    return common_pb2.Order(
        id=x.id, idempotency_key=x.idempotency_key, channel=x.channel, status=x.status,
        customer=common_pb2.Customer(id=cu.id, email=cu.email, name=cu.name),
        ship_to=common_pb2.Address(name=st.name, line1=st.line1, city=st.city, region=st.region,
                          postal_code=st.postal_code, country=st.country,
                          latitude=st.latitude, longitude=st.longitude),
        lines=[common_pb2.OrderLine(sku=ln.sku, quantity=ln.quantity, unit_price_cents=ln.unit_price_cents)
               for ln in x.lines],
        allocations=[common_pb2.AllocationLine(sku=a.sku, warehouse_id=a.warehouse_id, quantity=a.quantity,
                                      distance_km=a.distance_km) for a in x.allocations],
        hold_until=x.hold_until, created_at=x.created_at, updated_at=x.updated_at,
        history=[common_pb2.HistoryEntry(status=h.status, at_ms=h.at_ms, reason=h.reason, actor=h.actor)
                 for h in x.history],
        payment=encode_payment(x.payment), packages=[encode_package(p) for p in x.packages],
        shipments=[encode_shipment(sh) for sh in x.shipments], promised_by=x.promised_by,
        delivered_at=x.delivered_at, risk_score=x.risk_score, risk_reasons=x.risk_reasons,
        picked_warehouses=x.picked_warehouses,
        tracking_events=[common_pb2.OrderTrackingEvent(
            event_id=e, tracking_number=tn, type=k, occurred_at=at, location=loc)
            for e, tn, k, at, loc in x.tracking_log])


def encode_payment(p: PaymentState | None) -> common_pb2.Payment:
    if p is None:
        return common_pb2.Payment(status="NONE")
    return common_pb2.Payment(status=p.status, authorized_cents=p.authorized_cents,
                     captured_cents=p.captured_cents, refunded_cents=p.refunded_cents,
                     authorization_id=p.authorization_id)


def encode_package(p: Package) -> common_pb2.Package:
    return common_pb2.Package(box=p.box, weight_g=p.weight_g, length_mm=p.length_mm, width_mm=p.width_mm,
                     height_mm=p.height_mm, skus=list(p.skus), warehouse_id=p.warehouse_id)


def encode_shipment(s: Shipment) -> common_pb2.Shipment:
    return common_pb2.Shipment(id=s.id, warehouse_id=s.warehouse_id, carrier=s.carrier,
                      service_level=s.service_level, tracking_number=s.tracking_number,
                      label_url=s.label_url, packages=[encode_package(p) for p in s.packages],
                      eta=s.eta_ms // 1000, status=s.status, cost_cents=s.cost_cents,
                      skus=list(s.skus))


def encode_return(r: Return) -> returns_pb2.Return:
    return returns_pb2.Return(id=r.id, order_id=r.order_id, status=r.status, reason=r.reason,
                     lines=[returns_pb2.ReturnLine(sku=ln.sku, quantity=ln.quantity) for ln in r.lines],
                     refunded_cents=r.refunded_cents, restocked=r.restock, created_at=r.created_at)


def encode_event(e: OrderEvent) -> common_pb2.OrderEvent:
    return common_pb2.OrderEvent(event_id=e.event_id, order_id=e.order_id, type=e.type, status=e.status,
                        at_ms=e.at_ms, detail=e.detail, channel=e.channel, actor=e.actor)


def encode_wave(w: Wave) -> fulfillment_pb2.Wave:
    return fulfillment_pb2.Wave(
        id=w.id, warehouse_id=w.warehouse_id, total_distance_m=w.total_distance_m,
        baseline_distance_m=w.baseline_distance_m, created_at=w.created_at,
        batches=[fulfillment_pb2.PickBatch(
            id=b.id, order_ids=list(b.order_ids), distance_m=b.distance_m,
            baseline_distance_m=b.baseline_distance_m,
            stops=[fulfillment_pb2.PickStop(location=s.location, aisle=s.aisle, slot=s.slot, sku=s.sku,
                              quantity=s.quantity, order_ids=list(s.order_ids)) for s in b.stops])
            for b in w.batches])
