from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditRequest(_message.Message):
    __slots__ = ("recover",)
    RECOVER_FIELD_NUMBER: _ClassVar[int]
    recover: bool
    def __init__(self, recover: _Optional[bool] = ...) -> None: ...

class AuditReport(_message.Message):
    __slots__ = ("problems", "released_by_recovery", "ok")
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_BY_RECOVERY_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    problems: _containers.RepeatedScalarFieldContainer[str]
    released_by_recovery: int
    ok: bool
    def __init__(self, problems: _Optional[_Iterable[str]] = ..., released_by_recovery: _Optional[int] = ..., ok: _Optional[bool] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CountByKey(_message.Message):
    __slots__ = ("key", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    count: int
    def __init__(self, key: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("orders_by_status", "orders_by_channel", "orders_per_second", "fill_rate", "split_rate", "mean_allocation_distance_km", "pick_distance_saved_m", "orders_total", "orders_per_minute", "on_time_delivery_rate", "return_rate", "waves", "channels", "warehouses")
    ORDERS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_BY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ORDERS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    FILL_RATE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_RATE_FIELD_NUMBER: _ClassVar[int]
    MEAN_ALLOCATION_DISTANCE_KM_FIELD_NUMBER: _ClassVar[int]
    PICK_DISTANCE_SAVED_M_FIELD_NUMBER: _ClassVar[int]
    ORDERS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ORDERS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_DELIVERY_RATE_FIELD_NUMBER: _ClassVar[int]
    RETURN_RATE_FIELD_NUMBER: _ClassVar[int]
    WAVES_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSES_FIELD_NUMBER: _ClassVar[int]
    orders_by_status: _containers.RepeatedCompositeFieldContainer[CountByKey]
    orders_by_channel: _containers.RepeatedCompositeFieldContainer[CountByKey]
    orders_per_second: float
    fill_rate: float
    split_rate: float
    mean_allocation_distance_km: float
    pick_distance_saved_m: float
    orders_total: int
    orders_per_minute: _containers.RepeatedScalarFieldContainer[float]
    on_time_delivery_rate: float
    return_rate: float
    waves: int
    channels: _containers.RepeatedCompositeFieldContainer[ChannelSyncStats]
    warehouses: _containers.RepeatedCompositeFieldContainer[WarehouseCounts]
    def __init__(self, orders_by_status: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., orders_by_channel: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ..., orders_per_second: _Optional[float] = ..., fill_rate: _Optional[float] = ..., split_rate: _Optional[float] = ..., mean_allocation_distance_km: _Optional[float] = ..., pick_distance_saved_m: _Optional[float] = ..., orders_total: _Optional[int] = ..., orders_per_minute: _Optional[_Iterable[float]] = ..., on_time_delivery_rate: _Optional[float] = ..., return_rate: _Optional[float] = ..., waves: _Optional[int] = ..., channels: _Optional[_Iterable[_Union[ChannelSyncStats, _Mapping]]] = ..., warehouses: _Optional[_Iterable[_Union[WarehouseCounts, _Mapping]]] = ...) -> None: ...

class WarehouseCounts(_message.Message):
    __slots__ = ("warehouse_id", "orders_by_status")
    WAREHOUSE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDERS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    warehouse_id: str
    orders_by_status: _containers.RepeatedCompositeFieldContainer[CountByKey]
    def __init__(self, warehouse_id: _Optional[str] = ..., orders_by_status: _Optional[_Iterable[_Union[CountByKey, _Mapping]]] = ...) -> None: ...

class ChannelSyncStats(_message.Message):
    __slots__ = ("channel_id", "pending", "lag_ms_p50", "lag_ms_p99", "pushes", "failures", "last_error", "last_error_at", "last_push_at", "fulfillments", "rejected_orders", "updated_at")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_P50_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_P99_FIELD_NUMBER: _ClassVar[int]
    PUSHES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_PUSH_AT_FIELD_NUMBER: _ClassVar[int]
    FULFILLMENTS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ORDERS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    pending: int
    lag_ms_p50: float
    lag_ms_p99: float
    pushes: int
    failures: int
    last_error: str
    last_error_at: int
    last_push_at: int
    fulfillments: int
    rejected_orders: int
    updated_at: int
    def __init__(self, channel_id: _Optional[str] = ..., pending: _Optional[int] = ..., lag_ms_p50: _Optional[float] = ..., lag_ms_p99: _Optional[float] = ..., pushes: _Optional[int] = ..., failures: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[int] = ..., last_push_at: _Optional[int] = ..., fulfillments: _Optional[int] = ..., rejected_orders: _Optional[int] = ..., updated_at: _Optional[int] = ...) -> None: ...
