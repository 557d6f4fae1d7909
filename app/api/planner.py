"""The planners' page (/planner, /planner/{region_code}): where the cases concentrate, on a light
map, with class, period, level, method and measure filters.

The page embeds only what is bounded and slow to change — the region's outline, its streets and
communities, and the class catalogue. Every analysis (Gi* hot spots, Local Moran clusters,
emerging hot spots, the period comparison, the kernel density, a region's weekly series) is
fetched by the page from ``/api/v1/analytics`` and redrawn when a filter changes, without
reloading; so the page shows exactly what the API answers, and nothing the caller could not ask
for there.

The default period is the last 365 days up to today (Beijing days), not the API's 28: a planner
asks where cases concentrate over a year, which evens out the seasons and the weekly rhythm —
and on the demo database, whose cases span the last year, the page opens on the demo year's hot
spots. The presets (last 4 weeks, last quarter = 91 days, last 12 months = 365 days) and the
date inputs narrow it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection, text

from app.api.auth import Reach
from app.api.deps import Conn, ScopeDep, get_settings
from app.api.problems import problem_responses
from app.api.screen import boundaries_below, home_region, region_feature
from app.services.scoping import ScopeFilter
from app.settings import Settings
from app.web import planner
from app.web.i18n import labels

router = APIRouter(tags=["planner"], responses=problem_responses(404, 422))
Lang = Annotated[Literal["zh", "en"], Query(description="Label language")]
RegionCode = Annotated[str, Path(max_length=32, pattern=r"^\d+$", examples=["120106001"])]

DEFAULT_DAYS = 365
# The outlines drawn under the analyses; grids come with the analyses themselves.
OUTLINE_LEVELS = ("district", "street", "community")


def _catalogue(conn: Connection, lang: str) -> list[dict[str, Any]]:
    """The class catalogue for the class filter: each major (the code's first three characters,
    E01, P01, S01 — the analytics API's major codes) with its minor classes, names in
    ``lang``."""
    suffix = "en" if lang == "en" else "zh"
    rows = conn.execute(
        text(
            f"SELECT code, major_name_{suffix} AS major_name, name_{suffix} AS name "
            "FROM incident_class ORDER BY code"
        )
    ).all()
    majors: dict[str, dict[str, Any]] = {}
    for row in rows:
        major = majors.setdefault(
            row.code[:3], {"code": row.code[:3], "name": row.major_name, "classes": []}
        )
        major["classes"].append({"code": row.code, "name": row.name})
    return list(majors.values())


def _page(
    conn: Connection,
    scope: ScopeDep,
    reach: ScopeFilter,
    settings: Settings,
    code: str,
    lang: str,
) -> HTMLResponse:
    region = region_feature(conn, scope, reach, code)
    boundaries = boundaries_below(conn, scope, region, OUTLINE_LEVELS, settings.metric_srid)
    today = dt.datetime.now(planner.ZONE).date()
    body = planner.build(
        region=region,
        boundaries=boundaries,
        catalogue=_catalogue(conn, lang),
        start=today - dt.timedelta(days=DEFAULT_DAYS - 1),
        end=today,
        t=labels(lang),
        lang=lang,
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/planner", response_class=HTMLResponse)
def planner_home(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    lang: Lang = "zh",
) -> HTMLResponse:
    """The planners' map of the caller's own area (a district planner's: the district): Gi* hot
    spots (FDR-corrected confidence bins), Local Moran clusters and outliers, emerging hot spots,
    the change from the previous period and the kernel density of the cases, filtered by class,
    period (default: the last 365 days), level (grids, communities, streets), method and
    measure (count, per 1,000 residents, per km²); a region's figures and weekly trend on a
    click. Every script, style and icon is served by this app."""
    return _page(conn, scope, reach, settings, home_region(conn, reach), lang)


@router.get("/planner/{region_code}", response_class=HTMLResponse)
def planner_region(
    region_code: RegionCode,
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    lang: Lang = "zh",
) -> HTMLResponse:
    """The planners' map of a street, community or grid within the caller's area."""
    return _page(conn, scope, reach, settings, region_code, lang)
