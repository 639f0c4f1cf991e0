"""The hostile suite's own parts: what it relies on to call a failure a failure."""
from __future__ import annotations

import redis
from google.protobuf.message import DecodeError
from hypothesis import given, settings

from tests.hostile import strategies as S
from tests.hostile.world import World, changed_keys, restore, state_lines, take_snapshot


def test_every_rpc_of_every_service_is_covered() -> None:
    names = {r.id for r in S.all_rpcs()}
    want = {f"{svc.name}.{m.name}" for mod in S.MODULES
            for svc in mod.DESCRIPTOR.services_by_name.values() for m in svc.methods}
    assert names == want and len(names) >= 30
    assert {"OrderService.PlaceOrders", "OrderService.WatchOrderEvents"} <= names


def test_the_digest_sees_every_kind_of_change_and_restore_undoes_it(clean_redis: str) -> None:
    rc = redis.Redis.from_url(clean_redis)
    rc.hset("oms:{w:X}:onhand", "A", 1)
    rc.xadd("oms:{w:X}:events", {"t": "x"})
    rc.zadd("oms:{w:X}:idx:all", {"X.1": 0})
    rc.set("oms:{p:1}:ledger", "x")
    w = World()
    take_snapshot(clean_redis, w)
    assert changed_keys(w.lines, state_lines(rc)) == []
    rc.hincrby("oms:{w:X}:onhand", "A", 1)
    rc.xadd("oms:{w:X}:events", {"t": "y"})
    rc.zadd("oms:{w:X}:idx:all", {"X.2": 0})
    rc.set("oms:{i:1}:claims:1", "pending")
    assert changed_keys(w.lines, state_lines(rc)) == [
        "oms:{i:1}:claims:1", "oms:{w:X}:events", "oms:{w:X}:idx:all", "oms:{w:X}:onhand"]
    restore(clean_redis, w)
    assert changed_keys(w.lines, state_lines(rc)) == []


def _world() -> World:
    return World(order_ids=["DSM.1"], return_ids=["DSM.1/r1"], wave_ids=["DSM.2"],
                 tracking_numbers=["OX1"], event_ids=["1-0@DSM"], idempotency_keys=["k"],
                 carriers=["OMSX"])


def test_the_broken_encodings_do_not_decode() -> None:
    for rpc in S.all_rpcs():
        cls = S.message_class(rpc.input)
        broken = list(S._broken_for(rpc.input))
        assert broken
        undecodable = 0
        for data in broken:
            try:
                cls.FromString(data)
            except DecodeError:
                undecodable += 1
        assert undecodable >= 4, rpc.id  # the generic ones at least


@settings(max_examples=50)
@given(req=S.request(_world(), next(r for r in S.all_rpcs() if r.name == "PlaceOrder")))
def test_generated_requests_serialise(req: object) -> None:
    # every generated value fits its proto type (an int64 extreme, not one past it)
    assert isinstance(req.SerializeToString(), bytes)  # type: ignore[attr-defined]
