"""The periodic recovery sweep: releases reservations left without an order while the server
runs, not only at startup.

Why: the startup sweep leaves reservations younger than its grace alone (they may belong to a
placement in flight), so a restart right after a crash kept them, and a long-running server
never looked again. This task runs ``Store.sweep_orphans`` every ``interval_s`` seconds on the
server's event loop, with a grace longer than any write phase of intake.
"""
from __future__ import annotations

import asyncio
import logging
import os
import secrets

from oms.server.auth.principal import acting_as
from oms.server.redis.store import Store

log = logging.getLogger(__name__)

ACTOR = "system:sweeper"  # what the records show for the sweeper's work


class Sweeper:
    def __init__(self, store: Store, *, interval_s: float, grace_ms: int) -> None:
        self.store = store
        self.interval_s = interval_s
        self.grace_ms = grace_ms
        self._task: asyncio.Task[None] | None = None
        self.released = 0  # over the sweeper's life (tests, logs)
        self._me = f"{os.getpid()}:{secrets.token_hex(4)}"

    def start(self) -> None:
        """Start on the running loop; a second call does nothing."""
        if self._task is None and self.interval_s > 0:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def sweep_once(self) -> int:
        with acting_as(ACTOR):
            n = await self.store.sweep_orphans(self.grace_ms)
        self.released += n
        if n:
            log.warning("recovery sweep released %d orphaned reservations", n)
        return n

    async def take_turn(self) -> bool:
        """Whether this worker sweeps this interval: each worker process runs a Sweeper, and
        one sweep per interval over all of them is enough (a turn lasts 90 % of the interval,
        so the next interval's first sweeper always finds it free)."""
        return await self.store.take_sweep_turn(self._me, int(self.interval_s * 900))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if await self.take_turn():
                    await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis away for a while: the next round tries again
                log.warning("recovery sweep failed: %s", e)
