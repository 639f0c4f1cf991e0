"""The sync and async payment retry helpers follow one schedule (issue 12 item 11: the loop
was written twice): the same seeded jitter gives the same waits, the last transient error
propagates, and bad arguments are refused before the gateway is called."""
from __future__ import annotations

import asyncio
import random

import pytest

from oms.engine.errors import ValidationError
from oms.engine.payments import PaymentTransientError, acall_with_retry, call_with_retry


def _failing(n: int, log: list[int]):
    def fn() -> str:
        log.append(len(log))
        if len(log) <= n:
            raise PaymentTransientError("down", "capture", "k", len(log))
        return "ok"
    return fn


@pytest.mark.parametrize("failures,attempts", [(0, 1), (2, 5), (4, 5), (5, 5), (3, 3)])
def test_sync_and_async_retry_agree(failures: int, attempts: int) -> None:
    sync_calls: list[int] = []
    sync_waits: list[float] = []
    fn = _failing(failures, sync_calls)
    try:
        sync_out: object = call_with_retry(fn, attempts=attempts, sleep=sync_waits.append,
                                           jitter=random.Random(7))
    except PaymentTransientError as e:
        sync_out = ("raised", e.args)

    async_calls: list[int] = []
    async_waits: list[float] = []
    afn = _failing(failures, async_calls)

    async def asleep(d: float) -> None:
        async_waits.append(d)

    async def run() -> object:
        async def call() -> str:
            return afn()
        try:
            return await acall_with_retry(call, attempts=attempts, sleep=asleep,
                                          jitter=random.Random(7))
        except PaymentTransientError as e:
            return ("raised", e.args)

    async_out = asyncio.run(run())
    assert sync_out == async_out
    assert sync_calls == async_calls == list(range(min(failures + 1, attempts)))
    assert sync_waits == async_waits
    assert len(sync_waits) == min(failures, attempts - 1)


def test_bad_arguments_refused_before_any_call() -> None:
    calls: list[int] = []
    with pytest.raises(ValidationError):
        call_with_retry(_failing(0, calls), attempts=0)

    async def call() -> str:
        return _failing(0, calls)()

    with pytest.raises(ValidationError):
        asyncio.run(acall_with_retry(call, base_delay_s=-1.0))
    assert calls == []
