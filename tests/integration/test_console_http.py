"""The operator console over HTTP on real parts: the real oms-server (conftest ``server``), the
real oms-web app on a loopback port in its own thread, and aiohttp ClientSession requests.
Sign-in, the session cookie, CSRF, session expiry, a revoked key, the security headers, and the
overview's numbers (page and event stream) against GetStats."""
from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from oms.clients.client import OmsClient
from oms.server.web.backend import WebConfig
from oms.server.web.console.overview import FUNNEL
from oms.server.web.console.session import CSP
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY
from tests.integration.test_tls import CA
from tests.web_thread import WebThread

PAGES = ("/", "/orders", "/orders/ord-1", "/map", "/exceptions", "/waves", "/waves/w-1",
         "/inventory", "/events/overview")


def start_web(server: Any, **kw: Any) -> WebThread:
    # No api_key: the console needs none of its own (only the webhooks do).
    return WebThread(WebConfig(target=f"127.0.0.1:{server.port}", **kw)).start()


@pytest.fixture()
def web_console(server: Any) -> Iterator[WebThread]:
    w = start_web(server)
    yield w
    w.stop()


class Page(HTMLParser):
    """What the tests read off a page: inputs by name, data-status texts, hidden csrf."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.statuses: dict[str, str] = {}
        self._status: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs[a["name"] or ""] = a.get("value") or ""
        if a.get("data-status"):
            self._status = a["data-status"]
            self.statuses[self._status or ""] = ""

    def handle_data(self, data: str) -> None:
        if self._status is not None:
            self.statuses[self._status] += data

    def handle_endtag(self, tag: str) -> None:
        self._status = None


def session(ca: str = "") -> aiohttp.ClientSession:
    # unsafe: the cookie jar keeps cookies of an IP-address host (127.0.0.1)
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca)) if ca else None
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), connector=connector)


async def sign_in(s: aiohttp.ClientSession, base: str, key: str,
                  next_path: str = "") -> aiohttp.ClientResponse:
    async with s.get(base + "/login" + (f"?next={next_path}" if next_path else "")) as r:
        assert r.status == 200
        form = Page(await r.text()).inputs
    assert "api_key" in form and form["csrf"]
    data = {"api_key": key, "csrf": form["csrf"]}
    if "next" in form:
        data["next"] = form["next"]
    async with s.post(base + "/login", data=data, allow_redirects=False) as r:
        await r.read()
        return r


async def get(s: aiohttp.ClientSession, url: str) -> tuple[int, str, Any]:
    async with s.get(url, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers


def csrf_of(html: str) -> str:
    return Page(html).inputs["csrf"]


def held_order(client: OmsClient) -> str:
    """A velocity burst from one customer: the later orders are held for review."""
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 100, "A01-S001")
    orders = [client.place_order(client.order_request(
        [("MUG", 1, 1500)], postal_code="50010", customer_id="C-burst",
        email="b@example.com")) for _ in range(6)]
    held = [o.id for o in orders if o.status == c.ORDER_STATUS_ON_HOLD]
    assert held
    return held[0]


def test_sign_in_sets_an_httponly_strict_cookie_without_the_key(web_console: WebThread) -> None:
    async def go() -> None:
        async with session() as s:
            r = await sign_in(s, web_console.base, ADMIN_KEY)
            assert r.status == 303 and r.headers["Location"] == "/"
            cookies = [h for h in r.headers.getall("Set-Cookie") if h.startswith("oms_session=")]
            assert len(cookies) == 1
            attrs = [p.strip().lower() for p in cookies[0].split(";")]
            assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
            assert "secure" not in attrs  # plain HTTP here; Secure when served over TLS
            value = cookies[0].split(";")[0].split("=", 1)[1]
            assert len(value) >= 40 and ADMIN_KEY not in value
            assert ADMIN_KEY.split("_")[1] not in cookies[0]  # not even the key id
            status, html, _ = await get(s, web_console.base + "/")
            assert status == 200 and ADMIN_KEY not in html
            assert 'action="/logout"' in html

    asyncio.run(go())


def test_over_tls_the_session_cookie_is_secure(server: Any, tmp_path: Path) -> None:
    ca = CA(tmp_path, "console-ca")
    issued = ca.issue("oms-web", server=True)
    w = start_web(server, tls_cert=issued.cert, tls_key=issued.key)
    try:
        async def go() -> None:
            async with session(ca.path) as s:
                r = await sign_in(s, w.base, ADMIN_KEY)
                assert r.status == 303
                cookie = next(h for h in r.headers.getall("Set-Cookie")
                              if h.startswith("oms_session="))
                attrs = [p.strip().lower() for p in cookie.split(";")]
                assert "secure" in attrs and "httponly" in attrs and "samesite=strict" in attrs
                status, _, _ = await get(s, w.base + "/")
                assert status == 200

        asyncio.run(go())
    finally:
        w.stop()


def test_bad_key_is_401_with_the_form_again(web_console: WebThread) -> None:
    async def go() -> None:
        async with session() as s:
            wrong = ADMIN_KEY[:-4] + "zzzz"
            r = await sign_in(s, web_console.base, wrong)
            assert r.status == 401
            assert not [h for h in r.headers.getall("Set-Cookie", [])
                        if h.startswith("oms_session=")]
            async with s.post(web_console.base + "/login", allow_redirects=False,
                              data={"api_key": wrong, "csrf": "x"}) as r2:
                assert r2.status == 403  # the sign-in form's own CSRF token
            status, html, _ = await get(s, web_console.base + "/")
            assert status == 302
            r = await sign_in(s, web_console.base, "not a key")
            assert r.status == 401

    asyncio.run(go())


def test_a_second_form_load_keeps_the_first_form_valid(web_console: WebThread) -> None:
    """Another tab, or the browser's own /favicon.ico request, loads /login again: the form
    already on screen must still sign in."""
    async def go() -> None:
        async with session() as s:
            async with s.get(web_console.base + "/login") as r:
                first = Page(await r.text()).inputs["csrf"]
            status, _, _ = await get(s, web_console.base + "/favicon.ico")
            assert status == 204
            async with s.get(web_console.base + "/login") as r:
                assert r.status == 200
            async with s.post(web_console.base + "/login", allow_redirects=False,
                              data={"api_key": ADMIN_KEY, "csrf": first}) as r:
                assert r.status == 303

    asyncio.run(go())


def test_pages_redirect_to_login_without_a_session(web_console: WebThread) -> None:
    async def go() -> None:
        async with session() as s:
            for path in PAGES:
                status, _, headers = await get(s, web_console.base + path)
                assert status == 302, path
                assert headers["Location"].startswith("/login"), path
            async with s.post(web_console.base + "/logout", allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/login"
            # not console pages: no session needed
            status, _, _ = await get(s, web_console.base + "/healthz")
            assert status == 200
            status, js, headers = await get(s, web_console.base + "/static/console.js")
            assert status == 200 and "EventSource" in js
            # webhooks keep their own HMAC auth: no redirect, no CSRF (unknown channel: 404)
            async with s.post(web_console.base + "/webhooks/generic/nochan", data=b"{}",
                              headers={"X-OMS-Signature": "sha256=00"},
                              allow_redirects=False) as r:
                assert r.status not in (302, 403) and "Content-Security-Policy" not in r.headers
            # after sign-in, the page asked for first
            r = await sign_in(s, web_console.base, ADMIN_KEY, next_path="/waves")
            assert r.headers["Location"] == "/waves"

    asyncio.run(go())


def test_no_open_redirect_after_sign_in(web_console: WebThread) -> None:
    async def go() -> None:
        async with session() as s:
            r = await sign_in(s, web_console.base, ADMIN_KEY, next_path="//evil.example/x")
            assert r.status == 303 and r.headers["Location"] == "/"

    asyncio.run(go())


def test_security_headers_on_console_pages(web_console: WebThread) -> None:
    async def go() -> None:
        async with session() as s:
            _, _, login_headers = await get(s, web_console.base + "/login")
            await sign_in(s, web_console.base, ADMIN_KEY)
            for path in ("/", "/no-such-page"):
                _, _, h = await get(s, web_console.base + path)
                assert h["Content-Security-Policy"] == CSP, path
                assert h["X-Content-Type-Options"] == "nosniff"
                assert h["Referrer-Policy"] == "same-origin"
                assert h["Cache-Control"] == "no-store"
            assert login_headers["Content-Security-Policy"] == CSP
            assert CSP == ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                           "script-src 'self'; frame-ancestors 'none'")

    asyncio.run(go())


def test_post_without_or_with_a_wrong_csrf_token_is_refused(
        web_console: WebThread, client: OmsClient) -> None:
    order_id = held_order(client)

    async def go() -> None:
        async with session() as s:
            await sign_in(s, web_console.base, ADMIN_KEY)
            status, html, _ = await get(s, web_console.base + "/")
            token = csrf_of(html)
            release = f"{web_console.base}/orders/{order_id}/release"
            for data, headers in (({}, {}), ({"csrf": "wrong" + token[5:]}, {}),
                                  ({}, {"X-CSRF-Token": "nope"}), ({"csrf": ""}, {})):
                for url in (web_console.base + "/logout", release):
                    async with s.post(url, data=data, headers=headers,
                                      allow_redirects=False) as r:
                        assert r.status == 403, (url, data, headers)
            # nothing changed: still signed in, the order still held
            status, _, _ = await get(s, web_console.base + "/")
            assert status == 200
            assert client.get_order(order_id).status == c.ORDER_STATUS_ON_HOLD
            # the right token works (the header form too)
            async with s.post(release, headers={"X-CSRF-Token": token},
                              allow_redirects=False) as r:
                assert r.status == 303
            assert client.get_order(order_id).status == c.ORDER_STATUS_ALLOCATED
            async with s.post(web_console.base + "/logout", data={"csrf": token},
                              allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/login"
            status, _, _ = await get(s, web_console.base + "/")
            assert status == 302

    asyncio.run(go())


def test_idle_session_expires(server: Any) -> None:
    w = start_web(server, session_idle_s=0.3)
    try:
        async def go() -> None:
            async with session() as s:
                r = await sign_in(s, w.base, ADMIN_KEY)
                assert r.status == 303
                status, _, _ = await get(s, w.base + "/")
                assert status == 200
                # wait the idle time out without touching the session
                last = time.monotonic()
                while time.monotonic() - last <= 0.6:
                    await asyncio.sleep(0.1)
                status, _, headers = await get(s, w.base + "/")
                assert status == 302 and headers["Location"] == "/login"

        asyncio.run(go())
    finally:
        w.stop()


def test_a_revoked_key_ends_the_session(web_console: WebThread, client: OmsClient) -> None:
    made = client.create_api_key("console-user", ["reporting", "orders:read"])

    async def go() -> None:
        async with session() as s:
            r = await sign_in(s, web_console.base, made.key)
            assert r.status == 303
            status, html, _ = await get(s, web_console.base + "/")
            assert status == 200 and 'data-status="RECEIVED"' in html
            client.revoke_api_key(made.key_id)
            # every server process refuses a revoked key within 5 s
            statuses: list[int] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                status, _, headers = await get(s, web_console.base + "/")
                statuses.append(status)
                if status == 302:
                    assert headers["Location"] == "/login"
                    break
                await asyncio.sleep(0.2)
            assert statuses[-1] == 302
            # the session is gone for good, and the key cannot sign in again
            status, _, _ = await get(s, web_console.base + "/")
            assert status == 302
            r = await sign_in(s, web_console.base, made.key)
            assert r.status == 401

    asyncio.run(go())


def test_scopes_of_the_signed_in_key(web_console: WebThread, client: OmsClient) -> None:
    made = client.create_api_key("reader", ["orders:read"])

    async def go() -> None:
        async with session() as s:
            await sign_in(s, web_console.base, made.key)
            status, html, _ = await get(s, web_console.base + "/")
            assert status == 200 and "data-status" not in html and "reporting" in html
            status, _, _ = await get(s, web_console.base + "/events/overview")
            assert status == 403

    asyncio.run(go())


def test_sign_in_attempts_are_rate_limited(server: Any) -> None:
    w = start_web(server, login_attempts_per_min=3)
    try:
        async def go() -> None:
            async with session() as s:
                codes = [(await sign_in(s, w.base, "oms_wrong_key")).status for _ in range(4)]
                assert codes == [401, 401, 401, 429]
                r = await sign_in(s, w.base, ADMIN_KEY)  # even a good key waits its turn
                assert r.status == 429 and int(r.headers["Retry-After"]) > 0

        asyncio.run(go())
    finally:
        w.stop()


def stats_by_status(client: OmsClient) -> dict[str, int]:
    counts = {kv.key: kv.count for kv in client.get_stats().orders_by_status}
    return {name: counts.get(name, 0) for name in FUNNEL}


def test_overview_funnel_equals_get_stats(web_console: WebThread, client: OmsClient) -> None:
    order_id = held_order(client)
    client.cancel_order(order_id, "test")
    expected = stats_by_status(client)
    assert expected["ON_HOLD"] and expected["ALLOCATED"] and expected["CANCELLED"]
    # every OrderStatus but UNSPECIFIED is on the funnel
    assert sorted(FUNNEL) == sorted(n.removeprefix("ORDER_STATUS_")
                                    for n in c.OrderStatus.keys() if not n.endswith("UNSPECIFIED"))

    async def go() -> dict[str, str]:
        async with session() as s:
            await sign_in(s, web_console.base, ADMIN_KEY)
            status, html, _ = await get(s, web_console.base + "/")
            assert status == 200
            return Page(html).statuses

    shown = asyncio.run(go())
    assert {k: int(v.strip()) for k, v in shown.items()} == expected
    assert list(shown) == list(FUNNEL)  # lifecycle order


def test_overview_event_stream(web_console: WebThread, client: OmsClient) -> None:
    held_order(client)
    expected = stats_by_status(client)
    stats = client.get_stats()

    async def first_event(r: aiohttp.ClientResponse) -> dict[str, Any]:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Content-Security-Policy"] == CSP
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                return json.loads(line[len("data: "):])
        raise AssertionError("the stream ended without an event")

    async def go() -> None:
        async with session() as s:
            await sign_in(s, web_console.base, ADMIN_KEY)
            # at most 3 open streams per session
            opened = [await s.get(web_console.base + "/events/overview") for _ in range(3)]
            try:
                assert [r.status for r in opened] == [200, 200, 200]
                async with s.get(web_console.base + "/events/overview") as r:
                    assert r.status == 429
                ev = await asyncio.wait_for(first_event(opened[0]), 30)
            finally:
                for r in opened:
                    r.close()
            assert ev["orders_by_status"] == expected
            assert list(ev["orders_by_status"]) == list(FUNNEL)
            assert ev["orders_total"] == stats.orders_total
            assert len(ev["orders_per_minute"]) == len(stats.orders_per_minute) == 60
            assert ev["exceptions"]["on_hold"] == expected["ON_HOLD"]
            assert ev["exceptions"]["total"] == (expected["ON_HOLD"] + expected["BACKORDERED"]
                                                 + ev["exceptions"]["shipment_exceptions"])
            assert {x["channel"]: x["count"] for x in ev["orders_by_channel"]} == {
                (kv.key or "(none)"): kv.count for kv in stats.orders_by_channel}
            assert set(ev["rates"]) == {"fill_rate", "split_rate", "on_time_delivery_rate",
                                        "return_rate"}

    asyncio.run(go())


def test_streams_are_released_when_clients_go(web_console: WebThread) -> None:
    """Closed streams give their slot back (else a session would lock itself out)."""
    async def go() -> None:
        async with session() as s:
            await sign_in(s, web_console.base, ADMIN_KEY)
            opened = [await s.get(web_console.base + "/events/overview") for _ in range(3)]
            assert [r.status for r in opened] == [200, 200, 200]
            async with s.get(web_console.base + "/events/overview") as r:
                assert r.status == 429
            for r in opened:
                r.close()
            # the server notices at its next write (one tick)
            status = 429
            deadline = time.monotonic() + 30
            while status == 429 and time.monotonic() < deadline:
                async with s.get(web_console.base + "/events/overview") as r:
                    status = r.status
                if status == 429:
                    await asyncio.sleep(0.2)
            assert status == 200

    asyncio.run(go())
