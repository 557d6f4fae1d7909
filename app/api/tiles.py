"""Vector tiles for the command wall: ``GET /tiles/{layer}/{z}/{x}/{y}.pbf``. Thin: parse,
look in the worker's tile cache, else build with ``app.services.tiles``; ETag and 304."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.api.auth import Reach
from app.api.incidents import (
    OverdueQuery,
    RegionQuery,
    SinceQuery,
    Source,
    Status,
    UntilQuery,
    incident_filters,
)
from app.api.problems import Problem, invalid, not_found, problem_responses
from app.services import tiles as service
from app.services.patrols import ZONE
from app.services.scoping import ScopeFilter, prefix_pattern

router = APIRouter(tags=["tiles"])

_INTEGER = re.compile(r"[0-9]{1,8}")  # ASCII digits only; longer is out of range anyway
_CACHE_HEADER = "X-Tile-Cache"

TILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The tile (Mapbox Vector Tile 2.1, one layer named as in the URL)",
        "content": {service.MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    },
    204: {"description": "Nothing of the layer in this tile (an empty tile)"},
    304: {"description": "Not modified: the If-None-Match ETag is current"},
    **problem_responses(400, 404, 422),
}
TILE_RESPONSES[400]["description"] = "z, x or y out of range, the field named (problem+json)"


def _coordinate(name: str, value: str, top: int) -> int:
    if not _INTEGER.fullmatch(value) or int(value) > top:
        raise Problem(
            400, "tile-out-of-range", f"{name}: {value!r} is not an integer in 0 … {top}",
            field=name,
        )  # fmt: skip
    return int(value)


def _check_class(conn: Any, class_code: str) -> None:
    found = conn.execute(
        text("SELECT EXISTS (SELECT 1 FROM incident_class WHERE code LIKE :p)"),
        {"p": prefix_pattern(class_code.upper())},
    ).scalar_one()
    if not found:
        raise invalid("class", f"{class_code!r} is no class or major class of the catalogue")


def _build(
    request: Request,
    key: Hashable,
    layer: str,
    tile: service.TileRef,
    day: dt.date,
    reach: ScopeFilter,
    filters: dict[str, Any],
    version: int,
) -> service.Tile:
    with request.app.state.engine.connect() as conn, conn.begin():
        if layer == "incidents":
            if filters["class_code"]:
                _check_class(conn, filters["class_code"])
            where, params = incident_filters(reach, **filters)
            body = service.incident_tile(conn, where, params, tile)
        elif layer == "tracks":
            extents = request.app.state.tiles.track_extents(conn, day, version)
            body = service.track_tile(conn, reach, tile, day, extents)
        else:
            body = service.boundary_tile(conn, layer, tile, day)
    return service.Tile(body, service.etag(key, body))


def _matches(if_none_match: str | None, tag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ is ignored."""
    if if_none_match is None:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or tag in tags


@router.get(
    "/tiles/{layer}/{z}/{x}/{y}.pbf",
    response_class=Response,
    responses=TILE_RESPONSES,
)
async def tile(
    request: Request,
    reach: Reach,
    layer: Annotated[
        str,
        Path(
            description="district, street, community, grid, incidents or tracks",
            json_schema_extra={"enum": list(service.LAYERS)},
        ),
    ],
    z: Annotated[
        str,
        Path(
            description="Zoom, 0 … 22",
            json_schema_extra={"type": "integer", "minimum": 0, "maximum": service.MAX_ZOOM},
        ),
    ],
    x: Annotated[
        str,
        Path(
            description="Column, 0 … 2^z − 1", json_schema_extra={"type": "integer", "minimum": 0}
        ),
    ],
    y: Annotated[
        str,
        Path(
            description="Row from the top (XYZ), 0 … 2^z − 1",
            json_schema_extra={"type": "integer", "minimum": 0},
        ),
    ],
    region: RegionQuery = None,
    class_code: Annotated[
        str | None,
        Query(
            alias="class",
            max_length=8,
            pattern=r"^[A-Za-z][0-9]{0,6}$",
            description="incidents: a minor class (E0101) or a major (E01) of the catalogue",
        ),
    ] = None,
    status: Annotated[
        list[Status] | None, Query(description="incidents: one or more statuses")
    ] = None,
    source: Annotated[Source | None, Query(description="incidents: where reported from")] = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    overdue: OverdueQuery = None,
    out_of_area: Annotated[bool | None, Query(description="incidents: outside every grid")] = None,
    date: Annotated[
        dt.date | None, Query(description="tracks: a Beijing day (default: today)")
    ] = None,
    if_none_match: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """A Mapbox vector tile (Web Mercator, XYZ) of one layer, built by PostGIS (`ST_AsMVT`).

    - `district`, `street`, `community`, `grid`: the active boundary version's regions of that
      level (code, name, level, parent_code), simplified to the zoom.
    - `incidents`: cases in the caller's scope with the filters of `GET /api/v1/incidents`
      (region, class, status, source, from, to, overdue, out_of_area). From zoom 14 single cases
      (id, status, class_code, overdue, reported_at in epoch seconds, grid_code); below zoom 14,
      or past 5,000 cases in one tile, clusters on a 32 × 32 grid (count, overdue_count).
    - `tracks`: each gridworker's plausible fixes of the day (`date`, default today in Beijing)
      as one line, cut to the tile (worker, fixes), for workers homed in the caller's area;
      from zoom 12 (below, a day of tracks is a smudge: an empty tile).

    Filters that do not apply to the layer are ignored. An empty tile is a 204. Answers carry a
    strong `ETag` (`If-None-Match` → 304) and `Cache-Control: private`; each worker keeps recent
    tiles in memory and drops a layer's tiles as soon as its data change (LISTEN/NOTIFY)."""
    group = service.LAYERS.get(layer)
    if group is None:
        raise not_found(f"no tile layer {layer!r}; layers: {', '.join(service.LAYERS)}")
    zoom = _coordinate("z", z, service.MAX_ZOOM)
    ref = service.TileRef(zoom, _coordinate("x", x, 2**zoom - 1), _coordinate("y", y, 2**zoom - 1))
    day = date or dt.datetime.now(ZONE).date()
    filters: dict[str, Any] = {}
    if layer == "incidents":
        filters = {"region": region, "class_code": class_code.upper() if class_code else None,
                   "status": tuple(sorted(set(status))) if status else None, "source": source,
                   "since": since, "until": until, "overdue": overdue,
                   "out_of_area": out_of_area}  # fmt: skip
        key: tuple[Any, ...] = (layer, ref, tuple(filters.items()), reach)
    elif layer == "tracks":
        key = (layer, ref, day, reach)
    else:
        # Boundaries are not scoped (everyone sees the whole map): one tile serves every
        # caller. The day is in the key: regions are those valid today.
        key = (layer, ref, day)

    tiles: service.TileService = request.app.state.tiles
    found = tiles.cache.get(key)
    cache_state = "hit"
    if found is None:
        cache_state = "miss"
        version = tiles.cache.version(group)  # read before the query's snapshot is taken
        found = await run_in_threadpool(
            _build, request, key, layer, ref, day, reach, filters, version
        )
        tiles.cache.put(key, group, version, found)
    headers = {
        "ETag": found.etag,
        "Cache-Control": f"private, max-age={service.MAX_AGE[group]}",
        "Vary": "Authorization, Cookie",
        _CACHE_HEADER: cache_state,
    }
    if _matches(if_none_match, found.etag):
        return Response(status_code=304, headers=headers)
    if not found.body:
        return Response(status_code=204, headers=headers)
    return Response(found.body, media_type=service.MEDIA_TYPE, headers=headers)
