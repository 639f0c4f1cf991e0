"""The sales-channels part of the demo (README demo, issue 15 item 7), also used by
benchmarks/bench_channels.py.

- a Shopify channel (6 of the 10 warehouses, safety stock 2, at most 80 % published, a webhook
  secret) whose push target is a fake Shopify Admin API on loopback (``FakeShopThread``), every
  SKU mapped to an inventory item at one location; a POS channel (one warehouse, no push);
- ``oms-channels`` (on the demo server's embedded Redis, by --data-dir) and ``oms-web`` (with
  its own key: channels:ingest + orders:write, made through AdminService) as subprocesses;
- while the BatchPlaceOrders load runs: recorded-looking Shopify ``orders/create`` webhooks
  (clients/shopify_orders.py) signed and POSTed to oms-web from a thread, 16 in flight, plus a
  few malformed ones (400), some with an unknown SKU (recorded as rejected) and replays (the
  same order); and a probe: every 100 ms a SetStock of a SKU nobody orders to a new value,
  timed against when the fake Shopify received the available-to-sell it makes.

End-to-end lag = fake Shopify received the value − the SetStock that caused it returned, both
``time.monotonic()`` in this process. oms-channels sends each SKU at most once a second, newest
value wins, so most probe values are never sent: the "exact" lag is over the values that were,
the "fresh" lag is, per value, until the channel held it or a newer one.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from oms.clients import shopify_orders as so
from oms.clients.client import OmsClient
from oms.clients.fake_shops import FakeShop, FakeShopThread
from oms.v1 import channels_pb2 as ch

SHOPIFY_ID = "shopify"
POS_ID = "pos"
SHOPIFY_SAFETY = 2
SHOPIFY_SHARE_PCT = 80.0
LOCATION_ID = "71234567890"
PROBE_SKU = "PROBE-0001"
PROBE_STEP = 5       # probe on-hand values are multiples of 5: 80 % of each is a whole number
FIRST_ORDER_ID = 5_100_000_000_000
WEB_SCOPES = ("channels:ingest", "orders:write")


def item_id(k: int) -> str:
    """The fake Shopify's inventory item id of the k-th SKU (the probe is -1)."""
    return str(44_000_000_000 + k + 1)


def script(name: str, module: str) -> list[str]:
    """A console script installed next to this interpreter, else ``python -m module``."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return [path] if os.access(path, os.X_OK) else [sys.executable, "-m", module]


def stop_proc(p: subprocess.Popen[Any] | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def start_channels_worker(data_dir: str, redis_url: str, log_path: str,
                          extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """``oms-channels`` on the server's Redis (its --data-dir finds the embedded one)."""
    where = ["--redis-url", redis_url] if redis_url else ["--data-dir", data_dir]
    with open(log_path, "ab") as log:
        return subprocess.Popen([*script("oms-channels", "oms.server.jobs.channel_sync"), *where,
                                 "--log-level", "WARNING", *extra],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_web(target: str, api_key: str, log_path: str, tls_ca: str = "",
              timeout_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """``oms-web`` on a free loopback port: the process and its base URL. The key goes in the
    environment, not on the command line."""
    env = {**os.environ, "OMS_API_KEY": api_key}
    with open(log_path, "ab") as log:
        p = subprocess.Popen([*script("oms-web", "oms.server.web.cli"), "--listen", "127.0.0.1:0",
                              "--target", target, "--log-level", "WARNING",
                              *(["--tls-ca", tls_ca] if tls_ca else [])],
                             stdout=subprocess.PIPE, stderr=log, text=True, env=env,
                             start_new_session=True)
    found: list[str] = []

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:  # keep draining: the child never blocks on a full pipe
            m = re.search(r"listening on (http://\S+)", line)
            if m and not found:
                found.append(m.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout_s
    while not found:
        if p.poll() is not None or time.monotonic() > deadline:
            stop_proc(p)
            raise RuntimeError(f"oms-web did not start (exit {p.returncode}); see {log_path}")
        time.sleep(0.05)
    return p, found[0]


def ats_of(on_hand: int, share_pct: float = SHOPIFY_SHARE_PCT,
           safety: int = SHOPIFY_SAFETY) -> int:
    """The channel's available-to-sell of a SKU held only as ``on_hand`` (nothing reserved)
    in one of its warehouses (engine/channels.py, exact basis points)."""
    return max(0, on_hand * int(round(share_pct * 100)) // 10_000 - safety)


def setup_channels(cl: OmsClient, shopify_whs: Sequence[str], pos_wh: str, skus: Sequence[str],
                   shop: FakeShop, secret: str) -> None:
    """The Shopify channel (every SKU and the probe mapped) and the POS channel."""
    items = {s: item_id(k) for k, s in enumerate(skus)}
    items[PROBE_SKU] = item_id(-1)
    cl.channels.UpsertChannel(ch.UpsertChannelRequest(channel=ch.Channel(
        id=SHOPIFY_ID, name="Shopify web shop", kind=ch.CHANNEL_KIND_SHOPIFY,
        warehouse_ids=list(shopify_whs), safety_stock=SHOPIFY_SAFETY,
        max_share_pct=SHOPIFY_SHARE_PCT, webhook_secret=secret,
        push=ch.PushTarget(base_url=shop.base_url, access_token=shop.secret,
                           location_id=LOCATION_ID, sku_items=items))))
    cl.channels.UpsertChannel(ch.UpsertChannelRequest(channel=ch.Channel(
        id=POS_ID, name="Store tills (POS)", kind=ch.CHANNEL_KIND_POS, warehouse_ids=[pos_wh])))


# -- the probe ---------------------------------------------------------------------------------

class Probe(threading.Thread):
    """Every ``interval_s`` a SetStock of PROBE_SKU in ``warehouse`` to a new value; records
    (when the call returned, the available-to-sell it makes)."""

    def __init__(self, target: str, api_key: str, warehouse: str, tls_ca: str = "",
                 interval_s: float = 0.1, first: int = 1000) -> None:
        super().__init__(name="probe", daemon=True)
        self.target, self.api_key, self.tls_ca = target, api_key, tls_ca
        self.warehouse = warehouse
        self.interval_s = interval_s
        self.next_value = first
        self.sets: list[tuple[float, int]] = []
        self.call_ms: list[float] = []   # how long each SetStock took
        self.errors = 0
        self.stop_event = threading.Event()

    def set_once(self, cl: OmsClient) -> None:
        on_hand = PROBE_STEP * self.next_value
        self.next_value += 1
        t0 = time.monotonic()
        cl.set_stock(self.warehouse, PROBE_SKU, on_hand)
        t1 = time.monotonic()
        self.sets.append((t1, ats_of(on_hand)))
        self.call_ms.append((t1 - t0) * 1000)

    def run(self) -> None:
        with OmsClient(self.target, timeout=30, api_key=self.api_key, tls_ca=self.tls_ca) as cl:
            nxt = time.monotonic()
            while not self.stop_event.is_set():
                try:
                    self.set_once(cl)
                except Exception:  # noqa: BLE001 - counted; the probe keeps its cadence
                    self.errors += 1
                nxt += self.interval_s
                self.stop_event.wait(max(0.0, nxt - time.monotonic()))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(60)


@dataclass
class E2eLag:
    exact_ms: list[float] = field(default_factory=list)   # values the channel received
    fresh_ms: list[float] = field(default_factory=list)   # until it held this value or newer
    sets: int = 0
    never: int = 0        # values the channel never came to hold (nor a newer one)

    @staticmethod
    def pct(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")

    def line(self, xs: list[float]) -> str:
        return (f"p50 {self.pct(xs, 0.5):,.0f} ms, p99 {self.pct(xs, 0.99):,.0f} ms, "
                f"max {max(xs, default=float('nan')):,.0f} ms")


def e2e_lag(sets: Sequence[tuple[float, int]], applied: Sequence[tuple[float, str, int]],
            item: str) -> E2eLag:
    """``sets``: (SetStock returned, ATS) in order, every ATS distinct and growing;
    ``applied``: the fake's (received, item, value) log."""
    got = [(t, v) for t, i, v in applied if i == item]
    index = {v: n for n, (_, v) in enumerate(sets)}
    out = E2eLag(sets=len(sets))
    # the first time the channel held value n or a later one
    first_at: list[float | None] = [None] * len(sets)
    for t, v in got:
        n = index.get(v)
        if n is None:
            continue  # the value from before the probe started
        out.exact_ms.append((t - sets[n][0]) * 1000)
        for m in range(n, -1, -1):
            if first_at[m] is not None:
                break
            first_at[m] = t
    for n, t in enumerate(first_at):
        if t is None:
            out.never += 1
        else:
            out.fresh_ms.append(max(0.0, t - sets[n][0]) * 1000)
    return out


# -- the webhook feed ---------------------------------------------------------------------------

class Feed(threading.Thread):
    """POSTs ``deliveries`` (a possibly endless generator; it stops at ``stop()``) to ``url``
    from an asyncio loop in this thread."""

    def __init__(self, url: str, deliveries: Iterator[so.Delivery], in_flight: int = 16) -> None:
        super().__init__(name="webhook-feed", daemon=True)
        self.url, self.in_flight = url, in_flight
        self.stop_event = threading.Event()
        self._deliveries = deliveries
        self.result = so.FeedResult()
        self.error: BaseException | None = None

    def _until_stopped(self) -> Iterator[so.Delivery]:
        for d in self._deliveries:
            if self.stop_event.is_set():
                return
            yield d

    def run(self) -> None:
        try:
            self.result = asyncio.run(so.post_all(self.url, self._until_stopped(),
                                                  self.in_flight))
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e

    def finish(self, timeout_s: float = 600.0) -> so.FeedResult:
        self.join(timeout_s)
        if self.error is not None:
            raise RuntimeError(f"webhook feed failed: {self.error}") from self.error
        return self.result

    def stop(self) -> so.FeedResult:
        self.stop_event.set()
        return self.finish()


def wait_for(pred: Callable[[], bool], timeout_s: float, every_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if pred():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every_s)


def published_matches(cl: OmsClient, fake: FakeShopThread, skus: Sequence[str],
                      items: dict[str, str]) -> bool:
    """The fake Shopify holds GetAvailability's value for every one of ``skus``."""
    r = cl.channels.GetAvailability(ch.GetAvailabilityRequest(channel_id=SHOPIFY_ID,
                                                              skus=list(skus)))
    want = {items[lv.sku]: lv.available_to_sell for lv in r.levels}
    got = fake.call(lambda: {i: fake.shop.stock.get(i) for i in want})
    return got == want


def channel_stats(cl: OmsClient, channel_id: str) -> Any:
    return next((s for s in cl.get_stats().channels if s.channel_id == channel_id), None)


# -- the demo step -------------------------------------------------------------------------------

@dataclass
class DemoChannels:
    """Set up by ``start``, fed alongside the load (``begin_load`` / ``end_load``), then
    ``report`` and ``close``."""
    cl: OmsClient
    target: str
    admin_key: str
    skus: list[str]
    prices: dict[str, int]
    popularity: list[float]
    webhook_orders: int
    seed: int
    log_dir: str
    tls_ca: str = ""
    shopify_whs: list[str] = field(default_factory=list)
    pos_wh: str = ""
    fake: FakeShopThread | None = None
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    web_url: str = ""
    secret: str = field(default_factory=lambda: "whsec_" + secrets.token_hex(16))

    def start(self, warehouse_ids: Sequence[str], data_dir: str, redis_url: str) -> None:
        # 6 of the 10 warehouses (spread over the country), the POS channel at the first one
        # (where the purchase order arrives, so its backorders can be filled too).
        self.shopify_whs = [warehouse_ids[i] for i in (0, 2, 3, 5, 6, 8)]
        self.pos_wh = warehouse_ids[0]
        self.fake = FakeShopThread(FakeShop("shopify", secret="shpat_" + secrets.token_hex(8),
                                            location_id=LOCATION_ID)).start()
        self.cl.upsert_product(PROBE_SKU, "Stock probe (never ordered)")
        self.cl.set_stock(self.shopify_whs[0], PROBE_SKU, PROBE_STEP * 999)
        setup_channels(self.cl, self.shopify_whs, self.pos_wh, self.skus, self.fake.shop,
                       self.secret)
        key = self.cl.create_api_key("oms-web (demo)", WEB_SCOPES).key
        self.procs.append(start_channels_worker(data_dir, redis_url,
                                                os.path.join(self.log_dir, "oms-channels.log")))
        web, self.web_url = start_web(self.target, key, os.path.join(self.log_dir, "oms-web.log"),
                                      self.tls_ca)
        self.procs.append(web)
        # oms-channels reconciles on start: every SKU published before the load begins
        n_items = len(self.skus) + 1
        ok = wait_for(lambda: self.fake is not None and
                      self.fake.call(lambda: len(self.fake.shop.stock)) >= n_items, 60)
        print(f"channels: '{SHOPIFY_ID}' (Shopify, warehouses {', '.join(self.shopify_whs)}, "
              f"safety {SHOPIFY_SAFETY}, at most {SHOPIFY_SHARE_PCT:.0f}% published) pushing to a "
              f"fake Shopify at {self.fake.base_url}{'' if ok else ' (NOT yet reconciled)'}; "
              f"'{POS_ID}' (POS, {self.pos_wh}); oms-web at {self.web_url}")

    def _deliveries(self, addresses: Sequence[so.Address]) -> tuple[list[so.Delivery],
                                                                      list[so.Delivery]]:
        """(the first deliveries, shuffled: orders, malformed and unknown-SKU ones; the replays,
        sent after them)."""
        rng = random.Random(self.seed * 1000 + 15)
        first: list[so.Delivery] = []
        orders = []
        for n in range(self.webhook_orders):
            o = so.random_order(FIRST_ORDER_ID + n, rng, self.skus, self.popularity, self.prices,
                                addresses)
            orders.append(o)
            raw = so.body(o)
            first.append(so.Delivery(raw, so.headers(raw, self.secret, f"wh-{o['id']}")))
        for n in range(5):
            raw = so.malformed(orders[n], n)
            first.append(so.Delivery(raw, so.headers(raw, self.secret, f"wh-bad-{n}"),
                                     "malformed"))
            raw = so.body(so.unknown_sku(so.random_order(FIRST_ORDER_ID - 1 - n, rng, self.skus,
                                                         self.popularity, self.prices,
                                                         addresses), n))
            first.append(so.Delivery(raw, so.headers(raw, self.secret, f"wh-unknown-{n}"),
                                     "unknown"))
        rng.shuffle(first)
        assert self.fake is not None
        # Shopify's fulfillment orders of these orders, for when they ship
        self.fake.call(lambda: [self.fake.shop.add_order(str(o["id"]),  # type: ignore[union-attr]
                                                         [li["id"] for li in o["line_items"]])
                                for o in orders])
        replays = []
        for n, o in enumerate(orders[:4]):
            raw = so.body(o)
            # the same delivery again (de-duplicated), or a new delivery of the same order
            wid = f"wh-{o['id']}" if n % 2 == 0 else f"wh-{o['id']}-again"
            replays.append(so.Delivery(raw, so.headers(raw, self.secret, wid), "replay"))
        return first, replays

    def begin_load(self, ships: Sequence[tuple[str, float, float]]) -> None:
        addresses = [(z, lat, lon, "", "") for z, lat, lon in ships[:5000]]
        first, self._replays = self._deliveries(addresses)
        self.probe = Probe(self.target, self.admin_key, self.shopify_whs[0], self.tls_ca)
        self.feed = Feed(f"{self.web_url}/webhooks/shopify/{SHOPIFY_ID}", iter(first))
        self.probe.start()
        self.feed.start()

    def end_load(self, min_probe_s: float = 2.0) -> None:
        self.result = self.feed.finish()
        replay = Feed(self.feed.url, iter(self._replays), 4)
        replay.start()
        self.replays = replay.finish()
        self.probe_started = self.probe.sets[0][0] if self.probe.sets else time.monotonic()
        time.sleep(max(0.0, self.probe_started + min_probe_s - time.monotonic()))
        self.probe.stop()

    def report(self) -> None:
        cl, fake = self.cl, self.fake
        assert fake is not None
        items = {s: item_id(k) for k, s in enumerate(self.skus)}
        items[PROBE_SKU] = item_id(-1)
        shown = [*self.skus[:4], PROBE_SKU]
        # the last probe value reached the channel, and a sample of SKUs agrees (≤ 1 push/s/SKU)
        last_ats = self.probe.sets[-1][1] if self.probe.sets else None
        wait_for(lambda: fake.call(lambda: fake.shop.stock.get(items[PROBE_SKU])) == last_ats,
                 15)
        converged = wait_for(lambda: published_matches(cl, fake, shown, items), 15, 0.2)
        t_conv_ms = time.time() * 1000
        wait_for(lambda: (s := channel_stats(cl, SHOPIFY_ID)) is not None and
                 s.updated_at >= t_conv_ms and s.pending == 0, 5, 0.2)
        stats = cl.get_stats()
        by_ch = {kv.key: kv.count for kv in stats.orders_by_channel}
        res, rep = self.result, self.replays
        orders = res.orders
        rejected = cl.channels.ListRejectedOrders(
            ch.ListRejectedOrdersRequest(channel_id=SHOPIFY_ID)).rejected
        first_ids = {a.body.get("order_id") for a in res.answers if a.tag == "order"}
        same = sum(1 for a in rep.answers if a.status == 200 and (
            a.body.get("order_id") in first_ids or a.body.get("duplicate")))
        print("\nsales channels:")
        print("  orders by channel    " + "  ".join(f"{k} {v:,}" for k, v in sorted(
            by_ch.items(), key=lambda kv: -kv[1])))
        print(f"  shopify webhooks     {orders:,} orders in {res.elapsed_s:.1f} s = "
              f"{orders / res.elapsed_s:,.0f} orders/s (signed orders/create, 16 in flight, "
              f"alongside BatchPlaceOrders; p99 {res.latency_ms(0.99):,.0f} ms)")
        print(f"  bad deliveries       {res.count('malformed', status=400)} malformed -> 400, "
              f"{res.count('unknown', key='rejected')} unknown SKU -> rejected (ListRejectedOrders: "
              f"{len(rejected)}); {same} of {len(rep.answers)} replays -> the same order")
        print(f"  available to sell pushed to Shopify ({SHOPIFY_SHARE_PCT:.0f}% of what the "
              f"{len(self.shopify_whs)} warehouses hold, minus {SHOPIFY_SAFETY}):")
        lv = {x.sku: x for x in cl.channels.GetAvailability(ch.GetAvailabilityRequest(
            channel_id=SHOPIFY_ID, skus=shown)).levels}
        held = fake.call(lambda: {s: fake.shop.stock.get(items[s]) for s in shown})
        for s in shown:
            print(f"    {s:10} item {items[s]}  on Shopify {held[s] if held[s] is not None else '-':>7}"
                  f"  GetAvailability {lv[s].available_to_sell:>7,}  "
                  f"(available {lv[s].network_available:,})")
        if not converged:
            print("    (NOT converged within 15 s)")
        cs = channel_stats(cl, SHOPIFY_ID)
        if cs is not None:
            print(f"  push lag             p50 {cs.lag_ms_p50:,.0f} ms, p99 {cs.lag_ms_p99:,.0f} ms "
                  f"(oms-channels: change seen -> Shopify answered; {cs.pushes:,} pushes, "
                  f"{cs.failures} failures, {cs.pending} pending)")
        lag = e2e_lag(self.probe.sets, fake.call(lambda: list(fake.shop.applied)),
                      items[PROBE_SKU])
        print(f"  end-to-end lag       {lag.line(lag.exact_ms)} (SetStock of {PROBE_SKU} returned "
              f"-> fake Shopify received that value; {len(lag.exact_ms)} of {lag.sets} values "
              f"sent, the rest coalesced)")
        print(f"  until fresh          {lag.line(lag.fresh_ms)} (until Shopify held that value "
              f"or a newer one; at most 1 push per SKU per second)")

    def close(self) -> None:
        for p in reversed(self.procs):
            stop_proc(p)
        self.procs.clear()
        if self.fake is not None:
            self.fake.close()
            self.fake = None
