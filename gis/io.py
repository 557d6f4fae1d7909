"""Reading boundary files (GeoPackage, GeoJSON, Shapefile) into the canonical frame.

The canonical frame has one row per region, geometry in CGCS2000 (EPSG:4490), and the columns
``level, code, name, parent_code, population, households, valid_from, valid_to, properties,
feature``. ``feature`` names the source feature (``grids.gpkg:grid#17``) so that every defect can
be pointed at; ``properties`` holds every other attribute of the source, JSON-safe.

A file may hold all levels (a ``level`` column, or GeoPackage layers named after the levels), or
one level (the caller says which). Columns are found by their usual names, English or Chinese,
or mapped explicitly (``{"code": "GRID_ID"}``). A missing parent code is derived from the code's
prefix, since the code scheme nests codes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from gis.codes import LEVELS, CodeScheme, level_rank, normalise_level
from gis.crs import NAMED_CRS, UnknownCRSError, normalise_crs, transform_geometries
from gis.hierarchy import Issue

__all__ = [
    "CANONICAL_FIELDS",
    "BoundaryFile",
    "BoundaryFileError",
    "BoundarySource",
    "read_boundaries",
    "write_boundaries",
]

CANONICAL_FIELDS: dict[str, tuple[str, ...]] = {
    "code": ("code", "region_code", "grid_code", "编码", "代码", "网格编码", "区划代码"),
    "name": ("name", "名称", "网格名称"),
    "level": ("level", "层级", "级别"),
    "parent_code": ("parent_code", "parent_cod", "parent", "上级编码", "上级代码"),
    "population": ("population", "pop", "人口"),
    "households": ("households", "户数"),
    "valid_from": ("valid_from", "start_date", "启用日期"),
    "valid_to": ("valid_to", "end_date", "停用日期"),
}
_SUPPORTED_SUFFIXES = {".gpkg", ".geojson", ".json", ".shp", ".zip", ".fgb"}


class BoundaryFileError(ValueError):
    """The file cannot be read as boundaries at all (as opposed to defects in its features)."""


@dataclass(frozen=True)
class BoundarySource:
    """One file (or one layer of it), optionally declared to hold a single level."""

    path: Path
    level: str | None = None
    layer: str | None = None


@dataclass
class BoundaryFile:
    frame: gpd.GeoDataFrame
    issues: list[Issue] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def read_boundaries(
    sources: Sequence[BoundarySource | str | Path],
    *,
    fields: Mapping[str, str] | None = None,
    crs: str | None = None,
    scheme: CodeScheme | None = None,
) -> BoundaryFile:
    """Read one or more boundary files into one canonical frame in CGCS2000.

    ``fields`` maps canonical names to the file's column names; ``crs`` declares the coordinate
    system of the coordinates (overriding the file's own, which is needed for GCJ-02/BD-09 since
    files cannot say so). Raises :class:`BoundaryFileError` for what makes a file unreadable;
    per-feature defects are returned as issues.
    """
    scheme = scheme or CodeScheme()
    fields = dict(fields or {})
    unknown = sorted(set(fields) - set(CANONICAL_FIELDS))
    if unknown:
        raise BoundaryFileError(
            f"--field {unknown[0]}=…: unknown field; known: {', '.join(CANONICAL_FIELDS)}"
        )
    declared = None
    if crs is not None:
        try:
            declared = normalise_crs(crs)
        except UnknownCRSError as exc:
            raise BoundaryFileError(str(exc)) from exc

    frames: list[gpd.GeoDataFrame] = []
    issues: list[Issue] = []
    names: list[str] = []
    for raw in sources:
        source = raw if isinstance(raw, BoundarySource) else BoundarySource(Path(raw))
        for layer, level in _layers(source):
            frame, found = _read_layer(source.path, layer, level, fields, declared, scheme)
            frames.append(frame)
            issues.extend(found)
            names.append(f"{source.path.name}:{layer}" if layer else source.path.name)
    if not frames:
        raise BoundaryFileError("no boundary file given")
    combined = pd.concat(frames, ignore_index=True)
    frame = gpd.GeoDataFrame(combined, geometry="geometry", crs="EPSG:4490")
    return BoundaryFile(frame=frame, issues=issues, sources=names)


def _layers(source: BoundarySource) -> list[tuple[str | None, str | None]]:
    path = source.path
    if not path.exists():
        raise BoundaryFileError(f"{path}: no such file")
    if path.is_dir() or path.suffix.lower() not in _SUPPORTED_SUFFIXES:
        raise BoundaryFileError(
            f"{path}: not a GeoPackage, GeoJSON or Shapefile "
            f"(expected one of {', '.join(sorted(_SUPPORTED_SUFFIXES))})"
        )
    level = None
    if source.level is not None:
        level = normalise_level(source.level)
        if level is None:
            raise BoundaryFileError(
                f"--level {source.level!r}: not a level; use one of {', '.join(LEVELS)}"
            )
    try:
        layers = [str(row[0]) for row in pyogrio.list_layers(path)]
    except Exception as exc:  # pyogrio raises several GDAL-derived types
        raise BoundaryFileError(f"{path}: cannot be read as a vector file: {exc}") from exc
    if source.layer is not None:
        if source.layer not in layers:
            raise BoundaryFileError(
                f"{path}: no layer {source.layer!r}; layers: {', '.join(layers)}"
            )
        return [(source.layer, level)]
    if len(layers) <= 1:
        return [(layers[0] if layers else None, level)]
    # A GeoPackage with one layer per level.
    by_level = [(name, normalise_level(name)) for name in layers]
    if level is None and all(lv is not None for _, lv in by_level):
        return by_level
    raise BoundaryFileError(
        f"{path}: has {len(layers)} layers ({', '.join(layers)}); name them after the levels "
        f"({', '.join(LEVELS)}) or choose one"
    )


def _read_layer(
    path: Path,
    layer: str | None,
    level: str | None,
    fields: Mapping[str, str],
    declared: str | None,
    scheme: CodeScheme,
) -> tuple[gpd.GeoDataFrame, list[Issue]]:
    label = f"{path.name}:{layer}" if layer and path.suffix.lower() == ".gpkg" else path.name
    try:
        # fid_as_index: features are then named by the file's own ids, as QGIS and ogrinfo show.
        raw = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    except Exception as exc:
        raise BoundaryFileError(f"{label}: cannot be read: {exc}") from exc
    if not isinstance(raw, gpd.GeoDataFrame) or raw.geometry.name not in raw.columns:
        raise BoundaryFileError(f"{label}: has no geometry column")
    source_crs = declared
    if source_crs is None:
        if raw.crs is None:
            raise BoundaryFileError(
                f"{label}: the file does not say its coordinate system; pass --crs "
                f"({', '.join(NAMED_CRS)} or EPSG:n)"
            )
        source_crs = normalise_crs(raw.crs.to_string())
    geoms = raw.geometry.to_numpy()
    geoms = _to_cgcs2000(geoms, source_crs, label)

    columns = {c.lower(): c for c in raw.columns if c != raw.geometry.name}
    chosen: dict[str, str] = {}
    for canonical, aliases in CANONICAL_FIELDS.items():
        if canonical in fields:
            column = fields[canonical]
            if column not in raw.columns:
                raise BoundaryFileError(
                    f"{label}: --field {canonical}={column}: no column {column!r}; "
                    f"columns: {', '.join(columns.values())}"
                )
            chosen[canonical] = column
            continue
        for alias in aliases:
            if alias.lower() in columns:
                chosen[canonical] = columns[alias.lower()]
                break
    if "code" not in chosen:
        raise BoundaryFileError(
            f"{label}: no code column (looked for {', '.join(CANONICAL_FIELDS['code'])}); "
            "map one with --field code=COLUMN"
        )
    if level is None and "level" not in chosen:
        raise BoundaryFileError(
            f"{label}: no level column and no --level; say which level the file holds "
            "or add a level column"
        )

    issues: list[Issue] = []
    n = len(raw)
    feature = [f"{label}#{fid}" for fid in raw.index]
    codes = [_text(v) for v in raw[chosen["code"]]] if n else []
    if level is not None:
        levels: list[Any] = [level] * n
    else:
        # Unknown levels stay as given so that validation can name them.
        levels = [normalise_level(v) or _text(v) or None for v in raw[chosen["level"]]]
    parents = (
        [_text(v) or None for v in raw[chosen["parent_code"]]]
        if "parent_code" in chosen
        else [None] * n
    )
    for i in range(n):
        lv, code = levels[i], codes[i]
        if not parents[i] and lv in LEVELS and lv != LEVELS[0] and code:
            parents[i] = code[: scheme.length(LEVELS[level_rank(lv) - 1])] or None

    def parsed(name: str, parse: Any, expected: str) -> list[Any]:
        """Column ``name`` parsed value by value; a value that does not parse is an issue."""
        if name not in chosen:
            return [None] * n
        out: list[Any] = []
        for i, value in enumerate(raw[chosen[name]]):
            result = parse(value)
            if result is _BAD:
                issues.append(
                    Issue(
                        "bad-attribute",
                        f"{name} {value!r} is not {expected}",
                        level=levels[i] if levels[i] in LEVELS else None,
                        code=codes[i] or None,
                        feature=feature[i],
                    )
                )
                result = None
            out.append(result)
        return out

    whole = "a non-negative whole number"
    day = "a date (YYYY-MM-DD)"
    used = set(chosen.values())
    extra = [c for c in raw.columns if c not in used and c != raw.geometry.name]
    properties = [
        {key: safe for key, value in record.items() if (safe := _json_safe(value)) is not None}
        for record in pd.DataFrame(raw[extra]).to_dict("records")
    ]
    frame = gpd.GeoDataFrame(
        {
            "level": levels,
            "code": codes,
            "name": [_text(v) or None for v in raw[chosen["name"]]]
            if "name" in chosen
            else [None] * n,
            "parent_code": parents,
            "population": pd.array(parsed("population", _integer, whole), dtype="Int64"),
            "households": pd.array(parsed("households", _integer, whole), dtype="Int64"),
            "valid_from": parsed("valid_from", _date, day),
            "valid_to": parsed("valid_to", _date, day),
            "properties": properties,
            "feature": feature,
        },
        geometry=gpd.GeoSeries(geoms, crs="EPSG:4490"),
        crs="EPSG:4490",
    )
    return frame, issues


def write_boundaries(frame: gpd.GeoDataFrame, path: str | Path, layer: str = "regions") -> Path:
    """Write a canonical frame as one layer with a level column (GeoPackage, GeoJSON, …).

    ``properties`` are flattened into columns so that any GIS can read them, and
    :func:`read_boundaries` puts them back.
    """
    path = Path(path)
    out = frame.drop(columns=[c for c in ("feature", "properties") if c in frame.columns])
    out = out.copy()
    if "properties" in frame.columns:
        keys = sorted({k for props in frame["properties"] for k in (props or {})})
        for key in keys:
            if key in out.columns:
                raise ValueError(f"property {key!r} clashes with a canonical column")
            out[key] = [(props or {}).get(key) for props in frame["properties"]]
    for column in ("valid_from", "valid_to"):
        if column in out.columns:
            out[column] = [d.isoformat() if d is not None else None for d in out[column]]
    for column in ("population", "households"):
        if column in out.columns:
            out[column] = out[column].astype("Int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    kwargs = {"layer": layer} if path.suffix.lower() == ".gpkg" else {}
    pyogrio.write_dataframe(gpd.GeoDataFrame(out, geometry="geometry"), path, **kwargs)
    return path


def _to_cgcs2000(geoms: np.ndarray, source_crs: str, label: str) -> np.ndarray:
    try:
        return transform_geometries(geoms, source_crs)
    except Exception as exc:
        raise BoundaryFileError(f"{label}: cannot transform from {source_crs}: {exc}") from exc


_BAD = object()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value).strip()


def _integer(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _BAD
    if not number.is_integer() or number < 0:
        return _BAD
    return int(number)


def _date(value: Any) -> Any:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return _BAD


def _json_safe(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, bytes):
        return None
    if isinstance(value, (str, int, float, bool)):
        return value
    if shapely.is_geometry(value):
        return None
    return str(value)
