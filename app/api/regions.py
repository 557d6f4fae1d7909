"""Regions of the four-level grid and their boundary versions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.deps import (
    Conn,
    ScopeDep,
    decode_cursor,
    encode_cursor,
    get_settings,
    parse_bbox,
)
from app.api.problems import not_found, problem_responses
from app.services import boundaries as boundary_service
from app.services import identity
from app.services import regions as service
from app.services.regions import Scope
from app.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["regions"], responses=problem_responses(404, 422))

MAX_LIMIT = 1000
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
MAX_SIMPLIFY_M = 5000.0
Level = Literal["district", "street", "community", "grid"]  # gis.codes.LEVELS
CodePath = Annotated[
    str,
    Path(description="Region code, e.g. 120106 (district) … 120106001001001 (grid)",
         max_length=32, examples=["120106"]),
]  # fmt: skip


class VersionRef(BaseModel):
    id: int
    label: str
    activated_at: dt.datetime | None


class RegionSummary(BaseModel):
    code: str
    name: str | None
    level: Level
    parent_code: str | None
    area_m2: float = Field(description="Area in the city's metric CRS")
    population: int | None
    households: int | None
    valid_from: dt.date | None
    valid_to: dt.date | None
    bbox: list[float] = Field(description="[min lon, min lat, max lon, max lat], CGCS2000")
    label_point: list[float] = Field(description="[lon, lat] of a point inside, for labels")


class DutyWorker(BaseModel):
    name: str
    display_name: str
    phone: str | None
    kind: str = Field(description="primary (一格一员) or a 1+8+X member kind")


class RegionDetail(RegionSummary):
    properties: dict[str, Any]
    children_count: int
    duty_gridworkers: list[DutyWorker] = Field(
        default_factory=list, description="Basic grids: its gridworker first, then its members"
    )
    boundary_version: VersionRef


class RegionPage(BaseModel):
    items: list[RegionSummary]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")
    boundary_version: VersionRef


class RegionChain(BaseModel):
    items: list[RegionSummary]
    boundary_version: VersionRef


class BoundaryVersionOut(BaseModel):
    id: int
    label: str
    source_file: str
    loaded_at: dt.datetime
    activated_at: dt.datetime | None
    active: bool
    counts: dict[str, int]


def _ref(scope: Scope) -> VersionRef:
    v = scope.version
    return VersionRef(id=v.id, label=v.label, activated_at=v.activated_at)


def _page(conn: Conn, scope: Scope, limit: int, after: str | None, **filters: Any) -> RegionPage:
    items, last = service.list_regions(conn, scope, limit=limit, after=after, **filters)
    return RegionPage(
        items=[RegionSummary(**i) for i in items],
        next_cursor=encode_cursor(last),
        boundary_version=_ref(scope),
    )


def _require(conn: Conn, scope: Scope, code: str) -> None:
    if not service.exists(conn, scope, code):
        raise not_found(f"no region {code} in boundary version {scope.version.id}")


@router.get("/regions", response_model=RegionPage)
def list_regions(
    conn: Conn,
    scope: ScopeDep,
    level: Annotated[Level | None, Query(description="Only this level")] = None,
    parent: Annotated[
        str | None, Query(description="Only the children of this region code", max_length=32)
    ] = None,
    bbox: Annotated[
        str | None,
        Query(
            description="min_lon,min_lat,max_lon,max_lat (CGCS2000 ≈ WGS84): regions touching it",
            examples=["117.15,39.16,117.17,39.18"],
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")] = 100,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page", max_length=64, pattern=CURSOR_PATTERN
        ),
    ] = None,
) -> RegionPage:
    """Regions of the active (or ``as_of``) boundary version, by code, one page at a time."""
    box = parse_bbox(bbox)
    after = decode_cursor(cursor)
    if parent is not None:
        _require(conn, scope, parent)
    return _page(conn, scope, limit, after, level=level, parent=parent, bbox=box)


@router.get("/regions/{code}", response_model=RegionDetail)
def get_region(code: CodePath, conn: Conn, scope: ScopeDep) -> RegionDetail:
    """One region with its attributes and the number of its children."""
    detail = service.get_region(conn, scope, code)
    if detail is None:
        raise not_found(f"no region {code} in boundary version {scope.version.id}")
    if detail["level"] == "grid":
        detail["duty_gridworkers"] = identity.duty(conn, [code])[code]
    return RegionDetail(**detail, boundary_version=_ref(scope))


@router.get("/regions/{code}/children", response_model=RegionPage)
def children(
    code: CodePath,
    conn: Conn,
    scope: ScopeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=64, pattern=CURSOR_PATTERN)] = None,
) -> RegionPage:
    """The regions one level down (a grid has none)."""
    after = decode_cursor(cursor)
    _require(conn, scope, code)
    return _page(conn, scope, limit, after, parent=code)


@router.get("/regions/{code}/ancestors", response_model=RegionChain)
def ancestors(code: CodePath, conn: Conn, scope: ScopeDep) -> RegionChain:
    """The chain above the region, district first."""
    _require(conn, scope, code)
    items = service.ancestors(conn, scope, code)
    return RegionChain(items=[RegionSummary(**i) for i in items], boundary_version=_ref(scope))


@router.get(
    "/regions/{code}/geometry",
    responses={
        200: {"content": {"application/geo+json": {}}, "description": "A GeoJSON Feature"},
    },
    response_class=JSONResponse,
)
def geometry(
    code: CodePath,
    conn: Conn,
    scope: ScopeDep,
    settings: Annotated[Settings, Depends(get_settings)],
    simplify: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_SIMPLIFY_M,
            description="Simplification tolerance in metres (topology preserved); 0 = exact",
        ),
    ] = 0.0,
) -> JSONResponse:
    """The boundary as an RFC 7946 GeoJSON Feature (lon/lat)."""
    feature = service.feature(
        conn, scope, code, simplify_m=simplify, metric_srid=settings.metric_srid
    )
    if feature is None:
        raise not_found(f"no region {code} in boundary version {scope.version.id}")
    return JSONResponse(feature, media_type="application/geo+json")


@router.get(
    "/boundary-versions", response_model=list[BoundaryVersionOut], tags=["boundary versions"]
)
def boundary_versions(conn: Conn) -> list[BoundaryVersionOut]:
    """Every imported boundary version, oldest first; ``active`` marks the current one."""
    return [
        BoundaryVersionOut(**{**v.to_dict(), "loaded_at": v.loaded_at,
                              "activated_at": v.activated_at})
        for v in boundary_service.list_versions(conn)
    ]  # fmt: skip
