"""Whistles over HTTP: blow, act, read, map data, supervision, notifications and the streets'
ratings of departments (下考上). Thin: parse, call ``app.services.whistles`` or
``app.services.evaluation``, serialise. Who may call which route is in
``app.api.auth.ROUTE_ACTIONS``; what a caller may do to one whistle is the service's table."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Connection, text
from starlette.concurrency import run_in_threadpool

from app.api.auth import CurrentUser, Reach
from app.api.deps import (
    SHANGHAI,
    Conn,
    decode_cursor,
    encode_cursor,
    json_or_multipart,
    printable,
)
from app.api.incidents import PhotoOut, refuse
from app.api.problems import invalid, not_found, problem_responses
from app.services import evaluation as scoring
from app.services import whistles as service
from app.services.incidents import IncidentError, check_photo
from app.services.scoping import prefix_pattern

router = APIRouter(prefix="/api/v1", tags=["whistles"])

Level = Literal["community", "street", "district"]
Grade = Literal["red", "yellow", "blue"]
Status = Literal["blown", "responding", "resolved", "closed", "escalated", "cancelled"]
ActionName = Literal[
    "acknowledge", "check_in", "progress", "resolve", "confirm", "reopen", "close", "feedback",
    "escalate", "cancel",
]  # fmt: skip
WhistleId = Annotated[int, Path(ge=1, le=2**62)]


class PlaceIn(BaseModel):
    lon: float | None = None
    lat: float | None = None
    polygon: list[list[list[float]]] | None = Field(
        None, description="A GeoJSON Polygon's coordinates (rings of [lon, lat])"
    )
    crs: str = Field("wgs84", description="wgs84, cgcs2000, gcj02 or bd09")

    _text = field_validator("crs")(printable)


class PartyIn(BaseModel):
    role: Literal["lead", "co", "notified"] = Field(description="主办 / 协办 / 知会")
    department: str | None = Field(None, max_length=64, description="A department code")
    staff: str | None = Field(None, max_length=64, description="A staff user name (1+8+X)")

    _text = field_validator("department", "staff")(printable)


class BlowIn(BaseModel):
    level: Level = Field(description="street (街道吹哨), community (社区吹哨) or district")
    situation_code: str = Field(max_length=8, examples=["MD01"])
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=4000)
    grade: Grade | None = Field(None, description="Default: the situation's grade")
    place: PlaceIn | None = Field(None, description="Default: the first case's point")
    incidents: list[int] = Field([], max_length=100, description="The cases it is blown for")
    parties: list[PartyIn] | None = Field(
        None, max_length=50, description="Addressees; default: proposed from the situation"
    )

    _text = field_validator("situation_code", "title", "description")(printable)


class ActionIn(BaseModel):
    action: ActionName
    note: str = Field("", max_length=4000)
    lon: float | None = Field(None, description="Where the actor stands (check_in: required)")
    lat: float | None = None
    crs: str = "wgs84"
    party: str | None = Field(None, max_length=64, description="The addressee you act for")
    feedback: str | int | None = Field(
        None, description="feedback: satisfied / basically_satisfied / dissatisfied, or 1–5"
    )
    grade: Grade | None = Field(None, description="escalate: the second whistle's grade")
    expected_version: int | None = None

    _text = field_validator("note", "crs", "party", "feedback")(printable)


class PartyOut(BaseModel):
    id: int
    role: str
    department_code: str | None
    department_name: str | None
    staff: str | None
    name: str
    status: str
    addressed_at: dt.datetime
    acknowledged_at: dt.datetime | None
    arrived_at: dt.datetime | None
    checkin: dict[str, float] | None = Field(description="lon, lat (CGCS2000)")
    checkin_distance_m: float | None
    checkin_far: bool | None
    done_at: dt.datetime | None
    report_overdue: bool
    resolve_overdue: bool


class HistoryOut(BaseModel):
    at: dt.datetime
    actor: str
    role: str
    action: str
    from_status: str | None
    to_status: str
    party_id: int | None
    note: str
    lon: float | None
    lat: float | None
    data: dict[str, Any] | None


class WhistleOut(BaseModel):
    id: int
    level: str
    status: str
    situation_code: str
    situation_name: str
    grade: str
    title: str
    description: str
    region_code: str = Field(description="The blowing unit's community, street or district")
    grid_code: str | None
    community_code: str | None
    street_code: str | None
    district_code: str | None
    place: dict[str, Any] = Field(description="GeoJSON geometry (CGCS2000)")
    lon: float
    lat: float
    blown_by: str | None
    blown_at: dt.datetime
    report_due_at: dt.datetime
    resolve_due_at: dt.datetime
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    ended_at: dt.datetime | None
    overdue: bool
    parent_id: int | None = Field(description="The first whistle, for a second whistle")
    second_whistle: int | None
    feedback: str | None
    feedback_score: float | None
    incidents: list[int]
    version: int
    allowed_actions: list[str]
    parties: list[PartyOut]
    photos: list[PhotoOut] = []
    history: list[HistoryOut] = []


class WhistleSummary(BaseModel):
    id: int
    level: str
    status: str
    situation_code: str
    grade: str
    title: str
    street_code: str | None
    lon: float
    lat: float
    blown_at: dt.datetime
    report_due_at: dt.datetime
    resolve_due_at: dt.datetime
    overdue: bool
    parent_id: int | None


class WhistlePage(BaseModel):
    items: list[WhistleSummary]
    next_cursor: str | None


class SituationOut(BaseModel):
    code: str
    class_key: str
    class_code: str
    class_name_zh: str
    class_name_en: str
    name_zh: str
    name_en: str
    grade: str
    lead: list[str]
    co: list[str]
    members: list[str]


class ProposalOut(BaseModel):
    level: str
    situation_code: str
    grade: str
    grid_code: str | None
    parties: list[dict[str, Any]]
    missing_kinds: list[str]


# -- one whistle --------------------------------------------------------------------------------

_WHISTLE_SQL = f"""
SELECT w.*, ST_X(w.place_point) AS lon, ST_Y(w.place_point) AS lat,
       ST_AsGeoJSON(w.place, 7)::json AS place_json, s.name_zh AS situation_name,
       b.name AS blower, {service.OVERDUE_SQL} AS overdue,
       (SELECT min(c.id) FROM whistle c WHERE c.parent_id = w.id) AS second_whistle,
       (SELECT coalesce(array_agg(wi.incident_id ORDER BY wi.incident_id), '{{}}')
        FROM whistle_incident wi WHERE wi.whistle_id = w.id) AS incident_ids,
       (SELECT coalesce(json_agg(json_build_object('id', p.id, 'sha256', p.sha256,
                'content_type', p.content_type, 'bytes', p.bytes) ORDER BY p.id), '[]')
        FROM whistle_photo p WHERE p.whistle_id = w.id) AS photo_list,
       (SELECT coalesce(json_agg(json_build_object('at', h.at, 'actor', h.actor_name,
                'role', h.actor_role, 'action', h.action, 'from_status', h.from_status,
                'to_status', h.to_status, 'party_id', h.party_id, 'note', h.note,
                'lon', ST_X(h.geom), 'lat', ST_Y(h.geom), 'data', h.data) ORDER BY h.id), '[]')
        FROM whistle_history h WHERE h.whistle_id = w.id) AS history_list
FROM whistle w JOIN whistle_situation s ON s.code = w.situation_code
LEFT JOIN staff b ON b.id = w.blown_by
"""


def read_whistle(conn: Connection, reach: Any, principal: Any, whistle_id: int) -> WhistleOut:
    scope, params = service.scope_sql(reach, principal)
    row = conn.execute(
        text(f"{_WHISTLE_SQL} WHERE w.id = :id AND {scope}"), {**params, "id": whistle_id}
    ).mappings().first()  # fmt: skip
    if row is None:
        raise not_found(f"no whistle {whistle_id}")
    parties = service._parties(conn, whistle_id)
    coords = {
        p["id"]: c
        for p, c in zip(
            parties,
            conn.execute(
                text("SELECT id, ST_X(checkin) AS x, ST_Y(checkin) AS y FROM whistle_party "
                     "WHERE whistle_id = :w ORDER BY id"),
                {"w": whistle_id},
            ).all(),
            strict=True,
        )
    }  # fmt: skip
    w = dict(row)
    return WhistleOut(
        **{
            k: w[k]
            for k in WhistleOut.model_fields
            if k in w
            and k not in ("place", "parties", "photos", "history", "incidents", "blown_by")
        },
        place=w["place_json"],
        blown_by=w["blower"],
        incidents=list(w["incident_ids"]),
        allowed_actions=service.allowed_actions(w, parties, principal, reach),
        parties=[
            PartyOut(
                **{k: p[k] for k in PartyOut.model_fields if k in p and k != "checkin"},
                staff=p["staff_name"],
                name=p["department_name"] or p["staff_display"] or p["staff_name"],
                checkin=(
                    {"lon": coords[p["id"]].x, "lat": coords[p["id"]].y}
                    if coords[p["id"]].x is not None
                    else None
                ),
            )
            for p in parties
        ],
        photos=[
            PhotoOut(**p, url=f"/api/v1/whistles/{whistle_id}/photos/{p['id']}")
            for p in w["photo_list"]
        ],
        history=[HistoryOut(**h) for h in w["history_list"]],
    )


def _settings_limits(request: Request) -> dict[str, Any]:
    try:
        return service.limits(request.app.state.settings.whistle_limits)
    except IncidentError as exc:
        raise refuse(exc) from None


@router.post(
    "/whistles",
    response_model=WhistleOut,
    status_code=201,
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the whistle it blew"},
        **problem_responses(403, 422),
    },
)
def blow(
    body: BlowIn,
    request: Request,
    principal: CurrentUser,
    reach: Reach,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Blow a whistle (吹哨): a street commander a street whistle, a community officer a
    community whistle to the grid's members, a district commander a district whistle — for
    cases in the caller's area and/or a place. Addressees default to the proposal
    (`GET /api/v1/whistles/proposal`); deadlines come from the grade."""
    app = request.app
    req = service.BlowRequest(
        level=body.level, situation_code=body.situation_code, title=body.title,
        description=body.description, grade=body.grade, incidents=body.incidents,
        place=service.Place(**body.place.model_dump()) if body.place else None,
        parties=[service.PartyIn(**p.model_dump()) for p in body.parties]
        if body.parties is not None else None,
    )  # fmt: skip
    try:
        whistle_id, created = service.blow(
            app.state.engine, app.state.locate, principal, reach, req,
            limits_by_grade=_settings_limits(request), idempotency_key=idempotency_key,
        )  # fmt: skip
    except IncidentError as exc:
        raise refuse(exc) from None
    with app.state.engine.connect() as conn:
        out = read_whistle(conn, reach, principal, whistle_id)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers={"Location": f"/api/v1/whistles/{whistle_id}"},
    )


@router.get("/whistles/proposal", response_model=ProposalOut, responses=problem_responses(422))
def proposal(
    conn: Conn,
    request: Request,
    reach: Reach,
    situation: Annotated[str, Query(max_length=8, pattern=r"^[A-Za-z0-9]+$")],
    lon: float,
    lat: float,
    crs: Annotated[str, Query(max_length=16, pattern=r"^[A-Za-z0-9:_-]+$")] = "wgs84",
    level: Level = "street",
) -> ProposalOut:
    """Who a whistle for this situation at this point would address: per department kind the
    department whose service area covers the point (the local station first) or, for a
    community whistle, the grid's members of the situation's kinds; and kinds nobody covers."""
    try:
        sit = service.get_situation(conn, situation)
        point = service.place_geometry(service.Place(lon=lon, lat=lat, crs=crs))
        chain = service._chain(request.app.state.locate, point)
        parties, missing = service.propose(conn, level, sit, point, chain["grid"])
    except IncidentError as exc:
        raise refuse(exc) from None
    return ProposalOut(
        level=level, situation_code=sit["code"], grade=sit["grade"], grid_code=chain["grid"],
        parties=[{k: v for k, v in p.items() if k not in ("department_id", "staff_id")}
                 for p in parties], missing_kinds=missing,
    )  # fmt: skip


@router.post(
    "/whistles/{whistle_id}/actions",
    response_model=WhistleOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ActionIn.model_json_schema()},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    **ActionIn.model_json_schema()["properties"],
                    "photos": {"type": "array", "items": {"type": "string", "format": "binary"}},
                }}},
            },
        }
    },
    responses=problem_responses(403, 404, 409, 413, 415, 422),
)  # fmt: skip
async def act(
    whistle_id: WhistleId, request: Request, principal: CurrentUser, reach: Reach
) -> WhistleOut:
    """One step of the whistle loop (the service's table decides who may take it, when):
    `acknowledge`, `check_in` (with lon/lat; farther than the check-in radius is flagged),
    `progress` (a note, photos as multipart), `resolve` (lead), `confirm` (co-handler), `reopen`,
    `close` (the blowing unit, once every lead resolved and every co-handler confirmed),
    `feedback` (public satisfaction on a closed whistle), `escalate` (a second whistle one level
    up: the answer is the second whistle), `cancel`."""
    settings = request.app.state.settings
    body, photos = await json_or_multipart(request, ActionIn, settings.photo_max_count, 20)
    app = request.app
    try:
        for i, photo in enumerate(photos):
            check_photo(photo, settings.photo_max_bytes, i)
        second = await run_in_threadpool(
            lambda: service.act(
                app.state.engine,
                app.state.locate,
                principal,
                reach,
                whistle_id,
                service.WhistleAction(**body.model_dump()),
                photos=photos,
                photo_dir=settings.photos,
                checkin_radius_m=settings.checkin_radius_m,
                limits_by_grade=_settings_limits(request),
            )
        )
    except IncidentError as exc:
        raise refuse(exc) from None

    def answer() -> WhistleOut:
        with app.state.engine.connect() as conn:
            return read_whistle(conn, reach, principal, second or whistle_id)

    return await run_in_threadpool(answer)


@router.get("/whistles/{whistle_id}", response_model=WhistleOut, responses=problem_responses(404))
def get_whistle(
    whistle_id: WhistleId, conn: Conn, reach: Reach, principal: CurrentUser
) -> WhistleOut:
    """One whistle with its addressees (and their check-ins), photos, whole history and what
    the caller may do next."""
    return read_whistle(conn, reach, principal, whistle_id)


@router.get(
    "/whistles/{whistle_id}/photos/{photo_id}",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
        **problem_responses(404),
    },
)
def photo(
    whistle_id: WhistleId,
    photo_id: Annotated[int, Path(ge=1, le=2**62)],
    conn: Conn,
    reach: Reach,
    principal: CurrentUser,
) -> FileResponse:
    """A progress photo of a whistle the caller may see."""
    scope, params = service.scope_sql(reach, principal)
    row = conn.execute(
        text(
            "SELECT p.path, p.content_type FROM whistle_photo p JOIN whistle w "
            f"ON w.id = p.whistle_id WHERE p.id = :p AND w.id = :w AND {scope}"
        ),
        {**params, "p": photo_id, "w": whistle_id},
    ).first()
    if row is None or not FilePath(row.path).exists():
        raise not_found(f"no photo {photo_id} of whistle {whistle_id}")
    return FileResponse(row.path, media_type=row.content_type)


# -- lists and map data -------------------------------------------------------------------------


def _list_where(
    reach: Any,
    principal: Any,
    status: list[str] | None,
    grade: str | None,
    street: str | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    overdue: bool | None,
) -> tuple[list[str], dict[str, Any]]:
    scope, params = service.scope_sql(reach, principal)
    where = [scope]
    if status:
        where.append("w.status = ANY(:status)")
        params["status"] = list(status)
    if grade:
        where.append("w.grade = :grade")
        params["grade"] = grade
    if street:
        where.append("w.street_code LIKE :street")
        params["street"] = prefix_pattern(street)
    if since is not None:
        where.append("w.blown_at >= :since")
        params["since"] = since
    if until is not None:
        where.append("w.blown_at < :until")
        params["until"] = until
    if overdue is not None:
        where.append(("" if overdue else "NOT ") + service.OVERDUE_SQL)
    return where, params


StatusQuery = Annotated[list[Status] | None, Query(description="One or more statuses")]
StreetQuery = Annotated[str | None, Query(max_length=32, pattern=r"^\d+$")]
SinceQuery = Annotated[dt.datetime | None, Query(alias="from", description="Blown at or after")]
UntilQuery = Annotated[dt.datetime | None, Query(alias="to", description="Blown before")]


@router.get(
    "/whistles",
    response_model=WhistlePage,
    responses={
        200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}},
        **problem_responses(422),
    },
)
def list_whistles(
    conn: Conn,
    reach: Reach,
    principal: CurrentUser,
    status: StatusQuery = None,
    grade: Grade | None = None,
    street: StreetQuery = None,
    since: SinceQuery = None,
    until: UntilQuery = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
    fmt: Annotated[Literal["json", "geojson"], Query(alias="format")] = "json",
) -> Response:
    """Whistles the caller may see, newest first, a page at a time; `format=geojson` answers
    their places (the point on the place) with grade, status and the overdue flag."""
    where, params = _list_where(reach, principal, status, grade, street, since, until, overdue)
    after = decode_cursor(cursor)
    if after is not None:
        if not after.isdigit():
            raise invalid("cursor", "not a cursor returned by this endpoint")
        where.append("w.id < :after")
        params["after"] = int(after)
    params["n"] = limit + 1
    rows = conn.execute(
        text(
            "SELECT w.id, w.level, w.status, w.situation_code, w.grade, w.title, w.street_code, "
            "ST_X(w.place_point) AS lon, ST_Y(w.place_point) AS lat, w.blown_at, "
            f"w.report_due_at, w.resolve_due_at, {service.OVERDUE_SQL} AS overdue, w.parent_id "
            f"FROM whistle w WHERE {' AND '.join(where)} ORDER BY w.id DESC LIMIT :n"
        ),
        params,
    ).mappings().all()  # fmt: skip
    more = len(rows) > limit
    items = [WhistleSummary(**r) for r in rows[:limit]]
    next_cursor = encode_cursor(str(items[-1].id)) if more else None
    if fmt == "geojson":
        features = [
            {"type": "Feature", "id": i.id,
             "geometry": {"type": "Point", "coordinates": [i.lon, i.lat]},
             "properties": i.model_dump(mode="json", exclude={"lon", "lat"})}
            for i in items
        ]  # fmt: skip
        body = {"type": "FeatureCollection", "next_cursor": next_cursor, "features": features}
        return Response(json.dumps(body, ensure_ascii=False), media_type="application/geo+json")
    return JSONResponse(WhistlePage(items=items, next_cursor=next_cursor).model_dump(mode="json"))


_MAP_SQL = f"""
WITH shown AS (
    SELECT w.*, {service.OVERDUE_SQL} AS overdue FROM whistle w
    WHERE {{where}} AND (w.status IN ('blown', 'responding', 'resolved')
                         OR w.ended_at >= now() - make_interval(days => :days))
    ORDER BY w.id DESC LIMIT 2000
)
SELECT json_build_object('type', 'Feature', 'id', 'whistle-' || w.id,
    'geometry', ST_AsGeoJSON(w.place_point, 7)::json,
    'properties', json_build_object('kind', 'whistle', 'whistle_id', w.id, 'level', w.level,
        'status', w.status, 'grade', w.grade, 'title', w.title, 'situation', w.situation_code,
        'overdue', w.overdue, 'blown_at', w.blown_at, 'parent_id', w.parent_id,
        'area', CASE WHEN GeometryType(w.place) = 'POINT' THEN NULL
                     ELSE ST_AsGeoJSON(w.place, 7)::json END))::text AS feature
FROM shown w
UNION ALL
SELECT json_build_object('type', 'Feature', 'id', 'check-in-' || p.id,
    'geometry', json_build_object('type', 'LineString', 'coordinates', json_build_array(
        json_build_array(ST_X(p.checkin), ST_Y(p.checkin)),
        json_build_array(ST_X(w.place_point), ST_Y(w.place_point)))),
    'properties', json_build_object('kind', 'check_in', 'whistle_id', w.id,
        'department', coalesce(d.code, s.name), 'name', coalesce(d.name, s.display_name),
        'role', p.role, 'arrived_at', p.arrived_at, 'distance_m', round(
            p.checkin_distance_m::numeric, 1), 'far', p.checkin_far,
        'late', p.arrived_at > w.report_due_at, 'grade', w.grade, 'status', w.status))::text
FROM shown w JOIN whistle_party p ON p.whistle_id = w.id
LEFT JOIN department d ON d.id = p.department_id LEFT JOIN staff s ON s.id = p.staff_id
WHERE p.checkin IS NOT NULL
"""


@router.get(
    "/whistles-map",
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
def whistle_map(
    conn: Conn,
    reach: Reach,
    principal: CurrentUser,
    days: Annotated[int, Query(ge=0, le=366, description="Ended whistles of the last N days")] = 7,
    street: StreetQuery = None,
) -> Response:
    """The wall's whistle layer as GeoJSON: every open whistle and those ended in the last
    `days` (kind `whistle`: grade, status, overdue; a polygon place as `area`), and each
    addressee's check-in as a line from where it checked in to the place (kind `check_in`:
    distance, far, late). At most the 2,000 newest whistles."""
    where, params = _list_where(reach, principal, None, None, street, None, None, None)
    rows = conn.execute(
        text(_MAP_SQL.format(where=" AND ".join(where))), {**params, "days": days}
    ).scalars()  # fmt: skip
    body = '{"type":"FeatureCollection","features":[' + ",".join(rows) + "]}"
    return Response(body, media_type="application/geo+json")


@router.get("/whistle-situations", response_model=list[SituationOut])
def situations(conn: Conn) -> list[SituationOut]:
    """The call-situation catalogue (吹哨情形): five classes, each situation with its default
    grade, lead and co-handling department kinds and the grid member kinds it calls."""
    rows = conn.execute(text("SELECT * FROM whistle_situation ORDER BY code")).mappings()
    return [SituationOut(**r) for r in rows]


# -- supervision and notifications ------------------------------------------------------------


class SupervisionOut(BaseModel):
    id: int
    whistle_id: int
    title: str
    party: str | None
    step: str
    due_at: dt.datetime
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    note: str


@router.get("/supervisions", response_model=list[SupervisionOut])
def supervisions(
    conn: Conn,
    reach: Reach,
    principal: CurrentUser,
    open_only: Annotated[bool, Query(alias="open")] = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[SupervisionOut]:
    """The district supervision office's records (督办): one per step past its deadline, open
    until the step is done or the whistle ends."""
    scope, params = service.scope_sql(reach, principal)
    rows = conn.execute(
        text(
            "SELECT v.id, v.whistle_id, w.title, coalesce(d.code, s.name) AS party, v.step, "
            "v.due_at, v.opened_at, v.closed_at, v.note FROM supervision v "
            "JOIN whistle w ON w.id = v.whistle_id "
            "LEFT JOIN whistle_party p ON p.id = v.party_id "
            "LEFT JOIN department d ON d.id = p.department_id "
            "LEFT JOIN staff s ON s.id = p.staff_id "
            f"WHERE {scope} AND (NOT :open OR v.closed_at IS NULL) ORDER BY v.id DESC LIMIT :n"
        ),
        {**params, "open": open_only, "n": limit},
    ).mappings()
    return [SupervisionOut(**r) for r in rows]


@router.post("/supervisions/run")
def run_supervision(request: Request) -> dict[str, int]:
    """Run one supervision pass now (the scheduler runs one every
    GRIDMAP_SUPERVISION_INTERVAL_S): `opened` records, `closed` ones, `skipped` 1 when another
    pass held the lock."""
    return service.supervise(request.app.state.engine)


class NotificationOut(BaseModel):
    id: int
    created_at: dt.datetime
    whistle_id: int | None
    subject: str
    body: str


@router.get("/notifications", response_model=list[NotificationOut])
def notifications(
    conn: Conn,
    principal: CurrentUser,
    reach: Reach,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationOut]:
    """The caller's notifications, newest first: those to their role within their area, and
    for a department officer those to their department."""
    rows = conn.execute(
        text(
            "SELECT n.id, n.created_at, n.whistle_id, n.subject, n.body FROM notification n "
            "LEFT JOIN department d ON d.id = n.recipient_department_id "
            "WHERE (n.recipient_role = :role AND n.recipient_region LIKE :region) "
            "OR d.code = ANY(:departments) ORDER BY n.id DESC LIMIT :n"
        ),
        {"role": principal.role, "region": prefix_pattern(principal.region_code),
         "departments": list(reach.departments or ()), "n": limit},
    ).mappings()  # fmt: skip
    return [NotificationOut(**r) for r in rows]


# -- evaluation (下考上) ---------------------------------------------------------------------

PERIOD_PATTERN = r"^20[0-9]{2}(-(0[1-9]|1[0-2])|-Q[1-4])?$"
Period = Annotated[str, Path(pattern=PERIOD_PATTERN, description="2026-10, 2026-Q4 or 2026")]


def period_bounds(period: str) -> tuple[dt.datetime, dt.datetime]:
    """A month (2026-10), quarter (2026-Q4) or year (2026) in Beijing time."""
    if not re.fullmatch(PERIOD_PATTERN, period):
        raise invalid("period", "a month (2026-10), a quarter (2026-Q4) or a year (2026)")
    year = int(period[:4])
    if len(period) == 4:
        first, months = 1, 12
    elif "Q" in period:
        first, months = 3 * int(period[-1]) - 2, 3
    else:
        first, months = int(period[5:7]), 1
    start = dt.datetime(year, first, 1, tzinfo=SHANGHAI)
    after = first + months
    end = dt.datetime(year + (after - 1) // 12, (after - 1) % 12 + 1, 1, tzinfo=SHANGHAI)
    return start, end


_PARTS_SQL = """
SELECT w.street_code, d.code AS department_code, d.name AS department_name,
       d.parent_id IS NOT NULL AS agency, w.id AS whistle_id,
       (p.arrived_at IS NOT NULL OR w.report_due_at < :now) AS arrival_due,
       coalesce(p.arrived_at <= w.report_due_at, false) AS arrived_on_time,
       (p.done_at IS NOT NULL OR w.resolve_due_at < :now) AS resolution_due,
       coalesce(p.done_at <= w.resolve_due_at, false) AS resolved_on_time,
       w.feedback_score AS satisfaction
FROM whistle w JOIN whistle_party p ON p.whistle_id = w.id
JOIN department d ON d.id = p.department_id
WHERE w.blown_at >= :start AND w.blown_at < :end AND w.status <> 'cancelled'
  AND w.level IN ('street', 'district') AND w.street_code IS NOT NULL
  AND p.role IN ('lead', 'co')
ORDER BY w.street_code, d.code, w.id
"""


def evaluate_period(conn: Connection, period: str, settings: Any) -> scoring.Evaluation:
    """The period's whistle records and the streets' ratings, scored with the configured
    weights, quotas and shares. Agencies (派出机构) are departments with a parent (a street's
    station under its bureau)."""
    start, end = period_bounds(period)
    parts = [
        scoring.PartyRecord(**r)
        for r in conn.execute(
            text(_PARTS_SQL), {"start": start, "end": end, "now": dt.datetime.now(dt.UTC)}
        ).mappings()
    ]
    ratings = [
        scoring.StreetRating(
            r.street_code, r.code,
            tuple(scoring.Deduction(float(d["points"]), d["reason"]) for d in r.deductions),
        )
        for r in conn.execute(
            text("SELECT r.street_code, d.code, r.deductions FROM street_rating r "
                 "JOIN department d ON d.id = r.department_id WHERE r.period = :p"),
            {"p": period},
        )
    ]  # fmt: skip
    try:
        return scoring.evaluate(
            period, parts, ratings, weights=scoring.Weights(*settings.eval_weights),
            quotas=scoring.Quotas(*settings.eval_quotas),
            share=scoring.StreetShare(settings.eval_street_share_agency,
                                      settings.eval_street_share_department),
        )  # fmt: skip
    except scoring.EvaluationError as exc:
        raise invalid(exc.field, exc.message) from None


@router.get(
    "/evaluations/{period}",
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(422)},
)
def evaluation(
    period: Period,
    conn: Conn,
    request: Request,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    table: Literal["departments", "pairs"] = "departments",
) -> Response:
    """The streets' evaluation of departments (下考上) for a month, quarter or year: per street
    and department, completion from the whistle records (on-time arrival and resolution),
    public satisfaction and the street's perceived-service score (100 minus deductions, each
    with its reason), weighted (GRIDMAP_EVAL_WEIGHTS, default 50/20/30); per department the
    mean over streets, rank, tier by quota (GRIDMAP_EVAL_QUOTAS, default 60/30/10 %) and the
    points it carries into the annual score. `format=csv` (UTF-8 with BOM, for Excel) gives the
    `departments` or the `pairs` table."""
    ev = evaluate_period(conn, period, request.app.state.settings)
    if fmt == "csv":
        body = scoring.evaluation_csv(ev) if table == "departments" else scoring.pairs_csv(ev)
        return Response(
            "\ufeff" + body, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition":
                     f'attachment; filename="evaluation-{period}-{table}.csv"'},
        )  # fmt: skip
    out = {
        "period": ev.period,
        "weights": vars(ev.weights),
        "quotas": vars(ev.quotas),
        "share": vars(ev.share),
        "departments": [_plain(d) for d in ev.departments],
        "pairs": [_plain(p) for p in ev.pairs],
    }
    return JSONResponse(out)


def _plain(score: Any) -> dict[str, Any]:
    out = dict(vars(score))
    if "deductions" in out:
        out["deductions"] = [vars(d) for d in out["deductions"]]
    return out


class DeductionIn(BaseModel):
    points: float = Field(gt=0, le=100)
    reason: str = Field(max_length=1000, description="Required: every deduction is explained")

    _text = field_validator("reason")(printable)


class RatingIn(BaseModel):
    deductions: list[DeductionIn] = Field([], max_length=50)


@router.put(
    "/evaluations/{period}/ratings/{street}/{department}",
    responses=problem_responses(404, 422),
)
def rate(
    period: Period,
    street: Annotated[str, Path(max_length=32, pattern=r"^\d+$")],
    department: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")],
    body: RatingIn,
    request: Request,
    principal: CurrentUser,
) -> dict[str, Any]:
    """A street's perceived-service rating of a department for a period: its deductions from
    100, each with a written reason (replaces the street's earlier rating of that period).
    Only the street's own commander (or an admin) rates it."""
    period_bounds(period)
    if not street.startswith(principal.region_code) or (
        principal.role == "street_commander" and street != principal.region_code
    ):
        raise not_found(f"no street {street} in your area")
    deductions = [scoring.Deduction(d.points, d.reason) for d in body.deductions]
    try:
        scoring.check_deductions(deductions)
    except scoring.EvaluationError as exc:
        raise invalid(exc.field, exc.message) from None
    with request.app.state.engine.begin() as conn:
        dept = conn.execute(
            text("SELECT id FROM department WHERE code = :c"), {"c": department}
        ).scalar_one_or_none()  # fmt: skip
        if dept is None:
            raise not_found(f"no department {department}")
        known = conn.execute(
            text("SELECT 1 FROM region WHERE code = :s AND level = 'street' LIMIT 1"),
            {"s": street},
        ).first()  # fmt: skip
        if known is None:
            raise not_found(f"no street {street}")
        conn.execute(
            text(
                "INSERT INTO street_rating (period, street_code, department_id, deductions, "
                "rated_by, rated_at) VALUES (:p, :s, :d, CAST(:x AS jsonb), :by, now()) "
                "ON CONFLICT (period, street_code, department_id) DO UPDATE SET "
                "deductions = EXCLUDED.deductions, rated_by = EXCLUDED.rated_by, rated_at = now()"
            ),
            {"p": period, "s": street, "d": dept, "by": principal.id,
             "x": json.dumps([vars(d) for d in deductions], ensure_ascii=False)},
        )  # fmt: skip
    return {
        "period": period, "street_code": street, "department_code": department,
        "deductions": [vars(d) for d in deductions],
        "perceived": max(0.0, 100 - sum(d.points for d in deductions)),
    }  # fmt: skip
