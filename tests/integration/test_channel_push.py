"""oms-channels against fake Shopify / WooCommerce / generic shops on loopback (tests/fakeshops.py),
with the real server and Redis: after stock changes each shop's stock converges to the
channel's available-to-sell (GetAvailability) for every SKU, through injected 429s (Retry-After
honoured), 500s and slow answers, with at most one request in flight per SKU and never an older
value after a newer one; stats reach GetStats.channels; ``oms-channels --once`` works."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest

from oms.clients.client import OmsClient
from oms.server.channels.connectors import connector_for
from oms.server.channels.pusher import ChannelSync, PushPolicy
from oms.v1 import channels_pb2 as pb
from tests import conftest
from tests.fakeshops import FakeShop
from tests.helpers import add_warehouses, poll

pytestmark = pytest.mark.timeout(240)

T = TypeVar("T")
req = OmsClient.order_request
WAREHOUSES = {"DSM": "50309", "CHI": "60601", "NYC": "10001"}
NEAR_DSM = "50010"
SKUS = [f"SKU-{c}" for c in "ABCDE"]
CONVERGE_S = 60.0  # bounds a hang only
# Short backoff so the tests spend little time waiting; Retry-After still rules when sent.
FAST = PushPolicy(backoff_base_s=0.05, backoff_cap_s=0.5,
                  timeout=aiohttp.ClientTimeout(total=120))


class Harness:
    """An asyncio loop in a thread holding the fake shops and the ChannelSync under test."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.shops: list[FakeShop] = []
        self.sync: ChannelSync | None = None
        self._task: Any = None
        self._stop: asyncio.Event | None = None

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def on_loop(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on the loop (a consistent look at the shops' and pushers' state)."""
        async def call() -> T:
            return fn()
        return self.run(call())

    def shop(self, kind: str, **kw: Any) -> FakeShop:
        s = FakeShop(kind, **kw)
        self.run(s.start())
        self.shops.append(s)
        return s

    def start(self, policy: PushPolicy = FAST, reconcile_s: float = 300.0) -> ChannelSync:
        async def go() -> None:
            self.store = conftest.store_for(self.redis_url)
            await self.store.ping()
            self.sync = ChannelSync(self.store, poll_s=0.02, reconcile_s=reconcile_s,
                                    policy=policy, report_s=0.2, seed=7)
            self._stop = asyncio.Event()
            self._task = asyncio.ensure_future(self.sync.run(self._stop))
        self.run(go())
        assert self.sync is not None
        return self.sync

    def close(self) -> None:
        async def down() -> None:
            if self._stop is not None:
                self._stop.set()
                await asyncio.wait_for(self._task, 30)
                await self.store.close()
            for s in self.shops:
                await s.close()
            # A slow shop's handler may still sleep: end it here, not at interpreter exit.
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        try:
            self.run(down())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


@pytest.fixture()
def harness(clean_redis: str) -> Iterator[Harness]:
    h = Harness(clean_redis)
    yield h
    h.close()


@pytest.fixture()
def network(client: OmsClient) -> OmsClient:
    add_warehouses(client, WAREHOUSES)
    for w in WAREHOUSES:
        for n, sku in enumerate(SKUS):
            client.set_stock(w, sku, 10 + n)
    return client


def add_channel(client: OmsClient, cid: str, kind: int, shop: FakeShop,
                items: dict[str, str] | None = None, **kw: Any) -> pb.Channel:
    push = pb.PushTarget(base_url=shop.base_url, access_token=shop.secret,
                         consumer_key=shop.consumer_key, consumer_secret=shop.consumer_secret,
                         location_id=shop.location_id,
                         sku_items=items if items is not None else
                         {s: str(100 + i) for i, s in enumerate(SKUS)})
    base: dict[str, Any] = dict(id=cid, name=cid, kind=kind, warehouse_ids=["DSM", "CHI"],
                                safety_stock=1, max_share_pct=80.0, push=push)
    base.update(kw)
    return client.channels.UpsertChannel(pb.UpsertChannelRequest(channel=pb.Channel(**base)))


def ats(client: OmsClient, cid: str) -> dict[str, int]:
    r = client.channels.GetAvailability(pb.GetAvailabilityRequest(channel_id=cid, skus=SKUS))
    return {lv.sku: lv.available_to_sell for lv in r.levels}


def converged(h: Harness, client: OmsClient, cid: str, shop: FakeShop,
              items: dict[str, str] | None = None) -> bool:
    """The shop holds the channel's available-to-sell for every SKU and nothing is pending."""
    items = items or {s: str(100 + i) for i, s in enumerate(SKUS)}
    want = {items[s]: v for s, v in ats(client, cid).items() if s in items}
    got = h.on_loop(lambda: {i: shop.stock.get(i) for i in want})
    p = h.sync.pusher(cid) if h.sync else None
    idle = h.on_loop(lambda: p is not None and p.idle)
    return got == want and idle


def wait_converged(h: Harness, client: OmsClient, cid: str, shop: FakeShop) -> None:
    assert poll(lambda: converged(h, client, cid, shop), CONVERGE_S), (
        ats(client, cid), h.on_loop(lambda: dict(shop.stock)))


def drive_up(client: OmsClient, rounds: int, first: int = 0) -> None:
    """Stock only grows: available-to-sell only grows, so a shop must never see it go down."""
    for r in range(first, first + rounds):
        for n, sku in enumerate(SKUS):
            client.set_stock("DSM" if r % 2 else "CHI", sku, 20 + 5 * r + n)


def assert_never_older(shop: FakeShop) -> None:
    for item, hist in shop.history.items():
        values = [v for v, _ in hist]
        assert values == sorted(values), (item, values)
        versions = [v for _, v in hist if v is not None]
        assert versions == sorted(versions), (item, versions)


def test_shopify_with_429s_converges_one_in_flight_per_sku(harness: Harness,
                                                          network: OmsClient) -> None:
    shop = harness.shop("shopify", secret="shpat_test")
    add_channel(network, "shop", pb.CHANNEL_KIND_SHOPIFY, shop)
    shop.fail(429, retry_after=1.5, times=3)  # longer than the 1 s per-SKU spacing
    harness.start()
    drive_up(network, 6)
    wait_converged(harness, network, "shop", shop)
    drive_up(network, 10, first=6)  # a burst on a settled channel: coalesced, 1 push/SKU/s
    wait_converged(harness, network, "shop", shop)
    network.place_order(req([("SKU-A", 3), ("SKU-C", 2)], postal_code=NEAR_DSM))
    wait_converged(harness, network, "shop", shop)

    calls = harness.on_loop(lambda: list(shop.stock_calls()))
    assert [c.status for c in calls[:3]] == [429, 429, 429]
    for a, b in zip(calls, calls[1:]):  # Retry-After honoured: the next call waited it out
        if a.retry_after is not None:
            assert b.t >= a.t_end + a.retry_after, (a, b)
    assert max(shop.max_inflight.values()) == 1
    # At most one push per SKU per second. A channel's requests go one after another, so call
    # i was sent after call i-1 was answered: the next call with the same item arrives at
    # least 1 s after that answer.
    for i in range(1, len(calls)):
        for item in shop._items(calls[i].path, calls[i].body):
            nxt = next((c for c in calls[i + 1:]
                        if item in shop._items(c.path, c.body)), None)
            assert nxt is None or nxt.t >= calls[i - 1].t_end + 1.0, (item, i)
    # The start's reconciliation went as one batch of every SKU, unconditionally (no known
    # channel value yet); later sets compare against the value last set.
    first = calls[0].body["variables"]["input"]
    assert len(first["quantities"]) == len(SKUS) and first["ignoreCompareQuantity"] is True
    later = [c.body["variables"]["input"] for c in calls if c.status == 200][1:]
    assert later and all("compareQuantity" in q for i in later for q in i["quantities"])
    # Only the order lowered the stock, after everything else was delivered.
    a_hist = [v for v, _ in shop.history["100"]]
    assert a_hist == sorted(a_hist[:-1]) + [a_hist[-1]] and a_hist[-1] < a_hist[-2]
    assert_never_older_but_last(shop)


def assert_never_older_but_last(shop: FakeShop) -> None:
    for item, hist in shop.history.items():
        values = [v for v, _ in hist][:-1]
        assert values == sorted(values), (item, values)


def test_shopify_compare_stale_retries_then_sets(harness: Harness, network: OmsClient) -> None:
    shop = harness.shop("shopify", secret="shpat_test")
    add_channel(network, "shop", pb.CHANNEL_KIND_SHOPIFY, shop)
    harness.start()
    wait_converged(harness, network, "shop", shop)
    # The shop sells 2 of SKU-B that we have not heard of: our next set's compare is stale.
    harness.on_loop(lambda: shop.sell("101", 2))
    network.set_stock("DSM", "SKU-B", 40)
    wait_converged(harness, network, "shop", shop)
    assert shop.stale_answers >= 1
    p = harness.sync.pusher("shop") if harness.sync else None
    assert p is not None and "stale" in p.last_error


def test_woocommerce_with_500s_and_a_missing_product(harness: Harness,
                                                     network: OmsClient) -> None:
    shop = harness.shop("woocommerce")
    items = {s: str(200 + i) for i, s in enumerate(SKUS)}
    add_channel(network, "woo", pb.CHANNEL_KIND_WOOCOMMERCE, shop,
                items={**items, "SKU-X": "missing-1"})
    shop.fail(500, times=4)
    harness.start()
    drive_up(network, 4)
    assert poll(lambda: converged(harness, network, "woo", shop, items), CONVERGE_S)
    calls = harness.on_loop(lambda: list(shop.stock_calls()))
    assert [c.status for c in calls[:4]] == [500] * 4
    assert all(u["manage_stock"] is True for c in calls for u in c.body["update"])
    assert max(shop.max_inflight.values()) == 1
    assert "missing-1" not in shop.stock
    assert_never_older(shop)
    # The refused product is the channel's last error, reported to GetStats.
    def reported() -> bool:
        st = {c.channel_id: c for c in network.get_stats().channels}
        return "woo" in st and "SKU-X" in st["woo"].last_error and st["woo"].failures >= 5 \
            and st["woo"].pushes >= len(SKUS)
    assert poll(reported, CONVERGE_S), network.get_stats().channels


def test_generic_webhook_signed_versions_never_go_back(harness: Harness,
                                                       network: OmsClient) -> None:
    shop = harness.shop("generic", secret="gen-secret-42")
    add_channel(network, "gen", pb.CHANNEL_KIND_GENERIC, shop, items={})  # every SKU
    shop.fail(429, retry_after=0.2)
    shop.fail(503)
    shop.slow(0.5, times=2)
    harness.start()
    drive_up(network, 5)
    for _ in range(3):
        network.place_order(req([("SKU-D", 1)], postal_code=NEAR_DSM))
    assert poll(lambda: converged(harness, network, "gen", shop, {s: s for s in SKUS}),
                CONVERGE_S)
    # Every SKU under its own name (no mapping), every request signed correctly.
    assert set(SKUS) <= set(shop.stock)
    assert shop.bad_signatures == 0
    calls = harness.on_loop(lambda: list(shop.stock_calls()))
    assert calls and all(c.body["channel_id"] == "gen" for c in calls)
    assert max(shop.max_inflight.values()) == 1
    for item, hist in shop.history.items():
        versions = [v for _, v in hist]
        assert versions == sorted(versions), (item, versions)
    # Stock grew and orders came later: SKU-D rose then fell; others only rose.
    for item in set(SKUS) - {"SKU-D"}:
        vals = [v for v, _ in shop.history[item]]
        assert vals == sorted(vals), (item, vals)


def test_generic_signature_is_hmac_of_body() -> None:
    """The schema's signature: sha256=<hex HMAC-SHA256(access_token, raw body)>."""
    from oms.server.channels.connectors import sign_body

    body = orjson.dumps({"channel_id": "x", "updates": []})
    assert sign_body("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert sign_body("k", body) != sign_body("k2", body)


def test_a_slow_channel_does_not_delay_another(harness: Harness, network: OmsClient) -> None:
    slow = harness.shop("generic", secret="slow-secret", delay_s=90.0)
    fast = harness.shop("woocommerce")
    add_channel(network, "slowgen", pb.CHANNEL_KIND_GENERIC, slow)
    add_channel(network, "woo", pb.CHANNEL_KIND_WOOCOMMERCE, fast)
    harness.start()
    drive_up(network, 2)
    wait_converged(harness, network, "woo", fast)
    # The slow shop has not answered its first request yet, and the fast one is done.
    assert harness.on_loop(lambda: len(slow.calls)) == 0
    assert harness.on_loop(lambda: max(slow._inflight.values(), default=0)) == 1


def test_shipments_through_the_connectors(harness: Harness) -> None:
    """mark_shipped (H5's shipment pusher uses it) on each fake, with a retry after a 429."""
    from oms.engine.channels import Channel, ChannelKind, PushTarget
    from oms.server.channels.connectors import PushError

    shopify = harness.shop("shopify", secret="shpat_x")
    woo = harness.shop("woocommerce")
    gen = harness.shop("generic", secret="gs")
    shopify.add_order("555", [1, 2])

    async def go() -> None:
        async with aiohttp.ClientSession() as s:
            for kind, shop in ((ChannelKind.SHOPIFY, shopify), (ChannelKind.WOOCOMMERCE, woo),
                               (ChannelKind.GENERIC, gen)):
                ch = Channel(id="c", kind=kind, push=PushTarget(
                    base_url=shop.base_url, access_token=shop.secret,
                    consumer_key=shop.consumer_key, consumer_secret=shop.consumer_secret))
                conn = connector_for(ch, s)
                assert conn is not None
                shop.fail(429, retry_after=1.5)
                with pytest.raises(PushError) as e:
                    await conn.mark_shipped("555", "ups", "1Z999", "https://t.example/1Z999",
                                            "DSM.1/s1")
                assert e.value.retryable and e.value.retry_after_s == 1.5
                await conn.mark_shipped("555", "ups", "1Z999", "https://t.example/1Z999",
                                        "DSM.1/s1")
            # Shopify: the order's fulfillment orders are closed now; a repeat is a no-op.
            await connector_for(Channel(id="c", kind=ChannelKind.SHOPIFY, push=PushTarget(
                base_url=shopify.base_url, access_token=shopify.secret)), s
                ).mark_shipped("555", "ups", "1Z999", "", "DSM.1/s1")  # type: ignore[union-attr]
            with pytest.raises(PushError) as e:  # an unknown order: permanent
                await connector_for(Channel(id="c", kind=ChannelKind.SHOPIFY, push=PushTarget(
                    base_url=shopify.base_url, access_token=shopify.secret)), s
                    ).mark_shipped("999", "ups", "1Z", "", "x")  # type: ignore[union-attr]
            assert not e.value.retryable
    harness.run(go())
    assert len(shopify.fulfillments) == 1
    f = shopify.fulfillments[0]
    assert f["tracking_info"] == {"number": "1Z999", "url": "https://t.example/1Z999",
                                  "company": "ups"}
    assert woo.fulfillments[0]["status"] == "completed" and woo.fulfillments[0]["order_id"] == "555"
    assert {"key": "_tracking_number", "value": "1Z999"} in woo.fulfillments[0]["meta_data"]
    assert gen.fulfillments[0]["external_order_id"] == "555" and gen.bad_signatures == 0


def test_oms_channels_once_subprocess(harness: Harness, network: OmsClient,
                                      redis_url: str) -> None:
    shop = harness.shop("woocommerce")
    add_channel(network, "woo", pb.CHANNEL_KIND_WOOCOMMERCE, shop)
    shop.fail(503, retry_after=0.2)
    cmd = [sys.executable, "-m", "oms.server.jobs.channel_sync", "--redis-url", redis_url,
           "--once", "--once-timeout-s", "60"]
    if conftest.ON_CLUSTER:
        cmd.append("--redis-cluster")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMS_LOG_LEVEL": "WARNING"})
    assert r.returncode == 0, r.stderr[-2000:]
    want = {str(100 + i): v for i, (s, v) in enumerate(ats(network, "woo").items())}
    assert harness.on_loop(lambda: dict(shop.stock)) == want
    st = {c.channel_id: c for c in network.get_stats().channels}
    assert st["woo"].pushes == len(SKUS) and st["woo"].failures == 1
    assert "503" in st["woo"].last_error
