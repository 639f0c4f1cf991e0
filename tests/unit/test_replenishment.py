"""Reorder-point suggestions: the arithmetic by hand, the boundaries, urgency order."""
from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.engine.errors import ValidationError
from oms.engine.replenishment import ReplenishmentInput, Suggestion, suggest, suggest_many


def inp(**kw: object) -> ReplenishmentInput:
    base = dict(warehouse_id="W1", sku="SKU-1", on_hand=30, reserved=10, inbound=0,
                sold_in_window=70, window_days=7, lead_time_days=5)
    base.update(kw)
    return ReplenishmentInput(**base)  # type: ignore[arg-type]


def test_below_reorder_point_orders_up_to_level() -> None:
    # v = 10/day; rop = 10 x (5 + 3) = 80; position 20 <= 80; up to 10 x 15 = 150 -> 130
    s = suggest(inp())
    assert s.daily_velocity == pytest.approx(10.0)
    assert s.available == 20
    assert s.reorder_point_used == pytest.approx(80.0)
    assert s.suggested_qty == 130
    assert s.days_of_cover == pytest.approx(2.0)
    assert "available 20 + inbound 0 = 20" in s.reason and "80" in s.reason
    assert "130" in s.reason


def test_inbound_counts_towards_position() -> None:
    s = suggest(inp(inbound=50))  # position 70 <= 80 -> up to 150: 80
    assert s.suggested_qty == 80
    s = suggest(inp(inbound=61))  # position 81 > 80 -> nothing
    assert s.suggested_qty == 0 and "no order" in s.reason


def test_exactly_at_reorder_point_orders() -> None:
    s = suggest(inp(on_hand=90, reserved=10))  # position 80 == rop
    assert s.suggested_qty == 70


def test_rounded_up() -> None:
    # v = 10/7 per day; rop = 10/7 x 8 = 11.43; up to 10/7 x 15 = 21.43; position 0 -> 22
    s = suggest(inp(on_hand=0, reserved=0, sold_in_window=10))
    assert s.suggested_qty == 22


def test_no_float_noise_in_ceiling() -> None:
    # v = 0.1/day x 30 days = 3.0000000000000004 in floats; must order exactly 3
    s = suggest(inp(on_hand=0, reserved=0, sold_in_window=1, window_days=10, lead_time_days=20,
                    safety_days=3, review_days=7))
    assert s.suggested_qty == 3


def test_given_reorder_point() -> None:
    s = suggest(inp(reorder_point=25))  # position 20 <= 25; up to 25 + 10 x 7 = 95 -> 75
    assert s.reorder_point_used == 25 and s.suggested_qty == 75
    assert "(given)" in s.reason
    s = suggest(inp(reorder_point=19))
    assert s.suggested_qty == 0


def test_given_reorder_point_without_demand() -> None:
    s = suggest(inp(on_hand=2, reserved=0, sold_in_window=0, reorder_point=5))
    assert s.suggested_qty == 3  # back up to the reorder point
    assert s.days_of_cover == math.inf


def test_no_demand_no_order() -> None:
    s = suggest(inp(on_hand=0, reserved=0, sold_in_window=0))
    assert s.suggested_qty == 0 and s.daily_velocity == 0
    assert "no demand" in s.reason


def test_suggest_many_sorted_by_urgency() -> None:
    rows = [
        inp(sku="slow", on_hand=100, reserved=0, sold_in_window=7),  # 100 days of cover
        inp(sku="urgent", on_hand=5, reserved=0),  # 0.5 days
        inp(sku="dead", sold_in_window=0),  # no demand: last
        inp(sku="soon", on_hand=30, reserved=0),  # 3 days
        inp(sku="out", warehouse_id="W2", on_hand=4, reserved=4),  # 0 days
    ]
    out = suggest_many(rows)
    assert [s.sku for s in out] == ["out", "urgent", "soon", "slow", "dead"]
    assert all(isinstance(s, Suggestion) for s in out)
    assert suggest_many([]) == []


@pytest.mark.parametrize("kw, field", [
    ({"on_hand": -1}, "on_hand"),
    ({"reserved": 40}, "reserved"),
    ({"window_days": 0}, "window_days"),
    ({"lead_time_days": float("nan")}, "lead_time_days"),
    ({"reorder_point": -5}, "reorder_point"),
    ({"sku": ""}, "sku"),
])
def test_validation(kw: dict, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        suggest(inp(**kw))
    assert [v.field for v in e.value.violations] == [field]
    with pytest.raises(ValidationError) as e:
        suggest_many([inp(), inp(**kw)])
    assert e.value.violations[0].field == f"inputs[1].{field}"


@settings(derandomize=True, max_examples=200, deadline=None)
@given(on_hand=st.integers(0, 500), reserved_frac=st.floats(0, 1), inbound=st.integers(0, 300),
       sold=st.integers(0, 1000), window=st.floats(1, 90), lead=st.floats(0, 30),
       safety=st.floats(0, 10), review=st.floats(0, 30))
def test_properties(on_hand: int, reserved_frac: float, inbound: int, sold: int, window: float,
                    lead: float, safety: float, review: float) -> None:
    x = inp(on_hand=on_hand, reserved=int(on_hand * reserved_frac), inbound=inbound,
            sold_in_window=sold, window_days=window, lead_time_days=lead, safety_days=safety,
            review_days=review)
    s = suggest(x)
    position = s.available + inbound
    assert s.suggested_qty >= 0
    if position > s.reorder_point_used:
        assert s.suggested_qty == 0
    else:
        # after the order the position reaches the order-up-to level (to rounding)
        up_to = s.daily_velocity * (lead + safety + review)
        assert position + s.suggested_qty >= up_to - 1e-6
        assert position + s.suggested_qty < up_to + 1 + 1e-6 or s.suggested_qty == 0
    # more stock never means a larger order
    more = suggest(dataclasses.replace(x, inbound=inbound + 10))
    assert more.suggested_qty <= s.suggested_qty
