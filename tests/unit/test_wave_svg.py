"""wave_svg: the drawn walk of a batch is the exact route's walk, only along aisles and cross
aisles, and its length equals the route length."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from oms.engine import routing
from oms.engine.models import Layout, location_code
from oms.server.web.console.wave_svg import Stop, route_svg, walk, walk_length_m

SVG_NS = "{http://www.w3.org/2000/svg}"


def _exact_stops(layout: Layout, rng: np.random.Generator, n: int) -> tuple[float, list[Stop]]:
    aisles = rng.integers(0, layout.aisles, n)
    slots = rng.integers(0, layout.slots_per_aisle, n)
    length, visit = routing.exact_route(aisles, slots, layout)
    stops = [Stop(int(aisles[i]), int(slots[i]), location_code(int(aisles[i]), int(slots[i])),
                  f"SKU-{i}", 1 + int(i) % 3) for i in visit]
    return length, stops


def _polyline(svg: str) -> tuple[ET.Element, list[tuple[float, float]]]:
    root = ET.fromstring(svg)
    poly = root.find(f".//{SVG_NS}polyline")
    assert poly is not None
    pts = [tuple(map(float, p.split(","))) for p in poly.get("points", "").split()]
    return root, pts


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("layout", [Layout(), Layout(aisles=7, slots_per_aisle=30,
                                                       slot_length_m=1.4, aisle_spacing_m=2.5)])
def test_walk_length_equals_exact_route(seed: int, layout: Layout) -> None:
    rng = np.random.default_rng(seed)
    length, stops = _exact_stops(layout, rng, int(rng.integers(1, 40)))
    pts = walk(layout, stops)
    assert pts[0] == (0.0, 0.0) and pts[-1] == (0.0, 0.0)
    assert walk_length_m(pts) == pytest.approx(length, rel=1e-9)
    # the SVG polyline, scaled back to metres, has the same length (within 1 %, rounding)
    svg = str(route_svg(layout, "W1/1", stops, distance_m=length))
    root, px = _polyline(svg)
    g = root.find(f"{SVG_NS}g")
    assert g is not None and g.get("data-batch") == "W1/1"
    assert float(g.get("data-walk-m")) == pytest.approx(length, abs=1e-3)
    drawn_px = sum(abs(x2 - x1) + abs(y2 - y1) for (x1, y1), (x2, y2) in zip(px, px[1:]))
    # the scale: distance between the pixel x of aisle 0 and aisle 1 lines
    xs = sorted({float(e.get("x1")) for e in root.iter(f"{SVG_NS}line")
                 if e.get("class") == "aisle"})
    scale = (xs[1] - xs[0]) / layout.aisle_spacing_m
    assert drawn_px / scale == pytest.approx(length, rel=0.01)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_walk_moves_only_along_aisles_and_cross_aisles(seed: int) -> None:
    layout = Layout(aisles=12, slots_per_aisle=40, slot_length_m=1.0, aisle_spacing_m=3.0)
    rng = np.random.default_rng(seed)
    _, stops = _exact_stops(layout, rng, 25)
    pts = walk(layout, stops)
    L = layout.length_m
    aisle_xs = {layout.aisle_x(i) for i in range(layout.aisles)}
    for (x1, y1), (x2, y2) in zip(pts, pts[1:]):
        assert x1 == x2 or y1 == y2, "segments are axis-parallel"
        if x1 == x2:
            assert x1 in aisle_xs, "vertical moves happen in an aisle"
            assert 0.0 <= min(y1, y2) and max(y1, y2) <= L
        else:
            assert y1 in (0.0, L), "horizontal moves happen on a cross aisle"
    # every stop is on the walk, in visiting order (stops at one bin in a row: one point)
    want = [(layout.aisle_x(s.aisle), layout.slot_y(s.slot)) for s in stops]
    want = [w for k, w in enumerate(want) if k == 0 or want[k - 1] != w]
    it = iter(pts)
    assert all(any(p == w for p in it) for w in want)


def test_numbered_stops_racks_depot_and_cross_aisles() -> None:
    layout = Layout(aisles=4, slots_per_aisle=10, slot_length_m=1.0, aisle_spacing_m=3.0)
    stops = [Stop(1, 2, "A01-S002", "A", 1), Stop(1, 2, "A01-S002", "B", 2),
             Stop(3, 9, "A03-S009", "C", 5)]
    root = ET.fromstring(str(route_svg(layout, "b", stops)))
    dots = [g for g in root.iter(f"{SVG_NS}g") if g.get("class") == "stop"]
    assert len(dots) == 2  # two bins; the shared one labelled "1,2"
    labels = [g.find(f"{SVG_NS}text").text for g in dots]
    assert labels == ["1,2", "3"]
    classes = [e.get("class") for e in root.iter()]
    assert classes.count("rack") == layout.aisles + 1
    assert "cross-aisle cross-front" in classes and "cross-aisle cross-back" in classes
    assert "depot" in classes
    assert classes.count("aisle") == layout.aisles
    # depot -> along the front to aisle 1, up to y 2.5 (5.5); to aisle 3 y 9.5 via the back
    # (7.5 + 6 + 0.5 = 14 < 2.5 + 6 + 9.5); home via the front (9.5 + 9 < 0.5 + 9 + 10).
    assert walk_length_m(walk(layout, stops)) == pytest.approx(5.5 + 14 + 18.5)


def test_escapes_ids_and_skus_and_has_no_style_attributes() -> None:
    layout = Layout(aisles=3, slots_per_aisle=5)
    svg = str(route_svg(layout, '"><script>x</script>', [Stop(2, 1, "A02-S001", "<b>", 1)]))
    assert "<script>" not in svg and "<b>" not in svg
    assert not re.search(r"\sstyle=", svg)
    root = ET.fromstring(svg)
    assert root.find(f"{SVG_NS}g").get("data-batch") == '"><script>x</script>'


def test_empty_batch_and_out_of_layout_stop() -> None:
    layout = Layout(aisles=3, slots_per_aisle=5)
    root = ET.fromstring(str(route_svg(layout, "e", [])))
    assert root.find(f"{SVG_NS}g").get("data-walk-m") == "0.000"
    with pytest.raises(ValueError):
        route_svg(layout, "x", [Stop(3, 0)])
    with pytest.raises(ValueError):
        walk(layout, [Stop(0, 5)])


def test_a_non_exact_order_draws_its_own_longer_walk() -> None:
    """The drawing follows the given order; the S-shape order of the same picks is at least as
    long as the exact route, and the drawing says so."""
    layout = Layout()
    rng = np.random.default_rng(7)
    aisles = rng.integers(0, layout.aisles, 30)
    slots = rng.integers(0, layout.slots_per_aisle, 30)
    exact, _ = routing.exact_route(aisles, slots, layout)
    s_len, s_visit = routing.s_shape_route(aisles, slots, layout)
    stops = [Stop(int(aisles[i]), int(slots[i])) for i in s_visit]
    drawn = walk_length_m(walk(layout, stops))
    assert drawn >= exact - 1e-9
    assert drawn <= s_len + 1e-9
