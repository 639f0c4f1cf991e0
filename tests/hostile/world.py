"""The seeded world the hostile suite attacks, its snapshot, and the state digest.

The world is built once per module through the public API (so it is what a real service
holds), dumped key by key with DUMP, and RESTOREd before every example: every example starts
from the same state, so the request alone decides the outcome and a falsifying example
reproduces on its own."""
from __future__ import annotations

from dataclasses import dataclass, field

import redis

from oms.clients.client import OmsClient
from oms.server.redis import keys
from oms.v1 import channels_pb2 as ch
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as r

WAREHOUSES = ("DSM", "CHI", "DEN")
SKUS = ("SKU-1", "SKU-2", "SKU-3")


@dataclass
class World:
    """Ids that exist in the seeded state, for plausible values that get past the first check."""

    order_ids: list[str] = field(default_factory=list)
    return_ids: list[str] = field(default_factory=list)
    wave_ids: list[str] = field(default_factory=list)
    tracking_numbers: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)
    carriers: list[str] = field(default_factory=list)
    snapshot: list[tuple[bytes, int, bytes]] = field(default_factory=list, repr=False)
    lines: dict[bytes, bytes] = field(default_factory=dict, repr=False)


def _order(client: OmsClient, lines: list[tuple[str, int, int]], key: str, token: str = "",
           customer: str = "C-1") -> c.Order:
    req = client.order_request(lines, postal_code="50010", idempotency_key=key,
                               customer_id=customer, email=f"{customer.lower()}@example.com",
                               name="Ann")
    req.payment_token = token
    return client.place_order(req)


def seed(client: OmsClient) -> World:
    """Three warehouses, three products, stock, and orders in most states: held, allocated,
    backordered, cancelled, released to a wave (one split over two warehouses), picked, packed,
    shipped and tracked, delivered, with a return requested, returned and restocked."""
    w = World()
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309", aisles=6,
                            slots_per_aisle=10, slot_length_m=1.0, aisle_spacing_m=3.0)
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601", aisles=4, slots_per_aisle=8)
    client.upsert_warehouse("DEN", "Denver", postal_code="80202", aisles=3, slots_per_aisle=5)
    for i, sku in enumerate(SKUS):
        client.upsert_product(sku, f"Product {i}", unit_price_cents=1500 * (i + 1),
                              weight_g=400, length_mm=120, width_mm=100, height_mm=100)
    for i, sku in enumerate(SKUS):
        client.set_stock("DSM", sku, 50, f"A0{i + 1}-S00{i + 1}")
        client.set_stock("CHI", sku, 20, f"A0{i + 1}-S00{i + 2}")
    client.set_stock("DEN", "SKU-1", 5, "A01-S001")

    held = _order(client, [("SKU-1", 1, 1500)], "seed-held")
    alloc = _order(client, [("SKU-2", 2, 3000)], "seed-alloc", "tok_visa", "C-2")
    client.release_hold(alloc.id)
    back = _order(client, [("SKU-3", 500, 4500)], "seed-back")
    gone = _order(client, [("SKU-1", 1, 1500)], "seed-cancel")
    client.cancel_order(gone.id, "seed")
    shipped = _order(client, [("SKU-1", 1, 1500)], "seed-shipped", "tok_visa", "C-3")
    returned = _order(client, [("SKU-2", 2, 3000), ("SKU-1", 1, 1500)], "seed-returned",
                      "tok_visa", "C-4")
    requested = _order(client, [("SKU-1", 1, 1500)], "seed-requested", "tok_visa", "C-5")
    delivered = _order(client, [("SKU-2", 1, 3000)], "seed-delivered", "tok_visa", "C-6")
    picked = _order(client, [("SKU-1", 2, 1500)], "seed-picked")
    packed = _order(client, [("SKU-2", 1, 3000)], "seed-packed", "tok_visa", "C-7")
    released = _order(client, [("SKU-3", 1, 4500)], "seed-released")
    split = _order(client, [("SKU-3", 60, 4500)], "seed-split")
    for x in (shipped, returned, requested, delivered, picked, packed):
        client.release_hold(x.id)
    wave = client.plan_wave("DSM", max_orders=10)
    w.wave_ids.append(wave.id)
    client.confirm_pick(picked.id)
    client.confirm_pick(packed.id)
    client.pack_order(packed.id)
    for x in (shipped, returned, requested, delivered):
        client.confirm_pick(x.id)
        client.pack_order(x.id)
        s = client.ship_order(x.id)
        w.tracking_numbers += [sh.tracking_number for sh in s.shipments]
        w.carriers += [sh.carrier for sh in s.shipments]
    client.release_hold(released.id)
    client.release_hold(split.id)
    w.wave_ids.append(client.plan_wave("DSM", max_orders=10).id)
    w.wave_ids.append(client.plan_wave("CHI", max_orders=10).id)
    client.fulfillment.RecordTrackingEvent(f.RecordTrackingEventRequest(
        tracking_number=w.tracking_numbers[0], event_id="seed-e1", type="IN_TRANSIT",
        location="Ames, IA"))
    for x in (returned, requested, delivered):
        client.fulfillment.MarkDelivered(f.MarkDeliveredRequest(order_id=x.id))
    ret = client.returns.RequestReturn(r.RequestReturnRequest(
        order_id=returned.id, lines=[r.ReturnLine(sku="SKU-2", quantity=1)], reason="chipped"))
    client.returns.ReceiveReturn(r.ReceiveReturnRequest(return_id=ret.id, restock=True))
    ret2 = client.returns.RequestReturn(r.RequestReturnRequest(
        order_id=requested.id, lines=[r.ReturnLine(sku="SKU-1", quantity=1)], reason="late"))
    w.return_ids += [ret.id, ret2.id]
    w.order_ids = [held.id, alloc.id, back.id, gone.id, shipped.id, returned.id,
                   requested.id, delivered.id, picked.id, packed.id, released.id, split.id]
    w.idempotency_keys = ["seed-held", "seed-alloc", "seed-cancel", "seed-returned"]
    w.event_ids = [e.event_id for e in _events(client, returned.id)][:3]
    w.carriers = sorted(set(w.carriers))
    # a channel (with a webhook secret and a push target), a completed delivery and a
    # rejected order: ChannelService requests that name "web" reach past the look-up
    client.channels.UpsertChannel(ch.UpsertChannelRequest(channel=ch.Channel(
        id="web", name="Web shop", kind=ch.CHANNEL_KIND_SHOPIFY, warehouse_ids=["DSM", "CHI"],
        safety_stock=1, max_share_pct=80.0, webhook_secret="seed-secret-0123456789",
        push=ch.PushTarget(base_url="https://shop.example.com", access_token="seed-token",
                           sku_items={"SKU-1": "1"}))))
    client.channels.CompleteWebhookDelivery(ch.CompleteWebhookDeliveryRequest(
        channel_id="web", delivery_id="seed-d1", outcome="order seed"))
    client.channels.RecordRejectedOrder(ch.RecordRejectedOrderRequest(rejected=ch.RejectedOrder(
        channel_id="web", external_id="seed-1", reason="unknown sku", skus=["NOPE"])))
    return w


def _events(client: OmsClient, order_id: str) -> list[c.OrderEvent]:
    return list(client.watch_events(after_event_id="0", order_id=order_id, timeout=1.0))


def take_snapshot(url: str, world: World) -> None:
    rc = redis.Redis.from_url(url)
    snap = []
    for k in sorted(rc.scan_iter(count=1000)):
        data = rc.dump(k)
        if data is None:
            continue
        ttl = rc.pttl(k)
        snap.append((k, max(ttl, 0), data))
    world.snapshot = snap
    world.lines = state_lines(rc)


def restore(url: str, world: World) -> None:
    rc = redis.Redis.from_url(url)
    # One transaction: the server's periodic recovery sweep must never see half a world (a
    # reservation restored before its order looks orphaned and would be released).
    p = rc.pipeline(transaction=True)
    p.flushall()
    for k, ttl, data in world.snapshot:
        p.restore(k, ttl, data, replace=True)
    p.execute()


_READ = {b"string": "get", b"hash": "hgetall", b"set": "smembers", b"list": "lrange",
         b"zset": "zrange", b"stream": "xrange"}


def state_lines(rc: redis.Redis) -> dict[bytes, bytes]:
    """Every key's type and content (no TTLs: they tick). Stock, reservations, orders, indexes,
    events, idempotency claims and the payment ledger are all plain keys, so all are in here.
    Two pipelined round trips: this runs after every rejected example."""
    names = sorted(rc.scan_iter(count=10_000))
    p = rc.pipeline(transaction=False)
    for k in names:
        p.type(k)
    kinds = p.execute()
    p = rc.pipeline(transaction=False)
    for k, kind in zip(names, kinds):
        op = _READ.get(kind)
        if op in ("lrange", "zrange"):
            getattr(p, op)(k, 0, -1, **({"withscores": True} if op == "zrange" else {}))
        elif op is not None:
            getattr(p, op)(k)
        else:
            p.type(k)
    values = p.execute()
    out = {}
    for k, kind, v in zip(names, kinds, values):
        if isinstance(v, dict):
            v = sorted(v.items())
        elif isinstance(v, set):
            v = sorted(v)
        out[k] = kind + b":" + (v if isinstance(v, bytes) else repr(v).encode())
    return out


# Written by the server's periodic jobs on their own clock, whatever a call does: the orphan
# sweep takes its turn every interval (server/jobs/sweeper.py).
BACKGROUND = frozenset({keys.SWEEP_TURN.encode()})


def changed_keys(before: dict[bytes, bytes], after: dict[bytes, bytes]) -> list[str]:
    """The keys a call added, removed or changed (names only: values may be huge), leaving
    out the periodic jobs' own keys (BACKGROUND)."""
    return sorted(k.decode(errors="replace") for k in set(before) | set(after)
                  if before.get(k) != after.get(k) and k not in BACKGROUND)
