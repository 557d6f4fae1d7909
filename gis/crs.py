"""Coordinate systems used by Chinese devices, and the way back to CGCS2000.

* ``cgcs2000`` (EPSG:4490) is the storage frame. ``wgs84`` (EPSG:4326) differs from it by well
  under a metre, so the two are treated as the same lon/lat (as PROJ's own 4326→4490 does).
* ``gcj02`` (AMap, Tencent) and ``bd09`` (Baidu) are obfuscated offsets that PROJ does not know.
  The forward formulas are the public ones; the inverses are solved by fixed-point iteration to
  well below a centimetre. Outside mainland China's rough bounding box GCJ-02 applies no shift,
  so neither do we.
* Anything else is an EPSG code handled by pyproj.

All functions take and return numpy arrays of (lon, lat) and are vectorised. No maintained PyPI
library offers vectorised GCJ-02/BD-09 with iterative inverses (``coord-convert`` and
``eviltransform`` are scalar and unmaintained), hence this module.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

__all__ = [
    "CGCS2000",
    "NAMED_CRS",
    "UnknownCRSError",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "metric_area",
    "normalise_crs",
    "out_of_china",
    "point_crs",
    "to_cgcs2000",
    "to_metric",
    "transform_geometries",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

CGCS2000 = "EPSG:4490"
NAMED_CRS = ("wgs84", "cgcs2000", "gcj02", "bd09")

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0
# Converge to 1e-10 degree (about 0.01 mm): far inside the 1 cm the callers need.
_TOL_DEG = 1e-10
_MAX_ITER = 50

Array = NDArray[np.float64]


class UnknownCRSError(ValueError):
    """The name is neither one of :data:`NAMED_CRS` nor a CRS pyproj knows."""


def _arrays(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    return np.broadcast_arrays(lon_a, lat_a)  # type: ignore[return-value]


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where GCJ-02 leaves the point unshifted (outside mainland China's bounding box)."""
    lon_a, lat_a = _arrays(lon, lat)
    return ~((lon_a >= 72.004) & (lon_a <= 137.8347) & (lat_a >= 0.8293) & (lat_a <= 55.8271))


def _gcj_delta(lon: Array, lat: Array) -> tuple[Array, Array]:
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + common
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """WGS84 → GCJ-02 (the public forward formula)."""
    lon_a, lat_a = _arrays(lon, lat)
    dlon, dlat = _gcj_delta(lon_a, lat_a)
    outside = out_of_china(lon_a, lat_a)
    return np.where(outside, lon_a, lon_a + dlon), np.where(outside, lat_a, lat_a + dlat)


def _gcj02_to_bd09_raw(lon: Array, lat: Array) -> tuple[Array, Array]:
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """GCJ-02 → BD-09 (Baidu's published forward formula; Baidu applies it everywhere)."""
    lon_a, lat_a = _arrays(lon, lat)
    return _gcj02_to_bd09_raw(lon_a, lat_a)


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]],
    lon: Array,
    lat: Array,
    guess: tuple[Array, Array],
) -> tuple[Array, Array]:
    """Solve forward(x) = target by fixed-point iteration x ← x + (target − forward(x)).

    The forward maps are the identity plus a shift whose gradient is tiny (< 1e-3), so this
    contracts quickly: two or three rounds reach the tolerance.
    """
    x, y = np.array(guess[0], dtype=np.float64), np.array(guess[1], dtype=np.float64)
    for _ in range(_MAX_ITER):
        fx, fy = forward(x, y)
        ex, ey = lon - fx, lat - fy
        x += ex
        y += ey
        if x.size == 0 or not np.nanmax(np.abs(ex) + np.abs(ey), initial=0.0) >= _TOL_DEG:
            break
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """GCJ-02 → WGS84, iterated to well below 1 cm; points outside China are returned as given."""
    lon_a, lat_a = _arrays(lon, lat)
    flat_lon, flat_lat = lon_a.ravel(), lat_a.ravel()
    dlon, dlat = _gcj_delta(flat_lon, flat_lat)
    x, y = _invert(wgs84_to_gcj02, flat_lon, flat_lat, (flat_lon - dlon, flat_lat - dlat))
    outside = out_of_china(flat_lon, flat_lat)
    x = np.where(outside, flat_lon, x)
    y = np.where(outside, flat_lat, y)
    return x.reshape(lon_a.shape), y.reshape(lon_a.shape)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """BD-09 → GCJ-02, iterated to well below 1 cm."""
    lon_a, lat_a = _arrays(lon, lat)
    flat_lon, flat_lat = lon_a.ravel(), lat_a.ravel()
    # Baidu's own approximate inverse is the starting point.
    x0, y0 = flat_lon - 0.0065, flat_lat - 0.006
    z = np.sqrt(x0 * x0 + y0 * y0) - 0.00002 * np.sin(y0 * _X_PI)
    theta = np.arctan2(y0, x0) - 0.000003 * np.cos(x0 * _X_PI)
    guess = (z * np.cos(theta), z * np.sin(theta))
    x, y = _invert(_gcj02_to_bd09_raw, flat_lon, flat_lat, guess)
    return x.reshape(lon_a.shape), y.reshape(lon_a.shape)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """WGS84 → BD-09 (through GCJ-02)."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """BD-09 → WGS84 (through GCJ-02), each step iterated."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def normalise_crs(name: str) -> str:
    """Canonical form of a CRS name: one of :data:`NAMED_CRS` or ``EPSG:n``.

    Accepts the named systems in any case, ``EPSG:4326`` / ``EPSG:4490`` (mapped to their names)
    and any EPSG code or PROJ string pyproj understands.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownCRSError("empty CRS name; use wgs84, cgcs2000, gcj02, bd09 or EPSG:n")
    key = name.strip().lower().replace("-", "").replace("_", "")
    aliases = {
        "wgs84": "wgs84",
        "epsg:4326": "wgs84",
        "cgcs2000": "cgcs2000",
        "epsg:4490": "cgcs2000",
        "gcj02": "gcj02",
        "gcj": "gcj02",
        "bd09": "bd09",
        "bd09ll": "bd09",
        "baidu": "bd09",
    }
    if key in aliases:
        return aliases[key]
    try:
        crs = CRS.from_user_input(name.strip())
    except CRSError as exc:
        raise UnknownCRSError(
            f"unknown CRS {name!r}; use wgs84, cgcs2000, gcj02, bd09 or EPSG:n"
        ) from exc
    epsg = crs.to_epsg()
    if epsg == 4326:
        return "wgs84"
    if epsg == 4490:
        return "cgcs2000"
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def point_crs(name: str) -> str:
    """One of :data:`NAMED_CRS` — the systems a device sends points in — from any of their
    spellings (``GCJ-02``, ``EPSG:4326``, …); anything else raises :class:`UnknownCRSError`
    listing the accepted names."""
    try:
        canonical = normalise_crs(name)
    except UnknownCRSError:
        canonical = ""
    if canonical not in NAMED_CRS:
        raise UnknownCRSError(f"unknown crs {name!r}; accepted: {', '.join(NAMED_CRS)}")
    return canonical


@lru_cache(maxsize=64)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def to_cgcs2000(lon: ArrayLike, lat: ArrayLike, crs: str) -> tuple[Array, Array]:
    """Coordinates in ``crs`` → CGCS2000 lon/lat (EPSG:4490)."""
    name = normalise_crs(crs)
    if name in ("wgs84", "cgcs2000"):
        return _arrays(lon, lat)
    if name == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if name == "bd09":
        return bd09_to_wgs84(lon, lat)
    x, y = _arrays(lon, lat)
    return _transformer(name, CGCS2000).transform(x, y)


# Edges are split to this length before a non-linear transform (see transform_geometries).
DENSIFY_M = 10.0


def _metres_per_unit(crs: str) -> float:
    if crs in ("gcj02", "bd09"):
        return 111_000.0
    info = CRS.from_user_input(crs)
    if info.is_geographic:
        return 111_000.0
    return float(info.axis_info[0].unit_conversion_factor or 1.0)


def transform_geometries(geoms: ArrayLike, crs: str) -> NDArray[np.object_]:
    """Shapely geometries whose coordinates are in ``crs`` → the same geometries in CGCS2000.

    A straight edge does not stay straight through a projection or the GCJ-02/BD-09 offsets:
    a parent's long edge and its children's shorter edges along it would bend differently and
    leave slivers between them. Edges are therefore split to :data:`DENSIFY_M` first, which
    keeps shared boundaries within a few square millimetres of each other.
    """
    name = normalise_crs(crs)
    arr = np.asarray(geoms, dtype=object)
    if name in ("wgs84", "cgcs2000"):
        return arr

    def fn(coords: Array) -> Array:
        lon, lat = to_cgcs2000(coords[:, 0], coords[:, 1], name)
        return np.column_stack([lon, lat])

    dense = shapely.segmentize(arr, DENSIFY_M / _metres_per_unit(name))
    return shapely.transform(dense, fn)


_AREA_DENSIFY_DEG = 2e-4  # about 20 m: slivers measure under 0.01 m² per km of edge


def to_metric(geoms: ArrayLike, metric_crs: str) -> NDArray[np.object_]:
    """CGCS2000 lon/lat geometries → the same geometries in ``metric_crs`` (e.g. EPSG:4548).

    Edges are split to about 20 m before projecting, so each projected edge follows the image of
    its straight lon/lat edge. Projecting the vertices alone would give a sliver whose vertices
    are collinear in lon/lat (area zero) an area of square metres, and every region a slightly
    different area from the sum of its children.
    """
    arr = np.atleast_1d(np.asarray(geoms, dtype=object))
    to_metric_crs = _transformer(CGCS2000, metric_crs)

    def project(coords: Array) -> Array:
        x, y = to_metric_crs.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(shapely.segmentize(arr, _AREA_DENSIFY_DEG), project)


def metric_area(geoms: ArrayLike, metric_crs: str) -> NDArray[np.float64]:
    """Areas in m², in ``metric_crs``, of CGCS2000 lon/lat geometries (array in, array out);
    see :func:`to_metric` for why edges are densified first."""
    return shapely.area(to_metric(geoms, metric_crs))
