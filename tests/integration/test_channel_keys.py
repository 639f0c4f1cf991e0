"""Channel-bound API keys (issue 13 item 4), on the real server with auth on: a key bound to
channels places orders only in them, sees and cancels only their orders (another channel's
order is NOT_FOUND, exactly as a missing one), lists and watches only them, and may not release
fraud holds. An unbound key still sees everything. Streams are bounded by a deadline."""
from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine.errors import NotFoundError
from oms.engine.models import OrderEvent
from oms.server.events_hub import _Subscriber
from oms.v1 import common_pb2 as c
from tests.helpers import add_warehouses

pytestmark = pytest.mark.timeout(120)

req = OmsClient.order_request
WAREHOUSES = {"DSM": "50309", "CHI": "60601"}
NEAR = {"DSM": "50010", "CHI": "60614"}  # ship-to ZIPs near each: orders in two shards
WATCH_TIMEOUT = 3.0  # seconds: the bound of every watch (history only is read in it)
SCOPES = ["orders:read", "orders:write"]


@pytest.fixture()
def network(client: OmsClient) -> OmsClient:
    return add_warehouses(client, WAREHOUSES, stock={"SKU-A": 1000})


def _key_client(admin: OmsClient, server, channels: list[str]) -> Iterator[OmsClient]:
    resp = admin.create_api_key("shop " + "+".join(channels), SCOPES, channels=channels)
    with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=resp.key) as k:
        yield k


@pytest.fixture()
def web(network: OmsClient, server) -> Iterator[OmsClient]:
    yield from _key_client(network, server, ["web"])


@pytest.fixture()
def web_pos(network: OmsClient, server) -> Iterator[OmsClient]:
    yield from _key_client(network, server, ["web", "pos"])


@pytest.fixture()
def unbound(network: OmsClient, server) -> Iterator[OmsClient]:
    yield from _key_client(network, server, [])


def place(client: OmsClient, channel: str, wid: str = "DSM", **kw) -> c.Order:
    return client.place_order(req([("SKU-A", 1)], postal_code=NEAR[wid], channel=channel, **kw))


def refused(call, code: grpc.StatusCode) -> ClientError:
    with pytest.raises(ClientError) as e:
        call()
    assert e.value.code == code, e.value
    return e.value


def ids(orders) -> list[str]:
    return [o.id for o in orders]


# ---- placing ---------------------------------------------------------------------------------

def test_place_own_channel_ok_other_refused(web: OmsClient, network: OmsClient) -> None:
    assert place(web, "web").channel == "web"
    assert place(web, "").channel == "web"  # an empty channel is "web"
    err = refused(lambda: place(web, "pos", idempotency_key="pos-1"),
                  grpc.StatusCode.PERMISSION_DENIED)
    assert "web" in err.message and "pos" in err.message
    # refused before the idempotency claim: the admin places the same key freely
    assert place(network, "pos", idempotency_key="pos-1").channel == "pos"
    assert [o.channel for o in network.iter_orders()] == ["web", "web", "pos"]


def test_repeat_of_another_channels_idempotency_key_hides_its_order(
        web: OmsClient, network: OmsClient) -> None:
    pos = place(network, "pos", "CHI", idempotency_key="shared-1")
    refusals = [
        refused(lambda: place(web, "web", idempotency_key="shared-1"),
                grpc.StatusCode.PERMISSION_DENIED),
        web.batch_place_orders([req([("SKU-A", 1)], postal_code=NEAR["DSM"],
                                    idempotency_key="shared-1")])[0],
        next(iter(web.place_orders_stream([req([("SKU-A", 1)], postal_code=NEAR["DSM"],
                                                idempotency_key="shared-1")]))),
    ]
    for err in refusals:
        assert isinstance(err, ClientError) and err.code == grpc.StatusCode.PERMISSION_DENIED
        assert pos.id not in err.message
    assert place(network, "pos", idempotency_key="shared-1").id == pos.id  # the admin's repeat


def test_batch_with_one_foreign_order_fails_only_that_one(web: OmsClient) -> None:
    rs = [req([("SKU-A", 1)], postal_code=NEAR["DSM"], channel=ch, idempotency_key=f"b-{i}")
          for i, ch in enumerate(["web", "", "pos", "web"])]
    out = web.batch_place_orders(rs)
    assert [type(r) for r in out] == [c.Order, c.Order, ClientError, c.Order]
    assert out[2].code == grpc.StatusCode.PERMISSION_DENIED
    assert [o.channel for o in (out[0], out[1], out[3])] == ["web"] * 3
    # the refused one left no claim: it was never taken in
    assert [o.idempotency_key for o in web.iter_orders()] == ["b-0", "b-1", "b-3"]


def test_stream_with_one_foreign_order_fails_only_that_one(web: OmsClient) -> None:
    rs = [req([("SKU-A", 1)], postal_code=NEAR["DSM"], channel=ch) for ch in
          ["web", "amazon", "web", "pos", "web"]]
    out = list(web.place_orders_stream(rs))
    assert [isinstance(r, c.Order) for r in out] == [True, False, True, False, True]
    assert {r.code for r in out if isinstance(r, ClientError)} == {
        grpc.StatusCode.PERMISSION_DENIED}
    assert len(list(web.iter_orders())) == 3


# ---- reading and cancelling ------------------------------------------------------------------

def test_get_and_cancel_of_foreign_order_not_found(web: OmsClient, network: OmsClient) -> None:
    pos = place(network, "pos", "CHI")
    own = place(web, "web")
    assert web.get_order(own.id).id == own.id
    missing = pos.id.rpartition(".")[0] + ".ffffffffffffffff"
    absent = refused(lambda: web.get_order(missing), grpc.StatusCode.NOT_FOUND)
    hidden = refused(lambda: web.get_order(pos.id), grpc.StatusCode.NOT_FOUND)
    # nothing tells them apart
    assert absent.message == str(NotFoundError("order", missing))
    assert hidden.message == str(NotFoundError("order", pos.id))
    refused(lambda: web.cancel_order(pos.id, "not yours"), grpc.StatusCode.NOT_FOUND)
    after = network.get_order(pos.id)
    assert after.status == c.ORDER_STATUS_ALLOCATED and after.updated_at == pos.updated_at
    assert web.cancel_order(own.id, "changed my mind").status == c.ORDER_STATUS_CANCELLED


def test_release_hold_refused_to_bound_key(web: OmsClient, unbound: OmsClient) -> None:
    own = place(web, "web")
    err = refused(lambda: web.release_hold(own.id, "looks fine"),
                  grpc.StatusCode.PERMISSION_DENIED)
    assert "web" in err.message
    # an unbound key behaves as before: the order is released (its fraud-hold delay ends)
    assert unbound.release_hold(own.id, "looks fine").status == c.ORDER_STATUS_ALLOCATED


# ---- listing ---------------------------------------------------------------------------------

def test_list_only_own_channels(web: OmsClient, web_pos: OmsClient, network: OmsClient) -> None:
    mine = {"web": [], "pos": [], "app": []}
    for i in range(7):
        ch = ("web", "pos", "app")[i % 3]
        mine[ch].append(place(network, ch, ("DSM", "CHI")[i % 2]))
    everything = ids(network.iter_orders())
    assert ids(web.iter_orders(page_size=2)) == ids(mine["web"])
    assert ids(web.iter_orders(channel="web", page_size=2)) == ids(mine["web"])
    assert ids(web.iter_orders(status=c.ORDER_STATUS_ALLOCATED)) == ids(mine["web"])
    err = refused(lambda: web.list_orders(channel="pos"), grpc.StatusCode.PERMISSION_DENIED)
    assert "web" in err.message
    # two channels, none named: merged pages in creation order, no duplicates, no "app"
    both = [i for i in everything if i not in ids(mine["app"])]
    for size in (1, 2, 3, 50):
        assert ids(web_pos.iter_orders(page_size=size)) == both
    assert ids(web_pos.iter_orders(channel="pos", page_size=2)) == ids(mine["pos"])
    refused(lambda: web_pos.list_orders(channel="app"), grpc.StatusCode.PERMISSION_DENIED)


# ---- watching --------------------------------------------------------------------------------

def test_watch_only_own_channel(web: OmsClient, network: OmsClient) -> None:
    w = place(network, "web")
    p = place(network, "pos", "CHI")
    network.cancel_order(p.id, "gone")
    network.cancel_order(w.id, "gone")
    seen = list(web.watch_events("0", timeout=WATCH_TIMEOUT))
    assert [(e.order_id, e.type) for e in seen] == [(w.id, "order.placed"),
                                                    (w.id, "order.cancelled")]
    assert list(web.watch_events("0", order_id=p.id, timeout=WATCH_TIMEOUT)) == []
    everything = list(network.watch_events("0", timeout=WATCH_TIMEOUT))
    assert {e.order_id for e in everything} == {w.id, p.id}


def test_live_fan_out_filters_by_channel() -> None:
    """The tailer's fan-out (what a watcher gets after its history) filters per watcher."""
    batch = [OrderEvent(f"{i}-0@DSM", f"DSM.{i}", "order.placed", 2, i, channel=ch)
             for i, ch in enumerate(["web", "pos", "web", "app"])]
    bound, anyone = _Subscriber("", 100, frozenset({"web", "app"})), _Subscriber("", 100)
    one = _Subscriber("DSM.1", 100, frozenset({"web"}))
    for s in (bound, anyone, one):
        assert s.offer(batch)
    assert [e.order_id for e in bound.queue] == ["DSM.0", "DSM.2", "DSM.3"]
    assert len(anyone.queue) == 4
    assert not one.queue


# ---- an unbound key --------------------------------------------------------------------------

def test_unbound_key_sees_everything(unbound: OmsClient, network: OmsClient) -> None:
    w, p = place(unbound, "web"), place(unbound, "pos", "CHI")
    assert {unbound.get_order(o.id).channel for o in (w, p)} == {"web", "pos"}
    assert ids(unbound.iter_orders()) == [w.id, p.id]
    seen = {e.order_id for e in unbound.watch_events("0", timeout=WATCH_TIMEOUT)}
    assert seen == {w.id, p.id}
    assert unbound.cancel_order(p.id).status == c.ORDER_STATUS_CANCELLED


def test_a_channel_bound_admin_key_cannot_mint_an_unbound_key(server, client) -> None:
    bound = client.create_api_key("shop admin", ["admin"], channels=["web"])
    with OmsClient(f"127.0.0.1:{server.port}", api_key=bound.key) as shop:
        for channels in ([], ["pos"], ["web", "pos"]):
            with pytest.raises(ClientError) as e:
                shop.create_api_key("escape", ["admin"], channels=channels)
            assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert shop.create_api_key("web only", ["orders:read"], channels=["web"]).key
