"""Fake sales channels on loopback for the oms-channels tests, the demo and the channels
benchmark: real aiohttp servers on
127.0.0.1 port 0 that speak the shapes of Shopify's GraphQL Admin API (inventorySetQuantities
with compare-and-set; fulfillment orders whose line items carry ``inventory_item_id`` and a
``fulfillable_quantity`` that fulfillments decrement, 422 for more than is fulfillable),
WooCommerce's REST v3 (products
batch; order update) and the generic webhook (signed JSON; 409 for an older version).

Each records every call (time, path, JSON body, status), every value applied per item in order,
and the most requests in flight at once per item. Faults are injected per request from a queue
(``fail(status, retry_after)``, ``slow(seconds)``) or for every request (``delay_s``), so a
test decides exactly which request fails. ``applied`` logs every value set with the time it
arrived (``time.monotonic()``), for the end-to-end lag of the demo and the benchmark.

``FakeShopThread`` runs a shop on its own event loop in a daemon thread, for callers that are
not asyncio themselves (the demo, the benchmark). Only aiohttp and orjson here: no tests/ or
server imports, so the installed package can use it.
"""
from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiohttp import web

__all__ = ["SHOPIFY_PREFIX", "Call", "FakeShop", "FakeShopThread", "Fault"]

SHOPIFY_PREFIX = "/admin/api/2024-07"
T = TypeVar("T")


@dataclass
class Call:
    t: float              # time.monotonic() when the request arrived
    t_end: float          # when it was answered
    method: str
    path: str
    body: Any
    status: int
    retry_after: float | None = None


@dataclass
class Fault:
    status: int = 0               # 0: answer normally (after the delay)
    retry_after: float | None = None
    delay_s: float = 0.0


@dataclass
class FakeShop:
    """``kind``: "shopify" | "woocommerce" | "generic". ``secret``: the access token (Shopify
    header, generic HMAC key); ``consumer_key``/``consumer_secret`` for WooCommerce."""
    kind: str
    secret: str = "token"
    consumer_key: str = "ck_test"
    consumer_secret: str = "cs_test"
    location_id: str = "loc-1"
    delay_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)          # item id -> quantity
    history: dict[str, list[tuple[int, int | None]]] = field(
        default_factory=lambda: collections.defaultdict(list))   # item -> [(value, version)]
    versions: dict[str, int] = field(default_factory=dict)       # generic: item -> version
    max_inflight: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))
    fulfillments: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    stale_answers: int = 0
    # (time.monotonic() when the request carrying it arrived, item id, value), in order
    applied: list[tuple[float, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults: collections.deque[Fault] = collections.deque()
        self._inflight: dict[str, int] = collections.defaultdict(int)
        self._fos: dict[str, list[dict[str, Any]]] = {}  # Shopify order id -> fulfillment orders
        self._next_fo = 9000
        self._next_fo_line = 70000
        self._runner: web.AppRunner | None = None
        self._t_req = 0.0  # arrival of the request being answered (handlers do not await)
        self.base_url = ""

    # -- test controls --------------------------------------------------------------------

    def fail(self, status: int, retry_after: float | None = None, times: int = 1) -> None:
        self.faults.extend(Fault(status, retry_after) for _ in range(times))

    def slow(self, seconds: float, times: int = 1) -> None:
        self.faults.extend(Fault(0, None, seconds) for _ in range(times))

    def sell(self, item: str, n: int) -> None:
        """The shop sold ``n`` (its count moves under us: the next compare is stale)."""
        self.stock[item] = self.stock.get(item, 0) - n

    def add_order(self, order_id: str, line_item_ids: Sequence[int] = (), *,
                  lines: Sequence[tuple[int, str, int]] = ()) -> dict[str, Any]:
        """A Shopify order with one open fulfillment order (at ``location_id``): one unit of
        each of ``line_item_ids`` (no inventory item), and ``lines`` as (line item id,
        inventory item id, quantity). Returns the fulfillment order."""
        self._fos[order_id] = []
        return self.add_fulfillment_order(
            order_id, [(i, "", 1) for i in line_item_ids] + list(lines))

    def add_fulfillment_order(self, order_id: str, lines: Sequence[tuple[int, str, int]]
                              ) -> dict[str, Any]:
        """One more open fulfillment order of ``order_id`` (another location's share)."""
        fo_id, self._next_fo = self._next_fo, self._next_fo + 1
        items = []
        for line_item_id, inv, qty in lines:
            items.append({"id": self._next_fo_line, "fulfillment_order_id": fo_id,
                          "line_item_id": line_item_id,
                          "inventory_item_id": (int(inv) if inv.isdigit() else inv) or None,
                          "quantity": qty, "fulfillable_quantity": qty})
            self._next_fo_line += 1
        fo = {"id": fo_id, "order_id": int(order_id) if order_id.isdigit() else order_id,
              "assigned_location_id": self.location_id, "status": "open", "line_items": items}
        self._fos.setdefault(order_id, []).append(fo)
        return fo

    def fulfillment_orders(self, order_id: str) -> list[dict[str, Any]]:
        """The order's fulfillment orders as the shop holds them now."""
        return self._fos.get(order_id, [])

    def stock_calls(self) -> list[Call]:
        path = {"shopify": SHOPIFY_PREFIX + "/graphql.json",
                "woocommerce": "/wp-json/wc/v3/products/batch",
                "generic": "/inventory"}[self.kind]
        return [c for c in self.calls if c.path.endswith(path)]

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the handler --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t0 = time.monotonic()
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        items = self._items(request.path, body)
        for i in items:
            self._inflight[i] += 1
            self.max_inflight[i] = max(self.max_inflight[i], self._inflight[i])
        fault = self.faults.popleft() if self.faults else Fault()
        try:
            delay = self.delay_s + fault.delay_s
            if delay:
                await asyncio.sleep(delay)
            if fault.status:
                headers = {} if fault.retry_after is None else {
                    "Retry-After": f"{fault.retry_after:g}"}
                resp = web.json_response({"errors": "injected"}, status=fault.status,
                                         headers=headers)
            else:
                self._t_req = t0  # _route does not await: no other request runs in between
                resp = self._route(request, raw, body)
        finally:
            for i in items:
                self._inflight[i] -= 1
        self.calls.append(Call(t0, time.monotonic(), request.method, request.path, body,
                               resp.status, fault.retry_after if fault.status else None))
        return resp

    def _items(self, path: str, body: Any) -> list[str]:
        """The item ids a stock request touches (for the in-flight count)."""
        if not isinstance(body, dict):
            return []
        if self.kind == "shopify" and path.endswith("/graphql.json"):
            qs = ((body.get("variables") or {}).get("input") or {}).get("quantities") or []
            return [str(q.get("inventoryItemId", "")).rsplit("/", 1)[-1] for q in qs]
        if self.kind == "woocommerce" and path.endswith("/products/batch"):
            return [str(u.get("id")) for u in body.get("update") or []]
        if self.kind == "generic" and path.endswith("/inventory"):
            return [str(u.get("item_id")) for u in body.get("updates") or []]
        return []

    def _route(self, request: web.Request, raw: bytes, body: Any) -> web.Response:
        p, m = request.path, request.method
        if self.kind == "shopify":
            if request.headers.get("X-Shopify-Access-Token") != self.secret:
                return web.json_response({"errors": "[API] Invalid API key"}, status=401)
            if m == "POST" and p == SHOPIFY_PREFIX + "/graphql.json":
                return web.json_response(self._shopify_set(body))
            if m == "GET" and p.startswith(SHOPIFY_PREFIX + "/orders/") and \
                    p.endswith("/fulfillment_orders.json"):
                oid = p.split("/")[-2]
                if oid not in self._fos:
                    return web.json_response({"errors": "Not Found"}, status=404)
                return web.json_response({"fulfillment_orders": self._fos[oid]})
            if m == "POST" and p == SHOPIFY_PREFIX + "/fulfillments.json":
                return self._shopify_fulfil(body["fulfillment"])
        elif self.kind == "woocommerce":
            if request.headers.get("Authorization") != "Basic " + base64.b64encode(
                    f"{self.consumer_key}:{self.consumer_secret}".encode()).decode():
                return web.json_response({"code": "woocommerce_rest_cannot_view"}, status=401)
            if m == "POST" and p == "/wp-json/wc/v3/products/batch":
                out = []
                for u in body.get("update") or []:
                    iid = str(u["id"])
                    if iid.startswith("missing"):
                        out.append({"id": u["id"], "error": {
                            "code": "woocommerce_rest_product_invalid_id",
                            "message": "Invalid ID.", "data": {"status": 404}}})
                        continue
                    self._apply(iid, int(u["stock_quantity"]), None)
                    out.append({"id": u["id"], "stock_quantity": self.stock[iid],
                                "manage_stock": u.get("manage_stock", False)})
                return web.json_response({"update": out})
            if m == "PUT" and p.startswith("/wp-json/wc/v3/orders/"):
                self.fulfillments.append({"order_id": p.rsplit("/", 1)[-1], **body})
                return web.json_response({"id": p.rsplit("/", 1)[-1], "status": body["status"]})
        else:
            sig = request.headers.get("X-OMS-Signature", "")
            want = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig, want):
                self.bad_signatures += 1
                return web.json_response({"error": "bad signature"}, status=401)
            if m == "POST" and p == "/inventory":
                older = False
                for u in body["updates"]:
                    iid, ver = str(u["item_id"]), int(u["version"])
                    if ver < self.versions.get(iid, -1):
                        older = True
                        continue
                    self.versions[iid] = ver
                    self._apply(iid, int(u["available_to_sell"]), ver)
                return web.json_response({"ok": not older}, status=409 if older else 200)
            if m == "POST" and p == "/shipments":
                self.fulfillments.append(body)
                return web.json_response({"ok": True}, status=201)
        return web.json_response({"error": "no such endpoint"}, status=404)

    def _shopify_fulfil(self, f: dict[str, Any]) -> web.Response:
        """A fulfillment: all of it or nothing. Blank line items take every open unit of the
        fulfillment order; more than a line's fulfillable quantity, an unknown line or a closed
        fulfillment order is a 422, like Shopify."""
        by_id = {fo["id"]: fo for fos in self._fos.values() for fo in fos}
        take: dict[int, int] = collections.defaultdict(int)  # fulfillment order line -> units
        lines: dict[int, dict[str, Any]] = {}
        touched = []
        for entry in f.get("line_items_by_fulfillment_order") or []:
            fo = by_id.get(entry.get("fulfillment_order_id"))
            if fo is None:
                return web.json_response({"errors": "Not Found"}, status=404)
            if fo["status"] not in ("open", "in_progress"):
                return _unprocessable(f"Fulfillment order {fo['id']} has an unfulfillable "
                                      f"status= {fo['status']}.")
            touched.append(fo)
            fo_lines = {li["id"]: li for li in fo["line_items"]}
            wanted = entry.get("fulfillment_order_line_items")
            if not wanted:
                wanted = [{"id": li["id"], "quantity": li["fulfillable_quantity"]}
                          for li in fo["line_items"] if li["fulfillable_quantity"] > 0]
            for w in wanted:
                li = fo_lines.get(w.get("id"))
                q = w.get("quantity")
                if li is None or not isinstance(q, int) or q < 1:
                    return _unprocessable("Invalid fulfillment order line item.")
                take[li["id"]] += q
                lines[li["id"]] = li
                if take[li["id"]] > li["fulfillable_quantity"]:
                    return _unprocessable("Invalid fulfillment order line item quantity "
                                          "requested.")
        if not take:
            return _unprocessable("Fulfillment must contain at least one line item.")
        for lid, q in take.items():
            lines[lid]["fulfillable_quantity"] -= q
        for fo in touched:
            left = any(li["fulfillable_quantity"] > 0 for li in fo["line_items"])
            fo["status"] = "in_progress" if left else "closed"
        self.fulfillments.append(f)
        return web.json_response({"fulfillment": {"id": len(self.fulfillments),
                                                  "status": "success"}}, status=201)

    def _apply(self, item: str, value: int, version: int | None) -> None:
        self.stock[item] = value
        self.history[item].append((value, version))
        self.applied.append((self._t_req, item, value))

    def _shopify_set(self, body: Any) -> dict[str, Any]:
        inp = body["variables"]["input"]
        assert "inventorySetQuantities" in body["query"]
        assert inp["name"] == "available"
        ignore = bool(inp.get("ignoreCompareQuantity"))
        errors = []
        parsed = []
        for n, q in enumerate(inp["quantities"]):
            item = q["inventoryItemId"].rsplit("/", 1)[-1]
            if q["locationId"].rsplit("/", 1)[-1] != self.location_id:
                errors.append({"field": ["input", "quantities", str(n), "locationId"],
                               "message": "The location couldn't be found.", "code": "INVALID_LOCATION"})
                continue
            if not ignore:
                if "compareQuantity" not in q:
                    errors.append({"field": ["input", "quantities", str(n), "compareQuantity"],
                                   "message": "compareQuantity is required",
                                   "code": "COMPARE_QUANTITY_REQUIRED"})
                    continue
                if q["compareQuantity"] != self.stock.get(item, 0):
                    self.stale_answers += 1
                    errors.append({"field": ["input", "quantities", str(n), "compareQuantity"],
                                   "message": "The compareQuantity value does not match the "
                                              "current quantity.",
                                   "code": "COMPARE_QUANTITY_STALE"})
                    continue
            parsed.append((item, int(q["quantity"])))
        if errors:  # all or nothing, like the real mutation
            return {"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": None,
                                                        "userErrors": errors}}}
        for item, v in parsed:
            self._apply(item, v, None)
        return {"data": {"inventorySetQuantities": {
            "inventoryAdjustmentGroup": {"id": f"gid://shopify/InventoryAdjustmentGroup/"
                                               f"{len(self.calls)}"},
            "userErrors": []}}}


def _unprocessable(message: str) -> web.Response:
    return web.json_response({"errors": [message]}, status=422)


class FakeShopThread:
    """A ``FakeShop`` served from its own event loop in a daemon thread. ``call(fn)`` runs
    ``fn()`` on that loop (a consistent look at the shop's state, or a change to it)."""

    def __init__(self, shop: FakeShop) -> None:
        self.shop = shop
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"fake-{shop.kind}",
                                        daemon=True)

    def start(self, timeout_s: float = 30.0) -> "FakeShopThread":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.shop.start(), self.loop).result(timeout_s)
        return self

    @property
    def base_url(self) -> str:
        return self.shop.base_url

    def call(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        async def run() -> T:
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout_s)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.shop.close(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
