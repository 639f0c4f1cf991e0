"""GetStats on real Redis: counters summed over shards, and a stats hash that does not grow
with uptime (per-minute counters are dropped after scripts.MINUTES_KEPT minutes)."""
from __future__ import annotations

import time

from oms.server.redis.keys import Shard
from oms.server.redis.scripts import MINUTES_KEPT
from tests.conftest import redis_client


def test_stats_count_orders_and_drop_old_minutes(client, server):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    client.set_stock("DSM", "MUG", 100)
    client.set_stock("CHI", "MUG", 100)
    r = redis_client(server.config.redis_url)
    stats = Shard("DSM").stats
    m = int(time.time() // 60)
    # as if the service had run for hours: an old minute, the one PLACE_ORDERS drops now (or a
    # minute later, if the clock turns in between) and one within the hour GetStats reports
    r.hset(stats, mapping={f"m:{m - 3 * MINUTES_KEPT}": 5, f"m:{m - MINUTES_KEPT}": 1,
                           f"m:{m - MINUTES_KEPT + 1}": 1, f"m:{m - 30}": 7})
    for i in range(3):
        client.place_order(client.order_request([("MUG", 1)], postal_code="50010", channel="pos"))
    left = {f for f in (f"m:{m - MINUTES_KEPT}", f"m:{m - MINUTES_KEPT + 1}") if r.hexists(stats, f)}
    assert len(left) == 1  # PLACE_ORDERS dropped the minute MINUTES_KEPT before its own
    s = client.get_stats()
    assert s.orders_total == 3 and [(c.key, c.count) for c in s.orders_by_channel] == [("pos", 3)]
    assert 7.0 in s.orders_per_minute and len(s.orders_per_minute) == 60
    assert not r.hexists(stats, f"m:{m - 3 * MINUTES_KEPT}")  # GetStats dropped the rest
    assert r.hget(stats, f"m:{m - 30}") == b"7"
    fields = [f.decode() for f in r.hkeys(stats) if f.startswith(b"m:")]
    assert all(int(f[2:]) > m - MINUTES_KEPT for f in fields), fields
