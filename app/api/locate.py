"""Which grid covers this location: one point (GET) or a batch of up to 100,000 (POST)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import AS_OF_DOC, parse_as_of
from app.api.problems import Problem, invalid, problem_responses
from app.api.regions import DutyWorker
from app.services import regions as region_service
from app.services.boundaries import Version
from app.services.locate import LocateService, coordinate_problems
from app.services.regions import NoVersion, resolve_scope
from gis.crs import NAMED_CRS, UnknownCRSError, point_crs, to_cgcs2000
from gis.locate import GridIndex

router = APIRouter(prefix="/api/v1", tags=["locate"])

MAX_POINTS = 100_000
MAX_BODY_BYTES = 64 * 2**20
_CHUNK = 5000
CRS_DOC = (
    "Coordinate system of lon/lat: wgs84 (GPS), cgcs2000 (EPSG:4490, the storage frame), "
    "gcj02 (AMap, Tencent, most Chinese phone apps) or bd09 (Baidu)."
)
_MEDIA = {"json": "application/json", "geojson": "application/geo+json", "csv": "text/csv"}
_FIELDS = [
    "grid_code", "grid_name", "community_code", "community_name",
    "street_code", "street_name", "district_code", "district_name",
]  # fmt: skip


class RegionRef(BaseModel):
    code: str
    name: str | None


class NearestGrid(BaseModel):
    code: str
    name: str | None
    distance_m: float = Field(description="Distance to the grid's edge in metres (metric CRS)")


class VersionRef(BaseModel):
    id: int
    label: str


class Located(BaseModel):
    lon: float = Field(description="As given")
    lat: float = Field(description="As given")
    crs: str
    cgcs2000: list[float] = Field(description="[lon, lat] in CGCS2000 (EPSG:4490)")
    covered: bool = Field(description="Whether any basic grid covers the point")
    district: RegionRef | None
    street: RegionRef | None
    community: RegionRef | None
    grid: RegionRef | None
    nearest: NearestGrid | None = Field(
        None, description="Outside every grid: the nearest grid and the distance to it"
    )
    duty_gridworkers: list[DutyWorker] = Field(
        default_factory=list, description="Who serves the grid: its gridworker first, then members"
    )
    boundary_version: VersionRef


# -- input checks --------------------------------------------------------------------------------


def parse_crs(value: str) -> str:
    try:
        return point_crs(value)
    except UnknownCRSError as exc:
        raise invalid("crs", str(exc)) from None


def _service(request: Request) -> LocateService:
    return request.app.state.locate


def _no_version() -> Problem:
    return Problem(
        404, "no-boundary-version",
        "no boundary version is active; import one (gridmap boundaries import) and activate it",
    )  # fmt: skip


def _resolve_version(service: LocateService, as_of: str | None) -> Version | None:
    """The version asked for by ``as_of`` (None: the current snapshot's)."""
    moment = parse_as_of(as_of)
    if moment is None:
        return None
    with service.engine.connect() as conn:
        try:
            return resolve_scope(conn, moment).version
        except NoVersion as exc:
            raise invalid("as_of", str(exc)) from None


# -- one point -----------------------------------------------------------------------------------


@router.get(
    "/locate",
    response_model=Located,
    responses=problem_responses(404, 422),
    summary="Which district, street, community and grid cover a point",
)
async def locate_one(
    request: Request,
    lon: Annotated[float, Query(description="Longitude", examples=[117.163],
                                json_schema_extra={"minimum": -180, "maximum": 180})],
    lat: Annotated[float, Query(description="Latitude", examples=[39.17],
                                json_schema_extra={"minimum": -90, "maximum": 90})],
    crs: Annotated[str, Query(description=CRS_DOC, json_schema_extra={"enum": list(NAMED_CRS)})]
    = "wgs84",
    as_of: Annotated[str | None, Query(description=AS_OF_DOC, examples=["2026-01-01"])] = None,
) -> Located:  # fmt: skip
    """The chain of regions covering the point, from the active boundary version (or the one
    active at `as_of`). A point on an edge shared by several grids belongs to the grid with the
    lowest code. Outside every grid, `covered` is false and `nearest` names the closest grid."""
    name = parse_crs(crs)
    problem = coordinate_problems(np.array([lon]), np.array([lat]))[0]
    if problem:
        raise invalid(*problem)
    x, y = to_cgcs2000(np.array([lon]), np.array([lat]), name)
    service = _service(request)
    if as_of is not None:
        return await run_in_threadpool(_locate_as_of, service, as_of, lon, lat, name, x, y)
    snapshot = service.current()
    if snapshot is None:
        raise _no_version()
    if snapshot.index.locate_index(x, y)[0] < 0:  # the nearest grid may build a tree: not here
        return await run_in_threadpool(
            _from_index, snapshot.index, snapshot.version, lon, lat, name, x, y
        )
    return _with_duty(service, _from_index(snapshot.index, snapshot.version, lon, lat, name, x, y))


def _with_duty(service: LocateService, located: Located) -> Located:
    if located.grid is not None:
        located.duty_gridworkers = [DutyWorker(**r) for r in service.roster(located.grid.code)]
    return located


def _ref(code: str, name: str) -> RegionRef | None:
    return RegionRef(code=code, name=name or None) if code else None


def _from_index(
    index: GridIndex, version: Version, lon: float, lat: float, crs: str, x: Any, y: Any
) -> Located:
    i = int(index.locate_index(x, y)[0])
    nearest = None
    chain = index.chain_at(i)
    if i < 0:
        codes, dist = index.nearest(x, y)
        j = index.position(codes[0])
        nearest = NearestGrid(
            code=codes[0], name=index.chain_at(j)["grid_name"] or None, distance_m=dist[0]
        )
    return Located(
        lon=lon, lat=lat, crs=crs, cgcs2000=[float(x[0]), float(y[0])], covered=i >= 0,
        district=_ref(chain["district_code"], chain["district_name"]),
        street=_ref(chain["street_code"], chain["street_name"]),
        community=_ref(chain["community_code"], chain["community_name"]),
        grid=_ref(chain["grid_code"], chain["grid_name"]),
        nearest=nearest, boundary_version=VersionRef(id=version.id, label=version.label),
    )  # fmt: skip


def _locate_as_of(
    service: LocateService, as_of: str, lon: float, lat: float, crs: str, x: Any, y: Any
) -> Located:
    version = _resolve_version(service, as_of)
    assert version is not None
    snapshot = service.current()
    if snapshot is not None and snapshot.version.id == version.id:
        return _with_duty(service, _from_index(snapshot.index, version, lon, lat, crs, x, y))
    # An older version: a database lookup (ST_Covers on the subdivided regions).
    with service.engine.connect() as conn:
        found = {r["level"]: r for r in region_service.covering(conn, version.id, x[0], y[0])}
        nearest = None
        if "grid" not in found:
            nearest = region_service.nearest_grid(conn, version.id, x[0], y[0])

    def ref(level: str) -> RegionRef | None:
        r = found.get(level)
        return RegionRef(code=r["code"], name=r["name"]) if r else None

    return _with_duty(service, Located(
        lon=lon, lat=lat, crs=crs, cgcs2000=[float(x[0]), float(y[0])],
        covered="grid" in found, district=ref("district"), street=ref("street"),
        community=ref("community"), grid=ref("grid"),
        nearest=NearestGrid(**nearest) if nearest else None,
        boundary_version=VersionRef(id=version.id, label=version.label),
    ))  # fmt: skip


# -- batches -------------------------------------------------------------------------------------


@dataclass
class Batch:
    fmt: str
    lon: list[float] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # CSV: the line number of each point
    props: list[dict[str, Any]] = field(default_factory=list)  # GeoJSON: input properties
    errors: dict[int, tuple[str, str]] = field(default_factory=dict)
    raw: dict[int, tuple[str, str]] = field(default_factory=dict)  # CSV: lon, lat as sent

    def add(self, lon: Any, lat: Any, ident: Any = None, *, row: int = 0) -> None:
        self.lon.append(lon)
        self.lat.append(lat)
        self.ids.append(ident)
        self.rows.append(row)

    def fail(self, field_name: str, message: str, ident: Any = None, *, row: int = 0) -> None:
        self.errors[len(self.lon)] = (field_name, message)
        self.add(math.nan, math.nan, ident, row=row)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _too_many(n: int) -> Problem:
    return Problem(
        413, "too-many-points", f"{n:,} points in one batch; the limit is {MAX_POINTS:,}",
    )  # fmt: skip


def _parse_json(body: bytes) -> Batch:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise invalid("body", f"not valid JSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        return _parse_geojson_data(data)
    if not isinstance(data, list):
        raise invalid(
            "body", "expected a JSON array of [lon, lat] pairs or {lon, lat, id} objects, "
            "or a GeoJSON FeatureCollection",
        )  # fmt: skip
    if len(data) > MAX_POINTS:
        raise _too_many(len(data))
    batch = Batch("json")
    for i, item in enumerate(data):
        if isinstance(item, list) and len(item) in (2, 3):
            x, y, ident = item[0], item[1], item[2] if len(item) == 3 else None
        elif isinstance(item, dict):
            x, y, ident = item.get("lon"), item.get("lat"), item.get("id")
        else:
            batch.fail(f"body[{i}]", "expected [lon, lat], [lon, lat, id] or {lon, lat, id}")
            continue
        if not _scalar(ident):
            batch.fail(f"body[{i}].id", "must be a string or a number")
            continue
        fx, fy = _number(x), _number(y)
        if fx is None:
            batch.fail(f"body[{i}].lon", "missing or not a number", ident)
        elif fy is None:
            batch.fail(f"body[{i}].lat", "missing or not a number", ident)
        else:
            batch.add(fx, fy, ident)
    return batch


def _scalar(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def _parse_geojson(body: bytes) -> Batch:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise invalid("body", f"not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise invalid("body", "expected a GeoJSON FeatureCollection of Point features")
    return _parse_geojson_data(data)


def _parse_geojson_data(data: dict[str, Any]) -> Batch:
    features = data.get("features")
    if not isinstance(features, list):
        raise invalid("features", "a FeatureCollection needs a 'features' array")
    if len(features) > MAX_POINTS:
        raise _too_many(len(features))
    batch = Batch("geojson")
    for i, feat in enumerate(features):
        props = feat.get("properties") if isinstance(feat, dict) else None
        props = props if isinstance(props, dict) else {}
        ident = feat.get("id", props.get("id")) if isinstance(feat, dict) else None
        batch.props.append(props)
        geom = feat.get("geometry") if isinstance(feat, dict) else None
        coords = geom.get("coordinates") if isinstance(geom, dict) else None
        if not _scalar(ident):
            ident = None
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            batch.fail(f"features[{i}].geometry", "expected a Point geometry", ident)
        elif not isinstance(coords, list) or len(coords) < 2:
            batch.fail(f"features[{i}].geometry.coordinates", "expected [lon, lat]", ident)
        elif _number(coords[0]) is None or _number(coords[1]) is None:
            batch.fail(f"features[{i}].geometry.coordinates", "lon and lat must be numbers", ident)
        else:
            batch.add(float(coords[0]), float(coords[1]), ident)
    return batch


_LON_NAMES = ("lon", "lng", "longitude", "x", "经度")
_LAT_NAMES = ("lat", "latitude", "y", "纬度")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _parse_csv(body: bytes) -> Batch:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid("body", f"CSV must be UTF-8 ({exc.reason} at byte {exc.start})") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    batch = Batch("csv")
    cols = (0, 1, 2)
    try:
        for line, row in enumerate(rows, start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if line == 1 and (len(row) < 2 or _float(row[0]) is None or _float(row[1]) is None):
                names = [c.strip().lower() for c in row]
                lon_i = next((names.index(n) for n in _LON_NAMES if n in names), None)
                lat_i = next((names.index(n) for n in _LAT_NAMES if n in names), None)
                if lon_i is None or lat_i is None:
                    raise invalid(
                        "body", "the CSV header must name a lon and a lat column "
                        "(or the first row must be data: lon,lat[,id])",
                    )  # fmt: skip
                cols = (lon_i, lat_i, names.index("id") if "id" in names else -1)
                continue
            if len(batch.lon) >= MAX_POINTS:
                raise _too_many(MAX_POINTS + 1 + sum(1 for r in rows if r))
            ident = row[cols[2]] if 0 <= cols[2] < len(row) else None
            if max(cols[0], cols[1]) < len(row):
                batch.raw[len(batch.lon)] = (row[cols[0]], row[cols[1]])
            if max(cols[0], cols[1]) >= len(row):
                batch.fail(f"row {line}", f"expected lon,lat[,id]; got {len(row)} field(s)",
                           ident, row=line)  # fmt: skip
                continue
            x, y = _float(row[cols[0]]), _float(row[cols[1]])
            if x is None:
                batch.fail(f"row {line}", f"lon {row[cols[0]]!r} is not a number", ident, row=line)
            elif y is None:
                batch.fail(f"row {line}", f"lat {row[cols[1]]!r} is not a number", ident, row=line)
            else:
                batch.add(x, y, ident, row=line)
    except csv.Error as exc:
        raise invalid("body", f"malformed CSV: {exc}") from None
    return batch


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Problem(413, "body-too-large", f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Problem(413, "body-too-large", f"the body is over {MAX_BODY_BYTES // 2**20} MiB")
        chunks.append(chunk)
    return b"".join(chunks)


_BATCH_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                "maxItems": MAX_POINTS,
                "items": {
                    "oneOf": [
                        {"type": "array", "items": {"type": "number"}, "minItems": 2,
                         "maxItems": 2, "description": "[lon, lat]"},
                        {"type": "object", "required": ["lon", "lat"],
                         "properties": {"lon": {"type": "number", "minimum": -180, "maximum": 180},
                                        "lat": {"type": "number", "minimum": -90, "maximum": 90},
                                        "id": {"type": ["string", "integer"]}}},
                    ]
                },
            },
            "example": [[117.163, 39.17], {"lon": 117.15, "lat": 39.18, "id": "case-42"}],
        },
        "application/geo+json": {
            "schema": {"type": "object", "required": ["type", "features"],
                       "properties": {"type": {"enum": ["FeatureCollection"]},
                                      "features": {"type": "array", "maxItems": MAX_POINTS}}},
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "lon,lat,id\n117.163,39.17,a\n117.15,39.18,b\n",
        },
    },
}  # fmt: skip


@router.post(
    "/locate",
    summary="Locate a batch of up to 100,000 points (JSON array, GeoJSON or CSV), streamed",
    openapi_extra={"requestBody": _BATCH_BODY},
    responses={
        200: {
            "description": "One result per input point, in input order, in the input's format",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/geo+json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        },
        **problem_responses(404, 413, 415, 422),
    },
    response_model=None,
)
async def locate_batch(
    request: Request,
    crs: Annotated[str, Query(description=CRS_DOC, json_schema_extra={"enum": list(NAMED_CRS)})]
    = "wgs84",
    as_of: Annotated[str | None, Query(description=AS_OF_DOC, examples=["2026-01-01"])] = None,
    strict: Annotated[bool, Query(description="Refuse the whole batch if any point is malformed "
                                  "(default: answer the rest, each bad point with its error)")]
    = False,
    nearest: Annotated[bool, Query(description="Add the nearest grid and its distance in "
                                   "metres for points outside every grid")] = False,
) -> StreamingResponse:  # fmt: skip
    """Body: a JSON array (`[[lon, lat], …]` or `[{"lon", "lat", "id"}, …]`), a GeoJSON
    FeatureCollection of Points (`application/geo+json`) or CSV (`text/csv`, `lon,lat[,id]`, with
    or without a header). The answer comes back in the same format, one result per point in
    input order, streamed: each carries the grid, community, street and district codes and names
    (empty outside every grid) or, for a malformed point, its `error` — CSV rows by line number.
    The boundary version answered is in the body and in the `Gridmap-Boundary-Version` header."""
    name = parse_crs(crs)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    parsers = {
        "application/json": _parse_json, "": _parse_json,
        "application/geo+json": _parse_geojson,
        "text/csv": _parse_csv, "application/csv": _parse_csv, "text/plain": _parse_csv,
    }  # fmt: skip
    if media not in parsers:
        raise Problem(
            415, "unsupported-media-type",
            f"content type {media!r}; send application/json, application/geo+json or text/csv",
        )  # fmt: skip
    body = await _read_body(request)
    batch = parsers[media](body)
    service = _service(request)
    return await run_in_threadpool(_answer_batch, service, batch, name, as_of, strict, nearest)


def _answer_batch(
    service: LocateService, batch: Batch, crs: str, as_of: str | None, strict: bool, nearest: bool
) -> StreamingResponse:
    lon = np.asarray(batch.lon, dtype=np.float64)
    lat = np.asarray(batch.lat, dtype=np.float64)
    for i, problem in enumerate(coordinate_problems(lon, lat)):
        if problem and i not in batch.errors:
            batch.errors[i] = (_where(batch, i, problem[0]), f"{problem[0]} {problem[1]}")
    if strict and batch.errors:
        errors = [{"field": f, "message": m} for f, m in list(batch.errors.values())[:100]]
        raise Problem(
            422, "invalid-parameter",
            f"{len(batch.errors)} of {len(lon)} points are malformed; nothing was answered "
            "(strict=true)",
            errors=errors,
        )  # fmt: skip
    version = _resolve_version(service, as_of)
    if version is None:
        snapshot = service.current()
        if snapshot is None:
            raise _no_version()
        version, index = snapshot.version, snapshot.index
    else:
        index = service.index_for(version.id)
    ok = np.ones(len(lon), dtype=bool)
    ok[list(batch.errors)] = False
    x, y = np.full(len(lon), np.nan), np.full(len(lon), np.nan)
    if ok.any():
        x[ok], y[ok] = to_cgcs2000(lon[ok], lat[ok], crs)
    chain = index.chain(x, y, nearest=nearest)
    stream = {"json": _stream_json, "geojson": _stream_geojson, "csv": _stream_csv}[batch.fmt]
    return StreamingResponse(
        stream(batch, chain, x, y, version, crs),
        media_type=_MEDIA[batch.fmt],
        headers={"Gridmap-Boundary-Version": str(version.id)},
    )


def _where(batch: Batch, i: int, coordinate: str) -> str:
    if batch.fmt == "csv":
        return f"row {batch.rows[i]}"
    if batch.fmt == "geojson":
        return f"features[{i}].geometry.coordinates"
    return f"body[{i}].{coordinate}"


def _records(batch: Batch, chain: pd.DataFrame, start: int, stop: int) -> Iterator[dict[str, Any]]:
    cols = list(chain.columns)
    part = chain.iloc[start:stop]
    values = part.to_numpy(dtype=object)
    for offset, row in enumerate(values):
        i = start + offset
        rec: dict[str, Any] = {}
        if i in batch.errors:
            rec.update(dict.fromkeys(cols))
            rec["error"] = batch.errors[i][1]
            rec["error_field"] = batch.errors[i][0]
        else:
            for c, v in zip(cols, row, strict=True):
                if c == "nearest_distance_m":
                    rec[c] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
                else:
                    rec[c] = v or None
        yield rec


def _version_json(version: Version) -> dict[str, Any]:
    return {"id": version.id, "label": version.label}


def _stream_json(
    batch: Batch, chain: pd.DataFrame, x: Any, y: Any, version: Version, crs: str
) -> Iterator[bytes]:
    head = {
        "boundary_version": _version_json(version), "crs": crs, "count": len(batch.lon),
        "covered": int((chain["grid_code"] != "").sum()), "errors": len(batch.errors),
    }  # fmt: skip
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "results": [').encode()
    for start in range(0, len(batch.lon), _CHUNK):
        parts = []
        for offset, rec in enumerate(_records(batch, chain, start, start + _CHUNK)):
            i = start + offset
            out = {"index": i, "id": batch.ids[i], "lon": _finite(batch.lon[i]),
                   "lat": _finite(batch.lat[i]), **rec}  # fmt: skip
            parts.append(json.dumps(out, ensure_ascii=False))
        yield ((", " if start else "") + ", ".join(parts)).encode()
    yield b"]}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _stream_geojson(
    batch: Batch, chain: pd.DataFrame, x: Any, y: Any, version: Version, crs: str
) -> Iterator[bytes]:
    head = {"type": "FeatureCollection", "boundary_version": _version_json(version)}
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "features": [').encode()
    for start in range(0, len(batch.lon), _CHUNK):
        parts = []
        for offset, rec in enumerate(_records(batch, chain, start, start + _CHUNK)):
            i = start + offset
            geometry = (
                {"type": "Point", "coordinates": [round(float(x[i]), 8), round(float(y[i]), 8)]}
                if math.isfinite(x[i]) else None
            )  # fmt: skip
            feature: dict[str, Any] = {"type": "Feature", "geometry": geometry,
                                       "properties": {**batch.props[i], **rec}}  # fmt: skip
            if batch.ids[i] is not None:
                feature["id"] = batch.ids[i]
            parts.append(json.dumps(feature, ensure_ascii=False))
        yield ((", " if start else "") + ", ".join(parts)).encode()
    yield b"]}"


def _stream_csv(
    batch: Batch, chain: pd.DataFrame, x: Any, y: Any, version: Version, crs: str
) -> Iterator[bytes]:
    cols = list(chain.columns)
    header = ["row", "id", "lon", "lat", *cols, "error"]
    for start in range(0, max(len(batch.lon), 1), _CHUNK):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if start == 0:
            writer.writerow(header)
        for offset, rec in enumerate(_records(batch, chain, start, start + _CHUNK)):
            i = start + offset
            raw_lon, raw_lat = batch.raw.get(i, ("", ""))
            writer.writerow(
                [batch.rows[i], batch.ids[i] if batch.ids[i] is not None else "", raw_lon, raw_lat]
                + ["" if rec.get(c) is None else rec[c] for c in cols]
                + [rec.get("error") or ""]
            )  # fmt: skip
        yield buf.getvalue().encode()
