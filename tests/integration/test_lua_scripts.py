"""Lua scripts are objects (server/redis/scripts/): the exported text is what runs, its sha is
what EVALSHA sends, and a script missing from Redis is loaded on first use, direct or piped."""
from __future__ import annotations

import hashlib
import re

import pytest

from oms.server.redis import scripts
from oms.server.redis.scripts import LuaScript
from tests.conftest import redis_client


def test_every_script_is_an_object_with_its_final_text() -> None:
    assert scripts.ALL and all(isinstance(s, LuaScript) for s in scripts.ALL)
    assert len({s.name for s in scripts.ALL}) == len(scripts.ALL)
    for s in scripts.ALL:
        assert getattr(scripts, s.name) is s
        assert s.sha == hashlib.sha1(s.text.encode()).hexdigest()
        # every helper a script calls is defined in its text (prepended at import)
        for fn in set(re.findall(r"\b([a-z_]+)\(", s.text)) & {
                "call_chunked", "hincr_many", "triples", "drop_record", "drop_mode"}:
            assert f"local function {fn}(" in s.text, (s.name, fn)
        # header says how many KEYS; the object agrees
        used = [int(k) for k in re.findall(r"KEYS\[(\d+)\]", s.text)]
        assert max(used, default=0) == s.numkeys, s.name
    # constants are substituted, not left as names for Lua to resolve
    assert "(minute - MINUTES_KEPT)" not in scripts.PLACE_ORDERS.text
    assert f"(minute - {scripts.MINUTES_KEPT})" in scripts.PLACE_ORDERS.text


def test_a_wrong_key_count_fails_before_redis() -> None:
    with pytest.raises(ValueError, match="SET_STOCK takes 5 keys"):
        scripts.SET_STOCK.add_to(None, ["a"], [])  # type: ignore[arg-type]
    # a script with a variable tail still needs its whole fixed head
    with pytest.raises(ValueError, match="TRANSITION takes at least 10 keys"):
        scripts.TRANSITION.add_to(None, ["a"] * 9, [])  # type: ignore[arg-type]


def test_the_shas_redis_runs_are_the_exported_ones(client, server, redis_url) -> None:
    r = redis_client(redis_url)
    r.script_flush()
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.set_stock("DSM", "SKU-1", 5, "A01-S002")  # a direct call: loads on NOSCRIPT
    assert r.script_exists(scripts.SET_STOCK.sha) == [True]
    r.script_flush()
    orders = client.batch_place_orders([client.order_request([("SKU-1", 1)], postal_code="50010")])
    assert orders[0].status  # a pipelined call: NOSCRIPT loads every script, then re-runs
    assert r.script_exists(*[s.sha for s in scripts.ALL]) == [True] * len(scripts.ALL)
    assert server.run(server.store.audit()) == []
