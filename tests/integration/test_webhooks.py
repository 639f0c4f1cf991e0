"""oms-web's signed webhooks on real parts: the real oms-server (conftest ``server``), the real
oms-web aiohttp app on a loopback port in its own thread, and real HTTP requests (aiohttp
ClientSession). Payloads are tests/fixtures/webhooks/, shaped like the platforms' own."""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oms.clients.client import OmsClient
from oms.server.web.backend import WebConfig
from oms.v1 import channels_pb2 as ch
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY
from tests.helpers import add_warehouses, on_hand_reserved, start_server
from tests.web_thread import WebThread

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
SECRET = "whsec_test_0123456789abcdef"
SKUS = ("SHIRT-RED-M", "MUG-BLUE")


def body_of(name: str, **changes: Any) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    if not changes:
        return raw  # the exact bytes of the fixture
    d = json.loads(raw)
    d.update(changes)
    return json.dumps(d).encode()


@dataclass(frozen=True)
class Shape:
    platform: str
    kind: int
    created: str  # fixture of a create
    cancelled: str  # fixture of a cancel
    external_id: str
    sig_header: str
    delivery_header: str
    topic_header: str
    create_topic: str
    cancel_topic: str

    def sign(self, body: bytes, secret: str = SECRET) -> str:
        d = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        return "sha256=" + d.hex() if self.platform == "generic" else base64.b64encode(d).decode()

    def headers(self, body: bytes, delivery: str = "", topic: str | None = None,
                secret: str = SECRET, signature: str | None = None) -> dict[str, str]:
        h = {"Content-Type": "application/json",
             self.sig_header: self.sign(body, secret) if signature is None else signature}
        if delivery:
            h[self.delivery_header] = delivery
        if self.topic_header:
            h[self.topic_header] = self.create_topic if topic is None else topic
        return h


SHOPIFY = Shape("shopify", ch.CHANNEL_KIND_SHOPIFY, "shopify_orders_create.json",
                "shopify_orders_cancelled.json", "820982911946154508", "X-Shopify-Hmac-Sha256",
                "X-Shopify-Webhook-Id", "X-Shopify-Topic", "orders/create", "orders/cancelled")
WOO = Shape("woocommerce", ch.CHANNEL_KIND_WOOCOMMERCE, "woocommerce_order_created.json",
            "woocommerce_order_updated_cancelled.json", "727", "X-WC-Webhook-Signature",
            "X-WC-Webhook-Delivery-ID", "X-WC-Webhook-Topic", "order.created", "order.updated")
GENERIC = Shape("generic", ch.CHANNEL_KIND_GENERIC, "generic_order_created.json",
                "generic_order_cancelled.json", "GEN-10001", "X-OMS-Signature",
                "X-OMS-Delivery-Id", "", "", "")
SHAPES = (SHOPIFY, WOO, GENERIC)


Request = tuple[str, bytes, dict[str, str]]


async def _post_all(requests: Sequence[Request]) -> list[tuple[int, dict[str, Any]]]:
    async with aiohttp.ClientSession() as s:
        async def one(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
            async with s.post(url, data=body, headers=headers) as r:
                text = await r.text()
                try:
                    return r.status, json.loads(text)
                except ValueError:
                    return r.status, {"text": text}

        return list(await asyncio.gather(*(one(*r) for r in requests)))


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    return asyncio.run(_post_all([(url, body, headers)]))[0]


def post_concurrently(requests: Sequence[Request]) -> list[tuple[int, dict[str, Any]]]:
    return asyncio.run(_post_all(requests))


def add_channel(client: OmsClient, channel_id: str, kind: int, secret: str = SECRET,
                disabled: bool = False) -> None:
    client.channels.UpsertChannel(ch.UpsertChannelRequest(channel=ch.Channel(
        id=channel_id, name=channel_id, kind=kind, webhook_secret=secret, disabled=disabled)))


def orders_of(client: OmsClient, channel_id: str) -> list[c.Order]:
    return list(client.list_orders(channel=channel_id, page_size=100).orders)


def rejected_of(client: OmsClient, channel_id: str) -> list[ch.RejectedOrder]:
    return list(client.channels.ListRejectedOrders(
        ch.ListRejectedOrdersRequest(channel_id=channel_id)).rejected)


@pytest.fixture()
def shop(client: OmsClient) -> OmsClient:
    """Two warehouses stocked with the fixtures' SKUs and one channel per platform."""
    for sku in SKUS:
        client.upsert_product(sku, sku)
    add_warehouses(client, {"DSM": "50309", "SFO": "94103"}, {sku: 100 for sku in SKUS})
    for s in SHAPES:
        add_channel(client, f"{s.platform[:4]}1", s.kind)
    return client


@pytest.fixture()
def web_edge(server: Any) -> Iterator[WebThread]:
    w = WebThread(WebConfig(target=f"127.0.0.1:{server.port}", api_key=ADMIN_KEY)).start()
    yield w
    w.stop()


def cid(s: Shape) -> str:
    return f"{s.platform[:4]}1"


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
def test_create_places_the_order_in_the_channel(shop: OmsClient, web_edge: WebThread,
                                                s: Shape) -> None:
    body = body_of(s.created)
    status, answer = post(web_edge.url(s.platform, cid(s)), body, s.headers(body, "d-1"))
    assert status == 200, answer
    order = shop.get_order(answer["order_id"])
    assert order.channel == cid(s)
    assert order.idempotency_key == f"{s.platform}:{cid(s)}:{s.external_id}"
    assert sorted(ln.sku for ln in order.lines) == sorted(SKUS)
    assert order.customer.email and order.ship_to.postal_code
    assert [o.id for o in orders_of(shop, cid(s))] == [order.id]
    # the delivery is complete: the same delivery id again is answered from the record
    status, again = post(web_edge.url(s.platform, cid(s)), body, s.headers(body, "d-1"))
    assert (status, again) == (200, {"duplicate": True, "outcome": f"order {order.id}"})


def test_shopify_order_carries_exact_prices_and_address(shop: OmsClient,
                                                       web_edge: WebThread) -> None:
    body = body_of(SHOPIFY.created)
    _, answer = post(web_edge.url("shopify", "shop1"), body, SHOPIFY.headers(body))
    o = shop.get_order(answer["order_id"])
    assert {(ln.sku, ln.quantity, ln.unit_price_cents) for ln in o.lines} == {
        ("SHIRT-RED-M", 1, 19_900), ("MUG-BLUE", 2, 29)}
    assert (o.customer.id, o.customer.email) == ("115310627314723954", "jon@example.com")
    assert (o.ship_to.postal_code, o.ship_to.country, o.ship_to.region) == ("50309", "US", "IA")
    assert round(o.ship_to.latitude, 4) == 41.5868


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
@pytest.mark.parametrize("same_delivery", [True, False], ids=["same-id", "new-ids"])
def test_five_concurrent_replays_make_one_order(shop: OmsClient, web_edge: WebThread, s: Shape,
                                                same_delivery: bool) -> None:
    body = body_of(s.created)
    url = web_edge.url(s.platform, cid(s))
    answers = post_concurrently([
        (url, body, s.headers(body, "dup" if same_delivery else f"dup-{i}")) for i in range(5)])
    orders = orders_of(shop, cid(s))
    assert len(orders) == 1
    for status, a in answers:
        assert status == 200, a
        assert a.get("order_id") == orders[0].id or a.get("outcome") == f"order {orders[0].id}"
    # one order's reservation, not five
    held = on_hand_reserved(shop, "MUG-BLUE")
    qty = next(ln.quantity for ln in orders[0].lines if ln.sku == "MUG-BLUE")
    assert sum(r for _, r in held.values()) == qty


def _nothing_stored(client: OmsClient, channel_id: str) -> None:
    assert orders_of(client, channel_id) == []
    assert rejected_of(client, channel_id) == []


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
def test_bad_signatures_are_401_and_store_nothing(shop: OmsClient, web_edge: WebThread,
                                                  s: Shape) -> None:
    body = body_of(s.created)
    url = web_edge.url(s.platform, cid(s))
    tampered = body.replace(b"SHIRT-RED-M", b"SHIRT-RED-L")
    assert tampered != body
    missing = s.headers(body, "d-2")
    del missing[s.sig_header]
    for b, h in [(tampered, s.headers(body, "d-2")),  # body changed after signing
                 (body, s.headers(body, "d-2", secret="not-the-secret")),
                 (body, missing),
                 (body, s.headers(body, "d-2", signature="x" * 300)),
                 (body, s.headers(body, "d-2", signature=s.sign(body)[:-4]))]:
        status, answer = post(url, b, h)
        assert status == 401, answer
    _nothing_stored(shop, cid(s))
    # and the delivery id was not marked complete: the genuine delivery is taken
    status, answer = post(url, body, s.headers(body, "d-2"))
    assert status == 200 and "order_id" in answer


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
def test_unknown_sku_is_recorded_as_rejected(shop: OmsClient, web_edge: WebThread,
                                             s: Shape) -> None:
    body = body_of(s.created).replace(b"MUG-BLUE", b"MUG-NOPE")
    status, answer = post(web_edge.url(s.platform, cid(s)), body, s.headers(body, "d-3"))
    assert status == 200 and "MUG-NOPE" in answer["rejected"]
    assert orders_of(shop, cid(s)) == []
    [r] = rejected_of(shop, cid(s))
    assert (r.external_id, r.delivery_id) == (s.external_id, "d-3")
    assert "MUG-NOPE" in r.reason and set(r.skus) == {"SHIRT-RED-M", "MUG-NOPE"}
    # a retry of the same delivery is answered as done; the record stays one
    status, again = post(web_edge.url(s.platform, cid(s)), body, s.headers(body, "d-3"))
    assert status == 200 and again["duplicate"] and again["outcome"].startswith("rejected")
    assert len(rejected_of(shop, cid(s))) == 1


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
def test_malformed_payloads_are_400(shop: OmsClient, web_edge: WebThread, s: Shape) -> None:
    url = web_edge.url(s.platform, cid(s))
    lines_key = "lines" if s is GENERIC else "line_items"
    no_lines = json.loads(body_of(s.created))
    del no_lines[lines_key]
    for body, reason in [(b'{"id": 1, ', "not JSON"),
                         (json.dumps(no_lines).encode(), f"{lines_key} is missing"),
                         (body_of(s.created, id="bad id!"), "does not match")]:
        status, answer = post(url, body, s.headers(body))
        assert status == 400 and reason in answer["error"], answer
    _nothing_stored(shop, cid(s))


@pytest.mark.parametrize("s", SHAPES, ids=lambda s: s.platform)
def test_cancel_cancels_and_releases_stock(shop: OmsClient, web_edge: WebThread,
                                           s: Shape) -> None:
    url = web_edge.url(s.platform, cid(s))
    body = body_of(s.created)
    _, placed = post(url, body, s.headers(body, "c-1"))
    assert sum(r for _, r in on_hand_reserved(shop, "SHIRT-RED-M").values()) > 0
    cancel = body_of(s.cancelled)
    status, answer = post(url, cancel, s.headers(cancel, "c-2", topic=s.cancel_topic))
    assert (status, answer) == (200, {"cancelled": True, "order_id": placed["order_id"]})
    assert shop.get_order(placed["order_id"]).status == c.ORDER_STATUS_CANCELLED
    assert all(r == 0 for _, r in on_hand_reserved(shop, "SHIRT-RED-M").values())
    assert all(r == 0 for _, r in on_hand_reserved(shop, "MUG-BLUE").values())
    # a second cancel delivery (new id) finds it cancelled: still one order
    status, again = post(url, cancel, s.headers(cancel, "c-3", topic=s.cancel_topic))
    assert (status, again) == (200, {"cancelled": True, "order_id": placed["order_id"]})
    assert len(orders_of(shop, cid(s))) == 1


def test_cancel_of_an_order_past_cancelling_is_200_not_cancelled(shop: OmsClient,
                                                                  web_edge: WebThread) -> None:
    for i, sku in enumerate(SKUS):  # pick locations, so a wave can release the order
        shop.set_stock("DSM", sku, 100, f"A01-S00{i + 1}")
    url = web_edge.url("shopify", "shop1")
    body = body_of(SHOPIFY.created)
    _, placed = post(url, body, SHOPIFY.headers(body))
    oid = placed["order_id"]
    if shop.get_order(oid).hold_until:  # the test server holds new orders for an hour
        shop.release_hold(oid)
    wave = shop.plan_wave("DSM", max_orders=10)
    assert oid in [x for b in wave.batches for x in b.order_ids]
    assert shop.confirm_pick(oid).status == c.ORDER_STATUS_PICKED
    cancel = body_of(SHOPIFY.cancelled)
    status, answer = post(url, cancel, SHOPIFY.headers(cancel, "p-1", topic="orders/cancelled"))
    assert status == 200 and answer["cancelled"] is False and answer["reason"], answer
    assert answer["order_id"] == oid
    assert shop.get_order(oid).status == c.ORDER_STATUS_PICKED


def test_woocommerce_update_that_is_not_a_cancel_is_ignored(shop: OmsClient,
                                                           web_edge: WebThread) -> None:
    url = web_edge.url("woocommerce", "wooc1")
    body = body_of(WOO.created, status="completed")
    status, answer = post(url, body, WOO.headers(body, topic="order.updated"))
    assert (status, answer) == (200, {"ignored": "order.updated"})
    status, answer = post(url, b"webhook_id=12", {"Content-Type": "application/x-www-form-"
                                                                 "urlencoded"})
    assert (status, answer) == (200, {"ignored": "ping"})
    _nothing_stored(shop, "wooc1")


def test_unknown_topics_are_ignored(shop: OmsClient, web_edge: WebThread) -> None:
    body = body_of(SHOPIFY.created)
    status, answer = post(web_edge.url("shopify", "shop1"), body,
                          SHOPIFY.headers(body, topic="products/update"))
    assert (status, answer) == (200, {"ignored": "products/update"})
    gbody = body_of(GENERIC.created, event="order.refunded")
    status, answer = post(web_edge.url("generic", "gene1"), gbody, GENERIC.headers(gbody))
    assert (status, answer) == (200, {"ignored": "order.refunded"})
    _nothing_stored(shop, "shop1")
    _nothing_stored(shop, "gene1")


def test_one_channels_secret_cannot_place_into_another(shop: OmsClient,
                                                      web_edge: WebThread) -> None:
    add_channel(shop, "shop2", ch.CHANNEL_KIND_SHOPIFY, secret="whsec_the_other_shop_000000")
    body = body_of(SHOPIFY.created)
    # signed with shop1's secret, sent to shop2's path
    status, _ = post(web_edge.url("shopify", "shop2"), body, SHOPIFY.headers(body))
    assert status == 401
    _nothing_stored(shop, "shop2")
    _nothing_stored(shop, "shop1")
    # shop2's own secret works, and its order is shop2's
    status, answer = post(web_edge.url("shopify", "shop2"), body,
                          SHOPIFY.headers(body, secret="whsec_the_other_shop_000000"))
    assert status == 200 and shop.get_order(answer["order_id"]).channel == "shop2"
    assert orders_of(shop, "shop1") == []


def test_paths_and_channel_states(shop: OmsClient, web_edge: WebThread) -> None:
    body = body_of(SHOPIFY.created)
    h = SHOPIFY.headers(body)
    # a Shopify body at the WooCommerce path of a Shopify channel: the kind does not fit
    wh = {"X-WC-Webhook-Signature": h["X-Shopify-Hmac-Sha256"],
          "X-WC-Webhook-Topic": "order.created"}
    assert post(web_edge.url("woocommerce", "shop1"), body, wh)[0] == 404
    # correctly signed for the generic scheme, but shop1 is a Shopify channel
    assert post(web_edge.url("generic", "shop1"), body, GENERIC.headers(body))[0] == 404
    assert post(web_edge.url("shopify", "nosuch"), body, h)[0] == 404
    assert post(web_edge.url("shopify", "Bad.Channel"), body, h)[0] == 404
    assert post(web_edge.url("shopify", "x" * 33), body, h)[0] == 404
    assert post(f"http://127.0.0.1:{web_edge.port}/webhooks/magento/shop1", body, h)[0] == 404
    add_channel(shop, "shop1", ch.CHANNEL_KIND_SHOPIFY, disabled=True)
    status, answer = post(web_edge.url("shopify", "shop1"), body, h)
    assert status == 409 and "disabled" in answer["error"]
    status, answer = post(web_edge.url("shopify", "shop1"), body, SHOPIFY.headers(body, "d" * 129))
    assert status == 400 and "X-Shopify-Webhook-Id" in answer["error"]
    _nothing_stored(shop, "shop1")


def test_oversize_body_is_413(shop: OmsClient, web_edge: WebThread) -> None:
    pad = b" " * (1 << 20)
    body = body_of(SHOPIFY.created) + pad
    status, _ = post(web_edge.url("shopify", "shop1"), body, SHOPIFY.headers(body))
    assert status == 413
    _nothing_stored(shop, "shop1")
    # just under the cap is fine
    body = body_of(SHOPIFY.created)
    body = body + b" " * ((1 << 20) - len(body))
    assert len(body) == 1 << 20
    status, answer = post(web_edge.url("shopify", "shop1"), body, SHOPIFY.headers(body))
    assert status == 200, answer


def test_a_key_with_only_the_edges_scopes_is_enough(shop: OmsClient, server: Any) -> None:
    key = shop.create_api_key("oms-web", ["channels:ingest", "orders:write"]).key
    w = WebThread(WebConfig(target=f"127.0.0.1:{server.port}", api_key=key)).start()
    try:
        body = body_of(GENERIC.created)
        status, answer = post(w.url("generic", "gene1"), body, GENERIC.headers(body, "k-1"))
        assert status == 200 and "order_id" in answer
        cancel = body_of(GENERIC.cancelled)
        status, answer = post(w.url("generic", "gene1"), cancel, GENERIC.headers(cancel, "k-2"))
        assert status == 200 and answer["cancelled"] is True
    finally:
        w.stop()


def test_oms_server_down_is_503(shop: OmsClient) -> None:
    w = WebThread(WebConfig(target="127.0.0.1:9", api_key=ADMIN_KEY, timeout_s=2)).start()
    try:
        body = body_of(SHOPIFY.created)
        status, _ = post(w.url("shopify", "shop1"), body, SHOPIFY.headers(body))
        assert status == 503
    finally:
        w.stop()


def test_oms_web_console_script(tmp_path: Path, clean_redis: str) -> None:
    """The installed ``oms-web`` against an oms-server child process: one signed webhook."""
    srv, target = start_server(tmp_path / "srv")
    web_proc = None
    try:
        with OmsClient(target, timeout=60, api_key=ADMIN_KEY) as client:
            for sku in SKUS:
                client.upsert_product(sku, sku)
            add_warehouses(client, {"DSM": "50309"}, {sku: 10 for sku in SKUS})
            add_channel(client, "gene1", ch.CHANNEL_KIND_GENERIC)
            key = client.create_api_key("edge", ["channels:ingest", "orders:write"]).key
            exe = Path(sys.executable).parent / "oms-web"
            env = {**os.environ, "OMS_API_KEY": key, "OMS_TARGET": target,
                   "OMS_WEB_LISTEN": "127.0.0.1:0"}
            web_proc = subprocess.Popen([str(exe), "--log-level", "WARNING"], env=env,
                                        stdout=subprocess.PIPE, text=True)
            assert web_proc.stdout is not None
            line = web_proc.stdout.readline()
            assert "listening on http://127.0.0.1:" in line, line
            base = line.split()[3]
            body = body_of(GENERIC.created)
            status, answer = post(f"{base}/webhooks/generic/gene1", body,
                                  GENERIC.headers(body, "e2e-1"))
            assert status == 200, answer
            order = client.get_order(answer["order_id"])
            assert (order.channel, order.idempotency_key) == ("gene1",
                                                              "generic:gene1:GEN-10001")
    finally:
        if web_proc is not None:
            web_proc.send_signal(signal.SIGTERM)
            assert web_proc.wait(30) == 0
        srv.terminate()
        srv.wait(30)
