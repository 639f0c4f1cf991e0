"""The payment gateway's write-once ledger on the store's one Redis client.

``LedgerOps`` is the store's area for it (two typed operations); ``StoreLedger`` adapts them to
the synchronous ``engine.payments.Ledger`` protocol. The gateway is synchronous and always runs
in worker threads (``asyncio.to_thread``), so each operation is handed to the store's event
loop and awaited there: the asyncio client and its connections belong to that loop, and a
second, synchronous client per process is what this replaces.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

from oms.server.redis import keys
from oms.server.redis.base import StoreBase
from oms.server.redis.records import _s
from oms.server.redis.unavailable import unavailable

T = TypeVar("T")

# Longer than the store pool's own wait for a free connection (30 s) plus redis-py's retries,
# so a slow store surfaces as its own StoreUnavailable first; this only catches a stalled loop.
LEDGER_TIMEOUT_S = 60.0


class LedgerOps(StoreBase):
    """The ledger's entries: write-once string keys (``SET NX`` then ``GET``, safe because
    values are never changed), so every server process shares the gateway's memory and a
    payment is never made twice."""

    async def ledger_get(self, key: str) -> str | None:
        v = await self.r.get(keys.ledger(key))
        return None if v is None else _s(v)

    async def ledger_set_if_absent(self, key: str, value: str) -> str:
        """Store ``value`` unless ``key`` has one; return what is stored afterwards."""
        k = keys.ledger(key)
        p = self.r.pipeline(transaction=False)  # one round trip; both on one connection, in order
        p.set(k, value, nx=True)
        p.get(k)
        _, stored = await p.execute()
        return _s(stored)


class StoreLedger:
    """``engine.payments.Ledger`` on a store's client, for a gateway called from threads.
    ``loop`` is the loop the store's client runs on."""

    def __init__(self, store: LedgerOps, loop: asyncio.AbstractEventLoop,
                 timeout_s: float = LEDGER_TIMEOUT_S) -> None:
        self.store = store
        self.loop = loop
        self.timeout_s = timeout_s

    def get(self, key: str) -> str | None:
        return self._run(self.store.ledger_get(key))

    def set_if_absent(self, key: str, value: str) -> str:
        return self._run(self.store.ledger_set_if_absent(key, value))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            # Blocking the loop on work scheduled onto itself would hang forever.
            raise RuntimeError("StoreLedger called on its event loop's thread; the payment "
                               "gateway must run in a worker thread (asyncio.to_thread)")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(self.timeout_s)
        except concurrent.futures.TimeoutError as e:
            fut.cancel()
            raise unavailable(TimeoutError(f"ledger call took over {self.timeout_s} s")) from e
