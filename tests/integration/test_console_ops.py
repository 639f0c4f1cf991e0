"""The console's operations pages over real HTTP: /exceptions (fraud review with Release /
Cancel, scope and CSRF checks), /waves, /waves/{id} and POST /waves/plan, /inventory.

Real parts: the conftest oms-server (fraud rules on: a velocity burst puts orders ON_HOLD, as
in test_fraud_holds.py), the real oms-web app on a loopback port in its own thread, and an
aiohttp ClientSession that signs in through /login like a browser."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from oms.clients.client import OmsClient
from oms.server.web.backend import WebConfig
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import inventory_pb2 as inv
from tests.conftest import ADMIN_KEY, ServerThread, server_config
from tests.helpers import poll
from tests.web_thread import WebThread


@pytest.fixture(scope="module")
def web_url(_server) -> Iterator[str]:
    # Many sign-ins from 127.0.0.1 in this module: lift the per-address sign-in limit.
    w = WebThread(WebConfig(target=f"127.0.0.1:{_server.port}",
                            login_attempts_per_min=10_000)).start()
    yield f"http://127.0.0.1:{w.port}"
    w.stop()


# ---- HTML --------------------------------------------------------------------------------
class Page(HTMLParser):
    """Elements of a page as (tag, attrs, text directly inside), and the nesting of each
    element with ``data-order`` (its descendants' attrs)."""

    VOID = {"input", "meta", "link", "br", "img", "hr", "circle", "rect", "line", "polyline"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self._stack: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "text": "", "inside": []}
        for parent in self._stack:
            parent["inside"].append(el)
        self.elements.append(el)
        if tag not in self.VOID:
            self._stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID and self._stack and self._stack[-1]["tag"] == tag:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i]["tag"] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data: str) -> None:
        for el in self._stack:
            el["text"] += data

    def having(self, attr: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if attr in e["attrs"]]

    def meta_csrf(self) -> str:
        return next(e["attrs"]["content"] for e in self.elements
                    if e["tag"] == "meta" and e["attrs"].get("name") == "csrf-token")


def actions(row: dict[str, Any]) -> list[str]:
    return [e["attrs"]["data-action"] for e in row["inside"] if "data-action" in e["attrs"]]


async def sign_in(http: aiohttp.ClientSession, base: str, key: str) -> None:
    async with http.get(f"{base}/login") as r:
        form = Page(await r.text())
    token = next(e["attrs"]["value"] for e in form.elements
                 if e["tag"] == "input" and e["attrs"].get("name") == "csrf")
    async with http.post(f"{base}/login", data={"api_key": key, "csrf": token},
                         allow_redirects=False) as r:
        assert r.status == 303, await r.text()


def session() -> aiohttp.ClientSession:
    # The cookie jar must accept cookies of an IP address host (127.0.0.1).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def get_page(http: aiohttp.ClientSession, url: str) -> Page:
    async with http.get(url, allow_redirects=False) as r:
        assert r.status == 200, (url, r.status, await r.text())
        return Page(await r.text())


# ---- data --------------------------------------------------------------------------------
def held_orders(client: OmsClient) -> tuple[list[c.Order], list[c.Order]]:
    """A velocity burst of one customer: (all orders, those ON_HOLD with risk reasons)."""
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 100, "A01-S001")
    orders = [client.place_order(client.order_request(
        [("MUG", 1, 1500)], postal_code="50010", customer_id="C-burst",
        email="b@example.com")) for _ in range(6)]
    held = [o for o in orders if o.status == c.ORDER_STATUS_ON_HOLD]
    assert len(held) >= 2 and all(o.risk_reasons for o in held)
    return orders, held


def read_only_key(client: OmsClient, *scopes: str) -> str:
    return client.create_api_key("support", scopes or ("orders:read",)).key


# ---- /exceptions ---------------------------------------------------------------------------
def test_held_orders_listed_with_buttons_and_release_and_cancel_work(client, web_url):
    _, held = held_orders(client)

    async def go() -> tuple[Page, int, str, Page]:
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            page = await get_page(http, f"{web_url}/exceptions")
            token = page.meta_csrf()
            async with http.post(f"{web_url}/orders/{held[0].id}/release",
                                 data={"csrf": token}, allow_redirects=False) as r:
                status, location = r.status, r.headers.get("Location", "")
            async with http.post(f"{web_url}/orders/{held[1].id}/cancel",
                                 data={"csrf": token}, allow_redirects=True) as r2:
                assert r2.status == 200 and r2.url.path == "/exceptions"
                after = Page(await r2.text())
            return page, status, location, after

    page, status, location, after = asyncio.run(go())
    rows = {e["attrs"]["data-order"]: e for e in page.having("data-order")}
    assert set(rows) == {o.id for o in held}
    for o in held:
        assert sorted(actions(rows[o.id])) == ["cancel", "release"]
        assert o.risk_reasons[0] in rows[o.id]["text"]
    assert status == 303 and location.startswith("/exceptions?")
    released = client.get_order(held[0].id)
    assert released.status == c.ORDER_STATUS_ALLOCATED
    assert "released in the console by" in released.history[-1].reason
    cancelled = client.get_order(held[1].id)
    assert cancelled.status == c.ORDER_STATUS_CANCELLED
    assert cancelled.history[-1].reason.startswith("cancelled in the console by ")
    # the page after the redirect no longer lists them, and says what happened
    left = {e["attrs"]["data-order"] for e in after.having("data-order")}
    assert held[0].id not in left and held[1].id not in left
    assert any(f"Cancelled order {held[1].id}" in e["text"] for e in after.elements
               if "flash" in e["attrs"].get("class", "").split())


def test_read_only_key_sees_no_buttons_and_its_forged_post_is_refused(client, web_url):
    _, held = held_orders(client)
    key = read_only_key(client, "orders:read")

    async def go() -> tuple[Page, list[tuple[int, str]]]:
        async with session() as http:
            await sign_in(http, web_url, key)
            page = await get_page(http, f"{web_url}/exceptions")
            token = page.meta_csrf()  # its own, valid CSRF token
            out = []
            for verb in ("release", "cancel"):
                async with http.post(f"{web_url}/orders/{held[0].id}/{verb}",
                                     data={"csrf": token}, allow_redirects=False) as r:
                    out.append((r.status, await r.text()))
            return page, out

    page, posts = asyncio.run(go())
    rows = {e["attrs"]["data-order"]: e for e in page.having("data-order")}
    assert set(rows) == {o.id for o in held}  # it may read them ...
    assert all(actions(r) == [] for r in rows.values())  # ... but gets no buttons
    assert not page.having("data-action") or all(
        e["attrs"]["data-action"] == "logout" for e in page.having("data-action"))
    # sections needing other scopes say so instead of failing the page
    tracking = next(e for e in page.elements if e["attrs"].get("data-section") == "tracking")
    assert "Not permitted" in tracking["text"] and "fulfillment" in tracking["text"]
    assert [s for s, _ in posts] == [403, 403]
    assert client.get_order(held[0].id).status == c.ORDER_STATUS_ON_HOLD


def test_post_without_or_with_a_wrong_csrf_token_is_refused(client, web_url):
    _, held = held_orders(client)

    async def go() -> list[int]:
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            out = []
            for data in ({}, {"csrf": "not-the-token"}, {"csrf": ""}):
                async with http.post(f"{web_url}/orders/{held[0].id}/release", data=data,
                                     allow_redirects=False) as r:
                    out.append(r.status)
            # another session's token is no good either
            async with session() as other:
                await sign_in(other, web_url, ADMIN_KEY)
                theirs = (await get_page(other, f"{web_url}/exceptions")).meta_csrf()
            async with http.post(f"{web_url}/orders/{held[0].id}/cancel",
                                 data={"csrf": theirs}, allow_redirects=False) as r:
                out.append(r.status)
            return out

    assert asyncio.run(go()) == [403, 403, 403, 403]
    assert client.get_order(held[0].id).status == c.ORDER_STATUS_ON_HOLD


def test_backorders_show_what_they_wait_for(client, web_url):
    client.upsert_warehouse("DSM", postal_code="50309", aisles=4, slots_per_aisle=10)
    client.set_stock("DSM", "KETTLE", 1, "A01-S002")
    o = client.place_order(client.order_request([("KETTLE", 3)], postal_code="50010",
                                                email="ann@example.com"))
    assert o.status == c.ORDER_STATUS_BACKORDERED

    async def go() -> Page:
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            return await get_page(http, f"{web_url}/exceptions")

    page = asyncio.run(go())
    row = next(e for e in page.having("data-backorder") if e["attrs"]["data-backorder"] == o.id)
    item = next(e for e in row["inside"] if e["attrs"].get("data-sku") == "KETTLE")
    assert re.search(r"3 × KETTLE .*network available: 1\b", " ".join(item["text"].split()))


# ---- /waves ------------------------------------------------------------------------------
def waveable(client: OmsClient, n: int = 12) -> list[c.Order]:
    """``n`` allocated orders of different customers in DSM, their fraud delay ended."""
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=8,
                            slots_per_aisle=20)
    for i in range(10):
        client.set_stock("DSM", f"SKU-{i}", 500, f"A{i % 8:02d}-S{(7 * i) % 20:03d}")
    orders = []
    for k in range(n):
        lines = [(f"SKU-{(k + j * 3) % 10}", 1 + j) for j in range(1 + k % 3)]
        o = client.place_order(client.order_request(lines, postal_code="50010",
                                                    customer_id=f"C-{k}",
                                                    email=f"c{k}@example.com"))
        assert o.status == c.ORDER_STATUS_ALLOCATED
        client.release_hold(o.id)  # end the fraud-hold delay
        orders.append(o)
    return orders


def test_plan_a_wave_from_the_console_and_see_one_route_per_batch(client, web_url):
    orders = waveable(client)

    async def go() -> tuple[int, str, Page, Page, int, str]:
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            waves = await get_page(http, f"{web_url}/waves")
            forms = [e for e in waves.elements if e["tag"] == "form"
                     and e["attrs"].get("action") == "/waves/plan"]
            assert len(forms) == 1
            data = {e["attrs"]["name"]: e["attrs"].get("value", "") for e in forms[0]["inside"]
                    if e["tag"] == "input"}
            assert data["warehouse_id"] == "DSM" and data["csrf"]
            data["batch_max_orders"] = "4"
            async with http.post(f"{web_url}/waves/plan", data=data,
                                 allow_redirects=False) as r:
                status, location = r.status, r.headers.get("Location", "")
            wave_page = await get_page(http, f"{web_url}{location}")
            listing = await get_page(http, f"{web_url}/waves")
            # nothing left to wave: back to /waves with a note
            async with http.post(f"{web_url}/waves/plan", data=data,
                                 allow_redirects=False) as r:
                again, again_loc = r.status, r.headers.get("Location", "")
            return status, location, wave_page, listing, again, again_loc

    status, location, page, listing, again, again_loc = asyncio.run(go())
    assert status == 303 and location.startswith("/waves/")
    wave = client.fulfillment.GetWave(f.GetWaveRequest(wave_id=location.removeprefix("/waves/")))
    assert {o for b in wave.batches for o in b.order_ids} == {o.id for o in orders}
    assert all(len(b.order_ids) <= 4 for b in wave.batches) and len(wave.batches) >= 3
    routes = page.having("data-batch")
    assert [e["attrs"]["data-batch"] for e in routes] == [b.id for b in wave.batches]
    for e, b in zip(routes, wave.batches):
        assert e["tag"] == "g"
        # the drawn walk is the exact route: its length equals the batch's distance
        assert float(e["attrs"]["data-walk-m"]) == pytest.approx(b.distance_m, rel=0.01)
        dots = [x for x in e["inside"] if x["attrs"].get("class") == "stop"]
        assert len(dots) == len({(s.aisle, s.slot) for s in b.stops})
    stops = page.having("data-stop")
    assert sum(1 for e in stops if e["tag"] == "tr") == sum(len(b.stops) for b in wave.batches)
    assert [e["attrs"]["data-wave"] for e in listing.having("data-wave")] == [wave.id]
    assert again == 303 and again_loc.startswith("/waves?done=nothing")


def test_plan_wave_needs_csrf_and_the_fulfillment_scope(client, web_url):
    waveable(client, 3)
    key = read_only_key(client, "orders:read", "inventory:read")

    async def go() -> list[int]:
        out = []
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            async with http.post(f"{web_url}/waves/plan", data={"warehouse_id": "DSM"},
                                 allow_redirects=False) as r:
                out.append(r.status)
        async with session() as http:
            await sign_in(http, web_url, key)
            page = await get_page(http, f"{web_url}/waves")
            assert not [e for e in page.elements if e["tag"] == "form"
                        and e["attrs"].get("action") == "/waves/plan"]
            async with http.post(f"{web_url}/waves/plan",
                                 data={"warehouse_id": "DSM", "csrf": page.meta_csrf()},
                                 allow_redirects=False) as r:
                out.append(r.status)
        return out

    assert asyncio.run(go()) == [403, 403]
    assert not client.fulfillment.ListWaves(f.ListWavesRequest(warehouse_id="DSM")).waves


# ---- /inventory --------------------------------------------------------------------------
def test_inventory_lists_stock_pages_and_filters(client, web_url):
    client.upsert_warehouse("DSM", postal_code="50309", aisles=8, slots_per_aisle=20)
    client.upsert_warehouse("LAX", postal_code="90012", aisles=8, slots_per_aisle=20)
    for i in range(60):
        client.set_stock("DSM", f"P{i:03d}", 10 + i, f"A{i % 8:02d}-S{i % 20:03d}")
    client.set_stock("LAX", "P007", 5, "A01-S001")
    client.set_stock("DSM", "P051", 3)  # few left and selling: a replenishment suggestion
    for sku, n in (("P007", 2), ("P051", 2)):
        o = client.place_order(client.order_request([(sku, n)], postal_code="50010",
                                                    customer_id=sku, email="x@example.com"))
        assert o.status == c.ORDER_STATUS_ALLOCATED
    want = client.inventory.SuggestReplenishment(
        inv.SuggestReplenishmentRequest(warehouse_id="DSM")).suggestions
    assert want

    async def go() -> tuple[Page, Page, Page, Page]:
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            first = await get_page(http, f"{web_url}/inventory")
            nxt = next(e["attrs"]["href"] for e in first.having("data-action")
                       if e["attrs"]["data-action"] == "next-page")
            second = await get_page(http, f"{web_url}{nxt}")
            lax = await get_page(http, f"{web_url}/inventory?warehouse=LAX")
            pre = await get_page(http, f"{web_url}/inventory?sku=P05&replenish=DSM")
            return first, second, lax, pre

    first, second, lax, pre = asyncio.run(go())

    def rows(p: Page) -> dict[tuple[str, str], dict[str, str]]:
        out = {}
        for e in p.elements:
            if e["tag"] == "tr" and "data-sku" in e["attrs"]:
                cells = {x["attrs"]["data-field"]: x["text"].strip() for x in e["inside"]
                         if "data-field" in x["attrs"]}
                out[(e["attrs"]["data-sku"], e["attrs"]["data-warehouse"])] = cells
        return out

    r1, r2 = rows(first), rows(second)
    assert len({k for k, _ in r1}) == 50 and len({k for k, _ in r2}) == 10
    assert not set(r1) & set(r2)
    assert {k for k, _ in r1} | {k for k, _ in r2} == {f"P{i:03d}" for i in range(60)}
    for (sku, wid), cells in {**r1, **r2}.items():
        lv = next(x for x in client.get_stock(sku).levels if x.warehouse_id == wid)
        assert cells == {"on_hand": f"{lv.on_hand:,}", "reserved": f"{lv.reserved:,}",
                         "available": f"{lv.available:,}"}
    assert sum(int(x["reserved"]) for x in r1.values()) == 2  # P007's order (P051 is on p.2)
    assert set(rows(lax)) == {("P007", "LAX")}
    assert {k for k, _ in rows(pre)} == {f"P{i:03d}" for i in range(50, 60)}
    shown = [e["attrs"]["data-suggestion"] for e in pre.having("data-suggestion")]
    assert shown == [f"{x.warehouse_id}:{x.sku}" for x in want]


def test_late_orders_oldest_promise_first(server, redis_url):
    """A server that promises delivery the same instant (promise_days=0): every open order is
    late at once; the page lists them oldest promise first, but not the cancelled one."""
    late_server = ServerThread(server_config(redis_url, promise_days=0,
                                             fraud_hold_seconds=0)).start()
    web = WebThread(WebConfig(target=f"127.0.0.1:{late_server.port}")).start()
    try:
        with OmsClient(f"127.0.0.1:{late_server.port}", timeout=60, api_key=ADMIN_KEY) as cl:
            cl.upsert_warehouse("DSM", postal_code="50309", aisles=4, slots_per_aisle=10)
            cl.set_stock("DSM", "MUG", 50, "A01-S001")
            placed = [cl.place_order(cl.order_request([("MUG", 1)], postal_code="50010",
                                                      customer_id=f"L-{i}",
                                                      email=f"l{i}@example.com"))
                      for i in range(4)]
            cl.cancel_order(placed[2].id, "changed mind")
            assert poll(lambda: time.time() * 1000 > max(o.promised_by for o in placed))

        async def go() -> Page:
            async with session() as http:
                await sign_in(http, f"http://127.0.0.1:{web.port}", ADMIN_KEY)
                return await get_page(http, f"http://127.0.0.1:{web.port}/exceptions")

        page = asyncio.run(go())
    finally:
        web.stop()
        late_server.stop()
    open_ = sorted((o for o in placed if o.id != placed[2].id),
                   key=lambda o: (o.promised_by, o.id))
    assert [e["attrs"]["data-late"] for e in page.having("data-late")] == [o.id for o in open_]


def test_pages_degrade_to_not_permitted_and_unknown_wave_is_404(client, web_url):
    held_orders(client)
    key = read_only_key(client, "reporting")

    async def go() -> tuple[dict[str, tuple[int, str]], int]:
        out = {}
        async with session() as http:
            await sign_in(http, web_url, key)
            for path in ("/exceptions", "/waves", "/inventory?replenish=*"):
                async with http.get(f"{web_url}{path}", allow_redirects=False) as r:
                    out[path] = (r.status, await r.text())
        async with session() as http:
            await sign_in(http, web_url, ADMIN_KEY)
            async with http.get(f"{web_url}/waves/DSM.nosuchwave", allow_redirects=False) as r:
                missing = r.status
        return out, missing

    pages, missing = asyncio.run(go())
    assert {p: s for p, (s, _) in pages.items()} == dict.fromkeys(pages, 200)
    exc = Page(pages["/exceptions"][1])
    assert not exc.having("data-order")
    denied = {e["attrs"]["data-section"] for e in exc.having("data-section")
              if "Not permitted" in e["text"]}
    assert denied == {"held", "tracking", "backorders", "late", "rejected"}
    assert "Not permitted" in pages["/waves"][1]
    inv_page = Page(pages["/inventory?replenish=*"][1])
    assert {e["attrs"]["data-section"] for e in inv_page.having("data-section")
            if "Not permitted" in e["text"]} == {"stock", "replenishment"}
    assert missing == 404
