"""Rule-based fraud risk score of an incoming order.

A transparent additive score (0..100): each rule that fires adds its documented weight and
says why, with the numbers. An order scoring ``RiskConfig.hold_score`` or more goes ON_HOLD for
review. Rules and default weights:

=========================  ======================================================  ==========
rule                       fires when                                               points
=========================  ======================================================  ==========
new customer               no previous order                                        5
high-value first order     history thinner than ``min_history_orders`` and the      30
                           value >= ``first_order_high_value_cents``
value vs. history          value > ``value_multiple`` x the customer's mean        25 + 5 per
                           (with at least ``min_history_orders`` previous orders)   further
                                                                                    multiple,
                                                                                    max 40
velocity (customer,        ``n`` previous orders in the window >= the limit ``m``   35 + 10 x
email, address; each)                                                               (n - m),
                                                                                    max 60 each
country not allowed        ship-to country not in ``allowed_countries``             50
country change             ship-to country differs from the customer's usual one    15
far from usual ship-to     great-circle distance > ``far_km``                       20 + 5 per
                                                                                    further
                                                                                    far_km,
                                                                                    max 30
=========================  ======================================================  ==========

The total is capped at 100. With the defaults one velocity signal alone (35) does not hold an
order, but the same burst seen by customer id and email (70) does; a ship-to outside the
allowed countries holds on its own only together with another signal (50 + 15 for a changed
country = 65). Every component is non-decreasing in its input, so the score is monotone in
each velocity count, in the order value and in the distance.

An empty ship-to country is "unknown" (e.g. an address given only by ZIP code) and fires no
country rule; the same goes for unknown coordinates and the distance rule.

Velocity counts are the orders seen in the window *before* this one (what the store's
RISK_SIGNALS script returns), so with a limit of 3 the fourth order within the hour fires.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from oms.engine.errors import FieldViolation, ValidationError
from oms.engine.geo import haversine_km

__all__ = ["RiskConfig", "CustomerHistory", "RiskInput", "RiskAssessment", "assess"]


@dataclass(frozen=True)
class RiskConfig:
    """Thresholds and weights of the rules (see the module docstring for how they combine)."""

    velocity_window_s: int = 3600
    max_orders_per_customer: int = 3
    max_orders_per_email: int = 3
    max_orders_per_address: int = 5
    velocity_weight: int = 35
    velocity_step_weight: int = 10
    velocity_cap: int = 60

    new_customer_weight: int = 5
    min_history_orders: int = 2
    first_order_high_value_cents: int = 50_000
    first_order_weight: int = 30
    value_multiple: float = 3.0
    value_weight: int = 25
    value_step_weight: int = 5
    value_cap: int = 40

    allowed_countries: frozenset[str] = field(default_factory=lambda: frozenset({"US"}))
    country_not_allowed_weight: int = 50
    country_change_weight: int = 15

    far_km: float = 500.0
    far_weight: int = 20
    far_step_weight: int = 5
    far_cap: int = 30

    hold_score: int = 60

    def __post_init__(self) -> None:
        out: list[FieldViolation] = []
        for f in fields(self):
            v = getattr(self, f.name)
            path = f"risk_config.{f.name}"
            if f.name == "allowed_countries":
                if isinstance(v, str) or not all(isinstance(c, str) and c for c in v):
                    out.append(FieldViolation(path, f"must be a set of country codes, got {v!r}"))
                else:  # normalise: a set given as {"us"} or a list still works
                    object.__setattr__(self, f.name, frozenset(c.strip().upper() for c in v))
            elif f.name in ("value_multiple", "far_km"):
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                        or v <= 0:
                    out.append(FieldViolation(path, f"must be a positive number, got {v!r}"))
            elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
                out.append(FieldViolation(path, f"must be a non-negative integer, got {v!r}"))
        if isinstance(self.velocity_window_s, int) and self.velocity_window_s == 0:
            out.append(FieldViolation("risk_config.velocity_window_s", "must be > 0, got 0"))
        if isinstance(self.hold_score, int) and not 0 < self.hold_score <= 100:
            out.append(FieldViolation("risk_config.hold_score",
                                      f"must be in 1..100, got {self.hold_score!r}"))
        if out:
            raise ValidationError(out)


@dataclass(slots=True)  # built per order at intake: see engine/models.py
class CustomerHistory:
    """What is known about the customer before this order.

    ``usual_lat``/``usual_lon``: the customer's usual ship-to (e.g. the mean of past ship-to
    points), None when unknown; ``usual_country``: "" when unknown.
    """

    orders: int = 0
    mean_value_cents: float = 0.0
    usual_lat: float | None = None
    usual_lon: float | None = None
    usual_country: str = ""


@dataclass(slots=True)  # built per order at intake: see engine/models.py
class RiskInput:
    order_value_cents: int
    customer: CustomerHistory
    orders_by_customer_in_window: int = 0
    orders_by_email_in_window: int = 0
    orders_by_address_in_window: int = 0
    ship_country: str = ""
    ship_lat: float | None = None
    ship_lon: float | None = None


@dataclass(slots=True)  # built per order at intake: see engine/models.py
class RiskAssessment:
    score: int  # 0..100
    reasons: list[str]
    hold: bool


def _money(cents: float) -> str:
    return f"${cents / 100:,.2f}"


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _validate(inp: RiskInput) -> None:
    out: list[FieldViolation] = []

    def count(path: str, v: object) -> None:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            out.append(FieldViolation(path, f"must be a non-negative integer, got {v!r}"))

    def point(plat: str, lat: object, plon: str, lon: object) -> None:
        if (lat is None) != (lon is None):
            out.append(FieldViolation(plon if lon is None else plat,
                                      f"latitude and longitude go together, got {lat!r}, {lon!r}"))
            return
        if lat is None:
            return
        if not _is_num(lat) or not -90 <= lat <= 90:  # type: ignore[operator]
            out.append(FieldViolation(plat, f"must be a latitude in [-90, 90], got {lat!r}"))
        if not _is_num(lon) or not -180 <= lon <= 180:  # type: ignore[operator]
            out.append(FieldViolation(plon, f"must be a longitude in [-180, 180], got {lon!r}"))

    if not isinstance(inp, RiskInput):
        raise ValidationError.one("risk_input", f"must be a RiskInput, got {type(inp).__name__}")
    count("order_value_cents", inp.order_value_cents)
    for name in ("orders_by_customer_in_window", "orders_by_email_in_window",
                 "orders_by_address_in_window"):
        count(name, getattr(inp, name))
    if not isinstance(inp.ship_country, str):
        out.append(FieldViolation("ship_country", f"must be a string, got {inp.ship_country!r}"))
    point("ship_lat", inp.ship_lat, "ship_lon", inp.ship_lon)
    c = inp.customer
    if not isinstance(c, CustomerHistory):
        out.append(FieldViolation("customer", f"must be a CustomerHistory, got {c!r}"))
    else:
        count("customer.orders", c.orders)
        if not _is_num(c.mean_value_cents) or c.mean_value_cents < 0:
            out.append(FieldViolation("customer.mean_value_cents",
                                      f"must be a non-negative number, got {c.mean_value_cents!r}"))
        point("customer.usual_lat", c.usual_lat, "customer.usual_lon", c.usual_lon)
        if not isinstance(c.usual_country, str):
            out.append(FieldViolation("customer.usual_country",
                                      f"must be a string, got {c.usual_country!r}"))
    if out:
        raise ValidationError(out)


def _stepped(base: int, step: int, cap: int, extra: float) -> int:
    """``base`` plus ``step`` per whole unit of ``extra`` (>= 0), at most ``cap``."""
    return min(cap, base + step * int(math.floor(extra)))


def assess(inp: RiskInput, cfg: RiskConfig | None = None, *, validate: bool = True) -> RiskAssessment:
    """Score one order by the rules of the module docstring. Pure; raises ``ValidationError``
    for malformed input (negative counts, coordinates out of range, ...). ``validate=False``
    is for callers that built the input from checked data (the intake hot path)."""
    cfg = cfg if cfg is not None else RiskConfig()
    if validate:
        _validate(inp)
    c = inp.customer
    value = inp.order_value_cents
    points: list[tuple[int, str]] = []

    # -- value against the customer's history
    if c.orders == 0:
        points.append((cfg.new_customer_weight, "first order from this customer"))
    if c.orders < cfg.min_history_orders:
        if value >= cfg.first_order_high_value_cents:
            who = "first order" if c.orders == 0 else f"only {c.orders} previous order(s)"
            points.append((cfg.first_order_weight,
                           f"high value {_money(value)} with {who} "
                           f"(threshold {_money(cfg.first_order_high_value_cents)})"))
    elif c.mean_value_cents > 0 and value > cfg.value_multiple * c.mean_value_cents:
        ratio = value / c.mean_value_cents
        points.append((_stepped(cfg.value_weight, cfg.value_step_weight, cfg.value_cap,
                                ratio - cfg.value_multiple),
                       f"order value {_money(value)} is {ratio:.1f}x the customer's mean of "
                       f"{_money(c.mean_value_cents)} over {c.orders} orders "
                       f"(limit {cfg.value_multiple:g}x)"))

    # -- velocity
    window = f"{cfg.velocity_window_s / 3600:g} h" if cfg.velocity_window_s % 360 == 0 \
        else f"{cfg.velocity_window_s} s"
    for what, n, m in (
        ("customer", inp.orders_by_customer_in_window, cfg.max_orders_per_customer),
        ("email", inp.orders_by_email_in_window, cfg.max_orders_per_email),
        ("ship-to address", inp.orders_by_address_in_window, cfg.max_orders_per_address),
    ):
        if n >= m:
            points.append((_stepped(cfg.velocity_weight, cfg.velocity_step_weight,
                                    cfg.velocity_cap, n - m),
                           f"{n} earlier orders from this {what} within {window} "
                           f"(limit {m})"))

    # -- country
    country = inp.ship_country.strip().upper()
    usual = c.usual_country.strip().upper()
    if country and country not in cfg.allowed_countries:
        allowed = ", ".join(sorted(cfg.allowed_countries)) or "none"
        points.append((cfg.country_not_allowed_weight,
                       f"ship-to country {country} is not allowed (allowed: {allowed})"))
    if usual and country and country != usual:
        points.append((cfg.country_change_weight,
                       f"ship-to country {country} differs from the customer's usual {usual}"))

    # -- distance from the usual ship-to
    if None not in (inp.ship_lat, inp.ship_lon, c.usual_lat, c.usual_lon):
        d = haversine_km(c.usual_lat, c.usual_lon,  # type: ignore[arg-type]
                         inp.ship_lat, inp.ship_lon)  # type: ignore[arg-type]
        if d > cfg.far_km:
            points.append((_stepped(cfg.far_weight, cfg.far_step_weight, cfg.far_cap,
                                    d / cfg.far_km - 1),
                           f"ship-to is {d:,.0f} km from the customer's usual ship-to "
                           f"(limit {cfg.far_km:,.0f} km)"))

    score = min(100, sum(p for p, _ in points))
    reasons = [r for p, r in points if p > 0]
    return RiskAssessment(score=score, reasons=reasons, hold=score >= cfg.hold_score)
