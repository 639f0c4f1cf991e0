"""Concurrency on the real server: duplicate idempotency keys at once (threads, one batch,
separate client processes), scarce stock ordered by several client processes at once (never
oversold, exact accounting, clean audit), concurrent cancels releasing stock exactly once.

Client processes use the 'spawn' context and their own OmsClient; the worker functions live at
module level so that a spawned child can import them. Everything is bounded by timeouts and
seeded; nothing is timed."""
from __future__ import annotations

import multiprocessing as mp
import random
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from oms.clients.client import ClientError, OmsClient
from oms.engine.payments import DeterministicGateway
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import orders_pb2 as o
from oms.server.redis import keys
from oms.server.redis.store import StoreLedger
from tests.conftest import ADMIN_KEY, redis_client
from tests.helpers import add_warehouses, audit_clean, levels

pytestmark = pytest.mark.timeout(150)

req = OmsClient.order_request

ABORTED = grpc.StatusCode.ABORTED
ZIPS = ["50010", "60614", "80301", "30301", "75001", "52240"]
PROC_TIMEOUT = 90  # seconds, bound on any wait for a child process


@pytest.fixture()
def network(client):
    return add_warehouses(client, {"DSM": "50309", "CHI": "60601", "DEN": "80202"})


# ---- client process worker --------------------------------------------------------------

def _outcome(r) -> tuple[str, int, str]:
    if isinstance(r, ClientError):
        return ("", 0, r.code.name)
    return (r.id, r.status, "")


def _worker(port: int, barrier, queue, plan: list[tuple[str, list[bytes]]]) -> None:
    """Run ``plan`` (steps of ("unary" | "batch", serialized PlaceOrderRequests)) against the
    server with a client of its own. ABORTED (a retryable conflict) is retried with the same
    request, as a real client would. Puts ("ok", [(key, order_id, status, error_code)...],
    retries) or ("error", traceback) on ``queue``."""
    try:
        out: list[tuple[str, str, int, str]] = []
        retries = 0
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as client:
            barrier.wait(PROC_TIMEOUT)
            for kind, raw in plan:
                reqs = [o.PlaceOrderRequest.FromString(b) for b in raw]
                if kind == "unary":
                    res = []
                    for r in reqs:
                        try:
                            res.append(client.place_order(r))
                        except ClientError as e:
                            res.append(e)
                else:
                    res = client.batch_place_orders(reqs)
                for r, rq in zip(res, reqs):
                    for _ in range(20):
                        if not (isinstance(r, ClientError) and r.code == ABORTED):
                            break
                        retries += 1
                        try:
                            r = client.place_order(rq)
                        except ClientError as e:
                            r = e
                    out.append((rq.idempotency_key, *_outcome(r)))
        queue.put(("ok", out, retries))
    except BaseException:
        queue.put(("error", traceback.format_exc(), 0))


def run_processes(port: int, plans: list[list[tuple[str, list[bytes]]]],
                  during=None) -> tuple[list[list[tuple[str, str, int, str]]], int]:
    """One spawned client process per plan, all released at once by a barrier. ``during`` is
    called repeatedly in this process while they run (e.g. a stock monitor)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(port, barrier, queue, plan), daemon=True)
             for plan in plans]
    for p in procs:
        p.start()
    results, retries = [], 0
    try:
        import queue as _q
        while len(results) < len(plans):
            try:
                status, payload, n = queue.get(timeout=0.05 if during else PROC_TIMEOUT)
            except _q.Empty:
                if during is None:
                    raise
                during()
                continue
            assert status == "ok", payload
            results.append(payload)
            retries += n
    finally:
        for p in procs:
            p.join(PROC_TIMEOUT)
            if p.is_alive():
                p.terminate()
                p.join(5)
    return results, retries


def _ser(rs: list[o.PlaceOrderRequest]) -> list[bytes]:
    return [r.SerializeToString() for r in rs]


# ---- idempotency under concurrency --------------------------------------------------------

def test_same_key_from_8_threads_at_once_is_one_order(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 50)
    port = server.port
    barrier = threading.Barrier(8)
    r = req([("SKU-A", 3)], postal_code="50010", idempotency_key="dup-threads")

    def send(i: int):
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            if i % 2:
                return cl.batch_place_orders([r])[0]
            return cl.place_order(r)

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(send, range(8)))
    assert all(isinstance(x, c.Order) for x in res), [str(x) for x in res]
    assert len({x.id for x in res}) == 1
    assert [x.id for x in client.iter_orders()] == [res[0].id]
    assert levels(client, "SKU-A")["DSM"] == (50, 3, 47)
    audit_clean(server)


def test_duplicates_inside_one_batch(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 50)
    keys = ["k1", "k2", "k1", "k1", "k2", "", "k3", ""]
    res = client.batch_place_orders([req([("SKU-A", 2)], postal_code="50010", idempotency_key=k)
                                     for k in keys])
    assert all(isinstance(x, c.Order) for x in res), [str(x) for x in res]
    assert res[0].id == res[2].id == res[3].id
    assert res[1].id == res[4].id
    distinct = {res[0].id, res[1].id, res[5].id, res[6].id, res[7].id}
    assert len(distinct) == 5
    assert sorted(x.id for x in client.iter_orders()) == sorted(distinct)
    assert levels(client, "SKU-A")["DSM"] == (50, 10, 40)
    audit_clean(server)


def test_overlapping_keys_in_concurrent_batches(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 100)
    client.set_stock("CHI", "SKU-A", 100)
    port = server.port
    barrier = threading.Barrier(4)
    keys = [f"ov-{i}" for i in range(12)]

    def send(t: int):
        rnd = random.Random(t)
        ks = keys[:]
        rnd.shuffle(ks)
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            reqs = [req([("SKU-A", 1)], postal_code=ZIPS[int(k[3:]) % 2], idempotency_key=k)
                    for k in ks]
            return dict(zip(ks, cl.batch_place_orders(reqs)))

    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(send, range(4)))
    for k in keys:
        got = [r[k] for r in res]
        assert all(isinstance(x, c.Order) for x in got), [str(x) for x in got]
        assert len({x.id for x in got}) == 1, k
    assert len(list(client.iter_orders())) == 12
    lv = levels(client, "SKU-A")
    assert sum(v[1] for v in lv.values()) == 12
    audit_clean(server)


def test_same_keys_from_separate_client_processes(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 100)
    client.set_stock("DEN", "SKU-A", 100)
    keys = [f"xp-{i}" for i in range(10)]
    plans = []
    for p in range(4):
        rnd = random.Random(100 + p)
        ks = keys[:]
        rnd.shuffle(ks)
        rs = [req([("SKU-A", 2)], postal_code=ZIPS[int(k[3:]) % 3], idempotency_key=k)
              for k in ks]
        # half unary, half one batch that also repeats a key inside itself
        plans.append([("unary", _ser(rs[:5])), ("batch", _ser(rs[5:] + rs[5:6]))])
    results, _ = run_processes(server.port, plans)
    by_key: dict[str, set[str]] = {}
    for out in results:
        for key, oid, status, err in out:
            assert err == "", (key, err)
            assert status == c.ORDER_STATUS_ALLOCATED
            by_key.setdefault(key, set()).add(oid)
    assert sorted(by_key) == keys
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    listed = sorted(x.id for x in client.iter_orders())
    assert listed == sorted(next(iter(ids)) for ids in by_key.values())
    lv = levels(client, "SKU-A")
    assert sum(v[1] for v in lv.values()) == 2 * len(keys)
    audit_clean(server)


# ---- scarce stock, several client processes ------------------------------------------------

HOT_STOCK = {"DSM": 20, "CHI": 15, "DEN": 10}
N_PROCS, PER_PROC = 4, 50


def _hot_plan(p: int) -> list[tuple[str, list[bytes]]]:
    rnd = random.Random(7 + p)
    rs = [req([("HOT", 1)], postal_code=rnd.choice(ZIPS), idempotency_key=f"hot-{p}-{j}",
              channel=rnd.choice(["web", "pos", "amazon"]), customer_id=f"p{p}-{j}")  # one customer each: velocity holds are not under test here
          for j in range(PER_PROC)]
    # unary and batch mixed: 10 unary, batch of 10, 10 unary, batch of 20
    return [("unary", _ser(rs[0:10])), ("batch", _ser(rs[10:20])),
            ("unary", _ser(rs[20:30])), ("batch", _ser(rs[30:50]))]


def test_scarce_stock_from_several_client_processes(network, server):
    client = network
    for wid, n in HOT_STOCK.items():
        client.set_stock(wid, "HOT", n)
    supply = sum(HOT_STOCK.values())
    demand = N_PROCS * PER_PROC
    seen: list[tuple[str, int, int, int]] = []

    def monitor():
        for s in client.get_stock("HOT").levels:
            seen.append((s.warehouse_id, s.on_hand, s.reserved, s.available))

    results, retries = run_processes(server.port, [_hot_plan(p) for p in range(N_PROCS)],
                                     during=monitor)
    # every request has a final answer: ALLOCATED or BACKORDERED, never an error
    flat = [x for out in results for x in out]
    assert len(flat) == demand
    errors = [x for x in flat if x[3]]
    assert errors == [], errors[:5]
    ids = [x[1] for x in flat]
    assert len(set(ids)) == demand  # every key its own order
    allocated = [x for x in flat if x[2] == c.ORDER_STATUS_ALLOCATED]
    backordered = [x for x in flat if x[2] == c.ORDER_STATUS_BACKORDERED]
    assert len(allocated) + len(backordered) == demand

    # available never negative, also while the processes were running
    assert seen, "the monitor never ran"
    for wid, oh, rs, av in seen:
        assert av >= 0 and rs <= oh and av == oh - rs, (wid, oh, rs, av)
    lv = levels(client, "HOT")
    total_reserved = sum(v[1] for v in lv.values())
    assert total_reserved == min(supply, demand)
    for wid, (oh, rs, av) in lv.items():
        assert oh == HOT_STOCK[wid] and rs == oh and av == 0, (wid, oh, rs, av)
    assert client.get_stock("HOT").total_available == 0
    assert len(allocated) == total_reserved

    # the server's view agrees with what the clients were told
    listed = {x.id: x for x in client.iter_orders(page_size=1000)}
    assert set(listed) == set(ids)
    alloc_listed = [x for x in listed.values() if x.status == c.ORDER_STATUS_ALLOCATED]
    assert len(alloc_listed) == total_reserved
    assert sum(a.quantity for x in alloc_listed for a in x.allocations) == total_reserved
    assert {x[1] for x in allocated} == {x.id for x in alloc_listed}
    assert len(list(client.iter_orders(status=c.ORDER_STATUS_BACKORDERED))) == \
        demand - total_reserved
    audit_clean(server)


def test_scarce_stock_threads_unary_and_batch(network, server):
    """The same property with threads of one process (many concurrent RPCs on the server)."""
    client = network
    client.set_stock("DSM", "HOT", 7)
    client.set_stock("CHI", "HOT", 5)
    port = server.port
    barrier = threading.Barrier(6)

    def send(t: int):
        rnd = random.Random(t)
        rs = [req([("HOT", 1)], postal_code=rnd.choice(ZIPS)) for _ in range(20)]
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            if t % 2:
                return cl.batch_place_orders(rs)
            out = []
            for r in rs:
                try:
                    out.append(cl.place_order(r))
                except ClientError as e:
                    out.append(e)
            return out

    with ThreadPoolExecutor(6) as ex:
        res = [x for chunk in ex.map(send, range(6)) for x in chunk]
    # ABORTED is a retryable conflict; anything else must be an order
    assert all(isinstance(x, c.Order) or x.code == ABORTED for x in res), \
        [str(x) for x in res if not isinstance(x, c.Order)]
    n_alloc = sum(1 for x in res if isinstance(x, c.Order)
                  and x.status == c.ORDER_STATUS_ALLOCATED)
    lv = levels(client, "HOT")
    assert sum(v[1] for v in lv.values()) == n_alloc
    assert all(v[2] >= 0 for v in lv.values())
    n_answered = sum(1 for x in res if isinstance(x, c.Order))
    assert n_alloc == min(12, n_answered)
    audit_clean(server)


# ---- concurrent cancels ---------------------------------------------------------------------

def _cancel_from_threads(port: int, order_id: str, n: int = 8) -> list:
    barrier = threading.Barrier(n)

    def cancel(i: int):
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            try:
                return cl.cancel_order(order_id, f"thread {i}")
            except ClientError as e:
                return e

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(cancel, range(n)))


def test_concurrent_cancels_release_once(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 10)
    a = client.place_order(req([("SKU-A", 2)], postal_code="50010"))
    b = client.place_order(req([("SKU-A", 3)], postal_code="50010"))
    assert levels(client, "SKU-A")["DSM"] == (10, 5, 5)
    res = _cancel_from_threads(server.port, a.id)
    assert all(isinstance(x, c.Order) and x.status == c.ORDER_STATUS_CANCELLED for x in res), \
        [str(x) for x in res]
    assert levels(client, "SKU-A")["DSM"] == (10, 3, 7)
    assert client.get_order(b.id).status == c.ORDER_STATUS_ALLOCATED
    got = client.get_order(a.id)
    assert sum(1 for h in got.history if h.status == c.ORDER_STATUS_CANCELLED) == 1
    audit_clean(server)


def test_concurrent_cancels_of_a_paid_order_void_once(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 10)
    paid = req([("SKU-A", 2, 1999)], postal_code="50010")
    paid.payment_token = "tok_visa"
    a = client.place_order(paid)
    assert a.payment.status == "AUTHORIZED"
    res = _cancel_from_threads(server.port, a.id)
    assert all(isinstance(x, c.Order) and x.payment.status == "VOIDED" for x in res), \
        [str(x) for x in res]
    got = client.get_order(a.id)
    assert got.status == c.ORDER_STATUS_CANCELLED and got.payment.status == "VOIDED"
    gw = DeterministicGateway(StoreLedger(server.store, server.loop))
    auth = a.payment.authorization_id
    r = redis_client(server.config.redis_url)
    log = [r.get(keys.ledger(f"pay:auth:{auth}:cap:{i}")) for i in range(3)]
    assert gw.voided(auth) and log[0] is not None and log[1:] == [None, None]  # one void entry
    assert levels(client, "SKU-A")["DSM"] == (10, 0, 10)
    audit_clean(server)


def test_concurrent_cancels_of_split_order(network, server):
    client = network
    client.set_stock("DSM", "SKU-S", 4)
    client.set_stock("CHI", "SKU-S", 3)
    client.set_stock("DEN", "SKU-S", 8)
    o1 = client.place_order(req([("SKU-S", 10)], postal_code="50010"))
    assert o1.status == c.ORDER_STATUS_ALLOCATED
    whs = {a.warehouse_id for a in o1.allocations}
    assert len(whs) == 2
    # a second order in each warehouse, so a double release would show
    others = [client.place_order(req([("SKU-S", 1)], postal_code=z)) for z in ("80301",)]
    before_other = {w: v[1] for w, v in levels(client, "SKU-S").items()}
    res = _cancel_from_threads(server.port, o1.id)
    assert all(isinstance(x, c.Order) and x.status == c.ORDER_STATUS_CANCELLED for x in res), \
        [str(x) for x in res]
    after = {w: v[1] for w, v in levels(client, "SKU-S").items()}
    mine = {}
    for a in o1.allocations:
        mine[a.warehouse_id] = mine.get(a.warehouse_id, 0) + a.quantity
    assert after == {w: before_other[w] - mine.get(w, 0) for w in before_other}
    assert sum(after.values()) == sum(sum(a.quantity for a in x.allocations) for x in others)
    audit_clean(server)


def test_cancel_while_ordering_scarce_stock(network, server):
    """Cancels and new orders racing on one scarce sku: the books always balance."""
    client = network
    client.set_stock("DSM", "HOT", 5)
    first = [client.place_order(req([("HOT", 1)], postal_code="50010")) for _ in range(5)]
    assert all(x.status == c.ORDER_STATUS_ALLOCATED for x in first)
    port = server.port
    barrier = threading.Barrier(2)

    def cancel_all():
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            return [cl.cancel_order(x.id) for x in first]

    def order_more():
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            out = []
            for _ in range(10):
                try:
                    out.append(cl.place_order(req([("HOT", 1)], postal_code="50010")))
                except ClientError as e:
                    out.append(e)
            return out

    with ThreadPoolExecutor(2) as ex:
        fc, fo = ex.submit(cancel_all), ex.submit(order_more)
        cancelled, placed = fc.result(60), fo.result(60)
    assert all(x.status == c.ORDER_STATUS_CANCELLED for x in cancelled)
    n_alloc = sum(1 for x in placed if isinstance(x, c.Order)
                  and x.status == c.ORDER_STATUS_ALLOCATED)
    oh, rs, av = levels(client, "HOT")["DSM"]
    assert (oh, rs, av) == (5, n_alloc, 5 - n_alloc)
    assert n_alloc <= 5
    audit_clean(server)


def test_same_adjust_key_from_threads_applies_once(network, server):
    client = network
    client.set_stock("DSM", "SKU-A", 10)
    port = server.port
    barrier = threading.Barrier(8)

    def adjust(i: int):
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            return cl.adjust_stock("DSM", "SKU-A", 7, "receipt", idempotency_key="rcpt-77")

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(adjust, range(8)))
    assert {x.on_hand for x in res} == {17}
    assert levels(client, "SKU-A")["DSM"] == (17, 0, 17)


def test_split_orders_under_contention_keep_the_books(network, server):
    """Multi-unit orders that need splits, from several threads at once, on scarce stock:
    no oversell, every allocated order fully allocated, reservations match allocations."""
    client = network
    for wid in ("DSM", "CHI", "DEN"):
        client.set_stock(wid, "SPL", 9)
    port = server.port
    barrier = threading.Barrier(4)

    def send(t: int):
        rnd = random.Random(1000 + t)
        # 9 units per warehouse: an order of 10 or more can only ship split
        rs = [req([("SPL", rnd.randint(4, 14))], postal_code=rnd.choice(ZIPS)) for _ in range(12)]
        with OmsClient(f"127.0.0.1:{port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            out = []
            for k in range(0, len(rs), 4):
                if (t + k) % 2:
                    out += cl.batch_place_orders(rs[k:k + 4])
                else:
                    for r in rs[k:k + 4]:
                        try:
                            out.append(cl.place_order(r))
                        except ClientError as e:
                            out.append(e)
            return out

    with ThreadPoolExecutor(4) as ex:
        res = [x for chunk in ex.map(send, range(4)) for x in chunk]
    assert all(isinstance(x, c.Order) or x.code == ABORTED for x in res), \
        [str(x) for x in res if not isinstance(x, c.Order)]
    allocated = [x for x in res if isinstance(x, c.Order) and x.status == c.ORDER_STATUS_ALLOCATED]
    for x in allocated:
        assert sum(a.quantity for a in x.allocations) == sum(ln.quantity for ln in x.lines)
    lv = levels(client, "SPL")
    assert all(av >= 0 for _, _, av in lv.values()), lv
    per_wh: dict[str, int] = {}
    for x in allocated:
        for a in x.allocations:
            per_wh[a.warehouse_id] = per_wh.get(a.warehouse_id, 0) + a.quantity
    assert {w: v[1] for w, v in lv.items()} == {w: per_wh.get(w, 0) for w in lv}
    audit_clean(server)


def test_parts_of_a_split_order_confirmed_at_once_pick_it_once(network, server):
    client = network
    client.set_stock("DSM", "SKU-S", 4, "A01-S001")
    client.set_stock("CHI", "SKU-S", 8, "A01-S001")
    split = client.place_order(req([("SKU-S", 10)], postal_code="50010"))
    whs = sorted({a.warehouse_id for a in split.allocations})
    assert whs == ["CHI", "DSM"]
    client.release_hold(split.id)
    for w in whs:
        assert any(split.id in b.order_ids for b in client.plan_wave(w).batches)
    barrier = threading.Barrier(8)

    def confirm(i: int):
        with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as cl:
            barrier.wait(30)
            return cl.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=split.id,
                                                                   warehouse_id=whs[i % 2]))

    with ThreadPoolExecutor(8) as ex:
        res = list(ex.map(confirm, range(8)))
    assert all(r.status in (c.ORDER_STATUS_RELEASED, c.ORDER_STATUS_PICKED) for r in res)
    got = client.get_order(split.id)
    assert got.status == c.ORDER_STATUS_PICKED and sorted(got.picked_warehouses) == whs
    assert [h.status for h in got.history].count(c.ORDER_STATUS_PICKED) == 1
    audit_clean(server)
