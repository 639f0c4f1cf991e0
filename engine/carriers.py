"""Carrier rating, service choice and tracking numbers (labels are drawn in server/labels.py).

Rating follows how parcel carriers publish their rate cards:

* **Zone** from the great-circle distance origin -> destination, in distance bands
  (zone 2: < 150 km ... zone 8: >= 2500 km; zone 1 is traditionally "same building" and unused).
* **Billable weight** per package = max(actual weight, dimensional weight), where dimensional
  weight = L x W x H / divisor with the divisor in cm^3/kg (5000 by default, the common
  international divisor). With dimensions in mm and weight in g that is simply
  ``mm^3 / divisor`` grams, rounded up to a whole gram.
* **Base price** from a zone x weight-tier table (cents); the tier is the first one whose upper
  bound (grams, inclusive) holds the billable weight.
* **Service level** multiplies the base price (rounded half up to a cent) and sets the transit
  time: GROUND by zone (1..5 business days), EXPRESS 2, OVERNIGHT 1.
* Every package is rated separately and the shipment's cost is the sum.

ETA: the carrier tenders on business days only, so a ship time on a Saturday, Sunday or carrier
holiday (UTC date) counts from the next business day; then ``transit_days`` business days are
added and the parcel is "delivered by end of day": the ETA is the last millisecond of that UTC
day. The holidays are the six on which the US parcel carriers (UPS, FedEx) neither pick up nor
deliver: New Year's Day, Memorial Day, Independence Day, Labor Day, Thanksgiving and Christmas,
a Saturday holiday observed on the Friday before and a Sunday one on the Monday after.

Tracking numbers: ``<2-letter prefix><12-digit shipment sequence><Damm check digit>``, e.g.
``OX0000000000420`` ... The Damm algorithm (H. M. Damm, 2004) uses a totally anti-symmetric
quasigroup of order 10: it detects **every** single-digit substitution and **every** adjacent
transposition (Luhn misses 09 <-> 90; weighted mod-10 schemes miss others). The prefix is not
covered by the check digit; it is checked literally.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Protocol, runtime_checkable

from oms.engine.errors import OmsError
from oms.engine.geo import haversine_km
from oms.engine.models import Package

__all__ = [
    "CarrierError",
    "ServiceLevel",
    "Rate",
    "Carrier",
    "RateTableCarrier",
    "DEFAULT_ZONES",
    "DEFAULT_WEIGHT_TIERS_G",
    "DEFAULT_SERVICES",
    "default_price_table",
    "zone_for_distance",
    "dimensional_weight_g",
    "carrier_holidays",
    "is_business_day",
    "billable_weight_g",
    "eta_ms",
    "choose_rate",
    "damm_check_digit",
    "tracking_number",
    "validate_tracking_number",
    "TRACKING_RE",
]


class CarrierError(OmsError):
    """A shipment that cannot be rated, labelled or tracked as asked (unknown service level,
    package too heavy, malformed dimensions, bad tracking number ...)."""


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ServiceLevel:
    """A carrier service. ``transit_days`` is used for zones missing from ``zone_days``
    (a tuple of ``(zone, business days)`` pairs, only GROUND needs one)."""

    name: str
    transit_days: int
    multiplier: float
    zone_days: tuple[tuple[int, int], ...] = ()

    def days_for_zone(self, zone: int) -> int:
        for z, d in self.zone_days:
            if z == zone:
                return d
        return self.transit_days


@dataclass(frozen=True)
class Rate:
    carrier: str
    service_level: str
    cost_cents: int
    transit_days: int
    eta_ms: int


@runtime_checkable
class Carrier(Protocol):
    name: str

    def rates(self, origin_lat: float, origin_lon: float, dest_lat: float, dest_lon: float,
              packages: list[Package], ship_at_ms: int) -> list[Rate]: ...

    def tracking_number(self, shipment_seq: int) -> str: ...


# --------------------------------------------------------------------------- rate card

DEFAULT_ZONES: tuple[tuple[int, float], ...] = (
    (2, 150.0),
    (3, 500.0),
    (4, 1000.0),
    (5, 1500.0),
    (6, 2000.0),
    (7, 2500.0),
    (8, math.inf),
)
"""(zone, upper distance bound in km, exclusive). The last bound must be infinite."""

DEFAULT_WEIGHT_TIERS_G: tuple[int, ...] = (
    500, 1000, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 50000, 70000)
"""Upper bounds of the weight tiers in grams, inclusive. Heavier parcels are freight."""

DEFAULT_SERVICES: tuple[ServiceLevel, ...] = (
    ServiceLevel("GROUND", 5, 1.0, ((2, 1), (3, 2), (4, 3), (5, 3), (6, 4), (7, 4), (8, 5))),
    ServiceLevel("EXPRESS", 2, 1.85),
    ServiceLevel("OVERNIGHT", 1, 2.9),
)

DIM_DIVISOR_CM3_PER_KG = 5000


def default_price_table(zones: Sequence[tuple[int, float]] = DEFAULT_ZONES,
                        weight_tiers_g: Sequence[int] = DEFAULT_WEIGHT_TIERS_G
                        ) -> dict[int, tuple[int, ...]]:
    """A plausible ground rate card (not any real carrier's), cents per package:
    a per-parcel base growing with the zone plus a per-kg part growing with the zone,
    charged on the tier's upper bound. Strictly increasing in zone and in tier."""
    table: dict[int, tuple[int, ...]] = {}
    for zone, _ in zones:
        k = zone - zones[0][0]
        table[zone] = tuple(
            795 + 95 * k + math.ceil(w / 1000 * (48 + 18 * k)) for w in weight_tiers_g)
    return table


def zone_for_distance(distance_km: float,
                      zones: Sequence[tuple[int, float]] = DEFAULT_ZONES) -> int:
    """The zone whose distance band holds ``distance_km``."""
    if not math.isfinite(distance_km) or distance_km < 0:
        raise CarrierError(f"distance_km must be a finite number >= 0, got {distance_km!r}")
    for zone, upper in zones:
        if distance_km < upper:
            return zone
    raise CarrierError(f"distance {distance_km} km is beyond the last zone bound "
                       f"{zones[-1][1]} km")


def _check_package(i: int, p: Package) -> None:
    for attr in ("length_mm", "width_mm", "height_mm"):
        v = getattr(p, attr)
        if not isinstance(v, int) or v <= 0:
            raise CarrierError(f"packages[{i}] ({p.box!r}): {attr} must be a positive "
                               f"integer, got {v!r}")
    if not isinstance(p.weight_g, int) or p.weight_g < 0:
        raise CarrierError(f"packages[{i}] ({p.box!r}): weight_g must be an integer >= 0, "
                           f"got {p.weight_g!r}")


def dimensional_weight_g(package: Package,
                         divisor_cm3_per_kg: int = DIM_DIVISOR_CM3_PER_KG) -> int:
    """L*W*H / divisor, in grams rounded up (mm^3 / (cm^3/kg) = g)."""
    _check_package(0, package)
    volume_mm3 = package.length_mm * package.width_mm * package.height_mm
    return -(-volume_mm3 // divisor_cm3_per_kg)


def billable_weight_g(package: Package,
                      divisor_cm3_per_kg: int = DIM_DIVISOR_CM3_PER_KG) -> int:
    return max(package.weight_g, dimensional_weight_g(package, divisor_cm3_per_kg))


# --------------------------------------------------------------------------- ETA

_DAY_MS = 86_400_000


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th ``weekday`` (Mon = 0) of the month; n = -1 is the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date) -> date:
    if d.weekday() == 5:
        return d - timedelta(days=1)
    if d.weekday() == 6:
        return d + timedelta(days=1)
    return d


@lru_cache(maxsize=64)
def carrier_holidays(year: int) -> frozenset[date]:
    """The carrier holidays, as observed, that fall in ``year`` (next year's New Year's Day is
    observed on 31 December when 1 January is a Saturday)."""
    days = {
        _observed(date(year, 1, 1)),
        _nth_weekday(year, 5, 0, -1),  # Memorial Day: last Monday of May
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day: first Monday of September
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving: fourth Thursday of November
        _observed(date(year, 12, 25)),
        _observed(date(year + 1, 1, 1)),
    }
    return frozenset(d for d in days if d.year == year)


def is_business_day(d: date) -> bool:
    """A weekday that is not a carrier holiday: the carrier picks up and delivers."""
    return d.weekday() < 5 and d not in carrier_holidays(d.year)


def eta_ms(ship_at_ms: int, transit_days: int) -> int:
    """End of the UTC day that is ``transit_days`` business days after the ship date.

    A ship date that is no business day is first moved to the next one (no pickup), so a
    parcel handed over on Saturday with 1-day service arrives on Tuesday, like one shipped on
    Monday, and one handed over the day before Thanksgiving arrives on Friday.
    """
    if transit_days < 0:
        raise CarrierError(f"transit_days must be >= 0, got {transit_days}")
    day = datetime.fromtimestamp(ship_at_ms / 1000, tz=UTC).date()
    while not is_business_day(day):
        day += timedelta(days=1)
    left = transit_days
    while left > 0:
        day += timedelta(days=1)
        if is_business_day(day):
            left -= 1
    end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    return int(end.timestamp()) * 1000 - 1


# --------------------------------------------------------------------------- tracking numbers

# Damm's table: a totally anti-symmetric quasigroup of order 10 with a zero diagonal.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def _damm_interim(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def damm_check_digit(digits: str) -> str:
    """The Damm check digit of a string of decimal digits (appending it makes the interim 0)."""
    if not digits.isascii() or not digits.isdigit():
        raise CarrierError(f"damm_check_digit needs decimal digits, got {digits!r}")
    return str(_damm_interim(digits))


_PREFIX_RE = re.compile(r"[A-Z]{2}")
TRACKING_RE = re.compile(r"([A-Z]{2})(\d{13})")
_SEQ_LIMIT = 10**12


def tracking_number(prefix: str, shipment_seq: int) -> str:
    """``prefix + f"{seq:012d}" + Damm digit``: unique per (prefix, seq) because the sequence
    is encoded verbatim (the store hands out the sequence, e.g. with INCR)."""
    if not _PREFIX_RE.fullmatch(prefix):
        raise CarrierError(f"tracking prefix must be 2 letters A-Z, got {prefix!r}")
    if not isinstance(shipment_seq, int) or not 0 <= shipment_seq < _SEQ_LIMIT:
        raise CarrierError(f"shipment_seq must be an integer in [0, 10^12), got {shipment_seq!r}")
    body = f"{shipment_seq:012d}"
    return prefix + body + damm_check_digit(body)


def validate_tracking_number(s: str, prefix: str | None = None) -> bool:
    """True iff ``s`` has the form ``AA`` + 13 digits whose Damm check passes (and the prefix
    is ``prefix`` when given)."""
    if not isinstance(s, str):
        return False
    m = TRACKING_RE.fullmatch(s)
    if m is None or (prefix is not None and m.group(1) != prefix):
        return False
    return _damm_interim(m.group(2)) == 0


# --------------------------------------------------------------------------- the carrier


class RateTableCarrier:
    """A table-driven carrier (see the module docstring for the rating rules).

    ``prices`` maps zone -> one price in cents per weight tier. Tables must be non-decreasing
    in weight and in zone, so a heavier or farther parcel never costs less.
    """

    def __init__(self, name: str = "OMSX", *,
                 zones: Sequence[tuple[int, float]] = DEFAULT_ZONES,
                 weight_tiers: Sequence[int] = DEFAULT_WEIGHT_TIERS_G,
                 prices: Mapping[int, Sequence[int]] | None = None,
                 services: Sequence[ServiceLevel] = DEFAULT_SERVICES,
                 tracking_prefix: str = "OX",
                 dim_divisor_cm3_per_kg: int = DIM_DIVISOR_CM3_PER_KG) -> None:
        if not name:
            raise CarrierError("carrier name must not be empty")
        self.name = name
        self.zones = tuple((int(z), float(u)) for z, u in zones)
        self.weight_tiers = tuple(int(w) for w in weight_tiers)
        self.services = tuple(services)
        self.tracking_prefix = tracking_prefix
        self.dim_divisor = int(dim_divisor_cm3_per_kg)
        self._validate_config()
        table = default_price_table(self.zones, self.weight_tiers) if prices is None else prices
        self.prices: dict[int, tuple[int, ...]] = {}
        prev: tuple[int, ...] | None = None
        for zone, _ in self.zones:
            if zone not in table:
                raise CarrierError(f"carrier {name!r}: price table has no row for zone {zone}")
            row = tuple(int(c) for c in table[zone])
            if len(row) != len(self.weight_tiers):
                raise CarrierError(f"carrier {name!r}: zone {zone} has {len(row)} prices for "
                                   f"{len(self.weight_tiers)} weight tiers")
            if any(c <= 0 for c in row) or any(a > b for a, b in zip(row, row[1:])):
                raise CarrierError(f"carrier {name!r}: zone {zone} prices must be positive and "
                                   f"non-decreasing in weight, got {row}")
            if prev is not None and any(a > b for a, b in zip(prev, row)):
                raise CarrierError(f"carrier {name!r}: zone {zone} prices {row} are below the "
                                   f"previous zone's {prev}")
            self.prices[zone] = prev = row

    def _validate_config(self) -> None:
        n = self.name
        if not self.zones or not math.isinf(self.zones[-1][1]):
            raise CarrierError(f"carrier {n!r}: zones must end with an infinite bound, "
                               f"got {self.zones}")
        bounds = [u for _, u in self.zones]
        if any(a >= b for a, b in zip(bounds, bounds[1:])) or bounds[0] <= 0:
            raise CarrierError(f"carrier {n!r}: zone bounds must be positive and increasing, "
                               f"got {bounds}")
        ids = [z for z, _ in self.zones]
        if any(a >= b for a, b in zip(ids, ids[1:])):
            raise CarrierError(f"carrier {n!r}: zone numbers must increase, got {ids}")
        w = self.weight_tiers
        if not w or w[0] <= 0 or any(a >= b for a, b in zip(w, w[1:])):
            raise CarrierError(f"carrier {n!r}: weight tiers must be positive and increasing, "
                               f"got {w}")
        names = [s.name for s in self.services]
        if not names or len(set(names)) != len(names):
            raise CarrierError(f"carrier {n!r}: service names must be unique and non-empty, "
                               f"got {names}")
        for s in self.services:
            if s.multiplier <= 0 or s.transit_days < 0:
                raise CarrierError(f"carrier {n!r}: service {s.name!r} needs multiplier > 0 "
                                   f"and transit_days >= 0, got {s}")
        if self.dim_divisor <= 0:
            raise CarrierError(f"carrier {n!r}: dim divisor must be > 0, got {self.dim_divisor}")
        if not _PREFIX_RE.fullmatch(self.tracking_prefix):
            raise CarrierError(f"carrier {n!r}: tracking prefix must be 2 letters A-Z, "
                               f"got {self.tracking_prefix!r}")

    # -- rating

    def zone(self, distance_km: float) -> int:
        return zone_for_distance(distance_km, self.zones)

    def base_price_cents(self, zone: int, billable_g: int) -> int:
        """Table price of one package of ``billable_g`` grams in ``zone``."""
        for i, upper in enumerate(self.weight_tiers):
            if billable_g <= upper:
                return self.prices[zone][i]
        raise CarrierError(f"carrier {self.name!r}: billable weight {billable_g} g exceeds the "
                           f"{self.weight_tiers[-1]} g limit (ship as freight or split)")

    def rates(self, origin_lat: float, origin_lon: float, dest_lat: float, dest_lon: float,
              packages: list[Package], ship_at_ms: int) -> list[Rate]:
        """One rate per service level, cheapest first."""
        for label, v in (("origin_lat", origin_lat), ("dest_lat", dest_lat)):
            if not math.isfinite(v) or abs(v) > 90:
                raise CarrierError(f"{label} must be a latitude in [-90, 90], got {v!r}")
        for label, v in (("origin_lon", origin_lon), ("dest_lon", dest_lon)):
            if not math.isfinite(v) or abs(v) > 180:
                raise CarrierError(f"{label} must be a longitude in [-180, 180], got {v!r}")
        if not packages:
            raise CarrierError(f"carrier {self.name!r}: a shipment needs at least one package")
        for i, p in enumerate(packages):
            _check_package(i, p)
        zone = self.zone(haversine_km(origin_lat, origin_lon, dest_lat, dest_lon))
        bases = [self.base_price_cents(zone, billable_weight_g(p, self.dim_divisor))
                 for p in packages]
        out = []
        for s in self.services:
            milli = round(s.multiplier * 1000)
            cost = sum((b * milli + 500) // 1000 for b in bases)  # half up, per package
            days = s.days_for_zone(zone)
            out.append(Rate(self.name, s.name, cost, days, eta_ms(ship_at_ms, days)))
        out.sort(key=lambda r: (r.cost_cents, r.eta_ms, r.service_level))
        return out

    def tracking_number(self, shipment_seq: int) -> str:
        return tracking_number(self.tracking_prefix, shipment_seq)


# --------------------------------------------------------------------------- choosing


def choose_rate(rates: Sequence[Rate], promised_by_ms: int | None,
                service_level: str = "") -> Rate:
    """Pick the rate to buy.

    * ``service_level`` given (case-insensitive): the cheapest rate of that level
      (CarrierError if no rate has it).
    * else, with a promise (``promised_by_ms`` > 0; None or 0 = no promise): the cheapest
      rate whose ETA is on or before the promise; if none makes it, the fastest (ties: cheaper).
    * no promise: the cheapest (ties: faster).
    """
    if not rates:
        raise CarrierError("no rates to choose from")
    by_cost = sorted(rates, key=lambda r: (r.cost_cents, r.eta_ms, r.carrier, r.service_level))
    if service_level:
        wanted = service_level.strip().upper()
        named = [r for r in by_cost if r.service_level.upper() == wanted]
        if not named:
            known = sorted({r.service_level for r in rates})
            raise CarrierError(f"unknown service level {service_level!r}; offered: {known}")
        return named[0]
    if not promised_by_ms:
        return by_cost[0]
    on_time = [r for r in by_cost if r.eta_ms <= promised_by_ms]
    if on_time:
        return on_time[0]
    return min(rates, key=lambda r: (r.eta_ms, r.cost_cents, r.carrier, r.service_level))
