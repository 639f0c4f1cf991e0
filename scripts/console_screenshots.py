"""Screenshots of every operator-console page, on the demo's data, with page-load timings.

Runs the realistic demo (``python -m oms.clients.demo``, a moderate ``--orders``; its other
defaults) as a child process, reads the console's URL and the operator's sign-in key from its
output, signs in through the /login form in headless Chromium (Selenium 4, Debian's
/usr/bin/chromium and /usr/bin/chromedriver) and saves each page at 1280x800 and at 390x844
(the full page height: the viewport is grown to the document's scrollHeight before the shot)
as ``docs/screenshots/<page>-<width>.png``. Each page's load time (navigation start to the end
of the load event, from the Navigation Timing entry) goes into ``docs/screenshots/README.md``.
The demo is then stopped with SIGINT, as Ctrl-C would.

Run: ``make screenshots`` (``.venv/bin/python scripts/console_screenshots.py``).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SIZES = ((1280, 800), (390, 844))
MAX_HEIGHT = 4000  # the long lists (a wave's batches, all SKUs) would make PNGs of megabytes
BIG_PNG = 600 * 1024


class Demo:
    """The demo as a child process; its stdout echoed and searched for the console's URL and
    sign-in key (a thread keeps reading so the pipe never fills)."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "oms.clients.demo", *argv],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url = ""
        self.key = ""
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stdout.write("demo| " + line)
            if m := re.search(r"operator console: (http://\S+?)/?\s", line):
                self.url = m.group(1)
            elif m := re.search(r"sign in with the API key: (\S+)", line):
                self.key = m.group(1)
                self._ready.set()
        self._ready.set()  # the demo ended: wait_ready sees no key

    def wait_ready(self, timeout_s: float) -> None:
        if not self._ready.wait(timeout_s) or not (self.url and self.key):
            raise RuntimeError(f"the demo printed no console URL and key (exit {self.proc.poll()})")

    def stop(self) -> int:
        """SIGINT (Ctrl-C): the demo stops oms-web, its channel workers and oms-server."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def browser() -> WebDriver:
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--hide-scrollbars", "--window-size=1280,800"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(120)
    return driver


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's viewport exactly width x height CSS pixels at scale 1."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def load_ms(driver: WebDriver) -> float:
    """Navigation start to the end of the load event of the page now shown."""
    def done(d: WebDriver) -> Any:
        return d.execute_script(
            "const n = performance.getEntriesByType('navigation')[0];"
            "return n && n.loadEventEnd > 0 ? n.loadEventEnd - n.startTime : null;")
    return float(WebDriverWait(driver, 30).until(done))


def shoot(driver: WebDriver, url: str, name: str, width: int, height: int) -> dict[str, Any]:
    """Load ``url`` at width x height, time it, grow the viewport to the page's height and
    save the screenshot; the row of the README's table."""
    viewport(driver, width, height)
    driver.get(url)
    ms = load_ms(driver)
    full, page = height, height
    for _ in range(3):  # a page laid out against the viewport's height may grow once resized
        page = int(driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);"))
        h = min(max(page, height), MAX_HEIGHT)
        if h == full:
            break
        full = h
        viewport(driver, width, full)
        time.sleep(0.2)
    time.sleep(0.3)  # let late layout (SVG, fonts) settle
    path = OUT / f"{name}-{width}.png"
    driver.save_screenshot(str(path))
    return {"page": urlsplit(url).path, "name": name,
            "width": width, "file": path.name, "ms": ms, "bytes": path.stat().st_size,
            "height": full, "page_height": max(page, height)}


def sign_in(driver: WebDriver, url: str, key: str) -> None:
    driver.delete_all_cookies()
    driver.get(url + "/login")
    box = driver.find_element(By.CSS_SELECTOR, "input[name=api_key]")
    box.send_keys(key)
    box.submit()
    WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)


def first_link(driver: WebDriver, url: str, css: str) -> str:
    """The path of the first link matching ``css`` on the page at ``url``."""
    driver.get(url)
    links = driver.find_elements(By.CSS_SELECTOR, css)
    if not links:
        raise RuntimeError(f"no link {css!r} on {url}")
    return links[0].get_attribute("href") or ""


def write_readme(rows: list[dict[str, Any]], argv: list[str], took_s: float) -> None:
    lines = [
        "# Operator console screenshots",
        "",
        "Every page of the operator console (`oms-web`) on the realistic demo's data, in "
        "headless Chromium at 1280×800 and at 390×844 (phone width); each shot is the full "
        f"page height, cut at {MAX_HEIGHT:,} px. Made by:",
        "",
        "```",
        "make screenshots   # .venv/bin/python scripts/console_screenshots.py",
        "```",
        "",
        f"which runs `python -m oms.clients.demo {' '.join(argv)}` (its other options at their "
        "defaults), signs in at `/login` with the operator key the demo prints, and saves "
        "`<page>-<width>.png` here. *Load* is navigation start to the end of the load event "
        "(`performance.getEntriesByType('navigation')`), one load each, on the machine that "
        "made the shots, with the demo's processes idle; each page's 1280 row is its first "
        "load (oms-web's caches cold), its 390 row its second.",
        "",
        "| Page | Width | File | Height px | Size KB | Load ms |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        cut = f" (page {r['page_height']:,})" if r["page_height"] > r["height"] else ""
        lines.append(f"| `{r['page']}` | {r['width']} | [{r['file']}]({r['file']}) | "
                     f"{r['height']:,}{cut} | {r['bytes'] / 1024:.0f} | {r['ms']:.0f} |")
    lines += ["", f"Made in {took_s:.0f} s, demo included.", ""]
    (OUT / "README.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=3000, help="the demo's --orders")
    args = ap.parse_args(argv)
    demo_argv = ["--orders", str(args.orders)]
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    demo = Demo(demo_argv)
    driver = None
    rows: list[dict[str, Any]] = []
    try:
        demo.wait_ready(1800)
        url = demo.url
        driver = browser()
        # /login first: once signed in it redirects to the overview.
        for w, h in SIZES:
            driver.delete_all_cookies()
            rows.append(shoot(driver, url + "/login", "login", w, h))
        viewport(driver, *SIZES[0])
        sign_in(driver, url, demo.key)
        order = first_link(driver, url + "/orders?status=DELIVERED",
                           "table.orders a[href^='/orders/']")
        wave = first_link(driver, url + "/waves", "a[href^='/waves/']")
        pages = [("/", "overview"), ("/orders", "orders"), (order, "order"), ("/map", "map"),
                 ("/exceptions", "exceptions"), ("/waves", "waves"), (wave, "wave"),
                 ("/inventory", "inventory")]
        print(f"delivered order {order}, wave {wave}")
        for w, h in SIZES:
            for path, name in pages:
                full = path if path.startswith("http") else url + path
                rows.append(shoot(driver, full, name, w, h))
                r = rows[-1]
                print(f"{r['file']:24} {r['height']:6d} px {r['bytes'] / 1024:6.0f} KB "
                      f"{r['ms']:7.0f} ms  {r['page']}")
    finally:
        if driver is not None:
            driver.quit()
        code = demo.stop()
        print(f"demo stopped (exit {code})")
    names = [n for _, n in pages] + ["login"]
    rows.sort(key=lambda r: (names.index(r["name"]), -r["width"]))
    write_readme(rows, demo_argv, time.perf_counter() - t0)
    for r in rows:
        if r["bytes"] > BIG_PNG:
            print(f"note: {r['file']} is {r['bytes'] / 1024:.0f} KB (> 600 KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
