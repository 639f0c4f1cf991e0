"""Great-circle distances and offline ZIP geocoding (engine/geo.py)."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from oms.engine import geo
from oms.engine.errors import ValidationError
from oms.engine.geo import (
    EARTH_RADIUS_KM,
    all_us_zips,
    distance_matrix,
    geocode_us_zip,
    haversine_km,
)


def test_des_moines_to_chicago_about_500_km() -> None:
    dsm = geocode_us_zip("50309")
    chi = geocode_us_zip("60601")
    assert dsm is not None and chi is not None
    assert haversine_km(*dsm, *chi) == pytest.approx(500.0, rel=0.02)


def test_known_geometry() -> None:
    one_degree = 2 * math.pi * EARTH_RADIUS_KM / 360
    assert haversine_km(0, 0, 0, 1) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_km(0, 0, 1, 0) == pytest.approx(one_degree, rel=1e-12)
    assert haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    assert haversine_km(41.5, -93.6, 41.5, -93.6) == 0.0
    # Longitude wrap: 179.5E to 179.5W is one degree at the equator.
    assert haversine_km(0, 179.5, 0, -179.5) == pytest.approx(one_degree, rel=1e-9)


def test_symmetric() -> None:
    assert haversine_km(40.7, -74.0, 34.05, -118.24) == haversine_km(34.05, -118.24, 40.7, -74.0)


def test_matrix_equals_scalar() -> None:
    rng = np.random.default_rng(7)
    o_lat, o_lon = rng.uniform(-80, 80, 37), rng.uniform(-180, 180, 37)
    w_lat, w_lon = rng.uniform(-80, 80, 5), rng.uniform(-180, 180, 5)
    m = distance_matrix(o_lat, o_lon, w_lat, w_lon)
    assert m.shape == (37, 5) and m.dtype == np.float64 and m.flags.c_contiguous
    for i in range(37):
        for j in range(5):
            assert m[i, j] == haversine_km(o_lat[i], o_lon[i], w_lat[j], w_lon[j])


def test_matrix_accepts_lists_and_empty() -> None:
    assert distance_matrix([], [], [1.0], [2.0]).shape == (0, 1)
    assert distance_matrix([1.0], [2.0], [], []).shape == (1, 0)
    m = distance_matrix([41.5887], [-93.6212], [41.8858, 41.5887], [-87.6181, -93.6212])
    assert m[0, 1] == 0.0 and m[0, 0] == pytest.approx(499.1, abs=0.5)


@pytest.mark.parametrize(
    "args",
    [
        ([1.0, 2.0], [1.0], [0.0], [0.0]),
        ([1.0], [1.0], [0.0, 1.0], [0.0]),
        ([float("nan")], [1.0], [0.0], [0.0]),
        ([[1.0]], [[1.0]], [0.0], [0.0]),
    ],
)
def test_matrix_rejects_bad_input(args) -> None:
    with pytest.raises(ValidationError):
        distance_matrix(*[np.asarray(a) for a in args])


def test_zip_lookup_forms() -> None:
    dsm = geocode_us_zip("50309")
    assert dsm == pytest.approx((41.5887, -93.6212), abs=1e-3)
    assert geocode_us_zip("50309-1234") == dsm
    assert geocode_us_zip(" 50309 ") == dsm
    assert geocode_us_zip("\t50309-1234\n") == dsm


@pytest.mark.parametrize(
    "bad", ["", "   ", "5030", "503090", "50309-12", "50309-12345", "5O309", "abcde", "00000",
            "99999", "50309 1234"],
)
def test_zip_lookup_unknown_or_malformed(bad: str) -> None:
    assert geocode_us_zip(bad) is None


def test_zip_lookup_non_string() -> None:
    assert geocode_us_zip(50309) is None  # type: ignore[arg-type]
    assert geocode_us_zip(None) is None  # type: ignore[arg-type]


def test_all_us_zips() -> None:
    zips = all_us_zips()
    assert len(zips) > 25_000
    assert [z[0] for z in zips] == sorted(z[0] for z in zips)
    assert len({z[0] for z in zips}) == len(zips)
    by_zip = {z[0]: z for z in zips}
    assert by_zip["50309"][3:] == ("Des Moines", "IA")
    assert by_zip["60601"][3:] == ("Chicago", "IL")
    for z, lat, lon, city, state in zips:
        assert len(z) == 5 and z.isdigit()
        assert lat != 0.0 and lon != 0.0 and -90 <= lat <= 90 and -180 <= lon <= 180
        assert geocode_us_zip(z) == (lat, lon)
        assert isinstance(city, str) and len(state) == 2
    # Only STANDARD zips: 00501 is the IRS's UNIQUE zip.
    assert "00501" not in by_zip
    # Callers get their own list.
    zips.clear()
    assert all_us_zips()


def test_lazy_load_is_thread_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = geo._raw_zip_records

    def counting() -> list[dict]:
        calls.append(1)
        return real()

    monkeypatch.setattr(geo, "_raw_zip_records", counting)
    monkeypatch.setattr(geo, "_zip_index", None)
    monkeypatch.setattr(geo, "_standard_zips", None)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        results.append(geocode_us_zip("60601"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 8 and len(set(results)) == 1 and results[0] is not None
