"""Validation at the edge (issue 11, findings 1, 6, 7, 8, 11, 13, 18): every identifier is
full-matched against an ASCII pattern, every string has a length limit, every number a finite
range, money and order totals cannot overflow, and error messages quote only a short prefix.
A rejected request changes nothing and the audit stays clean."""
from __future__ import annotations

import math

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import inventory_pb2 as inv
from oms.v1 import orders_pb2 as o
from oms.v1 import returns_pb2 as rt
from oms.server import pb_convert
from oms.server import validation as val
from oms.server.redis.keys import Shard
from tests.helpers import INVALID, NOT_FOUND, audit_clean

pytestmark = pytest.mark.timeout(120)

req = OmsClient.order_request
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED}
AMES = "50010"
# Room for the fixed text of a message plus a few quoted prefixes; far below any bad value here.
MAX_MESSAGE = 1000
SUFFIXES = ["\n", "\r", "\x00", "\r\n", " "]
SUFFIX_IDS = ["LF", "CR", "NUL", "CRLF", "space"]


@pytest.fixture()
def net(client, server):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=10,
                            slots_per_aisle=40)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    client.set_stock("DSM", "SKU-1", 50, "A01-S002")
    client.set_stock("CHI", "SKU-1", 50, "A01-S002")
    existing = client.place_order(req([("SKU-1", 2)], postal_code=AMES))
    assert existing.status == c.ORDER_STATUS_ALLOCATED
    return client


def snapshot(client):
    levels = []
    for sku in ("SKU-1", "NL"):
        try:
            st = client.get_stock(sku)
        except ClientError:
            continue
        levels += sorted((s.warehouse_id, s.sku, s.on_hand, s.reserved, s.location)
                         for s in st.levels)
    orders = sorted((x.id, x.status, x.updated_at) for x in client.iter_orders())
    return levels, orders, sorted(w.SerializeToString() for w in client.list_warehouses())


def rejected(call, *codes):
    with pytest.raises(ClientError) as ei:
        call()
    err = ei.value
    assert err.code not in NEVER or err.code in codes, str(err)
    assert err.code in (codes or (INVALID,)), str(err)
    assert len(err.message) < MAX_MESSAGE
    assert sum(len(d) for _, d in err.field_violations) < MAX_MESSAGE
    return err


def fields(err):
    return [fl for fl, _ in err.field_violations]


# ---- identifiers: full match, ASCII -----------------------------------------------------

def _id_calls(bad_sku, bad_wh, bad_channel, bad_oid, bad_loc):
    return [
        ("SetStock sku", lambda cl: cl.set_stock("DSM", bad_sku, 5), "sku"),
        ("GetStock sku", lambda cl: cl.get_stock(bad_sku), "sku"),
        ("PlaceOrder sku", lambda cl: cl.place_order(req([(bad_sku, 1)], postal_code=AMES)),
         "lines[0].sku"),
        ("UpsertProduct sku", lambda cl: cl.upsert_product(bad_sku, "x"), "product.sku"),
        ("SetStock warehouse", lambda cl: cl.set_stock(bad_wh, "SKU-1", 5), "warehouse_id"),
        ("UpsertWarehouse id", lambda cl: cl.upsert_warehouse(bad_wh, postal_code="50309"),
         "warehouse.id"),
        ("PlaceOrder channel",
         lambda cl: cl.place_order(req([("SKU-1", 1)], postal_code=AMES, channel=bad_channel)),
         "channel"),
        ("ListOrders channel", lambda cl: cl.list_orders(channel=bad_channel), "channel"),
        ("SetStock location", lambda cl: cl.set_stock("DSM", "SKU-1", 50, bad_loc), "location"),
        ("GetOrder id", lambda cl: cl.get_order(bad_oid), None),
        ("CancelOrder id", lambda cl: cl.cancel_order(bad_oid), None),
    ]


@pytest.mark.parametrize("suffix", SUFFIXES, ids=SUFFIX_IDS)
def test_identifiers_with_a_trailing_control_character_are_rejected(net, server, suffix):
    client = net
    (existing,) = list(client.iter_orders())
    before = snapshot(client)
    for name, call, field in _id_calls("SKU-1" + suffix, "DSM" + suffix, "web" + suffix,
                                       existing.id + suffix, "A01-S003" + suffix):
        err = rejected(lambda: call(client), INVALID, NOT_FOUND)
        if field is not None:
            assert err.code == INVALID and field in fields(err), (name, str(err))
    assert snapshot(client) == before
    assert client.get_order(existing.id).status == c.ORDER_STATUS_ALLOCATED
    audit_clean(server)


@pytest.mark.parametrize("loc", ["A3-S17", "A03-S17", "A003-S017", "A03-S0017", " A03-S017",
                                 "A\u0660\u0663-S\u0660\u0661\u0667", "A\u0663-S\u0661\u0667",
                                 "A０３-S０１７", "A03-S01\u0667", "A+3-S017", "A-3-S017",
                                 "a03-s017", "A03_S017"])
def test_loose_bin_locations_are_rejected(net, server, loc):
    client = net
    before = snapshot(client)
    err = rejected(lambda: client.set_stock("DSM", "SKU-1", 50, loc))
    assert "location" in fields(err)
    assert snapshot(client) == before


def test_non_ascii_digits_in_identifiers_are_rejected(net, server):
    client = net
    before = snapshot(client)
    for call in (lambda: client.set_stock("DSM", "SKU-\u0661", 5),
                 lambda: client.set_stock("W\u0661", "SKU-1", 5),
                 lambda: client.upsert_warehouse("W\u00b2", postal_code="50309"),
                 lambda: client.place_order(req([("SKU-1", 1)], postal_code="5001\u0660")),
                 lambda: client.list_orders(channel="web\u0661")):
        rejected(call)
    rejected(lambda: client.get_order("DSM.\u0661\u0662"), INVALID, NOT_FOUND)
    assert snapshot(client) == before


def test_a_sku_with_a_newline_cannot_drive_reserved_negative(net, server):
    """The original oversell: "NL\\n" shared reservation records with "NL" (split on
    whitespace), a cancel drove reserved[NL] to -2 and SetStock then oversold."""
    client = net
    client.set_stock("DSM", "NL", 5, "A02-S001")
    rejected(lambda: client.set_stock("DSM", "NL\n", 5, "A02-S002"))
    bad = rejected(lambda: client.place_order(req([("NL", 2), ("NL\n", 2)], postal_code=AMES)))
    assert "lines[1].sku" in fields(bad)
    batch = client.batch_place_orders([req([("NL\n", 2)], postal_code=AMES),
                                       req([("NL", 2)], postal_code=AMES)])
    assert isinstance(batch[0], ClientError) and batch[0].code == INVALID
    assert isinstance(batch[1], c.Order)
    levels = {s.warehouse_id: s for s in client.get_stock("NL").levels}
    assert (levels["DSM"].on_hand, levels["DSM"].reserved) == (5, 2)
    client.cancel_order(batch[1].id)
    client.set_stock("DSM", "NL", 5)
    for s in client.get_stock("NL").levels:
        assert s.reserved >= 0 and s.available <= s.on_hand
    o2 = client.place_order(req([("NL", 5)], postal_code=AMES))
    assert o2.status == c.ORDER_STATUS_ALLOCATED
    rejected(lambda: client.set_stock("DSM", "NL\r", 0))
    levels = {s.warehouse_id: s for s in client.get_stock("NL").levels}
    assert (levels["DSM"].on_hand, levels["DSM"].reserved) == (5, 5)
    audit_clean(server)


def test_audit_reports_negative_and_mismatched_reservations(net, server):
    audit_clean(server)
    sh = Shard("DSM")
    r = server.store.r
    server.run(r.hset(sh.reserved, "SKU-1", -2))
    problems = server.run(server.store.audit())
    assert any("negative" in p and "SKU-1" in p for p in problems), problems
    assert any("sum of reservations" in p for p in problems), problems
    server.run(r.hset(sh.reserved, "SKU-1", 2))
    audit_clean(server)
    # A record naming one sku twice: both entries count.
    (oid,) = [x.decode() for x in server.run(r.hkeys(sh.resv))]
    rec = server.run(r.hget(sh.resv, oid)).decode()
    server.run(r.hset(sh.resv, oid, rec + " " + " ".join(rec.split()[1:])))
    problems = server.run(server.store.audit())
    assert any("reserved 2 != sum of reservations 4" in p for p in problems), problems
    server.run(r.hset(sh.resv, oid, rec))
    audit_clean(server)


# ---- string lengths -----------------------------------------------------------------------

def _place(**kw):
    return lambda n: (lambda cl: cl.place_order(_order(**{k: v * n for k, v in kw.items()})))


def _order(customer_id="", email="", name="", line1="", city="", region="", country="US",
           idempotency_key="", payment_token=""):
    r = req([("SKU-1", 1)], postal_code=AMES, customer_id=customer_id, email=email,
            idempotency_key=idempotency_key, country=country or "US")
    r.customer.name = name
    r.ship_to.name = name
    r.ship_to.line1, r.ship_to.city, r.ship_to.region = line1, city, region
    r.payment_token = payment_token
    return r


LENGTHS = [
    ("customer.id", val.TEXT_LIMITS["customer.id"], _place(customer_id="c")),
    ("customer.email", val.TEXT_LIMITS["customer.email"], _place(email="e")),
    ("customer.name", val.TEXT_LIMITS["customer.name"], _place(name="\u00e9")),
    ("ship_to.line1", val.TEXT_LIMITS["address.line1"], _place(line1="l")),
    ("ship_to.city", val.TEXT_LIMITS["address.city"], _place(city="c")),
    ("ship_to.region", val.TEXT_LIMITS["address.region"], _place(region="r")),
    ("idempotency_key", val.MAX_KEY_LEN, _place(idempotency_key="k")),
    ("sku", 64, lambda n: (lambda cl: cl.get_stock("S" * n))),
    ("warehouse_id", 32, lambda n: (lambda cl: cl.set_stock("W" * n, "SKU-1", 1))),
    ("channel", 32, lambda n: (lambda cl: cl.list_orders(channel="c" * n))),
    ("warehouse.name", val.TEXT_LIMITS["warehouse.name"],
     lambda n: (lambda cl: cl.upsert_warehouse("NEW", "n" * n, postal_code="50309"))),
    ("product.name", val.TEXT_LIMITS["product.name"],
     lambda n: (lambda cl: cl.upsert_product("P-1", "n" * n))),
    ("reason", val.TEXT_LIMITS["reason"],
     lambda n: (lambda cl: cl.cancel_order("DSM.00000000000deadbeef000001", "r" * n))),
    ("location", val.TEXT_LIMITS["tracking.location"],
     lambda n: (lambda cl: cl.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
         tracking_number="OM0000000000000", event_id="e1", type="IN_TRANSIT",
         location="l" * n)))),
    ("event_id", val.MAX_KEY_LEN,
     lambda n: (lambda cl: cl.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
         tracking_number="OM0000000000000", event_id="e" * n, type="IN_TRANSIT")))),
]


@pytest.mark.parametrize("field, limit, make", LENGTHS, ids=[x[0] for x in LENGTHS])
def test_every_string_class_has_a_length_limit(net, server, field, limit, make):
    client = net
    try:  # at the limit: accepted by validation (it may still name nothing: NOT_FOUND)
        make(limit)(client)
    except ClientError as e:
        assert e.code != INVALID and e.code not in NEVER, str(e)
    before = snapshot(client)
    err = rejected(lambda: make(limit + 1)(client))
    assert any(fl == field or fl.endswith("." + field) for fl in fields(err)), fields(err)
    # far over the limit (and over gRPC's 16 KB metadata limit, were it echoed), under the
    # transport's 64 KiB request cap
    err = rejected(lambda: make(10_000)(client))
    assert snapshot(client) == before


def test_control_characters_in_free_text_are_rejected(net, server):
    client = net
    before = snapshot(client)
    for kw in ({"name": "Ann\x00"}, {"line1": "1 Main St\n"}, {"city": "Ames\x1b[31m"},
               {"email": "a@b.c\r\n"}):
        rejected(lambda: client.place_order(_order(**kw)))
    # Unicode text is fine.
    ok = client.place_order(_order(name="Zoë Ångström 张伟", line1="Straße 1", city="Zürich"))
    assert ok.customer.name == "Zoë Ångström 张伟"
    assert len(snapshot(client)[1]) == len(before[1]) + 1


def test_a_huge_postal_code_is_rejected_before_the_geocode_cache(net, server):
    client = net
    before = snapshot(client)
    size = pb_convert._geocode.cache_info().currsize
    huge = "9" * (1 << 20)
    # A batch may carry 1 MiB in one order (the transport caps the whole batch): validation
    # itself must refuse it, before the geocoder and its cache.
    batch = [req([("SKU-1", 1)], postal_code=huge + str(i)) for i in range(3)]
    batch.append(req([("SKU-1", 1)], postal_code=AMES))
    batch.append(_order(name="n" * (1 << 20)))
    res = client.batch_place_orders(batch)
    for r in res[:3]:
        assert isinstance(r, ClientError) and r.code == INVALID, r
        assert "ship_to.postal_code" in fields(r) and len(r.message) < MAX_MESSAGE
    assert isinstance(res[3], c.Order)
    assert isinstance(res[4], ClientError) and res[4].code == INVALID
    assert "customer.name" in fields(res[4])
    assert pb_convert._geocode.cache_info().currsize <= size + 1  # AMES at most
    # Unary: refused by the transport's size cap or by validation, never stored or cached.
    rejected(lambda: client.place_order(req([("SKU-1", 1)], postal_code=huge)),
             INVALID, grpc.StatusCode.RESOURCE_EXHAUSTED)
    for pc in ("9" * 17, "9" * 60_000):
        err = rejected(lambda: client.place_order(req([("SKU-1", 1)], postal_code=pc)))
        assert "ship_to.postal_code" in fields(err)
        err = rejected(lambda: client.upsert_warehouse("BIG", postal_code=pc))
        assert "warehouse.postal_code" in fields(err)
    assert pb_convert._geocode.cache_info().currsize <= size + 1
    assert len(snapshot(client)[1]) == len(before[1]) + 1


# ---- numbers ------------------------------------------------------------------------------

def _shipped_order(client):
    client.upsert_product("MUG", "Mug", unit_price_cents=1500, weight_g=400, length_mm=120,
                          width_mm=100, height_mm=100)
    client.set_stock("DSM", "MUG", 10, "A01-S003")
    order = client.place_order(req([("MUG", 1, 1500)], postal_code=AMES))
    try:
        client.release_hold(order.id)
    except ClientError:
        pass
    wave = client.plan_wave("DSM", max_orders=10)
    assert order.id in [x for b in wave.batches for x in b.order_ids]
    client.confirm_pick(order.id)
    client.pack_order(order.id)
    shipped = client.ship_order(order.id)
    assert shipped.status == c.ORDER_STATUS_SHIPPED
    return shipped


@pytest.mark.parametrize("occurred_at", [2**63 - 1, 9_300_000_000_000_000, 4_102_444_801,
                                         -1, -(2**63), 946_684_799])
def test_tracking_time_out_of_range_is_rejected_and_reads_keep_working(net, server, occurred_at):
    client = net
    shipped = _shipped_order(client)
    tn = shipped.shipments[0].tracking_number
    before = client.get_order(shipped.id)
    err = rejected(lambda: client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e1", type="IN_TRANSIT", occurred_at=occurred_at)))
    assert "occurred_at" in fields(err)
    assert client.get_order(shipped.id) == before
    assert shipped.id in [x.id for x in client.iter_orders()]
    ok = client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id="e2", type="IN_TRANSIT", occurred_at=1_750_000_000))
    assert ok.shipments[0].status == "IN_TRANSIT"
    assert client.get_order(shipped.id).id == shipped.id
    audit_clean(server)


def test_replenishment_numbers_out_of_range_are_rejected(net, server):
    client = net
    inv_ = client.inventory
    for point in (2**63 - 1, val.MAX_STOCK + 1, -1):
        err = rejected(lambda: inv_.SetReplenishmentPolicy(inv.SetReplenishmentPolicyRequest(
            policy=inv.ReplenishmentPolicy(warehouse_id="DSM", sku="SKU-1", reorder_point=point,
                                           lead_time_days=7))))
        assert "policy.reorder_point" in fields(err)
    for lead in (math.nan, math.inf, -1.0, 0.0, 366.0):
        err = rejected(lambda: inv_.SetReplenishmentPolicy(inv.SetReplenishmentPolicyRequest(
            policy=inv.ReplenishmentPolicy(warehouse_id="DSM", sku="SKU-1", reorder_point=5,
                                           lead_time_days=lead))))
        assert "policy.lead_time_days" in fields(err)
    for window in (1e-300, 1e-3, math.nan, math.inf, -math.inf, -1.0, 366.0, 1e308):
        err = rejected(lambda: inv_.SuggestReplenishment(inv.SuggestReplenishmentRequest(
            window_days=window)))
        assert "window_days" in fields(err)
    inv_.SetReplenishmentPolicy(inv.SetReplenishmentPolicyRequest(policy=inv.ReplenishmentPolicy(
        warehouse_id="DSM", sku="SKU-1", reorder_point=val.MAX_STOCK, lead_time_days=7)))
    out = inv_.SuggestReplenishment(inv.SuggestReplenishmentRequest(window_days=1 / 24,
                                                                     include_zero=True))
    assert any(s.sku == "SKU-1" for s in out.suggestions)


@pytest.mark.parametrize("layout", [
    {"slot_length_m": math.inf}, {"slot_length_m": 1e308}, {"slot_length_m": math.nan},
    {"slot_length_m": -1.0}, {"aisle_spacing_m": 1e308}, {"aisle_spacing_m": -math.inf},
    {"aisle_spacing_m": math.nan}, {"aisles": 101}, {"slots_per_aisle": 1001},
    {"aisles": -1}, {"aisles": 2**31 - 1},
])
def test_extreme_layouts_are_rejected(net, server, layout):
    client = net
    before = snapshot(client)
    kw = {"aisles": 10, "slots_per_aisle": 40, "slot_length_m": 1.0, "aisle_spacing_m": 3.0}
    kw.update(layout)
    err = rejected(lambda: client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", **kw))
    assert "warehouse.layout" in fields(err)
    assert snapshot(client) == before
    client.plan_wave("DSM")  # the stored layout is untouched and usable


@pytest.mark.parametrize("lat, lon", [(math.nan, 1.0), (1.0, math.inf), (91.0, 1.0),
                                      (1.0, -180.5)])
def test_warehouse_coordinates_out_of_range_are_rejected(net, server, lat, lon):
    rejected(lambda: net.upsert_warehouse("NEW", latitude=lat, longitude=lon))


def test_reallocate_and_wave_ranges(net, server):
    client = net
    fl = client.fulfillment
    for budget in (math.nan, math.inf, -1.0, 1e308, val.MAX_TIME_BUDGET_S + 1):
        err = rejected(lambda: fl.Reallocate(f.ReallocateRequest(time_budget_s=budget)))
        assert "time_budget_s" in fields(err)
    rejected(lambda: fl.Reallocate(f.ReallocateRequest(max_orders=-1)))
    fl.Reallocate(f.ReallocateRequest(time_budget_s=0.5, max_orders=10))
    for kw in ({"max_orders": -1}, {"max_orders": 2**31 - 1}, {"batch_max_orders": -5},
               {"batch_max_orders": 10**6}, {"batch_max_items": -1},
               {"batch_max_items": 2**31 - 1}):
        err = rejected(lambda: fl.PlanWave(f.PlanWaveRequest(warehouse_id="DSM", **kw)))
        assert set(kw) & set(fields(err))
    rejected(lambda: fl.ListShipmentExceptions(f.ListShipmentExceptionsRequest(limit=-1)))
    rejected(lambda: client.list_orders(status=99))
    rejected(lambda: client.list_orders(status=-1))
    rejected(lambda: client.list_orders(page_token="ab" * 40))


def test_return_numbers_and_ids(net, server):
    client = net
    rs = client.returns
    (existing,) = list(client.iter_orders())
    err = rejected(lambda: rs.RequestReturn(rt.RequestReturnRequest(
        order_id=existing.id, lines=[rt.ReturnLine(sku="SKU-1", quantity=2**63 - 1)])))
    assert "lines[0].quantity" in fields(err)
    rejected(lambda: rs.RequestReturn(rt.RequestReturnRequest(
        order_id=existing.id, lines=[rt.ReturnLine(sku="SKU-1\n", quantity=1)])))
    rejected(lambda: rs.IssueRefund(rt.IssueRefundRequest(
        return_id=existing.id + "/r1", amount_cents=-1)))
    rejected(lambda: rs.IssueRefund(rt.IssueRefundRequest(
        return_id=existing.id + "/r1", amount_cents=2**63 - 1)))
    rejected(lambda: rs.GetReturn(rt.GetReturnRequest(return_id=existing.id + "/r1\n")),
             NOT_FOUND)
    rejected(lambda: rs.GetReturn(rt.GetReturnRequest(return_id="x" * 20_000)))


# ---- money --------------------------------------------------------------------------------

HUGE_PRICE = [("SKU-1", 1, 2**63 - 1)]
HUGE_TOTAL = [("SKU-1", val.MAX_QTY, val.MAX_MONEY_CENTS)]  # each in range, the product not
MANY_LINES = [("SKU-1", val.MAX_QTY, val.MAX_MONEY_CENTS // 2)] * 2


@pytest.mark.parametrize("lines", [HUGE_PRICE, HUGE_TOTAL, MANY_LINES],
                         ids=["price", "total", "sum"])
def test_money_overflow_fails_alone(net, server, lines):
    client = net
    stock_before = client.get_stock("SKU-1").total_available

    def card(lines, i):
        r = req(lines, postal_code=AMES, customer_id=f"c{i}")
        r.payment_token = "tok_visa"
        return r

    batch = [card([("SKU-1", 1, 1500)], i) for i in range(10)]
    batch[4] = card(lines, 4)
    res = client.batch_place_orders(batch)
    for i, x in enumerate(res):
        if i == 4:
            assert isinstance(x, ClientError) and x.code == INVALID, x
            assert any(fl.startswith("lines") for fl in fields(x)), fields(x)
        else:
            assert isinstance(x, c.Order) and x.status == c.ORDER_STATUS_ALLOCATED, x
    again = client.batch_place_orders(batch)
    assert isinstance(again[4], ClientError) and again[4].code == INVALID
    rejected(lambda: client.place_order(card(lines, 99)))
    streamed = list(client.place_orders_stream(iter([card(lines, 98),
                                                     card([("SKU-1", 1, 1500)], 97)])))
    assert isinstance(streamed[0], ClientError) and streamed[0].code == INVALID
    assert isinstance(streamed[1], c.Order)
    placed = 9 + 9 + 1  # the repeat places new orders (no idempotency keys), + the stream's
    assert client.get_stock("SKU-1").total_available == stock_before - placed
    audit_clean(server)


def test_product_money_and_sizes_are_bounded(net, server):
    client = net
    for kw in ({"unit_price_cents": 2**63 - 1}, {"unit_price_cents": val.MAX_MONEY_CENTS + 1},
               {"weight_g": 2**31 - 1}, {"length_mm": -1}, {"height_mm": 2**31 - 1}):
        err = rejected(lambda: client.upsert_product("P-1", "p", **kw))
        assert "product." + next(iter(kw)) in fields(err)
    client.upsert_product("P-1", "p", unit_price_cents=val.MAX_MONEY_CENTS)


# ---- messages -----------------------------------------------------------------------------

def test_error_messages_quote_a_short_prefix(net, server):
    client = net
    big = "Z" * 20_000  # over gRPC's 16 KB metadata limit, under the 64 KiB request cap
    for call, codes in [
        (lambda: client.get_stock(big), (INVALID,)),
        (lambda: client.set_stock(big, "SKU-1", 1), (INVALID,)),
        (lambda: client.list_orders(channel=big), (INVALID,)),
        (lambda: client.get_order(big), (INVALID,)),
        (lambda: client.get_order("DSM." + "q" * 60), (NOT_FOUND,)),
        (lambda: client.place_order(req([(big, 1)], postal_code=AMES, channel=big,
                                        idempotency_key=big)), (INVALID,)),
        (lambda: client.ship_order("DSM.x", carrier=big), (INVALID, NOT_FOUND)),
        (lambda: client.ship_order("DSM.x", service_level=big), (INVALID, NOT_FOUND)),
        (lambda: client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
            tracking_number=big, event_id="e", type="IN_TRANSIT")), (INVALID,)),
        (lambda: client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
            tracking_number="OM1", event_id="e", type=big)), (INVALID,)),
        (lambda: client.fulfillment.GetWave(f.GetWaveRequest(wave_id=big)), (INVALID,)),
        (lambda: client.orders.GetOrder(o.GetOrderRequest(order_id="\x00" * 1000)), (INVALID,)),
    ]:
        rejected(call, *codes)
    audit_clean(server)
