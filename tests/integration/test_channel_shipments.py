"""Shipments back to the channel (issue 15, item 5): a shipped order of a channel's webhook is
marked fulfilled on the channel exactly once, with its carrier, tracking number and link, also
across re-runs, two workers, retried 5xx/429 answers; other orders push nothing; a permanent
refusal is the channel's last_error; an order split over two warehouses becomes two Shopify
fulfillments, each with its own tracking and units. Real server, real Redis, fake shops on
loopback (this file's recording shop, and oms.clients.fake_shops' Shopify with fulfillment
order line items)."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from oms.clients.fake_shops import FakeShop as PlatformShop
from oms.clients.fake_shops import FakeShopThread
from oms.engine.channels import Channel, ChannelKind, PushTarget
from oms.server.channels.connectors import PushError, connector_for
from oms.server.channels.shipments import ShipmentPushConfig, ShipmentPusher, tracking_url
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.conftest import store_for

API = "/admin/api/2024-07"


@dataclass
class FakeShop:
    """A loopback Shopify + WooCommerce + generic shop that records every shipment call.
    ``fail`` holds (status, headers) answers given to the next requests (those whose path
    contains ``fail_only``), in order."""
    url: str = ""
    calls: list[tuple[str, str, float]] = field(default_factory=list)  # method, path, time
    fulfillments: list[dict[str, Any]] = field(default_factory=list)  # Shopify POST bodies
    woo_updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    generic: list[dict[str, Any]] = field(default_factory=list)
    fail: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    fail_only: str = ""
    missing: set[str] = field(default_factory=set)  # order ids answered with 404
    closed: set[str] = field(default_factory=set)  # Shopify orders fulfilled
    lock: threading.Lock = field(default_factory=threading.Lock)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self.lock:
            self.calls.append((request.method, request.path, time.monotonic()))
            hit = self.fail and self.fail_only in request.path
            answer = self.fail.pop(0) if hit else None
        if answer is not None:
            return web.json_response({"errors": "injected"}, status=answer[0], headers=answer[1])
        return await handler(request)

    async def fulfillment_orders(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        if oid in self.missing:
            return web.json_response({"errors": "Not Found"}, status=404)
        status = "closed" if oid in self.closed else "open"
        return web.json_response({"fulfillment_orders": [
            {"id": int(oid) * 10, "order_id": int(oid), "status": status}]})

    async def create_fulfillment(self, request: web.Request) -> web.Response:
        body = await request.json()
        fos = body["fulfillment"]["line_items_by_fulfillment_order"]
        with self.lock:
            self.fulfillments.append(body["fulfillment"])
            self.closed.update(str(fo["fulfillment_order_id"] // 10) for fo in fos)
        return web.json_response({"fulfillment": {"id": len(self.fulfillments)}}, status=201)

    async def woo_order(self, request: web.Request) -> web.Response:
        oid = request.match_info["oid"]
        if oid in self.missing:
            return web.json_response({"code": "woocommerce_rest_shop_order_invalid_id"},
                                     status=404)
        body = await request.json()
        with self.lock:
            self.woo_updates.append((oid, body))
        return web.json_response({"id": int(oid), "status": body.get("status")})

    async def generic_shipment(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self.lock:
            self.generic.append(body)
        return web.json_response({}, status=202)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.middleware])
        app.router.add_get(API + "/orders/{oid}/fulfillment_orders.json", self.fulfillment_orders)
        app.router.add_post(API + "/fulfillments.json", self.create_fulfillment)
        app.router.add_put("/wp-json/wc/v3/orders/{oid}", self.woo_order)
        app.router.add_post("/shipments", self.generic_shipment)
        return app

    def shopify_posts(self) -> int:
        return sum(1 for m, p, _ in self.calls if m == "POST" and p.endswith("/fulfillments.json"))


@pytest.fixture()
def shop() -> Iterator[FakeShop]:
    fake = FakeShop()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner: list[web.AppRunner] = []

    async def start() -> None:
        r = web.AppRunner(fake.app())
        await r.setup()
        site = web.TCPSite(r, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        fake.url = f"http://127.0.0.1:{port}"
        runner.append(r)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert ready.wait(30)
    yield fake
    asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    t.join(10)


# ---- helpers ------------------------------------------------------------------------------

def _register(server: Any, shop: FakeShop, cid: str, kind: ChannelKind = ChannelKind.SHOPIFY,
              **kw: Any) -> Channel:
    push = PushTarget(base_url=shop.url, access_token="shpat_test", consumer_key="ck_test",
                      consumer_secret="cs_test", location_id="77")
    return server.run(server.store.upsert_channel(Channel(id=cid, name=cid, kind=kind,
                                                          push=push, **kw)))


def _stock(client: Any) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.upsert_product("MUG", "Mug", unit_price_cents=1500, weight_g=400, length_mm=120,
                          width_mm=100, height_mm=100)
    client.set_stock("DSM", "MUG", 50, "A01-S003")


def _shipped(client: Any, key: str, channel: str) -> c.Order:
    """Place an order (idempotency ``key``, ``channel``) and drive it to SHIPPED."""
    o = client.place_order(client.order_request([("MUG", 1, 1500)], postal_code="50010",
                                                idempotency_key=key, channel=channel,
                                                email="ann@example.com", name="Ann"))
    assert o.status in (c.ORDER_STATUS_ALLOCATED, c.ORDER_STATUS_ON_HOLD), o.status
    client.release_hold(o.id)
    wave = client.plan_wave("DSM", max_orders=10)
    assert o.id in [x for b in wave.batches for x in b.order_ids]
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert shipped.status == c.ORDER_STATUS_SHIPPED and len(shipped.shipments) == 1
    return shipped


def _cfg(name: str = "w1", **kw: Any) -> ShipmentPushConfig:
    kw.setdefault("retry_base_s", 0.05)
    return ShipmentPushConfig(consumer=name, **kw)


def _run_once(redis_url: str, *cfgs: ShipmentPushConfig) -> list[ShipmentPusher]:
    """Run one pusher per config concurrently, each ``run_once``, on a fresh store."""
    async def go() -> list[ShipmentPusher]:
        store = store_for(redis_url)
        await store.ping()
        pushers = [ShipmentPusher(store, cfg) for cfg in cfgs]
        try:
            await asyncio.gather(*(p.run_once() for p in pushers))
        finally:
            for p in pushers:
                await p.aclose()
            await store.close()
        return pushers
    return asyncio.run(go())


def _run_until(redis_url: str, cfg: ShipmentPushConfig, done: Any,
               timeout_s: float = 30.0) -> ShipmentPusher:
    """``run(stop)`` until ``done()`` holds (``timeout_s`` only bounds a hang)."""
    async def go() -> ShipmentPusher:
        store = store_for(redis_url)
        await store.ping()
        p = ShipmentPusher(store, cfg)
        stop = asyncio.Event()
        task = asyncio.create_task(p.run(stop))
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task
        await store.close()
        return p
    return asyncio.run(go())


def _stats(server: Any, cid: str) -> Any:
    return server.run(server.store.shipment_push_stats(cid))


# ---- tests --------------------------------------------------------------------------------

def test_shipped_order_marked_fulfilled_on_the_channel_exactly_once(client, server, shop,
                                                                    redis_url):
    _stock(client)
    _register(server, shop, "shop1")
    o = _shipped(client, "shopify:shop1:1001", "shop1")
    (sh,) = o.shipments

    (p,) = _run_once(redis_url, _cfg())
    assert p.pushed == 1
    (ful,) = shop.fulfillments
    assert ful["line_items_by_fulfillment_order"] == [{"fulfillment_order_id": 10010}]
    assert ful["tracking_info"]["number"] == sh.tracking_number
    assert ful["tracking_info"]["company"] == sh.carrier
    # the built-in carrier has no public tracking page: the label is the link
    assert ful["tracking_info"]["url"] == sh.label_url and sh.label_url.startswith("file://")
    st = _stats(server, "shop1")
    assert st.fulfillments == 1 and st.failures == 0 and st.last_push_at > 0

    # again, by a restarted worker (another consumer name): acknowledged, nothing pushed
    _run_once(redis_url, _cfg("w2"))
    # a second group (or a worker that pushed and died before XACK) sees the event again:
    # the marker says pushed, so it pushes nothing
    (p3,) = _run_once(redis_url, _cfg("w3", group="other-group"))
    assert p3.skipped == 1 and p3.pushed == 0
    assert len(shop.fulfillments) == 1 and shop.shopify_posts() == 1
    # and no request at all reached the shop after the first push
    assert len([x for x in shop.calls if "/fulfillment" in x[1]]) == 2
    assert _stats(server, "shop1").fulfillments == 1


def test_two_workers_at_once_push_once(client, server, shop, redis_url):
    _stock(client)
    # the generic endpoint records every call (Shopify's own open-fulfillment check would
    # hide a second push), so only the markers keep this at one per shipment
    _register(server, shop, "gen1", kind=ChannelKind.GENERIC)
    orders = [_shipped(client, f"generic:gen1:{2000 + i}", "gen1") for i in range(4)]
    # two workers of one group, and two more in another group, all at the same time
    ps = _run_once(redis_url, _cfg("a"), _cfg("b"), _cfg("c", group="g2"), _cfg("d", group="g2"))
    # a worker that found another's claim leaves the event pending; the sweep finishes it
    _run_once(redis_url, _cfg("e", group="g2", claim_idle_ms=0))
    assert sum(p.pushed for p in ps) == 4
    got = sorted((x["external_order_id"], x["shipment_id"], x["tracking_number"])
                 for x in shop.generic)
    assert got == sorted((str(2000 + i), o.shipments[0].id, o.shipments[0].tracking_number)
                         for i, o in enumerate(orders))
    assert all(x["items"] == [{"sku": "MUG", "quantity": 1}] for x in shop.generic)
    assert len(shop.calls) == 4


def test_retries_after_5xx_and_429_with_retry_after_push_once(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "shop1")
    o = _shipped(client, "shopify:shop1:3001", "shop1")
    shop.fail = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    p = _run_until(redis_url, _cfg(), lambda: bool(shop.fulfillments))
    (ful,) = shop.fulfillments
    assert ful["tracking_info"]["number"] == o.shipments[0].tracking_number
    assert p.retried == 3 and p.pushed == 1
    # the attempt after the 429 came no sooner than its Retry-After
    gets = [t for m, path, t in shop.calls if m == "GET"]
    assert len(gets) == 4 and gets[3] - gets[2] >= 1.0
    st = _stats(server, "shop1")
    assert st.failures == 3 and st.fulfillments == 1 and "HTTP 429" in st.last_error
    # later runs push nothing more
    _run_once(redis_url, _cfg("w2"))
    _run_once(redis_url, _cfg("w3", group="g3"))
    assert shop.shopify_posts() == 1


def test_a_failing_channel_does_not_hold_up_another(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "down", kind=ChannelKind.WOOCOMMERCE)
    _register(server, shop, "up", kind=ChannelKind.GENERIC)
    _shipped(client, "woocommerce:down:11", "down")
    g = _shipped(client, "generic:up:A-12", "up")
    # every WooCommerce call fails with 503 for a long time; the generic channel goes on
    shop.fail, shop.fail_only = [(503, {"Retry-After": "3600"})], "/wc/"
    (p,) = _run_once(redis_url, _cfg())
    assert [x["shipment_id"] for x in shop.generic] == [g.shipments[0].id]
    assert shop.woo_updates == [] and p.retried == 1
    assert "HTTP 503" in _stats(server, "down").last_error


def test_orders_without_a_channel_key_push_nothing(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "shop1")
    _register(server, shop, "off")
    _shipped(client, "", "shop1")  # no idempotency key
    _shipped(client, "plain-key-1", "shop1")  # a key that is no external order key
    _shipped(client, "shopify:nochannel:4001", "nochannel")  # channel not registered
    _shipped(client, "shopify:shop1:4002", "web")  # another channel's order
    _shipped(client, "shopify:off:4003", "off")
    _register(server, shop, "off", disabled=True)  # disabled after the order shipped
    (p,) = _run_once(redis_url, _cfg())
    assert shop.calls == [] and p.pushed == 0
    assert _stats(server, "shop1").failures == 0
    # every event was acknowledged: a restart has nothing left
    assert server.run(server.store.shipment_events("x").pending_count(
        "channel-shipments", ["DSM"])) == 0


def test_woocommerce_order_completed_with_tracking(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "woo1", kind=ChannelKind.WOOCOMMERCE)
    o = _shipped(client, "woocommerce:woo1:5001", "woo1")
    (sh,) = o.shipments
    _run_once(redis_url, _cfg(tracking_url_template="https://t.example/{carrier}/{tracking_number}"))
    _run_once(redis_url, _cfg("w2", group="g2"))
    ((oid, body),) = shop.woo_updates
    assert oid == "5001" and body["status"] == "completed"
    meta = {m["key"]: m["value"] for m in body["meta_data"]}
    assert meta["_tracking_number"] == sh.tracking_number
    assert meta["_tracking_provider"] == sh.carrier
    assert meta["_tracking_url"] == f"https://t.example/{sh.carrier}/{sh.tracking_number}"
    assert meta["_oms_shipment_id"] == sh.id
    assert [m for m, _, _ in shop.calls] == ["PUT"]


def test_permanent_404_is_the_channels_last_error(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "shop1")
    o = _shipped(client, "shopify:shop1:6001", "shop1")
    shop.missing.add("6001")
    (p,) = _run_once(redis_url, _cfg())
    assert p.failed == 1 and p.pushed == 0 and shop.fulfillments == []
    st = _stats(server, "shop1")
    assert st.failures == 1 and "HTTP 404" in st.last_error and st.last_error_at > 0
    assert o.shipments[0].id in st.last_error
    marker = server.run(server.store.shipment_push_state("shop1", o.shipments[0].id))
    assert marker.startswith("failed ")
    # refused for good: acknowledged, never tried again
    _run_once(redis_url, _cfg("w2", claim_idle_ms=0))
    _run_once(redis_url, _cfg("w3", group="g3"))
    assert len(shop.calls) == 1


def test_platform_of_the_key_must_match_the_channel(client, server, shop, redis_url):
    _stock(client)
    _register(server, shop, "woo1", kind=ChannelKind.WOOCOMMERCE)
    _shipped(client, "shopify:woo1:7001", "woo1")
    (p,) = _run_once(redis_url, _cfg())
    assert shop.calls == [] and p.failed == 1
    assert "shopify order on a woocommerce channel" in _stats(server, "woo1").last_error


def test_tracking_url_prefers_the_carriers_public_page() -> None:
    from oms.engine.models import Shipment

    s = Shipment(id="DSM.1/s1", warehouse_id="DSM", carrier="UPS", service_level="GROUND",
                 tracking_number="1Z 99", label_url="file:///l.pdf", packages=(), eta_ms=0)
    assert tracking_url(s, "DSM.1") == "https://www.ups.com/track?tracknum=1Z%2099"
    assert tracking_url(s, "DSM.1", "https://x/{order_id}") == "https://x/DSM.1"
    other = Shipment(**{**s.__dict__, "carrier": "OMSX"})
    assert tracking_url(other, "DSM.1") == "file:///l.pdf"


# ---- split orders on Shopify ----------------------------------------------------------------

@pytest.fixture()
def shopify() -> Iterator[FakeShopThread]:
    t = FakeShopThread(PlatformShop("shopify", secret="shpat_test")).start()
    yield t
    t.close()


def _split_shipped(client: Any, key: str, channel: str) -> c.Order:
    """An order of VASE x1 (stocked in DSM only) and LAMP x2 (CHI only), shipped to Columbus:
    two shipments."""
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "VASE", 5, "A03-S002")
    client.set_stock("CHI", "LAMP", 5, "A01-S001")
    o = client.place_order(client.order_request(
        [("VASE", 1, 2500), ("LAMP", 2, 4500)], postal_code="43215", idempotency_key=key,
        channel=channel, email="ann@example.com", name="Ann"))
    assert {(a.warehouse_id, a.sku, a.quantity) for a in o.allocations} == {
        ("DSM", "VASE", 1), ("CHI", "LAMP", 2)}
    client.release_hold(o.id)
    for wid in ("DSM", "CHI"):
        wave = client.plan_wave(wid, max_orders=10)
        assert o.id in [x for b in wave.batches for x in b.order_ids]
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert shipped.status == c.ORDER_STATUS_SHIPPED and len(shipped.shipments) == 2
    return shipped


def test_split_order_one_shopify_fulfillment_per_shipment(client, server, shopify, redis_url):
    o = _split_shipped(client, "shopify:shop2:8001", "shop2")
    server.run(server.store.upsert_channel(Channel(
        id="shop2", name="shop2", kind=ChannelKind.SHOPIFY, push=PushTarget(
            base_url=shopify.base_url, access_token="shpat_test", location_id="loc-1",
            sku_items={"VASE": "801", "LAMP": "gid://shopify/InventoryItem/802"}))))
    shop = shopify.shop
    # One fulfillment order at the shop's location holds both SKUs, and a third line the
    # shop fulfils itself (not ours: it must stay open).
    fo = shopify.call(lambda: shop.add_order("8001", lines=[(1, "801", 1), (2, "802", 2),
                                                            (3, "803", 1)]))
    vase, lamp, other = (li["id"] for li in fo["line_items"])

    (p,) = _run_once(redis_url, _cfg())
    assert p.pushed == 2 and p.failed == 0 and p.retried == 0
    fuls = shopify.call(lambda: list(shop.fulfillments))
    by_tracking = {x["tracking_info"]["number"]: x for x in fuls}
    assert len(fuls) == 2 and len(by_tracking) == 2
    want = {"DSM": [{"id": vase, "quantity": 1}], "CHI": [{"id": lamp, "quantity": 2}]}
    for sh in o.shipments:
        ful = by_tracking[sh.tracking_number]
        assert ful["tracking_info"]["company"] == sh.carrier
        assert ful["line_items_by_fulfillment_order"] == [
            {"fulfillment_order_id": fo["id"], "fulfillment_order_line_items": want[sh.warehouse_id]}]
    left = shopify.call(lambda: {li["id"]: li["fulfillable_quantity"]
                                 for li in shop.fulfillment_orders("8001")[0]["line_items"]})
    assert left == {vase: 0, lamp: 0, other: 1}
    assert shopify.call(lambda: shop.fulfillment_orders("8001")[0]["status"]) == "in_progress"
    assert _stats(server, "shop2").fulfillments == 2

    # re-runs (another worker, another group) push nothing more
    _run_once(redis_url, _cfg("w2", claim_idle_ms=0))
    (p3,) = _run_once(redis_url, _cfg("w3", group="g3"))
    assert p3.skipped == 2 and p3.pushed == 0
    posts = shopify.call(lambda: [x for x in shop.calls if x.path.endswith("/fulfillments.json")])
    assert [x.status for x in posts] == [201, 201]


def test_shopify_units_capped_unmapped_sku_falls_back_over_fulfilment_refused(shopify, caplog):
    shop = shopify.shop
    shopify.call(lambda: shop.add_order("8101", lines=[(1, "801", 1), (2, "802", 3)]))
    fo2 = shopify.call(lambda: shop.add_order("8102", lines=[(1, "801", 1), (2, "802", 1)]))
    ch = Channel(id="c", kind=ChannelKind.SHOPIFY, push=PushTarget(
        base_url=shopify.base_url, access_token="shpat_test",
        sku_items={"VASE": "801", "LAMP": "802"}))
    url = f"{shopify.base_url}/admin/api/2024-07/fulfillments.json"
    head = {"X-Shopify-Access-Token": "shpat_test"}

    async def go() -> list[int]:
        async with aiohttp.ClientSession() as s:
            conn = connector_for(ch, s)
            assert conn is not None
            # 5 lamps shipped, 3 open on the shop: 3 are fulfilled, never more
            await conn.mark_shipped("8101", "ups", "1Z1", "", "X/s1", items={"LAMP": 5})
            # the same again: none of its units open, no fulfillment
            await conn.mark_shipped("8101", "ups", "1Z1", "", "X/s1", items={"LAMP": 5})
            # a SKU without an inventory item: every open fulfillment order, logged
            await conn.mark_shipped("8102", "ups", "1Z2", "", "Y/s1", items={"MUG": 1, "VASE": 1})
            statuses = []
            # more than fulfillable (the vase of 8101 is open, 1 unit): 422, nothing changes
            fo1 = shop.fulfillment_orders("8101")[0]
            over = {"fulfillment": {"line_items_by_fulfillment_order": [{
                "fulfillment_order_id": fo1["id"], "fulfillment_order_line_items": [
                    {"id": fo1["line_items"][0]["id"], "quantity": 2}]}]}}
            for body in (over, {"fulfillment": {"line_items_by_fulfillment_order": [
                    {"fulfillment_order_id": fo2["id"]}]}}):  # a closed fulfillment order
                async with s.post(url, json=body, headers=head) as r:
                    statuses.append(r.status)
            # a fulfillment the shop refuses reaches the pusher as a permanent failure
            with pytest.raises(PushError) as e:
                await conn._request("POST", url, body=over, headers=head)
            assert not e.value.retryable and "HTTP 422" in e.value.message
            return statuses

    with caplog.at_level("WARNING", logger="oms.channels.connectors"):
        statuses = asyncio.run(go())
    assert statuses == [422, 422]
    fuls = shopify.call(lambda: list(shop.fulfillments))
    assert [x["tracking_info"]["number"] for x in fuls] == ["1Z1", "1Z2"]
    fo1 = shopify.call(lambda: shop.fulfillment_orders("8101")[0])
    assert fuls[0]["line_items_by_fulfillment_order"] == [{
        "fulfillment_order_id": fo1["id"],
        "fulfillment_order_line_items": [{"id": fo1["line_items"][1]["id"], "quantity": 3}]}]
    assert [li["fulfillable_quantity"] for li in fo1["line_items"]] == [1, 0]
    assert fuls[1]["line_items_by_fulfillment_order"] == [{"fulfillment_order_id": fo2["id"]}]
    assert shopify.call(lambda: shop.fulfillment_orders("8102")[0]["status"]) == "closed"
    assert "only 3 of 5 units of LAMP" in caplog.text
    assert "no Shopify inventory item for MUG" in caplog.text
