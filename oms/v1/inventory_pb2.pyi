from oms.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplenishmentPolicy(_message.Message):
    __slots__ = ("warehouse_id", "sku", "reorder_point", "lead_time_days")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    LEAD_TIME_DAYS_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    reorder_point: int
    lead_time_days: float
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., reorder_point: _Optional[int] = ..., lead_time_days: _Optional[float] = ...) -> None: ...

class SetReplenishmentPolicyRequest(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: ReplenishmentPolicy
    def __init__(self, policy: _Optional[_Union[ReplenishmentPolicy, _Mapping]] = ...) -> None: ...

class SuggestReplenishmentRequest(_message.Message):
    __slots__ = ("warehouse_id", "window_days", "include_zero")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_DAYS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ZERO_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    window_days: float
    include_zero: bool
    def __init__(self, warehouse_id: _Optional[str] = ..., window_days: _Optional[float] = ..., include_zero: _Optional[bool] = ...) -> None: ...

class ReplenishmentSuggestion(_message.Message):
    __slots__ = ("warehouse_id", "sku", "daily_velocity", "available", "reorder_point", "suggested_quantity", "reason")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    DAILY_VELOCITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    daily_velocity: float
    available: int
    reorder_point: int
    suggested_quantity: int
    reason: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., daily_velocity: _Optional[float] = ..., available: _Optional[int] = ..., reorder_point: _Optional[int] = ..., suggested_quantity: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SuggestReplenishmentResponse(_message.Message):
    __slots__ = ("suggestions",)
    SUGGESTIONS_FIELD_NUMBER: _ClassVar[int]
    suggestions: _containers.RepeatedCompositeFieldContainer[ReplenishmentSuggestion]
    def __init__(self, suggestions: _Optional[_Iterable[_Union[ReplenishmentSuggestion, _Mapping]]] = ...) -> None: ...

class UpsertWarehouseRequest(_message.Message):
    __slots__ = ("warehouse",)
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    warehouse: _common_pb2.Warehouse
    def __init__(self, warehouse: _Optional[_Union[_common_pb2.Warehouse, _Mapping]] = ...) -> None: ...

class ListWarehousesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWarehousesResponse(_message.Message):
    __slots__ = ("warehouses",)
    WAREHOUSES_FIELD_NUMBER: _ClassVar[int]
    warehouses: _containers.RepeatedCompositeFieldContainer[_common_pb2.Warehouse]
    def __init__(self, warehouses: _Optional[_Iterable[_Union[_common_pb2.Warehouse, _Mapping]]] = ...) -> None: ...

class UpsertProductRequest(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: _common_pb2.Product
    def __init__(self, product: _Optional[_Union[_common_pb2.Product, _Mapping]] = ...) -> None: ...

class SetStockRequest(_message.Message):
    __slots__ = ("warehouse_id", "sku", "on_hand", "location")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    on_hand: int
    location: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., on_hand: _Optional[int] = ..., location: _Optional[str] = ...) -> None: ...

class RecordStockCountRequest(_message.Message):
    __slots__ = ("warehouse_id", "sku", "counted", "reason")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    counted: int
    reason: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., counted: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RecordStockCountResponse(_message.Message):
    __slots__ = ("level", "backordered_order_ids")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    BACKORDERED_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    level: _common_pb2.StockLevel
    backordered_order_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, level: _Optional[_Union[_common_pb2.StockLevel, _Mapping]] = ..., backordered_order_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AdjustStockRequest(_message.Message):
    __slots__ = ("warehouse_id", "sku", "delta", "reason", "idempotency_key")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku: str
    delta: int
    reason: str
    idempotency_key: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku: _Optional[str] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("sku",)
    SKU_FIELD_NUMBER: _ClassVar[int]
    sku: str
    def __init__(self, sku: _Optional[str] = ...) -> None: ...

class GetStockResponse(_message.Message):
    __slots__ = ("levels", "total_available")
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[_common_pb2.StockLevel]
    total_available: int
    def __init__(self, levels: _Optional[_Iterable[_Union[_common_pb2.StockLevel, _Mapping]]] = ..., total_available: _Optional[int] = ...) -> None: ...

class ListStockRequest(_message.Message):
    __slots__ = ("warehouse_id", "sku_prefix", "page_size", "page_token")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    sku_prefix: str
    page_size: int
    page_token: str
    def __init__(self, warehouse_id: _Optional[str] = ..., sku_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListStockResponse(_message.Message):
    __slots__ = ("levels", "next_page_token")
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[_common_pb2.StockLevel]
    next_page_token: str
    def __init__(self, levels: _Optional[_Iterable[_Union[_common_pb2.StockLevel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
