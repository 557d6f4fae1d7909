"""Patrols over HTTP: phones send batches of GPS fixes; the wall reads live positions; a
commander plays a worker's day back. Thin: parse, call ``app.services.patrols``, serialise."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import pandas as pd
import shapely.geometry
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from app.api.auth import CurrentUser, Reach
from app.api.deps import Conn
from app.api.incidents import refuse
from app.api.problems import not_found, problem_responses
from app.services import patrols as service
from app.services import regions
from app.services.incidents import IncidentError

router = APIRouter(prefix="/api/v1/patrols", tags=["patrols"])


class Rejected(BaseModel):
    index: int
    reason: str


class IngestOut(BaseModel):
    accepted: int
    duplicates: int
    flagged: int
    rejected: list[Rejected]


FIXES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["fixes"],
                    "properties": {
                        "fixes": {
                            "type": "array",
                            "maxItems": service.MAX_BATCH,
                            "items": {
                                "type": "object",
                                "required": ["worker", "time", "lon", "lat"],
                                "properties": {
                                    "worker": {"type": "string"},
                                    "time": {"type": "string", "format": "date-time"},
                                    "lon": {"type": "number"},
                                    "lat": {"type": "number"},
                                    "crs": {"type": "string", "default": "wgs84"},
                                    "accuracy_m": {"type": "number", "minimum": 0},
                                    "speed_mps": {"type": "number", "minimum": 0},
                                    "client_id": {"type": "string", "maxLength": 64},
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/fixes",
    response_model=IngestOut,
    openapi_extra=FIXES_BODY,
    responses=problem_responses(403, 413, 422, 503),
)
async def ingest(request: Request, principal: CurrentUser, reach: Reach) -> Response:
    """A batch of up to 10,000 GPS fixes from a phone that buffered them (any order; resending
    is safe: a fix — worker, time, client id — is stored once). Each fix is located onto its
    grid. Bad fixes are answered in `rejected` by index and reason while the rest are stored;
    implausible ones (a jump over 150 km/h, accuracy worse than 100 m, a time in the future)
    are stored but `flagged` and left out of live positions and analytics. A gridworker sends
    only their own fixes."""
    app = request.app
    try:
        done = await run_in_threadpool(
            service.ingest, app.state.engine, app.state.locate, principal, reach,
            await request.body(),
        )  # fmt: skip
    except IncidentError as exc:
        raise refuse(exc) from None
    return JSONResponse(
        {
            "accepted": done.accepted,
            "duplicates": done.duplicates,
            "flagged": done.flagged,
            "rejected": done.rejected,
        }
    )


@router.get(
    "/live",
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
def live(conn: Conn, reach: Reach) -> Response:
    """Each on-duty worker's latest position (a plausible fix of the last ten minutes) in the
    caller's area, as GeoJSON points: worker, name, time, age in seconds, grid, accuracy."""
    now = dt.datetime.now(dt.UTC)
    features = [
        {"type": "Feature", "id": r["worker"],
         "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
         "properties": {"worker": r["worker"], "name": r["display_name"],
                        "time": r["fix_time"].isoformat(),
                        "age_s": round((now - r["fix_time"]).total_seconds(), 1),
                        "grid_code": r["grid_code"], "accuracy_m": r["accuracy_m"],
                        "speed_mps": r["speed_mps"]}}
        for r in service.live(conn, reach, now=now)
    ]  # fmt: skip
    body = {"type": "FeatureCollection", "features": features}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")


@router.get(
    "/tracks",
    responses={
        200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}},
        **problem_responses(404),
    },
)
def tracks(
    conn: Conn,
    reach: Reach,
    worker: Annotated[str, Query(max_length=64, pattern=r"^[\w.@-]+$")],
    date: Annotated[dt.date | None, Query(description="A Beijing day (default: today)")] = None,
) -> Response:
    """A worker's day for playback: the track split where the phone was silent over five
    minutes, each piece a LineString with a `times` array beside its coordinates, and the
    day's figures — distance, time on the move, time inside the worker's own grids, grids
    visited, reports made."""
    day = date or dt.datetime.now(service.ZONE).date()
    row = conn.execute(
        text(f"SELECT s.id, s.name FROM staff s WHERE s.name = :n AND "
             f"{reach.sql(region='s.region_code')}"),
        {**reach.params, "n": worker},
    ).first()  # fmt: skip
    if row is None:
        raise not_found(f"no worker {worker} in your area")
    fixes = service.day_fixes(conn, row.id, day)
    own = set(
        conn.execute(
            text("SELECT grid_code FROM grid_assignment WHERE staff_id = :s"), {"s": row.id}
        ).scalars()
    )
    start, end = service.day_bounds(day)
    reports = conn.execute(
        text("SELECT count(*) FROM incident WHERE reporter_id = :s AND reported_at >= :a "
             "AND reported_at < :b"),
        {"s": row.id, "a": start, "b": end},
    ).scalar_one()  # fmt: skip
    body = service.track_geojson(worker, day, fixes, own, reports)
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")


RegionQuery = Annotated[
    str, Query(max_length=32, pattern=r"^\d+$", description="A region code: its grids")
]


def _in_reach(conn: Conn, reach: Reach, region: str) -> None:
    if not region.startswith(reach.region_code) and not reach.region_code.startswith(region):
        raise not_found(f"no region {region} in your area")
    if not regions.in_active_version(conn, region):
        raise not_found(f"no region {region} in the active boundary version")


@router.get(
    "/coverage",
    responses={
        200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}},
        **problem_responses(404, 422),
    },
)
def coverage(
    conn: Conn,
    reach: Reach,
    request: Request,
    region: RegionQuery,
    date: Annotated[dt.date | None, Query(description="A Beijing day (default: today)")] = None,
    by: Annotated[str, Query(pattern="^(day|week)$")] = "day",
) -> Response:
    """Patrol coverage of a region's grids for a day, or the ISO week holding it (`by=week`):
    per grid the share of its area within 25 m of a track, visits, dwell minutes, the mean
    hours between visits and how many workers came — computed from the stored fixes (a street
    takes well under a second; the whole district a few seconds)."""
    _in_reach(conn, reach, region)
    if not region.startswith(reach.region_code):
        region = reach.region_code  # the caller's part of a wider region
    day = date or dt.datetime.now(service.ZONE).date()
    start, days = (day - dt.timedelta(days=day.weekday()), 7) if by == "week" else (day, 1)
    grids, table = service.coverage(conn, region, start, days,
                                    metric_crs=request.app.state.settings.metric_crs)  # fmt: skip
    if not len(grids):
        raise not_found(f"no grids in region {region}")
    figures = {r.code: r for r in table.itertuples()} if len(table) else {}
    features = []
    for code, shape in zip(grids["code"], grids.geometry, strict=True):
        r = figures.get(code)
        features.append({
            "type": "Feature", "id": code, "geometry": shapely.geometry.mapping(shape),
            "properties": {
                "code": code, "period": start.isoformat(), "by": by,
                "covered_share": round(float(r.covered_share), 4) if r else 0.0,
                "visits": int(r.visits) if r else 0,
                "dwell_min": round(float(r.dwell_min), 1) if r else 0.0,
                "revisit_h": (None if r is None or pd.isna(r.revisit_h)
                              else round(float(r.revisit_h), 2)),
                "workers": int(r.workers) if r else 0,
            },
        })  # fmt: skip
    body = {"type": "FeatureCollection", "features": features}
    return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")


class WorkerDay(BaseModel):
    worker: str
    name: str
    region_code: str
    own_grids: list[str]
    fixes: int
    distance_m: float
    moving_s: int
    own_grid_s: int
    grids_visited: int
    stops: int
    reports: int
    first: dt.datetime | None
    last: dt.datetime | None


@router.get("/daily", response_model=list[WorkerDay], responses=problem_responses(404, 422))
def daily(
    conn: Conn,
    reach: Reach,
    request: Request,
    region: RegionQuery,
    date: Annotated[dt.date | None, Query(description="A Beijing day (default: today)")] = None,
) -> list[WorkerDay]:
    """Each gridworker homed in the region and their day — fixes, distance, time on the move,
    time inside their own grids, grids visited, stops, reports made — including those with no
    fix that day (listed with zeros). One worker's track: `/tracks`."""
    _in_reach(conn, reach, region)
    if not region.startswith(reach.region_code):
        region = reach.region_code
    day = date or dt.datetime.now(service.ZONE).date()
    rows = service.daily(conn, region, day, metric_crs=request.app.state.settings.metric_crs)
    return [WorkerDay(**r) for r in rows]


class Unpatrolled(BaseModel):
    code: str
    last_visit: dt.datetime | None
    days_since: int | None


@router.get("/unpatrolled", response_model=list[Unpatrolled], responses=problem_responses(404))
def unpatrolled(
    conn: Conn,
    reach: Reach,
    region: RegionQuery,
    days: Annotated[int, Query(ge=1, le=90)] = 3,
) -> list[Unpatrolled]:
    """The region's grids no gridworker has patrolled in the last `days` days (a plausible fix
    inside), never-visited first, then the longest neglected."""
    _in_reach(conn, reach, region)
    if not region.startswith(reach.region_code):
        region = reach.region_code
    return [Unpatrolled(**r) for r in service.unpatrolled(conn, region, days=days)]
