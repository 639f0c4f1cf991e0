"""Great-circle distances (numba) and offline US ZIP geocoding.

Distances are haversine on a sphere of the IUGG mean Earth radius, in kilometres. The scalar
function and the matrix kernel share one jitted inner routine, so ``distance_matrix(...)[i, j]``
is bit-for-bit ``haversine_km`` of the same points.

ZIP centroids come from the ``zipcodes`` package, which ships them offline. Its ``matching()``
is a linear scan over ~42k records, so we build a ``{zip5: (lat, lon)}`` dict once, lazily and
under a lock, and answer every later lookup from it.
"""
from __future__ import annotations

import math
import re
import threading

import numba as nb
import numpy as np

from oms.engine.errors import ValidationError

__all__ = [
    "EARTH_RADIUS_KM",
    "haversine_km",
    "distance_matrix",
    "geocode_us_zip",
    "all_us_zips",
]

EARTH_RADIUS_KM = 6371.0088
"""IUGG mean Earth radius (R1), km."""

_DEG2RAD = math.pi / 180.0


# --------------------------------------------------------------------------- distances


@nb.njit(cache=True, nogil=True, inline="always")
def _hav(phi1: float, lam1: float, cos_phi1: float, phi2: float, lam2: float,
         cos_phi2: float) -> float:
    """Haversine on radians with the cosines of the latitudes precomputed (the matrix kernel
    hoists them out of its loops). ``min(1, .)`` guards asin against rounding for antipodes."""
    s_dphi = math.sin((phi2 - phi1) * 0.5)
    s_dlam = math.sin((lam2 - lam1) * 0.5)
    a = s_dphi * s_dphi + cos_phi1 * cos_phi2 * s_dlam * s_dlam
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@nb.njit(cache=True, nogil=True)
def _haversine_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1 = lat1 * _DEG2RAD
    phi2 = lat2 * _DEG2RAD
    return _hav(phi1, lon1 * _DEG2RAD, math.cos(phi1), phi2, lon2 * _DEG2RAD, math.cos(phi2))


@nb.njit(cache=True, nogil=True)
def _distance_matrix_kernel(o_lat: np.ndarray, o_lon: np.ndarray, w_lat: np.ndarray,
                            w_lon: np.ndarray) -> np.ndarray:
    n_o = o_lat.shape[0]
    n_w = w_lat.shape[0]
    out = np.empty((n_o, n_w), dtype=np.float64)
    w_phi = np.empty(n_w, dtype=np.float64)
    w_lam = np.empty(n_w, dtype=np.float64)
    w_cos = np.empty(n_w, dtype=np.float64)
    for j in range(n_w):
        w_phi[j] = w_lat[j] * _DEG2RAD
        w_lam[j] = w_lon[j] * _DEG2RAD
        w_cos[j] = math.cos(w_phi[j])
    for i in range(n_o):
        phi = o_lat[i] * _DEG2RAD
        lam = o_lon[i] * _DEG2RAD
        c = math.cos(phi)
        for j in range(n_w):
            out[i, j] = _hav(phi, lam, c, w_phi[j], w_lam[j], w_cos[j])
    return out


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees."""
    return float(_haversine_deg(float(lat1), float(lon1), float(lat2), float(lon2)))


def _coord_vector(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValidationError.one(name, f"must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValidationError.one(name, "must contain only finite coordinates")
    return arr


def distance_matrix(order_lat: np.ndarray, order_lon: np.ndarray, wh_lat: np.ndarray,
                    wh_lon: np.ndarray, *, check: bool = True) -> np.ndarray:
    """Great-circle km from every order ship-to to every warehouse: float64 ``[n_orders, n_wh]``.

    Inputs are degrees; they are converted to C-contiguous float64 (a copy only if needed).
    Raises ``ValidationError`` on mismatched lengths or non-finite coordinates.
    ``check=False``: the caller passes 1-D C-contiguous float64 arrays of checked coordinates
    (intake: the codec validated them), and nothing is converted or checked.
    """
    if not check:
        return _distance_matrix_kernel(order_lat, order_lon, wh_lat, wh_lon)
    o_lat = _coord_vector("order_lat", order_lat)
    o_lon = _coord_vector("order_lon", order_lon)
    w_lat = _coord_vector("wh_lat", wh_lat)
    w_lon = _coord_vector("wh_lon", wh_lon)
    if o_lat.shape != o_lon.shape:
        raise ValidationError.one(
            "order_lon", f"length {o_lon.shape[0]} != order_lat length {o_lat.shape[0]}")
    if w_lat.shape != w_lon.shape:
        raise ValidationError.one(
            "wh_lon", f"length {w_lon.shape[0]} != wh_lat length {w_lat.shape[0]}")
    return _distance_matrix_kernel(o_lat, o_lon, w_lat, w_lon)


# --------------------------------------------------------------------------- ZIP geocoding

_ZIP_RE = re.compile(r"(\d{5})(?:-\d{4})?")

ZipRow = tuple[str, float, float, str, str]  # (zip, lat, lon, city, state)

_lock = threading.Lock()
_zip_index: dict[str, tuple[float, float]] | None = None
_standard_zips: tuple[ZipRow, ...] | None = None


def _raw_zip_records() -> list[dict]:
    """All records of the ``zipcodes`` package.

    zipcodes 3.x keeps its data inside a compiled extension (there is no data file to read);
    ``zipcodes.list_all()`` also pins the 42k dicts in a module global forever, so we call the
    extension directly when it is there and let the records be collected after indexing.
    """
    try:
        from zipcodes import _zipcodes  # type: ignore[attr-defined]

        return _zipcodes.list_all()
    except (ImportError, AttributeError):  # pragma: no cover - other zipcodes layouts
        import zipcodes

        return zipcodes.list_all()


def _parse_coord(value: object) -> float | None:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x) or x == 0.0:
        return None
    return x


def _load() -> tuple[dict[str, tuple[float, float]], tuple[ZipRow, ...]]:
    global _zip_index, _standard_zips
    index, standard = _zip_index, _standard_zips
    if index is not None and standard is not None:
        return index, standard
    with _lock:
        if _zip_index is None or _standard_zips is None:
            idx: dict[str, tuple[float, float]] = {}
            std: list[ZipRow] = []
            for rec in _raw_zip_records():
                z = rec.get("zip_code")
                lat = _parse_coord(rec.get("lat"))
                lon = _parse_coord(rec.get("long"))
                if not isinstance(z, str) or len(z) != 5 or lat is None or lon is None:
                    continue
                # Inactive ZIPs keep their centroid: an old address still geocodes.
                if z not in idx or rec.get("active"):
                    idx[z] = (lat, lon)
                if rec.get("active") and rec.get("zip_code_type") == "STANDARD":
                    std.append((z, lat, lon, str(rec.get("city", "")), str(rec.get("state", ""))))
            std.sort()
            _standard_zips = tuple(std)
            _zip_index = idx  # published last: readers outside the lock check it first
        return _zip_index, _standard_zips


def geocode_us_zip(postal_code: str) -> tuple[float, float] | None:
    """(lat, lon) centroid of a US ZIP, offline.

    Accepts ``"50309"``, ``"50309-1234"`` (ZIP+4; the +4 part is ignored) and surrounding
    whitespace. Returns None for malformed input or a ZIP the data set does not know.
    """
    if not isinstance(postal_code, str):
        return None
    m = _ZIP_RE.fullmatch(postal_code.strip())
    if m is None:
        return None
    return _load()[0].get(m.group(1))


def all_us_zips() -> list[ZipRow]:
    """Active STANDARD ZIPs as ``(zip, lat, lon, city, state)``, sorted by ZIP — for demos and
    realistic benchmark demand. PO boxes, unique (single-organisation) and military ZIPs are
    left out because they are not ship-to neighbourhoods."""
    return list(_load()[1])
