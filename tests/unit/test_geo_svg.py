"""geo_svg: the vendored us-atlas states decode into SVG paths, and the Albers USA projection
puts known cities inside their own state (bounding box and point-in-polygon)."""
from __future__ import annotations

import re

import pytest

from oms.server.web.console import geo_svg

# (lat, lon, state): the lower 48 at its corners, plus both insets and DC.
CITIES = {
    "Des Moines": (41.5868, -93.6250, "Iowa"),
    "Seattle": (47.6062, -122.3321, "Washington"),
    "Miami": (25.7617, -80.1918, "Florida"),
    "Key West": (24.5551, -81.7800, "Florida"),
    "Boston": (42.3601, -71.0589, "Massachusetts"),
    "San Diego": (32.7157, -117.1611, "California"),
    "Brownsville": (25.9017, -97.4975, "Texas"),
    "Duluth": (46.7867, -92.1005, "Minnesota"),
    "Washington": (38.8977, -77.0365, "District of Columbia"),
    "Anchorage": (61.2181, -149.9003, "Alaska"),
    "Juneau": (58.3019, -134.4197, "Alaska"),
    "Honolulu": (21.3069, -157.8583, "Hawaii"),
    "Hilo": (19.7241, -155.0868, "Hawaii"),
}


def _inside(rings: tuple[tuple[tuple[float, float], ...], ...], x: float, y: float) -> bool:
    """Even-odd ray casting over every ring (holes included)."""
    inside = False
    for r in rings:
        for i in range(len(r)):
            (x1, y1), (x2, y2) = r[i], r[i - 1]
            if (y1 > y) != (y2 > y) and x < (x2 - x1) * (y - y1) / (y2 - y1) + x1:
                inside = not inside
    return inside


@pytest.fixture(scope="module")
def states() -> dict[str, geo_svg.StatePath]:
    return {s.name: s for s in geo_svg.state_paths()}


def test_all_fifty_states_and_dc_are_decoded(states: dict[str, geo_svg.StatePath]) -> None:
    assert len(states) == 51
    assert "District of Columbia" in states and "Alaska" in states and "Hawaii" in states
    assert len({s.fips for s in states.values()}) == 51
    for s in states.values():
        assert re.fullmatch(r"(M[-\d.]+,[-\d.]+(L[-\d.]+,[-\d.]+){2,}Z)+", s.d), s.name
        x0, y0, x1, y1 = s.bbox
        # Inside the atlas' box (only Alaska's western Aleutians run past its left edge, as
        # in us-atlas itself: its bbox starts at x = -57.7), and not degenerate.
        assert (-58 if s.name == "Alaska" else 0) <= x0 < x1 <= geo_svg.WIDTH, s.name
        assert 0 <= y0 < y1 <= geo_svg.HEIGHT, s.name


def test_decoding_is_cached() -> None:
    assert geo_svg.state_paths() is geo_svg.state_paths()


def test_delta_decoding_closes_rings(states: dict[str, geo_svg.StatePath]) -> None:
    # Absolute coordinates are right only if every arc's deltas were summed: then each
    # stitched ring ends where it starts.
    for s in states.values():
        for ring in s.rings:
            assert ring[0] == pytest.approx(ring[-1], abs=1e-6), s.name


def test_relative_sizes_are_plausible(states: dict[str, geo_svg.StatePath]) -> None:
    def width(name: str) -> float:
        x0, _, x1, _ = states[name].bbox
        return x1 - x0

    assert width("Texas") > width("Iowa") > width("Rhode Island")
    assert states["Maine"].bbox[2] > states["California"].bbox[2]  # east is right
    assert states["Florida"].bbox[3] > states["Minnesota"].bbox[3]  # south is down


@pytest.mark.parametrize("city", sorted(CITIES))
def test_city_lands_in_its_state(city: str, states: dict[str, geo_svg.StatePath]) -> None:
    lat, lon, name = CITIES[city]
    xy = geo_svg.project(lat, lon)
    assert xy is not None
    x, y = xy
    x0, y0, x1, y1 = states[name].bbox
    assert x0 <= x <= x1 and y0 <= y <= y1
    assert _inside(states[name].rings, x, y)
    others = [s.name for s in states.values() if s.name != name and _inside(s.rings, x, y)]
    assert others == []


@pytest.mark.parametrize("lat,lon", [
    (51.5074, -0.1278),    # London
    (19.4326, -99.1332),   # Mexico City
    (-33.8688, 151.2093),  # Sydney
    (35.6762, 139.6503),   # Tokyo
    (64.1466, -21.9426),   # Reykjavik
])
def test_points_outside_every_frame_are_none(lat: float, lon: float) -> None:
    assert geo_svg.project(lat, lon) is None


@pytest.mark.parametrize("lat,lon", [(float("nan"), -93.0), (41.0, float("inf")), (95.0, -93.0)])
def test_bad_coordinates_are_none(lat: float, lon: float) -> None:
    assert geo_svg.project(lat, lon) is None


def test_insets_do_not_overlap_the_lower_48() -> None:
    anchorage = geo_svg.project(61.2181, -149.9003)
    honolulu = geo_svg.project(21.3069, -157.8583)
    assert anchorage is not None and honolulu is not None
    # Both insets sit in the lower-left corner, Alaska left of Hawaii.
    assert anchorage[0] < honolulu[0] < geo_svg.WIDTH / 2
    assert anchorage[1] > geo_svg.HEIGHT * 0.8 and honolulu[1] > geo_svg.HEIGHT * 0.8
