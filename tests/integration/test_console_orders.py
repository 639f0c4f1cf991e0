"""The console's orders pages over HTTP on real parts: the real oms-server (conftest
``server``), the real oms-web app on a loopback port in its own thread, signed in through
``/login`` with aiohttp. A split order goes from two warehouses through waves, picks, packing,
shipping and tracking to DELIVERED; its page must show the journey in time order and its map
the ship-to and both warehouses inside the 975×610 box."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest

from oms.clients.client import OmsClient
from oms.server.web.backend import WebConfig
from oms.server.web.console import orders as orders_page
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.conftest import ADMIN_KEY
from tests.web_thread import WebThread


class Page(HTMLParser):
    """Inputs by name, timeline entries (data-event, data-at) and map points in page order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.events: list[tuple[str, int]] = []
        self.points: list[dict[str, str]] = []
        self.rows: list[str] = []
        self.tracking: list[tuple[str, str]] = []  # (tracking number, type) of each entry
        self.waiting_parts: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name"):
            self.inputs[a["name"]] = a.get("value", "")
        if "data-event" in a:
            self.events.append((a["data-event"], int(a.get("data-at") or 0)))
            if a["data-event"] == "tracking":
                self.tracking.append((a.get("data-tracking", ""),
                                      a.get("data-tracking-type", "")))
        if "data-waiting-part" in a:
            self.waiting_parts.append(a["data-waiting-part"])
        if "data-point" in a:
            self.points.append({"tag": tag, **a})
        if tag == "tr" and "data-order" in a:
            self.rows.append(a["data-order"])


def _xy(p: dict[str, str]) -> tuple[float, float]:
    """A point's centre: a circle's cx/cy, a warehouse square's x/y + half its size."""
    if p["tag"] == "circle":
        return float(p["cx"]), float(p["cy"])
    return float(p["x"]) + float(p["width"]) / 2, float(p["y"]) + float(p["height"]) / 2


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _signed_in(base: str, key: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.get(base + "/login") as r:
        assert r.status == 200
        form = Page(await r.text()).inputs
    async with s.post(base + "/login", data={"api_key": key, "csrf": form["csrf"]},
                      allow_redirects=False) as r:
        assert r.status in (302, 303), await r.text()
    return s


async def _get(base: str, key: str, *paths: str) -> list[tuple[int, str, str]]:
    """(status, body, Location) of each path, in one signed-in session, without redirects."""
    s = await _signed_in(base, key)
    out = []
    try:
        for p in paths:
            async with s.get(base + p, allow_redirects=False) as r:
                out.append((r.status, await r.text(), r.headers.get("Location", "")))
    finally:
        await s.close()
    return out


def get(web_console: WebThread, *paths: str, key: str = ADMIN_KEY) -> list[tuple[int, str, str]]:
    return _run(_get(web_console.base, key, *paths))


@pytest.fixture()
def web_console(server: Any) -> Iterator[WebThread]:
    w = WebThread(WebConfig(target=f"127.0.0.1:{server.port}")).start()
    yield w
    w.stop()


def _track(client: OmsClient, tn: str, event_id: str, kind: str, location: str) -> c.Order:
    return client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id=event_id, type=kind, location=location))


@pytest.fixture()
def delivered(client: OmsClient) -> c.Order:
    """A web order split over DSM (VASE) and CHI (LAMP), shipped to Columbus, OH, with
    tracking events, delivered."""
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6,
                            slots_per_aisle=10)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=6, slots_per_aisle=10)
    client.upsert_warehouse("SEA", "Seattle", postal_code="98101", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "VASE", 5, "A03-S002")
    client.set_stock("CHI", "LAMP", 5, "A01-S001")
    o = client.place_order(client.order_request(
        [("VASE", 1, 2500), ("LAMP", 2, 4500)], postal_code="43215", channel="web",
        customer_id="C-ann", email="Ann.Lee@Example.com", name="Ann Lee"))
    assert {a.warehouse_id for a in o.allocations} == {"DSM", "CHI"}
    client.release_hold(o.id)
    for wid in ("DSM", "CHI"):
        wave = client.plan_wave(wid, max_orders=10)
        assert o.id in [x for b in wave.batches for x in b.order_ids]
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    assert len(shipped.shipments) == 2
    for i, sh in enumerate(shipped.shipments):
        _track(client, sh.tracking_number, f"t{i}a", "IN_TRANSIT", "Indianapolis, IN 46204")
        _track(client, sh.tracking_number, f"t{i}b", "OUT_FOR_DELIVERY", "Columbus, OH")
        last = _track(client, sh.tracking_number, f"t{i}c", "DELIVERED", "Columbus, OH 43215")
    assert last.status == c.ORDER_STATUS_DELIVERED
    return last


def test_order_page_shows_the_journey_in_time_order(delivered: c.Order,
                                                    web_console: WebThread) -> None:
    ((status, html, _),) = get(web_console, f"/orders/{delivered.id}")
    assert status == 200, html
    page = Page(html)
    types = [t for t, _ in page.events]
    times = [at for _, at in page.events]
    assert times == sorted(times) and times[0] == delivered.created_at
    # The life in order: every history entry and every carrier event is one timeline entry.
    assert len(delivered.tracking_events) == 6
    assert len(types) == len(delivered.history) + len(delivered.tracking_events)
    milestones = ["placed", "reserved", "wave", "picked", "packed", "shipped",
                  *["tracking"] * 6, "delivered"]
    assert types == milestones, types
    # each shipment's three events, in the order they were recorded, naming the shipment
    tns = [sh.tracking_number for sh in delivered.shipments]
    assert page.tracking == [(tn, k) for tn in tns
                             for k in ("IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED")]
    tracked_at = [at for t, at in page.events if t == "tracking"]
    assert tracked_at == [e.occurred_at for e in delivered.tracking_events]
    assert "Indianapolis, IN 46204" in html and "out for delivery" in html.lower()
    assert "Columbus, OH 43215" in html  # where the carrier delivered it
    assert "Ann Lee" in html and "ann.lee@example.com" in html.lower()


def test_order_map_has_ship_to_and_each_shipping_warehouse(delivered: c.Order,
                                                           web_console: WebThread) -> None:
    ((status, html, _),) = get(web_console, f"/orders/{delivered.id}")
    assert status == 200
    points = Page(html).points
    ship_to = [p for p in points if p["data-point"] == "ship_to"]
    whs = [p for p in points if p["data-point"] == "warehouse"]
    assert len(ship_to) == 1
    assert sorted(p["data-id"] for p in whs) == ["CHI", "DSM"]  # not SEA: it ships nothing
    for p in ship_to + whs:
        x, y = _xy(p)
        assert 0 <= x <= 975 and 0 <= y <= 610
    (sx, sy), = [_xy(p) for p in ship_to]
    dsm, chi = (_xy(p) for p in sorted(whs, key=lambda p: p["data-id"] != "DSM"))
    assert dsm[0] < chi[0] < sx  # Des Moines, Chicago, Columbus: west to east
    # Tracking events with a ZIP or "City, ST" are placed too, between or at the ends: one
    # point per place (Indianapolis, Columbus, the Columbus ZIP), whatever the events there.
    tracks = [p for p in points if p["data-point"] == "tracking"]
    assert len(tracks) == 3, tracks
    assert all(chi[0] < _xy(p)[0] <= sx + 1 for p in tracks)
    indy = min(tracks, key=lambda p: _xy(p)[0])
    assert indy["data-track"] == "IN_TRANSIT"


def test_a_shipment_in_transit_shows_each_tracking_event(client: OmsClient,
                                                        web_console: WebThread) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6,
                            slots_per_aisle=10)
    client.set_stock("DSM", "VASE", 5, "A03-S002")
    o = client.place_order(client.order_request([("VASE", 1, 2500)], postal_code="10001"))
    client.release_hold(o.id)
    client.plan_wave("DSM", max_orders=10)
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    (sh,) = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id)).shipments
    (status, html, _), = get(web_console, f"/orders/{o.id}")
    assert [t for t, _ in Page(html).events][-2:] == ["packed", "shipped"]
    _track(client, sh.tracking_number, "e1", "IN_TRANSIT", "Chicago, IL")
    (status, html, _), = get(web_console, f"/orders/{o.id}")
    assert status == 200
    _track(client, sh.tracking_number, "e2", "EXCEPTION", "Gary, IN 46402")
    (status, html, _), = get(web_console, f"/orders/{o.id}")
    assert status == 200
    page = Page(html)
    events = page.events
    assert [t for t, _ in events][-4:] == ["packed", "shipped", "tracking", "tracking"]
    assert [at for _, at in events] == sorted(at for _, at in events)
    assert page.tracking == [(sh.tracking_number, "IN_TRANSIT"),
                             (sh.tracking_number, "EXCEPTION")]
    assert "in transit" in html and "ETA moved by the carrier" in html
    assert len([p for p in page.points if p["data-point"] == "tracking"]) == 2


def test_search_by_id_redirects_and_by_email_finds_it(delivered: c.Order,
                                                      web_console: WebThread,
                                                      client: OmsClient) -> None:
    other = client.place_order(client.order_request(
        [("VASE", 1, 2500)], postal_code="50010", customer_id="C-bob", email="bob@example.com"))
    (by_id, by_mail, by_customer, by_status, listed) = get(
        web_console, f"/orders?order_id={delivered.id}", "/orders?email=ANN.LEE@example",
        "/orders?customer=C-bob", "/orders?status=DELIVERED", "/orders?channel=web")
    assert by_id[0] == 303 and by_id[2] == f"/orders/{delivered.id}"
    assert by_mail[0] == 200 and Page(by_mail[1]).rows == [delivered.id]
    assert "looked at 2 order(s)" in by_mail[1]
    assert Page(by_customer[1]).rows == [other.id]
    assert Page(by_status[1]).rows == [delivered.id]
    assert Page(listed[1]).rows == [delivered.id, other.id]  # oldest first


def test_unknown_ids_are_404(web_console: WebThread, client: OmsClient) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    (page, search, bad) = get(web_console, "/orders/DSM.0000000000000000", 
                              "/orders?order_id=DSM.0000000000000000", "/orders/not-an-id")
    assert page[0] == 404 and search[0] == 404 and bad[0] == 404
    assert "No order DSM.0000000000000000" in search[1]


def test_a_channel_bound_key_cannot_see_another_channels_order(delivered: c.Order,
                                                               web_console: WebThread,
                                                               client: OmsClient) -> None:
    pos = client.place_order(client.order_request(
        [("VASE", 1, 2500)], postal_code="50010", channel="pos", customer_id="C-ann",
        email="ann.lee@example.com"))
    key = client.create_api_key("pos-reader", ["orders:read"], channels=["pos"]).key
    (web_order, own, by_mail, by_id) = get(
        web_console, f"/orders/{delivered.id}", f"/orders/{pos.id}",
        "/orders?email=ann.lee", f"/orders?order_id={delivered.id}", key=key)
    assert web_order[0] == 404 and "Ann Lee" not in web_order[1]
    assert own[0] == 200 and "data-point=\"ship_to\"" in own[1]
    # Without inventory:read the map has no warehouses, and says why.
    assert "data-point=\"warehouse\"" not in own[1] and "inventory:read" in own[1]
    assert Page(by_mail[1]).rows == [pos.id]
    assert by_id[0] == 404


def test_paging_next_and_previous(web_console: WebThread, client: OmsClient,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.set_stock("DSM", "VASE", 100)
    ids = [client.place_order(client.order_request(
        [("VASE", 1, 100)], postal_code="50010", customer_id=f"C-{i}")).id for i in range(5)]
    monkeypatch.setattr(orders_page, "PAGE_SIZE", 2)  # the app runs in this process
    (first,) = get(web_console, "/orders")
    p1 = Page(first[1])
    assert p1.rows == ids[:2]
    nxt = _href(first[1], "next")
    (second,) = get(web_console, nxt)
    assert Page(second[1]).rows == ids[2:4]
    (third,) = get(web_console, _href(second[1], "next"))
    assert Page(third[1]).rows == ids[4:]
    assert 'data-page="next"' not in third[1]
    (back,) = get(web_console, _href(third[1], "prev"))
    assert Page(back[1]).rows == ids[2:4]
    (back2,) = get(web_console, _href(back[1], "prev"))
    assert Page(back2[1]).rows == ids[:2]


def _href(html: str, which: str) -> str:
    class Links(HTMLParser):
        href = ""

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "a" and a.get("data-page") == which:
                self.href = a.get("href") or ""

    p = Links()
    p.feed(html)
    assert p.href, f"no {which} link"
    return p.href.replace("&amp;", "&")


def test_network_map_shows_warehouses_figures_and_todays_flow(client: OmsClient,
                                                              web_console: WebThread) -> None:
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6,
                            slots_per_aisle=10)
    client.upsert_warehouse("SEA", "Seattle", postal_code="98101")
    client.set_stock("DSM", "VASE", 50, "A03-S002")
    client.set_stock("DSM", "LAMP", 7, "A01-S001")
    client.set_stock("SEA", "LAMP", 3)
    placed = [client.place_order(client.order_request(
        [("VASE", 1, 2500)], postal_code=z, customer_id=f"C-{i}"))
        for i, z in enumerate(["10001", "10002", "60601"])]
    assert all(o.allocations[0].warehouse_id == "DSM" for o in placed)
    ((status, html, _),) = get(web_console, "/map")
    assert status == 200, html
    points = Page(html).points
    whs = {p["data-id"]: _xy(p) for p in points if p["data-point"] == "warehouse"}
    assert set(whs) == {"DSM", "SEA"} and whs["SEA"][0] < whs["DSM"][0]
    dests = [p for p in points if p["data-point"] == "destination"]
    assert len(dests) == 2  # ZIP3 100xx (two orders) and 606xx
    assert all(0 <= _xy(p)[0] <= 975 and 0 <= _xy(p)[1] <= 610 for p in dests)
    assert html.count('data-flow="DSM"') == 2 and 'data-flow="SEA"' not in html
    # 57 - 3 reserved units in DSM, 3 in SEA; three orders waiting in DSM (GetStats' counts).
    assert 'data-available="54"' in html and 'data-available="3"' in html
    assert 'data-waiting="3"' in html and 'data-flow-orders="3"' in html
    assert Page(html).waiting_parts == ["ALLOCATED"]
    # One released to a wave, then a burst from one customer (the velocity rule holds the
    # later ones for review): released orders still wait, held ones are shown, not counted.
    client.release_hold(placed[0].id)
    wave = client.plan_wave("DSM", max_orders=10)
    assert [x for b in wave.batches for x in b.order_ids] == [placed[0].id]
    burst = [client.place_order(client.order_request(
        [("VASE", 1, 2500)], postal_code="50010", customer_id="C-burst",
        email="burst@example.com")) for _ in range(6)]
    held = sum(o.status == c.ORDER_STATUS_ON_HOLD for o in burst)
    assert 1 <= held < 6 and all(o.id.startswith("DSM.") for o in burst)
    ((status, html, _),) = get(web_console, "/map")
    page = Page(html)
    assert f'data-waiting="{3 + 6 - held}"' in html and 'data-flow-orders="9"' in html
    assert page.waiting_parts == ["ALLOCATED", "RELEASED", "ON_HOLD"]
