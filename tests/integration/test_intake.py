"""Order intake end to end on the real server: zone skipping on real US ZIP codes, splits,
backorders, partial orders, disabled warehouses; BatchPlaceOrders and the PlaceOrders stream;
sequential idempotency; cancel (exactly-once stock release) and ReleaseHold."""
from __future__ import annotations

import time

import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine import geo
from oms.v1 import common_pb2 as c
from tests.helpers import EXHAUSTED, INVALID, NOT_FOUND, PRECONDITION, add_warehouses, audit_clean, levels
from tests.conftest import redis_client

pytestmark = pytest.mark.timeout(90)

req = OmsClient.order_request

# Real metro ZIPs of the warehouses and an Iowa ship-to (Ames).
WAREHOUSES = {"DSM": "50309", "CHI": "60601", "DEN": "80202", "ATL": "30303", "DAL": "75201"}
AMES = "50010"


def coords(zip5: str) -> tuple[float, float]:
    p = geo.geocode_us_zip(zip5)
    assert p is not None, zip5
    return p


def ranked_from(zip5: str) -> list[str]:
    """Warehouse ids by great-circle distance from a ZIP, nearest first (engine.geo)."""
    lat, lon = coords(zip5)
    return sorted(WAREHOUSES, key=lambda w: geo.haversine_km(lat, lon, *coords(WAREHOUSES[w])))


def dist_km(zip5: str, wid: str) -> float:
    return geo.haversine_km(*coords(zip5), *coords(WAREHOUSES[wid]))


def reserved(client, sku: str) -> dict[str, int]:
    return {w: v[1] for w, v in levels(client, sku).items()}


def alloc_map(order: c.Order) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for a in order.allocations:
        out[(a.sku, a.warehouse_id)] = out.get((a.sku, a.warehouse_id), 0) + a.quantity
    return out


@pytest.fixture()
def network(client):
    return add_warehouses(client, WAREHOUSES)


def stock(client, sku: str, **per_wh: int) -> None:
    for wid, n in per_wh.items():
        client.set_stock(wid, sku, n)


# ---- zone skipping ------------------------------------------------------------------------

def test_geography_assumptions():
    """The ranking the next tests rely on, computed with engine.geo, not assumed."""
    order = ranked_from(AMES)
    assert order[0] == "DSM"
    assert dist_km(AMES, "DSM") < 80  # Ames is ~50 km north of Des Moines
    assert order[1] == "CHI"


def test_iowa_order_ships_from_des_moines(network, server):
    client = network
    stock(client, "SKU-A", DSM=5, CHI=5, DEN=5, ATL=5, DAL=5)
    o = client.place_order(req([("SKU-A", 2)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-A", "DSM"): 2}
    (a,) = o.allocations
    assert a.distance_km == pytest.approx(dist_km(AMES, "DSM"), abs=0.01)
    assert 20 < a.distance_km < 80
    # ship-to coordinates were geocoded from the ZIP
    lat, lon = coords(AMES)
    assert o.ship_to.latitude == pytest.approx(lat) and o.ship_to.longitude == pytest.approx(lon)
    assert reserved(client, "SKU-A") == {"DSM": 2, "CHI": 0, "DEN": 0, "ATL": 0, "DAL": 0}
    audit_clean(server)


def test_iowa_order_ships_from_next_nearest_when_des_moines_lacks_stock(network, server):
    client = network
    nxt = ranked_from(AMES)[1]
    stock(client, "SKU-A", DSM=1, CHI=5, DEN=5, ATL=5, DAL=5)
    o = client.place_order(req([("SKU-A", 2)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-A", nxt): 2}  # whole order from one warehouse, no split
    assert o.allocations[0].distance_km == pytest.approx(dist_km(AMES, nxt), abs=0.01)
    assert reserved(client, "SKU-A")["DSM"] == 0
    audit_clean(server)


def test_explicit_coordinates_are_used(network, server):
    client = network
    stock(client, "SKU-A", DSM=5, DEN=5)
    # Boulder, CO by coordinates: Denver is nearest
    o = client.place_order(req([("SKU-A", 1)], latitude=40.015, longitude=-105.2705))
    assert alloc_map(o) == {("SKU-A", "DEN"): 1}
    d = geo.haversine_km(40.015, -105.2705, *coords(WAREHOUSES["DEN"]))
    assert o.allocations[0].distance_km == pytest.approx(d, abs=0.01)
    audit_clean(server)


def test_zip_plus_four_is_geocoded_like_its_zip(network, server):
    client = network
    stock(client, "SKU-A", DSM=5, CHI=5)
    o = client.place_order(req([("SKU-A", 1)], postal_code="50010-1234"))
    assert alloc_map(o) == {("SKU-A", "DSM"): 1}
    assert o.allocations[0].distance_km == pytest.approx(dist_km(AMES, "DSM"), abs=0.01)
    audit_clean(server)


def test_skips_to_farther_warehouse_that_ships_everything(network, server):
    """One warehouse that can ship the whole order beats splitting over nearer ones."""
    client = network
    stock(client, "SKU-X", DSM=2, CHI=0, DEN=3, DAL=3)
    stock(client, "SKU-Y", DSM=0, CHI=2, DEN=0, DAL=3)
    o = client.place_order(req([("SKU-X", 2), ("SKU-Y", 2)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-X", "DAL"): 2, ("SKU-Y", "DAL"): 2}
    audit_clean(server)


def test_split_over_fewest_warehouses_nearest_first(network, server):
    client = network
    # 10 units: no single warehouse has them; pairs that cover: DSM+DEN (4+7), CHI+DEN (3+7).
    # Fewest warehouses = 2; smaller total distance from Ames = DSM+DEN; nearest (DSM) first.
    stock(client, "SKU-S", DSM=4, CHI=3, DEN=7)
    assert dist_km(AMES, "DSM") + dist_km(AMES, "DEN") < dist_km(AMES, "CHI") + dist_km(AMES, "DEN")
    o = client.place_order(req([("SKU-S", 10)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-S", "DSM"): 4, ("SKU-S", "DEN"): 6}
    for a in o.allocations:
        assert a.distance_km == pytest.approx(dist_km(AMES, a.warehouse_id), abs=0.01)
    assert reserved(client, "SKU-S") == {"DSM": 4, "CHI": 0, "DEN": 6}
    # GetOrder returns the same allocation
    assert alloc_map(client.get_order(o.id)) == alloc_map(o)
    audit_clean(server)


def test_split_line_taken_whole_from_a_member_when_possible(network, server):
    client = network
    # X: DSM 2 / CHI 5; Y: CHI 0 / DSM 3. No single warehouse has X=3 and Y=3; {DSM, CHI}
    # covers. X (3) is taken whole from CHI (DSM has only 2), Y whole from DSM.
    stock(client, "SKU-X", DSM=2, CHI=5)
    stock(client, "SKU-Y", DSM=3, CHI=0)
    o = client.place_order(req([("SKU-X", 3), ("SKU-Y", 3)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-X", "CHI"): 3, ("SKU-Y", "DSM"): 3}
    audit_clean(server)


def test_lines_of_the_same_sku_add_up(network, server):
    client = network
    # 2 + 3 of one sku: DSM (4) cannot ship the order whole, CHI (5) can.
    stock(client, "SKU-A", DSM=4, CHI=5)
    o = client.place_order(req([("SKU-A", 2), ("SKU-A", 3)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-A", "CHI"): 5}
    assert reserved(client, "SKU-A") == {"DSM": 0, "CHI": 5}
    audit_clean(server)


def test_network_cannot_ship_is_backordered_with_nothing_reserved(network, server):
    client = network
    stock(client, "SKU-B", DSM=2, CHI=2, DEN=1)
    before = levels(client, "SKU-B")
    o = client.place_order(req([("SKU-B", 6)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_BACKORDERED
    assert list(o.allocations) == []
    assert levels(client, "SKU-B") == before
    assert client.get_order(o.id).status == c.ORDER_STATUS_BACKORDERED
    # an order with one line short is backordered as a whole
    stock(client, "SKU-C", DSM=10)
    o2 = client.place_order(req([("SKU-C", 1), ("SKU-B", 6)], postal_code=AMES))
    assert o2.status == c.ORDER_STATUS_BACKORDERED
    assert reserved(client, "SKU-C") == {"DSM": 0}
    audit_clean(server)


def test_allow_partial_reserves_what_exists(network, server):
    client = network
    stock(client, "SKU-P", DSM=3, CHI=2)
    o = client.place_order(req([("SKU-P", 10)], postal_code=AMES, allow_partial=True))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert alloc_map(o) == {("SKU-P", "DSM"): 3, ("SKU-P", "CHI"): 2}
    assert levels(client, "SKU-P") == {"DSM": (3, 3, 0), "CHI": (2, 2, 0)}
    assert client.get_stock("SKU-P").total_available == 0
    audit_clean(server)


def test_allow_partial_with_nothing_in_stock_is_backordered(network, server):
    client = network
    stock(client, "SKU-P", DSM=0)
    o = client.place_order(req([("SKU-P", 2)], postal_code=AMES, allow_partial=True))
    assert o.status == c.ORDER_STATUS_BACKORDERED
    assert list(o.allocations) == []
    assert reserved(client, "SKU-P") == {"DSM": 0}
    audit_clean(server)


def test_disabled_warehouse_gets_no_new_allocations(network, server):
    client = network
    stock(client, "SKU-A", DSM=5, CHI=5)
    client.upsert_warehouse("DSM", "DSM", postal_code="50309", disabled=True)
    o = client.place_order(req([("SKU-A", 1)], postal_code=AMES))
    assert alloc_map(o) == {("SKU-A", "CHI"): 1}
    # batch path too
    res = client.batch_place_orders([req([("SKU-A", 1)], postal_code=AMES) for _ in range(3)])
    assert all(alloc_map(r) == {("SKU-A", "CHI"): 1} for r in res)
    # only the disabled warehouse holds stock: backordered
    stock(client, "SKU-D", DSM=5)
    o = client.place_order(req([("SKU-D", 1)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_BACKORDERED
    assert reserved(client, "SKU-D") == {"DSM": 0}
    # enabled again: DSM ships
    client.upsert_warehouse("DSM", "DSM", postal_code="50309", disabled=False)
    o = client.place_order(req([("SKU-A", 1)], postal_code=AMES))
    assert alloc_map(o) == {("SKU-A", "DSM"): 1}
    audit_clean(server)


def test_distances_are_plausible_for_many_zips(network, server):
    client = network
    zips = ["50010", "60614", "80301", "30301", "75001", "52240", "10001", "99501"]
    stock(client, "SKU-A", **{w: 100 for w in WAREHOUSES})
    res = client.batch_place_orders([req([("SKU-A", 1)], postal_code=z) for z in zips])
    for z, o in zip(zips, res):
        assert isinstance(o, c.Order), o
        (a,) = o.allocations
        assert a.warehouse_id == ranked_from(z)[0], z
        assert a.distance_km == pytest.approx(dist_km(z, a.warehouse_id), abs=0.01)
        assert 0 <= a.distance_km < 20_100  # half the Earth's circumference
    audit_clean(server)


# ---- BatchPlaceOrders -------------------------------------------------------------------

def test_batch_results_in_request_order_with_errors(network, server):
    client = network
    stock(client, "SKU-A", DSM=100)
    requests = [
        req([("SKU-A", 1)], postal_code=AMES, customer_id="c0"),
        req([], postal_code=AMES, customer_id="c1"),                       # no lines
        req([("SKU-A", 2)], postal_code=AMES, customer_id="c2"),
        req([("NO-SUCH-SKU", 1)], postal_code=AMES, customer_id="c3"),     # unknown sku
        req([("SKU-A", 0)], postal_code=AMES, customer_id="c4"),           # quantity 0
        req([("SKU-A", 3)], postal_code=AMES, customer_id="c5", channel="pos"),
        req([("SKU-A", 1)], postal_code="00000", customer_id="c6"),        # unknown ZIP
        req([("bad sku!", 1)], postal_code=AMES, customer_id="c7"),        # bad sku chars
        req([("SKU-A", 1)], customer_id="c8"),                             # no ship-to
        req([("SKU-A", 4)], latitude=41.0, longitude=-93.0, customer_id="c9"),
    ]
    res = client.batch_place_orders(requests)
    assert len(res) == len(requests)
    expected = {1: (INVALID, "lines"), 3: (NOT_FOUND, None), 4: (INVALID, "lines[0].quantity"),
                6: (INVALID, "ship_to.postal_code"), 7: (INVALID, "lines[0].sku"),
                8: (INVALID, "ship_to")}
    for i, r in enumerate(res):
        if i in expected:
            code, fld = expected[i]
            assert isinstance(r, ClientError), (i, r)
            assert r.code == code, (i, str(r))
            if code == INVALID:
                fields = [f for f, _ in r.field_violations]
                assert any(f == fld or f.endswith("." + fld) for f in fields), (i, fields)
        else:
            assert isinstance(r, c.Order), (i, r)
            assert r.customer.id == f"c{i}"
            assert r.status == c.ORDER_STATUS_ALLOCATED
    good = [r for r in res if isinstance(r, c.Order)]
    assert len({o.id for o in good}) == 4
    assert res[5].channel == "pos"
    assert sum(sum(ln.quantity for ln in o.lines) for o in good) == 1 + 2 + 3 + 4
    assert levels(client, "SKU-A") == {"DSM": (100, 10, 90)}
    assert len(list(client.iter_orders())) == 4
    audit_clean(server)


def test_batch_over_1000_is_resource_exhausted_and_changes_nothing(network, server):
    client = network
    stock(client, "SKU-A", DSM=5000)
    with pytest.raises(ClientError) as ei:
        client.batch_place_orders([req([("SKU-A", 1)], postal_code=AMES) for _ in range(1001)])
    assert ei.value.code == EXHAUSTED
    assert levels(client, "SKU-A") == {"DSM": (5000, 0, 5000)}
    assert list(client.iter_orders()) == []
    # exactly 1000 is accepted
    res = client.batch_place_orders([req([("SKU-A", 1)], postal_code=AMES) for _ in range(1000)])
    assert len(res) == 1000 and all(isinstance(r, c.Order) for r in res)
    assert len({r.id for r in res}) == 1000
    assert levels(client, "SKU-A") == {"DSM": (5000, 1000, 4000)}
    audit_clean(server)


def test_empty_batch(network):
    assert network.batch_place_orders([]) == []


def test_batch_scarce_stock_is_allocated_in_request_order(network, server):
    client = network
    stock(client, "SKU-H", DSM=3)
    res = client.batch_place_orders([req([("SKU-H", 1)], postal_code=AMES, customer_id=f"c{i}")
                                     for i in range(5)])
    assert [r.customer.id for r in res] == [f"c{i}" for i in range(5)]
    statuses = [r.status for r in res]
    assert statuses.count(c.ORDER_STATUS_ALLOCATED) == 3
    assert statuses.count(c.ORDER_STATUS_BACKORDERED) == 2
    assert levels(client, "SKU-H") == {"DSM": (3, 3, 0)}
    audit_clean(server)


# ---- streaming intake -----------------------------------------------------------------------

def _stream_requests():
    """Good and bad requests, yielded in a few bursts so that the server sees several
    micro-batches (pacing only; nothing is timed)."""
    for i in range(40):
        if i % 7 == 3:
            yield req([("SKU-A", 0)], postal_code=AMES, customer_id=f"c{i}")    # bad
        elif i % 11 == 5:
            yield req([("NOPE", 1)], postal_code=AMES, customer_id=f"c{i}")     # unknown sku
        else:
            yield req([("SKU-A", 1)], postal_code=AMES, customer_id=f"c{i}")
        if i % 10 == 9:
            time.sleep(0.05)


def _expected_stream_outcome(i: int):
    if i % 7 == 3:
        return INVALID
    if i % 11 == 5:
        return NOT_FOUND
    return None


def test_stream_one_result_per_request_in_order(network, server):
    client = network
    stock(client, "SKU-A", DSM=100)
    results = list(client.place_orders_stream(_stream_requests()))
    assert len(results) == 40
    n_good = 0
    for i, r in enumerate(results):
        want = _expected_stream_outcome(i)
        if want is None:
            assert isinstance(r, c.Order), (i, r)
            assert r.customer.id == f"c{i}"
            assert r.status == c.ORDER_STATUS_ALLOCATED
            n_good += 1
        else:
            assert isinstance(r, ClientError), (i, r)
            assert r.code == want, (i, str(r))
            if want == INVALID:
                assert r.field_violations
    assert len({r.id for r in results if isinstance(r, c.Order)}) == n_good
    assert levels(client, "SKU-A") == {"DSM": (100, n_good, 100 - n_good)}
    audit_clean(server)


def test_stream_error_first_does_not_end_stream(network, server):
    client = network
    stock(client, "SKU-A", DSM=10)
    reqs = [req([], postal_code=AMES), req([("SKU-A", 1)], postal_code=AMES),
            req([("SKU-A", 1)]), req([("SKU-A", 2)], postal_code=AMES)]
    results = list(client.place_orders_stream(iter(reqs)))
    assert [type(r) for r in results] == [ClientError, c.Order, ClientError, c.Order]
    assert results[0].code == INVALID and results[2].code == INVALID
    assert levels(client, "SKU-A") == {"DSM": (10, 3, 7)}
    audit_clean(server)


def test_long_stream_spans_many_micro_batches(network, server):
    client = network
    stock(client, "SKU-A", DSM=400)
    n = 700
    reqs = [req([("SKU-A", 1)], postal_code=AMES, customer_id=f"c{i}") if i % 50 != 7
            else req([("SKU-A", -1)], postal_code=AMES, customer_id=f"c{i}") for i in range(n)]
    results = list(client.place_orders_stream(iter(reqs)))
    assert len(results) == n
    for i, r in enumerate(results):
        if i % 50 == 7:
            assert isinstance(r, ClientError) and r.code == INVALID, (i, r)
        else:
            assert isinstance(r, c.Order) and r.customer.id == f"c{i}", (i, r)
    good = [r for r in results if isinstance(r, c.Order)]
    n_alloc = sum(1 for r in good if r.status == c.ORDER_STATUS_ALLOCATED)
    assert n_alloc == min(400, len(good))
    # the first 400 good requests got the stock: allocation follows request order
    assert all(r.status == c.ORDER_STATUS_ALLOCATED for r in good[:400])
    assert levels(client, "SKU-A") == {"DSM": (400, n_alloc, 400 - n_alloc)}
    audit_clean(server)


def test_empty_stream_ends_cleanly(network):
    assert list(network.place_orders_stream(iter([]))) == []


# ---- idempotency (sequential) ------------------------------------------------------------

def test_same_key_twice_returns_same_order_and_reserves_once(network, server):
    client = network
    stock(client, "SKU-A", DSM=10)
    r = req([("SKU-A", 3)], postal_code=AMES, idempotency_key="order-123")
    a = client.place_order(r)
    b = client.place_order(r)
    assert a.id == b.id and b.status == c.ORDER_STATUS_ALLOCATED
    assert b.idempotency_key == "order-123"
    # through the batch and stream paths too
    (c1,) = client.batch_place_orders([r])
    (c2,) = list(client.place_orders_stream(iter([r])))
    assert c1.id == a.id and c2.id == a.id
    # a repeat with a different payload still returns the first result
    d = client.place_order(req([("SKU-A", 5)], postal_code=AMES, idempotency_key="order-123"))
    assert d.id == a.id and alloc_map(d) == {("SKU-A", "DSM"): 3}
    assert levels(client, "SKU-A") == {"DSM": (10, 3, 7)}
    assert [o.id for o in client.iter_orders()] == [a.id]
    audit_clean(server)


def test_a_placed_orders_key_mapping_outlives_its_pending_claim(network, server):
    # placing leaves the claim "pending"; repeats resolve it from the shard mapping, so the
    # mapping must live at least as long as the claims hash that holds the claim
    from oms.server.redis import keys  # noqa: PLC0415

    client = network
    stock(client, "SKU-A", DSM=10)
    a = client.place_order(req([("SKU-A", 1)], postal_code=AMES, idempotency_key="ttl-1"))
    r = redis_client(server.config.redis_url)
    d = keys.digest("ttl-1")
    mapping_ttl = r.ttl(f"{keys.shard(keys.home_of(a.id))}idem:{d}")
    claims = [k for k in r.scan_iter("oms:{i:*}:claims:*") if r.hexists(k, d)]
    # the claim gets the order id off the critical path: pending until then
    v = r.hget(claims[0], d) if len(claims) == 1 else None
    assert v is not None and (v == a.id.encode() or v.startswith(b"pending:"))
    assert mapping_ttl >= r.ttl(claims[0]) > 0
    assert client.place_order(req([("SKU-A", 1)], postal_code=AMES, idempotency_key="ttl-1")).id == a.id


def test_same_key_of_a_backordered_order(network, server):
    client = network
    stock(client, "SKU-A", DSM=1)
    r = req([("SKU-A", 3)], postal_code=AMES, idempotency_key="bo-1")
    a = client.place_order(r)
    assert a.status == c.ORDER_STATUS_BACKORDERED
    client.set_stock("DSM", "SKU-A", 10)
    b = client.place_order(r)
    assert b.id == a.id and b.status == c.ORDER_STATUS_BACKORDERED
    assert reserved(client, "SKU-A") == {"DSM": 0}
    audit_clean(server)


def test_rejected_request_does_not_burn_its_key(network, server):
    client = network
    stock(client, "SKU-A", DSM=10)
    with pytest.raises(ClientError) as ei:
        client.place_order(req([("NOPE", 1)], postal_code=AMES, idempotency_key="k-1"))
    assert ei.value.code == NOT_FOUND
    o = client.place_order(req([("SKU-A", 1)], postal_code=AMES, idempotency_key="k-1"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert reserved(client, "SKU-A") == {"DSM": 1}
    audit_clean(server)


# ---- cancel ------------------------------------------------------------------------------

def test_cancel_twice_releases_stock_once(network, server):
    client = network
    stock(client, "SKU-A", DSM=10)
    a = client.place_order(req([("SKU-A", 2)], postal_code=AMES))
    b = client.place_order(req([("SKU-A", 3)], postal_code=AMES))
    assert levels(client, "SKU-A") == {"DSM": (10, 5, 5)}
    first = client.cancel_order(a.id, "customer asked")
    assert first.status == c.ORDER_STATUS_CANCELLED
    assert levels(client, "SKU-A") == {"DSM": (10, 3, 7)}
    second = client.cancel_order(a.id, "again")
    assert second.id == a.id and second.status == c.ORDER_STATUS_CANCELLED
    assert levels(client, "SKU-A") == {"DSM": (10, 3, 7)}  # not released twice
    assert client.get_order(b.id).status == c.ORDER_STATUS_ALLOCATED
    assert client.get_order(a.id).status == c.ORDER_STATUS_CANCELLED
    audit_clean(server)


def test_cancel_split_order_releases_every_warehouse(network, server):
    client = network
    stock(client, "SKU-S", DSM=4, CHI=3, DEN=7)
    o = client.place_order(req([("SKU-S", 10)], postal_code=AMES))
    assert len({a.warehouse_id for a in o.allocations}) == 2
    # another order holding stock in the far warehouse, to catch a double release
    other = client.place_order(req([("SKU-S", 1)], postal_code="80301"))
    assert alloc_map(other) == {("SKU-S", "DEN"): 1}
    assert reserved(client, "SKU-S") == {"DSM": 4, "CHI": 0, "DEN": 7}
    x = client.cancel_order(o.id)
    assert x.status == c.ORDER_STATUS_CANCELLED
    assert reserved(client, "SKU-S") == {"DSM": 0, "CHI": 0, "DEN": 1}
    client.cancel_order(o.id)
    assert reserved(client, "SKU-S") == {"DSM": 0, "CHI": 0, "DEN": 1}
    audit_clean(server)


def test_cancel_backordered_order(network, server):
    client = network
    stock(client, "SKU-B", DSM=1)
    o = client.place_order(req([("SKU-B", 5)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_BACKORDERED
    x = client.cancel_order(o.id, "no longer wanted")
    assert x.status == c.ORDER_STATUS_CANCELLED
    assert levels(client, "SKU-B") == {"DSM": (1, 0, 1)}
    assert client.get_order(o.id).status == c.ORDER_STATUS_CANCELLED
    audit_clean(server)


def test_cancelled_stock_is_available_again(network, server):
    client = network
    stock(client, "SKU-H", DSM=1)
    a = client.place_order(req([("SKU-H", 1)], postal_code=AMES))
    assert client.place_order(req([("SKU-H", 1)], postal_code=AMES)).status == \
        c.ORDER_STATUS_BACKORDERED
    client.cancel_order(a.id)
    b = client.place_order(req([("SKU-H", 1)], postal_code=AMES))
    assert b.status == c.ORDER_STATUS_ALLOCATED
    assert levels(client, "SKU-H") == {"DSM": (1, 1, 0)}
    audit_clean(server)


# ---- ReleaseHold -------------------------------------------------------------------------

def test_release_hold_clears_fraud_hold(network, server):
    client = network
    stock(client, "SKU-A", DSM=5)
    o = client.place_order(req([("SKU-A", 1)], postal_code=AMES))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert o.hold_until > o.created_at  # the server runs with a fraud hold
    r = client.release_hold(o.id, "reviewed")
    assert r.id == o.id and r.status == c.ORDER_STATUS_ALLOCATED
    assert r.hold_until == 0
    assert client.get_order(o.id).hold_until == 0
    assert alloc_map(r) == alloc_map(o)
    assert levels(client, "SKU-A") == {"DSM": (5, 1, 4)}
    audit_clean(server)


def test_release_hold_on_cancelled_order_is_failed_precondition(network, server):
    client = network
    stock(client, "SKU-A", DSM=5)
    o = client.place_order(req([("SKU-A", 1)], postal_code=AMES))
    client.cancel_order(o.id)
    with pytest.raises(ClientError) as ei:
        client.release_hold(o.id)
    assert ei.value.code == PRECONDITION
    got = client.get_order(o.id)
    assert got.status == c.ORDER_STATUS_CANCELLED
    assert levels(client, "SKU-A") == {"DSM": (5, 0, 5)}
    audit_clean(server)
