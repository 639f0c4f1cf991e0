"""The payment gateway's ledger runs on the store's one Redis client (issue 12 item 2): no
second, synchronous client per process. The gateway is synchronous and runs in worker
threads, so the ledger hands each operation to the store's event loop."""
from __future__ import annotations

import asyncio
import dataclasses

import pytest

from oms.engine.errors import UnavailableError
from oms.server.app import build_order_life
from oms.server.redis.store import Store, StoreLedger

DEAD_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_the_servers_gateway_uses_the_store_client_not_a_second_one(server) -> None:
    # The config's URL points nowhere: only a ledger on the store's own client can work.
    config = dataclasses.replace(server.config, redis_url=DEAD_URL)

    async def build():
        return build_order_life(config, server.store)

    life = server.run(build())
    auth = server.run(asyncio.to_thread(life.gateway.authorize, "o-led-1", 700, "tok_visa",
                                        "auth:o-led-1"))
    assert auth.amount_cents == 700
    # a second gateway on the same store agrees: the authorization is in Redis
    again = server.run(asyncio.to_thread(life.gateway.authorize, "o-led-1", 700, "tok_visa",
                                         "auth:o-led-1"))
    assert again == auth


def test_set_if_absent_is_write_once(server) -> None:
    ledger = StoreLedger(server.store, server.loop)
    assert ledger.get("led:k") is None
    assert ledger.set_if_absent("led:k", "first") == "first"
    assert ledger.set_if_absent("led:k", "second") == "first"
    assert ledger.get("led:k") == "first"


def test_called_on_the_loop_thread_it_fails_instead_of_deadlocking(server) -> None:
    ledger = StoreLedger(server.store, server.loop)

    async def on_loop() -> None:
        ledger.get("led:k")

    with pytest.raises(RuntimeError, match="worker thread"):
        server.run(on_loop())


def test_an_unreachable_redis_is_unavailable(server) -> None:
    async def dead_store() -> Store:
        return Store.from_url(DEAD_URL)

    store = server.run(dead_store())
    try:
        ledger = StoreLedger(store, server.loop)
        with pytest.raises(UnavailableError):
            ledger.set_if_absent("led:k", "v")
        with pytest.raises(UnavailableError):
            ledger.get("led:k")
    finally:
        server.run(store.close())
