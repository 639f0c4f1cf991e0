"""Every Lua script touches only the keys it declares in KEYS (migration-safe scripts).

On Redis Cluster a node decides ASK/TRYAGAIN for a script from its declared KEYS before it
runs; a key the script reaches without declaring it (built in Lua from a prefix) that has moved,
or is new in a migrating slot, stops the script with "non local key" where it is reached,
possibly after it wrote other keys. So: a real redis-server, a MONITOR connection, a workload
through the real gRPC server that runs every script of ``scripts.ALL`` (orders placed, split,
replayed, held, paid, waved, picked, packed, shipped, delivered, followed up, returned and
refunded, cancelled; stock set, adjusted and counted; backorders filled; re-allocation; API
keys, channels, the pushers' send claims), then for each script call the keys of every command
it ran (their positions from the server's own COMMAND GETKEYS) must be among its KEYS.

MONITOR shows each EVALSHA with its arguments and the commands its script ran as
``[0 lua] "CMD" ...`` lines: after the EVALSHA on Redis 6.2, before it from Redis 7.0 on (the
feed moved to after execution); both orders are read.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from oms.server.redis import keys, scripts
from oms.server.redis.base import now_ms
from oms.server.redis.scripts import risk as risk_scripts
from oms.v1 import channels_pb2 as chpb
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as r
from tests import conftest

# Scripts outside ``ALL`` (loaded on first use) are checked too whenever the workload runs them.
KNOWN = {s.sha: s.name for s in (*scripts.ALL, risk_scripts.RISK_UNDO,
                                 risk_scripts.RISK_HIST_TAKE, risk_scripts.RISK_HIST_MERGE)}
_SENTINEL = b"declared-keys-monitor-end"
_TOKEN = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.S)
_SIMPLE = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def _unescape(m: re.Match[bytes]) -> bytes:
    e = m.group(1)
    if e[:1] == b"x" and len(e) == 3:
        return bytes([int(e[1:], 16)])
    return _SIMPLE.get(e, e)


def parse_monitor_line(line: bytes) -> tuple[bool, list[bytes]]:
    """(from a script, its arguments) of one MONITOR line: ``<ts> [<db> <client>] "A" "B"``,
    each argument quoted the way sdscatrepr writes it."""
    head, sep, rest = line.partition(b"] ")
    assert sep, line[:200]
    return head.endswith(b" lua"), [_ESCAPE.sub(_unescape, t) for t in _TOKEN.findall(rest)]


@dataclass
class ScriptCall:
    name: str
    declared: set[bytes]
    inner: list[list[bytes]] = field(default_factory=list)


def script_calls(lines: list[bytes], inner_first: bool) -> list[ScriptCall]:
    """Each EVAL/EVALSHA with the commands its script ran (``inner_first``: Redis >= 7 feeds
    them before the EVALSHA line, 6.2 after it). A script runs alone, so no other client's
    command comes between a call and its script's commands."""
    out: list[ScriptCall] = []
    current: ScriptCall | None = None
    pending: list[list[bytes]] = []
    for line in lines:
        lua, args = parse_monitor_line(line)
        if lua:
            if inner_first:
                pending.append(args)
            else:
                assert current is not None, f"a script's command outside a script: {args[:3]}"
                current.inner.append(args)
            continue
        current = None
        cmd = args[0].upper() if args else b""
        if cmd in (b"EVALSHA", b"EVAL"):
            name = KNOWN.get(args[1].decode(), f"script {args[1][:12]!r}") if cmd == b"EVALSHA" \
                else "EVAL"
            current = ScriptCall(name, set(args[3:3 + int(args[2])]))
            if inner_first:
                current.inner = pending
            out.append(current)
        pending = []
    return out


class KeyFinder:
    """Key positions of a command, from the server's COMMAND GETKEYS, cached per command name
    and argument count (the key positions of every command the scripts run depend on no
    more than that)."""

    def __init__(self, r: redis.Redis) -> None:
        self.r = r
        self._pos: dict[tuple[bytes, int], list[int]] = {}

    def keys(self, args: list[bytes]) -> list[bytes]:
        sig = (args[0].upper(), len(args))
        pos = self._pos.get(sig)
        if pos is None:
            try:
                got = self.r.command_getkeys(*args)
            except redis.ResponseError:  # a command without keys
                got = []
            pos, used = [], set()
            for k in got:
                k = k if isinstance(k, bytes) else k.encode()  # (redis-py may decode them)
                i = next(i for i in range(1, len(args)) if i not in used and args[i] == k)
                used.add(i)
                pos.append(i)
            self._pos[sig] = pos
        return [args[i] for i in pos]


class Monitor:
    """A MONITOR connection read by a thread until ``stop`` (which sends a marker command)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.r = redis.Redis.from_url(url)
        self.lines: list[bytes] = []
        self.conn = self.r.connection_pool.get_connection()
        self.conn.send_command("MONITOR")
        ok = self.conn.read_response()
        assert ok in (b"OK", "OK"), ok
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            line = self.conn.read_response()
            if isinstance(line, str):
                line = line.encode()
            if _SENTINEL in line:
                return
            self.lines.append(line)

    def stop(self) -> list[bytes]:
        self.r.echo(_SENTINEL)
        self._thread.join(60)
        assert not self._thread.is_alive(), "MONITOR reader did not see its end marker"
        self.conn.disconnect()
        self.r.close()
        return self.lines


def _track(client: Any, tn: str, event_id: str, kind: str) -> c.Order:
    return client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=tn, event_id=event_id, type=kind, location="Ames, IA"))


def _ship(client: Any, oid: str, warehouses: list[str]) -> c.Order:
    client.release_hold(oid)
    for wid in warehouses:
        client.plan_wave(wid, max_orders=20)
    for wid in warehouses:
        client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=oid, warehouse_id=wid))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=oid))
    return client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=oid))


def workload(client: Any, server: Any) -> None:
    """Every script of ``scripts.ALL`` at least once, through the gRPC API where one drives it
    (the pushers' send claims through the store: their callers need an outside shop)."""
    for wid, name, z in (("DSM", "Des Moines", "50309"), ("CHI", "Chicago", "60601")):
        client.upsert_warehouse(wid, name, postal_code=z, aisles=6, slots_per_aisle=10)
    client.upsert_product("MUG", "Mug", unit_price_cents=1500, weight_g=400, length_mm=120,
                          width_mm=100, height_mm=100)  # REGISTER_SKUS
    for wid, sku, n, loc in (("DSM", "MUG", 10, "A01-S003"), ("CHI", "MUG", 10, "A02-S001"),
                             ("CHI", "LAMP", 12, "A01-S001"), ("DSM", "VASE", 9, "A03-S002"),
                             ("DSM", "KETTLE", 4, "A01-S002"), ("CHI", "KETTLE", 0, "A02-S004"),
                             ("DSM", "GLOBE", 0, "A05-S001")):
        client.set_stock(wid, sku, n, loc)  # SET_STOCK
    client.adjust_stock("DSM", "MUG", 2, "found", idempotency_key="adj-1")  # ADJUST_STOCK
    client.adjust_stock("DSM", "MUG", 2, "found", idempotency_key="adj-1")  # its replay
    client.adjust_stock("CHI", "MUG", -1, "broken")
    client.channels.UpsertChannel(chpb.UpsertChannelRequest(channel=chpb.Channel(
        id="shop", name="shop", kind=chpb.CHANNEL_KIND_SHOPIFY, warehouse_ids=["DSM", "CHI"])))
    key = client.create_api_key("declared-keys", ["orders:write"])
    client.revoke_api_key(key.key_id)

    # intake: a paid order (RISK_SIGNALS, CLAIM_KEYS, PLACE_ORDERS), its replay, a batch with a
    # split order, a channel order and a repeat within the batch
    paid = client.order_request([("MUG", 2, 1500)], postal_code="50010", email="ann@example.com",
                                customer_id="C-ann", name="Ann", idempotency_key="dk-1")
    paid.payment_token = "tok_visa"
    o = client.orders.PlaceOrder(paid)
    assert client.orders.PlaceOrder(paid).id == o.id
    split = client.order_request([("VASE", 1), ("LAMP", 5)], postal_code="50010",
                                 idempotency_key="dk-2", email="bob@example.com")
    res = client.batch_place_orders([
        split, client.order_request([("VASE", 1), ("LAMP", 5)], postal_code="50010"),
        client.order_request([("MUG", 1)], postal_code="60601", channel="shop",
                             customer_id="C-cy"),
        client.order_request([("KETTLE", 2)], postal_code="50010"),
        client.order_request([("KETTLE", 2)], postal_code="50010"),
        client.order_request([("GLOBE", 1)], postal_code="50010"), split])
    assert all(isinstance(x, c.Order) for x in res), res
    o2, o3, _, _, _, backordered, again = res
    assert again.id == o2.id
    assert {a.warehouse_id for a in o2.allocations} == {"DSM", "CHI"}
    assert backordered.status == c.ORDER_STATUS_BACKORDERED

    # the paid order's whole life: hold, wave, pick, pack, ship, delivery, follow-up, return,
    # refund (TRANSITION, RELEASE_WAVE, SHIPMENT_SEQ, POP_FOLLOWUPS, RESERVE_REFUND)
    home = o.id.split(".")[0]
    shipped = _ship(client, o.id, [home])
    assert shipped.status == c.ORDER_STATUS_SHIPPED
    tn = shipped.shipments[0].tracking_number
    _track(client, tn, "e1", "IN_TRANSIT")
    assert _track(client, tn, "e2", "DELIVERED").status == c.ORDER_STATUS_DELIVERED
    assert server.run(server.store.pop_followups(home, now_ms() + 10 ** 12)) == [o.id]
    ret = client.returns.RequestReturn(r.RequestReturnRequest(
        order_id=o.id, lines=[r.ReturnLine(sku="MUG", quantity=1)], reason="chipped"))
    client.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True))
    client.returns.IssueRefund(r.IssueRefundRequest(return_id=ret.id, amount_cents=1500))

    # a split order shipped (the non-home part consumed: RELEASE_RESERVATION) and one cancelled
    o2_home = o2.id.split(".")[0]
    assert _ship(client, o2.id, [o2_home, *({"DSM", "CHI"} - {o2_home})]).status == \
        c.ORDER_STATUS_SHIPPED
    assert client.cancel_order(o3.id).status == c.ORDER_STATUS_CANCELLED

    # a count below the reservations bumps the newest kettle order; backorders are filled
    # (COMMIT_ALLOCATION, SWAP_RECORD)
    client.record_stock_count("DSM", "KETTLE", 2, "cycle count")
    client.set_stock("CHI", "KETTLE", 5)
    client.set_stock("DSM", "GLOBE", 3)
    assert client.fill_backorders().filled >= 1

    # re-allocation: stock arrives near an order that ships from far away
    client.upsert_warehouse("LAX", "Los Angeles", postal_code="90012")
    client.set_stock("LAX", "PLATE", 5, "A00-S001")
    far = client.place_order(client.order_request([("PLATE", 2)], postal_code="50010"))
    assert {a.warehouse_id for a in far.allocations} == {"LAX"}
    client.set_stock("DSM", "PLATE", 10, "A00-S004")
    assert client.fulfillment.Reallocate(f.ReallocateRequest(time_budget_s=1)).moved >= 1

    # the pushers' send claims (NOTIFY_MARK, NOTIFY_RELEASE)
    st = server.store
    assert server.run(st.claim_shipment_push("shop", "s-1", "claimed t1", 60))
    assert server.run(st.confirm_shipment_push("shop", "s-1", "claimed t1", "pushed t1", 60))
    assert server.run(st.claim_shipment_push("shop", "s-2", "claimed t2", 60))
    assert server.run(st.release_shipment_push("shop", "s-2", "claimed t2"))


def test_every_script_touches_only_its_declared_keys(client, server, redis_url) -> None:
    if conftest.ON_CLUSTER:
        pytest.skip("MONITOR of one redis-server; the cluster tier runs the same scripts")
    r = redis.Redis.from_url(redis_url)
    major = int(r.info("server")["redis_version"].split(".")[0])
    mon = Monitor(redis_url)
    try:
        workload(client, server)
    finally:
        lines = mon.stop()
    calls = script_calls(lines, inner_first=major >= 7)
    finder = KeyFinder(r)
    seen: dict[str, int] = {}
    undeclared: list[str] = []
    for call in calls:
        seen[call.name] = seen.get(call.name, 0) + 1
        for args in call.inner:
            for k in finder.keys(args):
                if k not in call.declared:
                    undeclared.append(f"{call.name}: {args[0].decode()} {k.decode()!r} is not "
                                      "in its KEYS")
    r.close()
    # one line per (script, command, key pattern), so that a failure reads at a glance
    distinct = sorted({re.sub(r"[0-9a-f]{40}|\d{4,}|\.[0-9a-z]+'", "…", u) for u in undeclared})
    assert not undeclared, f"{len(undeclared)} undeclared key accesses:\n" + "\n".join(distinct)
    print(f"\n{len(calls)} script calls checked: {dict(sorted(seen.items()))}")
    missing = [s.name for s in scripts.ALL if s.name not in seen]
    assert not missing, f"scripts the workload never ran: {missing} (ran: {seen})"


def test_the_monitor_reader_sees_undeclared_keys(redis_url) -> None:
    """The check itself: a script that builds a key from its argument is caught."""
    if conftest.ON_CLUSTER:
        pytest.skip("MONITOR of one redis-server")
    r = redis.Redis.from_url(redis_url)
    major = int(r.info("server")["redis_version"].split(".")[0])
    mon = Monitor(redis_url)
    try:
        tag = keys.shard("DK")
        r.eval("redis.call('SET', KEYS[1], 1); redis.call('SET', ARGV[1] .. 'x', 2)", 1,
               tag + "a", tag)
    finally:
        lines = mon.stop()
    (call,) = [x for x in script_calls(lines, inner_first=major >= 7) if x.name == "EVAL"]
    finder = KeyFinder(r)
    touched = [k for args in call.inner for k in finder.keys(args)]
    r.delete(tag + "a", tag + "x")
    r.close()
    assert touched == [(tag + "a").encode(), (tag + "x").encode()]
    assert [k for k in touched if k not in call.declared] == [(tag + "x").encode()]
