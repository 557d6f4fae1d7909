"""Reading and writing files of points (CSV, GeoPackage, GeoJSON, Parquet) for batch lookups.

A CSV or plain Parquet file names its coordinates in columns (``lon``/``lat`` and their usual
aliases, or columns the caller names); a GeoPackage, GeoJSON or GeoParquet file carries Point
geometry and its own CRS. Rows whose coordinates cannot be read are kept, with a reason, so
that every input row has an output row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from numpy.typing import NDArray

from gis.crs import normalise_crs

__all__ = ["PointFile", "PointFileError", "read_points", "write_points"]

LON_NAMES = ("lon", "lng", "long", "longitude", "x", "经度")
LAT_NAMES = ("lat", "latitude", "y", "纬度")
_VECTOR = {".gpkg", ".geojson", ".json", ".shp", ".fgb"}
WRITABLE = (".csv", ".gpkg", ".geojson", ".parquet")


class PointFileError(ValueError):
    """The file cannot be read as points at all (not: some rows are bad)."""


@dataclass
class PointFile:
    frame: pd.DataFrame  # the input attributes, one row per input row, geometry dropped
    lon: NDArray[np.float64]  # NaN where unreadable
    lat: NDArray[np.float64]
    crs: str | None  # the file's own CRS, if it declares one
    errors: dict[int, str] = field(default_factory=dict)  # row position → reason


def _column(columns: list[str], wanted: str | None, names: tuple[str, ...], what: str) -> str:
    if wanted:
        if wanted not in columns:
            raise PointFileError(f"no column {wanted!r} (columns: {', '.join(columns)})")
        return wanted
    lower = {c.strip().lower(): c for c in columns}
    for name in names:
        if name in lower:
            return lower[name]
    raise PointFileError(
        f"no {what} column found (looked for {', '.join(names)}; columns: {', '.join(columns)})"
    )


def _from_columns(frame: pd.DataFrame, lon_field: str | None, lat_field: str | None) -> PointFile:
    columns = [str(c) for c in frame.columns]
    lon_col = _column(columns, lon_field, LON_NAMES, "longitude")
    lat_col = _column(columns, lat_field, LAT_NAMES, "latitude")
    lon = pd.to_numeric(frame[lon_col], errors="coerce").to_numpy(dtype=np.float64)
    lat = pd.to_numeric(frame[lat_col], errors="coerce").to_numpy(dtype=np.float64)
    errors: dict[int, str] = {}
    raw_lon, raw_lat = frame[lon_col].to_numpy(), frame[lat_col].to_numpy()
    for i in np.flatnonzero(np.isnan(lon) | np.isnan(lat)).tolist():
        if np.isnan(lon[i]) and str(raw_lon[i]).strip().lower() != "nan":
            errors[i] = f"{lon_col} {raw_lon[i]!r} is not a number"
        elif np.isnan(lat[i]) and str(raw_lat[i]).strip().lower() != "nan":
            errors[i] = f"{lat_col} {raw_lat[i]!r} is not a number"
    return PointFile(frame, lon, lat, None, errors)


def _from_geometry(gdf: gpd.GeoDataFrame) -> PointFile:
    geoms = np.asarray(gdf.geometry.array, dtype=object)
    is_point = shapely.get_type_id(geoms) == 0
    lon = np.full(len(geoms), np.nan)
    lat = np.full(len(geoms), np.nan)
    lon[is_point] = shapely.get_x(geoms[is_point])
    lat[is_point] = shapely.get_y(geoms[is_point])
    errors = {
        int(i): "no geometry" if geoms[i] is None else f"not a point ({geoms[i].geom_type})"
        for i in np.flatnonzero(~is_point)
    }
    crs = None
    if gdf.crs is not None:
        epsg = gdf.crs.to_epsg()
        crs = normalise_crs(f"EPSG:{epsg}") if epsg else gdf.crs.to_string()
    frame = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    return PointFile(frame, lon, lat, crs, errors)


def read_points(
    path: Path | str,
    *,
    lon_field: str | None = None,
    lat_field: str | None = None,
    layer: str | None = None,
) -> PointFile:
    """Read a CSV, GeoPackage / GeoJSON / Shapefile / FlatGeobuf, or (Geo)Parquet file."""
    path = Path(path)
    if not path.is_file():
        raise PointFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            return _from_columns(frame, lon_field, lat_field)
        if suffix == ".parquet":
            try:
                return _from_geometry(gpd.read_parquet(path))
            except ValueError:  # no geo metadata: plain columns
                return _from_columns(pd.read_parquet(path), lon_field, lat_field)
        if suffix in _VECTOR:
            gdf = pyogrio.read_dataframe(path, layer=layer)
            if isinstance(gdf, gpd.GeoDataFrame) and gdf.geometry.notna().any():
                return _from_geometry(gdf)
            return _from_columns(pd.DataFrame(gdf), lon_field, lat_field)
    except PointFileError:
        raise
    except (
        OSError,
        ValueError,
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
    ) as e:
        raise PointFileError(f"{path}: {e}") from None
    raise PointFileError(f"{path}: unsupported file type {suffix!r} (csv, gpkg, geojson, parquet)")


def write_points(
    frame: pd.DataFrame, lon: NDArray[np.float64], lat: NDArray[np.float64], path: Path | str
) -> None:
    """Write ``frame`` with Point geometry at (lon, lat) CGCS2000 — or, for CSV, as columns."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise PointFileError(f"{path}: cannot write {suffix!r}; use one of {', '.join(WRITABLE)}")
    if suffix == ".csv":
        frame.to_csv(path, index=False)
        return
    ok = np.isfinite(lon) & np.isfinite(lat)
    geoms = np.full(len(frame), None, dtype=object)
    geoms[ok] = shapely.points(lon[ok], lat[ok])
    gdf = gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=geoms, crs=4490)
    if suffix == ".parquet":
        gdf.to_parquet(path)
    else:
        if path.exists():
            path.unlink()
        gdf.to_file(path, engine="pyogrio", driver="GPKG" if suffix == ".gpkg" else "GeoJSON")
