"""Fraud rules: each rule alone, combinations that hold, validation, monotonicity."""
from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.engine.errors import ValidationError
from oms.engine.fraud import CustomerHistory, RiskAssessment, RiskConfig, RiskInput, assess

# usual ship-to: Chicago; Milwaukee is ~130 km away, Los Angeles ~2,800 km
CHICAGO = (41.8781, -87.6298)
MILWAUKEE = (43.0389, -87.9065)
LOS_ANGELES = (34.0522, -118.2437)

REGULAR = CustomerHistory(orders=12, mean_value_cents=6_000, usual_lat=CHICAGO[0],
                          usual_lon=CHICAGO[1], usual_country="US")


def order(**kw: object) -> RiskInput:
    base = dict(order_value_cents=7_500, customer=REGULAR, orders_by_customer_in_window=0,
                orders_by_email_in_window=0, orders_by_address_in_window=0, ship_country="US",
                ship_lat=MILWAUKEE[0], ship_lon=MILWAUKEE[1])
    base.update(kw)
    return RiskInput(**base)  # type: ignore[arg-type]


def test_ordinary_repeat_customer_low_score() -> None:
    r = assess(order(), RiskConfig())
    assert r == RiskAssessment(score=0, reasons=[], hold=False)


def test_default_config_is_optional() -> None:
    assert assess(order()) == assess(order(), RiskConfig())


def test_velocity_burst_holds_with_reason() -> None:
    r = assess(order(orders_by_customer_in_window=6, orders_by_email_in_window=6,
                     orders_by_address_in_window=6))
    assert r.hold and r.score >= RiskConfig().hold_score
    assert any("6 earlier orders from this customer within 1 h (limit 3)" in x for x in r.reasons)
    assert any("email" in x for x in r.reasons) and any("address" in x for x in r.reasons)


def test_velocity_below_limit_does_not_fire() -> None:
    r = assess(order(orders_by_customer_in_window=2, orders_by_email_in_window=2,
                     orders_by_address_in_window=4))
    assert r.score == 0 and not r.hold
    # exactly at the limit: this order is the fourth in the hour
    r = assess(order(orders_by_customer_in_window=3))
    assert r.score == 35 and not r.hold


def test_high_value_first_order() -> None:
    new = CustomerHistory()
    small = assess(order(customer=new, order_value_cents=3_000))
    big = assess(order(customer=new, order_value_cents=250_000))
    assert small.score == 5 and small.reasons == ["first order from this customer"]
    assert big.score > small.score
    assert any("$2,500.00" in x and "first order" in x for x in big.reasons)


def test_value_multiple_of_mean() -> None:
    r = assess(order(order_value_cents=30_000))  # 5x the $60 mean
    assert 25 <= r.score <= 40 and not r.hold
    (reason,) = r.reasons
    assert "$300.00" in reason and "5.0x" in reason and "$60.00" in reason
    assert assess(order(order_value_cents=18_000)).score == 0  # exactly 3x: not over


def test_foreign_country() -> None:
    r = assess(order(ship_country="CA", ship_lat=43.6532, ship_lon=-79.3832))  # Toronto
    assert r.hold
    assert any("CA is not allowed (allowed: US)" in x for x in r.reasons)
    assert any("differs from the customer's usual US" in x for x in r.reasons)


def test_country_change_within_allowed() -> None:
    cfg = RiskConfig(allowed_countries=frozenset({"us", "CA"}))
    r = assess(order(ship_country="ca", ship_lat=None, ship_lon=None), cfg)
    assert r.score == cfg.country_change_weight and not r.hold


def test_unknown_country_and_point_fire_nothing() -> None:
    assert assess(order(ship_country="", ship_lat=None, ship_lon=None)).score == 0


def test_far_from_usual() -> None:
    r = assess(order(ship_lat=LOS_ANGELES[0], ship_lon=LOS_ANGELES[1]))
    assert 20 <= r.score <= 30 and not r.hold
    (reason,) = r.reasons
    assert "km from the customer's usual ship-to" in reason
    km = float(reason.split(" km")[0].split()[-1].replace(",", ""))
    assert 2_700 < km < 2_900


def test_combined_signals_hold() -> None:
    r = assess(order(customer=CustomerHistory(), order_value_cents=120_000,
                     orders_by_email_in_window=4))
    assert r.hold  # 5 new + 30 high-value first order + 35 email velocity


def test_score_capped_at_100() -> None:
    r = assess(order(customer=dataclasses.replace(REGULAR, usual_country="US"),
                     order_value_cents=10_000_000, orders_by_customer_in_window=50,
                     orders_by_email_in_window=50, orders_by_address_in_window=50,
                     ship_country="RU", ship_lat=55.75, ship_lon=37.62))
    assert r.score == 100 and r.hold and len(r.reasons) == 7


@pytest.mark.parametrize("kw, field", [
    ({"order_value_cents": -1}, "order_value_cents"),
    ({"orders_by_email_in_window": -2}, "orders_by_email_in_window"),
    ({"ship_lat": 95.0}, "ship_lat"),
    ({"ship_lon": None}, "ship_lon"),
    ({"customer": CustomerHistory(orders=-1)}, "customer.orders"),
    ({"customer": CustomerHistory(mean_value_cents=float("nan"))}, "customer.mean_value_cents"),
    ({"customer": CustomerHistory(usual_lat=10.0, usual_lon=200.0)}, "customer.usual_lon"),
])
def test_validation(kw: dict, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        assess(order(**kw))
    assert field in [v.field for v in e.value.violations]


def test_config_validation() -> None:
    with pytest.raises(ValidationError) as e:
        RiskConfig(hold_score=0, far_km=-1.0, max_orders_per_email=-3)
    fields = {v.field for v in e.value.violations}
    assert fields == {"risk_config.hold_score", "risk_config.far_km",
                      "risk_config.max_orders_per_email"}


counts = st.integers(0, 40)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(c=counts, e=counts, a=counts, dc=st.integers(0, 10), de=st.integers(0, 10),
       da=st.integers(0, 10), value=st.integers(0, 500_000), orders=st.integers(0, 5))
def test_score_monotone_in_velocity(c: int, e: int, a: int, dc: int, de: int, da: int,
                                    value: int, orders: int) -> None:
    cust = dataclasses.replace(REGULAR, orders=orders)
    lo = assess(order(customer=cust, order_value_cents=value, orders_by_customer_in_window=c,
                      orders_by_email_in_window=e, orders_by_address_in_window=a))
    hi = assess(order(customer=cust, order_value_cents=value,
                      orders_by_customer_in_window=c + dc, orders_by_email_in_window=e + de,
                      orders_by_address_in_window=a + da))
    assert 0 <= lo.score <= hi.score <= 100
    assert hi.hold or not lo.hold
    assert lo.hold == (lo.score >= RiskConfig().hold_score)
