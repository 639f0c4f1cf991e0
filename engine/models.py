"""Plain dataclasses of the domain. No grpc, redis or protobuf here."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layout:
    """Single-block warehouse of docs/ARCHITECTURE.md ("Warehouse geometry").

    Aisle i runs along x = i * aisle_spacing_m from the front cross aisle (y = 0) to the back
    cross aisle (y = L = slots_per_aisle * slot_length_m). Slot j sits at
    y = (j + 0.5) * slot_length_m. The depot is at (0, 0).
    """

    aisles: int = 20
    slots_per_aisle: int = 50
    slot_length_m: float = 1.0
    aisle_spacing_m: float = 3.0

    @property
    def length_m(self) -> float:
        return self.slots_per_aisle * self.slot_length_m

    def slot_y(self, slot: int) -> float:
        return (slot + 0.5) * self.slot_length_m

    def aisle_x(self, aisle: int) -> float:
        return aisle * self.aisle_spacing_m


def location_code(aisle: int, slot: int) -> str:
    return f"A{aisle:02d}-S{slot:03d}"


# Exactly two ASCII digits of aisle and three of slot (int() alone takes "3", " 3" or "٣").
LOCATION_RE = re.compile(r"A([0-9]{2})-S([0-9]{3})", re.ASCII)


def parse_location(code: str) -> tuple[int, int]:
    """``A03-S017`` -> (3, 17). Raises ValueError on anything else."""
    m = LOCATION_RE.fullmatch(code)
    if m is None:
        raise ValueError(f"bad location code {code[:32]!r}, expected A{{aisle:02d}}-S{{slot:03d}}")
    return int(m.group(1)), int(m.group(2))


@dataclass(frozen=True)
class Warehouse:
    id: str
    name: str
    latitude: float
    longitude: float
    postal_code: str = ""
    layout: Layout = field(default_factory=Layout)
    disabled: bool = False


# Value types built per order on the intake hot path (Line, Allocation, Customer, Address,
# OrderRequest, HistoryEntry) are slotted, not frozen: a frozen dataclass sets each field
# through object.__setattr__, three times the cost of construction, and intake builds about
# ten of them per order. Treat them as immutable all the same: nothing mutates one in place
# (dataclasses.replace makes a changed copy).


@dataclass(slots=True)
class Line:
    sku: str
    quantity: int
    unit_price_cents: int = 0


@dataclass(slots=True)
class Allocation:
    sku: str
    warehouse_id: str
    quantity: int
    distance_km: float


@dataclass(frozen=True)
class StockLevel:
    warehouse_id: str
    sku: str
    on_hand: int
    reserved: int
    location: str = ""

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class Product:
    sku: str
    name: str = ""
    unit_price_cents: int = 0
    weight_g: int = 0
    length_mm: int = 0
    width_mm: int = 0
    height_mm: int = 0


@dataclass(slots=True)
class Customer:
    id: str = ""
    email: str = ""
    name: str = ""


@dataclass(slots=True)
class Address:
    name: str = ""
    line1: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""
    latitude: float = 0.0
    longitude: float = 0.0


@dataclass(slots=True)
class OrderRequest:
    """A validated intake request: ship-to has coordinates (geocoded if they were absent)."""

    idempotency_key: str
    channel: str
    customer: Customer
    ship_to: Address
    lines: tuple[Line, ...]
    allow_partial: bool = False
    payment_token: str = ""
    # who asked (the caller's actor): concurrent calls share intake batches, so the actor
    # travels with each request rather than with the batch's context
    actor: str = ""


@dataclass(frozen=True)
class PaymentState:
    status: str = "NONE"  # AUTHORIZED, CAPTURED, PARTIALLY_REFUNDED, REFUNDED, DECLINED, VOIDED
    authorization_id: str = ""
    authorized_cents: int = 0
    captured_cents: int = 0
    capture_id: str = ""
    refunded_cents: int = 0


@dataclass(slots=True)
class HistoryEntry:
    status: int
    at_ms: int
    reason: str = ""
    actor: str = ""  # who caused it: an API key id, "mtls:<CN>" or "system:<job>"


@dataclass
class Order:
    id: str
    idempotency_key: str
    channel: str
    status: int  # engine.lifecycle.OrderStatus value
    customer: Customer
    ship_to: Address
    lines: list[Line]
    allocations: list[Allocation]
    hold_until: int = 0
    created_at: int = 0
    updated_at: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    allow_partial: bool = False
    wave_id: str = ""
    payment: "PaymentState | None" = None
    packages: list["Package"] = field(default_factory=list)
    shipments: list["Shipment"] = field(default_factory=list)
    promised_by: int = 0
    delivered_at: int = 0
    risk_score: float = 0.0
    risk_reasons: list[str] = field(default_factory=list)
    returns: list["Return"] = field(default_factory=list)
    tracking_events: set[str] = field(default_factory=set)
    picked_warehouses: list[str] = field(default_factory=list)  # parts confirmed picked
    # (event id, tracking number, type, occurred at ms, location), oldest first
    tracking_log: list[tuple[str, str, str, int, str]] = field(default_factory=list)

    @property
    def value_cents(self) -> int:
        return sum(ln.quantity * ln.unit_price_cents for ln in self.lines)

    @property
    def warehouses(self) -> list[str]:
        """Warehouses holding stock for this order, in allocation order without repeats."""
        return list(dict.fromkeys(a.warehouse_id for a in self.allocations))


@dataclass(frozen=True)
class OrderEvent:
    event_id: str
    order_id: str
    type: str
    status: int
    at_ms: int
    detail: str = ""
    channel: str = ""
    actor: str = ""  # who caused it, as in HistoryEntry


@dataclass(frozen=True)
class PickStop:
    location: str
    aisle: int
    slot: int
    sku: str
    quantity: int
    order_ids: tuple[str, ...]


@dataclass(frozen=True)
class PickBatch:
    id: str
    order_ids: tuple[str, ...]
    stops: tuple[PickStop, ...]  # in walking order
    distance_m: float  # exact shortest route
    baseline_distance_m: float  # S-shape route of the same batch


@dataclass(frozen=True)
class Wave:
    id: str
    warehouse_id: str
    batches: tuple[PickBatch, ...]
    total_distance_m: float
    baseline_distance_m: float  # first-come batching with S-shape routes
    created_at: int = 0


@dataclass(frozen=True)
class Package:
    box: str
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    skus: tuple[str, ...] = ()
    warehouse_id: str = ""


@dataclass(frozen=True)
class Shipment:
    id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    label_url: str
    packages: tuple[Package, ...]
    eta_ms: int
    cost_cents: int = 0
    status: str = "LABEL_CREATED"  # IN_TRANSIT, OUT_FOR_DELIVERY, EXCEPTION, DELIVERED
    skus: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReturnLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Return:
    id: str
    order_id: str
    status: str  # REQUESTED, RECEIVED, REFUNDED
    lines: tuple[ReturnLine, ...]
    reason: str = ""
    refunded_cents: int = 0
    restock: bool = False
    created_at: int = 0
