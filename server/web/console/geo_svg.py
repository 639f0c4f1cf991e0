"""US state outlines as SVG paths and the Albers USA projection, for the console's maps.

Pure: no aiohttp, grpc or I/O beyond reading the vendored file once.

The outlines are us-atlas 3.0.1's ``states-albers-10m.json`` (vendored under
``static/vendor/us-atlas/``, ISC licence kept): TopoJSON whose coordinates are ALREADY projected
by ``d3.geoAlbersUsa().scale(1300).translate([487.5, 305])`` into a 975×610 box, and quantized
(integer, delta-encoded arcs plus a scale/translate transform). ``state_paths()`` decodes them
as topojson-client does and caches the result for the process.

``project(lat, lon)`` places a point in the same box: a port of d3-geo's ``geoAlbersUsa`` (the
lower 48 as a conic equal-area projection with standard parallels 29.5°/45.5°, rotate [96, 0],
center [-0.6, 38.7]; Alaska (scale × 0.35) and Hawaii as insets), each with d3's clip extents,
so a point outside all three answers None. Only points are projected here, so d3's resampling
and antimeridian clipping (which pass points through unchanged) are not needed.
"""
from __future__ import annotations

import html
import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WIDTH", "HEIGHT", "StatePath", "state_paths", "states_svg", "project", "ring_bbox"]

WIDTH = 975.0
HEIGHT = 610.0
ATLAS = Path(__file__).resolve().parent / "static" / "vendor" / "us-atlas" / "states-albers-10m.json"

# d3.geoAlbersUsa().scale(1300).translate([487.5, 305]): how us-atlas projected its file.
_SCALE = 1300.0
_TX, _TY = 487.5, 305.0
_EPS = 1e-6  # d3-geo's epsilon, shrinking the insets' clip boxes
_RAD = math.pi / 180.0

Point = tuple[float, float]


@dataclass(frozen=True)
class StatePath:
    """One state (or DC): FIPS id, name, SVG path data and the bounding box of its rings."""

    fips: str
    name: str
    d: str
    bbox: tuple[float, float, float, float]  # x0, y0, x1, y1
    rings: tuple[tuple[Point, ...], ...]


# --------------------------------------------------------------------------- projection


class _ConicEqualArea:
    """d3.geoConicEqualArea with rotate [λ, 0], center, parallels, scale and translate, as
    d3's projectionMutator composes them (rotation, raw projection, then scale/translate
    adjusted so that ``center`` lands on ``translate``), plus a clip rectangle."""

    def __init__(self, rotate: float, center: Point, parallels: Point, k: float,
                 translate: Point, clip: tuple[float, float, float, float]) -> None:
        sy0 = math.sin(parallels[0] * _RAD)
        self.n = (sy0 + math.sin(parallels[1] * _RAD)) / 2.0
        self.c = 1.0 + sy0 * (2.0 * self.n - sy0)
        self.r0 = math.sqrt(self.c) / self.n
        self.dl = rotate * _RAD
        self.k = k
        # recenter(): the raw projection of the (unrotated) center, scaled, is moved onto
        # translate. d3 projects the center without applying the rotation.
        cx, cy = self._raw(center[0] * _RAD, center[1] * _RAD)
        self.dx = translate[0] - k * cx
        self.dy = translate[1] + k * cy
        self.clip = clip

    def _raw(self, lam: float, phi: float) -> Point:
        r = math.sqrt(max(0.0, self.c - 2.0 * self.n * math.sin(phi))) / self.n
        x = lam * self.n
        return r * math.sin(x), self.r0 - r * math.cos(x)

    def __call__(self, lon: float, lat: float) -> Point | None:
        lam = lon * _RAD + self.dl
        if abs(lam) > math.pi:  # d3's forwardRotationLambda wraps into [-π, π]
            lam -= round(lam / (2 * math.pi)) * 2 * math.pi
        x, y = self._raw(lam, lat * _RAD)
        px, py = self.dx + self.k * x, self.dy - self.k * y
        x0, y0, x1, y1 = self.clip
        if x0 <= px <= x1 and y0 <= py <= y1:
            return px, py
        return None


def _albers_usa(k: float, tx: float, ty: float) -> tuple[_ConicEqualArea, ...]:
    lower48 = _ConicEqualArea(96.0, (-0.6, 38.7), (29.5, 45.5), k, (tx, ty),
                              (tx - 0.455 * k, ty - 0.238 * k, tx + 0.455 * k, ty + 0.232 * k))
    alaska = _ConicEqualArea(154.0, (-2.0, 58.5), (55.0, 65.0), k * 0.35,
                             (tx - 0.307 * k, ty + 0.201 * k),
                             (tx - 0.425 * k + _EPS, ty + 0.120 * k + _EPS,
                              tx - 0.214 * k - _EPS, ty + 0.234 * k - _EPS))
    hawaii = _ConicEqualArea(157.0, (-3.0, 19.9), (8.0, 18.0), k,
                             (tx - 0.205 * k, ty + 0.212 * k),
                             (tx - 0.214 * k + _EPS, ty + 0.166 * k + _EPS,
                              tx - 0.115 * k - _EPS, ty + 0.234 * k - _EPS))
    return lower48, alaska, hawaii


_PROJECTIONS = _albers_usa(_SCALE, _TX, _TY)


def project(lat: float, lon: float) -> Point | None:
    """(x, y) in the atlas' 975×610 box of a point in degrees, or None when it falls outside
    the lower 48, Alaska and Hawaii frames (or is not a finite coordinate)."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90.0:
        return None
    for p in _PROJECTIONS:  # first match wins, as in d3 (lower 48, then Alaska, then Hawaii)
        xy = p(lon, lat)
        if xy is not None:
            return xy
    return None


# --------------------------------------------------------------------------- TopoJSON


def _decode_arcs(topo: dict) -> list[list[Point]]:
    """Absolute coordinates of every arc: undo the delta encoding, then the quantization."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for p in arc:
            x += p[0]
            y += p[1]
            pts.append((x * sx + tx, y * sy + ty))
        out.append(pts)
    return out


def _ring(arcs: list[list[Point]], indexes: list[int]) -> list[Point]:
    """A ring stitched from arcs as topojson-client does: a negative index ~i is arc i
    reversed, and each arc after the first drops its first point (the previous one's last)."""
    pts: list[Point] = []
    for i in indexes:
        a = arcs[~i] if i < 0 else arcs[i]
        if i < 0:
            a = a[::-1]
        if pts:
            pts.pop()
        pts.extend(a)
    return pts


def _path_data(rings: list[list[Point]]) -> str:
    """SVG path data at 0.1 px (the box is ~1000 px wide); points that round onto the previous
    one are dropped, which keeps the page small."""
    parts = []
    for ring in rings:
        last = None
        cmds = []
        for x, y in ring:
            q = (round(x, 1), round(y, 1))
            if q == last:
                continue
            cmds.append(f"{'M' if last is None else 'L'}{q[0]:g},{q[1]:g}")
            last = q
        if len(cmds) >= 3:
            parts.append("".join(cmds) + "Z")
    return "".join(parts)


def ring_bbox(rings: list[list[Point]] | tuple[tuple[Point, ...], ...]
              ) -> tuple[float, float, float, float]:
    xs = [x for r in rings for x, _ in r]
    ys = [y for r in rings for _, y in r]
    return min(xs), min(ys), max(xs), max(ys)


_lock = threading.Lock()
_cache: tuple[StatePath, ...] | None = None


def _load(path: Path) -> tuple[StatePath, ...]:
    topo = json.loads(path.read_text(encoding="utf-8"))
    arcs = _decode_arcs(topo)
    out = []
    for g in topo["objects"]["states"]["geometries"]:
        if g["type"] == "Polygon":
            polys = [g["arcs"]]
        elif g["type"] == "MultiPolygon":
            polys = g["arcs"]
        else:  # a null geometry has nothing to draw
            continue
        rings = [_ring(arcs, r) for poly in polys for r in poly]
        out.append(StatePath(fips=str(g.get("id", "")), name=str(g["properties"]["name"]),
                             d=_path_data(rings), bbox=ring_bbox(rings),
                             rings=tuple(tuple(r) for r in rings)))
    out.sort(key=lambda s: s.name)
    return tuple(out)


def state_paths() -> tuple[StatePath, ...]:
    """Every state and DC, by name; decoded once per process."""
    global _cache
    cached = _cache
    if cached is not None:
        return cached
    with _lock:
        if _cache is None:
            _cache = _load(ATLAS)
        return _cache


_svg_cache: str | None = None


def states_svg() -> str:
    """The states as one SVG ``<g class="states">`` of ``<path>`` elements (each with its name
    as a ``<title>`` tooltip), escaped, built once: pages embed it in their map's ``<svg
    viewBox="0 0 975 610">``. Presentation attributes, not ``style``, so a strict CSP allows
    them."""
    global _svg_cache
    if _svg_cache is None:
        rows = [f'<path d="{s.d}" data-state="{html.escape(s.fips)}">'
                f"<title>{html.escape(s.name)}</title></path>" for s in state_paths()]
        _svg_cache = ('<g class="states" fill="#e9edf1" stroke="#ffffff" stroke-width="0.8" '
                      'fill-rule="evenodd">' + "".join(rows) + "</g>")
    return _svg_cache
