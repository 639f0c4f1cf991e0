"""``oms-load --setup`` rides out a Redis restart: the calls answered UNAVAILABLE meanwhile are
retried (both set absolute values), so the network ends complete and error-free."""
from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from oms.clients.client import OmsClient
from oms.clients.load.order_pool import sku_name
from oms.clients.load.setup import setup_network
from oms.server.redis.embedded import EmbeddedRedis
from tests.conftest import ADMIN_KEY, ServerThread, server_config


def test_setup_retries_through_a_redis_restart(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path, appendonly=True, fsync="always").start()
    st = ServerThread(server_config(redis.url, redis_cluster=False)).start()
    target = f"127.0.0.1:{st.port}"
    out: dict[str, Any] = {}
    try:
        with OmsClient(target, timeout=30, api_key=ADMIN_KEY) as cl:
            cl.upsert_warehouse("DSM", postal_code="50309")  # connections up before Redis goes
        redis.stop()

        def run() -> None:
            try:
                out["res"] = asyncio.run(setup_network(
                    target, 2, 15, stock=100, hot_skus=0, hot_stock=0, seed=1, concurrency=8,
                    quiet=True, api_key=ADMIN_KEY))
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                out["err"] = e

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)  # calls meanwhile meet a Redis that is down
        redis = EmbeddedRedis(tmp_path, appendonly=True, fsync="always").start()
        t.join(120)
        assert not t.is_alive()
        assert "err" not in out, out.get("err")
        assert out["res"]["errors"] == {} and out["res"]["stock_levels"] == 30
        with OmsClient(target, timeout=30, api_key=ADMIN_KEY) as cl:
            for k in (0, 7, 14):
                levels = {lv.warehouse_id: lv.on_hand for lv in cl.get_stock(sku_name(k)).levels}
                assert len(levels) == 2 and set(levels.values()) == {100}, levels
    finally:
        st.stop()
        redis.stop()
