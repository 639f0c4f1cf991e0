"""Available to sell under concurrent intake from two channels (issue 15): it never goes
negative while the load runs, and afterwards it equals the formula on the final stock."""
from __future__ import annotations

import random
import threading

import pytest

from oms.clients.client import OmsClient
from oms.v1 import channels_pb2 as ch
from oms.v1 import inventory_pb2 as inv
from tests.conftest import ADMIN_KEY
from tests.helpers import add_warehouses, audit_clean

pytestmark = pytest.mark.timeout(180)

WAREHOUSES = {"DSM": "50309", "CHI": "60601", "DEN": "80202"}
SKUS = [f"K{i}" for i in range(6)]
# shop: DSM+CHI, 80 %, safety 2 (K0: 5); pos: CHI+DEN, 50 %, safety 1
CHANNELS = {
    "shop": dict(warehouse_ids=["DSM", "CHI"], max_share_pct=80.0, safety_stock=2,
                 sku_safety_stock={"K0": 5}),
    "pos": dict(warehouse_ids=["CHI", "DEN"], max_share_pct=50.0, safety_stock=1),
}


def _formula(client: OmsClient, cid: str) -> dict[str, int]:
    spec = CHANNELS[cid]
    avail = {s: 0 for s in SKUS}
    token = ""
    while True:
        r = client.inventory.ListStock(inv.ListStockRequest(page_token=token, page_size=100))
        for lv in r.levels:
            if lv.warehouse_id in spec["warehouse_ids"] and lv.sku in avail:
                avail[lv.sku] += lv.on_hand - lv.reserved
        token = r.next_page_token
        if not token:
            break
    bp = round(spec["max_share_pct"] * 100)
    return {s: max(0, avail[s] * bp // 10_000 - spec.get("sku_safety_stock", {}).get(
        s, spec["safety_stock"])) for s in SKUS}


def _ats(client: OmsClient, cid: str) -> dict[str, int]:
    r = client.channels.GetAvailability(ch.GetAvailabilityRequest(channel_id=cid, skus=SKUS))
    return {lv.sku: lv.available_to_sell for lv in r.levels}


def test_ats_under_concurrent_intake_from_two_channels(client, server):
    add_warehouses(client, WAREHOUSES)
    rng = random.Random(11)
    for w in WAREHOUSES:
        for s in SKUS:
            client.set_stock(w, s, rng.randint(20, 60))
    for cid, spec in CHANNELS.items():
        client.channels.UpsertChannel(ch.UpsertChannelRequest(channel=ch.Channel(
            id=cid, name=cid, kind=ch.CHANNEL_KIND_SHOPIFY if cid == "shop" else ch.CHANNEL_KIND_POS,
            **spec)))
    assert _ats(client, "shop") == _formula(client, "shop")

    stop = threading.Event()
    seen_negative: list[tuple[str, str, int]] = []
    reads = [0]

    def watch() -> None:
        with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as c:
            while not stop.is_set():
                for cid in CHANNELS:
                    for s, v in _ats(c, cid).items():
                        if v < 0:
                            seen_negative.append((cid, s, v))
                reads[0] += 1

    def place(cid: str, seed: int) -> None:
        r = random.Random(seed)
        with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as c:
            for _ in range(8):
                reqs = [c.order_request([(r.choice(SKUS), r.randint(1, 4))], postal_code="50010",
                                        channel=cid) for _ in range(25)]
                c.batch_place_orders(reqs)

    watcher = threading.Thread(target=watch)
    watcher.start()
    placers = [threading.Thread(target=place, args=(cid, k)) for k, cid in
               enumerate(["shop", "pos", "shop", "pos"])]
    for t in placers:
        t.start()
    for t in placers:
        t.join()
    stop.set()
    watcher.join()

    assert reads[0] > 0 and not seen_negative
    for cid in CHANNELS:
        assert _ats(client, cid) == _formula(client, cid), cid
    # the load reserved stock in every warehouse, so the figures moved while they were read
    listed = client.inventory.ListStock(inv.ListStockRequest(page_size=100)).levels
    assert {lv.warehouse_id for lv in listed if lv.reserved > 0} == set(WAREHOUSES)
    audit_clean(server)
