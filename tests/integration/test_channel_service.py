"""ChannelService on the real server (auth on, admin key unless a test makes a bound one):
channel records with write-only secrets, every validation rule, available-to-sell from the
stock itself (GetAvailability and WatchAvailability), webhook signature checks and delivery
de-duplication, rejected orders, and channel-bound key isolation."""
from __future__ import annotations

import base64
import hashlib
import hmac
import queue
import threading
from collections.abc import Callable, Iterator

import grpc
import numpy as np
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine.errors import ResourceExhaustedError
from oms.server.availability_hub import AvailabilityHub, Subscriber, changed_ids
from oms.v1 import channels_pb2 as pb
from oms.v1 import channels_pb2_grpc as ch_rpc
from tests.helpers import INVALID, NOT_FOUND, add_warehouses

pytestmark = pytest.mark.timeout(180)

req = OmsClient.order_request
WAREHOUSES = {"DSM": "50309", "CHI": "60601", "NYC": "10001"}
NEAR_DSM = "50010"
SECRET = "whsec-0123456789abcdef"
TOKEN = "shpat_token_1234"
UPDATE_WAIT_S = 30.0  # bounds a hang only: an update normally arrives within ~0.1 s


@pytest.fixture()
def network(client: OmsClient) -> OmsClient:
    add_warehouses(client, WAREHOUSES)
    for w in WAREHOUSES:
        for sku, n in {"SKU-A": 100, "SKU-B": 7}.items():
            client.set_stock(w, sku, n)
    return client


def channel(cid: str = "web", **kw) -> pb.Channel:
    base = dict(id=cid, name=f"{cid} shop", kind=pb.CHANNEL_KIND_SHOPIFY,
                warehouse_ids=["DSM", "CHI"], safety_stock=2, sku_safety_stock={"SKU-B": 1},
                max_share_pct=50.0, webhook_secret=SECRET,
                push=pb.PushTarget(base_url="https://shop.example.com/admin", access_token=TOKEN,
                                   location_id="loc-1", sku_items={"SKU-A": "gid://item/1"}))
    base.update(kw)
    return pb.Channel(**base)


def upsert(client: OmsClient, ch: pb.Channel) -> pb.Channel:
    return client.channels.UpsertChannel(pb.UpsertChannelRequest(channel=ch))


def refused(call: Callable[[], object], code: grpc.StatusCode) -> ClientError:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.code == code, e.value
    return e.value


def availability(client: OmsClient, cid: str, skus: list[str]) -> pb.GetAvailabilityResponse:
    return client.channels.GetAvailability(pb.GetAvailabilityRequest(channel_id=cid, skus=skus))


def expected(client: OmsClient, sku: str, whs: set[str], share_bp: int, safety: int
             ) -> tuple[int, int, int]:
    """(available_to_sell, network_available, reserved) from GetStock: the formula by hand."""
    levels = [s for s in client.get_stock(sku).levels if s.warehouse_id in whs]
    net = sum(s.on_hand - s.reserved for s in levels)
    return (max(0, max(net, 0) * share_bp // 10_000 - safety), net,
            sum(s.reserved for s in levels))


def sign_b64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(client: OmsClient, cid: str, scheme: str, signature: str, body: bytes,
           delivery_id: str = "") -> pb.VerifyWebhookResponse:
    return client.channels.VerifyWebhook(pb.VerifyWebhookRequest(
        channel_id=cid, scheme=scheme, signature=signature, body=body, delivery_id=delivery_id))


class Watch:
    """A WatchAvailability stream read on a thread into a queue."""

    def __init__(self, client: OmsClient, request: pb.WatchAvailabilityRequest) -> None:
        self.call = ch_rpc.ChannelServiceStub(client.channel).WatchAvailability(
            request, timeout=120)
        self.q: queue.Queue[pb.AvailabilityUpdate | grpc.RpcError] = queue.Queue()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        try:
            for u in self.call:
                self.q.put(u)
        except grpc.RpcError as e:
            self.q.put(e)

    def next(self, timeout: float = UPDATE_WAIT_S) -> pb.AvailabilityUpdate:
        item = self.q.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def close(self) -> None:
        self.call.cancel()
        self.t.join(10)


@pytest.fixture()
def watches() -> Iterator[list[Watch]]:
    opened: list[Watch] = []
    yield opened
    for w in opened:
        w.close()


# ---- records and secrets -----------------------------------------------------------------

def test_upsert_get_list_round_trip_never_returns_secrets(network: OmsClient) -> None:
    ch = channel(push=pb.PushTarget(base_url="https://shop.example.com", access_token=TOKEN,
                                    consumer_key="ck_1234", consumer_secret="cs_5678",
                                    location_id="L1", sku_items={"SKU-A": "1"}))
    out = upsert(network, ch)
    got = network.channels.GetChannel(pb.GetChannelRequest(channel_id="web"))
    listed = network.channels.ListChannels(pb.ListChannelsRequest()).channels
    for c in (out, got, *listed):
        raw = c.SerializeToString()
        for secret in (SECRET, TOKEN, "ck_1234", "cs_5678"):
            assert secret.encode() not in raw
        assert c.has_webhook_secret and c.push.has_credentials
    assert [c.id for c in listed] == ["web"]
    assert got == out
    assert (got.name, got.kind, list(got.warehouse_ids), got.safety_stock,
            dict(got.sku_safety_stock), got.max_share_pct, got.push.base_url,
            got.push.location_id, dict(got.push.sku_items)) == (
        "web shop", pb.CHANNEL_KIND_SHOPIFY, ["DSM", "CHI"], 2, {"SKU-B": 1}, 50.0,
        "https://shop.example.com", "L1", {"SKU-A": "1"})
    assert got.updated_at > 0
    # a read-modify-write round trip (the answer has no secrets) keeps them
    again = pb.Channel()
    again.CopyFrom(got)
    again.name = "renamed"
    kept = upsert(network, again)
    assert kept.name == "renamed" and kept.has_webhook_secret and kept.push.has_credentials
    assert verify(network, "web", "shopify", sign_b64(SECRET, b"{}"), b"{}").valid
    # an unset max_share_pct is 100 %
    assert upsert(network, channel("pos", max_share_pct=None)).max_share_pct == 100.0


def _bad_channels() -> list[tuple[str, Callable[[pb.Channel], None]]]:
    def setter(path: str, value) -> Callable[[pb.Channel], None]:
        def f(c: pb.Channel) -> None:
            obj = c
            *parents, leaf = path.split(".")
            for p in parents:
                obj = getattr(obj, p)
            target = getattr(obj, leaf)
            if isinstance(value, list):
                del target[:]
                target.extend(value)
            elif isinstance(value, dict):
                target.clear()
                target.update(value)
            else:
                setattr(obj, leaf, value)
        return f

    return [
        ("channel.id", setter("id", "")),
        ("channel.id", setter("id", "Web")),
        ("channel.id", setter("id", "a" * 33)),
        ("channel.id", setter("id", "web\n")),
        ("channel.name", setter("name", "x" * 101)),
        ("channel.name", setter("name", "tab\there")),
        ("channel.kind", setter("kind", 0)),
        ("channel.kind", setter("kind", 99)),
        ("channel.warehouse_ids[0]", setter("warehouse_ids", ["D SM"])),
        ("channel.warehouse_ids", setter("warehouse_ids", ["DSM", "DSM"])),
        ("channel.warehouse_ids", setter("warehouse_ids", [f"W{i}" for i in range(65)])),
        ("channel.safety_stock", setter("safety_stock", -1)),
        ("channel.safety_stock", setter("safety_stock", 10**9 + 1)),
        ("channel.sku_safety_stock['bad sku']", setter("sku_safety_stock", {"bad sku": 1})),
        ("channel.sku_safety_stock[SKU-A]", setter("sku_safety_stock", {"SKU-A": -5})),
        ("channel.max_share_pct", setter("max_share_pct", 100.5)),
        ("channel.max_share_pct", setter("max_share_pct", -0.1)),
        ("channel.max_share_pct", setter("max_share_pct", float("nan"))),
        ("channel.max_share_pct", setter("max_share_pct", float("inf"))),
        ("channel.webhook_secret", setter("webhook_secret", "short")),
        ("channel.webhook_secret", setter("webhook_secret", "x" * 257)),
        ("channel.webhook_secret", setter("webhook_secret", "é" * 20)),
        ("channel.push.base_url", setter("push.base_url", "ftp://shop.example.com")),
        ("channel.push.base_url", setter("push.base_url", "https://")),
        ("channel.push.base_url", setter("push.base_url", "https://u:p@shop.example.com")),
        ("channel.push.base_url", setter("push.base_url", "https://shop.example.com/#x")),
        ("channel.push.base_url", setter("push.base_url", "https://shop.example.com:99999")),
        ("channel.push.base_url", setter("push.base_url", "https://shop.example.com/a b")),
        ("channel.push.base_url", setter("push.base_url", "https://x.com/" + "a" * 500)),
        ("channel.push.access_token", setter("push.access_token", "t" * 513)),
        ("channel.push.consumer_key", setter("push.consumer_key", "ck\x00")),
        ("channel.push.consumer_secret", setter("push.consumer_secret", "cs\n")),
        ("channel.push.location_id", setter("push.location_id", "loc 1")),
        ("channel.push.location_id", setter("push.location_id", "l" * 65)),
        ("channel.push.sku_items['bad sku']", setter("push.sku_items", {"bad sku": "1"})),
        ("channel.push.sku_items[SKU-A]", setter("push.sku_items", {"SKU-A": ""})),
        ("channel.push.sku_items[SKU-A]", setter("push.sku_items", {"SKU-A": "a b"})),
        ("channel.push.sku_items[SKU-A]", setter("push.sku_items", {"SKU-A": "i" * 129})),
    ]


@pytest.mark.parametrize("field,mutate", _bad_channels(),
                         ids=[f"{i}-{f}" for i, (f, _) in enumerate(_bad_channels())])
def test_every_rule_refused_and_nothing_stored(network: OmsClient, field: str,
                                               mutate: Callable[[pb.Channel], None]) -> None:
    ch = channel()
    mutate(ch)
    err = refused(lambda: upsert(network, ch), INVALID)
    assert field in [f for f, _ in err.field_violations], err
    assert not network.channels.ListChannels(pb.ListChannelsRequest()).channels


def test_huge_sku_maps_refused_by_count(network: OmsClient) -> None:
    many = {f"S{i}": 1 for i in range(100_001)}
    err = refused(lambda: upsert(network, channel(sku_safety_stock=many)), INVALID)
    assert [f for f, _ in err.field_violations] == ["channel.sku_safety_stock"]
    # at the limit: taken
    ok = {f"S{i}": 1 for i in range(100_000)}
    assert len(upsert(network, channel(sku_safety_stock=ok)).sku_safety_stock) == 100_000


def test_unknown_warehouse_not_found_and_nothing_stored(network: OmsClient) -> None:
    err = refused(lambda: upsert(network, channel(warehouse_ids=["DSM", "LAX"])), NOT_FOUND)
    assert "LAX" in err.message
    assert not network.channels.ListChannels(pb.ListChannelsRequest()).channels
    refused(lambda: network.channels.GetChannel(pb.GetChannelRequest(channel_id="web")),
            NOT_FOUND)


# ---- availability ------------------------------------------------------------------------

def _check_levels(client: OmsClient, cid: str, skus: list[str], share_bp: int,
                  safety: dict[str, int], whs: set[str]) -> int:
    resp = availability(client, cid, skus)
    assert [x.sku for x in resp.levels] == skus
    for x in resp.levels:
        assert (x.available_to_sell, x.network_available, x.reserved) == expected(
            client, x.sku, whs, share_bp, safety[x.sku])
        assert x.version == resp.version
    return resp.version


def test_get_availability_follows_the_stock_of_its_warehouses(network: OmsClient) -> None:
    upsert(network, channel(max_share_pct=29.0, safety_stock=3, sku_safety_stock={"SKU-B": 1}))
    safety = {"SKU-A": 3, "SKU-B": 1}
    whs = {"DSM", "CHI"}
    args = (["SKU-A", "SKU-B"], 2900, safety, whs)
    v0 = _check_levels(network, "web", *args)
    # 29 % of 200 is 58 exactly: a float product (0.29 * 200 = 57.99…) would publish 57 - 3
    assert availability(network, "web", ["SKU-A"]).levels[0].available_to_sell == 55
    network.set_stock("DSM", "SKU-A", 40)
    v1 = _check_levels(network, "web", *args)
    assert v1 > v0
    order = network.place_order(req([("SKU-A", 5), ("SKU-B", 2)], postal_code=NEAR_DSM))
    v2 = _check_levels(network, "web", *args)
    assert v2 > v1
    assert availability(network, "web", ["SKU-A"]).levels[0].reserved == 5
    network.cancel_order(order.id)
    v3 = _check_levels(network, "web", *args)
    assert v3 > v2
    # another warehouse's stock: neither the levels nor the version move
    before = availability(network, "web", ["SKU-A", "SKU-B"])
    network.set_stock("NYC", "SKU-A", 5000)
    assert availability(network, "web", ["SKU-A", "SKU-B"]) == before
    # a channel without warehouses sells from every one
    upsert(network, channel("all", warehouse_ids=[], max_share_pct=100.0, safety_stock=0,
                            sku_safety_stock={}))
    _check_levels(network, "all", ["SKU-A"], 10_000, {"SKU-A": 0}, set(WAREHOUSES))


def test_unknown_skus_zero_disabled_zero_empty_every_sku(network: OmsClient) -> None:
    upsert(network, channel(max_share_pct=100.0, safety_stock=0, sku_safety_stock={}))
    resp = availability(network, "web", ["NEW-SKU", "SKU-B"])
    assert [(x.sku, x.available_to_sell, x.network_available) for x in resp.levels] == [
        ("NEW-SKU", 0, 0), ("SKU-B", 14, 14)]
    every = availability(network, "web", [])
    assert [x.sku for x in every.levels] == ["SKU-A", "SKU-B"]
    upsert(network, channel(max_share_pct=100.0, safety_stock=0, sku_safety_stock={},
                            disabled=True))
    off = availability(network, "web", ["SKU-A", "SKU-B"])
    assert [(x.available_to_sell, x.network_available) for x in off.levels] == [(0, 200), (0, 14)]


def test_availability_requests_validated(network: OmsClient) -> None:
    upsert(network, channel())
    refused(lambda: availability(network, "nope", ["SKU-A"]), NOT_FOUND)
    refused(lambda: availability(network, "", ["SKU-A"]), INVALID)
    refused(lambda: availability(network, "web", ["bad sku"]), INVALID)
    refused(lambda: availability(network, "web", [f"S{i}" for i in range(1001)]), INVALID)


# ---- watching ----------------------------------------------------------------------------

def test_watch_snapshot_then_updates_then_resume(network: OmsClient, watches: list[Watch]
                                                 ) -> None:
    upsert(network, channel(max_share_pct=100.0, safety_stock=0, sku_safety_stock={}))
    w = Watch(network, pb.WatchAvailabilityRequest(channel_id="web", skus=["SKU-A", "SKU-B"]))
    watches.append(w)
    snap = w.next()
    assert snap.snapshot and snap.channel_id == "web"
    assert [(x.sku, x.available_to_sell) for x in snap.levels] == [("SKU-A", 200), ("SKU-B", 14)]
    assert snap.version == availability(network, "web", []).version
    network.set_stock("DSM", "SKU-B", 3)
    up = w.next()
    assert not up.snapshot and up.version > snap.version
    assert [(x.sku, x.available_to_sell, x.network_available) for x in up.levels] == [
        ("SKU-B", 10, 10)]
    # a change elsewhere sends nothing; the next change here is the next message
    network.set_stock("NYC", "SKU-A", 1)
    network.place_order(req([("SKU-A", 4)], postal_code=NEAR_DSM))
    up2 = w.next()
    assert [(x.sku, x.available_to_sell, x.reserved) for x in up2.levels] == [("SKU-A", 196, 4)]
    assert up2.version > up.version
    # resuming at the current version: no snapshot, straight to the next change
    current = availability(network, "web", []).version
    r = Watch(network, pb.WatchAvailabilityRequest(channel_id="web", skus=["SKU-A"],
                                                   after_version=current))
    watches.append(r)
    # at an older version: a snapshot
    old = Watch(network, pb.WatchAvailabilityRequest(channel_id="web", skus=["SKU-A"],
                                                     after_version=snap.version))
    watches.append(old)
    assert old.next().snapshot
    network.set_stock("CHI", "SKU-A", 50)
    first = r.next()
    assert not first.snapshot
    assert [(x.sku, x.available_to_sell) for x in first.levels] == [("SKU-A", 146)]
    assert w.next().levels[0].available_to_sell == 146


def test_watch_every_sku_takes_new_skus_and_channel_changes(network: OmsClient,
                                                            watches: list[Watch]) -> None:
    upsert(network, channel(max_share_pct=100.0, safety_stock=0, sku_safety_stock={}))
    w = Watch(network, pb.WatchAvailabilityRequest(channel_id="web"))
    watches.append(w)
    assert [x.sku for x in w.next().levels] == ["SKU-A", "SKU-B"]
    network.set_stock("CHI", "SKU-NEW", 9)
    up = w.next()
    assert [(x.sku, x.available_to_sell) for x in up.levels] == [("SKU-NEW", 9)]
    # a new safety stock changes what is published without a stock change
    upsert(network, channel(max_share_pct=100.0, safety_stock=5, sku_safety_stock={}))
    up = w.next()
    assert [(x.sku, x.available_to_sell) for x in up.levels] == [
        ("SKU-A", 195), ("SKU-B", 9), ("SKU-NEW", 4)]


def test_watch_refusals(network: OmsClient, watches: list[Watch]) -> None:
    upsert(network, channel())
    for request, code in [
            (pb.WatchAvailabilityRequest(channel_id="nope"), NOT_FOUND),
            (pb.WatchAvailabilityRequest(channel_id="web", skus=["a b"]), INVALID),
            (pb.WatchAvailabilityRequest(channel_id="web", after_version=-1), INVALID)]:
        w = Watch(network, request)
        watches.append(w)
        with pytest.raises(grpc.RpcError) as e:
            w.next()
        assert e.value.code() == code


def test_hub_limits_streams_per_key_and_stops_its_poller(server, network: OmsClient) -> None:
    hub = AvailabilityHub(server.store, max_per_key=2, interval_s=0.01)

    async def scenario() -> tuple[bool, bool, int]:
        async with hub.subscribe("k1"), hub.subscribe("k1"):
            with pytest.raises(ResourceExhaustedError):
                async with hub.subscribe("k1"):
                    pass
            async with hub.subscribe("k2"):  # another key has its own allowance
                polling = hub.polling
        await hub.close()
        return polling, hub.polling, hub.watchers

    assert server.run(scenario()) == (True, False, 0)


def test_subscriber_backlog_coalesces() -> None:
    s = Subscriber(limit=3)
    s.offer(np.array([1, 2]), {"DSM"})
    s.offer(np.array([2, 3]), {"CHI"})
    assert (s.pending.ids, s.pending.everything, s.pending.warehouses) == (
        {1, 2, 3}, False, {"DSM", "CHI"})
    s.offer(np.array([4]), {"DSM"})  # past the limit: "everything", no id kept
    assert (s.pending.ids, s.pending.everything) == (set(), True)


def test_changed_ids_diffs_packed_arrays() -> None:
    old = np.array([5, 0, 7], dtype=">i4").tobytes()
    new = np.array([5, 1, 7, 0, 2], dtype=">i4").tobytes()
    assert changed_ids(old, new).tolist() == [1, 4]
    assert changed_ids(new, b"").tolist() == [0, 1, 2, 4]
    assert changed_ids(b"", b"").tolist() == []


# ---- webhooks ----------------------------------------------------------------------------

def test_verify_webhook_signatures(network: OmsClient) -> None:
    upsert(network, channel())
    upsert(network, channel("gen", kind=pb.CHANNEL_KIND_GENERIC, disabled=True))
    upsert(network, channel("nosecret", webhook_secret=""))
    body = b'{"id": 820982911946154508}'
    good = sign_b64(SECRET, body)
    ok = verify(network, "web", "shopify", good, body)
    assert (ok.valid, ok.kind, ok.disabled, ok.duplicate) == (
        True, pb.CHANNEL_KIND_SHOPIFY, False, False)
    assert verify(network, "web", "woocommerce", good, body).valid
    assert not verify(network, "web", "shopify", good, body + b" ").valid  # tampered body
    assert not verify(network, "web", "shopify", sign_b64("another-secret-123", body), body).valid
    assert not verify(network, "web", "shopify", "", body).valid
    assert not verify(network, "nosecret", "shopify", sign_b64("", body), body).valid
    hexsig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    g = verify(network, "gen", "generic", hexsig, body)
    assert (g.valid, g.kind, g.disabled) == (True, pb.CHANNEL_KIND_GENERIC, True)
    assert verify(network, "gen", "generic", "sha256=" + hexsig, body).valid
    assert not verify(network, "gen", "generic", good, body).valid  # base64 is not hex
    assert not verify(network, "gen", "generic", "sha256=" + hexsig[:-1] + "0", body).valid
    refused(lambda: verify(network, "missing", "shopify", good, body), NOT_FOUND)
    refused(lambda: verify(network, "web", "paypal", good, body), INVALID)
    refused(lambda: verify(network, "web", "shopify", good, b"x" * (1024 * 1024 + 1)), INVALID)
    assert not verify(network, "web", "shopify", good, b"x" * (1024 * 1024)).valid  # at the cap


def test_delivery_dedupe(network: OmsClient) -> None:
    upsert(network, channel())
    body = b"{}"
    sig = sign_b64(SECRET, body)
    first = verify(network, "web", "shopify", sig, body, delivery_id="d-1")
    assert (first.valid, first.duplicate, first.outcome) == (True, False, "")

    def complete(outcome: str) -> bool:
        return network.channels.CompleteWebhookDelivery(pb.CompleteWebhookDeliveryRequest(
            channel_id="web", delivery_id="d-1", outcome=outcome)).first

    assert complete("order DSM.1")
    assert not complete("order DSM.2")
    again = verify(network, "web", "shopify", sig, body, delivery_id="d-1")
    assert (again.duplicate, again.outcome) == (True, "order DSM.1")
    assert not verify(network, "web", "shopify", sig, body, delivery_id="d-2").duplicate
    refused(lambda: network.channels.CompleteWebhookDelivery(
        pb.CompleteWebhookDeliveryRequest(channel_id="web", delivery_id="")), INVALID)
    refused(lambda: network.channels.CompleteWebhookDelivery(
        pb.CompleteWebhookDeliveryRequest(channel_id="web", delivery_id="d", outcome="o" * 201)),
        INVALID)


def _reject(client: OmsClient, cid: str, ext: str, reason: str = "unknown sku",
            **kw) -> pb.RejectedOrder:
    return client.channels.RecordRejectedOrder(pb.RecordRejectedOrderRequest(
        rejected=pb.RejectedOrder(channel_id=cid, external_id=ext, reason=reason, **kw)))


def _rejected(client: OmsClient, cid: str = "", n: int = 0) -> list[pb.RejectedOrder]:
    return list(client.channels.ListRejectedOrders(
        pb.ListRejectedOrdersRequest(channel_id=cid, page_size=n)).rejected)


def test_rejected_orders_kept_once_per_external_id(network: OmsClient) -> None:
    upsert(network, channel())
    upsert(network, channel("pos"))
    first = _reject(network, "web", "1001", skus=["NOPE-1"], delivery_id="d-9")
    assert first.received_at > 0 and list(first.skus) == ["NOPE-1"]
    repeat = _reject(network, "web", "1001", reason="something else")
    assert repeat == first
    _reject(network, "web", "1002", received_at=first.received_at + 1)
    _reject(network, "pos", "77", received_at=first.received_at + 2)
    assert [r.external_id for r in _rejected(network, "web")] == ["1002", "1001"]
    assert [(r.channel_id, r.external_id) for r in _rejected(network)] == [
        ("pos", "77"), ("web", "1002"), ("web", "1001")]
    assert len(_rejected(network, n=1)) == 1
    refused(lambda: _reject(network, "nope", "1"), NOT_FOUND)
    refused(lambda: _reject(network, "web", "bad id"), INVALID)
    refused(lambda: _reject(network, "web", "1", reason="r" * 501), INVALID)
    refused(lambda: _reject(network, "web", "1", skus=["s" * 65]), INVALID)
    refused(lambda: _reject(network, "web", "1", skus=["s"] * 1001), INVALID)
    refused(lambda: _rejected(network, n=501), INVALID)
    assert len(_rejected(network)) == 3


# ---- channel-bound keys ------------------------------------------------------------------

@pytest.fixture()
def bound(network: OmsClient, server) -> Iterator[OmsClient]:
    upsert(network, channel("web"))
    upsert(network, channel("pos"))
    resp = network.create_api_key("web shop", ["channels:read", "channels:write",
                                               "channels:ingest"], channels=["web"])
    with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=resp.key) as k:
        yield k


def test_bound_key_sees_and_ingests_only_its_channels(bound: OmsClient, network: OmsClient,
                                                      watches: list[Watch]) -> None:
    ch = bound.channels
    assert [c.id for c in ch.ListChannels(pb.ListChannelsRequest()).channels] == ["web"]
    assert ch.GetChannel(pb.GetChannelRequest(channel_id="web")).id == "web"
    # another channel answers exactly as a missing one
    calls: dict[str, Callable[[str], object]] = {
        "get": lambda c: ch.GetChannel(pb.GetChannelRequest(channel_id=c)),
        "availability": lambda c: availability(bound, c, ["SKU-A"]),
        "verify": lambda c: verify(bound, c, "shopify", "x", b"{}"),
        "complete": lambda c: ch.CompleteWebhookDelivery(pb.CompleteWebhookDeliveryRequest(
            channel_id=c, delivery_id="d-1", outcome="o")),
        "reject": lambda c: _reject(bound, c, "1"),
        "list rejected": lambda c: _rejected(bound, c),
    }
    for what, call in calls.items():
        foreign = refused(lambda: call("pos"), NOT_FOUND)
        missing = refused(lambda: call("zzz"), NOT_FOUND)
        assert foreign.message.replace("pos", "zzz") == missing.message, what
    w = Watch(bound, pb.WatchAvailabilityRequest(channel_id="pos"))
    watches.append(w)
    with pytest.raises(grpc.RpcError) as e:
        w.next()
    assert e.value.code() == NOT_FOUND
    refused(lambda: upsert(bound, channel("web")), grpc.StatusCode.PERMISSION_DENIED)
    # its own channel works; the admin's lists show both
    assert verify(bound, "web", "shopify", sign_b64(SECRET, b"{}"), b"{}").valid
    _reject(bound, "web", "1")
    _reject(network, "pos", "2")
    assert [r.channel_id for r in _rejected(bound)] == ["web"]
    assert sorted(r.channel_id for r in _rejected(network)) == ["pos", "web"]
    mine = Watch(bound, pb.WatchAvailabilityRequest(channel_id="web", skus=["SKU-A"]))
    watches.append(mine)
    assert mine.next().snapshot
