"""``oms``: the everyday operations from a shell.

  oms [--target HOST:PORT] warehouse add DSM --postal-code 50309 [--name ...] [--lat .. --lon ..]
  oms warehouse list | warehouse disable DSM | warehouse enable DSM
  oms stock set DSM SKU-1 100 [--location A01-S002] | stock adjust DSM SKU-1 -3 [--key K]
  oms stock get SKU-1
  oms order place --zip 50010 SKU-1:2 SKU-2:1 [--key K] [--channel web] [--allow-partial]
  oms order get ID | order list [--status ALLOCATED] [--channel web] [--limit 50]
  oms order cancel ID [--reason ...] | order release-hold ID
  oms events [--after ID] [--order ID] [--seconds 10]
  oms wave plan DSM [--max-orders 500] [--batch-max-orders 8] [--batch-max-items 30]
  oms wave show WAVE_ID [--png FILE]
  oms replenish policy DSM SKU-1 --reorder-point 40 --lead-time 5
  oms replenish suggest [--warehouse DSM] [--window 14] [--all]
  oms stats | oms audit [--recover]
  oms keys create --name N --scope S [--scope S] [--channel C] [--expires-in-days D]
                  [--rate-limit R] | keys list | keys revoke KEY_ID
  oms channel upsert|list|get|availability|watch|rejected ...   (oms channel --help)

Every command sends an API key: --api-key, else OMS_API_KEY, else the admin key file a local
oms-server wrote on first start (OMS_ADMIN_KEY_FILE, default var/admin.key). --tls-ca trusts a
private CA; --tls-cert/--tls-key present a client certificate (mTLS).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from google.protobuf import json_format

from oms.clients import cli_channels, credentials
from oms.clients.client import ClientError, OmsClient
from oms.v1 import admin_pb2 as adm
from oms.v1 import common_pb2 as c


def _print(msg: Any) -> None:
    if isinstance(msg, list):
        print(json.dumps([json_format.MessageToDict(m) for m in msg], indent=2))
    else:
        print(json.dumps(json_format.MessageToDict(msg), indent=2))


def _status(name: str) -> int:
    if not name:
        return 0
    return c.OrderStatus.Value("ORDER_STATUS_" + name.upper())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oms", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default=os.environ.get("OMS_TARGET", "127.0.0.1:50051"))
    p.add_argument("--timeout", type=float, default=float(os.environ.get("OMS_TIMEOUT", "30")),
                   help="deadline of each call in seconds (OMS_TIMEOUT; default 30)")
    p.add_argument("--api-key", default=None,
                   help="API key (else OMS_API_KEY, else the file OMS_ADMIN_KEY_FILE or "
                        f"{credentials.DEFAULT_KEY_FILE})")
    p.add_argument("--tls-ca", default="", help="PEM CA that signed the server's certificate")
    p.add_argument("--tls-cert", default="", help="PEM client certificate (mTLS)")
    p.add_argument("--tls-key", default="", help="PEM key of --tls-cert")
    sub = p.add_subparsers(dest="cmd", required=True)

    wh = sub.add_parser("warehouse").add_subparsers(dest="sub", required=True)
    a = wh.add_parser("add")
    a.add_argument("id")
    a.add_argument("--name", default="")
    a.add_argument("--postal-code", default="")
    a.add_argument("--lat", type=float, default=0.0)
    a.add_argument("--lon", type=float, default=0.0)
    a.add_argument("--aisles", type=int, default=0)
    a.add_argument("--slots", type=int, default=0)
    wh.add_parser("list")
    for name in ("disable", "enable"):
        wh.add_parser(name).add_argument("id")

    st = sub.add_parser("stock").add_subparsers(dest="sub", required=True)
    s = st.add_parser("set")
    s.add_argument("warehouse")
    s.add_argument("sku")
    s.add_argument("on_hand", type=int)
    s.add_argument("--location", default="")
    s = st.add_parser("adjust")
    s.add_argument("warehouse")
    s.add_argument("sku")
    s.add_argument("delta", type=int)
    s.add_argument("--reason", default="")
    s.add_argument("--key", default="")
    s = st.add_parser("count", help="record a physical count, even below what is reserved")
    s.add_argument("warehouse")
    s.add_argument("sku")
    s.add_argument("counted", type=int)
    s.add_argument("--reason", default="")
    st.add_parser("get").add_argument("sku")

    od = sub.add_parser("order").add_subparsers(dest="sub", required=True)
    s = od.add_parser("place")
    s.add_argument("lines", nargs="+", help="SKU:QTY")
    s.add_argument("--zip", default="")
    s.add_argument("--lat", type=float, default=0.0)
    s.add_argument("--lon", type=float, default=0.0)
    s.add_argument("--key", default="")
    s.add_argument("--channel", default="web")
    s.add_argument("--email", default="")
    s.add_argument("--allow-partial", action="store_true")
    od.add_parser("get").add_argument("id")
    s = od.add_parser("list")
    s.add_argument("--status", default="")
    s.add_argument("--channel", default="")
    s.add_argument("--limit", type=int, default=50)
    s = od.add_parser("cancel")
    s.add_argument("id")
    s.add_argument("--reason", default="")
    s = od.add_parser("release-hold")
    s.add_argument("id")
    s.add_argument("--reason", default="")
    s = od.add_parser("pick", help="confirm the pick of an order, or of one warehouse's part")
    s.add_argument("id")
    s.add_argument("--warehouse", default="")
    od.add_parser("pack").add_argument("id")
    s = od.add_parser("ship")
    s.add_argument("id")
    s.add_argument("--service-level", default="", help="GROUND, EXPRESS or OVERNIGHT")
    s = od.add_parser("fill-backorders", help="give arrived stock to BACKORDERED orders, oldest first")
    s.add_argument("--max-orders", type=int, default=0)

    wv = sub.add_parser("wave").add_subparsers(dest="sub", required=True)
    s = wv.add_parser("plan")
    s.add_argument("warehouse")
    s.add_argument("--max-orders", type=int, default=500)
    s.add_argument("--batch-max-orders", type=int, default=8)
    s.add_argument("--batch-max-items", type=int, default=30)
    s.add_argument("--png", default="")
    s = wv.add_parser("show")
    s.add_argument("wave_id")
    s.add_argument("--png", default="")

    rp = sub.add_parser("replenish").add_subparsers(dest="sub", required=True)
    s = rp.add_parser("policy")
    s.add_argument("warehouse")
    s.add_argument("sku")
    s.add_argument("--reorder-point", type=int, default=0)
    s.add_argument("--lead-time", type=float, default=7.0)
    s = rp.add_parser("suggest")
    s.add_argument("--warehouse", default="")
    s.add_argument("--window", type=float, default=14.0)
    s.add_argument("--all", action="store_true", help="also list skus that need nothing")

    ev = sub.add_parser("events")
    ev.add_argument("--after", default="")
    ev.add_argument("--order", default="")
    ev.add_argument("--seconds", type=float, default=10.0)
    sub.add_parser("stats")
    au = sub.add_parser("audit")
    au.add_argument("--recover", action="store_true")

    ks = sub.add_parser("keys", help="API keys (the admin scope)").add_subparsers(
        dest="sub", required=True)
    s = ks.add_parser("create", help="create a key: its secret is shown once, never again")
    s.add_argument("--name", required=True)
    s.add_argument("--scope", action="append", required=True, dest="scopes",
                   help="orders:read, orders:write, ..., admin (repeat for several)")
    s.add_argument("--channel", action="append", default=[], dest="channels",
                   help="bind the key to a sales channel (repeat for several; none = all)")
    exp = s.add_mutually_exclusive_group()
    exp.add_argument("--expires-in-days", type=float, default=0.0)
    exp.add_argument("--expires-at", type=int, default=0, help="unix ms")
    s.add_argument("--rate-limit", type=float, default=0.0,
                   help="requests per second per server process (0 = unlimited)")
    ks.add_parser("list", help="every key, without secrets")
    ks.add_parser("revoke").add_argument("key_id")
    cli_channels.add_parser(sub)
    _accept_globals_anywhere(p)
    return p


def _accept_globals_anywhere(p: argparse.ArgumentParser,
                             shared: list[argparse.Action] | None = None) -> None:
    """``oms audit --target X`` as well as ``oms --target X audit``: every subcommand parser
    also takes the global options. Their default there is SUPPRESS, so a subcommand sets one
    only when it is given after it, and otherwise the value before the subcommand stands."""
    if shared is None:
        shared = [a for a in p._actions if a.option_strings and a.dest != "help"]
    for action in p._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in action.choices.values():
            for g in shared:
                child.add_argument(*g.option_strings, dest=g.dest, type=g.type, help=g.help,
                                   default=argparse.SUPPRESS)
            _accept_globals_anywhere(child, shared)


def run(args: argparse.Namespace, cl: OmsClient) -> int:
    if args.cmd == "warehouse":
        if args.sub == "add":
            _print(cl.upsert_warehouse(args.id, args.name, latitude=args.lat, longitude=args.lon,
                                       postal_code=args.postal_code, aisles=args.aisles,
                                       slots_per_aisle=args.slots))
        elif args.sub == "list":
            _print(cl.list_warehouses())
        else:
            w = next((w for w in cl.list_warehouses() if w.id == args.id), None)
            if w is None:
                raise ClientError(__import__("grpc").StatusCode.NOT_FOUND, f"warehouse {args.id!r} not found")
            w.disabled = args.sub == "disable"
            from oms.v1 import inventory_pb2 as inv  # noqa: PLC0415

            _print(cl.inventory.UpsertWarehouse(inv.UpsertWarehouseRequest(warehouse=w)))
    elif args.cmd == "stock":
        if args.sub == "set":
            _print(cl.set_stock(args.warehouse, args.sku, args.on_hand, args.location))
        elif args.sub == "adjust":
            _print(cl.adjust_stock(args.warehouse, args.sku, args.delta, args.reason, args.key))
        elif args.sub == "count":
            _print(cl.record_stock_count(args.warehouse, args.sku, args.counted, args.reason))
        else:
            _print(cl.get_stock(args.sku))
    elif args.cmd == "order":
        if args.sub == "place":
            lines = []
            for t in args.lines:
                sku, _, q = t.rpartition(":")
                if not sku or not q.isdigit():
                    print(f"bad line {t!r}, expected SKU:QTY", file=sys.stderr)
                    return 2
                lines.append((sku, int(q)))
            _print(cl.place_order(cl.order_request(
                lines, postal_code=args.zip, latitude=args.lat, longitude=args.lon,
                idempotency_key=args.key, channel=args.channel, email=args.email,
                allow_partial=args.allow_partial)))
        elif args.sub == "get":
            _print(cl.get_order(args.id))
        elif args.sub == "list":
            out = []
            for o in cl.iter_orders(_status(args.status), args.channel, min(args.limit, 1000)):
                out.append(o)
                if len(out) >= args.limit:
                    break
            for o in out:
                wh = ",".join(dict.fromkeys(a.warehouse_id for a in o.allocations)) or "-"
                print(f"{o.id}\t{c.OrderStatus.Name(o.status)[13:]}\t{o.channel}\t{wh}")
        elif args.sub == "cancel":
            _print(cl.cancel_order(args.id, args.reason))
        elif args.sub == "pick":
            _print(cl.confirm_pick(args.id, args.warehouse))
        elif args.sub == "pack":
            _print(cl.pack_order(args.id))
        elif args.sub == "ship":
            _print(cl.ship_order(args.id, service_level=args.service_level))
        elif args.sub == "fill-backorders":
            r = cl.fill_backorders(args.max_orders)
            print(f"backorders: {r.considered} considered, {r.filled} filled, {r.waiting} waiting, "
                  f"{r.skipped} skipped")
        else:
            _print(cl.release_hold(args.id, args.reason))
    elif args.cmd == "wave":
        from oms.v1 import fulfillment_pb2 as fpb  # noqa: PLC0415

        if args.sub == "plan":
            wave = cl.plan_wave(args.warehouse, args.max_orders, args.batch_max_orders,
                                args.batch_max_items)
        else:
            wave = cl.fulfillment.GetWave(fpb.GetWaveRequest(wave_id=args.wave_id))
        n = sum(len(b.order_ids) for b in wave.batches)
        saving = 1 - wave.total_distance_m / wave.baseline_distance_m if wave.baseline_distance_m else 0.0
        print(f"wave {wave.id or '(empty)'} at {wave.warehouse_id}: {n} orders in "
              f"{len(wave.batches)} batches, {wave.total_distance_m:.1f} m vs baseline "
              f"{wave.baseline_distance_m:.1f} m ({100 * saving:.1f}% shorter)")
        for b in wave.batches:
            print(f"  {b.id}\t{len(b.order_ids)} orders\t{len(b.stops)} stops\t"
                  f"{b.distance_m:.1f} m (S-shape {b.baseline_distance_m:.1f} m)")
        if args.png and wave.batches:
            from oms.clients.wave_plot import draw_wave  # noqa: PLC0415

            wh = next(w for w in cl.list_warehouses() if w.id == wave.warehouse_id)
            draw_wave(wave, wh.layout, args.png)
            print(f"wrote {args.png}")
    elif args.cmd == "replenish":
        from oms.v1 import inventory_pb2 as inv  # noqa: PLC0415

        if args.sub == "policy":
            _print(cl.inventory.SetReplenishmentPolicy(inv.SetReplenishmentPolicyRequest(
                policy=inv.ReplenishmentPolicy(warehouse_id=args.warehouse, sku=args.sku,
                                               reorder_point=args.reorder_point,
                                               lead_time_days=args.lead_time))))
        else:
            res = cl.inventory.SuggestReplenishment(inv.SuggestReplenishmentRequest(
                warehouse_id=args.warehouse, window_days=args.window, include_zero=args.all))
            print(f"{'warehouse':9} {'sku':14} {'per day':>8} {'avail':>7} {'ROP':>6} {'order':>7}  reason")
            for x in res.suggestions:
                print(f"{x.warehouse_id:9} {x.sku:14} {x.daily_velocity:8.2f} {x.available:7d} "
                      f"{x.reorder_point:6d} {x.suggested_quantity:7d}  {x.reason}")
    elif args.cmd == "events":
        for e in cl.watch_events(args.after or "0", args.order, timeout=args.seconds):
            print(f"{e.event_id}\t{e.order_id}\t{e.type}\t{c.OrderStatus.Name(e.status)[13:]}")
    elif args.cmd == "stats":
        _print(cl.get_stats())
    elif args.cmd == "audit":
        from oms.v1 import reporting_pb2 as rep  # noqa: PLC0415

        report = cl.reporting.Audit(rep.AuditRequest(recover=args.recover))
        for line in report.problems:
            print("PROBLEM", line)
        print(f"audit: {'ok' if report.ok else 'FAILED'} ({len(report.problems)} problems, "
              f"{report.released_by_recovery} released by recovery)")
        return 0 if report.ok else 1
    elif args.cmd == "keys":
        return _keys(args, cl)
    elif args.cmd == "channel":
        return cli_channels.run(args, cl)
    return 0


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000)) if ms else "-"


def _key_row(k: adm.ApiKey) -> list[str]:
    return [k.key_id, k.name, "+".join(k.scopes), ",".join(k.channels) or "*",
            _when(k.created_at), k.created_by or "-", _when(k.expires_at),
            _when(k.revoked_at) if k.revoked else "no",
            f"{k.rate_limit_per_s:g}/s" if k.rate_limit_per_s else "-"]


def _keys(args: argparse.Namespace, cl: OmsClient) -> int:
    if args.sub == "create":
        expires_at = args.expires_at or (
            int(time.time() * 1000 + args.expires_in_days * 86_400_000)
            if args.expires_in_days else 0)
        r = cl.create_api_key(args.name, args.scopes, args.channels, expires_at=expires_at,
                              rate_limit_per_s=args.rate_limit)
        print(f"key_id: {r.key_id}")
        print(f"key:    {r.key}")
        print("warning: the key is shown this once and cannot be shown again: store it now "
              "(send it as 'authorization: Bearer <key>', or oms --api-key)", file=sys.stderr)
    elif args.sub == "list":
        head = ["id", "name", "scopes", "channels", "created (UTC)", "created_by",
                "expires", "revoked", "rate"]
        rows = [head] + [_key_row(k) for k in cl.list_api_keys()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for r in rows:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    else:
        k = cl.revoke_api_key(args.key_id)
        print(f"revoked {k.key_id} ({k.name}) at {_when(k.revoked_at)} UTC")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    key = credentials.resolve_api_key(args.api_key)
    try:
        with OmsClient(args.target, timeout=args.timeout, api_key=key, tls_ca=args.tls_ca,
                       tls_cert=args.tls_cert, tls_key=args.tls_key) as cl:
            return run(args, cl)
    except ClientError as e:
        hint = ""
        if e.code.name == "UNAUTHENTICATED" and not key:
            hint = (f" (no API key: pass --api-key, set OMS_API_KEY, or run where "
                    f"{credentials.key_file()} is)")
        print(f"error: {e}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
