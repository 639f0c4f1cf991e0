"""Orders of a sales channel are allocated only from the channel's warehouses (zone skipping
within them), on the real server: intake, backorders, FillBackorders, Reallocate; a disabled
channel refuses new orders one by one."""
from __future__ import annotations

import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine import geo
from oms.engine.channels import Channel, ChannelKind
from oms.v1 import channels_pb2
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from tests.helpers import PRECONDITION, add_warehouses, audit_clean, levels

pytestmark = pytest.mark.timeout(120)

req = OmsClient.order_request

# Real metro ZIPs; the ship-to is Ames, Iowa: DSM is nearest, then CHI, then DEN, then ATL.
WAREHOUSES = {"DSM": "50309", "CHI": "60601", "DEN": "80202", "ATL": "30303"}
AMES = "50010"


def _km(zip_a: str, zip_b: str) -> float:
    a, b = geo.geocode_us_zip(zip_a), geo.geocode_us_zip(zip_b)
    assert a is not None and b is not None
    return geo.haversine_km(*a, *b)


def test_the_network_is_ranked_as_the_tests_assume() -> None:
    ranked = sorted(WAREHOUSES, key=lambda w: _km(AMES, WAREHOUSES[w]))
    assert ranked == ["DSM", "CHI", "DEN", "ATL"]


@pytest.fixture()
def network(client):
    return add_warehouses(client, WAREHOUSES)


def channel(server, cid: str, *warehouses: str, disabled: bool = False) -> None:
    server.run(server.store.upsert_channel(Channel(
        id=cid, name=cid, kind=ChannelKind.SHOPIFY, warehouse_ids=tuple(warehouses),
        disabled=disabled)))


def stock(client, sku: str, **per_wh: int) -> None:
    for wid, n in per_wh.items():
        client.set_stock(wid, sku, n)


def reserved(client, sku: str) -> dict[str, int]:
    """Reserved units of ``sku`` in every warehouse of the network (0 where never stocked)."""
    lv = levels(client, sku)
    return {w: lv[w][1] if w in lv else 0 for w in WAREHOUSES}


def allocs(order: c.Order) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for a in order.allocations:
        out[(a.sku, a.warehouse_id)] = out.get((a.sku, a.warehouse_id), 0) + a.quantity
    return out


def test_channel_limited_to_one_warehouse_gets_it_even_when_a_nearer_one_has_stock(
        network, client, server):
    stock(client, "A", DSM=5, CHI=5)
    channel(server, "east", "CHI")
    o = client.place_order(req([("A", 2)], postal_code=AMES, channel="east"))
    assert o.status == c.ORDER_STATUS_ALLOCATED and o.channel == "east"
    assert allocs(o) == {("A", "CHI"): 2}
    assert o.id.startswith("CHI.")
    # an order of the default channel still goes to the nearest
    web = client.place_order(req([("A", 1)], postal_code=AMES))
    assert allocs(web) == {("A", "DSM"): 1}
    assert reserved(client, "A") == {"DSM": 1, "CHI": 2, "DEN": 0, "ATL": 0}
    audit_clean(server)


def test_nearest_of_the_channels_warehouses_wins_and_a_split_stays_in_them(
        network, client, server):
    stock(client, "A", DSM=10, CHI=5, DEN=5, ATL=5)
    channel(server, "mid", "DEN", "CHI")
    o = client.place_order(req([("A", 1)], postal_code=AMES, channel="mid"))
    assert allocs(o) == {("A", "CHI"): 1}  # DSM skipped: not the channel's
    # 3 units: DSM alone could ship them all, but the channel has 2 + 2 in CHI and DEN
    stock(client, "A", CHI=3, DEN=2)  # CHI: 3 on hand, 1 of them reserved above
    split = client.place_order(req([("A", 3)], postal_code=AMES, channel="mid"))
    assert split.status == c.ORDER_STATUS_ALLOCATED
    assert allocs(split) == {("A", "CHI"): 2, ("A", "DEN"): 1}
    assert split.id.startswith("CHI.")  # home: the nearest warehouse shipping
    assert reserved(client, "A") == {"DSM": 0, "CHI": 3, "DEN": 1, "ATL": 0}
    audit_clean(server)


def test_order_needing_stock_outside_its_warehouses_is_backordered(network, client, server):
    stock(client, "A", DSM=10, ATL=10, CHI=1)
    channel(server, "mid", "CHI", "DEN")
    o = client.place_order(req([("A", 2)], postal_code=AMES, channel="mid"))
    assert o.status == c.ORDER_STATUS_BACKORDERED
    assert list(o.allocations) == []
    assert o.id.startswith("CHI.")  # waits at the nearest warehouse it may ship from
    assert reserved(client, "A") == {"DSM": 0, "CHI": 0, "DEN": 0, "ATL": 0}
    # with allow_partial it takes what its warehouses have, nothing elsewhere
    p = client.place_order(req([("A", 2)], postal_code=AMES, channel="mid", allow_partial=True))
    assert allocs(p) == {("A", "CHI"): 1}
    assert reserved(client, "A") == {"DSM": 0, "CHI": 1, "DEN": 0, "ATL": 0}
    audit_clean(server)


def test_a_batch_mixing_channels_allocates_each_in_its_own_warehouses(network, client, server):
    stock(client, "A", DSM=3, CHI=3, DEN=3, ATL=3)
    channel(server, "east", "CHI", "ATL")
    channel(server, "west", "DEN")
    channel(server, "open")  # no warehouse list: every warehouse
    kinds = ["east", "web", "west", "open", "east", "west", "web"]
    res = client.batch_place_orders([req([("A", 1)], postal_code=AMES, channel=k) for k in kinds])
    got = [(r.channel, {w for _, w in allocs(r)}) for r in res]
    assert got == [("east", {"CHI"}), ("web", {"DSM"}), ("west", {"DEN"}), ("open", {"DSM"}),
                   ("east", {"CHI"}), ("west", {"DEN"}), ("web", {"DSM"})]
    # the groups saw each other's takings: DSM had 3 and gave all of them out
    assert reserved(client, "A") == {"DSM": 3, "CHI": 2, "DEN": 2, "ATL": 0}
    # DSM is empty now (CHI 1, DEN 1, ATL 3 left): east takes CHI's last unit first, then
    # the web order finds only ATL able to ship 3 whole, and the west one has DEN's last
    res = client.batch_place_orders([req([("A", 1)], postal_code=AMES, channel="east"),
                                     req([("A", 3)], postal_code=AMES, channel="web"),
                                     req([("A", 2)], postal_code=AMES, channel="west")])
    assert allocs(res[0]) == {("A", "CHI"): 1}
    assert allocs(res[1]) == {("A", "ATL"): 3}
    assert res[2].status == c.ORDER_STATUS_BACKORDERED and res[2].id.startswith("DEN.")
    assert reserved(client, "A") == {"DSM": 3, "CHI": 3, "DEN": 2, "ATL": 3}
    audit_clean(server)


def test_a_disabled_channel_refuses_its_orders_alone(network, client, server):
    stock(client, "A", DSM=5, CHI=5)
    channel(server, "off", "CHI", disabled=True)
    channel(server, "dark", "DEN")
    client.upsert_warehouse("DEN", "DEN", postal_code=WAREHOUSES["DEN"], disabled=True)
    res = client.batch_place_orders([
        req([("A", 1)], postal_code=AMES, channel="off", idempotency_key="k-off"),
        req([("A", 1)], postal_code=AMES, channel="web"),
        req([("A", 1)], postal_code=AMES, channel="dark"),
        req([("A", 1)], postal_code=AMES, channel="web")])
    assert isinstance(res[0], ClientError) and res[0].code == PRECONDITION
    assert res[0].message == "channel off is disabled"
    assert isinstance(res[2], ClientError) and res[2].code == PRECONDITION
    assert res[2].message == "no enabled warehouse for channel dark"
    assert [allocs(res[k]) for k in (1, 3)] == [{("A", "DSM"): 1}] * 2
    assert reserved(client, "A") == {"DSM": 2, "CHI": 0, "DEN": 0, "ATL": 0}
    # a lone unary order of the disabled channel fails the same way
    with pytest.raises(ClientError) as e:
        client.place_order(req([("A", 1)], postal_code=AMES, channel="off"))
    assert (e.value.code, e.value.message) == (PRECONDITION, "channel off is disabled")
    # enabled again, a retry with the same key places the order (the claim was given back)
    channel(server, "off", "CHI")
    again = client.place_order(req([("A", 1)], postal_code=AMES, channel="off",
                                   idempotency_key="k-off"))
    assert allocs(again) == {("A", "CHI"): 1}
    assert client.list_orders(channel="off").orders[0].id == again.id
    audit_clean(server)


def test_fill_backorders_keeps_a_channel_in_its_warehouses(network, client, server):
    channel(server, "east", "CHI")
    stock(client, "A", DSM=0, CHI=0)
    o = client.place_order(req([("A", 2)], postal_code=AMES, channel="east"))
    web = client.place_order(req([("A", 2)], postal_code=AMES))
    assert o.status == web.status == c.ORDER_STATUS_BACKORDERED
    # stock arrives in Des Moines (nearer, not east's): only the web order takes it
    stock(client, "A", DSM=4)
    rep = client.fill_backorders()
    assert (rep.considered, rep.filled, rep.waiting) == (2, 1, 1)
    assert client.get_order(o.id).status == c.ORDER_STATUS_BACKORDERED
    assert allocs(client.get_order(web.id)) == {("A", "DSM"): 2}
    # then in Chicago: the east order is filled from there
    stock(client, "A", CHI=2)
    assert client.fill_backorders().filled == 1
    filled = client.get_order(o.id)
    assert filled.status == c.ORDER_STATUS_ALLOCATED
    assert allocs(filled) == {("A", "CHI"): 2}
    assert reserved(client, "A") == {"DSM": 2, "CHI": 2, "DEN": 0, "ATL": 0}
    audit_clean(server)


def test_reallocation_keeps_a_channel_in_its_warehouses(network, client, server):
    stock(client, "A", DEN=5)
    channel(server, "mid", "CHI", "DEN")
    o = client.place_order(req([("A", 1)], postal_code=AMES, channel="mid"))
    web = client.place_order(req([("A", 1)], postal_code=AMES))
    assert allocs(o) == {("A", "DEN"): 1} and allocs(web) == {("A", "DEN"): 1}
    # stock arrives nearer: DSM (not mid's) and CHI
    stock(client, "A", DSM=5, CHI=5)
    rep = client.fulfillment.Reallocate(f.ReallocateRequest(time_budget_s=1))
    assert rep.moved == 2
    assert allocs(client.get_order(o.id)) == {("A", "CHI"): 1}
    assert allocs(client.get_order(web.id)) == {("A", "DSM"): 1}
    assert reserved(client, "A") == {"DSM": 1, "CHI": 1, "DEN": 0, "ATL": 0}
    audit_clean(server)


def test_a_channel_upserted_through_the_api_limits_its_next_order(network, client, server):
    stock(client, "A", DSM=5, ATL=5)
    first = client.place_order(req([("A", 1)], postal_code=AMES, channel="south"))
    assert allocs(first) == {("A", "DSM"): 1}  # not registered yet: every warehouse
    client.channels.UpsertChannel(channels_pb2.UpsertChannelRequest(channel=channels_pb2.Channel(
        id="south", kind=channels_pb2.CHANNEL_KIND_SHOPIFY, warehouse_ids=["ATL"])))
    second = client.place_order(req([("A", 1)], postal_code=AMES, channel="south"))
    assert allocs(second) == {("A", "ATL"): 1}
    audit_clean(server)
