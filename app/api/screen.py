"""The command wall: the page (/screen, /screen/{region_code}) and the figures it polls."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import text

from app.api.auth import CurrentUser, Reach
from app.api.deps import Conn, ScopeDep, get_settings
from app.api.problems import not_found, problem_responses
from app.services import regions
from app.services import screen as service
from app.services.scoping import ScopeFilter
from app.settings import Settings
from app.web import wall
from app.web.i18n import labels
from gis.codes import LEVELS

router = APIRouter(tags=["screen"], responses=problem_responses(404, 422))
Lang = Annotated[Literal["zh", "en"], Query(description="Label language")]
RegionCode = Annotated[str, Path(max_length=32, pattern=r"^\d+$", examples=["120106001"])]
RegionQuery = Annotated[
    str, Query(max_length=32, pattern=r"^\d+$", description="A region code at any level")
]


def region_feature(conn: Conn, scope: ScopeDep, reach: ScopeFilter, code: str) -> dict:
    """The region's feature, if it is in the active version and within the caller's area."""
    within = code.startswith(reach.region_code) or reach.departments is not None
    feature = regions.features_where(conn, scope, "r.code = :c", {"c": code})
    if not within or not feature:
        raise not_found(f"no region {code} in your area")
    return feature[0]


def boundaries_below(
    conn: Conn, scope: ScopeDep, region: dict, levels: tuple[str, ...], metric_srid: int
) -> dict[str, list[dict]]:
    """The region's feature under its own level, and its descendants of each of ``levels``
    below it — a page's outlines."""
    level, code = region["properties"]["level"], region["properties"]["code"]
    boundaries = {level: [region]}
    for child in levels[levels.index(level) + 1 :] if level in levels else ():
        boundaries[child] = regions.features_where(
            conn, scope, "r.level = :lv AND r.code LIKE :p", {"lv": child, "p": code + "%"},
            metric_srid=metric_srid,
        )  # fmt: skip
    return boundaries


def home_region(conn: Conn, reach: ScopeFilter) -> str:
    """The caller's own wall: their home region, or the first district above it."""
    row = conn.execute(
        text(
            "SELECT r.code FROM region r JOIN boundary_version v ON v.id = r.version_id "
            "AND v.is_active WHERE r.code = :c OR (r.level = 'district' AND r.code LIKE :p) "
            "ORDER BY (r.code = :c) DESC, r.code LIMIT 1"
        ),
        {"c": reach.region_code, "p": reach.region_code + "%"},
    ).first()  # fmt: skip
    if row is None:
        raise not_found(f"no region {reach.region_code} in the active boundary version")
    return row.code


def _page(
    conn: Conn, scope: ScopeDep, reach: ScopeFilter, settings: Settings, code: str, lang: str
) -> HTMLResponse:
    region = region_feature(conn, scope, reach, code)
    boundaries = boundaries_below(conn, scope, region, LEVELS, settings.metric_srid)
    body = wall.build(
        region=region,
        boundaries=boundaries,
        heat=service.heat(conn, reach, code),
        t=labels(lang),
        lang=lang,
        tile_url=settings.tile_url,
        tile_attribution=settings.tile_attribution,
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.get("/screen", response_class=HTMLResponse)
def screen_home(
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    lang: Lang = "zh",
) -> HTMLResponse:
    """The command wall of the caller's own area (a district commander's: the district):
    boundaries of every level, the grid choropleth (today's reports, open cases, today's
    anomaly), open cases clustered, the week's heat, whistles (pulsing when overdue, lines to
    the departments' check-ins), gridworkers moving, and the headline figures — refreshed
    without reloading. Every script, style and icon is served by this app."""
    return _page(conn, scope, reach, settings, home_region(conn, reach), lang)


@router.get("/screen/{region_code}", response_class=HTMLResponse)
def screen_region(
    region_code: RegionCode,
    conn: Conn,
    scope: ScopeDep,
    reach: Reach,
    settings: Annotated[Settings, Depends(get_settings)],
    lang: Lang = "zh",
) -> HTMLResponse:
    """A street's, community's or grid's wall (the same layers, for that region)."""
    return _page(conn, scope, reach, settings, region_code, lang)


class WallFigures(BaseModel):
    region: str
    at: str
    reports_today: int
    filed_today: int
    month_closing_rate: float | None
    month_on_time_rate: float | None
    open_cases: int
    overdue_cases: int
    whistles_open: int
    whistles_overdue: int
    gridworkers_on_duty: int


@router.get("/api/v1/screen/figures", response_model=WallFigures)
def figures(
    conn: Conn, scope: ScopeDep, reach: Reach, principal: CurrentUser, region: RegionQuery
) -> WallFigures:
    """The wall's headline figures for a region: today's reports and filed cases, this month's
    closing and on-time rates, open and overdue cases, open and overdue whistles, gridworkers on
    duty (a plausible fix in the last 10 minutes)."""
    region_feature(conn, scope, reach, region)
    return WallFigures(**service.figures(conn, reach, principal, region))


class GridValues(BaseModel):
    reports_today: int
    open_cases: int
    hotspot_z: float | None
    anomaly_z: float | None


@router.get("/api/v1/screen/grid-values", response_model=dict[str, GridValues])
def grid_values(
    conn: Conn, scope: ScopeDep, reach: Reach, region: RegionQuery
) -> dict[str, GridValues]:
    """Per grid of a region (grids with nothing to show are left out): today's reports, open
    cases, the hot-spot z-score (Getis-Ord Gi* of the last seven days' cases, queen contiguity)
    and today's anomaly — the z-score of today's reports against that grid's daily counts over
    the previous 28 days. The wall's choropleth."""
    region_feature(conn, scope, reach, region)
    return {k: GridValues(**v) for k, v in service.grid_values(conn, reach, region).items()}
