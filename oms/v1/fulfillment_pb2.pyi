from oms.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListShipmentExceptionsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListShipmentExceptionsResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[_common_pb2.Order]
    def __init__(self, orders: _Optional[_Iterable[_Union[_common_pb2.Order, _Mapping]]] = ...) -> None: ...

class PlanWaveRequest(_message.Message):
    __slots__ = ("warehouse_id", "max_orders", "batch_max_orders", "batch_max_items")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ORDERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_MAX_ORDERS_FIELD_NUMBER: _ClassVar[int]
    BATCH_MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    max_orders: int
    batch_max_orders: int
    batch_max_items: int
    def __init__(self, warehouse_id: _Optional[str] = ..., max_orders: _Optional[int] = ..., batch_max_orders: _Optional[int] = ..., batch_max_items: _Optional[int] = ...) -> None: ...

class PickStop(_message.Message):
    __slots__ = ("location", "aisle", "slot", "sku", "quantity", "order_ids")
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    AISLE_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    location: str
    aisle: int
    slot: int
    sku: str
    quantity: int
    order_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, location: _Optional[str] = ..., aisle: _Optional[int] = ..., slot: _Optional[int] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ..., order_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PickBatch(_message.Message):
    __slots__ = ("id", "order_ids", "stops", "distance_m", "baseline_distance_m")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    STOPS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    BASELINE_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    id: str
    order_ids: _containers.RepeatedScalarFieldContainer[str]
    stops: _containers.RepeatedCompositeFieldContainer[PickStop]
    distance_m: float
    baseline_distance_m: float
    def __init__(self, id: _Optional[str] = ..., order_ids: _Optional[_Iterable[str]] = ..., stops: _Optional[_Iterable[_Union[PickStop, _Mapping]]] = ..., distance_m: _Optional[float] = ..., baseline_distance_m: _Optional[float] = ...) -> None: ...

class Wave(_message.Message):
    __slots__ = ("id", "warehouse_id", "batches", "total_distance_m", "baseline_distance_m", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    BASELINE_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    warehouse_id: str
    batches: _containers.RepeatedCompositeFieldContainer[PickBatch]
    total_distance_m: float
    baseline_distance_m: float
    created_at: int
    def __init__(self, id: _Optional[str] = ..., warehouse_id: _Optional[str] = ..., batches: _Optional[_Iterable[_Union[PickBatch, _Mapping]]] = ..., total_distance_m: _Optional[float] = ..., baseline_distance_m: _Optional[float] = ..., created_at: _Optional[int] = ...) -> None: ...

class GetWaveRequest(_message.Message):
    __slots__ = ("wave_id",)
    WAVE_ID_FIELD_NUMBER: _ClassVar[int]
    wave_id: str
    def __init__(self, wave_id: _Optional[str] = ...) -> None: ...

class ConfirmPickRequest(_message.Message):
    __slots__ = ("order_id", "warehouse_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    warehouse_id: str
    def __init__(self, order_id: _Optional[str] = ..., warehouse_id: _Optional[str] = ...) -> None: ...

class PackOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ShipOrderRequest(_message.Message):
    __slots__ = ("order_id", "carrier", "service_level")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    carrier: str
    service_level: str
    def __init__(self, order_id: _Optional[str] = ..., carrier: _Optional[str] = ..., service_level: _Optional[str] = ...) -> None: ...

class RecordTrackingEventRequest(_message.Message):
    __slots__ = ("tracking_number", "event_id", "type", "occurred_at", "location")
    TRACKING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    tracking_number: str
    event_id: str
    type: str
    occurred_at: int
    location: str
    def __init__(self, tracking_number: _Optional[str] = ..., event_id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class MarkDeliveredRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class ReallocateRequest(_message.Message):
    __slots__ = ("max_orders", "time_budget_s")
    MAX_ORDERS_FIELD_NUMBER: _ClassVar[int]
    TIME_BUDGET_S_FIELD_NUMBER: _ClassVar[int]
    max_orders: int
    time_budget_s: float
    def __init__(self, max_orders: _Optional[int] = ..., time_budget_s: _Optional[float] = ...) -> None: ...

class FillBackordersRequest(_message.Message):
    __slots__ = ("max_orders",)
    MAX_ORDERS_FIELD_NUMBER: _ClassVar[int]
    max_orders: int
    def __init__(self, max_orders: _Optional[int] = ...) -> None: ...

class FillBackordersReport(_message.Message):
    __slots__ = ("considered", "filled", "waiting", "skipped")
    CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    FILLED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    considered: int
    filled: int
    waiting: int
    skipped: int
    def __init__(self, considered: _Optional[int] = ..., filled: _Optional[int] = ..., waiting: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class ReallocateReport(_message.Message):
    __slots__ = ("orders", "changed", "moved", "skipped", "cost_before", "cost_after", "lp_lower_bound", "solve_seconds")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    COST_BEFORE_FIELD_NUMBER: _ClassVar[int]
    COST_AFTER_FIELD_NUMBER: _ClassVar[int]
    LP_LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    SOLVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    orders: int
    changed: int
    moved: int
    skipped: int
    cost_before: float
    cost_after: float
    lp_lower_bound: float
    solve_seconds: float
    def __init__(self, orders: _Optional[int] = ..., changed: _Optional[int] = ..., moved: _Optional[int] = ..., skipped: _Optional[int] = ..., cost_before: _Optional[float] = ..., cost_after: _Optional[float] = ..., lp_lower_bound: _Optional[float] = ..., solve_seconds: _Optional[float] = ...) -> None: ...

class ListWavesRequest(_message.Message):
    __slots__ = ("warehouse_id", "page_size")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    page_size: int
    def __init__(self, warehouse_id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class WaveSummary(_message.Message):
    __slots__ = ("id", "warehouse_id", "created_at", "batches", "orders", "total_distance_m", "baseline_distance_m")
    ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    BASELINE_DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    id: str
    warehouse_id: str
    created_at: int
    batches: int
    orders: int
    total_distance_m: float
    baseline_distance_m: float
    def __init__(self, id: _Optional[str] = ..., warehouse_id: _Optional[str] = ..., created_at: _Optional[int] = ..., batches: _Optional[int] = ..., orders: _Optional[int] = ..., total_distance_m: _Optional[float] = ..., baseline_distance_m: _Optional[float] = ...) -> None: ...

class ListWavesResponse(_message.Message):
    __slots__ = ("waves",)
    WAVES_FIELD_NUMBER: _ClassVar[int]
    waves: _containers.RepeatedCompositeFieldContainer[WaveSummary]
    def __init__(self, waves: _Optional[_Iterable[_Union[WaveSummary, _Mapping]]] = ...) -> None: ...
