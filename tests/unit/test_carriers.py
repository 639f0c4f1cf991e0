"""Carrier rating, service choice, tracking numbers (engine/carriers.py); Code 128 and labels
(server/labels.py)."""
from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.engine.carriers import (
    DEFAULT_WEIGHT_TIERS_G,
    Carrier,
    CarrierError,
    Rate,
    RateTableCarrier,
    billable_weight_g,
    carrier_holidays,
    choose_rate,
    damm_check_digit,
    dimensional_weight_g,
    eta_ms,
    is_business_day,
    validate_tracking_number,
    zone_for_distance,
)
from oms.engine.errors import OmsError
from oms.engine.geo import haversine_km
from oms.engine.models import Package, Shipment
from oms.server.labels import (
    CODE128_PATTERNS,
    build_label_figure,
    code128_checksum,
    code128b_values,
    code128b_widths,
    render_label_pdf,
)

DSM = (41.5868, -93.6250)  # Des Moines
CHI = (41.8781, -87.6298)  # Chicago, ~500 km
LA = (34.0522, -118.2437)  # Los Angeles, ~2300 km
NYC = (40.7128, -74.0060)  # New York City, ~1650 km from DSM


def ms(y: int, mo: int, d: int, h: int = 12) -> int:
    return int(datetime(y, mo, d, h, tzinfo=UTC).timestamp() * 1000)


def end_of_day_ms(y: int, mo: int, d: int) -> int:
    return int(datetime(y, mo, d, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)


MON = ms(2024, 5, 13)  # Monday 13 May 2024, noon UTC


def small(weight_g: int = 800) -> Package:
    return Package("S", weight_g, 250, 200, 100)


# --------------------------------------------------------------------------- zones, weights


@pytest.mark.parametrize(("km", "zone"), [
    (0.0, 2), (149.9, 2), (150.0, 3), (499.0, 3), (500.0, 4), (999.0, 4), (1000.0, 5),
    (1499.0, 5), (1500.0, 6), (1999.9, 6), (2000.0, 7), (2499.0, 7), (2500.0, 8), (20000.0, 8),
])
def test_zone_by_distance(km: float, zone: int) -> None:
    assert zone_for_distance(km) == zone


def test_zone_of_real_city_pairs() -> None:
    c = RateTableCarrier()
    assert c.zone(haversine_km(*DSM, *DSM)) == 2
    assert c.zone(haversine_km(*DSM, *CHI)) == 3  # ~498 km
    assert c.zone(haversine_km(*DSM, *NYC)) == 6
    assert c.zone(haversine_km(*NYC, *LA)) == 8


def test_zone_rejects_bad_distance() -> None:
    with pytest.raises(CarrierError, match="-1"):
        zone_for_distance(-1.0)
    with pytest.raises(CarrierError, match="nan"):
        zone_for_distance(float("nan"))


def test_dimensional_weight() -> None:
    # 40 x 30 x 20 cm = 24,000 cm^3 / 5000 = 4.8 kg
    box = Package("L", 1000, 400, 300, 200)
    assert dimensional_weight_g(box) == 4800
    assert billable_weight_g(box) == 4800
    heavy = Package("L", 9000, 400, 300, 200)
    assert billable_weight_g(heavy) == 9000
    # rounds up to a whole gram
    assert dimensional_weight_g(Package("X", 0, 1, 1, 1)) == 1
    assert dimensional_weight_g(box, divisor_cm3_per_kg=6000) == 4000


def test_bulky_light_box_costs_more_than_small_one() -> None:
    c = RateTableCarrier()
    pillow = Package("XL", 500, 600, 500, 400)  # 24 kg dimensional
    book = Package("S", 500, 200, 150, 30)
    r_pillow = c.rates(*DSM, *CHI, [pillow], MON)[0]
    r_book = c.rates(*DSM, *CHI, [book], MON)[0]
    assert r_pillow.cost_cents > 3 * r_book.cost_cents


def test_package_validation_names_the_value() -> None:
    c = RateTableCarrier()
    with pytest.raises(CarrierError, match=r"packages\[1\].*height_mm.*0"):
        c.rates(*DSM, *CHI, [small(), Package("B", 100, 10, 10, 0)], MON)
    with pytest.raises(CarrierError, match="at least one package"):
        c.rates(*DSM, *CHI, [], MON)
    with pytest.raises(CarrierError, match="70000 g"):
        c.rates(*DSM, *CHI, [Package("P", 80_000, 500, 500, 500)], MON)
    with pytest.raises(CarrierError, match="dest_lat"):
        c.rates(*DSM, 95.0, 0.0, [small()], MON)
    assert issubclass(CarrierError, OmsError)


def test_rate_table_must_be_monotone() -> None:
    zones = ((2, 100.0), (3, float("inf")))
    with pytest.raises(CarrierError, match="non-decreasing in weight"):
        RateTableCarrier(zones=zones, weight_tiers=(1000, 2000), prices={2: (500, 400),
                                                                          3: (600, 700)})
    with pytest.raises(CarrierError, match="zone 3"):
        RateTableCarrier(zones=zones, weight_tiers=(1000, 2000), prices={2: (500, 600),
                                                                          3: (450, 700)})
    with pytest.raises(CarrierError, match="no row for zone 3"):
        RateTableCarrier(zones=zones, weight_tiers=(1000, 2000), prices={2: (500, 600)})


# --------------------------------------------------------------------------- rates


def test_rates_one_per_service_cheapest_first_and_packages_summed() -> None:
    c = RateTableCarrier()
    assert isinstance(c, Carrier)
    one = c.rates(*DSM, *CHI, [small()], MON)
    assert [r.service_level for r in one] == ["GROUND", "EXPRESS", "OVERNIGHT"]
    assert all(r.carrier == "OMSX" for r in one)
    assert [r.cost_cents for r in one] == sorted(r.cost_cents for r in one)
    two = c.rates(*DSM, *CHI, [small(), small()], MON)
    assert [r.cost_cents for r in two] == [2 * r.cost_cents for r in one]
    mixed = c.rates(*DSM, *CHI, [small(), small(4000)], MON)
    alone = c.rates(*DSM, *CHI, [small(4000)], MON)
    assert [m.cost_cents for m in mixed] == [a.cost_cents + b.cost_cents
                                            for a, b in zip(one, alone)]


def test_ground_transit_grows_with_zone() -> None:
    c = RateTableCarrier()

    def ground(dest: tuple[float, float]) -> Rate:
        return next(r for r in c.rates(*DSM, *dest, [small()], MON)
                    if r.service_level == "GROUND")

    assert ground(DSM).transit_days == 1
    assert ground(CHI).transit_days == 2
    assert ground(LA).transit_days == 4
    r_ny_la = next(r for r in c.rates(*NYC, *LA, [small()], MON) if r.service_level == "GROUND")
    assert r_ny_la.transit_days == 5
    assert r_ny_la.eta_ms == end_of_day_ms(2024, 5, 20)  # Mon + 5 business days = next Mon


lat = st.floats(min_value=-60, max_value=70)
lon = st.floats(min_value=-170, max_value=170)


@settings(max_examples=150, deadline=None)
@given(w1=st.integers(0, 70_000), w2=st.integers(0, 70_000), dims=st.tuples(
    st.integers(50, 600), st.integers(50, 600), st.integers(20, 400)),
    o=st.tuples(lat, lon), d=st.tuples(lat, lon))
def test_cost_monotone_in_weight(w1: int, w2: int, dims: tuple[int, int, int],
                                 o: tuple[float, float], d: tuple[float, float]) -> None:
    c = RateTableCarrier()
    lo, hi = sorted((w1, w2))
    p_lo, p_hi = Package("B", lo, *dims), Package("B", hi, *dims)
    if billable_weight_g(p_hi) > DEFAULT_WEIGHT_TIERS_G[-1]:
        return
    r_lo = {r.service_level: r.cost_cents for r in c.rates(*o, *d, [p_lo], MON)}
    r_hi = {r.service_level: r.cost_cents for r in c.rates(*o, *d, [p_hi], MON)}
    assert all(r_lo[s] <= r_hi[s] for s in r_lo)


@settings(max_examples=150, deadline=None)
@given(w=st.integers(0, 30_000), o=st.tuples(lat, lon), d1=st.tuples(lat, lon),
       d2=st.tuples(lat, lon))
def test_cost_monotone_in_distance(w: int, o: tuple[float, float], d1: tuple[float, float],
                                   d2: tuple[float, float]) -> None:
    c = RateTableCarrier()
    near, far = sorted((d1, d2), key=lambda d: haversine_km(*o, *d))
    assert c.zone(haversine_km(*o, *near)) <= c.zone(haversine_km(*o, *far))
    p = [Package("B", w, 300, 200, 100)]
    r_near = {r.service_level: r for r in c.rates(*o, *near, p, MON)}
    r_far = {r.service_level: r for r in c.rates(*o, *far, p, MON)}
    for s, rn in r_near.items():
        assert rn.cost_cents <= r_far[s].cost_cents
        assert rn.transit_days <= r_far[s].transit_days


def test_faster_service_costs_more() -> None:
    for dest in (DSM, CHI, NYC, LA):
        r = {x.service_level: x.cost_cents for x in RateTableCarrier().rates(
            *DSM, *dest, [small()], MON)}
        assert r["GROUND"] < r["EXPRESS"] < r["OVERNIGHT"]


# --------------------------------------------------------------------------- ETA


def test_eta_end_of_day_and_weekends_skipped() -> None:
    assert eta_ms(MON, 1) == end_of_day_ms(2024, 5, 14)
    assert eta_ms(MON, 0) == end_of_day_ms(2024, 5, 13)
    fri = ms(2024, 5, 17)
    assert eta_ms(fri, 1) == end_of_day_ms(2024, 5, 20)  # Fri -> Mon
    assert eta_ms(fri, 2) == end_of_day_ms(2024, 5, 21)
    assert eta_ms(ms(2024, 5, 15), 5) == end_of_day_ms(2024, 5, 22)  # Wed + 5 = next Wed
    # weekend handover is tendered Monday
    assert eta_ms(ms(2024, 5, 18), 1) == end_of_day_ms(2024, 5, 21)  # Sat -> Tue
    assert eta_ms(ms(2024, 5, 19, 23), 1) == end_of_day_ms(2024, 5, 21)  # Sun -> Tue
    # the UTC date counts, not the hour
    assert eta_ms(ms(2024, 5, 13, 0), 1) == eta_ms(ms(2024, 5, 13, 23), 1)


@pytest.mark.parametrize("year, want", [
    (2024, ["2024-01-01", "2024-05-27", "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25"]),
    # 4 July 2021 a Sunday (observed Monday), Christmas a Saturday (observed Friday) and
    # New Year 2022 a Saturday: observed on 31 December 2021
    (2021, ["2021-01-01", "2021-05-31", "2021-07-05", "2021-09-06", "2021-11-25", "2021-12-24",
            "2021-12-31"]),
    (2022, ["2022-05-30", "2022-07-04", "2022-09-05", "2022-11-24", "2022-12-26"]),
    (2026, ["2026-01-01", "2026-05-25", "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25"]),
])
def test_carrier_holidays(year: int, want: list[str]) -> None:
    assert sorted(d.isoformat() for d in carrier_holidays(year)) == want


def test_eta_skips_carrier_holidays() -> None:
    assert eta_ms(ms(2024, 11, 27), 1) == end_of_day_ms(2024, 11, 29)  # Wed -> Thanksgiving -> Fri
    assert eta_ms(ms(2024, 11, 28, 15), 1) == end_of_day_ms(2024, 12, 2)  # tendered Fri -> Mon
    assert eta_ms(ms(2021, 12, 23), 1) == end_of_day_ms(2021, 12, 27)  # Fri 24th observed
    assert eta_ms(ms(2024, 12, 24), 2) == end_of_day_ms(2024, 12, 27)
    assert eta_ms(ms(2024, 12, 25), 0) == end_of_day_ms(2024, 12, 26)


@settings(max_examples=200, deadline=None)
@given(t=st.integers(0, 4_000_000_000_000), days=st.integers(0, 15))
def test_eta_lands_on_a_business_day_after_enough_business_days(t: int, days: int) -> None:
    e = eta_ms(t, days)
    end = datetime.fromtimestamp(e / 1000, tz=UTC)
    assert is_business_day(end.date()) and (end.hour, end.minute, end.second) == (23, 59, 59)
    tendered = datetime.fromtimestamp(t / 1000, tz=UTC).date()
    skipped = 0
    while tendered.weekday() >= 5 or tendered in carrier_holidays(tendered.year):
        tendered = tendered.fromordinal(tendered.toordinal() + 1)
        skipped += 1
    assert skipped <= 4  # e.g. Thanksgiving Thursday to Monday
    span = [date.fromordinal(o) for o in range(tendered.toordinal() + 1, end.date().toordinal() + 1)]
    assert end.date() >= tendered
    assert sum(1 for d in span if d.weekday() < 5 and d not in carrier_holidays(d.year)) == days
    assert eta_ms(t, days + 1) > e


# --------------------------------------------------------------------------- choose_rate


def r(level: str, cost: int, eta: int, carrier: str = "OMSX") -> Rate:
    return Rate(carrier, level, cost, 0, eta)


RATES = [r("GROUND", 1000, 500), r("EXPRESS", 2000, 300), r("OVERNIGHT", 3000, 100)]


def test_choose_cheapest_meeting_the_promise() -> None:
    assert choose_rate(RATES, 600).service_level == "GROUND"
    assert choose_rate(RATES, 500).service_level == "GROUND"  # ETA == promise is on time
    assert choose_rate(RATES, 499).service_level == "EXPRESS"
    assert choose_rate(RATES, 100).service_level == "OVERNIGHT"


def test_choose_fastest_when_nothing_makes_it() -> None:
    assert choose_rate(RATES, 50).service_level == "OVERNIGHT"
    tie = RATES + [r("OVERNIGHT", 2500, 100, carrier="OTHER")]
    assert choose_rate(tie, 50).carrier == "OTHER"  # equally fast, cheaper


def test_choose_without_promise_is_cheapest() -> None:
    assert choose_rate(RATES, None).service_level == "GROUND"
    assert choose_rate(RATES, 0).service_level == "GROUND"


def test_choose_named_level() -> None:
    assert choose_rate(RATES, 600, "OVERNIGHT").service_level == "OVERNIGHT"
    assert choose_rate(RATES, None, "express").service_level == "EXPRESS"
    with pytest.raises(CarrierError, match="'DRONE'.*EXPRESS"):
        choose_rate(RATES, None, "DRONE")
    with pytest.raises(CarrierError, match="no rates"):
        choose_rate([], None)


def test_choose_on_real_rates() -> None:
    rates = RateTableCarrier().rates(*DSM, *LA, [small()], MON)  # ground: 4 days -> Fri
    assert choose_rate(rates, end_of_day_ms(2024, 5, 17)).service_level == "GROUND"
    assert choose_rate(rates, end_of_day_ms(2024, 5, 15)).service_level == "EXPRESS"
    assert choose_rate(rates, end_of_day_ms(2024, 5, 14)).service_level == "OVERNIGHT"
    assert choose_rate(rates, ms(2024, 5, 13, 18)).service_level == "OVERNIGHT"  # fallback


# --------------------------------------------------------------------------- tracking numbers


def test_tracking_number_format_and_uniqueness() -> None:
    c = RateTableCarrier()
    t = c.tracking_number(42)
    assert re.fullmatch(r"OX\d{13}", t) and t[2:14] == "000000000042"
    assert validate_tracking_number(t) and validate_tracking_number(t, prefix="OX")
    assert not validate_tracking_number(t, prefix="ZZ")
    nums = {c.tracking_number(s) for s in range(5000)}
    assert len(nums) == 5000
    other = RateTableCarrier("ACME", tracking_prefix="AC")
    assert other.tracking_number(42)[2:] == t[2:] and other.tracking_number(42) != t
    for bad in (-1, 10**12, 1.5):
        with pytest.raises(CarrierError, match="shipment_seq"):
            c.tracking_number(bad)  # type: ignore[arg-type]
    with pytest.raises(CarrierError, match="'ox'"):
        RateTableCarrier(tracking_prefix="ox")


def test_damm_known_values() -> None:
    assert damm_check_digit("572") == "4"  # the textbook example
    assert damm_check_digit("5724") == "0"  # a valid number checks to 0
    for bad in ("", "12a", "١٢"):  # empty, letter, non-ASCII digits
        with pytest.raises(CarrierError, match="decimal digits"):
            damm_check_digit(bad)


def test_validate_rejects_malformed() -> None:
    good = RateTableCarrier().tracking_number(123456789)
    for bad in ("", good[:-1], good + "0", good.lower(), "O" + good, good.replace("OX", "0X"),
                good[:5] + "a" + good[6:], None):
        assert not validate_tracking_number(bad)  # type: ignore[arg-type]


def test_check_digit_catches_every_single_substitution_and_adjacent_transposition() -> None:
    rng = random.Random(7)
    c = RateTableCarrier()
    for _ in range(300):
        t = c.tracking_number(rng.randrange(10**12))
        digits = t[2:]
        for i in range(len(digits)):
            for d in "0123456789":
                if d != digits[i]:
                    assert not validate_tracking_number(t[:2] + digits[:i] + d + digits[i + 1:])
        for i in range(len(digits) - 1):
            if digits[i] != digits[i + 1]:
                swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
                assert not validate_tracking_number(t[:2] + swapped)


def test_check_digit_catches_the_transpositions_luhn_misses() -> None:
    # every adjacent pair ab -> ba at every position, including 09 <-> 90
    body = "000000000000"
    for i in range(11):
        for a in range(10):
            for b in range(10):
                if a == b:
                    continue
                s = body[:i] + f"{a}{b}" + body[i + 2:]
                t = "OX" + s + damm_check_digit(s)
                u = "OX" + s[:i] + f"{b}{a}" + s[i + 2:] + t[-1]
                assert validate_tracking_number(t) and not validate_tracking_number(u)


# --------------------------------------------------------------------------- Code 128


def test_code128_table_shape() -> None:
    assert len(CODE128_PATTERNS) == 107
    assert len(set(CODE128_PATTERNS)) == 107
    for v, p in enumerate(CODE128_PATTERNS[:106]):
        widths = [int(c) for c in p]
        assert len(widths) == 6 and sum(widths) == 11, v
        assert all(1 <= w <= 4 for w in widths)
        assert sum(widths[0::2]) % 2 == 0, v  # bar modules are even in every symbol
    assert CODE128_PATTERNS[106] == "2331112"
    assert CODE128_PATTERNS[104] == "211214"  # start B


def test_code128_checksum_known_examples() -> None:
    # Wikipedia's example: "PJJ123C" in subset A -> 54
    pjj = [103] + [ord(ch) - 32 for ch in "PJJ123C"]
    assert code128_checksum(pjj) == 54
    # subset B "abcdef" -> 97; subset C "345678" (pairs 34 56 78) -> 73
    assert code128_checksum([104] + [ord(ch) - 32 for ch in "abcdef"]) == 97
    assert code128_checksum([105, 34, 56, 78]) == 73
    # "HI345678" as Start A, H, I, Code C, 34, 56, 78 -> 67
    assert code128_checksum([103, 40, 41, 99, 34, 56, 78]) == 67
    assert code128b_values("PJJ123C")[-2] == 55  # same data under start B (104): one more


def test_code128b_encoding() -> None:
    v = code128b_values("OX1")
    assert v[0] == 104 and v[-1] == 106 and v[1:4] == [47, 56, 17]
    w = code128b_widths("OX0000000000420")
    assert sum(w) == 11 * (15 + 3) + 2
    assert len(w) == 6 * (15 + 2) + 7
    with pytest.raises(CarrierError, match="ASCII"):
        code128b_values("é")
    with pytest.raises(CarrierError, match="empty"):
        code128b_values("")


def decode_code128b(widths: list[int]) -> str:
    """Independent decoder: widths -> text; checks start B, checksum and stop."""
    table = {p: v for v, p in enumerate(CODE128_PATTERNS)}
    assert "".join(map(str, widths[-7:])) == CODE128_PATTERNS[106]
    body = widths[:-7]
    assert len(body) % 6 == 0
    values = [table["".join(map(str, body[i:i + 6]))] for i in range(0, len(body), 6)]
    assert values[0] == 104
    *data, check = values
    assert check == (data[0] + sum(i * x for i, x in enumerate(data[1:], 1))) % 103
    return "".join(chr(x + 32) for x in data[1:])


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
               max_size=40))
def test_code128b_roundtrip(text: str) -> None:
    assert decode_code128b(code128b_widths(text)) == text


# --------------------------------------------------------------------------- labels

FROM = {"name": "OMS Des Moines DC", "line1": "100 Locust St", "city": "Des Moines",
        "region": "IA", "postal_code": "50309", "country": "US"}
TO = {"name": "Jane Doe", "line1": "233 S Wacker Dr", "city": "Chicago", "region": "IL",
      "postal_code": "60606", "country": "US"}


def shipment(tracking: str = "") -> Shipment:
    c = RateTableCarrier()
    pk = (Package("M", 1200, 300, 200, 150, ("SKU-1",)), Package("S", 400, 200, 150, 100))
    rate = choose_rate(c.rates(*DSM, *CHI, list(pk), MON), None, "EXPRESS")
    return Shipment("shp_1", "DSM1", c.name, rate.service_level,
                    tracking or c.tracking_number(4242), "", pk, rate.eta_ms, rate.cost_cents)


def test_label_pdf_one_page_4x6() -> None:
    pdf = render_label_pdf(shipment(), FROM, TO, "ord_123")
    assert pdf.startswith(b"%PDF")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf)) == 1
    assert re.search(rb"/Count\s+1\b", pdf)
    assert re.search(rb"/MediaBox\s*\[\s*0\s+0\s+288\s+432\s*\]", pdf)  # 4 x 6 in in points
    # deterministic: same shipment, same bytes
    assert render_label_pdf(shipment(), FROM, TO, "ord_123") == pdf


def test_label_barcode_bars_decode_to_the_tracking_number() -> None:
    sh = shipment()
    fig = build_label_figure(sh, FROM, TO, "ord_123")
    bars = sorted((p for p in fig.axes[0].patches if p.get_gid() == "code128-bar"),
                  key=lambda p: p.get_x())
    module = min(p.get_width() for p in bars)
    widths: list[int] = []
    for a, b in zip(bars, bars[1:] + [None]):
        widths.append(round(a.get_width() / module))
        if b is not None:
            widths.append(round((b.get_x() - a.get_x() - a.get_width()) / module))
    assert all(w >= 1 for w in widths)
    assert decode_code128b(widths) == sh.tracking_number
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for needle in ("Jane Doe", "Chicago, IL 60606", "EXPRESS", "OMSX", "ord_123", "shp_1",
                   "PIECES: 2", "Des Moines, IA 50309"):
        assert needle in texts


def test_label_errors() -> None:
    with pytest.raises(CarrierError, match="ship_to"):
        render_label_pdf(shipment(), FROM, {}, "o1")
    with pytest.raises(CarrierError, match="too long"):
        render_label_pdf(shipment("X" * 80), FROM, TO, "o1")
    with pytest.raises(CarrierError, match="ASCII"):
        render_label_pdf(shipment("OX\u00e9"), FROM, TO, "o1")
