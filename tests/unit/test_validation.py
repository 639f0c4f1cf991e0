"""server/validation.py: the patterns, checkers and the README's limit table."""
from __future__ import annotations

import math
import pathlib
import re

import pytest

from oms.engine.errors import NotFoundError, ValidationError, quote
from oms.engine.models import parse_location
from oms.server import pb_convert
from oms.server import validation as val
from oms.server.redis import keys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"
HOSTILE_TAILS = ["\n", "\r", "\x00", "\r\n", " ", "\t", "\u0661", "\u00b2"]


@pytest.mark.parametrize("pattern, good", [
    (val.WAREHOUSE_ID_RE, "DSM"), (val.SKU_RE, "NL"), (val.SKU_RE, "a/b.c-d_e"),
    (val.CHANNEL_RE, "web"), (val.ORDER_ID_RE, "DSM.0190a1b2c3d4e5f6"),
    (val.RETURN_ID_RE, "DSM.0190a1b2/r1"), (val.TRACKING_NUMBER_RE, "OM0000000000017"),
    (val.CARRIER_RE, "OMSX"), (val.SERVICE_LEVEL_RE, "GROUND"), (val.KEY_RE, "order-123 x"),
    (val.LOCATION_RE, "A03-S017"), (val.POSTAL_CODE_RE, "50309-1234"),
    (val.PAGE_TOKEN_RE, "0190abc"),
])
@pytest.mark.parametrize("tail", HOSTILE_TAILS)
def test_patterns_full_match_ascii_only(pattern, good, tail):
    assert pattern.fullmatch(good)
    assert pattern.flags & re.ASCII
    assert not pattern.pattern.endswith("$") and not pattern.pattern.startswith("^")
    if pattern is val.KEY_RE and tail == " ":
        return  # a space is printable ASCII
    if pattern is val.POSTAL_CODE_RE and tail == " ":
        return
    assert pattern.fullmatch(good + tail) is None


def test_one_definition_of_each_pattern():
    assert keys.ID_RE is val.WAREHOUSE_ID_RE and keys.SKU_RE is val.SKU_RE
    assert pb_convert.SKU_RE is val.SKU_RE and pb_convert.CHANNEL_RE is val.CHANNEL_RE
    assert val.LOCATION_RE.pattern == r"A([0-9]{2})-S([0-9]{3})"


@pytest.mark.parametrize("code", ["A3-S17", "A03-S17", "A003-S017", "A03-S017\n", " A03-S017",
                                  "A\u0660\u0663-S\u0660\u0661\u0667", "A\u0663-S\u0661\u0667",
                                  "A+3-S017", "A-3-S017", "A03-S+17", "", "A", "A03-S01\u0667"])
def test_parse_location_takes_exactly_two_and_three_ascii_digits(code):
    with pytest.raises(ValueError):
        parse_location(code)


def test_parse_location_good():
    assert parse_location("A03-S017") == (3, 17)
    assert parse_location("A99-S999") == (99, 999)


def test_home_of_full_matches():
    assert keys.home_of("DSM.abc") == "DSM"
    with pytest.raises(ValueError):
        keys.home_of("DSM\n.abc")


def test_text_violation():
    assert val.text_violation("Zoë 张伟", "f", "customer.name") is None
    n = val.TEXT_LIMITS["customer.name"]
    assert val.text_violation("x" * n, "f", "customer.name") is None
    assert val.text_violation("x" * (n + 1), "f", "customer.name") is not None
    for bad in ("a\nb", "a\x00", "a\x7f", "a\x85", "a\u2028"):
        assert val.text_violation(bad, "f", "customer.name") is not None, repr(bad)
    assert val.text_violation("line 1\nline 2\tx", "f", "reason", multiline=True) is None
    assert val.text_violation("a\x00", "f", "reason", multiline=True) is not None


def test_key_violation():
    assert val.key_violation("", "k") is None
    assert val.key_violation("k" * val.MAX_KEY_LEN, "k") is None
    assert val.key_violation("k" * (val.MAX_KEY_LEN + 1), "k") is not None
    assert val.key_violation("k\n", "k") is not None
    assert val.key_violation("ké", "k") is not None


@pytest.mark.parametrize("x", [math.nan, math.inf, -math.inf, 1e308, -1.0, 0.0])
def test_float_violation_open_interval(x):
    assert val.float_violation(x, 0, 100, "f", lo_open=True) is not None


def test_float_and_int_bounds():
    assert val.float_violation(100.0, 0, 100, "f", lo_open=True) is None
    assert val.float_violation(0.0, 0, 100, "f") is None
    assert val.int_violation(2**63 - 1, 0, val.MAX_STOCK, "f") is not None
    assert val.int_violation(val.MAX_STOCK, 0, val.MAX_STOCK, "f") is None


def test_unix_seconds_window():
    for bad in (2**63 - 1, -1, val.MIN_UNIX_S - 1, val.MAX_UNIX_S + 1):
        with pytest.raises(ValidationError):
            val.require_unix_s(bad, "t")
    assert val.require_unix_s(0, "t") == 0
    assert val.require_unix_s(val.MAX_UNIX_S, "t") == val.MAX_UNIX_S
    assert val.MAX_UNIX_S * 1000 * 1000 < 2**63  # ms, and again ms-derived sums, fit int64


def test_money_limits_cannot_overflow_int64():
    assert val.MAX_QTY * val.MAX_MONEY_CENTS * val.MAX_LINES < 2**64  # the sum in Python is exact
    assert val.MAX_ORDER_TOTAL_CENTS < 2**63 // 1000


def test_quote_is_short_and_shows_control_characters():
    q = quote("x" * 100_000 + "\n")
    assert len(q) < 80 and "…" in q
    assert quote("NL\n") == "'NL\\n'"
    assert len(str(NotFoundError("order", "D." + "q" * 100_000))) < 100


def test_messages_never_echo_a_long_value():
    big = "\n" * 50_000
    for v in (val.pattern_violation(big, val.SKU_RE, "sku"),
              val.text_violation(big, "f", "reason"),
              val.key_violation(big, "k"),
              val.location_violation(big, 10, 10, "location")):
        assert v is not None and len(v.description) < 200


def test_readme_lists_every_limit():
    text = README.read_text()
    assert "### Input limits" in text
    for what, limit in val.FIELD_LIMITS:
        assert f"| {what} | {limit} |" in text, (what, limit)
