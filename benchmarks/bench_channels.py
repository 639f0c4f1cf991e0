"""Benchmark: sales channels under intake (issue 15's closing note): the webhook ingest rate and
the end-to-end push lag, measured while BatchPlaceOrders load runs.

Processes: oms-server (``--workers 2``, embedded Redis, fresh data dir), ``oms-channels`` on
its Redis (default flags: poll 100 ms, at most one push per SKU per second), ``oms-web`` with a
key holding channels:ingest + orders:write, and a fake Shopify Admin API on loopback in this
process (oms.clients.fake_shops). The channels are the demo's (clients/demo_channels.py): a
Shopify channel on 6 of the 10 warehouses (safety 2, 80 % share) with every SKU and a probe SKU
mapped, and a POS channel. The network is oms-load's (10 metro warehouses, ``--skus`` SKUs,
1,000,000 units each) and the fake has been reconciled before the load starts.

While oms-load runs BatchPlaceOrders (500 x 3-line orders a call, 16 calls in flight) for
``--duration`` seconds:

(a) Shopify ``orders/create`` webhooks, signed, POSTed to oms-web as fast as it answers with 16
    in flight (clients/shopify_orders.py) → webhook orders/s inside the load's window;
(b) every ``--probe-ms`` a SetStock of PROBE-0001 (mapped on the channel, never ordered) to a
    new value, timed when the call returned; the fake records when each available-to-sell
    value arrived → end-to-end lag: stock change returned → the channel's API received the
    value (p50/p99/max). oms-channels coalesces a SKU to one push a second, newest value
    wins, so only some probe values are ever sent: "fresh" is, per value, the time until the
    channel held that value or a newer one (what a shopper would see).

Run:  .venv/bin/python -m benchmarks.bench_channels [--duration 30] [--skus 200]
Writes benchmarks/results/channels.md and channels.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.procs import BENCH_KEY, ROOT, ServerProc, auth_args, log, run_load, setup_stock
from oms.clients import demo_channels as dc
from oms.clients import shopify_orders as so
from oms.clients.client import OmsClient
from oms.clients.fake_shops import FakeShop, FakeShopThread
from oms.clients.load import METROS, sku_name
from oms.engine.geo import all_us_zips


def server_cmd(d: Path) -> list[str]:
    return [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
            str(d / "redis"), "--label-dir", str(d / "labels"), "--log-level", "WARNING",
            "--workers", "2", "--fraud-hold-seconds", "0", *auth_args(d)]


def webhooks(secret: str, skus: list[str], seed: int) -> Iterator[so.Delivery]:
    """Endless distinct orders/create deliveries to real US addresses."""
    rng = random.Random(seed)
    zips = [z for z in all_us_zips() if z[1] or z[2]]
    addresses = [(z, lat, lon, city, state) for z, lat, lon, city, state in rng.sample(zips, 2000)]
    prices = {s: 199 + (k * 7919) % 9800 for k, s in enumerate(skus)}
    weights = [1.0 / (k + 1) ** 0.8 for k in range(len(skus))]
    for n in itertools.count():
        o = so.random_order(dc.FIRST_ORDER_ID + n, rng, skus, weights, prices, addresses)
        raw = so.body(o)
        yield so.Delivery(raw, so.headers(raw, secret, f"bench-{o['id']}"))


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    d = tmp / "run"
    d.mkdir()
    srv = ServerProc("oms-server", server_cmd(d), d / "server.log").start()
    fake: FakeShopThread | None = None
    procs: list[subprocess.Popen[Any]] = []
    try:
        log(f"oms-server at {srv.target}; network: 10 warehouses, {args.skus} SKUs")
        setup_stock(srv, args.skus, 10, api_key=BENCH_KEY)
        skus = [sku_name(k) for k in range(args.skus)]
        wids = [m[0] for m in METROS[:10]]
        secret = "whsec_bench_0123456789abcdef"
        fake = FakeShopThread(FakeShop("shopify", secret="shpat_bench",
                                       location_id=dc.LOCATION_ID)).start()
        with OmsClient(srv.target, timeout=60, api_key=BENCH_KEY) as cl:
            shopify_whs = [wids[i] for i in (0, 2, 3, 5, 6, 8)]
            cl.upsert_product(dc.PROBE_SKU, "Stock probe (never ordered)")
            cl.set_stock(shopify_whs[0], dc.PROBE_SKU, dc.PROBE_STEP * 999)
            dc.setup_channels(cl, shopify_whs, wids[0], skus, fake.shop, secret)
            web_key = cl.create_api_key("oms-web (bench)", dc.WEB_SCOPES).key
            procs.append(dc.start_channels_worker(str(d / "redis"), "", str(d / "channels.log")))
            web, web_url = dc.start_web(srv.target, web_key, str(d / "web.log"))
            procs.append(web)
            ok = dc.wait_for(lambda: fake.call(lambda: len(fake.shop.stock)) >= len(skus) + 1, 120)
            log(f"oms-channels reconciled the fake Shopify: {ok}; oms-web at {web_url}")
            url = f"{web_url}/webhooks/shopify/{dc.SHOPIFY_ID}"
            gen = webhooks(secret, skus, args.seed)
            # the edge alone first: what oms-web and PlaceOrder take without the batch load
            alone = dc.Feed(url, gen, args.in_flight)
            alone.start()
            time.sleep(args.webhook_only_s)
            res_alone = alone.stop()
            log(f"webhooks alone: {res_alone.orders / res_alone.elapsed_s:,.0f} orders/s")
            probe = dc.Probe(srv.target, BENCH_KEY, shopify_whs[0],
                             interval_s=args.probe_ms / 1000.0)
            feed = dc.Feed(url, gen, args.in_flight)
            probe.start()
            feed.start()
            try:
                load = run_load("batch intake + channels", srv, [
                    "--channels", "4", "--skus", str(args.skus), "--mode", "batch", "--lines",
                    "3", "--batch-size", "500", "--concurrency", "16"], d,
                    warmup=args.warmup, duration=args.duration)
            finally:
                probe.stop()
                res = feed.stop()
            last = probe.sets[-1][1] if probe.sets else None
            item = dc.item_id(-1)
            dc.wait_for(lambda: fake.call(lambda: fake.shop.stock.get(item)) == last, 30)
            sample = skus[:20]
            items = {s: dc.item_id(k) for k, s in enumerate(skus)}
            converged = dc.wait_for(lambda: dc.published_matches(cl, fake, sample, items), 30, 0.2)
            t_conv_ms = time.time() * 1000
            dc.wait_for(lambda: (s := dc.channel_stats(cl, dc.SHOPIFY_ID)) is not None
                        and s.updated_at >= t_conv_ms, 5, 0.2)
            stats = dc.channel_stats(cl, dc.SHOPIFY_ID)
            lag = dc.e2e_lag(probe.sets, fake.call(lambda: list(fake.shop.applied)), item)
            stock_calls = fake.call(lambda: len(fake.shop.stock_calls()))
    finally:
        for p in reversed(procs):
            dc.stop_proc(p)
        if fake is not None:
            fake.close()
        srv.stop()
    # the webhook rate inside the load's measured window (monotonic ↔ unix by one offset)
    w0, w1 = load["window_unix"]
    off = time.time() - time.monotonic()
    inside = [a for a in res.answers if w0 <= a.t_answered + off <= w1]
    created = sum(1 for a in inside if a.status == 200 and "order_id" in a.body)
    bad = sum(1 for a in res.answers if a.status != 200 or "order_id" not in a.body)
    lat = [(a.t_answered - a.t_sent) * 1000 for a in inside]
    return {
        "intake_orders_per_s": load["orders_per_s"], "intake_p99_ms": load["latency_ms"]["p99"],
        "intake_errors": load["errors"], "measured_s": w1 - w0,
        "webhook_orders": created, "webhook_orders_per_s": created / max(w1 - w0, 1e-9),
        "webhook_p50_ms": pct(lat, 0.5), "webhook_p99_ms": pct(lat, 0.99),
        "webhook_alone_orders_per_s": res_alone.orders / res_alone.elapsed_s,
        "webhook_alone_p99_ms": res_alone.latency_ms(0.99), "webhook_alone_s": res_alone.elapsed_s,
        "webhook_total": len(res.answers), "webhook_not_ordered": bad,
        "probe_sets": lag.sets, "probe_errors": probe.errors,
        "probe_call_ms": {"p50": pct(probe.call_ms, 0.5), "p99": pct(probe.call_ms, 0.99)},
        "probe_s": (probe.sets[-1][0] - probe.sets[0][0]) if probe.sets else 0.0, "probe_values_sent":
            len(lag.exact_ms), "probe_never_fresh": lag.never,
        "e2e_exact_ms": {"p50": pct(lag.exact_ms, 0.5), "p99": pct(lag.exact_ms, 0.99),
                         "max": max(lag.exact_ms, default=float("nan"))},
        "e2e_fresh_ms": {"p50": pct(lag.fresh_ms, 0.5), "p99": pct(lag.fresh_ms, 0.99),
                         "max": max(lag.fresh_ms, default=float("nan"))},
        "push_lag_ms": {"p50": stats.lag_ms_p50 if stats else float("nan"),
                        "p99": stats.lag_ms_p99 if stats else float("nan")},
        "pushes": stats.pushes if stats else 0, "push_failures": stats.failures if stats else 0,
        "shopify_requests": stock_calls, "converged": converged,
        "load_command": load["command"]}


def table(r: dict[str, Any]) -> str:
    e, f, p = r["e2e_exact_ms"], r["e2e_fresh_ms"], r["push_lag_ms"]
    return "\n".join([
        "| measure | value |", "|---|---|",
        f"| BatchPlaceOrders intake | {r['intake_orders_per_s']:,.0f} orders/s "
        f"(p99 {r['intake_p99_ms']:,.0f} ms per call of 500) |",
        f"| Shopify webhook orders alongside the load (16 in flight) | "
        f"{r['webhook_orders_per_s']:,.0f} orders/s (p50 {r['webhook_p50_ms']:,.0f} ms, "
        f"p99 {r['webhook_p99_ms']:,.0f} ms per delivery) |",
        f"| Shopify webhook orders alone, before the load ({r['webhook_alone_s']:.0f} s) | "
        f"{r['webhook_alone_orders_per_s']:,.0f} orders/s (p99 "
        f"{r['webhook_alone_p99_ms']:,.0f} ms per delivery) |",
        f"| end-to-end lag, value sent (SetStock returned → fake Shopify received it) | "
        f"p50 {e['p50']:,.0f} ms, p99 {e['p99']:,.0f} ms, max {e['max']:,.0f} ms "
        f"({r['probe_values_sent']} of {r['probe_sets']} probe values sent) |",
        f"| end-to-end lag until fresh (→ the channel held that value or a newer one) | "
        f"p50 {f['p50']:,.0f} ms, p99 {f['p99']:,.0f} ms, max {f['max']:,.0f} ms |",
        f"| oms-channels push lag (change seen → Shopify answered, GetStats) | "
        f"p50 {p['p50']:,.0f} ms, p99 {p['p99']:,.0f} ms |",
        f"| pushes accepted / failed / Shopify requests | {r['pushes']:,} / "
        f"{r['push_failures']:,} / {r['shopify_requests']:,} |"])


def report(r: dict[str, Any], args: argparse.Namespace, started: str) -> str:
    errs = r["intake_errors"] or "-"
    return "\n".join([
        "# Sales channels under intake (benchmarks/bench_channels.py)", "",
        f"Started {started} on {os.cpu_count()} cores; one run, {r['measured_s']:.0f} s of "
        f"BatchPlaceOrders intake measured (500 x 3-line orders a call, 16 in flight, "
        f"{args.skus} SKUs, 10 warehouses, `oms-server --workers 2`), with oms-channels "
        "(default flags), oms-web and a fake Shopify on loopback all on the same machine. "
        f"Alongside it: signed Shopify `orders/create` webhooks at full speed ({args.in_flight} "
        f"in flight) and a SetStock of a probe SKU every {args.probe_ms} ms.", "",
        table(r), "",
        f"Webhook deliveries from oms-load's start (it builds its order pool before its "
        f"window) to its end: {r['webhook_total']:,}, {r['webhook_not_ordered']} not answered "
        f"with an order; intake errors: {errs}. Probe: {r['probe_sets']} SetStock calls in "
        f"{r['probe_s']:.0f} s (each waits for the previous; p50 {r['probe_call_ms']['p50']:,.0f}"
        f" ms, p99 {r['probe_call_ms']['p99']:,.0f} ms a call), {r['probe_errors']} errors, "
        f"{r['probe_never_fresh']} values never seen fresh; the "
        f"fake Shopify equal to GetAvailability for 20 sampled SKUs after the run: "
        f"{'yes' if r['converged'] else 'NO'}.", "",
        "Reading: oms-channels sends a SKU at most once a second (newest value wins), so a "
        "value that changes every 100 ms is mostly coalesced; the lag of the values that are "
        "sent is the poll (100 ms) plus the push's round trip and waiting behind the batch in "
        "flight, while \"until fresh\" adds the wait for the SKU's next one-second slot. Each "
        "webhook is three unary gRPC calls from oms-web (VerifyWebhook, PlaceOrder, "
        "CompleteWebhookDelivery); alongside the batch load they queue behind calls of 500 "
        "orders on the same cores, hence the gap between the two webhook rows.", "",
        f"Run: `python -m benchmarks.bench_channels --duration {args.duration:g} --skus "
        f"{args.skus}`", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_channels", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load measured")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--probe-ms", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=16, help="webhook requests in flight")
    ap.add_argument("--webhook-only-s", type=float, default=10.0,
                    help="seconds of webhooks alone before the load")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    with tempfile.TemporaryDirectory(prefix="oms-channels-bench-") as t:
        r = run(args, Path(t))
    print(table(r))
    (out / "channels.json").write_text(json.dumps(
        {"started": started, "args": vars(args), "result": r}, indent=2, default=str) + "\n")
    (out / "channels.md").write_text(report(r, args, started))
    log(f"wrote {out / 'channels.md'}")
    return 0 if r["converged"] and not r["intake_errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
