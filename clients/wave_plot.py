"""Draw a pick wave: the warehouse (aisles, cross aisles, depot) and each batch's route in its
own colour. Geometry as in docs/ARCHITECTURE.md: aisle i at x = i*spacing from y = 0 (front cross aisle)
to y = L (back); slot j at y = (j + 0.5)*slot_length; depot at (0, 0)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from oms.v1 import common_pb2 as c  # noqa: E402
from oms.v1 import fulfillment_pb2 as f  # noqa: E402


def _leg(p: tuple[float, float], q: tuple[float, float], length: float) -> list[tuple[float, float]]:
    """The shortest walk p -> q: straight within an aisle, else via the cheaper cross aisle."""
    if abs(p[0] - q[0]) < 1e-9:
        return [q]
    y = 0.0 if p[1] + q[1] <= 2 * length - p[1] - q[1] else length
    return [(p[0], y), (q[0], y), q]


def route_polyline(stops: list[f.PickStop], layout: c.WarehouseLayout) -> list[tuple[float, float]]:
    length = layout.slots_per_aisle * layout.slot_length_m
    pts = [(0.0, 0.0)]
    for s in stops:
        pts += _leg(pts[-1], (s.aisle * layout.aisle_spacing_m, (s.slot + 0.5) * layout.slot_length_m), length)
    pts += _leg(pts[-1], (0.0, 0.0), length)
    return pts


def draw_wave(wave: f.Wave, layout: c.WarehouseLayout, path: str, max_batches: int = 12) -> None:
    length = layout.slots_per_aisle * layout.slot_length_m
    width = (layout.aisles - 1) * layout.aisle_spacing_m
    fig, ax = plt.subplots(figsize=(max(6, width / length * 8), 8))
    for i in range(layout.aisles):
        x = i * layout.aisle_spacing_m
        ax.plot([x, x], [0, length], color="0.85", lw=3, zorder=0)
    ax.plot([0, width], [0, 0], color="0.7", lw=3, zorder=0)
    ax.plot([0, width], [length, length], color="0.7", lw=3, zorder=0)
    ax.scatter([0], [0], marker="s", s=120, color="black", zorder=5, label="depot")
    cmap = plt.get_cmap("tab10")
    for b, batch in enumerate(wave.batches[:max_batches]):
        pts = route_polyline(list(batch.stops), layout)
        jitter = (b % 5 - 2) * layout.aisle_spacing_m * 0.06  # keep overlapping routes apart
        xs = [p[0] + jitter for p in pts]
        ys = [p[1] + jitter for p in pts]
        col = cmap(b % 10)
        ax.plot(xs, ys, color=col, lw=1.6, alpha=0.9,
                label=f"batch {b + 1}: {batch.distance_m:.0f} m (S-shape {batch.baseline_distance_m:.0f} m)")
        ax.scatter([s.aisle * layout.aisle_spacing_m + jitter for s in batch.stops],
                   [(s.slot + 0.5) * layout.slot_length_m + jitter for s in batch.stops],
                   color=col, s=14, zorder=4)
    shown = min(len(wave.batches), max_batches)
    ax.set_title(f"wave {wave.id}\n{len(wave.batches)} batches (showing {shown}), "
                 f"{wave.total_distance_m:.0f} m vs baseline {wave.baseline_distance_m:.0f} m",
                 fontsize=10)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
