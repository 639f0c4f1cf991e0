"""``oms channel …``: sales channels from a shell (registered by clients/cli.py).

  oms channel upsert ID [--kind shopify|woocommerce|pos|web|marketplace|generic] [--name N]
      [--warehouse W ... | --all-warehouses] [--safety N] [--sku-safety SKU=N ...] [--share PCT]
      [--webhook-secret-file F] [--push-url URL] [--push-token-file F]
      [--consumer-key-file F --consumer-secret-file F] [--location-id ID]
      [--sku-item SKU=ITEM ...] [--disable|--enable]
  oms channel list | channel get ID | channel rejected ID [--limit N]
  oms channel availability ID [SKU ...] | channel watch ID [SKU ...] [--seconds N]

Secrets come only from files or the environment (OMS_CHANNEL_WEBHOOK_SECRET,
OMS_CHANNEL_PUSH_TOKEN), never from the command line, where shell history and `ps` would keep
them. An upsert of an existing channel changes only the options given (the SKU maps gain the
entries given); everything else, secrets included, is kept. --kind is needed to create one.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import grpc
from google.protobuf import json_format

from oms.clients.client import ClientError, OmsClient
from oms.v1 import channels_pb2 as pb
from oms.v1 import channels_pb2_grpc as ch_rpc

KINDS = ("shopify", "woocommerce", "pos", "web", "marketplace", "generic")
WEBHOOK_SECRET_ENV = "OMS_CHANNEL_WEBHOOK_SECRET"
PUSH_TOKEN_ENV = "OMS_CHANNEL_PUSH_TOKEN"
MAX_SECRET_FILE = 64 * 1024  # far above any credential the server accepts


class UsageError(Exception):
    """A bad option value found before any call: one line, exit code 2."""


def add_parser(sub: Any) -> None:
    """Add ``channel`` and its subcommands to the top-level subparsers ``sub``."""
    ch = sub.add_parser("channel", help="sales channels (see oms channel --help)",
                        description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter
                        ).add_subparsers(dest="sub", required=True)
    # allow_abbrev=False: "--webhook-secret VALUE" must not pass for --webhook-secret-file
    s = ch.add_parser("upsert", allow_abbrev=False,
                      help="create a channel, or change the options given of an existing one "
                           "(everything not given, secrets included, is kept)")
    s.add_argument("id")
    s.add_argument("--kind", choices=KINDS, help="required when creating")
    s.add_argument("--name", default=None)
    s.add_argument("--warehouse", action="append", default=None, dest="warehouses",
                   help="a warehouse that may fulfil its orders (repeat; replaces the list)")
    s.add_argument("--all-warehouses", action="store_true",
                   help="clear the list: every warehouse may fulfil its orders")
    s.add_argument("--safety", type=int, default=None, help="units held back, every SKU")
    s.add_argument("--sku-safety", action="append", default=[], metavar="SKU=N",
                   help="units held back for one SKU, overriding --safety (repeat)")
    s.add_argument("--share", type=float, default=None, metavar="PCT",
                   help="publish at most this percentage of the stock (0..100; default 100)")
    s.add_argument("--webhook-secret-file", default="",
                   help=f"file holding the webhook secret (else ${WEBHOOK_SECRET_ENV})")
    s.add_argument("--push-url", default=None, help="the push target's base URL")
    s.add_argument("--push-token-file", default="",
                   help=f"file holding the push access token (else ${PUSH_TOKEN_ENV})")
    s.add_argument("--consumer-key-file", default="", help="WooCommerce consumer key file")
    s.add_argument("--consumer-secret-file", default="", help="WooCommerce consumer secret file")
    s.add_argument("--location-id", default=None, help="Shopify inventory location")
    s.add_argument("--sku-item", action="append", default=[], metavar="SKU=ITEM",
                   help="the channel's item id of a SKU (repeat)")
    state = s.add_mutually_exclusive_group()
    state.add_argument("--disable", action="store_true", help="take no orders, push nothing")
    state.add_argument("--enable", action="store_true", help="take orders and push again")
    ch.add_parser("list", help="every channel, without secrets")
    ch.add_parser("get", help="one channel as JSON, without secrets").add_argument("id")
    s = ch.add_parser("availability", help="available to sell, read from the stock now")
    s.add_argument("id")
    s.add_argument("skus", nargs="*", metavar="SKU", help="none = every SKU with stock")
    s = ch.add_parser("watch", help="print changes of available to sell")
    s.add_argument("id")
    s.add_argument("skus", nargs="*", metavar="SKU", help="none = every SKU")
    s.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    s = ch.add_parser("rejected", help="orders the channel sent that were refused, newest first")
    s.add_argument("id")
    s.add_argument("--limit", type=int, default=100, help="1..500")


def run(args: argparse.Namespace, cl: OmsClient) -> int:
    """Run one ``channel`` subcommand; every error is one line on stderr."""
    try:
        return _run(args, cl)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ClientError as e:
        # the message already joins the field violations: keep it to one line
        detail = e.message or "; ".join(f"{f}: {d}" for f, d in e.field_violations)
        print(f"error: {e.code.name}: {' '.join(detail.split())}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, cl: OmsClient) -> int:
    if args.sub == "upsert":
        try:
            base: pb.Channel | None = cl.channels.GetChannel(pb.GetChannelRequest(channel_id=args.id))
        except ClientError as e:
            if e.code.name != "NOT_FOUND":
                raise
            base = None
        ch = cl.channels.UpsertChannel(pb.UpsertChannelRequest(channel=_channel(args, base)))
        _print_channel(ch)
    elif args.sub == "list":
        _list(cl.channels.ListChannels(pb.ListChannelsRequest()).channels)
    elif args.sub == "get":
        _print_channel(cl.channels.GetChannel(pb.GetChannelRequest(channel_id=args.id)))
    elif args.sub == "availability":
        r = cl.channels.GetAvailability(pb.GetAvailabilityRequest(channel_id=args.id,
                                                                  skus=args.skus))
        _levels(r.levels)
        print(f"version {r.version}")
    elif args.sub == "watch":
        _watch(cl, args.id, args.skus, args.seconds)
    else:
        r = cl.channels.ListRejectedOrders(pb.ListRejectedOrdersRequest(
            channel_id=args.id, page_size=args.limit))
        _table(["received (UTC)", "external_id", "reason", "skus", "delivery_id"],
               [[_when(x.received_at), x.external_id, x.reason, ",".join(x.skus) or "-",
                 x.delivery_id or "-"] for x in r.rejected])
    return 0


# ---- upsert ------------------------------------------------------------------------------

def _channel(args: argparse.Namespace, base: pb.Channel | None) -> pb.Channel:
    """The channel to upsert: ``base`` (the stored one, secrets absent: the server keeps them)
    with the options given applied; a new channel from the options alone."""
    if base is None and not args.kind:
        raise UsageError(f"channel {args.id!r} does not exist yet: --kind is required")
    ch = pb.Channel()
    if base is not None:
        ch.CopyFrom(base)
        for f in ("has_webhook_secret", "updated_at"):
            ch.ClearField(f)
        ch.push.ClearField("has_credentials")
    ch.id = args.id
    if args.kind:
        ch.kind = pb.ChannelKind.Value("CHANNEL_KIND_" + args.kind.upper())
    if args.name is not None:
        ch.name = args.name
    if args.all_warehouses and args.warehouses:
        raise UsageError("--all-warehouses and --warehouse contradict each other")
    if args.all_warehouses or args.warehouses is not None:
        del ch.warehouse_ids[:]
        ch.warehouse_ids.extend(args.warehouses or [])
    if args.safety is not None:
        ch.safety_stock = args.safety
    for t in args.sku_safety:
        k, v = _pair(t, "--sku-safety")
        ch.sku_safety_stock[k] = _int(v, "--sku-safety", t)
    ch.webhook_secret = _secret(args.webhook_secret_file, "--webhook-secret-file",
                                WEBHOOK_SECRET_ENV)
    if args.disable or args.enable:
        ch.disabled = args.disable
    if args.share is not None:
        ch.max_share_pct = args.share
    if bool(args.consumer_key_file) != bool(args.consumer_secret_file):
        raise UsageError("--consumer-key-file and --consumer-secret-file go together")
    p = ch.push
    if args.push_url is not None:
        p.base_url = args.push_url
    p.access_token = _secret(args.push_token_file, "--push-token-file", PUSH_TOKEN_ENV)
    p.consumer_key = _secret(args.consumer_key_file, "--consumer-key-file", "")
    p.consumer_secret = _secret(args.consumer_secret_file, "--consumer-secret-file", "")
    if args.location_id is not None:
        p.location_id = args.location_id
    for t in args.sku_item:
        sku, item = _pair(t, "--sku-item")
        p.sku_items[sku] = item
    return ch


def _pair(text: str, opt: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not key or not sep or not value:
        raise UsageError(f"{opt} {text[:40]!r}: expected SKU=VALUE")
    return key, value


def _int(value: str, opt: str, text: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{opt} {text[:40]!r}: {value[:20]!r} is not a whole number") from None


def _secret(path: str, opt: str, env: str) -> str:
    """The secret in ``path`` (one trailing line break dropped), else in ``env``, else ""
    (the server keeps the stored one). Never echoed, not even in an error."""
    if path:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_SECRET_FILE + 1)
        except OSError as e:
            raise UsageError(f"{opt}: cannot read {path!r}: {e.strerror}") from None
        if len(raw) > MAX_SECRET_FILE:
            raise UsageError(f"{opt}: {path!r} is over {MAX_SECRET_FILE} bytes")
        try:
            value = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
        except UnicodeDecodeError:
            raise UsageError(f"{opt}: {path!r} is not UTF-8 text") from None
        if not value:
            raise UsageError(f"{opt}: {path!r} is empty")
        return value
    return os.environ.get(env, "") if env else ""


# ---- output ------------------------------------------------------------------------------

def _print_channel(ch: pb.Channel) -> None:
    d = json_format.MessageToDict(ch)
    # say "false" too: an operator checks whether a secret is stored
    d["hasWebhookSecret"] = ch.has_webhook_secret
    d.setdefault("push", {})["hasCredentials"] = ch.push.has_credentials
    print(json.dumps(d, indent=2))


def _list(channels: Any) -> None:
    rows = []
    for c in channels:
        share = f"{c.max_share_pct:g}%" if c.HasField("max_share_pct") else "100%"
        rows.append([c.id, pb.ChannelKind.Name(c.kind)[13:].lower(), c.name or "-",
                     ",".join(c.warehouse_ids) or "*", str(c.safety_stock), share,
                     "yes" if c.has_webhook_secret else "no", c.push.base_url or "-",
                     "yes" if c.disabled else "no"])
    _table(["id", "kind", "name", "warehouses", "safety", "share", "secret", "push",
            "disabled"], rows)


def _levels(levels: Any) -> None:
    _table(["sku", "available_to_sell", "network_available", "reserved", "version"],
           [[x.sku, str(x.available_to_sell), str(x.network_available), str(x.reserved),
             str(x.version)] for x in levels], right=range(1, 5))


def _table(head: list[str], rows: list[list[str]], right: Any = ()) -> None:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(v.rjust(w) if i in right else v.ljust(w)
                        for i, (v, w) in enumerate(zip(r, widths))).rstrip())


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) if ms else "-"


def _watch(cl: OmsClient, channel_id: str, skus: list[str], seconds: float) -> None:
    """Print every update until ``seconds`` have passed (the stream's deadline)."""
    stub = ch_rpc.ChannelServiceStub(cl.channel)
    req = pb.WatchAvailabilityRequest(channel_id=channel_id, skus=skus)
    try:
        for u in stub.WatchAvailability(req, timeout=seconds):
            print(f"version {u.version}{' snapshot' if u.snapshot else ''}")
            _levels(u.levels)
            sys.stdout.flush()  # a pipe sees each update as it comes
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise ClientError.from_rpc(e) from None
