"""Request messages -> checked commands: the validation of every RPC whose request is more than
one id, and what an unset field means (the defaults live in server/config.py). A servicer calls
one ``decode_*`` here, one operation, one encoder; a bad field raises ValidationError
(INVALID_ARGUMENT) before anything is read or written."""
from __future__ import annotations

import re
from dataclasses import dataclass

from oms.engine.errors import ValidationError
from oms.engine.models import ReturnLine
from oms.server import config as defaults
from oms.server import pb_convert
from oms.server import validation as val
from oms.v1 import fulfillment_pb2, inventory_pb2, orders_pb2, returns_pb2

# ---- fulfillment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanWaveCommand:
    warehouse_id: str
    max_orders: int
    batch_max_orders: int
    batch_max_items: int


def decode_plan_wave(r: fulfillment_pb2.PlanWaveRequest) -> PlanWaveCommand:
    wid = pb_convert.check_warehouse_id(r.warehouse_id)
    val.raise_if(
        val.int_violation(r.max_orders, 0, val.MAX_WAVE_ORDERS, "max_orders"),
        val.int_violation(r.batch_max_orders, 0, val.MAX_BATCH_ORDERS, "batch_max_orders"),
        val.int_violation(r.batch_max_items, 0, val.MAX_BATCH_ITEMS, "batch_max_items"))
    return PlanWaveCommand(wid, r.max_orders or defaults.WAVE_MAX_ORDERS,
                           r.batch_max_orders or defaults.BATCH_MAX_ORDERS,
                           r.batch_max_items or defaults.BATCH_MAX_ITEMS)


@dataclass(frozen=True)
class ReallocateCommand:
    time_budget_s: float
    max_orders: int


def decode_reallocate(r: fulfillment_pb2.ReallocateRequest) -> ReallocateCommand:
    val.raise_if(
        val.int_violation(r.max_orders, 0, val.MAX_SCAN_ORDERS, "max_orders"),
        None if r.time_budget_s == 0 else val.float_violation(
            r.time_budget_s, 0, val.MAX_TIME_BUDGET_S, "time_budget_s", lo_open=True))
    return ReallocateCommand(r.time_budget_s or defaults.REALLOCATE_TIME_BUDGET_S,
                             r.max_orders or defaults.SCAN_MAX_ORDERS)


def decode_fill_backorders(r: fulfillment_pb2.FillBackordersRequest) -> int:
    """The max_orders to scan."""
    if not 0 <= r.max_orders <= val.MAX_SCAN_ORDERS:
        raise ValidationError.one("max_orders",
                                  f"{r.max_orders} must be in 0..{val.MAX_SCAN_ORDERS}")
    return r.max_orders or defaults.SCAN_MAX_ORDERS


def decode_confirm_pick(r: fulfillment_pb2.ConfirmPickRequest) -> tuple[str, str]:
    """(order_id, warehouse_id or "")."""
    pb_convert.check_order_id(r.order_id)
    if r.warehouse_id:
        pb_convert.check_warehouse_id(r.warehouse_id)
    return r.order_id, r.warehouse_id


@dataclass(frozen=True)
class ShipCommand:
    order_id: str
    carrier: str
    service_level: str


def decode_ship_order(r: fulfillment_pb2.ShipOrderRequest) -> ShipCommand:
    pb_convert.check_order_id(r.order_id)
    val.raise_if(
        val.pattern_violation(r.carrier, val.CARRIER_RE, "carrier") if r.carrier else None,
        val.pattern_violation(r.service_level, val.SERVICE_LEVEL_RE, "service_level")
        if r.service_level else None)
    return ShipCommand(r.order_id, r.carrier, r.service_level)


@dataclass(frozen=True)
class TrackingCommand:
    tracking_number: str
    event_id: str
    type: str
    occurred_at_ms: int
    location: str


def decode_tracking_event(r: fulfillment_pb2.RecordTrackingEventRequest) -> TrackingCommand:
    val.raise_if(
        val.pattern_violation(r.event_id, val.KEY_RE, "event_id", "event id")
        if r.event_id else None,
        val.pattern_violation(r.type, val.TRACKING_TYPE_RE, "type", "tracking event type")
        if r.type else None,
        val.text_violation(r.location, "location", "tracking.location"))
    val.require_unix_s(r.occurred_at, "occurred_at")
    pb_convert.check_id(r.tracking_number, val.TRACKING_NUMBER_RE, "tracking_number",
                        "tracking number")
    return TrackingCommand(r.tracking_number, r.event_id, r.type, r.occurred_at * 1000,
                           r.location)


def decode_exceptions_limit(r: fulfillment_pb2.ListShipmentExceptionsRequest) -> int:
    val.require_int(r.limit, 0, val.MAX_EXCEPTIONS_LIMIT, "limit")
    return r.limit or defaults.EXCEPTIONS_LIMIT


# ---- orders ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListOrdersQuery:
    status: int
    channel: str
    page_size: int
    page_token: str


def decode_list_orders(r: orders_pb2.ListOrdersRequest) -> ListOrdersQuery:
    status = pb_convert.decode_status(r.status)
    if r.channel:
        val.require_pattern(r.channel, val.CHANNEL_RE, "channel")
    size = r.page_size or defaults.PAGE_SIZE
    if not 0 < size <= val.MAX_PAGE_SIZE:
        raise ValidationError.one("page_size", f"{r.page_size} must be in 1..{val.MAX_PAGE_SIZE}")
    token = r.page_token
    if token and val.PAGE_TOKEN_RE.fullmatch(token) is None:
        raise ValidationError.one("page_token",
                                  f"{val.quote(token)} is not a token from ListOrders")
    return ListOrdersQuery(status, r.channel, size, token)


def decode_reason_for_order(r: orders_pb2.CancelOrderRequest | orders_pb2.ReleaseHoldRequest
                            ) -> tuple[str, str]:
    """(order_id, reason) of CancelOrder and ReleaseHold."""
    pb_convert.check_order_id(r.order_id)
    val.require_text(r.reason, "reason", "reason", multiline=True)
    return r.order_id, r.reason


# ---- inventory ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetStockCommand:
    warehouse_id: str
    sku: str
    on_hand: int
    location: str  # checked against the warehouse's layout once it is read (check_location)


def decode_set_stock(r: inventory_pb2.SetStockRequest) -> SetStockCommand:
    wid = pb_convert.check_warehouse_id(r.warehouse_id)
    sku = pb_convert.check_sku(r.sku)
    pb_convert.check_units(r.on_hand, "on_hand")
    return SetStockCommand(wid, sku, r.on_hand, r.location)


@dataclass(frozen=True)
class StockCountCommand:
    warehouse_id: str
    sku: str
    counted: int
    reason: str


def decode_stock_count(r: inventory_pb2.RecordStockCountRequest) -> StockCountCommand:
    wid = pb_convert.check_warehouse_id(r.warehouse_id)
    sku = pb_convert.check_sku(r.sku)
    pb_convert.check_units(r.counted, "counted")
    val.require_text(r.reason, "reason", "reason", multiline=True)
    return StockCountCommand(wid, sku, r.counted, r.reason)


@dataclass(frozen=True)
class AdjustStockCommand:
    warehouse_id: str
    sku: str
    delta: int
    idempotency_key: str


def decode_adjust_stock(r: inventory_pb2.AdjustStockRequest) -> AdjustStockCommand:
    wid = pb_convert.check_warehouse_id(r.warehouse_id)
    sku = pb_convert.check_sku(r.sku)
    if r.delta == 0:
        raise ValidationError.one("delta", "0 changes nothing")
    if abs(r.delta) > val.MAX_STOCK:
        raise ValidationError.one("delta", f"|{r.delta}| is more than {val.MAX_STOCK}")
    val.raise_if(val.key_violation(r.idempotency_key, "idempotency_key"),
                 val.text_violation(r.reason, "reason", "reason", multiline=True))
    return AdjustStockCommand(wid, sku, r.delta, r.idempotency_key)


@dataclass(frozen=True)
class ReplenishmentPolicyCommand:
    warehouse_id: str
    sku: str
    reorder_point: int
    lead_time_days: float


def decode_replenishment_policy(r: inventory_pb2.SetReplenishmentPolicyRequest
                                ) -> ReplenishmentPolicyCommand:
    pol = r.policy
    wid = pb_convert.check_warehouse_id(pol.warehouse_id, "policy.warehouse_id")
    sku = pb_convert.check_sku(pol.sku, "policy.sku")
    val.raise_if(
        val.int_violation(pol.reorder_point, 0, val.MAX_STOCK, "policy.reorder_point"),
        val.float_violation(pol.lead_time_days, 0, val.MAX_DAYS, "policy.lead_time_days",
                            lo_open=True))
    return ReplenishmentPolicyCommand(wid, sku, pol.reorder_point, pol.lead_time_days)


@dataclass(frozen=True)
class ReplenishmentQuery:
    warehouse_id: str  # "" = every warehouse
    window_days: float
    include_zero: bool


def decode_suggest_replenishment(r: inventory_pb2.SuggestReplenishmentRequest
                                 ) -> ReplenishmentQuery:
    window = val.require_float(r.window_days or defaults.REPLENISHMENT_WINDOW_DAYS,
                               val.MIN_WINDOW_DAYS, val.MAX_DAYS, "window_days")
    wid = pb_convert.check_warehouse_id(r.warehouse_id) if r.warehouse_id else ""
    return ReplenishmentQuery(wid, window, r.include_zero)


# ---- returns --------------------------------------------------------------------------------


def check_return_id(value: str) -> str:
    return pb_convert.check_id(value, val.RETURN_ID_RE, "return_id", "return")


@dataclass(frozen=True)
class ReturnRequestCommand:
    order_id: str
    lines: list[ReturnLine]
    reason: str


def decode_request_return(r: returns_pb2.RequestReturnRequest) -> ReturnRequestCommand:
    pb_convert.check_order_id(r.order_id)
    if len(r.lines) > val.MAX_LINES:
        raise ValidationError.one("lines", f"{len(r.lines)} lines, at most {val.MAX_LINES}")
    v = [val.text_violation(r.reason, "reason", "reason", multiline=True)]
    for i, ln in enumerate(r.lines):
        v += [val.pattern_violation(ln.sku, val.SKU_RE, f"lines[{i}].sku", "sku"),
              val.int_violation(ln.quantity, 1, val.MAX_QTY, f"lines[{i}].quantity")]
    val.raise_if(*v)
    return ReturnRequestCommand(r.order_id, [ReturnLine(ln.sku, ln.quantity) for ln in r.lines],
                                r.reason)


def decode_refund(r: returns_pb2.IssueRefundRequest) -> tuple[str, int]:
    """(return_id, amount_cents)."""
    check_return_id(r.return_id)
    val.require_int(r.amount_cents, 0, val.MAX_ORDER_TOTAL_CENTS, "amount_cents")
    return r.return_id, r.amount_cents


# ---- listings for the console ---------------------------------------------------------------

@dataclass(frozen=True)
class ListStockQuery:
    warehouse_id: str
    sku_prefix: str
    page_size: int
    page_token: str


SKU_PREFIX_RE = re.compile(r"[A-Za-z0-9_./-]{0,64}", re.ASCII)


def decode_list_stock(r: inventory_pb2.ListStockRequest) -> ListStockQuery:
    if r.warehouse_id:
        pb_convert.check_id(r.warehouse_id, val.WAREHOUSE_ID_RE, "warehouse_id", "warehouse")
    val.require_pattern(r.sku_prefix, SKU_PREFIX_RE, "sku_prefix")
    size = r.page_size or 50
    if not 0 < size <= 500:
        raise ValidationError.one("page_size", f"{r.page_size} must be in 1..500")
    if r.page_token and val.SKU_RE.fullmatch(r.page_token) is None:
        raise ValidationError.one("page_token",
                                  f"{val.quote(r.page_token)} is not a token from ListStock")
    return ListStockQuery(r.warehouse_id, r.sku_prefix, size, r.page_token)


def decode_list_waves(r: fulfillment_pb2.ListWavesRequest) -> tuple[str, int]:
    pb_convert.check_id(r.warehouse_id, val.WAREHOUSE_ID_RE, "warehouse_id", "warehouse")
    size = r.page_size or 20
    if not 0 < size <= 200:
        raise ValidationError.one("page_size", f"{r.page_size} must be in 1..200")
    return r.warehouse_id, size
