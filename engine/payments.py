"""Payment gateway port, a deterministic test gateway, and retry with backoff.

The gateway keeps **all** of its state in a ``Ledger`` — a string key/value store with only
``get`` and ``set_if_absent`` — never in instance attributes. The server supplies a Redis-backed
ledger, so any number of server processes share one gateway memory and idempotency holds across
them. ``set_if_absent`` is the only commit point:

* **Authorize**: the authorization id is derived from the idempotency key, and the record is
  committed with one ``set_if_absent(auth:<id>)``. Concurrent calls with the same key compute
  the same record; whichever lands first is what everyone returns.
* **Capture / refund** must also respect a running total (captured <= authorised, refunded <=
  captured), which a single key cannot express. Each authorization (capture) therefore owns an
  append-only log of slots ``...:0, :1, ...``; a caller reads the slots in order, summing
  amounts, and claims the first empty slot with ``set_if_absent`` only if the new total stays
  within the limit. Slots are written once, so the total below a slot never changes and the
  check cannot be invalidated by a concurrent writer (who would have taken the slot: the loser
  reads it and re-checks). The entry of a capture/refund is a pure function of the request, and
  a caller that meets its own id while scanning returns it: a repeated or concurrent call with
  the same key can never append twice. After appending, an index record ``cap:<id>`` /
  ``ref:<id>`` is written; if a process dies in between, repeating the call repairs it.
* **Void** (an order cancelled before it shipped gives the held amount back to the customer) is
  an entry of kind ``void`` appended to the same capture log, with amount 0. A capture scanning
  the log stops at it and is declined; a capture that took its slot first stands, and the void
  releases what the captures before it left. So a void and a concurrent capture can never both
  take the same money.
* Simulated transient failures count attempts per idempotency key with the same trick: attempt
  ``i`` claims slot ``attempt:<op>:<key>:<i>``.

Every operation is a handful of single-key commands, so the ledger also works on Redis Cluster.

Test tokens of ``DeterministicGateway``:

====================== =====================================================================
``tok_visa``           authorises
``tok_ok...``          (any token starting with ``tok_ok``) authorises
``tok_decline``        ``PaymentDeclined`` "card declined" (code ``card_declined``)
``tok_insufficient``   ``PaymentDeclined`` "insufficient funds" (code ``insufficient_funds``)
``tok_transient_<n>``  ``PaymentTransientError`` on the first n attempts with one idempotency
                       key, then authorises
``tok_malfunction``    the gateway malfunctions: ``GatewayMalfunction`` (not a PaymentError,
                       as a broken SDK raises something unexpected), nothing recorded
anything else          ``PaymentDeclined`` "invalid payment token" (code ``invalid_token``)
====================== =====================================================================

A declined authorization is recorded too, so repeating it with the same key declines again
without consulting the token (as real gateways replay stored errors).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from oms.engine.errors import FieldViolation, NotFoundError, OmsError, ValidationError

__all__ = [
    "PaymentError",
    "PaymentDeclined",
    "PaymentTransientError",
    "IdempotencyKeyReused",
    "Authorization",
    "Capture",
    "Refund",
    "Void",
    "PaymentGateway",
    "Ledger",
    "MemoryLedger",
    "DeterministicGateway",
    "call_with_retry",
    "acall_with_retry",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- errors


class GatewayMalfunction(RuntimeError):
    """Deliberately not an OmsError: what a gateway that misbehaves raises (``tok_malfunction``),
    so that callers' handling of unexpected errors can be exercised on a real path."""


class PaymentError(OmsError):
    """Root of the payment errors."""


class PaymentDeclined(PaymentError):
    """Final: the gateway refused (card declined, over-capture, over-refund ...). Retrying the
    same request will not help. ``reason`` is the human text, ``code`` a stable identifier."""

    def __init__(self, reason: str, code: str = "declined", detail: str = "") -> None:
        self.reason, self.code = reason, code
        super().__init__(f"payment declined: {reason}" + (f" ({detail})" if detail else ""))


class PaymentTransientError(PaymentError):
    """Retryable: the gateway did not answer or answered "try again"; nothing was committed."""

    def __init__(self, message: str, op: str = "", idempotency_key: str = "",
                 attempt: int = 0) -> None:
        self.op, self.idempotency_key, self.attempt = op, idempotency_key, attempt
        super().__init__(message)


class IdempotencyKeyReused(PaymentError, ValidationError):
    """The idempotency key was used before for a different request (other order, amount,
    token, authorization or capture). Answering with the first result would be wrong."""

    def __init__(self, op: str, key: str, first: Mapping[str, object],
                 now: Mapping[str, object]) -> None:
        self.op, self.key = op, key
        ValidationError.__init__(self, [FieldViolation(
            "idempotency_key",
            f"{key!r} was first used for {op} {dict(first)}, now for {dict(now)}")])


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Authorization:
    id: str
    order_id: str
    amount_cents: int
    status: str  # "AUTHORIZED" (declines raise PaymentDeclined instead)


@dataclass(frozen=True)
class Capture:
    id: str
    authorization_id: str
    amount_cents: int


@dataclass(frozen=True)
class Refund:
    id: str
    capture_id: str
    amount_cents: int


@dataclass(frozen=True)
class Void:
    id: str
    authorization_id: str
    released_cents: int  # what the authorization still held: authorised minus captured before


@runtime_checkable
class PaymentGateway(Protocol):
    def authorize(self, order_id: str, amount_cents: int, token: str,
                  idempotency_key: str) -> Authorization: ...

    def capture(self, authorization_id: str, amount_cents: int,
                idempotency_key: str) -> Capture: ...

    def refund(self, capture_id: str, amount_cents: int, idempotency_key: str) -> Refund: ...

    def void(self, authorization_id: str, idempotency_key: str) -> Void: ...


# --------------------------------------------------------------------------- ledger


@runtime_checkable
class Ledger(Protocol):
    """The gateway's whole memory: write-once string values.

    ``set_if_absent`` stores ``value`` unless ``key`` already has one, and returns what is
    stored afterwards (ours or the earlier one) atomically — Redis ``SET key value NX GET``
    (or ``SETNX`` + ``GET``, which is safe here because values are never changed or deleted).
    """

    def get(self, key: str) -> str | None: ...

    def set_if_absent(self, key: str, value: str) -> str: ...


class MemoryLedger:
    """In-process ledger: a dict behind a lock (for tests and single-process runs)."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def set_if_absent(self, key: str, value: str) -> str:
        with self._lock:
            return self._data.setdefault(key, value)

    def snapshot(self) -> dict[str, str]:
        """A copy of everything stored (for inspection in tests)."""
        with self._lock:
            return dict(self._data)

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


# --------------------------------------------------------------------------- gateway

_TRANSIENT_RE = re.compile(r"tok_transient_(\d{1,4})")
_OPS = ("authorize", "capture", "refund", "void")
_VOID = "void"  # the ``kind`` of a void entry in a capture log


def _dumps(obj: Mapping[str, Any]) -> str:
    # Canonical JSON: identical requests give identical strings, which the commit logic uses.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _require_key(key: str) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ValidationError.one("idempotency_key", f"must be a non-empty string, got {key!r}")


def _require_amount(amount_cents: int) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValidationError.one("amount_cents",
                                  f"must be a positive integer, got {amount_cents!r}")


class DeterministicGateway:
    """A scripted gateway for tests, demos and load runs (see the module docstring for the
    tokens and the storage scheme).

    ``transient_failures`` maps an operation (``"authorize"``, ``"capture"``, ``"refund"``) to
    the number of attempts, per idempotency key, that fail with ``PaymentTransientError``
    before the operation goes through — to exercise retries of captures and refunds, which
    carry no token. For ``authorize`` the larger of this and a ``tok_transient_<n>`` count
    applies. ``namespace`` prefixes every ledger key.
    """

    def __init__(self, ledger: Ledger, transient_failures: Mapping[str, int] | None = None,
                 namespace: str = "pay:") -> None:
        self.ledger = ledger
        tf = dict(transient_failures or {})
        for op, n in tf.items():
            if op not in _OPS:
                raise ValidationError.one("transient_failures",
                                          f"unknown operation {op!r}, expected one of {_OPS}")
            if not isinstance(n, int) or n < 0:
                raise ValidationError.one(f"transient_failures[{op}]",
                                          f"must be an integer >= 0, got {n!r}")
        self.transient_failures = tf
        self.ns = namespace

    # -- keys and ids

    def _id(self, prefix: str, op: str, key: str) -> str:
        h = hashlib.sha256(f"{self.ns}\0{op}\0{key}".encode()).hexdigest()[:24]
        return f"{prefix}_{h}"

    def _k_auth(self, auth_id: str) -> str:
        return f"{self.ns}auth:{auth_id}"

    def _k_cap_slot(self, auth_id: str, i: int) -> str:
        return f"{self.ns}auth:{auth_id}:cap:{i}"

    def _k_cap(self, cap_id: str) -> str:
        return f"{self.ns}cap:{cap_id}"

    def _k_void(self, void_id: str) -> str:
        return f"{self.ns}void:{void_id}"

    def _k_ref_slot(self, cap_id: str, i: int) -> str:
        return f"{self.ns}cap:{cap_id}:ref:{i}"

    def _k_ref(self, ref_id: str) -> str:
        return f"{self.ns}ref:{ref_id}"

    def _load(self, key: str) -> dict[str, Any] | None:
        raw = self.ledger.get(key)
        return None if raw is None else json.loads(raw)

    def _maybe_fail(self, op: str, key: str, failures: int) -> None:
        """Fail the first ``failures`` attempts for (op, key); each attempt claims a slot."""
        if failures <= 0:
            return
        nonce = uuid.uuid4().hex
        for i in range(failures):
            if self.ledger.set_if_absent(f"{self.ns}attempt:{op}:{key}:{i}", nonce) == nonce:
                raise PaymentTransientError(
                    f"{op}: gateway temporarily unavailable (simulated failure {i + 1} of "
                    f"{failures} for idempotency key {key!r})", op, key, i + 1)

    # -- authorize

    @staticmethod
    def _token_outcome(token: str) -> tuple[int, str, str]:
        """(transient failures, decline reason, decline code) for a test token."""
        if token == "tok_visa" or token.startswith("tok_ok"):
            return 0, "", ""
        if token == "tok_decline":
            return 0, "card declined", "card_declined"
        if token == "tok_insufficient":
            return 0, "insufficient funds", "insufficient_funds"
        m = _TRANSIENT_RE.fullmatch(token)
        if m:
            return int(m.group(1)), "", ""
        return 0, "invalid payment token", "invalid_token"

    def authorize(self, order_id: str, amount_cents: int, token: str,
                  idempotency_key: str) -> Authorization:
        if not isinstance(order_id, str) or not order_id:
            raise ValidationError.one("order_id", f"must be a non-empty string, got {order_id!r}")
        _require_amount(amount_cents)
        if not isinstance(token, str) or not token:
            raise ValidationError.one("token", f"must be a non-empty string, got {token!r}")
        _require_key(idempotency_key)
        auth_id = self._id("auth", "authorize", idempotency_key)
        # The token is kept only as a fingerprint for the reuse check.
        request = {"order_id": order_id, "amount_cents": amount_cents,
                   "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:16]}
        key = self._k_auth(auth_id)
        rec = self._load(key)
        if rec is None:
            if token == "tok_malfunction":
                raise GatewayMalfunction("the gateway answered something unexpected")
            transient, reason, code = self._token_outcome(token)
            self._maybe_fail("authorize", idempotency_key,
                             max(transient, self.transient_failures.get("authorize", 0)))
            candidate = {"id": auth_id, **request,
                         "status": "DECLINED" if reason else "AUTHORIZED",
                         "decline_reason": reason, "decline_code": code}
            rec = json.loads(self.ledger.set_if_absent(key, _dumps(candidate)))
        first = {k: rec[k] for k in request}
        if first != request:
            raise IdempotencyKeyReused("authorize", idempotency_key, first, request)
        if rec["status"] == "DECLINED":
            raise PaymentDeclined(rec["decline_reason"], rec["decline_code"],
                                  f"order {order_id!r}, {amount_cents} cents")
        return Authorization(rec["id"], rec["order_id"], rec["amount_cents"], rec["status"])

    # -- capture / refund: append to a write-once log under a running-total limit

    def _append(self, slot_key: Callable[[int], str], entry: dict[str, Any], limit: int,
                over_limit: Callable[[int], PaymentDeclined],
                request_fields: tuple[str, ...], op: str, idem_key: str) -> dict[str, Any]:
        """Append ``entry`` to the log unless its amount would take the total over ``limit``;
        return the entry as stored (an earlier identical request's if there was one)."""
        mine = _dumps(entry)
        total = 0
        i = 0
        while True:
            raw = self.ledger.get(slot_key(i))
            if raw is None:
                if total + entry["amount_cents"] > limit:
                    raise over_limit(total)
                raw = self.ledger.set_if_absent(slot_key(i), mine)
                if raw == mine:
                    return entry
            e = json.loads(raw)
            if e.get("kind") == _VOID:
                raise PaymentDeclined(f"authorization {e['authorization_id']!r} was voided, "
                                      "nothing to capture", "authorization_voided")
            if e["id"] == entry["id"]:
                first = {k: e[k] for k in request_fields}
                now = {k: entry[k] for k in request_fields}
                if first != now:
                    raise IdempotencyKeyReused(op, idem_key, first, now)
                return e
            total += e["amount_cents"]
            i += 1

    def _replay(self, rec: dict[str, Any], entry: dict[str, Any],
                request_fields: tuple[str, ...], op: str, idem_key: str) -> None:
        first = {k: rec[k] for k in request_fields}
        now = {k: entry[k] for k in request_fields}
        if first != now:
            raise IdempotencyKeyReused(op, idem_key, first, now)

    def _authorised_cents(self, authorization_id: str, op: str, idempotency_key: str) -> int:
        """The amount of an authorization that ``op`` (capture, void) may act on; the simulated
        transient failures of ``op`` happen here, after the checks."""
        auth = self._load(self._k_auth(authorization_id))
        if auth is None:
            raise NotFoundError("authorization", authorization_id)
        if auth["status"] != "AUTHORIZED":
            raise PaymentDeclined(f"authorization {authorization_id!r} was declined, nothing "
                                  f"to {op}", "authorization_declined")
        self._maybe_fail(op, idempotency_key, self.transient_failures.get(op, 0))
        return int(auth["amount_cents"])

    def capture(self, authorization_id: str, amount_cents: int,
                idempotency_key: str) -> Capture:
        """Capture (part of) an authorization; several partial captures may follow each
        other as long as they total at most the authorised amount."""
        _require_amount(amount_cents)
        _require_key(idempotency_key)
        cap_id = self._id("cap", "capture", idempotency_key)
        entry = {"id": cap_id, "authorization_id": authorization_id,
                 "amount_cents": amount_cents}
        fields = ("authorization_id", "amount_cents")
        done = self._load(self._k_cap(cap_id))
        if done is not None:
            self._replay(done, entry, fields, "capture", idempotency_key)
            return Capture(done["id"], done["authorization_id"], done["amount_cents"])
        limit = self._authorised_cents(authorization_id, "capture", idempotency_key)

        def over(total: int) -> PaymentDeclined:
            return PaymentDeclined(
                f"capture of {amount_cents} cents exceeds authorization {authorization_id!r}: "
                f"{total} of {limit} cents already captured", "over_capture")

        e = self._append(lambda i: self._k_cap_slot(authorization_id, i), entry, limit, over,
                         fields, "capture", idempotency_key)
        self.ledger.set_if_absent(self._k_cap(cap_id), _dumps(e))
        return Capture(e["id"], e["authorization_id"], e["amount_cents"])

    def refund(self, capture_id: str, amount_cents: int, idempotency_key: str) -> Refund:
        """Refund (part of) a capture; partial refunds may total at most the captured amount."""
        _require_amount(amount_cents)
        _require_key(idempotency_key)
        ref_id = self._id("ref", "refund", idempotency_key)
        entry = {"id": ref_id, "capture_id": capture_id, "amount_cents": amount_cents}
        fields = ("capture_id", "amount_cents")
        done = self._load(self._k_ref(ref_id))
        if done is not None:
            self._replay(done, entry, fields, "refund", idempotency_key)
            return Refund(done["id"], done["capture_id"], done["amount_cents"])
        cap = self._load(self._k_cap(capture_id))
        if cap is None:
            raise NotFoundError("capture", capture_id)
        self._maybe_fail("refund", idempotency_key, self.transient_failures.get("refund", 0))
        limit = cap["amount_cents"]

        def over(total: int) -> PaymentDeclined:
            return PaymentDeclined(
                f"refund of {amount_cents} cents exceeds capture {capture_id!r}: {total} of "
                f"{limit} cents already refunded", "over_refund")

        e = self._append(lambda i: self._k_ref_slot(capture_id, i), entry, limit, over,
                         fields, "refund", idempotency_key)
        self.ledger.set_if_absent(self._k_ref(ref_id), _dumps(e))
        return Refund(e["id"], e["capture_id"], e["amount_cents"])

    def void(self, authorization_id: str, idempotency_key: str) -> Void:
        """Void what an authorization still holds (the order was cancelled before shipping).

        Voiding twice, with any key, answers with the first void; a later capture is declined.
        A fully captured authorization has nothing left to void: ``PaymentDeclined``
        (``already_captured``)."""
        _require_key(idempotency_key)
        void_id = self._id("void", "void", idempotency_key)
        request = {"authorization_id": authorization_id}
        done = self._load(self._k_void(void_id))
        if done is not None:
            self._replay(done, request, ("authorization_id",), "void", idempotency_key)
            return Void(done["id"], done["authorization_id"], done["released_cents"])
        limit = self._authorised_cents(authorization_id, "void", idempotency_key)
        mine = _dumps({"id": void_id, "authorization_id": authorization_id, "amount_cents": 0,
                       "kind": _VOID})
        total = 0
        i = 0
        while True:
            raw = self.ledger.get(self._k_cap_slot(authorization_id, i))
            if raw is None:
                if total >= limit:
                    raise PaymentDeclined(f"authorization {authorization_id!r} is fully "
                                          f"captured ({total} cents), nothing to void",
                                          "already_captured")
                raw = self.ledger.set_if_absent(self._k_cap_slot(authorization_id, i), mine)
            e = json.loads(raw)
            if e.get("kind") == _VOID:  # ours, or an earlier void with another key
                v = {"id": e["id"], "authorization_id": authorization_id,
                     "released_cents": limit - total}
                self.ledger.set_if_absent(self._k_void(void_id), _dumps(v))
                return Void(v["id"], authorization_id, v["released_cents"])
            total += e["amount_cents"]
            i += 1

    # -- read side

    def get_authorization(self, authorization_id: str) -> Authorization:
        rec = self._load(self._k_auth(authorization_id))
        if rec is None or rec["status"] != "AUTHORIZED":
            raise NotFoundError("authorization", authorization_id)
        return Authorization(rec["id"], rec["order_id"], rec["amount_cents"], rec["status"])

    def _log(self, slot_key: Callable[[int], str]) -> list[dict[str, Any]]:
        out = []
        i = 0
        while (raw := self.ledger.get(slot_key(i))) is not None:
            out.append(json.loads(raw))
            i += 1
        return out

    def captures(self, authorization_id: str) -> list[Capture]:
        """Captures of an authorization in commit order."""
        return [Capture(e["id"], e["authorization_id"], e["amount_cents"])
                for e in self._log(lambda i: self._k_cap_slot(authorization_id, i))
                if e.get("kind") != _VOID]

    def voided(self, authorization_id: str) -> bool:
        return any(e.get("kind") == _VOID
                   for e in self._log(lambda i: self._k_cap_slot(authorization_id, i)))

    def refunds(self, capture_id: str) -> list[Refund]:
        """Refunds of a capture in commit order."""
        return [Refund(e["id"], e["capture_id"], e["amount_cents"])
                for e in self._log(lambda i: self._k_ref_slot(capture_id, i))]

    def captured_cents(self, authorization_id: str) -> int:
        return sum(c.amount_cents for c in self.captures(authorization_id))

    def refunded_cents(self, capture_id: str) -> int:
        return sum(r.amount_cents for r in self.refunds(capture_id))


# --------------------------------------------------------------------------- retry

_JITTER = random.Random(0)


def _delay(retry: int, base_delay_s: float, max_delay_s: float, jitter: random.Random) -> float:
    """Capped exponential backoff with "equal jitter": half the step fixed, half random, so
    retries spread out but never collapse to zero wait."""
    step = min(max_delay_s, base_delay_s * (2 ** retry))
    return step / 2 + jitter.uniform(0, step / 2)


def _check_retry_args(attempts: int, base_delay_s: float, max_delay_s: float) -> None:
    if not isinstance(attempts, int) or attempts < 1:
        raise ValidationError.one("attempts", f"must be an integer >= 1, got {attempts!r}")
    if base_delay_s < 0 or max_delay_s < 0:
        raise ValidationError.one("base_delay_s", f"delays must be >= 0, got base "
                                  f"{base_delay_s!r}, max {max_delay_s!r}")


def _retry_delays(attempts: int, base_delay_s: float, max_delay_s: float,
                  jitter: random.Random) -> Iterator[float]:
    """The waits between ``attempts`` calls, checked now and each drawn only when a call has
    failed, so the jitter stream is consumed exactly as often as a retry happens."""
    _check_retry_args(attempts, base_delay_s, max_delay_s)
    return (_delay(retry, base_delay_s, max_delay_s, jitter) for retry in range(attempts - 1))


def _next_delay(delays: Iterator[float], err: PaymentTransientError) -> float:
    """The wait before the next attempt; re-raises ``err`` when no attempt is left."""
    delay = next(delays, None)
    if delay is None:
        raise err
    return delay


def call_with_retry(fn: Callable[[], T], *, attempts: int = 5, base_delay_s: float = 0.05,
                    max_delay_s: float = 1.0, sleep: Callable[[float], object] = time.sleep,
                    jitter: random.Random = _JITTER) -> T:
    """Call ``fn()``; on ``PaymentTransientError`` wait and try again, at most ``attempts``
    calls in all. Any other exception (a decline included) propagates at once; when every
    attempt failed transiently the last error is re-raised.

    Only safe because ``fn`` reuses one idempotency key for every attempt: a "failed" call that
    did commit returns the committed result on the next try instead of charging again. The
    default ``jitter`` is seeded for reproducibility; servers should pass ``random.Random()``
    so that processes do not retry in lockstep.
    """
    delays = _retry_delays(attempts, base_delay_s, max_delay_s, jitter)
    while True:
        try:
            return fn()
        except PaymentTransientError as e:
            sleep(_next_delay(delays, e))


async def acall_with_retry(fn: Callable[[], Awaitable[T]], *, attempts: int = 5,
                           base_delay_s: float = 0.05, max_delay_s: float = 1.0,
                           sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                           jitter: random.Random = _JITTER) -> T:
    """``call_with_retry`` for coroutines: ``fn`` returns a fresh awaitable per attempt
    (e.g. ``lambda: asyncio.to_thread(gw.capture, auth_id, amount, key)``)."""
    delays = _retry_delays(attempts, base_delay_s, max_delay_s, jitter)
    while True:
        try:
            return await fn()
        except PaymentTransientError as e:
            await sleep(_next_delay(delays, e))
