"""ListOrders (filters, paging in creation order, stable under concurrent intake) and
WatchOrderEvents (placed/cancelled events, resume after an event id, order filter) on the real
server. Streams are always bounded by a deadline."""
from __future__ import annotations

import threading

import pytest

from oms.clients.client import OmsClient
from oms.v1 import common_pb2 as c
from tests.conftest import ADMIN_KEY
from tests.helpers import add_warehouses

pytestmark = pytest.mark.timeout(90)

req = OmsClient.order_request

WAREHOUSES = {"DSM": "50309", "CHI": "60601", "DEN": "80202"}
# ship-to ZIPs whose nearest warehouse differs, so orders live in different shards
NEAR = {"DSM": "50010", "CHI": "60614", "DEN": "80301"}
WATCH_TIMEOUT = 10.0  # seconds: upper bound of every stream read


@pytest.fixture()
def network(client):
    return add_warehouses(client, WAREHOUSES, stock={"SKU-A": 1000})


def place(client, wid: str = "DSM", sku: str = "SKU-A", qty: int = 1, **kw) -> c.Order:
    return client.place_order(req([(sku, qty)], postal_code=NEAR[wid], **kw))


def ids(orders) -> list[str]:
    return [x.id for x in orders]


# ---- ListOrders ------------------------------------------------------------------------------

def test_list_filters_by_status_and_channel(network, server):
    client = network
    client.set_stock("DSM", "SKU-B", 0)
    web = [place(client, "DSM", channel="web") for _ in range(3)]
    pos = [place(client, "CHI", channel="pos") for _ in range(2)]
    amz = [place(client, "DEN", sku="SKU-B", channel="amazon") for _ in range(2)]
    assert all(x.status == c.ORDER_STATUS_BACKORDERED for x in amz)
    cancelled = client.cancel_order(web[1].id)
    assert cancelled.status == c.ORDER_STATUS_CANCELLED

    def listed(**kw) -> list[str]:
        return ids(client.iter_orders(page_size=2, **kw))  # small pages: filters + paging

    everything = ids(web + pos + amz)
    assert listed() == everything
    assert listed(status=c.ORDER_STATUS_ALLOCATED) == ids([web[0], web[2]] + pos)
    assert listed(status=c.ORDER_STATUS_BACKORDERED) == ids(amz)
    assert listed(status=c.ORDER_STATUS_CANCELLED) == [web[1].id]
    assert listed(status=c.ORDER_STATUS_SHIPPED) == []
    assert listed(channel="web") == ids(web)
    assert listed(channel="pos") == ids(pos)
    assert listed(channel="amazon") == ids(amz)
    assert listed(channel="ebay") == []
    assert listed(status=c.ORDER_STATUS_ALLOCATED, channel="web") == ids([web[0], web[2]])
    assert listed(status=c.ORDER_STATUS_CANCELLED, channel="pos") == []
    assert listed(status=c.ORDER_STATUS_BACKORDERED, channel="amazon") == ids(amz)
    # every listed order is the full record
    for x in client.iter_orders(status=c.ORDER_STATUS_CANCELLED):
        assert x == client.get_order(x.id)


def test_paging_yields_every_order_once_in_creation_order(network, server):
    client = network
    placed: list[str] = []
    wids = list(NEAR)
    for i in range(17):
        placed.append(place(client, wids[i % 3], channel="web").id)
    # a batch: creation order is request order
    res = client.batch_place_orders([req([("SKU-A", 1)], postal_code=NEAR[wids[i % 3]])
                                     for i in range(6)])
    placed += ids(res)
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = client.list_orders(page_size=5, page_token=token)
        assert len(page.orders) <= 5
        seen += ids(page.orders)
        pages += 1
        token = page.next_page_token
        if not token:
            break
        assert pages < 50
    assert seen == placed
    assert len(set(seen)) == len(placed) == 23
    # created_at never goes backwards along the listing
    created = [x.created_at for x in client.iter_orders(page_size=7)]
    assert created == sorted(created)
    # default and maximal page sizes
    assert ids(client.list_orders().orders) == placed
    assert ids(client.list_orders(page_size=1000).orders) == placed
    assert client.list_orders(page_size=1000).next_page_token == ""


def test_paging_is_stable_while_orders_are_placed(network, server):
    client = network
    wids = list(NEAR)
    originals = [place(client, wids[i % 3]).id for i in range(12)]
    new: list[str] = []
    seen: list[str] = []
    token, pages = "", 0
    while True:
        page = client.list_orders(page_size=4, page_token=token)
        seen += ids(page.orders)
        pages += 1
        if pages <= 3:  # new orders arrive between pages
            new += [place(client, wids[(pages + k) % 3]).id for k in range(2)]
            new += ids(client.batch_place_orders(
                [req([("SKU-A", 1)], postal_code=NEAR[w]) for w in wids]))
        token = page.next_page_token
        if not token:
            break
        assert pages < 50
    assert len(seen) == len(set(seen)), "an order was listed twice"
    assert seen == originals + new


def test_paging_with_status_filter_while_orders_are_cancelled(network, server):
    """Orders leaving the filtered status between pages are simply not listed again; none of
    the remaining ones is skipped or repeated."""
    client = network
    orders = [place(client, list(NEAR)[i % 3]).id for i in range(10)]
    seen: list[str] = []
    token = ""
    page = client.list_orders(status=c.ORDER_STATUS_ALLOCATED, page_size=3)
    seen += ids(page.orders)
    token = page.next_page_token
    assert seen == orders[:3]
    client.cancel_order(orders[0])   # already listed
    client.cancel_order(orders[5])   # not listed yet: must not show up
    while token:
        page = client.list_orders(status=c.ORDER_STATUS_ALLOCATED, page_size=3, page_token=token)
        seen += ids(page.orders)
        token = page.next_page_token
    assert seen == [o for o in orders if o != orders[5]]


# ---- WatchOrderEvents -----------------------------------------------------------------------

def collect(client, until, *, after: str = "0", order_id: str = "",
            timeout: float = WATCH_TIMEOUT) -> list[c.OrderEvent]:
    """Read events until ``until(events)`` is true or the deadline passes."""
    out: list[c.OrderEvent] = []
    stream = client.watch_events(after_event_id=after, order_id=order_id, timeout=timeout)
    try:
        for e in stream:
            out.append(e)
            if until(out):
                break
    finally:
        stream.close()
    return out


def is_placed(e: c.OrderEvent, oid: str) -> bool:
    return e.order_id == oid and "placed" in e.type


def is_cancelled(e: c.OrderEvent, oid: str) -> bool:
    return e.order_id == oid and e.status == c.ORDER_STATUS_CANCELLED


def has(events, pred, oid) -> bool:
    return any(pred(e, oid) for e in events)


def test_events_for_placed_and_cancelled_orders(network, server):
    client = network
    a = place(client, "DSM", channel="web")
    b = place(client, "DEN", channel="pos")
    client.cancel_order(a.id, "changed my mind")

    def done(evs):
        return has(evs, is_placed, a.id) and has(evs, is_placed, b.id) and \
            has(evs, is_cancelled, a.id)

    evs = collect(client, done)
    assert done(evs), [(e.order_id, e.type, e.status) for e in evs]
    pa = next(e for e in evs if is_placed(e, a.id))
    ca = next(e for e in evs if is_cancelled(e, a.id))
    pb = next(e for e in evs if is_placed(e, b.id))
    assert evs.index(pa) < evs.index(ca)
    assert pa.status == c.ORDER_STATUS_ALLOCATED and pa.channel == "web"
    assert pb.status == c.ORDER_STATUS_ALLOCATED and pb.channel == "pos"
    assert "cancel" in ca.type
    for e in (pa, ca, pb):
        assert e.event_id and e.at_ms > 0
    assert len({e.event_id for e in evs}) == len(evs)


def test_resume_after_event_id_yields_later_events(network, server):
    client = network
    a = place(client, "DSM")
    first = collect(client, lambda evs: has(evs, is_placed, a.id))
    assert has(first, is_placed, a.id)
    mark = first[-1].event_id
    # later events, in other shards too
    b = place(client, "DEN")
    c_ = place(client, "CHI")
    client.cancel_order(a.id)
    client.cancel_order(b.id)

    def done(evs):
        return (has(evs, is_placed, b.id) and has(evs, is_placed, c_.id)
                and has(evs, is_cancelled, a.id) and has(evs, is_cancelled, b.id))

    later = collect(client, done, after=mark)
    assert done(later), [(e.order_id, e.type, e.status) for e in later]
    # resuming again from the last event of that read gives nothing older than the mark's
    # millisecond (at-least-once allows repeats of the same millisecond only)
    mark_ms = int(mark.split("-")[0])
    assert all(e.at_ms >= mark_ms for e in later)


def test_live_watch_sees_new_events(network, server):
    client = network
    a = place(client, "DSM")
    first = collect(client, lambda evs: has(evs, is_placed, a.id))
    mark = first[-1].event_id
    got: list[c.OrderEvent] = []
    box: dict[str, str] = {}
    started = threading.Event()

    def watch():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=30, api_key=ADMIN_KEY) as cl:
            started.set()
            for e in cl.watch_events(after_event_id=mark, timeout=WATCH_TIMEOUT):
                got.append(e)
                if "b" in box and has(got, is_cancelled, box["b"]):
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    started.wait(10)
    b = place(client, "CHI")
    box["b"] = b.id
    client.cancel_order(b.id)
    t.join(WATCH_TIMEOUT + 5)
    assert not t.is_alive()
    assert has(got, is_placed, b.id) and has(got, is_cancelled, b.id), \
        [(e.order_id, e.type) for e in got]


def test_watch_from_now_sees_only_new_events(network, server):
    client = network
    old = place(client, "DSM")
    got: list[c.OrderEvent] = []
    new_ids: list[str] = []
    stop = threading.Event()

    def watch():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=30, api_key=ADMIN_KEY) as cl:
            for e in cl.watch_events(after_event_id="", timeout=WATCH_TIMEOUT):
                got.append(e)
                if stop.is_set() or any(x.order_id in new_ids for x in got):
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    # The subscription starts at some moment we cannot observe: keep placing orders until
    # one of them is seen (bounded), then check nothing from before it was delivered.
    for _ in range(40):
        new_ids.append(place(client, "DEN").id)
        t.join(0.25)
        if not t.is_alive():
            break
    stop.set()
    t.join(WATCH_TIMEOUT + 5)
    assert not t.is_alive()
    assert any(e.order_id in new_ids for e in got)
    assert all(e.order_id != old.id for e in got)


def test_order_id_filter(network, server):
    client = network
    a = place(client, "DSM")
    b = place(client, "DSM")
    client.release_hold(b.id)
    client.cancel_order(a.id)
    client.cancel_order(b.id)
    evs = collect(client, lambda evs: has(evs, is_cancelled, a.id), order_id=a.id)
    assert has(evs, is_placed, a.id) and has(evs, is_cancelled, a.id)
    assert {e.order_id for e in evs} == {a.id}
    evs_b = collect(client, lambda evs: has(evs, is_cancelled, b.id), order_id=b.id)
    assert {e.order_id for e in evs_b} == {b.id}
    types = [e.type for e in evs_b]
    # placed, hold released, cancelled: three state changes, in that order
    assert len(evs_b) >= 3 and "placed" in types[0] and "cancel" in types[-1]
    assert any("hold" in t for t in types[1:-1]), types


def test_resume_after_a_backlog_in_one_shard_skips_nothing(network, server):
    """A client that read up to some event and reconnects must get every event it has not
    seen yet, also when one shard has a large backlog (more than one read's worth) and another
    shard's events are newer: resuming from the last event received must not skip the rest of
    the backlog (at-least-once)."""
    client = network
    backlog = client.batch_place_orders([req([("SKU-A", 1)], postal_code=NEAR["DSM"])
                                         for _ in range(700)])
    assert all(x.id.startswith("DSM.") for x in backlog)
    later = [place(client, "CHI") for _ in range(3)]
    want = set(ids(backlog)) | set(ids(later))

    # first connection: read until the newest order's event, then "disconnect"
    first = collect(client, lambda evs: has(evs, is_placed, later[-1].id))
    assert has(first, is_placed, later[-1].id)
    seen = {e.order_id for e in first if "placed" in e.type}
    mark = first[-1].event_id
    # one more event after the disconnect, so the second read has a known end
    last = place(client, "DEN")
    want.add(last.id)

    # second connection: resume after the last event received
    def done(evs):
        return want <= seen | {e.order_id for e in evs if "placed" in e.type}

    second = collect(client, done, after=mark)
    got = seen | {e.order_id for e in second if "placed" in e.type}
    missing = want - got
    assert not missing, f"{len(missing)} placed events never delivered after resuming from {mark}"


def test_watch_sees_events_of_a_warehouse_added_while_watching(network, server):
    """Events of a shard that did not exist when the watch started still arrive."""
    client = network
    a = place(client, "DSM")
    first = collect(client, lambda evs: has(evs, is_placed, a.id))
    mark = first[-1].event_id
    b = place(client, "CHI")
    got: list[c.OrderEvent] = []
    box: dict[str, str] = {}
    running = threading.Event()

    def watch():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=30, api_key=ADMIN_KEY) as cl:
            for e in cl.watch_events(after_event_id=mark, timeout=WATCH_TIMEOUT):
                got.append(e)
                if e.order_id == b.id:
                    running.set()  # the watch is live and past its start
                if "s" in box and has(got, is_cancelled, box["s"]):
                    return

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    assert running.wait(WATCH_TIMEOUT)
    client.upsert_warehouse("SEA", "Seattle", postal_code="98101")
    client.set_stock("SEA", "SKU-A", 10)
    s = client.place_order(req([("SKU-A", 1)], postal_code="98109"))
    assert s.id.startswith("SEA.")
    box["s"] = s.id
    client.cancel_order(s.id)
    t.join(WATCH_TIMEOUT + 5)
    assert not t.is_alive()
    assert has(got, is_placed, s.id) and has(got, is_cancelled, s.id), \
        [(e.order_id, e.type) for e in got]


def test_concurrent_intake_while_paging(network, server):
    """Orders placed by another client while a listing is paged: the orders that existed
    before are each listed exactly once, and the listing stays in creation order."""
    client = network
    wids = list(NEAR)
    originals = ids(client.batch_place_orders(
        [req([("SKU-A", 1)], postal_code=NEAR[wids[i % 3]]) for i in range(40)]))
    stop = threading.Event()

    def producer():
        with OmsClient(f"127.0.0.1:{server.port}", timeout=30, api_key=ADMIN_KEY) as cl:
            for k in range(40):
                if stop.is_set():
                    return
                cl.batch_place_orders([req([("SKU-A", 1)], postal_code=NEAR[wids[(k + i) % 3]])
                                       for i in range(10)])

    t = threading.Thread(target=producer, daemon=True)
    t.start()
    listed: list[c.Order] = []
    token = ""
    for _ in range(500):
        page = client.list_orders(page_size=7, page_token=token)
        listed += list(page.orders)
        token = page.next_page_token
        if not token:
            break
    stop.set()
    t.join(30)
    lids = ids(listed)
    assert len(lids) == len(set(lids)), "an order was listed twice"
    assert lids[:len(originals)] == originals
    created = [x.created_at for x in listed]
    assert created == sorted(created)


def test_combined_filter_paging_over_many_orders(network, server):
    client = network
    wids = list(NEAR)
    placed = client.batch_place_orders([
        req([("SKU-A", 1)], postal_code=NEAR[wids[i % 3]], channel=("web", "pos")[i % 2])
        for i in range(60)])
    for i, x in enumerate(placed):
        if i % 5 == 0:
            client.cancel_order(x.id)
    want = [x.id for i, x in enumerate(placed) if i % 2 == 1 and i % 5 != 0]
    got = ids(client.iter_orders(status=c.ORDER_STATUS_ALLOCATED, channel="pos", page_size=4))
    assert got == want
    got_c = ids(client.iter_orders(status=c.ORDER_STATUS_CANCELLED, channel="web", page_size=3))
    assert got_c == [x.id for i, x in enumerate(placed) if i % 2 == 0 and i % 5 == 0]


def test_empty_network_lists_and_watches_cleanly(client, server):
    assert list(client.list_orders().orders) == []
    assert client.list_orders().next_page_token == ""
    # no warehouse yet: the watch simply has nothing to say until its deadline
    assert list(client.watch_events(after_event_id="0", timeout=1.5)) == []
    assert list(client.watch_events(after_event_id="", timeout=1.5)) == []
