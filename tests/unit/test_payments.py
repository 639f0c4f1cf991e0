"""Payment gateway, ledger and retry (engine/payments.py)."""
from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from oms.engine.errors import NotFoundError, OmsError, ValidationError
from oms.engine.payments import (
    Authorization,
    Capture,
    DeterministicGateway,
    IdempotencyKeyReused,
    Ledger,
    MemoryLedger,
    PaymentDeclined,
    PaymentGateway,
    PaymentTransientError,
    Refund,
    Void,
    acall_with_retry,
    call_with_retry,
)


class SlowLedger(MemoryLedger):
    """A ledger that yields the GIL inside every call, so threads interleave between the
    gateway's reads and writes the way separate server processes would."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self._rng = random.Random(seed)
        self.calls = 0

    def _pause(self) -> None:
        self.calls += 1
        time.sleep(self._rng.random() * 0.0005)

    def get(self, key: str) -> str | None:
        self._pause()
        return super().get(key)

    def set_if_absent(self, key: str, value: str) -> str:
        self._pause()
        return super().set_if_absent(key, value)


@pytest.fixture()
def ledger() -> MemoryLedger:
    return MemoryLedger()


@pytest.fixture()
def gw(ledger: MemoryLedger) -> DeterministicGateway:
    return DeterministicGateway(ledger)


def no_sleep(_: float) -> None:
    return None


# --------------------------------------------------------------------------- protocol, tokens


def test_protocols_and_errors() -> None:
    led = MemoryLedger()
    assert isinstance(led, Ledger)
    assert isinstance(DeterministicGateway(led), PaymentGateway)
    assert issubclass(PaymentDeclined, OmsError) and issubclass(PaymentTransientError, OmsError)
    assert issubclass(IdempotencyKeyReused, ValidationError)


@pytest.mark.parametrize("token", ["tok_visa", "tok_ok", "tok_ok_mastercard", "tok_okay"])
def test_approving_tokens(gw: DeterministicGateway, token: str) -> None:
    a = gw.authorize("o1", 1999, token, "k1")
    assert a == Authorization(a.id, "o1", 1999, "AUTHORIZED")
    assert a.id.startswith("auth_")
    assert gw.get_authorization(a.id) == a


@pytest.mark.parametrize(("token", "reason", "code"), [
    ("tok_decline", "card declined", "card_declined"),
    ("tok_insufficient", "insufficient funds", "insufficient_funds"),
    ("tok_bogus", "invalid payment token", "invalid_token"),
    ("tok_transient_x", "invalid payment token", "invalid_token"),
])
def test_declining_tokens(gw: DeterministicGateway, token: str, reason: str, code: str) -> None:
    with pytest.raises(PaymentDeclined) as ei:
        gw.authorize("o1", 500, token, "k1")
    assert ei.value.reason == reason and ei.value.code == code
    assert reason in str(ei.value) and "'o1'" in str(ei.value)
    # the decline is recorded: the same key declines again
    with pytest.raises(PaymentDeclined, match=reason):
        gw.authorize("o1", 500, token, "k1")


def test_transient_token_fails_n_times_per_key_then_succeeds(gw: DeterministicGateway,
                                                             ledger: MemoryLedger) -> None:
    for attempt in (1, 2, 3):
        with pytest.raises(PaymentTransientError) as ei:
            gw.authorize("o1", 700, "tok_transient_3", "k1")
        assert ei.value.attempt == attempt and ei.value.op == "authorize"
    a = gw.authorize("o1", 700, "tok_transient_3", "k1")
    assert gw.authorize("o1", 700, "tok_transient_3", "k1") == a  # replay, no more failures
    # the count lives in the ledger: a new gateway object on the same ledger agrees
    assert DeterministicGateway(ledger).authorize("o1", 700, "tok_transient_3", "k1") == a
    # counted per idempotency key
    with pytest.raises(PaymentTransientError):
        gw.authorize("o2", 700, "tok_transient_3", "k2")
    assert DeterministicGateway(MemoryLedger()).authorize("o1", 1, "tok_transient_0", "k")


def test_validation_names_the_field(gw: DeterministicGateway) -> None:
    cases = [
        (("", 100, "tok_visa", "k"), "order_id"),
        (("o1", 0, "tok_visa", "k"), "amount_cents"),
        (("o1", -5, "tok_visa", "k"), "amount_cents"),
        (("o1", 1.5, "tok_visa", "k"), "amount_cents"),
        (("o1", True, "tok_visa", "k"), "amount_cents"),
        (("o1", 100, "", "k"), "token"),
        (("o1", 100, "tok_visa", ""), "idempotency_key"),
    ]
    for args, field in cases:
        with pytest.raises(ValidationError) as ei:
            gw.authorize(*args)  # type: ignore[arg-type]
        assert ei.value.violations[0].field == field
    with pytest.raises(ValidationError, match="'settle'"):
        DeterministicGateway(MemoryLedger(), {"settle": 1})


# --------------------------------------------------------------------------- idempotency


def test_idempotent_repeats_return_the_same_ids(gw: DeterministicGateway) -> None:
    a1 = gw.authorize("o1", 5000, "tok_visa", "auth-o1")
    a2 = gw.authorize("o1", 5000, "tok_visa", "auth-o1")
    assert a1 == a2
    c1 = gw.capture(a1.id, 3000, "cap-o1")
    c2 = gw.capture(a1.id, 3000, "cap-o1")
    assert c1 == c2 == Capture(c1.id, a1.id, 3000)
    r1 = gw.refund(c1.id, 1000, "ref-o1")
    assert gw.refund(c1.id, 1000, "ref-o1") == r1 == Refund(r1.id, c1.id, 1000)
    assert gw.captures(a1.id) == [c1]
    assert gw.refunds(c1.id) == [r1]
    # a different key is a different authorization
    assert gw.authorize("o1", 5000, "tok_visa", "auth-o1-again").id != a1.id


def test_key_reused_for_a_different_request_is_refused(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 5000, "tok_visa", "k")
    for args in (("o2", 5000, "tok_visa", "k"), ("o1", 5001, "tok_visa", "k"),
                 ("o1", 5000, "tok_ok_other", "k")):
        with pytest.raises(IdempotencyKeyReused, match="'k'"):
            gw.authorize(*args)
    c = gw.capture(a.id, 100, "c")
    with pytest.raises(IdempotencyKeyReused):
        gw.capture(a.id, 200, "c")
    gw.refund(c.id, 50, "r")
    with pytest.raises(IdempotencyKeyReused):
        gw.refund(c.id, 60, "r")


def test_no_state_in_the_gateway_object(ledger: MemoryLedger) -> None:
    """Two gateway objects (two server processes) on one ledger behave as one gateway."""
    g1, g2 = DeterministicGateway(ledger), DeterministicGateway(ledger)
    a = g1.authorize("o1", 1000, "tok_visa", "k")
    assert g2.authorize("o1", 1000, "tok_visa", "k") == a
    c = g2.capture(a.id, 600, "c1")
    with pytest.raises(PaymentDeclined, match="600 of 1000"):
        g1.capture(a.id, 500, "c2")
    assert g1.capture(a.id, 600, "c1") == c
    assert all(isinstance(v, str) and json.loads(v) is not None
               for v in ledger.snapshot().values())


def test_crash_between_log_append_and_index_is_repaired_by_repeating() -> None:
    """Simulate a process dying after the capture entered the log but before its index."""

    class DropIndexOnce(MemoryLedger):
        dropped = False

        def set_if_absent(self, key: str, value: str) -> str:
            if key.startswith("pay:cap:") and ":ref:" not in key and not self.dropped:
                self.dropped = True
                raise ConnectionError("process died")
            return super().set_if_absent(key, value)

    led = DropIndexOnce()
    gw = DeterministicGateway(led)
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    with pytest.raises(ConnectionError):
        gw.capture(a.id, 400, "c")
    c = gw.capture(a.id, 400, "c")  # the client retries with the same key
    assert gw.captures(a.id) == [c]  # charged once
    assert gw.refund(c.id, 400, "r").amount_cents == 400


# --------------------------------------------------------------------------- limits


def test_over_capture_refused(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    with pytest.raises(PaymentDeclined) as ei:
        gw.capture(a.id, 1001, "c0")
    assert ei.value.code == "over_capture" and "1001" in str(ei.value)
    gw.capture(a.id, 700, "c1")
    gw.capture(a.id, 300, "c2")  # partial captures up to the authorised amount
    with pytest.raises(PaymentDeclined, match="1000 of 1000"):
        gw.capture(a.id, 1, "c3")
    assert gw.captured_cents(a.id) == 1000
    with pytest.raises(NotFoundError, match="auth_nope"):
        gw.capture("auth_nope", 1, "c4")


def test_cannot_capture_a_declined_authorization(gw: DeterministicGateway) -> None:
    with pytest.raises(PaymentDeclined):
        gw.authorize("o1", 1000, "tok_decline", "k")
    declined_id = gw._id("auth", "authorize", "k")
    with pytest.raises(PaymentDeclined, match="declined, nothing to capture"):
        gw.capture(declined_id, 100, "c")
    with pytest.raises(NotFoundError):
        gw.get_authorization(declined_id)


def test_partial_refunds_sum_and_over_refund_refused(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 5000, "tok_visa", "k")
    c = gw.capture(a.id, 4000, "c")
    gw.refund(c.id, 1500, "r1")
    gw.refund(c.id, 1500, "r2")
    with pytest.raises(PaymentDeclined) as ei:
        gw.refund(c.id, 1001, "r3")
    assert ei.value.code == "over_refund" and "3000 of 4000" in str(ei.value)
    gw.refund(c.id, 1000, "r4")
    assert gw.refunded_cents(c.id) == 4000
    assert [r.amount_cents for r in gw.refunds(c.id)] == [1500, 1500, 1000]
    with pytest.raises(PaymentDeclined):
        gw.refund(c.id, 1, "r5")
    with pytest.raises(NotFoundError, match="cap_nope"):
        gw.refund("cap_nope", 1, "r6")


# --------------------------------------------------------------------------- retry


def test_transient_then_success_with_retry_charges_once(ledger: MemoryLedger) -> None:
    gw = DeterministicGateway(ledger, transient_failures={"capture": 2, "refund": 1})
    delays: list[float] = []
    a = call_with_retry(lambda: gw.authorize("o1", 2500, "tok_transient_2", "auth-o1"),
                        sleep=delays.append)
    assert len(delays) == 2
    c = call_with_retry(lambda: gw.capture(a.id, 2500, "cap-o1"), sleep=delays.append)
    assert len(delays) == 4
    assert gw.captures(a.id) == [c]  # exactly one charge
    assert call_with_retry(lambda: gw.capture(a.id, 2500, "cap-o1"), sleep=delays.append) == c
    assert len(delays) == 4  # a replay does not fail again
    r = call_with_retry(lambda: gw.refund(c.id, 2500, "ref-o1"), sleep=delays.append)
    assert gw.refunds(c.id) == [r]
    caps = [k for k in ledger.snapshot() if k.startswith(f"pay:auth:{a.id}:cap:")]
    assert caps == [f"pay:auth:{a.id}:cap:0"]


def test_retry_gives_up_and_reraises_the_last_error(gw: DeterministicGateway) -> None:
    delays: list[float] = []
    with pytest.raises(PaymentTransientError) as ei:
        call_with_retry(lambda: gw.authorize("o1", 100, "tok_transient_9", "k"), attempts=4,
                        sleep=delays.append)
    assert ei.value.attempt == 4 and len(delays) == 3


def test_retry_does_not_retry_declines(gw: DeterministicGateway) -> None:
    calls = []

    def fn() -> Authorization:
        calls.append(1)
        return gw.authorize("o1", 100, "tok_decline", "k")

    with pytest.raises(PaymentDeclined):
        call_with_retry(fn, sleep=no_sleep)
    assert len(calls) == 1


def test_backoff_is_exponential_capped_and_jittered() -> None:
    def always() -> None:
        raise PaymentTransientError("down")

    delays: list[float] = []
    with pytest.raises(PaymentTransientError):
        call_with_retry(always, attempts=8, base_delay_s=0.1, max_delay_s=1.0,
                        sleep=delays.append, jitter=random.Random(1))
    steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert len(delays) == 7
    for d, s in zip(delays, steps):
        assert s / 2 <= d <= s
    assert len(set(delays)) == 7  # jittered
    with pytest.raises(ValidationError, match="attempts"):
        call_with_retry(always, attempts=0)


def test_async_retry() -> None:
    gw = DeterministicGateway(MemoryLedger())
    slept: list[float] = []

    async def fake_sleep(d: float) -> None:
        slept.append(d)

    async def main() -> Authorization:
        return await acall_with_retry(
            lambda: asyncio.to_thread(gw.authorize, "o1", 100, "tok_transient_3", "k"),
            sleep=fake_sleep)

    a = asyncio.run(main())
    assert a.status == "AUTHORIZED" and len(slept) == 3

    async def give_up() -> None:
        async def fail() -> None:
            raise PaymentTransientError("down")
        await acall_with_retry(fail, attempts=2, base_delay_s=0.0)

    with pytest.raises(PaymentTransientError):
        asyncio.run(give_up())


# --------------------------------------------------------------------------- void


def test_void_releases_the_authorization_and_blocks_later_captures(
        gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    v = gw.void(a.id, "v1")
    assert v == Void(v.id, a.id, 1000) and gw.voided(a.id)
    assert gw.void(a.id, "v1") == v  # a repeat
    assert gw.void(a.id, "v2").id == v.id  # voided once, whatever the key
    with pytest.raises(PaymentDeclined) as e:
        gw.capture(a.id, 100, "c")
    assert e.value.code == "authorization_voided" and a.id in str(e.value)
    assert gw.captures(a.id) == [] and gw.captured_cents(a.id) == 0


def test_void_after_a_partial_capture_releases_the_rest(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    c = gw.capture(a.id, 300, "c")
    assert gw.void(a.id, "v").released_cents == 700
    assert gw.captures(a.id) == [c] and gw.capture(a.id, 300, "c") == c  # the capture stands
    with pytest.raises(PaymentDeclined):
        gw.capture(a.id, 100, "c2")


def test_void_refused_when_nothing_is_left_to_void(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    gw.capture(a.id, 1000, "c")
    with pytest.raises(PaymentDeclined) as e:
        gw.void(a.id, "v")
    assert e.value.code == "already_captured" and "1000 cents" in str(e.value)
    with pytest.raises(PaymentDeclined):
        gw.authorize("o2", 10, "tok_decline", "k2")
    with pytest.raises(PaymentDeclined) as e:
        gw.void(gw._id("auth", "authorize", "k2"), "v2")
    assert e.value.code == "authorization_declined"
    with pytest.raises(NotFoundError, match="auth_nope"):
        gw.void("auth_nope", "v3")


def test_void_key_reused_for_another_authorization_is_refused(gw: DeterministicGateway) -> None:
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    b = gw.authorize("o2", 1000, "tok_visa", "k2")
    gw.void(a.id, "v")
    with pytest.raises(IdempotencyKeyReused):
        gw.void(b.id, "v")


def test_transient_void_retried_voids_once(ledger: MemoryLedger) -> None:
    gw = DeterministicGateway(ledger, transient_failures={"void": 2})
    a = gw.authorize("o1", 500, "tok_visa", "k")
    v = call_with_retry(lambda: gw.void(a.id, "v"), sleep=no_sleep)
    assert v.released_cents == 500
    assert sum(1 for k in ledger.snapshot() if k.startswith(f"pay:auth:{a.id}:cap:")) == 1


# --------------------------------------------------------------------------- concurrency


def run_threads(n: int, fn: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)

    def go(i: int) -> object:
        barrier.wait()
        try:
            return fn(i)
        except OmsError as e:
            return e

    with ThreadPoolExecutor(n) as ex:
        return list(ex.map(go, range(n)))


def test_concurrent_authorize_same_key_one_authorization() -> None:
    for seed in range(5):
        led = SlowLedger(seed)
        results = run_threads(8, lambda i: DeterministicGateway(led).authorize(
            "o1", 1234, "tok_visa", "same-key"))
        assert all(isinstance(r, Authorization) for r in results)
        assert len({r.id for r in results}) == 1  # type: ignore[union-attr]
        assert [k for k in led.snapshot() if k.startswith("pay:auth:")] == [
            f"pay:auth:{results[0].id}"]  # type: ignore[union-attr]


def test_concurrent_transient_same_key_still_one_authorization() -> None:
    led = SlowLedger(3)
    results = run_threads(8, lambda i: call_with_retry(
        lambda: DeterministicGateway(led).authorize("o1", 10, "tok_transient_3", "k"),
        sleep=no_sleep))
    assert len({r.id for r in results}) == 1  # type: ignore[union-attr]


def test_concurrent_captures_same_key_charge_once() -> None:
    for seed in range(5):
        led = SlowLedger(seed)
        gw = DeterministicGateway(led)
        a = gw.authorize("o1", 1000, "tok_visa", "k")
        results = run_threads(8, lambda i: DeterministicGateway(led).capture(a.id, 400, "c"))
        assert len(set(results)) == 1 and isinstance(results[0], Capture)
        assert gw.captures(a.id) == [results[0]]


def test_concurrent_captures_different_keys_never_exceed_the_authorization() -> None:
    for seed in range(5):
        led = SlowLedger(seed)
        gw = DeterministicGateway(led)
        a = gw.authorize("o1", 1000, "tok_visa", "k")
        results = run_threads(8, lambda i: DeterministicGateway(led).capture(a.id, 300, f"c{i}"))
        ok = [r for r in results if isinstance(r, Capture)]
        declined = [r for r in results if isinstance(r, PaymentDeclined)]
        assert len(ok) == 3 and len(declined) == 5
        assert gw.captured_cents(a.id) == 900
        assert sorted(c.id for c in gw.captures(a.id)) == sorted(c.id for c in ok)


def test_concurrent_refunds_never_exceed_the_capture() -> None:
    led = SlowLedger(11)
    gw = DeterministicGateway(led)
    a = gw.authorize("o1", 1000, "tok_visa", "k")
    c = gw.capture(a.id, 1000, "c")
    results = run_threads(8, lambda i: DeterministicGateway(led).refund(c.id, 250, f"r{i % 6}"))
    ok = {r for r in results if isinstance(r, Refund)}
    assert len(ok) == 4 and gw.refunded_cents(c.id) == 1000


def test_concurrent_void_and_captures_never_both_take_the_money() -> None:
    for seed in range(8):
        led = SlowLedger(seed)
        gw = DeterministicGateway(led)
        a = gw.authorize("o1", 1000, "tok_visa", "k")

        def go(i: int) -> object:
            g = DeterministicGateway(led)
            return g.void(a.id, f"v{i}") if i % 3 == 0 else g.capture(a.id, 400, f"c{i}")

        results = run_threads(9, go)
        voids = [r for r in results if isinstance(r, Void)]
        caps = [r for r in results if isinstance(r, Capture)]
        assert all(isinstance(r, (Void, Capture, PaymentDeclined)) for r in results)
        assert len({v.id for v in voids}) == 1  # every void answers with the one void
        captured = gw.captured_cents(a.id)
        assert captured == 400 * len(caps) <= 1000 and sorted(c.id for c in gw.captures(a.id)) == \
            sorted(c.id for c in caps)
        assert all(v.released_cents == 1000 - captured for v in voids)
        with pytest.raises(PaymentDeclined):
            gw.capture(a.id, 1, "late")
