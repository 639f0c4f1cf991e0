"""API keys without I/O: the key format, the bearer metadata a hostile caller may send, the
keyed hash, and the per-key rate limiter (driven by its ``now`` argument, never the clock)."""
from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oms.engine.errors import UnauthenticatedError
from oms.server.auth import api_keys
from oms.server.auth.api_keys import ApiKeyRecord, RateLimiter
from oms.server.auth.authenticator import bearer_token, static_admin_key

KEY_IDS = st.text(string.ascii_lowercase + string.digits, min_size=16, max_size=16)
SECRETS = st.text(string.ascii_letters + string.digits + "_-", min_size=32, max_size=128)
KEY = api_keys.format_key("abcdef0123456789", "s" * 43)


# ---- format ----------------------------------------------------------------------------------
@given(KEY_IDS, SECRETS)
def test_format_parse_round_trip(key_id: str, secret: str) -> None:
    parsed = api_keys.parse_key(api_keys.format_key(key_id, secret))
    assert parsed == api_keys.ParsedKey(key_id, secret)


def test_new_keys_parse() -> None:
    for _ in range(50):
        key_id, secret = api_keys.new_key_id(), api_keys.new_secret()
        assert api_keys.KEY_ID_RE.fullmatch(key_id)
        assert api_keys.parse_key(api_keys.format_key(key_id, secret)) == (
            api_keys.ParsedKey(key_id, secret))


def test_new_keys_differ() -> None:
    assert len({api_keys.new_secret() for _ in range(100)}) == 100
    assert len({api_keys.new_key_id() for _ in range(100)}) == 100


@pytest.mark.parametrize("token", [
    "", "oms_", "oms__" + "s" * 43,
    "oms_ABCDEF0123456789_" + "s" * 43,        # key ids are lower case
    "oms_abcdef012345678_" + "s" * 43,         # 15 characters
    "oms_abcdef01234567890_" + "s" * 43,       # 17 characters
    "oms_abcdef0123456789_" + "s" * 31,        # secret too short
    "oms_abcdef0123456789_" + "s" * 129,       # secret too long
    "oms_abcdef0123456789_" + "s" * 42 + "!",
    "oms_abcdef0123456789_" + "s" * 42 + "\n",
    "OMS_abcdef0123456789_" + "s" * 43,
    " " + KEY, KEY + " ", "x" + KEY,
    "oms_abcdef0123456789_" + "s" * 42 + "é",
])
def test_parse_refuses_what_is_not_a_key(token: str) -> None:
    assert api_keys.parse_key(token) is None


@given(st.text(max_size=300))
def test_parse_never_raises(token: str) -> None:
    parsed = api_keys.parse_key(token)
    if parsed is not None:
        assert api_keys.format_key(parsed.key_id, parsed.secret) == token


# ---- the bearer metadata ---------------------------------------------------------------------
def test_bearer_token_found() -> None:
    assert bearer_token([("x-other", "1"), ("authorization", f"Bearer {KEY}")]) == KEY
    assert bearer_token([("authorization", f"bearer {KEY}")]) == KEY
    assert bearer_token([("authorization", f"Bearer {KEY}".encode())]) == KEY


def test_no_authorization_is_no_token() -> None:
    assert bearer_token(None) is None
    assert bearer_token([]) is None
    assert bearer_token([("x-api-key", KEY)]) is None


def test_surrounding_whitespace_is_not_part_of_the_token() -> None:
    # a key pasted from a file with its newline: the token is the key, nothing more
    assert bearer_token([("authorization", f"Bearer {KEY}\n")]) == KEY
    assert bearer_token([("authorization", f"  Bearer   {KEY}  ")]) == KEY


@pytest.mark.parametrize("value", [
    "Bearer", "Bearer ", "Bearer \n", "bearer\t", "Basic x", "Basic " + KEY, KEY,
    "Token " + KEY, "", "   ",
    "Bearer " + KEY[:-1] + "é",                    # non-ASCII
    "Bearer " + KEY + "\nX",                      # a control character inside
    "Bearer " + "\x00" + KEY,
    "Bearer " + "a" * (api_keys.MAX_TOKEN + 1),   # huge
    "Bearer " + "a" * 1_000_000,
])
def test_hostile_bearer_values_are_unauthenticated(value: str) -> None:
    with pytest.raises(UnauthenticatedError):
        bearer_token([("authorization", value)])


def test_hostile_bytes_values_are_unauthenticated() -> None:
    for raw in (b"Bearer \xff\xfe" + KEY.encode(), b"Bearer " + "é".encode() * 10,
                b"Bearer " + b"\x80" * 300):
        with pytest.raises(UnauthenticatedError):
            bearer_token([("authorization", raw)])


@given(st.text(max_size=400))
def test_bearer_token_is_a_printable_ascii_token_or_refused(value: str) -> None:
    try:
        token = bearer_token([("authorization", value)])
    except UnauthenticatedError:
        return
    assert token is not None
    assert 0 < len(token) <= api_keys.MAX_TOKEN
    assert token.isascii() and token.isprintable() and token == token.strip()


# ---- the static admin key --------------------------------------------------------------------
def test_static_admin_key_actor() -> None:
    full = static_admin_key(KEY)
    assert full.principal.actor == "abcdef0123456789" == full.principal.key_id
    assert full.principal.has_scope("refunds")
    plain = static_admin_key("x" * 40)
    assert plain.principal.actor == "admin-key" and plain.principal.key_id == ""


# ---- hash and compare ------------------------------------------------------------------------
def test_hash_is_keyed() -> None:
    h = api_keys.hash_secret(b"pepper-one", "s" * 43)
    assert len(h) == 64 and int(h, 16) >= 0
    assert h == api_keys.hash_secret(b"pepper-one", "s" * 43)
    assert h != api_keys.hash_secret(b"pepper-two", "s" * 43)
    assert "s" * 43 not in h


@given(SECRETS, SECRETS)
def test_secret_matches_only_its_own_hash(a: str, b: str) -> None:
    stored = api_keys.hash_secret(b"pepper", a)
    assert api_keys.secret_matches(b"pepper", a, stored)
    assert api_keys.secret_matches(b"pepper", b, stored) == (a == b)
    assert not api_keys.secret_matches(b"other", a, stored)
    assert not api_keys.secret_matches(b"pepper", a, "")
    assert not api_keys.secret_matches(b"pepper", a, stored[:-1])


# ---- the record ------------------------------------------------------------------------------
def test_expiry() -> None:
    rec = ApiKeyRecord("abcdef0123456789", "h", "n", ("admin",), expires_at=1_000)
    assert not rec.expired(999)
    assert rec.expired(1_000) and rec.expired(2_000)
    assert not ApiKeyRecord("abcdef0123456789", "h", "n", ("admin",)).expired(10**15)


def test_check_scopes() -> None:
    assert api_keys.check_scopes(["orders:read", "admin"]) == []
    assert api_keys.check_scopes([])
    problems = api_keys.check_scopes(["orders:read", "orders:delete", "x" * 1000])
    assert len(problems) == 2 and all(len(p) < 300 for p in problems)


# ---- rate limiter ----------------------------------------------------------------------------
def test_rate_one_per_second() -> None:
    rl = RateLimiter()
    assert rl.take("k", 1.0, now=100.0) == 0.0
    assert rl.take("k", 1.0, now=100.0) == pytest.approx(1.0)
    assert rl.take("k", 1.0, now=100.5) == pytest.approx(0.5)
    assert rl.take("k", 1.0, now=101.0) == 0.0
    assert rl.take("other", 1.0, now=101.0) == 0.0  # buckets are per key


def test_unlimited() -> None:
    rl = RateLimiter()
    assert all(rl.take("k", 0.0, now=1.0) == 0.0 for _ in range(1000))
    assert not rl._buckets


def test_burst_is_one_seconds_worth() -> None:
    rl = RateLimiter()
    assert [rl.take("k", 10.0, now=5.0) for _ in range(11)][-2:] == [0.0, pytest.approx(0.1)]


def test_bounded_memory() -> None:
    rl = RateLimiter(max_keys=10)
    for i in range(100):
        rl.take(f"k{i}", 1.0, now=0.0)
    assert len(rl._buckets) <= 10


@given(st.floats(0.5, 1000.0), st.lists(st.floats(0.0, 0.5), min_size=1, max_size=200))
def test_admitted_calls_never_exceed_burst_plus_rate(rate: float, gaps: list[float]) -> None:
    rl = RateLimiter()
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        if rl.take("k", rate, now=now) == 0.0:
            admitted += 1
    assert admitted <= max(1.0, rate) + rate * now + 1e-6


@given(st.floats(0.5, 1000.0), st.integers(1, 50))
def test_waiting_the_given_time_is_enough(rate: float, calls: int) -> None:
    rl = RateLimiter()
    now = 0.0
    for _ in range(calls):
        wait = rl.take("k", rate, now=now)
        if wait:
            assert wait <= 1.0 / rate + 1e-9
            now += wait + 1e-9
            assert rl.take("k", rate, now=now) == 0.0
