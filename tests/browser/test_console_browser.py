"""The operator console in a real browser (issue 16): headless Chromium, driven by Selenium,
against the real oms-web, oms-server and Redis (fixtures in conftest.py).

Relies only on the console's stable hooks: the /login form's ``api_key`` input, the overview's
``data-status`` counts, an order page's ``data-event`` timeline and ``data-point`` map points,
the exceptions page's ``data-order`` rows with ``data-action`` buttons, a wave page's
``data-batch`` routes. Every page is screenshotted at 1280x800 and at 390x844 under
tests/artifacts/screenshots/ and checked not blank and not wider than a phone.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import numpy as np
import pytest
from matplotlib import image as mpimg
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.browser.conftest import (
    SCREENSHOTS,
    Console,
    page_status,
    set_viewport,
    sign_in,
    wait_for,
)

# The journey's milestones of a delivered order, in the order they happened: its carrier's
# events (conftest records IN_TRANSIT, then DELIVERED) are entries between shipped and
# delivered, each naming the shipment's tracking number.
MILESTONES = ("placed", "reserved", "picked", "packed", "shipped", "tracking", "delivered")
PAGES = ("/", "/orders", "/orders/{order}", "/map", "/exceptions", "/waves", "/waves/{wave}",
         "/inventory", "/login")
SIZES = ((1280, 800), (390, 844))
MIN_COLOURS = 16  # a rendered page has text, lines and anti-aliasing: far more than this


def _path(browser) -> str:
    return urlsplit(browser.current_url).path


def test_sign_in_lands_on_the_overview_and_sign_out_ends_it(console: Console, browser) -> None:
    browser.delete_all_cookies()
    browser.get(console.url + "/")
    assert _path(browser) == "/login", browser.current_url  # no session yet
    sign_in(browser, console.url, console.operator_key)
    assert _path(browser) == "/", browser.current_url
    assert wait_for(browser, "[data-status]")
    cookie = browser.get_cookie("oms_session")
    assert cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie
    assert console.operator_key not in browser.page_source  # the key stays server-side
    # sign out: the nav's POST /logout form (it carries the CSRF token)
    browser.execute_script("document.querySelector('form[action=\"/logout\"]').submit();")
    WebDriverWait(browser, 20).until(lambda d: _path(d) != "/")
    browser.get(console.url + "/orders")
    assert _path(browser) == "/login", browser.current_url


def test_a_wrong_key_is_refused_at_the_form(console: Console, browser) -> None:
    browser.delete_all_cookies()
    browser.get(console.url + "/login")
    box = browser.find_element(By.CSS_SELECTOR, "input[name=api_key]")
    box.send_keys("oms_nosuchkey00000000_" + "x" * 43)
    box.submit()
    WebDriverWait(browser, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "input[name=api_key]"))
    browser.get(console.url + "/orders")
    assert _path(browser) == "/login", browser.current_url


def test_overview_funnel_equals_get_stats(console: Console, browser) -> None:
    sign_in(browser, console.url, console.operator_key)
    cells = wait_for(browser, "[data-status]")
    shown = {e.get_attribute("data-status"): int(e.text.strip().replace(",", "")) for e in cells}
    stats = {kv.key: kv.count for kv in console.admin.get_stats().orders_by_status}
    assert {k for k, v in stats.items() if v} <= set(shown), (shown, stats)
    assert shown == {k: stats.get(k, 0) for k in shown}
    assert shown["ON_HOLD"] >= len(console.seeded.held) and shown["DELIVERED"] >= 1
    for k in shown:
        assert f"ORDER_STATUS_{k}" in c.OrderStatus.keys(), k


def test_order_journey_lists_its_events_in_order_and_maps_it(console: Console, browser) -> None:
    oid = console.seeded.delivered
    sign_in(browser, console.url, console.operator_key)
    browser.get(f"{console.url}/orders/{oid}")
    events = [e.get_attribute("data-event") for e in wait_for(browser, "[data-event]")]
    assert events[0] == "placed", events
    # each milestone is there, the first of each in the order they happened
    firsts = [events.index(m) for m in MILESTONES if m in events]
    assert [m for m in MILESTONES if m in events] == list(MILESTONES), events
    assert firsts == sorted(firsts), events
    assert events[-3:] == ["tracking", "tracking", "delivered"], events
    order = console.admin.get_order(oid)
    tracks = browser.find_elements(By.CSS_SELECTOR, "[data-event=tracking]")
    assert [(e.get_attribute("data-tracking"), e.get_attribute("data-tracking-type"))
            for e in tracks] == [(order.shipments[0].tracking_number, k)
                                 for k in ("IN_TRANSIT", "DELIVERED")]
    assert "Des Moines, IA" in tracks[0].text
    # Both places are on the map: Des Moines, IA (city) and ZIP 50010 (Ames).
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-point=tracking]")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-point=ship_to]")) == 1
    homes = {a.warehouse_id for a in order.allocations}
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-point=warehouse]")) == len(homes)


def test_a_shipped_orders_journey_ends_with_its_tracking(console: Console, browser) -> None:
    sign_in(browser, console.url, console.operator_key)
    browser.get(f"{console.url}/orders/{console.seeded.in_transit}")
    events = [e.get_attribute("data-event") for e in wait_for(browser, "[data-event]")]
    assert "delivered" not in events and events[-2:] == ["shipped", "tracking"], events


def _held_row_buttons(browser, oid: str) -> list[str]:
    return [b.get_attribute("data-action") for b in browser.find_elements(
        By.CSS_SELECTOR, f"[data-order='{oid}'] [data-action]")]


def test_release_from_exceptions_changes_the_order(console: Console, browser) -> None:
    oid = console.seeded.held[0]
    assert console.admin.get_order(oid).status == c.ORDER_STATUS_ON_HOLD
    sign_in(browser, console.url, console.operator_key)
    browser.get(console.url + "/exceptions")
    wait_for(browser, f"[data-order='{oid}']")
    assert set(_held_row_buttons(browser, oid)) >= {"release", "cancel"}
    browser.find_element(By.CSS_SELECTOR, f"[data-order='{oid}'] [data-action=release]").click()
    WebDriverWait(browser, 20).until(
        lambda d: console.admin.get_order(oid).status != c.ORDER_STATUS_ON_HOLD)
    assert console.admin.get_order(oid).status == c.ORDER_STATUS_ALLOCATED
    WebDriverWait(browser, 20).until(lambda d: "/exceptions" in d.current_url)
    assert not browser.find_elements(By.CSS_SELECTOR, f"[data-order='{oid}']")


def _csrf_token(browser) -> str:
    """The session's CSRF token as the page carries it (a form's hidden ``csrf`` field, or a
    meta tag)."""
    return browser.execute_script(
        "const i = document.querySelector('input[name=csrf]');"
        "if (i) return i.value;"
        "const m = document.querySelector('meta[name=csrf-token], meta[name=csrf]');"
        "return m ? m.content : '';")


def test_read_only_key_sees_no_button_and_its_forged_post_is_refused(console: Console,
                                                                     browser) -> None:
    oid = console.seeded.held[-1]
    sign_in(browser, console.url, console.read_only_key)
    browser.get(console.url + "/exceptions")
    wait_for(browser, f"[data-order='{oid}']")
    assert _held_row_buttons(browser, oid) == []
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-action=release], "
                                                      "[data-action=cancel]")
    token = _csrf_token(browser)
    assert token, "no CSRF token on the page"
    status = browser.execute_async_script(
        "const [oid, token, done] = arguments;"
        "const body = new URLSearchParams({csrf: token, reason: 'forged'});"
        "fetch('/orders/' + oid + '/release', {method: 'POST', body: body,"
        " credentials: 'same-origin', redirect: 'manual'})"
        ".then(r => done(r.status), () => done(-1));", oid, token)
    assert status == 403
    assert console.admin.get_order(oid).status == c.ORDER_STATUS_ON_HOLD


def test_wave_page_draws_one_route_per_batch(console: Console, browser) -> None:
    wave = console.admin.fulfillment.GetWave(f.GetWaveRequest(wave_id=console.seeded.wave.id))
    sign_in(browser, console.url, console.operator_key)
    browser.get(f"{console.url}/waves/{wave.id}")
    shown = [e.get_attribute("data-batch") for e in wait_for(browser, "[data-batch]")]
    assert sorted(shown) == sorted(b.id for b in wave.batches)


def _distinct_colours(png: str) -> int:
    px = mpimg.imread(png)  # float RGB(A) in [0, 1]
    flat = np.round(px[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(flat, axis=0))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_at_desktop_and_phone_width(console: Console, browser, page: str,
                                                       size: tuple[int, int]) -> None:
    width, height = size
    path = page.format(order=console.seeded.delivered, wave=console.seeded.wave.id)
    if page == "/login":
        browser.delete_all_cookies()
    else:
        sign_in(browser, console.url, console.operator_key)
    set_viewport(browser, width, height)
    try:
        browser.get(console.url + path)
        assert page_status(browser) == 200, path
        assert _path(browser) == path.split("?")[0]
        assert browser.find_elements(By.CSS_SELECTOR, "meta[name=viewport]")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = (page.strip("/").replace("/", "_").replace("{", "").replace("}", "")
                or "overview")
        png = SCREENSHOTS / f"{name}-{width}x{height}.png"
        assert browser.get_screenshot_as_file(str(png))
        shot = mpimg.imread(str(png))
        assert shot.shape[:2] == (height, width)
        assert _distinct_colours(str(png)) > MIN_COLOURS, f"{png} looks blank"
        overflow = browser.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth];")
        assert overflow[0] <= overflow[1] + 1, f"{path} overflows at {width}px: {overflow}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
