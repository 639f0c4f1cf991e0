"""A pick batch's route drawn over the warehouse as SVG (pure: no I/O, no gRPC).

Geometry is the single-block warehouse of /work/shared/DESIGN.md ("Warehouse geometry"):
aisle i runs along x = i * aisle_spacing_m from the front cross aisle (y = 0) to the back
cross aisle (y = L); slot j sits at y = (j + 0.5) * slot_length_m; the depot is (0, 0).

The server lists a batch's stops in the exact route's visiting order (wave_planner builds them
from the Ratliff-Rosenthal Euler circuit), and walking them in that order along shortest paths
gives exactly the batch's ``distance_m``. So the drawn walk is ``routing.walk_points`` over the
stops in the given order: between two aisles it takes the nearer cross aisle, which is what
makes the drawing's length equal the route's length (a test checks it).

The SVG uses presentation attributes and classes only (no ``style`` attributes: the console's
Content-Security-Policy has no 'unsafe-inline'). Metres map to pixels with y flipped, so the
front cross aisle and the depot sit at the bottom, as on a floor plan seen from the dock.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

from oms.engine import routing
from oms.engine.models import Layout

__all__ = ["Stop", "walk", "walk_length_m", "route_svg"]

_MARGIN_PX = 28.0
_MIN_SCALE = 4.0    # px per metre, never smaller (tiny dots on huge floors are unreadable)
_MAX_SCALE = 24.0
_TARGET_W_PX = 720.0  # the drawing's natural size; the viewBox scales it down on phones
_TARGET_H_PX = 480.0


@dataclass(frozen=True)
class Stop:
    """One stop of a batch's pick list, in visiting order."""

    aisle: int
    slot: int
    location: str = ""
    sku: str = ""
    quantity: int = 0


def walk(layout: Layout, stops: Sequence[Stop]) -> list[tuple[float, float]]:
    """The closed walk depot -> stops in order -> depot, as axis-parallel (x, y) points in
    metres; between aisles via the nearer cross aisle (``routing.walk_points``)."""
    if not stops:
        return [(0.0, 0.0)]
    aisles = np.array([s.aisle for s in stops], dtype=np.int64)
    slots = np.array([s.slot for s in stops], dtype=np.int64)
    _check(layout, aisles, slots)
    return routing.walk_points(np.arange(len(stops), dtype=np.int64), aisles, slots, layout)


def walk_length_m(points: Sequence[tuple[float, float]]) -> float:
    """Length of a polyline of axis-parallel segments (the walk of ``walk``)."""
    return float(sum(abs(x2 - x1) + abs(y2 - y1)
                     for (x1, y1), (x2, y2) in zip(points, points[1:])))


def _check(layout: Layout, aisles: np.ndarray, slots: np.ndarray) -> None:
    # A stop outside the layout would be drawn off the floor; it means the layout changed
    # after the wave was planned. Refuse rather than draw a wrong picture.
    if aisles.min() < 0 or aisles.max() >= layout.aisles:
        raise ValueError(f"a stop's aisle is outside 0..{layout.aisles - 1}")
    if slots.min() < 0 or slots.max() >= layout.slots_per_aisle:
        raise ValueError(f"a stop's slot is outside 0..{layout.slots_per_aisle - 1}")


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))


def route_svg(layout: Layout, batch_id: str, stops: Sequence[Stop],
              distance_m: float | None = None) -> Markup:
    """The batch's route as an inline ``<svg>`` whose root group is ``<g data-batch="<id>">``:
    racks between the aisles, the front and back cross aisles, the depot, each stop as a
    numbered dot (stops sharing a bin share a dot labelled with all their numbers) and the
    walk as one polyline. ``distance_m`` (the server's figure) only goes into the title."""
    L = float(layout.length_m)
    dx = float(layout.aisle_spacing_m)
    width_m = max(dx * max(layout.aisles - 1, 0), dx)
    fit = min(_TARGET_W_PX / (width_m + 2 * dx), _TARGET_H_PX / max(L, 1e-9))
    scale = min(_MAX_SCALE, max(_MIN_SCALE, fit))
    x0 = _MARGIN_PX + dx * scale  # room for the rack left of aisle 0
    y_front = _MARGIN_PX + L * scale
    w_px = x0 + width_m * scale + dx * scale + _MARGIN_PX
    h_px = y_front + _MARGIN_PX + 14.0

    def px(x: float, y: float) -> tuple[str, str]:
        return _fmt(x0 + x * scale), _fmt(y_front - y * scale)

    pts = walk(layout, stops)
    length = walk_length_m(pts)
    out: list[str] = []
    title = f"Batch {batch_id}: {len(stops)} stops, walk {length:.1f} m"
    if distance_m is not None:
        title += f" (route {distance_m:.1f} m)"
    out.append(f'<svg class="route-svg" xmlns="http://www.w3.org/2000/svg" '
               f'viewBox="0 0 {_fmt(w_px)} {_fmt(h_px)}" width="{_fmt(w_px)}" '
               f'height="{_fmt(h_px)}" role="img" aria-label="{escape(title)}">')
    out.append(f'<g data-batch="{escape(batch_id)}" data-walk-m="{length:.3f}">')
    out.append(f"<title>{escape(title)}</title>")

    # Racks: a shelf block on each side of every aisle, i.e. between neighbouring aisles
    # (two back-to-back shelves) and one outside each end aisle.
    rack_w = dx * 0.45 * scale
    top = _MARGIN_PX
    for i in range(layout.aisles + 1):
        cx = x0 + (i - 0.5) * dx * scale
        out.append(f'<rect class="rack" x="{_fmt(cx - rack_w / 2)}" y="{_fmt(top)}" '
                   f'width="{_fmt(rack_w)}" height="{_fmt(L * scale)}" fill="#d9dee5" '
                   f'stroke="#b4bcc8" stroke-width="0.5"/>')
    # Cross aisles (front y = 0, back y = L) and the aisle centre lines.
    xa, ya = px(0.0, 0.0)
    xb, _ = px(width_m if layout.aisles > 1 else 0.0, 0.0)
    _, yb = px(0.0, L)
    for y, name in ((ya, "front"), (yb, "back")):
        out.append(f'<line class="cross-aisle cross-{name}" x1="{xa}" y1="{y}" x2="{xb}" '
                   f'y2="{y}" stroke="#8792a2" stroke-width="1" stroke-dasharray="4 3"/>')
    for i in range(layout.aisles):
        x, _ = px(layout.aisle_x(i), 0.0)
        out.append(f'<line class="aisle" x1="{x}" y1="{ya}" x2="{x}" y2="{yb}" '
                   f'stroke="#c3cad4" stroke-width="0.75"/>')
        if layout.aisles <= 40 or i % 5 == 0:
            out.append(f'<text class="aisle-label" x="{x}" y="{_fmt(top - 6)}" font-size="9" '
                       f'text-anchor="middle" fill="#5b6675">A{i:02d}</text>')
    # The depot at (0, 0), just in front of aisle 0.
    out.append(f'<rect class="depot" x="{_fmt(float(xa) - 7)}" y="{_fmt(float(ya))}" '
               f'width="14" height="10" fill="#1f3b5c"><title>Depot</title></rect>')
    out.append(f'<text class="depot-label" x="{xa}" y="{_fmt(float(ya) + 22)}" font-size="9" '
               f'text-anchor="middle" fill="#1f3b5c">depot</text>')
    # The walk.
    poly = " ".join(",".join(px(x, y)) for x, y in pts)
    out.append(f'<polyline class="walk" points="{poly}" fill="none" stroke="#d9480f" '
               f'stroke-width="2" stroke-linejoin="round" stroke-opacity="0.85"/>')
    # Stops: numbered in visiting order; one dot per bin.
    by_bin: dict[tuple[int, int], list[int]] = {}
    for n, s in enumerate(stops, start=1):
        by_bin.setdefault((s.aisle, s.slot), []).append(n)
    for (a, sl), nums in by_bin.items():
        x, y = px(layout.aisle_x(a), layout.slot_y(sl))
        label = ",".join(str(n) for n in nums)
        tip = "; ".join(f"#{n} {stops[n - 1].location or f'A{a:02d}-S{sl:03d}'} "
                        f"{stops[n - 1].sku} x{stops[n - 1].quantity}" for n in nums)
        out.append(f'<g class="stop" data-stop="{nums[0]}">'
                   f'<title>{escape(tip)}</title>'
                   f'<circle cx="{x}" cy="{y}" r="6" fill="#0b7285" stroke="#ffffff" '
                   f'stroke-width="1"/>'
                   f'<text x="{_fmt(float(x) + 8)}" y="{_fmt(float(y) + 3)}" font-size="9" '
                   f'fill="#0b3d4a">{escape(label)}</text></g>')
    out.append("</g></svg>")
    return Markup("".join(out))
