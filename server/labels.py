"""4x6 shipping labels as PDF, with a Code 128 (subset B) barcode of the tracking number.

Output formatting, so it lives beside the servicers rather than in the pure engine. Labels are
drawn with matplotlib's object API (``Figure`` + the PDF canvas, never pyplot, so it is
thread-safe and touches no global backend); the barcode is drawn as vector bars.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from oms.engine.carriers import TRACKING_RE, CarrierError
from oms.engine.models import Shipment

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "CODE128_PATTERNS",
    "code128_checksum",
    "code128b_values",
    "code128b_widths",
    "build_label_figure",
    "render_label_pdf",
]


# --------------------------------------------------------------------------- Code 128

CODE128_PATTERNS: tuple[str, ...] = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312", "132212",
    "221213", "221312", "231212", "112232", "122132", "122231", "113222", "123122", "123221",
    "223211", "221132", "221231", "213212", "223112", "312131", "311222", "321122", "321221",
    "312212", "322112", "322211", "212123", "212321", "232121", "111323", "131123", "131321",
    "112313", "132113", "132311", "211313", "231113", "231311", "112133", "112331", "132131",
    "113123", "113321", "133121", "313121", "211331", "231131", "213113", "213311", "213131",
    "311123", "311321", "331121", "312113", "312311", "332111", "314111", "221411", "431111",
    "111224", "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111", "111242",
    "121142", "121241", "114212", "124112", "124211", "411212", "421112", "421211", "212141",
    "214121", "412121", "111143", "111341", "131141", "114113", "114311", "411113", "411311",
    "113141", "114131", "311141", "411131", "211412", "211214", "211232", "2331112",
)
"""Bar/space widths (in modules, bar first) of symbol values 0..105 and the stop (106).
Data symbols are 11 modules wide; the stop is 13 (its final 2-module termination bar included).
"""

CODE128_START_A, CODE128_START_B, CODE128_START_C, CODE128_STOP = 103, 104, 105, 106


def code128_checksum(values: Sequence[int]) -> int:
    """Modulo-103 check symbol of ``[start, data...]``: start value + sum(position * value),
    positions counted from 1 at the first data symbol."""
    if not values:
        raise CarrierError("code128_checksum needs at least the start symbol")
    return (values[0] + sum(i * v for i, v in enumerate(values[1:], start=1))) % 103


def code128b_values(text: str) -> list[int]:
    """Symbol values of ``text`` in subset B: start B, data, check symbol, stop."""
    if not text:
        raise CarrierError("cannot encode an empty string as Code 128")
    bad = [c for c in text if not 32 <= ord(c) <= 126]
    if bad:
        raise CarrierError(f"Code 128 subset B encodes ASCII 32..126 only; {text!r} has {bad!r}")
    values = [CODE128_START_B] + [ord(c) - 32 for c in text]
    return values + [code128_checksum(values), CODE128_STOP]


def code128b_widths(text: str) -> list[int]:
    """Alternating bar/space widths in modules (starting with a bar), quiet zones excluded."""
    return [int(w) for v in code128b_values(text) for w in CODE128_PATTERNS[v]]


# --------------------------------------------------------------------------- labels

_LABEL_W_IN, _LABEL_H_IN = 4.0, 6.0
_MARGIN_IN = 0.15
_QUIET_MODULES = 10
_MIN_MODULE_IN = 0.0075  # 7.5 mil: below this a thermal printer cannot resolve the bars


def _addr_lines(addr: Mapping[str, object]) -> list[tuple[str, bool]]:
    """Printable lines of an address dict as (text, emphasised); the name and the
    city/region/postal line are emphasised because sorters read those."""
    def g(k: str) -> str:
        v = addr.get(k, "")
        return "" if v is None else str(v).strip()

    city = g("city")
    rest = " ".join(x for x in (g("region"), g("postal_code")) if x)
    city_line = f"{city}, {rest}" if city and rest else city or rest
    lines = [(g("name"), True), (g("line1"), False), (g("line2"), False), (city_line, True),
             (g("country"), False)]
    return [(t, e) for t, e in lines if t]


def _fit(s: str, max_chars: int) -> str:
    """Cut a line that would run off the label (sizes here keep ~max_chars per 3.5 in)."""
    return s if len(s) <= max_chars else s[:max_chars - 1] + "\u2026"


def _group(s: str) -> str:
    """``OX0000000000420`` -> ``OX 0000 0000 0042 0`` for people reading it aloud."""
    m = TRACKING_RE.fullmatch(s)
    if m is None:
        return s
    digits = m.group(2)
    return m.group(1) + " " + " ".join(digits[i:i + 4] for i in range(0, len(digits), 4))


def build_label_figure(shipment: Shipment, ship_from: Mapping[str, object],
                       ship_to: Mapping[str, object], order_id: str) -> Figure:
    """The label as a matplotlib ``Figure`` of 4 x 6 in, data coordinates in inches.

    Barcode bars are ``Rectangle`` patches with gid ``"code128-bar"`` (tests decode them).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if not shipment.tracking_number:
        raise CarrierError(f"shipment {shipment.id!r} has no tracking number to print")
    to_lines = _addr_lines(ship_to)
    if not to_lines:
        raise CarrierError(f"shipment {shipment.id!r}: ship_to address is empty: {ship_to!r}")
    from_lines = _addr_lines(ship_from)
    widths = code128b_widths(shipment.tracking_number)

    bar_w_in = _LABEL_W_IN - 2 * _MARGIN_IN - 0.1
    modules = sum(widths) + 2 * _QUIET_MODULES
    module_in = bar_w_in / modules
    if module_in < _MIN_MODULE_IN:
        raise CarrierError(f"tracking number {shipment.tracking_number!r} is too long for a "
                           f"readable barcode on a 4 in label ({modules} modules)")

    fig = Figure(figsize=(_LABEL_W_IN, _LABEL_H_IN))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _LABEL_W_IN)
    ax.set_ylim(0, _LABEL_H_IN)
    ax.set_axis_off()
    m = _MARGIN_IN
    right = _LABEL_W_IN - m
    ax.add_patch(Rectangle((m, m), _LABEL_W_IN - 2 * m, _LABEL_H_IN - 2 * m,
                           fill=False, linewidth=1.5, edgecolor="black"))

    def hline(y: float, lw: float = 1.0) -> None:
        ax.plot([m, right], [y, y], color="black", linewidth=lw)

    def text(x: float, y: float, s: str, size: float, *, weight: str = "normal",
             ha: str = "left", family: str = "DejaVu Sans") -> None:
        ax.text(x, y, s, fontsize=size, va="top", ha=ha, family=family, weight=weight)

    # -- from + carrier
    top = _LABEL_H_IN - m - 0.08
    text(m + 0.08, top, "FROM:", 6, weight="bold")
    for i, (ln, _) in enumerate(from_lines[:5]):
        text(m + 0.08, top - 0.12 - i * 0.12, _fit(ln, 34), 7)
    text(right - 0.08, top, _fit(shipment.carrier or "CARRIER", 10), 16, weight="bold",
         ha="right")
    if shipment.warehouse_id:
        text(right - 0.08, top - 0.32, f"WH {shipment.warehouse_id}", 7, ha="right")
    hline(5.05)

    # -- ship to
    text(m + 0.08, 4.97, "SHIP TO:", 7, weight="bold")
    y = 4.8
    for ln, emphasised in to_lines[:5]:
        text(m + 0.25, y, _fit(ln, 26 if emphasised else 34), 13 if emphasised else 11,
             weight="bold" if emphasised else "normal")
        y -= 0.24
    hline(3.62, 1.5)

    # -- service band (reverse print)
    ax.add_patch(Rectangle((m, 3.12), _LABEL_W_IN - 2 * m, 0.5, color="black"))
    ax.text(m + 0.1, 3.37, _fit((shipment.service_level or "").upper(), 12), fontsize=20,
            weight="bold", color="white", va="center", ha="left")
    if shipment.eta_ms:
        eta = datetime.fromtimestamp(shipment.eta_ms / 1000, tz=UTC)
        ax.text(right - 0.1, 3.37, "ETA " + eta.strftime("%a %Y-%m-%d"), fontsize=9,
                color="white", va="center", ha="right")

    # -- tracking number + barcode
    text(m + 0.08, 3.05, "TRACKING #", 6, weight="bold")
    text(_LABEL_W_IN / 2, 2.92, _group(shipment.tracking_number), 17, weight="bold",
         ha="center", family="DejaVu Sans Mono")
    bar_y0, bar_h = 1.45, 1.05
    x = m + 0.05 + _QUIET_MODULES * module_in
    for i, w in enumerate(widths):
        if i % 2 == 0:
            ax.add_patch(Rectangle((x, bar_y0), w * module_in, bar_h, facecolor="black",
                                   edgecolor="none", linewidth=0, gid="code128-bar"))
        x += w * module_in
    hline(1.3)

    # -- references
    pkgs = shipment.packages
    kg = sum(p.weight_g for p in pkgs) / 1000
    refs = [f"ORDER: {order_id}", f"SHIPMENT: {shipment.id}",
            f"PIECES: {len(pkgs)}   WEIGHT: {kg:.2f} kg"]
    if pkgs:
        refs.append("BOX: " + ", ".join(dict.fromkeys(p.box for p in pkgs)))
    for i, ln in enumerate(refs):
        text(m + 0.08, 1.2 - i * 0.18, _fit(ln, 60), 8)
    return fig


def render_label_pdf(shipment: Shipment, ship_from: Mapping[str, object],
                     ship_to: Mapping[str, object], order_id: str) -> bytes:
    """A one-page 4 x 6 in (288 x 432 pt) PDF shipping label.

    Addresses are dicts with the ``Address`` field names (name, line1, city, region,
    postal_code, country; ``line2`` optional). The output is deterministic (no creation date),
    so the same shipment always yields the same bytes.
    """
    from matplotlib.backends.backend_pdf import FigureCanvasPdf

    fig = build_label_figure(shipment, ship_from, ship_to, order_id)
    FigureCanvasPdf(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={
        "Title": f"Shipping label {shipment.tracking_number}",
        "Subject": f"order {order_id} shipment {shipment.id}",
        "Creator": "oms engine.carriers",
        "CreationDate": None,
    })
    return buf.getvalue()
