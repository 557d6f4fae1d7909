"""Planners' analytics: cases per region and period with rates, hot spots (Gi*, Local Moran),
emerging hot spots, period comparison and kernel density — the database side.

Each function reads what it needs (the regions of a level under a region, the cases of a window
within the caller's reach) and hands it to the pure functions of :mod:`gis.hotspots` and
:mod:`gis.emerging`. Results are GeoDataFrames (or DataFrames) with a ``meta`` dict beside them,
so the API, the exports and the CLI serialise one thing.

Days are Beijing days: a window from 1 to 31 March holds the cases reported from 1 March 00:00
to 1 April 00:00 in Asia/Shanghai.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from libpysal.weights import W
from pyproj import Transformer
from sqlalchemy import Connection, text

from app.services import incidents
from app.services.scoping import ScopeFilter, prefix_pattern
from gis import hotspots as gis

ZONE = ZoneInfo("Asia/Shanghai")
LEVEL_COLUMN = {
    "district": "i.district_code",
    "street": "i.street_code",
    "community": "i.community_code",
    "grid": "i.grid_code",
}
METHODS = ("gi", "moran")
MEASURES = ("count", "per_1000", "per_km2")
MAX_DAYS = 3 * 366  # a window longer than three years is a mistake, not an analysis
MAX_WEEKS = 156


class AnalyticsError(ValueError):
    """Input the analysis cannot use; ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Window:
    """What to analyse: the cases of ``class_code`` (a minor class, a major, or all) reported in
    ``region`` from ``start`` to ``end`` (Beijing days, both included), counted per region of
    ``level``."""

    region: str
    level: str = "grid"
    class_code: str | None = None
    start: dt.date = field(default_factory=lambda: dt.datetime.now(ZONE).date())
    end: dt.date = field(default_factory=lambda: dt.datetime.now(ZONE).date())

    @property
    def since(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), ZONE)

    @property
    def until(self) -> dt.datetime:
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), ZONE)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Window:
        """The window of the same length just before this one."""
        span = dt.timedelta(days=self.days)
        return Window(self.region, self.level, self.class_code, self.start - span, self.end - span)

    def describe(self) -> str:
        what = f"cases of class {self.class_code}" if self.class_code else "cases"
        return f"no {what} in {self.region} from {self.start} to {self.end}"


def window(
    conn: Connection,
    region: str,
    *,
    level: str = "grid",
    class_code: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    default_days: int = 28,
) -> Window:
    """A checked window: a known level and class, ``start`` <= ``end``, at most three years.
    Without dates, the last ``default_days`` days up to today."""
    if level not in LEVEL_COLUMN:
        raise AnalyticsError("level", f"unknown level {level!r}; one of {', '.join(LEVEL_COLUMN)}")
    end = _in_range("to", end or dt.datetime.now(ZONE).date())
    # A period may start before EARLIEST when it ends after it (emerging's weeks before `to`).
    floor = EARLIEST - dt.timedelta(days=MAX_DAYS)
    start = _in_range("from", start or end - dt.timedelta(days=default_days - 1), floor)
    if start > end:
        raise AnalyticsError("from", f"{start} is after the end of the period ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise AnalyticsError("from", f"a period is at most {MAX_DAYS} days")
    return Window(region, level, check_class(conn, class_code), start, end)


EARLIEST, LATEST = dt.date(1990, 1, 1), dt.date(2200, 12, 31)


def _in_range(field: str, day: dt.date, earliest: dt.date = EARLIEST) -> dt.date:
    """A day a case could have been reported on (far dates overflow the date arithmetic)."""
    if not earliest <= day <= LATEST:
        raise AnalyticsError(field, f"{day} is outside {earliest} … {LATEST}")
    return day


def check_class(conn: Connection, class_code: str | None) -> str | None:
    """A minor class (E0101) or a major (E01) of the catalogue, upper-cased; None for all."""
    if not class_code:
        return None
    code = class_code.strip().upper()
    if not re.fullmatch(r"[A-Z]\d{2}(\d{2})?", code):
        raise AnalyticsError("class", f"{class_code!r} is not a class (E0101) or a major (E01)")
    known = conn.execute(
        text("SELECT 1 FROM incident_class WHERE code = :c OR left(code, 3) = :c LIMIT 1"),
        {"c": code},
    ).first()
    if known is None:
        raise AnalyticsError("class", f"unknown class {class_code!r}: not a class or a major")
    return code


def plain(value: Any) -> Any:
    """A JSON value of a result's cell or meta: NaN and NA as null, numpy scalars as Python,
    dates ISO 8601 (a naive midnight as the date alone)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None and value == value.normalize():
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


# ---- regions and their weights, once per boundary version ---------------------------------------

_REGIONS: dict[tuple[int | None, str, str], gpd.GeoDataFrame] = {}
_WEIGHTS: dict[tuple[int | None, str, str, float | None], W | None] = {}


def _version(conn: Connection) -> int | None:
    return conn.execute(text("SELECT id FROM boundary_version WHERE is_active")).scalar()


def regions_frame(conn: Connection, region: str, level: str) -> gpd.GeoDataFrame:
    """The regions of ``level`` within ``region`` (itself, if it is of that level) in the
    active boundary version: ``code, name, population, area_m2, geometry`` (EPSG:4490), by
    code."""
    key = (_version(conn), region, level)
    if key not in _REGIONS:
        rows = conn.execute(
            text(
                "SELECT r.code, r.name, r.population, r.area_m2, ST_AsBinary(r.geom) AS wkb "
                "FROM region r JOIN boundary_version v ON v.id = r.version_id AND v.is_active "
                "WHERE r.level = :lv AND r.code LIKE :p ORDER BY r.code"
            ),
            {"lv": level, "p": prefix_pattern(region)},
        ).all()
        if len(_REGIONS) > 64:
            _REGIONS.clear()
        _REGIONS[key] = gpd.GeoDataFrame(
            {
                "code": [r.code for r in rows],
                "name": [r.name for r in rows],
                "population": pd.array([r.population for r in rows], dtype="Int64"),
                "area_m2": [float(r.area_m2) for r in rows],
            },
            geometry=shapely.from_wkb([bytes(r.wkb) for r in rows]),
            crs=4490,
        )
    return _REGIONS[key]


def weights(
    conn: Connection,
    region: str,
    level: str = "grid",
    *,
    distance_m: float | None = None,
    metric_srid: int = 4548,
) -> W | None:
    """Queen contiguity of the regions (or a distance band of ``distance_m`` between their
    centroids), once per boundary version: a district's 992 grids take ~0.3 s. None for fewer
    than two regions, where no neighbourhood exists."""
    key = (_version(conn), region, level, distance_m)
    if key not in _WEIGHTS:
        frame = regions_frame(conn, region, level)
        if len(_WEIGHTS) > 64:
            _WEIGHTS.clear()
        if len(frame) < 2:
            _WEIGHTS[key] = None
        elif distance_m:
            _WEIGHTS[key] = gis.distance_band_weights(frame, distance_m, metric_crs=metric_srid)
        else:
            _WEIGHTS[key] = gis.queen_weights(frame)
    return _WEIGHTS[key]


# ---- counting ----------------------------------------------------------------------------------


def _where(reach: ScopeFilter, w: Window) -> tuple[str, dict[str, Any]]:
    sql = (
        f"{incidents.scope_sql(reach)} AND i.region_code LIKE :p "
        "AND i.reported_at >= :since AND i.reported_at < :until"
    )
    params = {**reach.params, "p": prefix_pattern(w.region), "since": w.since, "until": w.until}
    if w.class_code:
        sql += " AND i.class_code LIKE :cls"
        params["cls"] = prefix_pattern(w.class_code)
    return sql, params


def counts(conn: Connection, reach: ScopeFilter, w: Window) -> pd.Series:
    """Cases per region of the window's level (regions without a case are left out)."""
    where, params = _where(reach, w)
    column = LEVEL_COLUMN[w.level]
    rows = conn.execute(
        text(
            f"SELECT {column} AS code, count(*) AS n FROM incident i WHERE {where} "
            f"AND {column} IS NOT NULL GROUP BY 1"
        ),
        params,
    ).all()
    return pd.Series({r.code: int(r.n) for r in rows}, dtype="int64")


@dataclass
class Result:
    """A frame (one row per region, or per region and period) and what describes it."""

    frame: pd.DataFrame
    meta: dict[str, Any]

    @property
    def empty(self) -> bool:
        return self.meta.get("reason") is not None


def _meta(w: Window, **extra: Any) -> dict[str, Any]:
    return {
        "region": w.region,
        "level": w.level,
        "class": w.class_code,
        "from": w.start.isoformat(),
        "to": w.end.isoformat(),
        "reason": None,
        **extra,
    }


def _with_rates(frame: gpd.GeoDataFrame, n: pd.Series) -> gpd.GeoDataFrame:
    out = frame.copy()
    out["count"] = n.reindex(out["code"]).fillna(0).astype("int64").to_numpy()
    out["per_1000"], out["per_km2"] = gis.rates(out["count"], out["population"], out["area_m2"])
    out["area_km2"] = out["area_m2"] / 1e6
    return out.drop(columns="area_m2")


def _empty(frame: pd.DataFrame, meta: dict[str, Any], reason: str) -> Result:
    meta["reason"] = reason
    meta["total"] = 0
    return Result(frame.iloc[0:0], meta)


def hotspots(
    conn: Connection,
    reach: ScopeFilter,
    w: Window,
    *,
    method: str = "gi",
    measure: str = "count",
    distance_m: float | None = None,
    permutations: int | None = None,
    seed: int | None = 20191216,
    metric_srid: int = 4548,
) -> Result:
    """Hot spots of the window: per region its count and rates, and for ``gi`` the Gi* ``gi_z``,
    ``gi_p`` and ``gi_bin`` (-3…+3, FDR-corrected confidence like ArcGIS's Gi_Bin); for
    ``moran`` the Local Moran ``moran_i``, ``moran_z``, ``moran_p`` and ``moran_cluster`` (HH,
    LL, HL, LH). Gi* uses the normal approximation unless ``permutations`` is given; Local
    Moran's p always comes from permutations (999 by default). ``measure`` is what is
    analysed: the count, or the rate per 1,000 residents (grids where nobody lives count 0) or
    per km²."""
    if method not in METHODS:
        raise AnalyticsError("method", f"unknown method {method!r}; one of {', '.join(METHODS)}")
    if measure not in MEASURES:
        raise AnalyticsError("measure", f"unknown measure {measure!r}; one of {MEASURES}")
    meta = _meta(
        w,
        method=method,
        measure=measure,
        weights=f"distance band {distance_m:g} m" if distance_m else "queen contiguity",
        fdr=True,
    )
    frame = _with_rates(regions_frame(conn, w.region, w.level), counts(conn, reach, w))
    if frame.empty:
        return _empty(frame, meta, f"no {w.level} regions in {w.region}")
    meta["total"] = int(frame["count"].sum())
    if meta["total"] == 0:
        return _empty(frame, meta, w.describe())
    weights_ = weights(conn, w.region, w.level, distance_m=distance_m, metric_srid=metric_srid)
    if weights_ is None:
        return _empty(frame, meta, f"one {w.level} region in {w.region}: no neighbours to compare")
    values = frame.set_index("code")[measure].astype("float64").fillna(0.0)
    values = values.reindex(weights_.id_order).to_numpy()
    if method == "gi":
        stats = gis.gi_star(values, weights_, permutations=permutations or 0, seed=seed)
        stats["bin"] = gis.gi_bins(stats["z"], stats["p"], fdr=True)
        names = {"z": "gi_z", "p": "gi_p", "bin": "gi_bin"}
    else:
        stats = gis.local_moran(values, weights_, permutations=permutations or 999, seed=seed)
        names = {"i": "moran_i", "z": "moran_z", "p": "moran_p", "cluster": "moran_cluster"}
    stats = stats.rename(columns=names).reindex(frame["code"])
    for column in names.values():
        frame[column] = stats[column].to_numpy()
    meta["permutations"] = permutations or (999 if method == "moran" else 0)
    return Result(frame, meta)


def emerging(
    conn: Connection,
    reach: ScopeFilter,
    region: str,
    *,
    level: str = "grid",
    class_code: str | None = None,
    end: dt.date | None = None,
    weeks: int = 52,
    time_window: int = 1,
) -> Result:
    """Emerging hot spots over ``weeks`` seven-day bins ending on ``end`` (today by default):
    the space-time Gi* of each bin and a Mann-Kendall trend per region, classified by ArcGIS's
    definitions (new, consecutive, intensifying, persistent, diminishing, sporadic,
    oscillating, historical hot or cold spot, or no pattern)."""
    if not 2 <= weeks <= MAX_WEEKS:
        raise AnalyticsError("weeks", f"between 2 and {MAX_WEEKS} weekly bins")
    end = _in_range("to", end or dt.datetime.now(ZONE).date())
    w = window(
        conn,
        region,
        level=level,
        class_code=class_code,
        start=end - dt.timedelta(days=7 * weeks - 1),
        end=end,
    )
    meta = _meta(w, weeks=weeks, time_window=time_window, categories={})
    frame = regions_frame(conn, w.region, w.level).copy()
    where, params = _where(reach, w)
    column = LEVEL_COLUMN[w.level]
    rows = conn.execute(
        text(
            f"SELECT {column} AS code, floor(extract(epoch FROM (:until - i.reported_at)) "
            f"/ 604800)::int AS back, count(*) AS n FROM incident i WHERE {where} "
            f"AND {column} IS NOT NULL GROUP BY 1, 2"
        ),
        params,
    ).all()
    index = {code: k for k, code in enumerate(frame["code"])}
    cube = np.zeros((len(frame), weeks), dtype=np.float64)
    for r in rows:
        if r.code in index and 0 <= r.back < weeks:
            cube[index[r.code], weeks - 1 - r.back] += r.n
    frame["count"] = cube.sum(axis=1).astype("int64")
    meta["total"] = int(cube.sum())
    if meta["total"] == 0:
        return _empty(frame, meta, w.describe())
    weights_ = weights(conn, w.region, w.level)
    if weights_ is None:
        return _empty(frame, meta, f"one {w.level} region in {w.region}: no neighbours to compare")
    from gis import emerging as emerging_gis

    order = [index[c] for c in weights_.id_order]
    stats = emerging_gis.emerging_hotspots(cube[order], weights_, time_window=time_window)
    stats = stats.reindex(frame["code"])
    for column in stats.columns:
        frame[column] = stats[column].to_numpy()
    frame["area_km2"] = frame.pop("area_m2") / 1e6
    meta["categories"] = {k: int(v) for k, v in frame["category"].value_counts().items()}
    return Result(frame, meta)


def series(
    conn: Connection,
    reach: ScopeFilter,
    w: Window,
    *,
    period: str = "week",
    by_class: bool = False,
) -> Result:
    """Cases per region of the window's level per day, week (Monday to Sunday) or month, with
    rates; every period of the window for every region, quiet ones as 0."""
    if period not in gis.PERIODS:
        raise AnalyticsError(
            "period", f"unknown period {period!r}; one of {', '.join(gis.PERIODS)}"
        )
    meta = _meta(w, period=period)
    where, params = _where(reach, w)
    column = LEVEL_COLUMN[w.level]
    klass = "i.class_code" if by_class else "NULL"
    cases = pd.DataFrame(  # counted per period here (weeks start on Monday in both)
        conn.execute(
            text(
                f"SELECT {column} AS code, {klass} AS class_code, date_trunc('{period}', "
                f"i.reported_at AT TIME ZONE 'Asia/Shanghai') AS at, count(*) AS n "
                f"FROM incident i WHERE {where} AND {column} IS NOT NULL GROUP BY 1, 2, 3"
            ),
            params,
        ).all(),
        columns=["code", "class_code", "at", "n"],
    )
    regions_ = regions_frame(conn, w.region, w.level)
    frame = gis.aggregate(
        cases, regions_, period=period, start=w.start, end=w.end, by_class=by_class
    )
    frame.insert(
        1, "name", frame["code"].map(dict(zip(regions_["code"], regions_["name"], strict=True)))
    )
    meta["total"] = int(cases["n"].sum())
    if len(cases) == 0:
        return _empty(frame, meta, w.describe())
    return Result(frame, meta)


def compare(conn: Connection, reach: ScopeFilter, w: Window) -> Result:
    """This window against the one of equal length just before it, per region: both counts,
    the change, and whether it is significant (an exact test of two Poisson counts,
    Benjamini-Hochberg over the regions)."""
    before = w.previous()
    meta = _meta(w, previous_from=before.start.isoformat(), previous_to=before.end.isoformat())
    frame = _with_rates(regions_frame(conn, w.region, w.level), counts(conn, reach, w))
    previous = counts(conn, reach, before).reindex(frame["code"]).fillna(0).astype("int64")
    stats = gis.compare_periods(frame["count"].to_numpy(), previous.to_numpy())
    for column in ("previous", "change", "change_pct", "p", "significant"):
        frame[column] = stats[column].to_numpy()
    meta["total"] = int(frame["count"].sum())
    meta["previous_total"] = int(frame["previous"].sum())
    if meta["total"] == 0 and meta["previous_total"] == 0:
        return _empty(frame, meta, w.describe() + f" nor from {before.start} to {before.end}")
    return Result(frame, meta)


def density(
    conn: Connection,
    reach: ScopeFilter,
    w: Window,
    *,
    cell_m: float = 50.0,
    bandwidth_m: float = 300.0,
    metric_srid: int = 4548,
    max_cells: int = 40_000,
) -> Result:
    """The kernel density of the window's cases (quartic kernel, cases per km²) on cells of
    ``cell_m`` — coarsened when the region would need more than ``max_cells`` — as cell
    centres (lon, lat, density), keeping cells above 1 % of the peak."""
    where, params = _where(reach, w)
    # Counted per 0.0002° (~20 m, well under a cell) in the database: a year's 300,000 cases
    # become ~40,000 rows, and only those are projected.
    rows = conn.execute(
        text(
            "SELECT round(ST_X(i.geom) * 5000)::int AS gx, round(ST_Y(i.geom) * 5000)::int AS gy, "
            f"count(*)::int AS n FROM incident i WHERE {where} GROUP BY 1, 2"
        ),
        params,
    ).all()
    extent = conn.execute(
        text(
            "SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM (SELECT "
            "ST_Extent(ST_Transform(r.geom, :srid)) AS e FROM region r JOIN boundary_version v "
            "ON v.id = r.version_id AND v.is_active WHERE r.code = :c) t"
        ),
        {"srid": metric_srid, "c": w.region},
    ).one()
    meta = _meta(w, bandwidth_m=bandwidth_m, kernel="quartic", unit="cases per km²")
    frame = pd.DataFrame(columns=["lon", "lat", "density"])
    meta["total"] = sum(r.n for r in rows)
    if not rows or extent.x0 is None:
        meta["cell_m"] = cell_m
        return _empty(frame, meta, w.describe())
    span = (extent.x1 - extent.x0 + 2 * bandwidth_m) * (extent.y1 - extent.y0 + 2 * bandwidth_m)
    cell_m = max(cell_m, float(np.ceil(np.sqrt(span / max_cells))))
    meta["cell_m"] = cell_m
    cells = np.array([(r.gx, r.gy) for r in rows], dtype=np.float64) / 5000
    xy = np.column_stack(
        Transformer.from_crs(4490, metric_srid, always_xy=True).transform(cells[:, 0], cells[:, 1])
    )
    xs, ys, surface = gis.kde(
        xy,
        weights=np.array([r.n for r in rows], dtype=np.float64),
        bounds=(extent.x0, extent.y0, extent.x1, extent.y1),
        cell_m=cell_m,
        bandwidth_m=bandwidth_m,
    )
    rr, cc = np.nonzero(surface > surface.max() * 0.01)
    lon, lat = Transformer.from_crs(metric_srid, 4490, always_xy=True).transform(xs[cc], ys[rr])
    frame = pd.DataFrame(
        {"lon": np.round(lon, 6), "lat": np.round(lat, 6), "density": np.round(surface[rr, cc], 2)}
    )
    meta["max"] = float(frame["density"].max())
    return Result(frame, meta)


def cases(conn: Connection, reach: ScopeFilter, w: Window, *, limit: int | None = None) -> Result:
    """The window's cases themselves, one row each (the export of raw cases): id, class,
    status, source, grid, community and street, times, and the point."""
    where, params = _where(reach, w)
    rows = conn.execute(
        text(
            "SELECT i.id, i.class_code, c.name_zh AS class_name, i.status, i.source, "
            "i.grid_code, i.community_code, i.street_code, i.department_code, i.reported_at, "
            "i.filed_at, i.closed_at, i.due_at, i.address, ST_X(i.geom) AS lon, "
            f"ST_Y(i.geom) AS lat FROM incident i JOIN incident_class c ON c.code = i.class_code "
            f"WHERE {where} ORDER BY i.id" + (" LIMIT :limit" if limit else "")
        ),
        {**params, "limit": limit},
    ).all()
    frame = pd.DataFrame([r._asdict() for r in rows])
    meta = _meta(w, total=len(frame))
    if frame.empty:
        return _empty(frame, meta, w.describe())
    for column in ("reported_at", "filed_at", "closed_at", "due_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.tz_convert(ZONE)
    gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4490)
    return Result(gdf, meta)


def count_cases(conn: Connection, reach: ScopeFilter, w: Window) -> int:
    """How many cases a raw export of the window would hold (to choose a background job)."""
    where, params = _where(reach, w)
    return int(
        conn.execute(text(f"SELECT count(*) FROM incident i WHERE {where}"), params).scalar()
    )
