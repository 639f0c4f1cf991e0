"""The listings the operator console reads: ListStock, ListWaves, WhoAmI."""
from __future__ import annotations

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.v1 import admin_pb2 as adm
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import inventory_pb2 as inv
from tests.integration.test_waves import _place, _setup


def test_list_stock_pages_through_every_sku_and_warehouse(client, server):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    for k in range(7):
        client.set_stock("DSM", f"SKU-{k}", 10 + k, f"A01-S{k:03d}")
        if k % 2:
            client.set_stock("CHI", f"SKU-{k}", 5)
    client.place_order(client.order_request([("SKU-3", 2)], postal_code="50010"))
    seen, token = [], ""
    while True:
        r = client.inventory.ListStock(inv.ListStockRequest(page_size=3, page_token=token))
        seen += [(s.sku, s.warehouse_id, s.on_hand, s.reserved, s.available) for s in r.levels]
        token = r.next_page_token
        if not token:
            break
    assert [s for s, w, *_ in seen if w == "DSM"] == [f"SKU-{k}" for k in range(7)]
    assert [s for s, w, *_ in seen if w == "CHI"] == ["SKU-1", "SKU-3", "SKU-5"]
    assert ("SKU-3", "DSM", 13, 2, 11) in seen
    one = client.inventory.ListStock(inv.ListStockRequest(warehouse_id="CHI", sku_prefix="SKU-5"))
    assert [(s.sku, s.warehouse_id) for s in one.levels] == [("SKU-5", "CHI")]
    assert not one.next_page_token
    for bad in (inv.ListStockRequest(page_size=501), inv.ListStockRequest(sku_prefix="a\n"),
                inv.ListStockRequest(page_token="x y")):
        with pytest.raises(ClientError) as e:
            client.inventory.ListStock(bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ClientError) as e:
        client.inventory.ListStock(inv.ListStockRequest(warehouse_id="NOPE"))
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_list_waves_newest_first(client, server):
    _setup(client)
    _place(client, 10, seed=1)
    w1 = client.plan_wave("DSM", max_orders=100)
    _place(client, 6, seed=2)
    w2 = client.plan_wave("DSM", max_orders=100)
    r = client.fulfillment.ListWaves(f.ListWavesRequest(warehouse_id="DSM"))
    assert [w.id for w in r.waves] == [w2.id, w1.id]
    assert r.waves[1].orders == 10 and r.waves[0].orders == 6
    assert r.waves[1].batches == len(w1.batches)
    assert r.waves[1].total_distance_m == pytest.approx(w1.total_distance_m)
    assert len(client.fulfillment.ListWaves(f.ListWavesRequest(warehouse_id="DSM", page_size=1)).waves) == 1
    with pytest.raises(ClientError) as e:
        client.fulfillment.ListWaves(f.ListWavesRequest(warehouse_id=""))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_who_am_i_needs_only_a_valid_key(client, server):
    created = client.admin.CreateApiKey(adm.CreateApiKeyRequest(
        name="reader", scopes=["orders:read"], channels=["web"]))
    with OmsClient(f"127.0.0.1:{server.port}", api_key=created.key) as c:
        me = c.admin.WhoAmI(adm.WhoAmIRequest())
        assert (me.key_id, me.name, list(me.scopes), list(me.channels)) == (
            created.key_id, "reader", ["orders:read"], ["web"])
        with pytest.raises(ClientError) as e:
            c.admin.ListApiKeys(adm.ListApiKeysRequest())
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED
    with OmsClient(f"127.0.0.1:{server.port}", api_key="") as c, pytest.raises(ClientError) as e:
        c.admin.WhoAmI(adm.WhoAmIRequest())
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
