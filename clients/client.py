"""Typed Python client for the oms.v1 API.

Every RPC failure is raised as ClientError carrying the gRPC status code, the message and any
google.rpc.BadRequest field violations.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from oms.clients import credentials
from oms.v1 import admin_pb2 as adm
from oms.v1 import admin_pb2_grpc as adm_rpc
from oms.v1 import channels_pb2_grpc as ch_rpc
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import fulfillment_pb2_grpc as f_rpc
from oms.v1 import inventory_pb2 as inv
from oms.v1 import inventory_pb2_grpc as inv_rpc
from oms.v1 import orders_pb2 as o
from oms.v1 import orders_pb2_grpc as o_rpc
from oms.v1 import reporting_pb2 as rep
from oms.v1 import reporting_pb2_grpc as rep_rpc
from oms.v1 import returns_pb2_grpc as ret_rpc


@dataclass
class ClientError(Exception):
    code: grpc.StatusCode
    message: str
    field_violations: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        extra = "".join(f"\n  {f}: {d}" for f, d in self.field_violations)
        return f"{self.code.name}: {self.message}{extra}"

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> "ClientError":
        st = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
        return cls(err.code(), err.details() or "", _violations(st))

    @classmethod
    def from_status(cls, st: status_pb2.Status) -> "ClientError":
        code = next((c for c in grpc.StatusCode if c.value[0] == st.code), grpc.StatusCode.UNKNOWN)
        return cls(code, st.message, _violations(st))


def _violations(st: status_pb2.Status | None) -> list[tuple[str, str]]:
    out = []
    for d in st.details if st else []:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out += [(v.field, v.description) for v in br.field_violations]
    return out


class _Wrapped:
    """Wraps a stub so that every call raises ClientError instead of grpc.RpcError."""

    def __init__(self, stub: Any, timeout: float | None) -> None:
        self._stub, self._timeout = stub, timeout

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)

        def call(request: Any, timeout: float | None = None, **kw: Any) -> Any:
            try:
                return method(request, timeout=timeout or self._timeout, **kw)
            except grpc.RpcError as e:
                raise ClientError.from_rpc(e) from None

        return call


class OmsClient:
    def __init__(self, target: str = "127.0.0.1:50051", *, timeout: float | None = 30.0,
                 channel: grpc.Channel | None = None, api_key: str | None = None,
                 tls_ca: str = "", tls_cert: str = "", tls_key: str = "") -> None:
        """``api_key`` None: OMS_API_KEY, else the local admin key file (clients/credentials.py);
        "" sends no key."""
        key = credentials.resolve_api_key() if api_key is None else api_key
        self.channel = channel or credentials.channel(
            target, api_key=key, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key, options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024)])
        self.inventory = _Wrapped(inv_rpc.InventoryServiceStub(self.channel), timeout)
        self.orders = _Wrapped(o_rpc.OrderServiceStub(self.channel), timeout)
        self.fulfillment = _Wrapped(f_rpc.FulfillmentServiceStub(self.channel), timeout)
        self.returns = _Wrapped(ret_rpc.ReturnsServiceStub(self.channel), timeout)
        self.reporting = _Wrapped(rep_rpc.ReportingServiceStub(self.channel), timeout)
        self.admin = _Wrapped(adm_rpc.AdminServiceStub(self.channel), timeout)
        self.channels = _Wrapped(ch_rpc.ChannelServiceStub(self.channel), timeout)
        self._orders_raw = o_rpc.OrderServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "OmsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- inventory ----
    def upsert_warehouse(self, id: str, name: str = "", *, latitude: float = 0.0,
                         longitude: float = 0.0, postal_code: str = "", disabled: bool = False,
                         aisles: int = 0, slots_per_aisle: int = 0, slot_length_m: float = 0.0,
                         aisle_spacing_m: float = 0.0) -> c.Warehouse:
        w = c.Warehouse(id=id, name=name, latitude=latitude, longitude=longitude,
                        postal_code=postal_code, disabled=disabled)
        if aisles or slots_per_aisle or slot_length_m or aisle_spacing_m:
            w.layout.CopyFrom(c.WarehouseLayout(aisles=aisles, slots_per_aisle=slots_per_aisle,
                                                slot_length_m=slot_length_m,
                                                aisle_spacing_m=aisle_spacing_m))
        return self.inventory.UpsertWarehouse(inv.UpsertWarehouseRequest(warehouse=w))

    def list_warehouses(self) -> list[c.Warehouse]:
        return list(self.inventory.ListWarehouses(inv.ListWarehousesRequest()).warehouses)

    def upsert_product(self, sku: str, name: str = "", **kw: int) -> c.Product:
        return self.inventory.UpsertProduct(inv.UpsertProductRequest(product=c.Product(sku=sku, name=name, **kw)))

    def set_stock(self, warehouse_id: str, sku: str, on_hand: int, location: str = "") -> c.StockLevel:
        return self.inventory.SetStock(inv.SetStockRequest(
            warehouse_id=warehouse_id, sku=sku, on_hand=on_hand, location=location))

    def record_stock_count(self, warehouse_id: str, sku: str, counted: int, reason: str = ""
                           ) -> inv.RecordStockCountResponse:
        return self.inventory.RecordStockCount(inv.RecordStockCountRequest(
            warehouse_id=warehouse_id, sku=sku, counted=counted, reason=reason))

    def adjust_stock(self, warehouse_id: str, sku: str, delta: int, reason: str = "",
                     idempotency_key: str = "") -> c.StockLevel:
        return self.inventory.AdjustStock(inv.AdjustStockRequest(
            warehouse_id=warehouse_id, sku=sku, delta=delta, reason=reason,
            idempotency_key=idempotency_key))

    def get_stock(self, sku: str) -> inv.GetStockResponse:
        return self.inventory.GetStock(inv.GetStockRequest(sku=sku))

    # ---- orders ----
    @staticmethod
    def order_request(lines: Iterable[tuple[str, int]] | Iterable[tuple[str, int, int]], *,
                      postal_code: str = "", latitude: float = 0.0, longitude: float = 0.0,
                      idempotency_key: str = "", channel: str = "web", customer_id: str = "",
                      email: str = "", name: str = "", allow_partial: bool = False,
                      country: str = "US") -> o.PlaceOrderRequest:
        return o.PlaceOrderRequest(
            idempotency_key=idempotency_key, channel=channel,
            customer=c.Customer(id=customer_id, email=email, name=name),
            ship_to=c.Address(name=name, postal_code=postal_code, country=country,
                              latitude=latitude, longitude=longitude),
            lines=[c.OrderLine(sku=t[0], quantity=t[1], unit_price_cents=t[2] if len(t) > 2 else 0)
                   for t in lines],
            allow_partial=allow_partial)

    def place_order(self, request: o.PlaceOrderRequest) -> c.Order:
        return self.orders.PlaceOrder(request)

    def batch_place_orders(self, requests: list[o.PlaceOrderRequest]) -> list[c.Order | ClientError]:
        """One result per request, in request order: the Order or a ClientError."""
        resp = self.orders.BatchPlaceOrders(o.BatchPlaceOrdersRequest(requests=requests))
        return [r.order if r.WhichOneof("result") == "order" else ClientError.from_status(r.error)
                for r in resp.results]

    def place_orders_stream(self, requests: Iterable[o.PlaceOrderRequest]
                            ) -> Iterator[c.Order | ClientError]:
        try:
            for r in self._orders_raw.PlaceOrders(iter(requests)):
                yield r.order if r.WhichOneof("result") == "order" else ClientError.from_status(r.error)
        except grpc.RpcError as e:
            raise ClientError.from_rpc(e) from None

    def get_order(self, order_id: str) -> c.Order:
        return self.orders.GetOrder(o.GetOrderRequest(order_id=order_id))

    def list_orders(self, status: int = 0, channel: str = "", page_size: int = 50,
                    page_token: str = "") -> o.ListOrdersResponse:
        return self.orders.ListOrders(o.ListOrdersRequest(
            status=status, channel=channel, page_size=page_size, page_token=page_token))

    def iter_orders(self, status: int = 0, channel: str = "", page_size: int = 500) -> Iterator[c.Order]:
        token = ""
        while True:
            page = self.list_orders(status, channel, page_size, token)
            yield from page.orders
            token = page.next_page_token
            if not token:
                return

    def cancel_order(self, order_id: str, reason: str = "") -> c.Order:
        return self.orders.CancelOrder(o.CancelOrderRequest(order_id=order_id, reason=reason))

    def release_hold(self, order_id: str, reason: str = "") -> c.Order:
        return self.orders.ReleaseHold(o.ReleaseHoldRequest(order_id=order_id, reason=reason))

    def watch_events(self, after_event_id: str = "", order_id: str = "",
                     timeout: float | None = None) -> Iterator[c.OrderEvent]:
        try:
            yield from self._orders_raw.WatchOrderEvents(
                o.WatchOrderEventsRequest(after_event_id=after_event_id, order_id=order_id),
                timeout=timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise ClientError.from_rpc(e) from None

    # ---- fulfillment / reporting ----
    def plan_wave(self, warehouse_id: str, max_orders: int = 200, batch_max_orders: int = 8,
                  batch_max_items: int = 30) -> f.Wave:
        return self.fulfillment.PlanWave(f.PlanWaveRequest(
            warehouse_id=warehouse_id, max_orders=max_orders, batch_max_orders=batch_max_orders,
            batch_max_items=batch_max_items))

    def confirm_pick(self, order_id: str, warehouse_id: str = "") -> c.Order:
        return self.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=order_id,
                                                                 warehouse_id=warehouse_id))

    def pack_order(self, order_id: str) -> c.Order:
        return self.fulfillment.PackOrder(f.PackOrderRequest(order_id=order_id))

    def ship_order(self, order_id: str, carrier: str = "", service_level: str = "") -> c.Order:
        return self.fulfillment.ShipOrder(f.ShipOrderRequest(
            order_id=order_id, carrier=carrier, service_level=service_level))

    def fill_backorders(self, max_orders: int = 0) -> f.FillBackordersReport:
        return self.fulfillment.FillBackorders(f.FillBackordersRequest(max_orders=max_orders))

    def get_stats(self) -> rep.Stats:
        return self.reporting.GetStats(rep.GetStatsRequest())

    # ---- admin ----
    def create_api_key(self, name: str, scopes: Iterable[str], channels: Iterable[str] = (),
                       expires_at: int = 0, rate_limit_per_s: float = 0.0
                       ) -> adm.CreateApiKeyResponse:
        return self.admin.CreateApiKey(adm.CreateApiKeyRequest(
            name=name, scopes=list(scopes), channels=list(channels), expires_at=expires_at,
            rate_limit_per_s=rate_limit_per_s))

    def list_api_keys(self) -> list[adm.ApiKey]:
        return list(self.admin.ListApiKeys(adm.ListApiKeysRequest()).api_keys)

    def revoke_api_key(self, key_id: str) -> adm.ApiKey:
        return self.admin.RevokeApiKey(adm.RevokeApiKeyRequest(key_id=key_id))
