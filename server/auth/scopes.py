"""The scope table: every method of every ``oms.v1`` service needs exactly one scope.

Deny by default: a method missing here is refused to everyone (and tests/unit/test_scopes.py
fails, walking the service descriptors). ``admin`` implies every scope. Health checking and
server reflection need none: load balancers and grpcurl call them before they hold a key.
"""
from __future__ import annotations

ORDERS_READ = "orders:read"
ORDERS_WRITE = "orders:write"
INVENTORY_READ = "inventory:read"
INVENTORY_WRITE = "inventory:write"
FULFILLMENT = "fulfillment"
RETURNS = "returns"
REFUNDS = "refunds"
REPORTING = "reporting"
CHANNELS_READ = "channels:read"
CHANNELS_WRITE = "channels:write"
CHANNELS_INGEST = "channels:ingest"  # the webhook edge (oms-web)
ADMIN = "admin"
# Not a scope one grants: the methods any valid key may call (WhoAmI).
ANY_KEY = "any valid key"

SCOPES = (ORDERS_READ, ORDERS_WRITE, INVENTORY_READ, INVENTORY_WRITE, FULFILLMENT, RETURNS,
          REFUNDS, REPORTING, CHANNELS_READ, CHANNELS_WRITE, CHANNELS_INGEST, ADMIN)

_TABLE: dict[str, dict[str, str]] = {
    "oms.v1.OrderService": {
        "PlaceOrder": ORDERS_WRITE,
        "BatchPlaceOrders": ORDERS_WRITE,
        "PlaceOrders": ORDERS_WRITE,
        "GetOrder": ORDERS_READ,
        "ListOrders": ORDERS_READ,
        "CancelOrder": ORDERS_WRITE,
        # A key bound to channels is refused this one too (fraud review is back-office work).
        "ReleaseHold": ORDERS_WRITE,
        "WatchOrderEvents": ORDERS_READ,
    },
    "oms.v1.InventoryService": {
        "UpsertWarehouse": INVENTORY_WRITE,
        "ListWarehouses": INVENTORY_READ,
        "UpsertProduct": INVENTORY_WRITE,
        "SetStock": INVENTORY_WRITE,
        "AdjustStock": INVENTORY_WRITE,
        "RecordStockCount": INVENTORY_WRITE,
        "GetStock": INVENTORY_READ,
        "ListStock": INVENTORY_READ,
        "SetReplenishmentPolicy": INVENTORY_WRITE,
        "SuggestReplenishment": INVENTORY_READ,
    },
    "oms.v1.FulfillmentService": {
        "PlanWave": FULFILLMENT,
        "GetWave": FULFILLMENT,
        "ListWaves": FULFILLMENT,
        "ConfirmPick": FULFILLMENT,
        "PackOrder": FULFILLMENT,
        "ShipOrder": FULFILLMENT,
        "RecordTrackingEvent": FULFILLMENT,
        "MarkDelivered": FULFILLMENT,
        "Reallocate": FULFILLMENT,
        "FillBackorders": FULFILLMENT,
        "ListShipmentExceptions": FULFILLMENT,
    },
    "oms.v1.ReturnsService": {
        "RequestReturn": RETURNS,
        "ReceiveReturn": RETURNS,
        "GetReturn": RETURNS,
        "IssueRefund": REFUNDS,
    },
    "oms.v1.ReportingService": {
        "GetStats": REPORTING,
        "Audit": ADMIN,  # with recover it releases reservations
    },
    "oms.v1.AdminService": {
        "CreateApiKey": ADMIN,
        "ListApiKeys": ADMIN,
        "RevokeApiKey": ADMIN,
        "WhoAmI": ANY_KEY,
    },
    "oms.v1.ChannelService": {
        "UpsertChannel": CHANNELS_WRITE,
        "ListChannels": CHANNELS_READ,
        "GetChannel": CHANNELS_READ,
        "GetAvailability": CHANNELS_READ,
        "WatchAvailability": CHANNELS_READ,
        "VerifyWebhook": CHANNELS_INGEST,
        "CompleteWebhookDelivery": CHANNELS_INGEST,
        "RecordRejectedOrder": CHANNELS_INGEST,
        "ListRejectedOrders": CHANNELS_READ,
    },
}

# "/pkg.Service/Method" -> scope
METHOD_SCOPES: dict[str, str] = {f"/{svc}/{m}": scope for svc, methods in _TABLE.items()
                                 for m, scope in methods.items()}

# Services anyone may call.
OPEN_SERVICES = frozenset({
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
})


def service_of(method: str) -> str:
    """"/pkg.Service/Method" -> "pkg.Service"."""
    return method.lstrip("/").split("/", 1)[0]


def is_open(method: str) -> bool:
    return service_of(method) in OPEN_SERVICES


def scope_for(method: str) -> str | None:
    """The scope ``method`` needs; None: not in the table (refused to everyone)."""
    return METHOD_SCOPES.get(method)


def table_rows() -> list[tuple[str, str, str]]:
    """(service, method, scope) for the README table."""
    return [(svc, m, scope) for svc, methods in _TABLE.items() for m, scope in methods.items()]


def readme_rows() -> list[str]:
    """The README's scope table, one markdown row per scope (tests/unit/test_docs.py keeps the
    README's copy in step with this table)."""
    by_scope: dict[str, list[str]] = {s: [] for s in (*SCOPES, ANY_KEY)}
    for svc, methods in _TABLE.items():
        short = svc.removeprefix("oms.v1.").removesuffix("Service")
        for m, scope in methods.items():
            by_scope[scope].append(f"{short}.{m}")
    return [f"| `{s}` | {', '.join(ms)} |" for s, ms in by_scope.items()]
