"""Exports of the planners' analytics as files — GeoPackage, CSV or GeoJSON — written at once
or, above the row limit, by a background job.

Kinds: ``hotspots``, ``emerging``, ``series``, ``compare``, ``density`` (as
:mod:`app.services.analytics` computes them) and ``cases`` (the window's cases themselves, one
row each). Parameters carry the analytics API's query-string names (``region``, ``level``,
``class``, ``from``, ``to``, ``method``, …), so a planner moves from a map to its file by
changing one word.

Formats:

- ``gpkg``: one layer named after the kind — region polygons (MultiPolygon, EPSG:4490), or
  points for ``cases`` and ``density``; ``series`` is an attribute table — with the analysis's
  description (region, level, class, period, totals, reason, …) twice: as the layer's metadata
  and in a table ``meta`` (``key``, ``value`` as JSON) that any SQLite client can read.
- ``csv``: UTF-8 with a byte-order mark, so Excel opens Chinese names; one header row. Region
  polygons are left out — a spreadsheet cannot draw them, and ``code`` joins each row to the
  boundary file — while point rows (``cases``, ``density``) keep ``lon`` and ``lat``
  (CGCS2000). Times are Beijing wall-clock ``YYYY-MM-DD HH:MM:SS`` (what Excel parses). The
  description is not in the file: the API sends the empty-period reason in a header, a job in
  its status.
- ``geojson``: RFC 7946 — CGCS2000 lon/lat (EPSG:4490, within centimetres of WGS 84), no
  ``crs`` member — with the description as members of the FeatureCollection, exactly like the
  analytics API's answers; ``series`` rows have a null geometry.

A period without data is not an error: the file is written empty (headers and columns kept)
and the description's ``reason`` says why.

Jobs (table ``export_job``) run in a worker thread of each app process (:class:`ExportRunner`)
with the requester's scope, re-derived from their staff record when the job starts. Files live
under ``<var_dir>/exports`` and, with their jobs, are removed after :data:`KEEP_DAYS` days.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, text

from app.services import analytics
from app.services import regions as region_service
from app.services.identity import Principal
from app.services.scoping import ScopeFilter, prefix_pattern, scope_for
from app.settings import Settings

log = logging.getLogger("gridmap.exports")

KINDS = ("hotspots", "emerging", "series", "compare", "density", "cases")
FORMATS = ("gpkg", "csv", "geojson")
Kind = Literal["hotspots", "emerging", "series", "compare", "density", "cases"]
Format = Literal["gpkg", "csv", "geojson"]
Level = Literal["district", "street", "community", "grid"]
MEDIA_TYPES = {
    "gpkg": "application/geopackage+sqlite3",
    "csv": "text/csv; charset=utf-8",
    "geojson": "application/geo+json",
}
SUFFIXES = {"gpkg": ".gpkg", "csv": ".csv", "geojson": ".geojson"}
FORMAT_OF_SUFFIX = {".gpkg": "gpkg", ".csv": "csv", ".geojson": "geojson", ".json": "geojson"}
# The level each kind counts at when none is asked for (as in the analytics API).
DEFAULT_LEVEL = {
    "hotspots": "grid",
    "emerging": "grid",
    "series": "street",
    "compare": "street",
    "density": "grid",
    "cases": "grid",
}
# The parameters each kind reads besides region, level, class, from and to; others are ignored.
OPTIONS: dict[str, tuple[str, ...]] = {
    "hotspots": ("method", "measure", "distance_m", "permutations"),
    "emerging": ("weeks", "time_window"),
    "series": ("period", "by_class"),
    "compare": (),
    "density": ("cell_m", "bandwidth_m"),
    "cases": (),
}
STATUSES = ("queued", "running", "done", "failed")
KEEP_DAYS = 7
DENSITY_MAX_CELLS = 40_000  # analytics.density's own cap
CASE_COLUMNS = {
    "id": "int64", "class_code": "object", "class_name": "object", "status": "object",
    "source": "object", "grid_code": "object", "community_code": "object",
    "street_code": "object", "department_code": "object",
    "reported_at": "datetime64[ns, Asia/Shanghai]", "filed_at": "datetime64[ns, Asia/Shanghai]",
    "closed_at": "datetime64[ns, Asia/Shanghai]", "due_at": "datetime64[ns, Asia/Shanghai]",
    "address": "object", "lon": "float64", "lat": "float64",
}  # fmt: skip
_LOCK_SPACE = 0x6578  # advisory-lock key space of running export jobs ("ex")
_CHUNK = 10_000  # GeoJSON features serialised at a time


class ExportRequest(BaseModel):
    """An export: the kind, the format and the analysis's parameters, named as in the
    analytics API's query strings. Parameters the kind does not read are ignored."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind = Field(
        description="hotspots, emerging, series, compare, density, or cases (the raw cases of "
        "the period, one row each)"
    )
    format: Format = Field("gpkg", description="gpkg (GeoPackage), csv (UTF-8, Excel) or geojson")
    region: str | None = Field(
        None,
        max_length=32,
        pattern=r"^\d+$",
        description="A region code at any level; the caller's own area by default",
    )
    level: Level | None = Field(
        None,
        description="The level cases are counted at (default: grid; street for series and "
        "compare; density is always computed over the region)",
    )
    class_code: str | None = Field(
        None, alias="class", max_length=8, description="A minor class (E0101) or a major (E01)"
    )
    start: dt.date | None = Field(
        None,
        alias="from",
        description="First Beijing day (default: 28 days before `to`; emerging: from `weeks`)",
    )
    end: dt.date | None = Field(None, alias="to", description="Last Beijing day (default today)")
    method: Literal["gi", "moran"] = Field("gi", description="hotspots: Gi* or Local Moran")
    measure: Literal["count", "per_1000", "per_km2"] = Field(
        "count", description="hotspots: the count, per 1,000 residents, or per km²"
    )
    distance_m: float | None = Field(
        None, gt=0, le=20_000, description="hotspots: a distance band in metres"
    )
    permutations: int | None = Field(
        None, ge=0, le=9999, description="hotspots: conditional permutations for p"
    )
    weeks: int = Field(52, ge=2, le=analytics.MAX_WEEKS, description="emerging: weekly bins")
    time_window: int = Field(
        1, ge=0, le=4, description="emerging: preceding weeks that count as neighbours"
    )
    period: Literal["day", "week", "month"] = Field("week", description="series: bin length")
    by_class: bool = Field(False, description="series: one series per class as well")
    cell_m: float = Field(50, ge=5, le=1000, description="density: cell size, m")
    bandwidth_m: float = Field(300, ge=20, le=5000, description="density: kernel radius, m")


@dataclass(frozen=True)
class Plan:
    """A checked export, ready to run: its window (region, level, class and days resolved,
    so a job run later exports what was asked) and the estimated rows."""

    kind: str
    format: str
    window: analytics.Window
    options: dict[str, Any]
    estimate: int

    @property
    def params(self) -> dict[str, Any]:
        """The request as stored with a job, by the API's names (JSON-ready)."""
        w = self.window
        return {
            "kind": self.kind,
            "format": self.format,
            "region": w.region,
            "level": w.level,
            "class": w.class_code,
            "from": w.start.isoformat(),
            "to": w.end.isoformat(),
            **self.options,
        }

    @property
    def filename(self) -> str:
        return filename(self.params)

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def filename(params: dict[str, Any]) -> str:
    """``hotspots_120106_grid_20260301-20260328.gpkg``: kind, region, level and days."""
    days = f"{params['from'].replace('-', '')}-{params['to'].replace('-', '')}"
    what = f"_{params['class']}" if params.get("class") else ""
    return (
        f"{params['kind']}_{params['region']}_{params['level']}{what}_{days}"
        f"{SUFFIXES[params['format']]}"
    )


def default_region(conn: Connection, reach: ScopeFilter) -> str:
    """The reach's own region, or the first district within it (the whole district for the
    operator's empty reach)."""
    row = conn.execute(
        text(
            "SELECT r.code FROM region r JOIN boundary_version v ON v.id = r.version_id "
            "AND v.is_active WHERE r.code = :c OR (r.level = 'district' AND r.code LIKE :p) "
            "ORDER BY (r.code = :c) DESC, r.code LIMIT 1"
        ),
        {"c": reach.region_code, "p": prefix_pattern(reach.region_code)},
    ).first()
    if row is None:
        raise analytics.AnalyticsError("region", "no region in the active boundary version")
    return row.code


def plan(
    conn: Connection, reach: ScopeFilter, request: ExportRequest, *, metric_srid: int = 4548
) -> Plan:
    """Check an export and estimate its rows; :class:`analytics.AnalyticsError` names a bad
    parameter (an unknown class or region, a period the wrong way round or too long)."""
    region = request.region or default_region(conn, reach)
    if not region_service.in_active_version(conn, region):
        raise analytics.AnalyticsError(
            "region", f"no region {region} in the active boundary version"
        )
    kind = request.kind
    level = "grid" if kind == "density" else request.level or DEFAULT_LEVEL[kind]
    start, end = request.start, request.end
    if kind == "emerging":
        end = end or dt.datetime.now(analytics.ZONE).date()
        start = end - dt.timedelta(days=7 * request.weeks - 1)
    w = analytics.window(
        conn, region, level=level, class_code=request.class_code, start=start, end=end
    )
    options = {name: getattr(request, name) for name in OPTIONS[kind]}
    estimate = _estimate(conn, reach, kind, w, options, metric_srid)
    return Plan(kind, request.format, w, options, estimate)


def _estimate(
    conn: Connection,
    reach: ScopeFilter,
    kind: str,
    w: analytics.Window,
    options: dict[str, Any],
    metric_srid: int,
) -> int:
    """Rows the export will hold, before running it: cases counted, series regions × periods
    (× the catalogue's classes with ``by_class``, an upper bound), density the cells of the
    region's extent (an upper bound), the others one row per region."""
    if kind == "cases":
        return analytics.count_cases(conn, reach, w)
    if kind == "density":
        return _density_cells(
            conn, w.region, options["cell_m"], options["bandwidth_m"], metric_srid
        )
    n = len(analytics.regions_frame(conn, w.region, w.level))
    if kind != "series":
        return n
    bins = len(pd.period_range(w.start, w.end, freq=analytics.gis.PERIODS[options["period"]]))
    classes = 1
    if options["by_class"]:
        classes = conn.execute(
            text("SELECT count(*) FROM incident_class WHERE code LIKE :p"),
            {"p": prefix_pattern(w.class_code or "")},
        ).scalar_one()
    return n * bins * max(int(classes), 1)


def _density_cells(
    conn: Connection, region: str, cell_m: float, bandwidth_m: float, metric_srid: int
) -> int:
    extent = conn.execute(
        text(
            "SELECT ST_XMin(e) x0, ST_YMin(e) y0, ST_XMax(e) x1, ST_YMax(e) y1 FROM (SELECT "
            "ST_Extent(ST_Transform(r.geom, :srid)) AS e FROM region r JOIN boundary_version v "
            "ON v.id = r.version_id AND v.is_active WHERE r.code = :c) t"
        ),
        {"srid": metric_srid, "c": region},
    ).one()
    if extent.x0 is None:
        return 0
    nx = math.ceil((extent.x1 - extent.x0 + 2 * bandwidth_m) / cell_m)
    ny = math.ceil((extent.y1 - extent.y0 + 2 * bandwidth_m) / cell_m)
    return min(nx * ny, DENSITY_MAX_CELLS)


def run(
    conn: Connection, reach: ScopeFilter, p: Plan, *, metric_srid: int = 4548
) -> analytics.Result:
    """The analysis of a plan, within ``reach``."""
    w, o = p.window, p.options
    if p.kind == "hotspots":
        return analytics.hotspots(conn, reach, w, metric_srid=metric_srid, **o)
    if p.kind == "emerging":
        return analytics.emerging(
            conn, reach, w.region, level=w.level, class_code=w.class_code, end=w.end, **o
        )
    if p.kind == "series":
        return analytics.series(conn, reach, w, **o)
    if p.kind == "compare":
        return analytics.compare(conn, reach, w)
    if p.kind == "density":
        return analytics.density(conn, reach, w, metric_srid=metric_srid, **o)
    return analytics.cases(conn, reach, w)


@dataclass(frozen=True)
class Written:
    """What an export wrote."""

    path: Path
    rows: int
    bytes: int
    meta: dict[str, Any]

    @property
    def reason(self) -> str | None:
        """Why the file is empty (a period without data), else None."""
        return self.meta.get("reason")


def export(
    conn: Connection, reach: ScopeFilter, p: Plan, path: Path, *, metric_srid: int = 4548
) -> Written:
    """Run a plan and write its file at ``path`` (replaced if it exists)."""
    result = run(conn, reach, p, metric_srid=metric_srid)
    rows = write(result, p.kind, p.format, path)
    return Written(path, rows, path.stat().st_size, result.meta)


# ---- writing ------------------------------------------------------------------------------------


def table(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows to write: a GeoDataFrame (EPSG:4490) of regions or points, or — for series — a
    plain DataFrame; an empty result keeps its columns."""
    if kind == "cases":
        if frame.empty and "geometry" not in frame.columns:
            frame = pd.DataFrame({c: pd.Series(dtype=t) for c, t in CASE_COLUMNS.items()})
        if not isinstance(frame, gpd.GeoDataFrame):
            frame = gpd.GeoDataFrame(
                frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4490
            )
        return frame
    if kind == "density":
        frame = frame.astype({"lon": "float64", "lat": "float64", "density": "float64"})
        return gpd.GeoDataFrame(
            frame, geometry=gpd.points_from_xy(frame["lon"], frame["lat"]), crs=4490
        )
    return frame


def write(result: analytics.Result, kind: str, fmt: str, path: Path) -> int:
    """Write a result as ``fmt`` at ``path``; returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    frame = table(kind, result.frame)
    path.unlink(missing_ok=True)
    {"gpkg": _gpkg, "csv": _csv, "geojson": _geojson}[fmt](frame, kind, result.meta, path)
    return len(frame)


def _json(value: Any) -> str:
    return json.dumps(analytics.plain(value), ensure_ascii=False)


def _meta_value(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _gpkg(frame: pd.DataFrame, kind: str, meta: dict[str, Any], path: Path) -> None:
    described = {k: _meta_value(v) for k, v in meta.items() if v is not None}
    summary = ", ".join(f"{k}={v}" for k, v in described.items())
    options: dict[str, Any] = {
        "layer_metadata": described,
        "layer_options": {"DESCRIPTION": summary},
    }
    if isinstance(frame, gpd.GeoDataFrame):
        points = kind in ("cases", "density")
        options.update(
            geometry_type="Point" if points else "MultiPolygon", promote_to_multi=not points
        )
    pyogrio.write_dataframe(frame, path, layer=kind, driver="GPKG", **options)
    pyogrio.write_dataframe(
        pd.DataFrame({"key": list(meta), "value": [_json(v) for v in meta.values()]}),
        path, layer="meta", driver="GPKG",
    )  # fmt: skip


def _csv(frame: pd.DataFrame, kind: str, meta: dict[str, Any], path: Path) -> None:
    out = pd.DataFrame(frame.drop(columns="geometry", errors="ignore"))
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            local = out[column].dt.tz_convert(analytics.ZONE)
            out[column] = local.dt.strftime("%Y-%m-%d %H:%M:%S").where(local.notna(), None)
    # Excel recognises UTF-8 only with the byte-order mark ("utf-8-sig").
    out.to_csv(path, index=False, encoding="utf-8-sig", date_format="%Y-%m-%d")


def _geojson(frame: pd.DataFrame, kind: str, meta: dict[str, Any], path: Path) -> None:
    # Written here rather than by GDAL's GeoJSON driver: the description goes on the
    # FeatureCollection (as in the analytics API's answers), series rows need a null geometry,
    # and features are streamed a chunk at a time so a large job stays within memory.
    columns = [c for c in frame.columns if c != "geometry"]
    key = {"cases": "id"}.get(kind, "code")
    head = json.dumps({"type": "FeatureCollection", **analytics.plain(meta)}, ensure_ascii=False)
    with path.open("w", encoding="utf-8") as out:
        out.write(head[:-1] + ', "features": [')
        first = True
        for lo in range(0, len(frame), _CHUNK):
            part = frame.iloc[lo : lo + _CHUNK]
            if isinstance(part, gpd.GeoDataFrame):
                shapes = shapely.to_geojson(shapely.set_precision(part.geometry.values, 1e-7))
            else:
                shapes = [None] * len(part)
            rows = part[columns].itertuples(index=False, name=None)
            for values, shape in zip(rows, shapes, strict=True):
                props = {c: analytics.plain(v) for c, v in zip(columns, values, strict=True)}
                feature: dict[str, Any] = {"type": "Feature"}
                if kind not in ("series", "density"):
                    feature["id"] = props[key]
                feature["geometry"] = json.loads(shape) if shape is not None else None
                feature["properties"] = props
                out.write(("\n" if first else ",\n") + json.dumps(feature, ensure_ascii=False))
                first = False
        out.write("\n]}\n")


# ---- background jobs -----------------------------------------------------------------------------


class JobError(Exception):
    """A job that cannot run (its requester gone, a parameter no longer valid)."""


def submit(conn: Connection, owner_id: int, p: Plan) -> uuid.UUID:
    """Queue a plan as a job of ``owner_id``; commit, then :meth:`ExportRunner.wake`."""
    return conn.execute(
        text(
            "INSERT INTO export_job (owner_id, kind, format, params) "
            "VALUES (:o, :k, :f, CAST(:p AS jsonb)) RETURNING id"
        ),
        {"o": owner_id, "k": p.kind, "f": p.format, "p": json.dumps(p.params)},
    ).scalar_one()


def job(conn: Connection, job_id: uuid.UUID, owner_id: int) -> dict[str, Any] | None:
    """A job of ``owner_id`` (someone else's is None, as if it did not exist)."""
    row = conn.execute(
        text(
            "SELECT id, kind, format, params, status, rows, bytes, reason, error, path, "
            "created_at, started_at, finished_at FROM export_job WHERE id = :id AND owner_id = :o"
        ),
        {"id": job_id, "o": owner_id},
    ).first()
    return dict(row._mapping) if row is not None else None


def _lock_key(conn: Connection, job_id: uuid.UUID, verb: str) -> Any:
    return conn.execute(
        text(f"SELECT {verb}(:ns, hashtext(CAST(:id AS text)))"),
        {"ns": _LOCK_SPACE, "id": str(job_id)},
    ).scalar()


def recover(engine: Engine) -> int:
    """Mark failed the jobs left ``running`` by a process that ended: a running job's process
    holds its advisory lock, so a lock we can take belongs to nobody. Safe with several
    workers, each running this at start."""
    failed = 0
    with engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM export_job WHERE status = 'running'")).scalars()
        ids = list(ids)
        conn.commit()
        for job_id in ids:
            if _lock_key(conn, job_id, "pg_try_advisory_lock"):
                failed += conn.execute(
                    text(
                        "UPDATE export_job SET status = 'failed', finished_at = now(), error = "
                        "'the process running the export ended before it finished; ask again' "
                        "WHERE id = :id AND status = 'running'"
                    ),
                    {"id": job_id},
                ).rowcount
                conn.commit()
                _lock_key(conn, job_id, "pg_advisory_unlock")
            conn.commit()
    return failed


def cleanup(engine: Engine, directory: Path, *, keep_days: float = KEEP_DAYS) -> int:
    """Remove finished jobs and export files older than ``keep_days``; returns files removed."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM export_job WHERE status IN ('done', 'failed') "
                "AND coalesce(finished_at, created_at) < now() - make_interval(secs => :s)"
            ),
            {"s": keep_days * 86400},
        )
    if not directory.is_dir():
        return 0
    cutoff = time.time() - keep_days * 86400
    removed = 0
    for path in directory.iterdir():
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _principal(conn: Connection, owner_id: int) -> Principal:
    row = conn.execute(
        text(
            "SELECT s.id, s.name, s.role, s.region_code, d.code AS department, s.display_name, "
            "s.active FROM staff s LEFT JOIN department d ON d.id = s.department_id "
            "WHERE s.id = :id"
        ),
        {"id": owner_id},
    ).first()
    if row is None or not row.active:
        raise JobError("the requester's account is no longer active")
    principal = Principal(
        row.id, row.name, row.role, row.region_code, row.department, row.display_name
    )
    if not principal.can("analytics:read"):
        raise JobError(f"a {principal.role} may no longer read analytics")
    return principal


def run_job(
    engine: Engine, settings: Settings, job_id: uuid.UUID, owner_id: int, params: dict[str, Any]
) -> Written:
    """Run one job's export into ``<var_dir>/exports/<id>.<suffix>`` with its requester's
    scope as it is now."""
    directory = settings.var_dir / "exports"
    directory.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn, conn.begin():
        principal = _principal(conn, owner_id)
        reach = scope_for(conn, principal)
        try:
            p = plan(conn, reach, ExportRequest.model_validate(params),
                     metric_srid=settings.metric_srid)  # fmt: skip
        except analytics.AnalyticsError as e:
            raise JobError(f"{e.field}: {e.message}") from None
        within = p.window.region.startswith(reach.region_code) or reach.departments is not None
        if not within:
            raise JobError(f"region {p.window.region} is no longer in the requester's area")
        final = directory / f"{job_id}{SUFFIXES[p.format]}"
        part = directory / f"{job_id}.part{SUFFIXES[p.format]}"  # GDAL wants the suffix
        try:
            written = export(conn, reach, p, part, metric_srid=settings.metric_srid)
            part.replace(final)
        finally:
            part.unlink(missing_ok=True)
    return Written(final, written.rows, written.bytes, written.meta)


def run_next(engine: Engine, settings: Settings) -> bool:
    """Claim the oldest queued job (SKIP LOCKED: one worker each) and run it; False when none
    was waiting. The claim and the job's advisory lock commit together, so :func:`recover`
    never sees a live job unlocked."""
    with engine.connect() as lock:
        row = lock.execute(
            text(
                "UPDATE export_job SET status = 'running', started_at = now() WHERE id = ("
                "SELECT id FROM export_job WHERE status = 'queued' ORDER BY created_at "
                "FOR UPDATE SKIP LOCKED LIMIT 1) RETURNING id, owner_id, params"
            )
        ).first()
        if row is None:
            lock.rollback()
            return False
        _lock_key(lock, row.id, "pg_advisory_lock")
        lock.commit()
        written: Written | None = None
        error = None
        try:
            written = run_job(engine, settings, row.id, row.owner_id, row.params)
        except JobError as e:
            error = str(e)
        except Exception as e:  # a failed export must answer as failed, not stay running
            log.exception("export job %s failed", row.id)
            error = f"the export failed ({type(e).__name__}); it has been logged"
        outcome = {
            "status": "failed" if written is None else "done",
            "rows": written and written.rows,
            "bytes": written and written.bytes,
            "reason": written and written.reason,
            "path": written and str(written.path),
            "error": error,
        }
        try:
            lock.execute(
                text(
                    "UPDATE export_job SET status = :status, rows = :rows, bytes = :bytes, "
                    "reason = :reason, error = :error, path = :path, finished_at = now() "
                    "WHERE id = :id"
                ),
                {**outcome, "id": row.id},
            )
            lock.commit()
        finally:
            _lock_key(lock, row.id, "pg_advisory_unlock")
            lock.commit()
    return True


class ExportRunner:
    """Runs queued export jobs in a worker thread of this process: woken when a job is
    queued here, polling every ``poll_s`` for jobs queued by other workers. At start, and then
    hourly, it fails jobs orphaned by a dead process and removes week-old jobs and files."""

    def __init__(self, engine: Engine, settings: Settings, *, poll_s: float = 5.0) -> None:
        self.engine = engine
        self.settings = settings
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def directory(self) -> Path:
        return self.settings.var_dir / "exports"

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gridmap-exports", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the job in hand (a job cut short by the process ending is failed by
        the next start's :func:`recover`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        housekeeping = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= housekeeping:
                    recover(self.engine)
                    cleanup(self.engine, self.directory)
                    housekeeping = time.monotonic() + 3600
                if run_next(self.engine, self.settings):
                    continue
            except Exception:  # no schema yet, the database restarting: try again later
                log.debug("export runner pass failed", exc_info=True)
                housekeeping = min(housekeeping, time.monotonic() + 60)
            self._wake.wait(self.poll_s)
            self._wake.clear()
