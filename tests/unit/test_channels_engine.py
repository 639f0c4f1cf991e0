"""engine.channels.available_to_sell: exact integer arithmetic, checked against rational
arithmetic (fractions.Fraction) on generated inputs, and its order properties."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.engine.channels import available_to_sell, share_bp

# Σ available over up to 64 warehouses of int32 stock (negative: more reserved than on hand,
# which must publish 0); safety 0..10^9; shares in basis points 0..10,000.
NET = st.integers(-(2**31), 64 * (2**31 - 1))
SAFETY = st.integers(0, 10**9)
BP = st.integers(0, 10_000)
SETTINGS = settings(max_examples=300, derandomize=True, deadline=None)


def exact(n: int, bp: int, safety: int) -> int:
    """max(0, floor(share × max(n, 0)) − safety) with the share a rational number."""
    return max(0, math.floor(Fraction(bp, 10_000) * max(n, 0)) - safety)


def ats(n: int, bp: int, safety: int) -> int:
    return int(available_to_sell(np.array([n]), bp, np.array([safety]))[0])


@SETTINGS
@given(st.lists(st.tuples(NET, SAFETY), min_size=1, max_size=50), BP)
def test_equals_the_rational_formula_elementwise(rows: list[tuple[int, int]], bp: int) -> None:
    net = np.array([n for n, _ in rows], dtype=np.int64)
    safety = np.array([s for _, s in rows], dtype=np.int64)
    out = available_to_sell(net, bp, safety)
    assert out.dtype == np.int64
    assert out.tolist() == [exact(n, bp, s) for n, s in rows]


@SETTINGS
@given(NET, BP, SAFETY)
def test_never_negative_never_more_than_the_share(n: int, bp: int, safety: int) -> None:
    a = ats(n, bp, safety)
    assert 0 <= a <= max(n, 0)
    assert a * 10_000 <= max(n, 0) * bp  # never rounds up past the share


@SETTINGS
@given(NET, NET, BP, BP, SAFETY, SAFETY)
def test_monotone_in_stock_and_share_antitone_in_safety(n1: int, n2: int, b1: int, b2: int,
                                                        s1: int, s2: int) -> None:
    (n1, n2), (b1, b2), (s1, s2) = sorted((n1, n2)), sorted((b1, b2)), sorted((s1, s2))
    assert ats(n1, b1, s2) <= ats(n2, b1, s2)
    assert ats(n1, b1, s1) <= ats(n1, b2, s1)
    assert ats(n2, b2, s2) <= ats(n2, b2, s1)


@SETTINGS
@given(st.integers(0, 10_000))
def test_share_bp_round_trips_two_decimal_percentages(bp: int) -> None:
    assert share_bp(bp / 100) == bp


@SETTINGS
@given(st.floats(0.0, 100.0, allow_nan=False))
def test_share_bp_is_the_nearest_basis_point(pct: float) -> None:
    assert abs(share_bp(pct) - pct * 100) <= 0.5 + 1e-9
    assert 0 <= share_bp(pct) <= 10_000


def test_float_trap_cases() -> None:
    # 0.29 × 100 in floats is 28.999…: the published figure must be 29, never 28 or 30
    assert ats(100, share_bp(29.0), 0) == 29
    assert ats(200, share_bp(29.0), 3) == 55
    assert ats(7, share_bp(33.33), 0) == 2
    assert ats(10, 10_000, 10) == 0 and ats(10, 10_000, 11) == 0
    assert ats(-5, 10_000, 0) == 0
    assert ats(1, 9_999, 0) == 0  # 99.99 % of one unit floors to nothing
