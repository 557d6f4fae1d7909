"""Open311 GeoReport v2 (JSON only): the class catalogue as services, cases as service requests.

A thin translation over the native case loop — nothing here decides anything the native API
does not: intake goes through ``app.services.incidents.report_incident``, reads through the one
scope filter (``scope_sql``), and every route has its action in ``app.api.auth.ROUTE_ACTIONS``.

Mapping (GeoReport field ← gridmap):

- service: ``service_code`` ← class code, ``service_name`` ← class name (``?lang=en``: English),
  ``description`` ← filing condition (立案条件), ``group`` ← major class name, ``metadata`` false,
  ``type`` realtime;
- request: ``service_request_id`` ← case id (a string), ``status`` ← open, or closed for the
  terminal states closed / not_filed / merged, ``service_notice`` ← the exact gridmap state,
  ``status_notes`` ← the note of the last history row, ``agency_responsible`` ← department code,
  ``requested_datetime`` ← reported_at, ``updated_datetime`` ← the last history row,
  ``expected_datetime`` ← the current step's deadline, ``lat``/``long`` ← the stored point
  (CGCS2000, WGS84 to well under a metre), ``media_url`` ← the first photo (bearer-protected).

Errors stay RFC 9457 problem+json (the project's rule) and carry the GeoReport error list too,
as ``open311_errors: [{code, description}]``; invalid input is answered 422 and listed with
GeoReport's code for it, 400.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import Connection, text
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.auth import CurrentUser, Reach
from app.api.deps import (
    BBOX_PATTERN,
    Conn,
    decode_cursor,
    encode_cursor,
    parse_bbox,
    parse_moment,
)
from app.api.problems import (
    MEDIA_TYPE,
    Problem,
    ProblemDetail,
    invalid,
    not_found,
    problem_response,
    problem_responses,
    validation_problem,
)
from app.services import incidents as service
from app.services.incidents import IncidentError, Report, scope_sql

MAX_BODY = 64 * 1024  # bytes: a GeoReport request is a few short fields
MAX_IDS = 1000
MAX_ID = 2**62
DEFAULT_DAYS = 90  # GeoReport: without start_date and end_date, the most recent 90 days

OPTIONAL = ("address_string", "email", "phone", "first_name", "last_name", "media_url")
# Native field names → GeoReport's, in errors raised by the shared intake.
FIELD_NAMES = {"class_code": "service_code", "lon": "long", "address": "address_string"}


# -- errors -------------------------------------------------------------------------------------


class Open311Error(BaseModel):
    code: int = Field(description="GeoReport's code: the HTTP status, 400 for invalid input")
    description: str


class Open311Problem(ProblemDetail):
    """RFC 9457 problem details with the GeoReport v2 error list beside them."""

    open311_errors: list[Open311Error] = Field(description="The same error(s), GeoReport style")


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    responses = problem_responses(*statuses)
    for status, response in responses.items():
        response["content"] = {MEDIA_TYPE: {"schema": Open311Problem.model_json_schema()}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return responses


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = [
        {
            "field": ".".join(
                str(p) for p in e["loc"] if p not in ("query", "path", "body", "header", "cookie")
            )
            or "request",
            "message": e["msg"],
        }
        for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "invalid-parameter", detail, errors=errors)


def _with_open311_errors(problem: Problem, request: Request) -> JSONResponse:
    """The problem document, plus one GeoReport error per offending field (or the detail)."""
    code = 400 if problem.status == 422 else problem.status
    descriptions = [
        e["message"]
        if e["message"].startswith(f"{e['field']}:")
        else f"{e['field']}: {e['message']}"
        for e in problem.extra.get("errors") or []
    ] or [problem.detail]
    problem.extra["open311_errors"] = [{"code": code, "description": d} for d in descriptions]
    return problem_response(problem, request)


class Open311Route(APIRoute):
    """Every error of these routes — authentication and validation included — also carries
    the GeoReport error list."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Problem as exc:
                return _with_open311_errors(exc, request)
            except RequestValidationError as exc:
                return _with_open311_errors(_validation_problem(exc), request)

        return handle


router = APIRouter(
    prefix="/open311/v2",
    tags=["open311"],
    route_class=Open311Route,
    responses=_problems(401, 403, 404, 422),
)


# -- models -------------------------------------------------------------------------------------


class Service(BaseModel):
    service_code: str = Field(examples=["E0101"])
    service_name: str
    description: str = Field(description="The class's filing condition (立案条件)")
    metadata: bool = Field(description="Always false: no extra attributes to fill in")
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str = Field(description="Comma-separated: the other language's name, kind, major")
    group: str = Field(description="The major class")


class ServiceRequest(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str | None = Field(description="The note of the case's last history row")
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None = Field(description="The department the case is dispatched to")
    service_notice: str = Field(description="The exact gridmap state, e.g. 已派遣 dispatched")
    requested_datetime: dt.datetime
    updated_datetime: dt.datetime
    expected_datetime: dt.datetime | None = Field(description="The current step's deadline")
    address: str | None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float = Field(description="CGCS2000 (WGS84 to well under a metre)")
    long: float = Field(description="CGCS2000 (WGS84 to well under a metre)")
    media_url: str | None = Field(description="The first photo (send the bearer token)")


class RequestCreated(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: None = None


def _text_ok(value: str | None) -> str | None:
    """PostgreSQL text holds neither NUL nor lone surrogates: refuse them as input errors."""
    if value is not None:
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode text") from None
    return value


class RequestIn(BaseModel):
    service_code: str = Field(min_length=1, max_length=8, examples=["E0101"])
    lat: float = Field(
        examples=[39.17], json_schema_extra={"minimum": -90, "maximum": 90}, description="WGS84"
    )
    long: float = Field(
        examples=[117.163], json_schema_extra={"minimum": -180, "maximum": 180}, description="WGS84"
    )
    address_string: str | None = Field(None, max_length=500)
    description: str = Field(min_length=1, max_length=4000)
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=40)
    first_name: str | None = Field(None, max_length=100)
    last_name: str | None = Field(None, max_length=100)
    media_url: str | None = Field(
        None, max_length=2000, description="Ignored: send photos through POST /api/v1/incidents"
    )

    _clean = field_validator(
        "service_code", "address_string", "description", "email", "phone", "first_name",
        "last_name", "media_url",
    )(_text_ok)  # fmt: skip

    def contact(self) -> str | None:
        parts = [
            f"{name}: {value}"
            for name in ("last_name", "first_name", "phone", "email")
            if (value := getattr(self, name))
        ]
        return "; ".join(parts) or None


POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {"schema": RequestIn.model_json_schema()},
            "application/json": {"schema": RequestIn.model_json_schema()},
        },
    }
}


# -- queries ------------------------------------------------------------------------------------

_REQUEST_SQL = """
SELECT i.id, i.status, i.class_code, c.name_zh, c.name_en, i.description, i.department_code,
       i.reported_at, i.due_at, i.address, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat,
       COALESCE(h.at, i.reported_at) AS updated_at, NULLIF(h.note, '') AS note,
       (SELECT p.id FROM incident_photo p WHERE p.incident_id = i.id ORDER BY p.id LIMIT 1)
           AS photo_id
FROM incident i JOIN incident_class c ON c.code = i.class_code
LEFT JOIN LATERAL (SELECT at, note FROM incident_history WHERE incident_id = i.id
                   ORDER BY id DESC LIMIT 1) h ON true
"""


def _label(status: str, lang: str) -> str:
    zh, _, en = service.STATES[status].partition(" ")
    return en if lang == "en" else zh


def _request(row: Any, lang: str, base_url: str) -> ServiceRequest:
    photo = row["photo_id"]
    return ServiceRequest(
        service_request_id=str(row["id"]),
        status="closed" if row["status"] in service.TERMINAL else "open",
        status_notes=row["note"],
        service_name=row["name_en"] if lang == "en" else row["name_zh"],
        service_code=row["class_code"],
        description=row["description"],
        agency_responsible=row["department_code"],
        service_notice=_label(row["status"], lang),
        requested_datetime=row["reported_at"],
        updated_datetime=row["updated_at"],
        expected_datetime=row["due_at"],
        address=row["address"],
        lat=row["lat"],
        long=row["lon"],
        media_url=(
            f"{base_url}/api/v1/incidents/{row['id']}/photos/{photo}" if photo is not None else None
        ),
    )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _ids(value: str) -> list[int]:
    ids = [int(v) for v in value.split(",")]
    if len(ids) > MAX_IDS:
        raise invalid("service_request_id", f"at most {MAX_IDS} ids")
    if any(not 1 <= i <= MAX_ID for i in ids):
        raise invalid("service_request_id", "not an id of this server")
    return ids


def _codes(conn: Connection, value: str) -> list[str]:
    codes = list(dict.fromkeys(value.split(",")))
    known = set(
        conn.execute(
            text("SELECT code FROM incident_class WHERE code = ANY(:c)"), {"c": codes}
        ).scalars()
    )
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise invalid("service_code", f"unknown service {', '.join(unknown)}; see services.json")
    return codes


# -- routes -------------------------------------------------------------------------------------

Lang = Annotated[
    Literal["zh", "en"], Query(description="Names and notices in Chinese (default) or English")
]


@router.get("/services.json", response_model=list[Service])
def services(conn: Conn, lang: Lang = "zh") -> list[Service]:
    """GeoReport *GET Service List*: every class of the catalogue (案件分类) as a service."""
    rows = conn.execute(text("SELECT * FROM incident_class ORDER BY code")).mappings()
    out = []
    for r in rows:
        en = lang == "en"
        other = r["name_zh"] if en else r["name_en"]
        words = [other, r["kind"], r["code"][:3]] + (["urgent"] if r["urgent"] else [])
        out.append(
            Service(
                service_code=r["code"],
                service_name=r["name_en"] if en else r["name_zh"],
                description=r["filing_condition"],
                metadata=False,
                type="realtime",
                keywords=", ".join(words),
                group=r["major_name_en"] if en else r["major_name_zh"],
            )
        )
    return out


_IDS = r"^\d{1,19}(,\d{1,19})*$"
_CODES = r"^[A-Za-z0-9]{1,8}(,[A-Za-z0-9]{1,8})*$"


@router.get(
    "/requests.json",
    response_model=list[ServiceRequest],
    responses={
        200: {
            "description": "The page of requests, newest first",
            "headers": {
                "Link": {
                    "description": 'The next page, `<url>; rel="next"` (absent on the last)',
                    "schema": {"type": "string"},
                }
            },
        }
    },
)
def list_requests(
    request: Request,
    conn: Conn,
    reach: Reach,
    service_request_id: Annotated[
        str | None,
        Query(
            max_length=20 * MAX_IDS,
            pattern=_IDS,
            description="Comma-separated ids; overrides every other filter (GeoReport)",
        ),
    ] = None,
    service_code: Annotated[
        str | None,
        Query(max_length=9 * 200, pattern=_CODES, description="Comma-separated service codes"),
    ] = None,
    start_date: Annotated[
        str | None,
        Query(max_length=40, description="Requested at or after (ISO 8601)"),
    ] = None,
    end_date: Annotated[
        str | None,
        Query(max_length=40, description="Requested at or before (ISO 8601)"),
    ] = None,
    status: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=r"^(open|closed)(,(open|closed))*$",
            description="open, closed or both (comma-separated)",
        ),
    ] = None,
    bbox: Annotated[
        str | None,
        Query(pattern=BBOX_PATTERN, description="Extension: min_long,min_lat,max_long,max_lat"),
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=1000, description="Extension: page length")] = 100,
    page: Annotated[
        int | None,
        Query(ge=1, le=1_000_000, description="Extension: page number (offset paging)"),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="Extension: keyset paging, from the `Link` header of the previous page",
        ),
    ] = None,
    lang: Lang = "zh",
) -> Response:
    """GeoReport *GET Service Requests*: cases in the caller's scope, newest first.

    Standard filters: `service_request_id` (which then overrides the others), `service_code`,
    `start_date`/`end_date` on the requested time (without either, the last 90 days, as the
    spec says), `status` (open, closed; closed means closed, not filed or merged). Extensions:
    `bbox` and paging, `page_size` (≤ 1000, default 100) with either `page` or — better, stable
    while cases arrive — the keyset `cursor` that the `Link: <…>; rel="next"` header carries."""
    if page is not None and cursor is not None:
        raise invalid("cursor", "give either page or cursor, not both")
    where = [scope_sql(reach)]
    params: dict[str, Any] = {**reach.params, "n": page_size + 1}
    if service_request_id is not None:
        where.append("i.id = ANY(:ids)")
        params["ids"] = _ids(service_request_id)
    else:
        if service_code is not None:
            where.append("i.class_code = ANY(:codes)")
            params["codes"] = _codes(conn, service_code)
        start, end = parse_moment(start_date, "start_date"), parse_moment(end_date, "end_date")
        if start is not None and end is not None and end < start:
            raise invalid("end_date", "must not be before start_date")
        if start is None and end is None:
            start = dt.datetime.now(dt.UTC) - dt.timedelta(days=DEFAULT_DAYS)
        if start is not None:
            where.append("i.reported_at >= :start")
            params["start"] = start
        if end is not None:
            where.append("i.reported_at <= :end")
            params["end"] = end
        wanted = set(status.split(",")) if status else {"open", "closed"}
        if wanted != {"open", "closed"}:
            negate = "" if wanted == {"closed"} else "NOT "
            where.append(f"{negate}(i.status = ANY(:terminal))")
            params["terminal"] = list(service.TERMINAL)
        box = parse_bbox(bbox)
        if box:
            where.append("i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)")
            params.update(x0=box[0], y0=box[1], x1=box[2], y1=box[3])
    after = decode_cursor(cursor)
    if after is not None:
        if not after.isdigit() or int(after) > MAX_ID:
            raise invalid("cursor", "not a cursor returned by this endpoint")
        where.append("i.id < :after")
        params["after"] = int(after)
    params["offset"] = ((page or 1) - 1) * page_size
    sql = f"{_REQUEST_SQL} WHERE {' AND '.join(where)} ORDER BY i.id DESC LIMIT :n OFFSET :offset"
    rows = conn.execute(text(sql), params).mappings().all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    base = _base(request)
    body = [_request(r, lang, base).model_dump(mode="json") for r in rows]
    headers = {}
    if more:
        url = request.url.remove_query_params(["page", "cursor"])
        nxt = (
            url.include_query_params(page=page + 1)
            if page is not None
            else url.include_query_params(cursor=encode_cursor(str(rows[-1]["id"])))
        )
        headers["Link"] = f'<{nxt}>; rel="next"'
    return JSONResponse(body, headers=headers)


@router.get("/requests/{service_request_id}.json", response_model=list[ServiceRequest])
def get_request(
    request: Request,
    conn: Conn,
    reach: Reach,
    service_request_id: Annotated[int, Path(ge=1, le=MAX_ID, examples=[1])],
    lang: Lang = "zh",
) -> list[ServiceRequest]:
    """GeoReport *GET Service Request*: one case, as a one-element list (404 outside your
    scope, exactly as one that does not exist)."""
    row = conn.execute(
        text(f"{_REQUEST_SQL} WHERE i.id = :id AND {scope_sql(reach)}"),
        {**reach.params, "id": service_request_id},
    ).mappings().first()  # fmt: skip
    if row is None:
        raise not_found(f"no service request {service_request_id}")
    return [_request(row, lang, _base(request))]


async def _body(request: Request) -> RequestIn:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", "application/json"):
        raise Problem(
            415, "unsupported-media-type",
            "send application/x-www-form-urlencoded (GeoReport) or application/json; "
            f"got {kind or 'nothing'} (photos: POST /api/v1/incidents)",
        )  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise Problem(413, "payload-too-large", f"the body is over {MAX_BODY:,} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise Problem(413, "payload-too-large", f"the body is over {MAX_BODY:,} bytes")
    data: Any
    try:
        if kind == "application/json":
            data = json.loads(bytes(raw))
        else:
            fields = parse_qsl(
                bytes(raw).decode("ascii"), keep_blank_values=True, encoding="utf-8",
                errors="strict", max_num_fields=100,
            )  # fmt: skip
            # A blank optional field is an absent one.
            data = {k: v for k, v in fields if v != "" or k not in OPTIONAL}
    except (ValueError, UnicodeError):
        raise invalid("body", f"not a valid {kind} body") from None
    try:  # JSON as typed (a number is a number); form fields are all text, parsed leniently
        return RequestIn.model_validate(data, strict=kind == "application/json")
    except ValidationError as exc:
        raise validation_problem(exc.errors(), whole="body") from None


def _refuse(exc: IncidentError) -> Problem:
    """The intake's refusal, with the native field names turned into GeoReport's."""
    extra = dict(exc.extra)
    detail = exc.detail
    if exc.field is not None:
        field = FIELD_NAMES.get(exc.field, exc.field)
        if detail.startswith(f"{exc.field}:"):
            detail = f"{field}:{detail[len(exc.field) + 1 :]}"
        extra["errors"] = [{"field": field, "message": detail}]
    return Problem(exc.status, exc.kind, detail, **extra)


def _notice(place: Any, lang: str) -> str:
    if place["out_of_area"]:
        return (
            "reported; outside every grid, kept for the district to assign"
            if lang == "en"
            else "已上报；不在任何网格内，待区指挥中心人工分派"
        )
    return (
        f"reported on grid {place['grid_code']}; awaiting filing"
        if lang == "en"
        else f"已上报，所在网格 {place['grid_code']}，待立案"
    )


@router.post(
    "/requests.json",
    response_model=list[RequestCreated],
    status_code=201,
    openapi_extra=POST_BODY,
    responses={
        200: {
            "model": list[RequestCreated],
            "description": "A retry with the same Idempotency-Key: the request it made",
        },
        **_problems(409, 413, 415, 503),
    },
)
async def create_request(
    request: Request,
    principal: CurrentUser,
    reach: Reach,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="A client's key: a retry never makes a second case"),
    ] = None,
    lang: Lang = "zh",
) -> Response:
    """GeoReport *POST Service Request* (form-encoded, or JSON): a case from the mobile-app
    source, located onto its grid. `service_code`, `lat`, `long` (WGS84) and `description` are
    required; `address_string` is kept as the address; `first_name`, `last_name`, `phone` and
    `email` as the reporter's contact. `media_url` is ignored: photos go through
    `POST /api/v1/incidents`. An unknown `service_code`, a bad `lat`/`long` → 422 naming it."""
    body = await _body(request)
    report = Report(
        lon=body.long, lat=body.lat, crs="wgs84", class_code=body.service_code, source="app",
        description=body.description, address=body.address_string, contact=body.contact(),
    )  # fmt: skip
    engine = request.app.state.engine
    try:
        taken = await run_in_threadpool(
            service.report_incident, engine, request.app.state.locate, principal, reach, report,
            photo_dir=request.app.state.settings.photos, idempotency_key=idempotency_key,
        )  # fmt: skip
    except IncidentError as exc:
        raise _refuse(exc) from None

    def place() -> Any:
        if taken.case is not None:
            return taken.case
        with engine.connect() as conn:
            return (
                conn.execute(
                    text("SELECT grid_code, out_of_area FROM incident WHERE id = :i"),
                    {"i": taken.id},
                )
                .mappings()
                .one()
            )

    incident_id, created = taken.id, taken.created
    made = RequestCreated(
        service_request_id=str(incident_id),
        service_notice=_notice(await run_in_threadpool(place), lang),
    )
    return JSONResponse(
        [made.model_dump(mode="json")],
        status_code=201 if created else 200,
        headers={"Location": f"/open311/v2/requests/{incident_id}.json"},
    )
