"""Planners' analytics over HTTP: hot spots, emerging hot spots, series, period comparison and
kernel density. Thin: check the window, call ``app.services.analytics``, serialise as GeoJSON
(or JSON for the series and the density)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

import pandas as pd
import shapely
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy import Connection

from app.api.auth import Reach
from app.api.deps import Conn, ScopeDep, get_settings
from app.api.problems import invalid, not_found, problem_responses
from app.api.screen import home_region
from app.services import analytics as service
from app.services import regions
from app.services.scoping import ScopeFilter
from app.settings import Settings

router = APIRouter(
    prefix="/api/v1/analytics", tags=["analytics"], responses=problem_responses(404, 422)
)

Level = Literal["district", "street", "community", "grid"]
RegionQ = Annotated[
    str | None,
    Query(
        max_length=32,
        pattern=r"^\d+$",
        description="A region code at any level; the caller's own area by default",
    ),
]
LevelQ = Annotated[Level, Query(description="The level the cases are counted at")]
ClassQ = Annotated[
    str | None,
    Query(
        alias="class",
        pattern=r"^[A-Za-z]\d{2}(\d{2})?$",
        description="A minor class (E0101) or a major (E01)",
    ),
]
FromQ = Annotated[
    dt.date | None,
    Query(alias="from", description="First Beijing day (default: 28 days before `to`)"),
]
ToQ = Annotated[dt.date | None, Query(alias="to", description="Last Beijing day (default today)")]


def checked_region(conn: Connection, reach: ScopeFilter, region: str | None) -> str:
    """The region to analyse or export (the caller's home by default): in the active version
    and within the caller's area — else a 404, as if it did not exist."""
    code = region or home_region(conn, reach)
    within = code.startswith(reach.region_code) or reach.departments is not None
    if not within or not regions.in_active_version(conn, code):
        raise not_found(f"no region {code} in your area")
    return code


def window(
    conn: Connection,
    reach: ScopeFilter,
    region: str | None,
    level: str,
    class_code: str | None,
    start: dt.date | None,
    end: dt.date | None,
) -> service.Window:
    """The checked window of a request; a bad class or period is a 422 naming it."""
    code = checked_region(conn, reach, region)
    try:
        return service.window(conn, code, level=level, class_code=class_code, start=start, end=end)
    except service.AnalyticsError as e:
        raise invalid(e.field, e.message) from None


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN and NA as null, numpy scalars as Python, dates ISO."""
    columns = [c for c in frame.columns if c != "geometry"]
    return [
        {c: service.plain(v) for c, v in zip(columns, row, strict=True)}
        for row in frame[columns].itertuples(index=False, name=None)
    ]


def feature_collection(result: service.Result) -> dict[str, Any]:
    """GeoJSON of a region frame, with the analysis's description beside the features."""
    frame = result.frame
    shapes = shapely.to_geojson(shapely.set_precision(frame.geometry.values, 1e-7))
    return {
        "type": "FeatureCollection",
        **{k: v for k, v in result.meta.items()},
        "features": [
            {
                "type": "Feature",
                "id": props["code"],
                "geometry": json.loads(shape),
                "properties": props,
            }
            for props, shape in zip(records(frame), shapes, strict=True)
        ],
    }


GEOJSON = {
    200: {
        "content": {"application/geo+json": {"schema": {"type": "object"}}},
        "description": "A GeoJSON FeatureCollection",
    }
}


def _run(call: Any, *args: Any, **kwargs: Any) -> service.Result:
    try:
        return call(*args, **kwargs)
    except service.AnalyticsError as e:
        raise invalid(e.field, e.message) from None


@router.get("/hotspots", responses=GEOJSON)
def hotspots(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    region: RegionQ = None,
    level: LevelQ = "grid",
    class_code: ClassQ = None,
    start: FromQ = None,
    end: ToQ = None,
    method: Annotated[Literal["gi", "moran"], Query(description="Gi* or Local Moran")] = "gi",
    measure: Annotated[
        Literal["count", "per_1000", "per_km2"],
        Query(description="What is analysed: the count, per 1,000 residents, or per km²"),
    ] = "count",
    distance_m: Annotated[
        float | None,
        Query(gt=0, le=20_000, description="A distance band in metres instead of queen contiguity"),
    ] = None,
    permutations: Annotated[
        int | None,
        Query(ge=0, le=9999, description="Conditional permutations for p (Gi*: 0 = analytic)"),
    ] = None,
) -> JSONResponse:
    """Hot spots of the cases of a period (default: the last 28 days) per region of `level`
    (default: basic grids), as GeoJSON. Every feature carries `count`, `per_1000`, `per_km2`
    and, for `method=gi`, Getis-Ord Gi* `gi_z`, `gi_p` and `gi_bin` — −3…+3, cold or hot spot at
    99 / 95 / 90 % confidence after the Benjamini-Hochberg FDR correction, like ArcGIS's Gi_Bin;
    for `method=moran`, Local Moran `moran_i`, `moran_z`, `moran_p` and `moran_cluster` (HH,
    LL, HL, LH, or empty when not significant at 95 %). A period without cases answers an
    empty collection with a `reason`."""
    w = window(conn, reach, region, level, class_code, start, end)
    result = _run(
        service.hotspots,
        conn,
        reach,
        w,
        method=method,
        measure=measure,
        distance_m=distance_m,
        permutations=permutations,
        metric_srid=settings.metric_srid,
    )
    return JSONResponse(feature_collection(result), media_type="application/geo+json")


@router.get("/emerging", responses=GEOJSON)
def emerging(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    region: RegionQ = None,
    level: LevelQ = "grid",
    class_code: ClassQ = None,
    end: ToQ = None,
    weeks: Annotated[int, Query(ge=2, le=service.MAX_WEEKS, description="Weekly bins")] = 52,
    time_window: Annotated[
        int, Query(ge=0, le=4, description="Preceding weeks that count as neighbours")
    ] = 1,
) -> JSONResponse:
    """Emerging hot spots over `weeks` seven-day bins ending on `to` (default today): per region
    its `category` — new, consecutive, intensifying, persistent, diminishing, sporadic,
    oscillating or historical hot spot, the same cold spots, or no pattern, by ArcGIS's
    definitions — the Mann-Kendall `trend`, `trend_tau` and `trend_p` of its space-time Gi*
    z-scores, the last week's `gi_z`, `gi_p`, `gi_bin`, and `hot_bins` / `cold_bins`."""
    code = checked_region(conn, reach, region)
    result = _run(
        service.emerging,
        conn,
        reach,
        code,
        level=level,
        class_code=class_code,
        end=end,
        weeks=weeks,
        time_window=time_window,
    )
    return JSONResponse(feature_collection(result), media_type="application/geo+json")


@router.get("/series")
def series(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    region: RegionQ = None,
    level: LevelQ = "street",
    class_code: ClassQ = None,
    start: FromQ = None,
    end: ToQ = None,
    period: Annotated[Literal["day", "week", "month"], Query(description="Bin length")] = "week",
    by_class: Annotated[bool, Query(description="One series per class as well")] = False,
) -> dict[str, Any]:
    """Cases per region of `level` (default: streets) per day, week (Monday to Sunday) or month,
    with `per_1000` residents and `per_km2`; every period for every region, quiet ones as 0
    (JSON, not GeoJSON: one row per region and period). At most 100,000 rows: ask for an
    export beyond that."""
    w = window(conn, reach, region, level, class_code, start, end)
    frame_regions = service.regions_frame(conn, w.region, w.level)
    bins = len(pd.period_range(w.start, w.end, freq=service.gis.PERIODS[period]))
    if len(frame_regions) * bins > 100_000 and not by_class:
        raise invalid(
            "period",
            f"{len(frame_regions) * bins:,} rows: use a longer period, a higher level or an export",
        )
    result = _run(service.series, conn, reach, w, period=period, by_class=by_class)
    if len(result.frame) > 100_000:
        raise invalid("by_class", f"{len(result.frame):,} rows: narrow it or use an export")
    return {**result.meta, "series": records(result.frame)}


@router.get("/compare", responses=GEOJSON)
def compare(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    region: RegionQ = None,
    level: LevelQ = "street",
    class_code: ClassQ = None,
    start: FromQ = None,
    end: ToQ = None,
) -> JSONResponse:
    """This period (default: the last 28 days) against the one of equal length just before
    it, per region of `level` (default: streets), as GeoJSON: `count`, `previous`, `change`,
    `change_pct` (null from zero), `p` (an exact test of two Poisson counts) and `significant`
    (Benjamini-Hochberg over the regions, 5 %)."""
    w = window(conn, reach, region, level, class_code, start, end)
    result = _run(service.compare, conn, reach, w)
    return JSONResponse(feature_collection(result), media_type="application/geo+json")


@router.get("/density")
def density(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    region: RegionQ = None,
    class_code: ClassQ = None,
    start: FromQ = None,
    end: ToQ = None,
    bandwidth_m: Annotated[float, Query(ge=20, le=5000, description="Kernel radius, m")] = 300,
    cell_m: Annotated[float, Query(ge=5, le=1000, description="Cell size, m")] = 50,
) -> dict[str, Any]:
    """The kernel-density surface of a period's cases (quartic kernel, cases per km²) for a
    heat map: `cells` as [lat, lon, density], cells under 1 % of the peak left out; the cell
    grows when the region would need more than 40,000."""
    w = window(conn, reach, region, "grid", class_code, start, end)
    result = _run(
        service.density,
        conn,
        reach,
        w,
        cell_m=cell_m,
        bandwidth_m=bandwidth_m,
        metric_srid=settings.metric_srid,
    )
    f = result.frame
    cells = [[la, lo, d] for lo, la, d in zip(f["lon"], f["lat"], f["density"], strict=True)]
    return {**result.meta, "cells": [[service.plain(v) for v in c] for c in cells]}
