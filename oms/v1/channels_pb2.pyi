from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChannelKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_KIND_UNSPECIFIED: _ClassVar[ChannelKind]
    CHANNEL_KIND_WEB: _ClassVar[ChannelKind]
    CHANNEL_KIND_POS: _ClassVar[ChannelKind]
    CHANNEL_KIND_SHOPIFY: _ClassVar[ChannelKind]
    CHANNEL_KIND_WOOCOMMERCE: _ClassVar[ChannelKind]
    CHANNEL_KIND_MARKETPLACE: _ClassVar[ChannelKind]
    CHANNEL_KIND_GENERIC: _ClassVar[ChannelKind]
CHANNEL_KIND_UNSPECIFIED: ChannelKind
CHANNEL_KIND_WEB: ChannelKind
CHANNEL_KIND_POS: ChannelKind
CHANNEL_KIND_SHOPIFY: ChannelKind
CHANNEL_KIND_WOOCOMMERCE: ChannelKind
CHANNEL_KIND_MARKETPLACE: ChannelKind
CHANNEL_KIND_GENERIC: ChannelKind

class PushTarget(_message.Message):
    __slots__ = ("base_url", "access_token", "consumer_key", "consumer_secret", "location_id", "sku_items", "has_credentials")
    class SkuItemsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_KEY_FIELD_NUMBER: _ClassVar[int]
    CONSUMER_SECRET_FIELD_NUMBER: _ClassVar[int]
    LOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ITEMS_FIELD_NUMBER: _ClassVar[int]
    HAS_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    base_url: str
    access_token: str
    consumer_key: str
    consumer_secret: str
    location_id: str
    sku_items: _containers.ScalarMap[str, str]
    has_credentials: bool
    def __init__(self, base_url: _Optional[str] = ..., access_token: _Optional[str] = ..., consumer_key: _Optional[str] = ..., consumer_secret: _Optional[str] = ..., location_id: _Optional[str] = ..., sku_items: _Optional[_Mapping[str, str]] = ..., has_credentials: _Optional[bool] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("id", "name", "kind", "warehouse_ids", "safety_stock", "sku_safety_stock", "max_share_pct", "webhook_secret", "push", "disabled", "has_webhook_secret", "updated_at")
    class SkuSafetyStockEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_IDS_FIELD_NUMBER: _ClassVar[int]
    SAFETY_STOCK_FIELD_NUMBER: _ClassVar[int]
    SKU_SAFETY_STOCK_FIELD_NUMBER: _ClassVar[int]
    MAX_SHARE_PCT_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    PUSH_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    HAS_WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: ChannelKind
    warehouse_ids: _containers.RepeatedScalarFieldContainer[str]
    safety_stock: int
    sku_safety_stock: _containers.ScalarMap[str, int]
    max_share_pct: float
    webhook_secret: str
    push: PushTarget
    disabled: bool
    has_webhook_secret: bool
    updated_at: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[ChannelKind, str]] = ..., warehouse_ids: _Optional[_Iterable[str]] = ..., safety_stock: _Optional[int] = ..., sku_safety_stock: _Optional[_Mapping[str, int]] = ..., max_share_pct: _Optional[float] = ..., webhook_secret: _Optional[str] = ..., push: _Optional[_Union[PushTarget, _Mapping]] = ..., disabled: _Optional[bool] = ..., has_webhook_secret: _Optional[bool] = ..., updated_at: _Optional[int] = ...) -> None: ...

class UpsertChannelRequest(_message.Message):
    __slots__ = ("channel",)
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    channel: Channel
    def __init__(self, channel: _Optional[_Union[Channel, _Mapping]] = ...) -> None: ...

class ListChannelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListChannelsResponse(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    def __init__(self, channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ...) -> None: ...

class GetChannelRequest(_message.Message):
    __slots__ = ("channel_id",)
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    def __init__(self, channel_id: _Optional[str] = ...) -> None: ...

class AvailabilityLevel(_message.Message):
    __slots__ = ("sku", "available_to_sell", "network_available", "reserved", "version")
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_TO_SELL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    sku: str
    available_to_sell: int
    network_available: int
    reserved: int
    version: int
    def __init__(self, sku: _Optional[str] = ..., available_to_sell: _Optional[int] = ..., network_available: _Optional[int] = ..., reserved: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class GetAvailabilityRequest(_message.Message):
    __slots__ = ("channel_id", "skus")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    skus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, channel_id: _Optional[str] = ..., skus: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAvailabilityResponse(_message.Message):
    __slots__ = ("levels", "version")
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[AvailabilityLevel]
    version: int
    def __init__(self, levels: _Optional[_Iterable[_Union[AvailabilityLevel, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class WatchAvailabilityRequest(_message.Message):
    __slots__ = ("channel_id", "skus", "after_version")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    AFTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    skus: _containers.RepeatedScalarFieldContainer[str]
    after_version: int
    def __init__(self, channel_id: _Optional[str] = ..., skus: _Optional[_Iterable[str]] = ..., after_version: _Optional[int] = ...) -> None: ...

class AvailabilityUpdate(_message.Message):
    __slots__ = ("channel_id", "levels", "version", "snapshot")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    levels: _containers.RepeatedCompositeFieldContainer[AvailabilityLevel]
    version: int
    snapshot: bool
    def __init__(self, channel_id: _Optional[str] = ..., levels: _Optional[_Iterable[_Union[AvailabilityLevel, _Mapping]]] = ..., version: _Optional[int] = ..., snapshot: _Optional[bool] = ...) -> None: ...

class VerifyWebhookRequest(_message.Message):
    __slots__ = ("channel_id", "scheme", "signature", "body", "delivery_id")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    scheme: str
    signature: str
    body: bytes
    delivery_id: str
    def __init__(self, channel_id: _Optional[str] = ..., scheme: _Optional[str] = ..., signature: _Optional[str] = ..., body: _Optional[bytes] = ..., delivery_id: _Optional[str] = ...) -> None: ...

class VerifyWebhookResponse(_message.Message):
    __slots__ = ("valid", "kind", "disabled", "duplicate", "outcome")
    VALID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    kind: ChannelKind
    disabled: bool
    duplicate: bool
    outcome: str
    def __init__(self, valid: _Optional[bool] = ..., kind: _Optional[_Union[ChannelKind, str]] = ..., disabled: _Optional[bool] = ..., duplicate: _Optional[bool] = ..., outcome: _Optional[str] = ...) -> None: ...

class CompleteWebhookDeliveryRequest(_message.Message):
    __slots__ = ("channel_id", "delivery_id", "outcome")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    delivery_id: str
    outcome: str
    def __init__(self, channel_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class CompleteWebhookDeliveryResponse(_message.Message):
    __slots__ = ("first",)
    FIRST_FIELD_NUMBER: _ClassVar[int]
    first: bool
    def __init__(self, first: _Optional[bool] = ...) -> None: ...

class RejectedOrder(_message.Message):
    __slots__ = ("channel_id", "external_id", "reason", "received_at", "delivery_id", "skus")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    external_id: str
    reason: str
    received_at: int
    delivery_id: str
    skus: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, channel_id: _Optional[str] = ..., external_id: _Optional[str] = ..., reason: _Optional[str] = ..., received_at: _Optional[int] = ..., delivery_id: _Optional[str] = ..., skus: _Optional[_Iterable[str]] = ...) -> None: ...

class RecordRejectedOrderRequest(_message.Message):
    __slots__ = ("rejected",)
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    rejected: RejectedOrder
    def __init__(self, rejected: _Optional[_Union[RejectedOrder, _Mapping]] = ...) -> None: ...

class ListRejectedOrdersRequest(_message.Message):
    __slots__ = ("channel_id", "page_size")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    page_size: int
    def __init__(self, channel_id: _Optional[str] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListRejectedOrdersResponse(_message.Message):
    __slots__ = ("rejected",)
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedOrder]
    def __init__(self, rejected: _Optional[_Iterable[_Union[RejectedOrder, _Mapping]]] = ...) -> None: ...
