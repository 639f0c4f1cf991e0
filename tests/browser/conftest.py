"""Fixtures of the console's browser tests: a real oms-server child process (embedded Redis),
a seeded network, a real ``oms-web`` child process in front of it, and Debian's headless
Chromium driven by Selenium through ``/usr/bin/chromedriver``.

The module is skipped only when Chromium or its driver is absent (a developer machine without
them); ``.ci/run`` installs both, so CI always runs these tests.

The seed (``Seeded``) is fixed and the data frozen once seeded: no background job changes it,
so a page's numbers can be compared with GetStats at the same moment.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from oms.clients.client import OmsClient
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.conftest import ADMIN_KEY
from tests.helpers import start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is absent (apt-get install chromium "
                "chromium-driver; .ci/run does)", allow_module_level=True)

from selenium import webdriver  # noqa: E402 - only once the browser is known to be there
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# The console user's keys: an operator (may release holds) and a read-only one.
OPERATOR_SCOPES = ("orders:read", "orders:write", "inventory:read", "fulfillment", "reporting",
                   "channels:read", "returns")
READ_ONLY_SCOPES = ("orders:read", "inventory:read", "reporting", "channels:read")

WAREHOUSES = {"DSM": "50309", "CHI": "60601"}  # Des Moines, Chicago
SKUS = {"MUG": 40, "TEE": 40, "CAP": 40}


@dataclass
class Seeded:
    """What the seed made: ids the tests look at."""
    delivered: str = ""                  # shipped, one IN_TRANSIT tracking event, delivered
    in_transit: str = ""                 # shipped, its last tracking event IN_TRANSIT
    held: list[str] = field(default_factory=list)  # ON_HOLD for review (velocity rule)
    backordered: str = ""
    wave: f.Wave | None = None           # planned at DSM, several batches


@dataclass
class Console:
    """The running stack: oms-server at ``target``, oms-web at ``url``, an admin client, the
    console users' keys and the seed."""
    target: str
    url: str
    admin: OmsClient
    operator_key: str
    read_only_key: str
    seeded: Seeded


def _seed(cl: OmsClient) -> Seeded:
    s = Seeded()
    for wid, z in WAREHOUSES.items():
        cl.upsert_warehouse(wid, wid, postal_code=z, aisles=6, slots_per_aisle=10)
    for k, (sku, n) in enumerate(SKUS.items()):
        cl.upsert_product(sku, sku.title(), unit_price_cents=1500 + 100 * k, weight_g=300,
                          length_mm=200, width_mm=150, height_mm=100)
        for j, wid in enumerate(WAREHOUSES):
            cl.set_stock(wid, sku, n, f"A{k + 1:02d}-S{3 * j + 2:03d}")
    cl.upsert_product("RARE", "Rare", unit_price_cents=9900, weight_g=300, length_mm=200,
                      width_mm=150, height_mm=100)
    # Good customers near Des Moines: allocated there, then waved in batches of two.
    normal = [cl.place_order(cl.order_request(
        [(sku, 1 + i % 2, 1500)], postal_code=("50010", "50311", "52240")[i % 3],
        customer_id=f"C-{i}", email=f"c{i}@example.com", channel=("web", "pos")[i % 2]))
        for i, sku in enumerate(["MUG", "TEE", "CAP", "MUG", "TEE", "CAP"])]
    assert all(o.status == c.ORDER_STATUS_ALLOCATED for o in normal), [o.status for o in normal]
    # A burst from one customer: the velocity rule holds the later ones for review.
    burst = [cl.place_order(cl.order_request([("CAP", 1, 1500)], postal_code="60614",
                                             customer_id="C-burst", email="burst@example.com"))
             for _ in range(6)]
    s.held = [o.id for o in burst if o.status == c.ORDER_STATUS_ON_HOLD]
    assert len(s.held) >= 2, [o.status for o in burst]
    s.backordered = cl.place_order(cl.order_request(
        [("RARE", 1, 9900)], postal_code="50010", customer_id="C-rare",
        email="rare@example.com")).id
    s.wave = cl.plan_wave("DSM", max_orders=100, batch_max_orders=2, batch_max_items=30)
    assert len(s.wave.batches) >= 2, s.wave
    s.delivered = _ship(cl, s.wave.batches[0].order_ids[0], ("IN_TRANSIT", "DELIVERED"))
    assert cl.get_order(s.delivered).status == c.ORDER_STATUS_DELIVERED
    s.in_transit = _ship(cl, s.wave.batches[1].order_ids[0], ("IN_TRANSIT",))
    assert cl.get_order(s.in_transit).status == c.ORDER_STATUS_SHIPPED
    return s


def _ship(cl: OmsClient, oid: str, tracking: tuple[str, ...]) -> str:
    """Pick, pack and ship a released order, then record its carrier's tracking events."""
    cl.confirm_pick(oid)
    cl.pack_order(oid)
    tn = cl.ship_order(oid).shipments[0].tracking_number
    where = {"IN_TRANSIT": "Des Moines, IA", "DELIVERED": "50010"}
    for n, kind in enumerate(tracking, 1):
        cl.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
            tracking_number=tn, event_id=f"{tn}-{n}", type=kind, location=where[kind]))
    return oid


def _start_web(target: str) -> tuple[subprocess.Popen[str], str]:
    """``oms-web`` (the console script next to this Python) on a free loopback port."""
    exe = Path(sys.executable).with_name("oms-web")
    p = subprocess.Popen([str(exe), "--listen", "127.0.0.1:0", "--target", target,
                          "--api-key", ADMIN_KEY, "--log-level", "WARNING"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    for line in p.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return p, m.group(1)
    raise AssertionError(f"oms-web exited with {p.wait()}")


def _stop(p: subprocess.Popen[str]) -> None:
    p.terminate()
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data = tmp_path_factory.mktemp("console-server")
    # No fraud-hold delay, so allocated orders can be waved at once; the velocity rule still
    # puts a burst from one customer ON_HOLD for review.
    server, target = start_server(data, "--fraud-hold-seconds", "0")
    web = None
    try:
        with OmsClient(target, timeout=60, api_key=ADMIN_KEY) as admin:
            seeded = _seed(admin)
            operator = admin.create_api_key("console-operator", OPERATOR_SCOPES).key
            read_only = admin.create_api_key("console-read-only", READ_ONLY_SCOPES).key
            web, url = _start_web(target)
            yield Console(target, url, admin, operator, read_only, seeded)
    finally:
        if web is not None:
            _stop(web)
        _stop(server)


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,800"):
        opts.add_argument(a)
    opts.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def set_viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels at scale 1 (the window's
    size would include the browser's chrome)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def sign_in(driver: WebDriver, url: str, key: str, *, fresh: bool = False) -> None:
    """Signed in with ``key``: the /login form filled in and submitted, landing on a page that
    is not /login. The session of an earlier sign-in with the same key is kept unless
    ``fresh`` (oms-web rate-limits sign-in attempts per address, and a form round trip per
    test would be slow)."""
    if not fresh and SIGNED_IN.get(id(driver)) == key and _has_session(driver, url):
        return
    driver.delete_all_cookies()
    driver.get(url + "/login")
    box = driver.find_element(By.CSS_SELECTOR, "input[name=api_key]")
    box.clear()
    box.send_keys(key)
    box.submit()
    WebDriverWait(driver, 20).until(lambda d: "/login" not in d.current_url)
    SIGNED_IN[id(driver)] = key


SIGNED_IN: dict[int, str] = {}  # id(driver) -> the key its last sign-in used


def _has_session(driver: WebDriver, url: str) -> bool:
    if not driver.current_url.startswith(url):
        return False
    return driver.get_cookie("oms_session") is not None


def page_status(driver: WebDriver) -> int:
    """The HTTP status of the page now shown (fetched again by the page itself)."""
    return int(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(location.href, {credentials: 'same-origin', redirect: 'manual'})"
        ".then(r => done(r.status), () => done(-1));"))


def wait_for(driver: WebDriver, css: str, timeout_s: float = 20.0) -> Any:
    """The elements matching ``css`` once at least one is there."""
    WebDriverWait(driver, timeout_s).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))
    return driver.find_elements(By.CSS_SELECTOR, css)
