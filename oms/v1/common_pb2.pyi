from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_RECEIVED: _ClassVar[OrderStatus]
    ORDER_STATUS_ALLOCATED: _ClassVar[OrderStatus]
    ORDER_STATUS_BACKORDERED: _ClassVar[OrderStatus]
    ORDER_STATUS_ON_HOLD: _ClassVar[OrderStatus]
    ORDER_STATUS_RELEASED: _ClassVar[OrderStatus]
    ORDER_STATUS_PICKED: _ClassVar[OrderStatus]
    ORDER_STATUS_PACKED: _ClassVar[OrderStatus]
    ORDER_STATUS_SHIPPED: _ClassVar[OrderStatus]
    ORDER_STATUS_DELIVERED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]
    ORDER_STATUS_RETURN_REQUESTED: _ClassVar[OrderStatus]
    ORDER_STATUS_RETURNED: _ClassVar[OrderStatus]
    ORDER_STATUS_REFUNDED: _ClassVar[OrderStatus]
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_RECEIVED: OrderStatus
ORDER_STATUS_ALLOCATED: OrderStatus
ORDER_STATUS_BACKORDERED: OrderStatus
ORDER_STATUS_ON_HOLD: OrderStatus
ORDER_STATUS_RELEASED: OrderStatus
ORDER_STATUS_PICKED: OrderStatus
ORDER_STATUS_PACKED: OrderStatus
ORDER_STATUS_SHIPPED: OrderStatus
ORDER_STATUS_DELIVERED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_RETURN_REQUESTED: OrderStatus
ORDER_STATUS_RETURNED: OrderStatus
ORDER_STATUS_REFUNDED: OrderStatus

class WarehouseLayout(_message.Message):
    __slots__ = ("aisles", "slots_per_aisle", "slot_length_m", "aisle_spacing_m")
    AISLES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_PER_AISLE_FIELD_NUMBER: _ClassVar[int]
    SLOT_LENGTH_M_FIELD_NUMBER: _ClassVar[int]
    AISLE_SPACING_M_FIELD_NUMBER: _ClassVar[int]
    aisles: int
    slots_per_aisle: int
    slot_length_m: float
    aisle_spacing_m: float
    def __init__(self, aisles: _Optional[int] = ..., slots_per_aisle: _Optional[int] = ..., slot_length_m: _Optional[float] = ..., aisle_spacing_m: _Optional[float] = ...) -> None: ...

class Warehouse(_message.Message):
    __slots__ = ("id", "name", "latitude", "longitude", "postal_code", "layout", "disabled")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    latitude: float
    longitude: float
    postal_code: str
    layout: WarehouseLayout
    disabled: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., postal_code: _Optional[str] = ..., layout: _Optional[_Union[WarehouseLayout, _Mapping]] = ..., disabled: _Optional[bool] = ...) -> None: ...

class StockLevel(_message.Message):
    __slots__ = ("warehouse_id", "sku", "on_hand", "reserved", "available", "location")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    on_hand: int
    reserved: int
    available: int
    location: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("sku", "name", "unit_price_cents", "weight_g", "length_mm", "width_mm", "height_mm")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_G_FIELD_NUMBER: _ClassVar[int]
    LENGTH_MM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_MM_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_MM_FIELD_NUMBER: _ClassVar[int]
    sku: str
    name: str
    unit_price_cents: int
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    def __init__(self, sku: _Optional[str] = ..., name: _Optional[str] = ..., unit_price_cents: _Optional[int] = ..., weight_g: _Optional[int] = ..., length_mm: _Optional[int] = ..., width_mm: _Optional[int] = ..., height_mm: _Optional[int] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("id", "email", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    email: str
    name: str
    def __init__(self, id: _Optional[str] = ..., email: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("name", "line1", "city", "region", "postal_code", "country", "latitude", "longitude")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LINE1_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    name: str
    line1: str
    city: str
    region: str
    postal_code: str
    country: str
    latitude: float
    longitude: float
    def __init__(self, name: _Optional[str] = ..., line1: _Optional[str] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., postal_code: _Optional[str] = ..., country: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("sku", "quantity", "unit_price_cents")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_CENTS_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    unit_price_cents: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price_cents: _Optional[int] = ...) -> None: ...

class AllocationLine(_message.Message):
    __slots__ = ("sku", "warehouse_id", "quantity", "distance_km")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_KM_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_id: str
    quantity: int
    distance_km: float
    def __init__(self, sku: _Optional[str] = ..., warehouse_id: _Optional[str] = ..., quantity: _Optional[int] = ..., distance_km: _Optional[float] = ...) -> None: ...

class Package(_message.Message):
    __slots__ = ("box", "weight_g", "length_mm", "width_mm", "height_mm", "skus", "warehouse_id")
    BOX_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_G_FIELD_NUMBER: _ClassVar[int]
    LENGTH_MM_FIELD_NUMBER: _ClassVar[int]
    WIDTH_MM_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_MM_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    box: str
    weight_g: int
    length_mm: int
    width_mm: int
    height_mm: int
    skus: _containers.RepeatedScalarFieldContainer[str]
    warehouse_id: str
    def __init__(self, box: _Optional[str] = ..., weight_g: _Optional[int] = ..., length_mm: _Optional[int] = ..., width_mm: _Optional[int] = ..., height_mm: _Optional[int] = ..., skus: _Optional[_Iterable[str]] = ..., warehouse_id: _Optional[str] = ...) -> None: ...

class Shipment(_message.Message):
    __slots__ = ("id", "warehouse_id", "carrier", "service_level", "tracking_number", "label_url", "packages", "eta", "status", "cost_cents", "skus")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LABEL_URL_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    ETA_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COST_CENTS_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    warehouse_id: str
    carrier: str
    service_level: str
    tracking_number: str
    label_url: str
    packages: _containers.RepeatedCompositeFieldContainer[Package]
    eta: int
    status: str
    cost_cents: int
    skus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., warehouse_id: _Optional[str] = ..., carrier: _Optional[str] = ..., service_level: _Optional[str] = ..., tracking_number: _Optional[str] = ..., label_url: _Optional[str] = ..., packages: _Optional[_Iterable[_Union[Package, _Mapping]]] = ..., eta: _Optional[int] = ..., status: _Optional[str] = ..., cost_cents: _Optional[int] = ..., skus: _Optional[_Iterable[str]] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("status", "authorized_cents", "captured_cents", "refunded_cents", "authorization_id")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZED_CENTS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_CENTS_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_CENTS_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_ID_FIELD_NUMBER: _ClassVar[int]
    status: str
    authorized_cents: int
    captured_cents: int
    refunded_cents: int
    authorization_id: str
    def __init__(self, status: _Optional[str] = ..., authorized_cents: _Optional[int] = ..., captured_cents: _Optional[int] = ..., refunded_cents: _Optional[int] = ..., authorization_id: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("status", "at_ms", "reason", "actor")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    status: OrderStatus
    at_ms: int
    reason: str
    actor: str
    def __init__(self, status: _Optional[_Union[OrderStatus, str]] = ..., at_ms: _Optional[int] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "idempotency_key", "channel", "status", "customer", "ship_to", "lines", "allocations", "shipments", "hold_until", "created_at", "updated_at", "history", "payment", "packages", "promised_by", "delivered_at", "risk_score", "risk_reasons", "picked_warehouses", "tracking_events")
    ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    SHIP_TO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    SHIPMENTS_FIELD_NUMBER: _ClassVar[int]
    HOLD_UNTIL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    PACKAGES_FIELD_NUMBER: _ClassVar[int]
    PROMISED_BY_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    RISK_SCORE_FIELD_NUMBER: _ClassVar[int]
    RISK_REASONS_FIELD_NUMBER: _ClassVar[int]
    PICKED_WAREHOUSES_FIELD_NUMBER: _ClassVar[int]
    TRACKING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    idempotency_key: str
    channel: str
    status: OrderStatus
    customer: Customer
    ship_to: Address
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    allocations: _containers.RepeatedCompositeFieldContainer[AllocationLine]
    shipments: _containers.RepeatedCompositeFieldContainer[Shipment]
    hold_until: int
    created_at: int
    updated_at: int
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    payment: Payment
    packages: _containers.RepeatedCompositeFieldContainer[Package]
    promised_by: int
    delivered_at: int
    risk_score: float
    risk_reasons: _containers.RepeatedScalarFieldContainer[str]
    picked_warehouses: _containers.RepeatedScalarFieldContainer[str]
    tracking_events: _containers.RepeatedCompositeFieldContainer[OrderTrackingEvent]
    def __init__(self, id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., channel: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ..., ship_to: _Optional[_Union[Address, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., allocations: _Optional[_Iterable[_Union[AllocationLine, _Mapping]]] = ..., shipments: _Optional[_Iterable[_Union[Shipment, _Mapping]]] = ..., hold_until: _Optional[int] = ..., created_at: _Optional[int] = ..., updated_at: _Optional[int] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ..., packages: _Optional[_Iterable[_Union[Package, _Mapping]]] = ..., promised_by: _Optional[int] = ..., delivered_at: _Optional[int] = ..., risk_score: _Optional[float] = ..., risk_reasons: _Optional[_Iterable[str]] = ..., picked_warehouses: _Optional[_Iterable[str]] = ..., tracking_events: _Optional[_Iterable[_Union[OrderTrackingEvent, _Mapping]]] = ...) -> None: ...

class OrderTrackingEvent(_message.Message):
    __slots__ = ("event_id", "tracking_number", "type", "occurred_at", "location")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    tracking_number: str
    type: str
    occurred_at: int
    location: str
    def __init__(self, event_id: _Optional[str] = ..., tracking_number: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class OrderEvent(_message.Message):
    __slots__ = ("event_id", "order_id", "type", "status", "at_ms", "detail", "channel", "actor")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    order_id: str
    type: str
    status: OrderStatus
    at_ms: int
    detail: str
    channel: str
    actor: str
    def __init__(self, event_id: _Optional[str] = ..., order_id: _Optional[str] = ..., type: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., at_ms: _Optional[int] = ..., detail: _Optional[str] = ..., channel: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...
