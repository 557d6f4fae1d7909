"""Exports over HTTP: the planners' analyses and the raw cases as GeoPackage, CSV or GeoJSON
files. Small ones answer the file at once; one estimated above ``GRIDMAP_EXPORT_ROW_LIMIT`` rows
becomes a background job (202) to poll, whose file is downloaded when it is done. Thin: check
the request, call ``app.services.exports``, answer the file or the job."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection
from starlette.background import BackgroundTask

from app.api.analytics import checked_region
from app.api.auth import CurrentUser, Reach
from app.api.deps import Conn, get_settings
from app.api.problems import Problem, invalid, not_found, problem_responses
from app.services import exports as service
from app.services.analytics import AnalyticsError
from app.settings import Settings

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])
SettingsDep = Annotated[Settings, Depends(get_settings)]
RETRY_AFTER_S = 2


class JobAccepted(BaseModel):
    """A background export, queued."""

    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    estimate: int = Field(description="Rows estimated before running (over the row limit)")
    href: str = Field(description="Its status: GET this until `status` is done or failed")


class JobStatus(BaseModel):
    """A background export and how it went."""

    id: uuid.UUID
    kind: str
    format: str
    params: dict[str, Any] = Field(description="The export as resolved when it was asked for")
    status: Literal["queued", "running", "done", "failed"]
    rows: int | None = Field(None, description="Rows written (done)")
    bytes: int | None = Field(None, description="Size of the file (done)")
    reason: str | None = Field(
        None, description="Why the file is empty: the period held no data (done)"
    )
    error: str | None = Field(None, description="Why it failed (failed)")
    created_at: dt.datetime
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    href: str
    download: str | None = Field(None, description="The file, once done")


FILE_CONTENT: dict[str, Any] = {
    "application/geopackage+sqlite3": {"schema": {"type": "string", "format": "binary"}},
    "text/csv": {"schema": {"type": "string"}},
    "application/geo+json": {"schema": {"type": "object"}},
}
FILE_HEADERS = {
    "Content-Disposition": {
        "description": "attachment; filename=<kind>_<region>_<level>_<from>-<to>.<suffix>",
        "schema": {"type": "string"},
    },
    "X-Gridmap-Rows": {"description": "Rows written", "schema": {"type": "integer"}},
    "X-Gridmap-Reason": {
        "description": "Only when the file is empty: why (the period held no data); "
        "percent-encoded UTF-8",
        "schema": {"type": "string"},
    },
}


def _href(job_id: uuid.UUID) -> str:
    return f"{router.prefix}/{job_id}"


def _file_response(path: Path, name: str, fmt: str, rows: int, reason: str | None, **kw: Any):  # type: ignore[no-untyped-def]
    headers = {"X-Gridmap-Rows": str(rows)}
    if reason:
        headers["X-Gridmap-Reason"] = quote(reason, safe=" ,.:;()'/-_")
    return FileResponse(
        path, media_type=service.MEDIA_TYPES[fmt], filename=name, headers=headers, **kw
    )


@router.post(
    "",
    response_model=None,
    responses={
        200: {
            "description": "The file (within the row limit)",
            "content": FILE_CONTENT,
            "headers": FILE_HEADERS,
        },
        202: {
            "description": "Over the row limit: a background job (Location: its status)",
            "model": JobAccepted,
            "headers": {"Location": {"schema": {"type": "string"}}},
        },
        **problem_responses(404, 422),
    },
)
def create_export(
    body: service.ExportRequest,
    request: Request,
    conn: Conn,
    reach: Reach,
    principal: CurrentUser,
    settings: SettingsDep,
) -> Any:
    """Export an analysis — `hotspots`, `emerging`, `series`, `compare`, `density` — or the
    raw `cases` of a period (one row each) as `gpkg` (GeoPackage: one layer named after the
    kind, the description as layer metadata and in a table `meta`), `csv` (UTF-8 with a BOM
    for Excel; region polygons left out, `lon`/`lat` kept for points, Beijing times) or
    `geojson` (RFC 7946, CGCS2000 lon/lat, the description on the FeatureCollection). The body
    names the parameters as the analytics endpoints' query strings do (`region`, `level`,
    `class`, `from`, `to`, `method`, …); those another kind does not read are ignored.

    Within `GRIDMAP_EXPORT_ROW_LIMIT` estimated rows (cases: counted; series: regions ×
    periods; density: cells; otherwise one per region) the file is the answer (200, an
    attachment). Above it the export runs in the background: 202 with the job's `id`, `href`
    and a `Location` header — poll it, then download its file; it runs with your scope. A
    period without data is not an error: an empty file, its reason in `X-Gridmap-Reason`."""
    code = checked_region(conn, reach, body.region)
    try:
        plan = service.plan(
            conn, reach, body.model_copy(update={"region": code}), metric_srid=settings.metric_srid
        )
    except AnalyticsError as e:
        raise invalid(e.field, e.message) from None
    if plan.estimate > settings.export_row_limit:
        with request.app.state.engine.begin() as write:
            job_id = service.submit(write, principal.id, plan)
        runner = getattr(request.app.state, "exports", None)
        if runner is not None:
            runner.wake()
        accepted = JobAccepted(id=job_id, status="queued", estimate=plan.estimate,
                               href=_href(job_id))  # fmt: skip
        return JSONResponse(
            accepted.model_dump(mode="json"), status_code=202, headers={"Location": _href(job_id)}
        )
    directory = settings.var_dir / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"now-{secrets.token_hex(8)}{service.SUFFIXES[plan.format]}"
    try:
        written = service.export(conn, reach, plan, path, metric_srid=settings.metric_srid)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return _file_response(
        path, plan.filename, plan.format, written.rows, written.reason,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )  # fmt: skip


def _job(conn: Connection, job_id: uuid.UUID, principal: CurrentUser) -> dict[str, Any]:
    found = service.job(conn, job_id, principal.id)
    if found is None:  # someone else's answers as if it did not exist
        raise not_found(f"no export {job_id} of yours (exports are kept {service.KEEP_DAYS} days)")
    return found


@router.get("/{job_id}", response_model=JobStatus, responses=problem_responses(404, 422))
def export_status(job_id: uuid.UUID, conn: Conn, principal: CurrentUser) -> JobStatus:
    """A background export of yours: `queued`, `running`, `done` (with `rows`, `bytes`, the
    empty period's `reason` if any, and the `download` link) or `failed` (with the `error`).
    Another user's export answers 404. Jobs and files are kept seven days."""
    found = _job(conn, job_id, principal)
    return JobStatus(
        **{k: v for k, v in found.items() if k != "path"},
        href=_href(job_id),
        download=f"{_href(job_id)}/file" if found["status"] == "done" else None,
    )


@router.get(
    "/{job_id}/file",
    response_model=None,
    responses={
        200: {"description": "The file", "content": FILE_CONTENT, "headers": FILE_HEADERS},
        **problem_responses(404, 409, 410, 422),
    },
)
def export_file(job_id: uuid.UUID, conn: Conn, principal: CurrentUser) -> Any:
    """The file of a finished background export of yours, as an attachment. While it is
    queued or running: 409 `export-pending` with `Retry-After`; when it failed: 409
    `export-failed` with the error; when its file is gone: 410 `export-expired`; another
    user's export or an unknown id: 404."""
    found = _job(conn, job_id, principal)
    status = found["status"]
    if status in ("queued", "running"):
        raise Problem(
            409, "export-pending", f"export {job_id} is {status}; try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )  # fmt: skip
    if status == "failed":
        raise Problem(409, "export-failed", f"export {job_id} failed: {found['error']}")
    path = Path(found["path"] or "")
    if not found["path"] or not path.is_file():
        raise Problem(410, "export-expired", f"the file of export {job_id} is gone", title="Gone")
    return _file_response(
        path, service.filename(found["params"]), found["format"], found["rows"] or 0,
        found["reason"],
    )  # fmt: skip
