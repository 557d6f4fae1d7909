"""The case loop of digital urban management on the grid.

案卷: 上报 → 立案 → 派遣 → 处置 → 核查 → 结案 (report, file, dispatch, handle, verify, close).

The transition table :data:`TRANSITIONS` is the one place that says which action moves a case
from which states to which state, and which permission (so which roles, through
``identity.PERMISSIONS``) it needs. Every transition runs in one transaction that locks the case
(``SELECT … FOR UPDATE``), checks the table, updates the case and appends its history row; so of
two officers acting on one case at once, the second sees the first's result and is refused
(409) if its action no longer applies.

Deadlines come from the class's time limit for the step (dispatch, handle, verify) counted in
its time type on the working-time calendar (``app.services.worktime``). A step finished after
its deadline counts in ``overdue_steps``; a case is closed on time when no step ran over.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from app.services import identity
from app.services.catalog import DEFAULT_CALENDAR, load_catalog
from app.services.identity import Principal
from app.services.locate import LocateService, coordinate_problems
from app.services.scoping import ScopeFilter, prefix_pattern
from app.services.worktime import WorkCalendar, load_calendar
from gis.crs import UnknownCRSError, point_crs, to_cgcs2000

STATES: dict[str, str] = {
    "reported": "上报 reported",
    "filed": "立案 filed",
    "not_filed": "不予立案 not filed",
    "dispatched": "已派遣 dispatched",
    "handling": "处置中 handling",
    "handled": "已处置 handled",
    "verified": "已核查 verified",
    "closed": "已结案 closed",
    "parked": "挂账 parked",
    "merged": "已合并 merged as a duplicate",
}
TERMINAL = frozenset({"not_filed", "closed", "merged"})
OPEN = tuple(s for s in STATES if s not in TERMINAL)

SOURCES: dict[str, str] = {
    "patrol": "网格员巡查 gridworker patrol",
    "hotline": "12345 热线 citizen hotline",
    "app": "移动应用 mobile app",
    "resident": "居民报告 resident",
    "superior": "上级交办 assigned by a superior",
    "petition": "信访督办 petition",
    "video": "视频/物联网 video or IoT",
}


@dataclass(frozen=True)
class Transition:
    """An action: the states it applies in, the state it leads to (None: the same), the
    permission it needs, and the step whose clock starts (None: no deadline)."""

    sources: tuple[str, ...]
    target: str | None
    permission: str
    label: str
    step: str | None = None


TRANSITIONS: dict[str, Transition] = {
    "file": Transition(("reported",), "filed", "incidents:dispatch", "立案 file", "dispatch"),
    "reject": Transition(("reported",), "not_filed", "incidents:dispatch", "不予立案 not filed"),
    "merge": Transition(("reported", "filed"), "merged", "incidents:dispatch", "合并 merge"),
    "dispatch": Transition(("filed",), "dispatched", "incidents:dispatch", "派遣 dispatch",
                           "handle"),
    "accept": Transition(("dispatched",), "handling", "incidents:handle", "接单 accept"),
    "return": Transition(("dispatched", "handling"), "filed", "incidents:handle",
                         "回退 return as mis-dispatched", "dispatch"),
    "request_extension": Transition(("dispatched", "handling"), None, "incidents:handle",
                                    "申请延期 request an extension"),
    "approve_extension": Transition(("dispatched", "handling"), None, "incidents:dispatch",
                                    "批准延期 approve the extension"),
    "deny_extension": Transition(("dispatched", "handling"), None, "incidents:dispatch",
                                 "驳回延期 deny the extension"),
    "complete": Transition(("handling",), "handled", "incidents:handle", "处置完成 handled",
                           "verify"),
    "verify": Transition(("handled",), "verified", "incidents:verify", "核查通过 verified"),
    "rework": Transition(("handled",), "handling", "incidents:verify", "返工 rework", "handle"),
    "close": Transition(("verified",), "closed", "incidents:dispatch", "结案 close"),
    "park": Transition(("filed", "dispatched", "handling"), "parked", "incidents:dispatch",
                       "挂账 park"),
    "unpark": Transition(("parked",), None, "incidents:dispatch", "解除挂账 unpark"),
}  # fmt: skip

# The step whose deadline runs in each open state.
STEP_OF_STATE = {"filed": "dispatch", "dispatched": "handle", "handling": "handle",
                 "handled": "verify"}  # fmt: skip


class IncidentError(Exception):
    """A refusal with an HTTP status, a stable kind and, where it applies, the field."""

    def __init__(
        self, status: int, kind: str, detail: str, field: str | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail, self.field, self.extra = (
            status, kind, detail, field, extra
        )  # fmt: skip


def allowed_actions(status: str, role: str, *, extension_pending: bool = False) -> list[str]:
    """What ``role`` may do to a case in ``status`` (the table, read one way)."""
    out = []
    for action, t in TRANSITIONS.items():
        if status not in t.sources or not identity.allowed(role, t.permission):
            continue
        pending_only = action in ("approve_extension", "deny_extension")
        if pending_only != extension_pending and action in (
            "approve_extension", "deny_extension", "request_extension"
        ):  # fmt: skip
            continue
        out.append(action)
    return out


# -- catalogue and calendar ---------------------------------------------------------------------


def load_classes(engine: Engine, path: Path) -> int:
    """Insert or update the classes of a catalogue file (by code); returns how many."""
    catalog = load_catalog(path)
    with engine.begin() as conn:
        for c in catalog.classes.values():
            conn.execute(
                text(
                    """
                    INSERT INTO incident_class (code, kind, major_code, major_name_zh,
                        major_name_en, name_zh, name_en, filing_condition, closing_condition,
                        limits, department_kind, duplicate_radius_m, duplicate_window_h, urgent)
                    VALUES (:code, :kind, :major_code, :major_name_zh, :major_name_en, :name_zh,
                        :name_en, :filing_condition, :closing_condition, CAST(:limits AS jsonb),
                        :department_kind, :duplicate_radius_m, :duplicate_window_h, :urgent)
                    ON CONFLICT (code) DO UPDATE SET kind = EXCLUDED.kind,
                        major_code = EXCLUDED.major_code, major_name_zh = EXCLUDED.major_name_zh,
                        major_name_en = EXCLUDED.major_name_en, name_zh = EXCLUDED.name_zh,
                        name_en = EXCLUDED.name_en, filing_condition = EXCLUDED.filing_condition,
                        closing_condition = EXCLUDED.closing_condition, limits = EXCLUDED.limits,
                        department_kind = EXCLUDED.department_kind,
                        duplicate_radius_m = EXCLUDED.duplicate_radius_m,
                        duplicate_window_h = EXCLUDED.duplicate_window_h, urgent = EXCLUDED.urgent
                    """
                ),
                {
                    "code": c.code, "kind": c.kind, "major_code": c.major_code,
                    "major_name_zh": c.major_name_zh, "major_name_en": c.major_name_en,
                    "name_zh": c.name_zh, "name_en": c.name_en,
                    "filing_condition": c.filing_condition,
                    "closing_condition": c.closing_condition,
                    "limits": json.dumps({k: {"amount": v.amount, "time_type": v.time_type}
                                          for k, v in c.limits.items()}),
                    "department_kind": c.department_kind,
                    "duplicate_radius_m": c.duplicate_radius_m,
                    "duplicate_window_h": c.duplicate_window_h, "urgent": c.urgent,
                },
            )  # fmt: skip
    return len(catalog.classes)


@cache
def calendar(path: Path = DEFAULT_CALENDAR) -> WorkCalendar:
    return load_calendar(path)


def get_class(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(
        text("SELECT * FROM incident_class WHERE code = :c"), {"c": code}
    ).mappings().first()  # fmt: skip
    if row is None:
        codes = conn.execute(text("SELECT code, name_zh, name_en FROM incident_class")).all()
        near = difflib.get_close_matches(code.upper(), [c.code for c in codes], n=5, cutoff=0.5)
        named = [c.code for c in codes if code and (code in c.name_zh or
                                                    code.lower() in c.name_en.lower())]  # fmt: skip
        suggestions = list(dict.fromkeys(named[:5] + near))[:5]
        hint = f"; nearest: {', '.join(suggestions)}" if suggestions else ""
        raise IncidentError(
            422, "unknown-class", f"class_code: unknown class {code!r}{hint}", "class_code",
            nearest_codes=suggestions,
        )  # fmt: skip
    return dict(row)


def step_deadline(cls: dict[str, Any], step: str, start: dt.datetime, cal: WorkCalendar) -> Any:
    limit = cls["limits"][step]
    return cal.deadline(start, float(limit["amount"]), limit["time_type"])


# -- intake -------------------------------------------------------------------------------------


@dataclass
class Photo:
    content: bytes
    content_type: str


PHOTO_TYPES = {"image/jpeg": (b"\xff\xd8\xff", ".jpg"), "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
               "image/webp": (b"RIFF", ".webp")}  # fmt: skip


def check_photo(photo: Photo, max_bytes: int, index: int) -> None:
    """Size and type, from the bytes themselves (a client's content type is only a claim)."""
    if len(photo.content) > max_bytes:
        raise IncidentError(
            413, "photo-too-large",
            f"photos[{index}]: {len(photo.content):,} bytes, over {max_bytes:,}",
            f"photos[{index}]",
        )  # fmt: skip
    for kind, (magic, _) in PHOTO_TYPES.items():
        if photo.content.startswith(magic) and (kind != "image/webp" or
                                                photo.content[8:12] == b"WEBP"):  # fmt: skip
            photo.content_type = kind
            return
    raise IncidentError(
        415, "photo-type", f"photos[{index}]: not a JPEG, PNG or WebP image", f"photos[{index}]"
    )


def store_photo(photo_dir: Path, photo: Photo) -> tuple[str, Path]:
    """Content-addressed: the file is named by its SHA-256, so a retry writes nothing new."""
    digest = hashlib.sha256(photo.content).hexdigest()
    path = photo_dir / digest[:2] / (digest + PHOTO_TYPES[photo.content_type][1])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(photo.content)
        tmp.replace(path)
    return digest, path


@dataclass(frozen=True)
class Report:
    lon: float
    lat: float
    crs: str
    class_code: str
    source: str
    description: str
    address: str | None = None
    contact: str | None = None

    def digest(self, photos: list[Photo]) -> str:
        body = json.dumps(self.__dict__, sort_keys=True, ensure_ascii=False)
        parts = [body, *(hashlib.sha256(p.content).hexdigest() for p in photos)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def cgcs2000_point(lon: float, lat: float, crs: str) -> tuple[np.ndarray, np.ndarray, str]:
    """A device's point in CGCS2000, or a 422 naming the field (as the locate endpoint)."""
    try:
        name = point_crs(crs)
    except UnknownCRSError as exc:
        raise IncidentError(422, "invalid-parameter", f"crs: {exc}", "crs") from None
    problem = coordinate_problems(np.array([lon]), np.array([lat]))[0]
    if problem:
        raise IncidentError(422, "invalid-parameter", f"{problem[0]}: {problem[1]}", problem[0])
    x, y = to_cgcs2000(np.array([lon]), np.array([lat]), name)
    return x, y, name


def locate_point(locator: LocateService, report: Report) -> dict[str, Any]:
    """The point in CGCS2000 and its grid chain in the active boundary version."""
    x, y, name = cgcs2000_point(report.lon, report.lat, report.crs)
    snapshot = locator.current()
    if snapshot is None:
        raise IncidentError(503, "no-boundary-version", "no boundary version is active")
    index = snapshot.index
    i = int(index.locate_index(x, y)[0])
    chain = index.chain_at(i)
    where = {"x": float(x[0]), "y": float(y[0]), "crs": name, "version": snapshot.version.id}
    if i >= 0:
        codes = {k: chain[f"{k}_code"] or None for k in ("grid", "community", "street", "district")}
        return {**where, **codes, "region": chain["grid_code"], "out_of_area": False}
    nearest, _ = index.nearest(x, y)
    district = index.chain_at(index.position(nearest[0]))["district_code"]
    return {**where, "grid": None, "community": None, "street": None, "district": None,
            "region": district, "out_of_area": True}  # fmt: skip


@dataclass(frozen=True)
class Intake:
    """What intake answers: the case's id, whether this request made it (False: a retry with
    the same key), and for a new case its row as ``_CASE_COLUMNS`` reads it (None on a retry)."""

    id: int
    created: bool
    case: dict[str, Any] | None = None


# Open cases of the same class within the class's radius and window of case ``i`` (class ``c``);
# degrees first so the GiST index is used (a metre is under 1.7e-5 deg of longitude up to 54 deg
# N, all of China), then metres on the sphere.
_DUPLICATES_OF = """
SELECT o.id, o.status, o.reported_at,
       round(ST_Distance(o.geom::geography, i.geom::geography)::numeric, 1)::float AS distance_m
FROM incident o
WHERE o.class_code = i.class_code AND o.id <> i.id AND o.status <> ALL(:terminal)
  AND abs(extract(epoch FROM o.reported_at - i.reported_at)) <= c.duplicate_window_h * 3600
  AND ST_DWithin(o.geom, i.geom, c.duplicate_radius_m * 1.7e-5)
  AND ST_DWithin(o.geom::geography, i.geom::geography, c.duplicate_radius_m)
ORDER BY distance_m, o.id LIMIT 10
"""

# Intake in one round trip: the case (unless its key was used), its first history row, and the
# case read back with its possible duplicates. No row: an unknown class, or the key's retry.
_INTAKE_SQL = f"""
WITH c AS (
    SELECT code, name_zh, duplicate_radius_m, duplicate_window_h FROM incident_class
    WHERE code = :cls
), i AS (
    INSERT INTO incident (status, class_code, source, description, address, geom, input_lon,
        input_lat, input_crs, grid_code, community_code, street_code, district_code,
        region_code, boundary_version_id, out_of_area, reporter_id, reporter_contact,
        reported_at, idempotency_key, request_hash)
    SELECT 'reported', c.code, :source, :description, :address,
        ST_SetSRID(ST_MakePoint(:x, :y), 4490), :lon, :lat, :crs, :grid, :community, :street,
        :district, :region, :version, :out, :reporter, :contact, :at, :key, :hash
    FROM c
    ON CONFLICT (reporter_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), h AS (
    INSERT INTO incident_history (incident_id, at, actor_id, actor_name, actor_role, action,
        from_status, to_status, note, geom, data)
    SELECT i.id, :at, :reporter, :actor, :role, 'report', NULL, 'reported', '', i.geom,
        CAST(:data AS jsonb)
    FROM i
    RETURNING *
)
SELECT i.*, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, c.name_zh AS class_name,
       (i.due_at IS NOT NULL AND i.due_at < now()) AS overdue, '[]'::json AS photo_list,
       json_build_array(json_build_object('at', h.at, 'actor', h.actor_name,
           'role', h.actor_role, 'action', h.action, 'from_status', h.from_status,
           'to_status', h.to_status, 'note', h.note, 'lon', ST_X(h.geom), 'lat', ST_Y(h.geom),
           'data', h.data)) AS history_list,
       (SELECT coalesce(json_agg(d ORDER BY d.distance_m, d.id), '[]')
        FROM ({_DUPLICATES_OF}) d) AS duplicate_list
FROM i, c, h
"""


def report_incident(
    engine: Engine,
    locator: LocateService,
    principal: Principal,
    reach: ScopeFilter,
    report: Report,
    *,
    photos: list[Photo] = (),  # type: ignore[assignment]
    photo_dir: Path,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> Intake:
    """Take a report in: locate it, store it (with its photos) and its first history row, and
    read it back with its possible duplicates. A retry with the same idempotency key and body
    answers the first case (created False); the same key with another body is refused (409)."""
    if report.source not in SOURCES:
        raise IncidentError(
            422, "invalid-parameter",
            f"source: unknown source {report.source!r}; sources: {', '.join(SOURCES)}", "source",
        )  # fmt: skip
    if not report.description.strip():
        raise IncidentError(422, "invalid-parameter", "description: empty", "description")
    digest = report.digest(photos)
    place = locate_point(locator, report)
    if not reach.allows(place["region"]):
        raise IncidentError(
            403, "outside-scope",
            f"the point lies in {place['region']}, outside your area {principal.region_code}",
            "lon",
        )  # fmt: skip
    at = now or dt.datetime.now(dt.UTC)
    data = {"source": report.source, "out_of_area": place["out_of_area"]}
    # One transaction; a parallel retry with the same key waits on the unique index until the
    # first commits, then inserts nothing and answers the first case.
    with engine.begin() as conn:
        row = conn.execute(
            text(_INTAKE_SQL),
            {"cls": report.class_code, "source": report.source,
             "description": report.description, "address": report.address, "x": place["x"],
             "y": place["y"], "lon": report.lon, "lat": report.lat, "crs": place["crs"],
             "grid": place["grid"], "community": place["community"], "street": place["street"],
             "district": place["district"], "region": place["region"],
             "version": place["version"], "out": place["out_of_area"], "reporter": principal.id,
             "actor": principal.name, "role": principal.role, "contact": report.contact,
             "at": at, "key": idempotency_key, "hash": digest, "data": json.dumps(data),
             "terminal": list(TERMINAL)},
        ).mappings().first()  # fmt: skip
        if row is None:
            key = idempotency_key
            found = None if key is None else _by_key(conn, principal.id, key)
            if found is None:
                get_class(conn, report.class_code)  # raises the 422 with the nearest codes
                raise RuntimeError("intake inserted nothing for a known class")
            return _replayed(found, digest)
        case = dict(row)
        case["photo_list"] = [_store(conn, case["id"], principal, photo_dir, p) for p in photos]
    return Intake(case["id"], True, case)


def _store(
    conn: Connection, incident_id: int, who: Principal, photo_dir: Path, photo: Photo
) -> dict[str, Any]:
    digest, path = store_photo(photo_dir, photo)
    photo_id = conn.execute(
        text(
            "INSERT INTO incident_photo (incident_id, sha256, content_type, bytes, path, "
            "uploaded_by) VALUES (:i, :h, :t, :n, :p, :u) RETURNING id"
        ),
        {"i": incident_id, "h": digest, "t": photo.content_type, "n": len(photo.content),
         "p": str(path), "u": who.id},
    ).scalar_one()  # fmt: skip
    return {"id": photo_id, "sha256": digest, "content_type": photo.content_type,
            "bytes": len(photo.content)}  # fmt: skip


def _by_key(conn: Connection, reporter: int, key: str) -> Any:
    return conn.execute(
        text(
            "SELECT id, request_hash FROM incident WHERE reporter_id = :r AND idempotency_key = :k"
        ),
        {"r": reporter, "k": key},
    ).first()


def _replayed(found: Any, digest: str) -> Intake:
    if found.request_hash != digest:
        raise IncidentError(
            409, "idempotency-key-reused",
            f"this Idempotency-Key already made case {found.id} from a different request",
            "Idempotency-Key", incident_id=found.id,
        )  # fmt: skip
    return Intake(found.id, False)


def _history(
    conn: Connection,
    incident_id: int,
    who: Principal,
    action: str,
    before: str | None,
    after: str,
    note: str,
    at: dt.datetime,
    where: tuple[float, float] | None,
    data: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        text(
            "INSERT INTO incident_history (incident_id, at, actor_id, actor_name, actor_role, "
            "action, from_status, to_status, note, geom, data) VALUES (:i, :at, :a, :n, :r, :act, "
            ":f, :t, :note, CASE WHEN CAST(:x AS float8) IS NULL THEN NULL "
            "ELSE ST_SetSRID(ST_MakePoint(:x, :y), 4490) END, CAST(:d AS jsonb))"
        ),
        {"i": incident_id, "at": at, "a": who.id, "n": who.name, "r": who.role, "act": action,
         "f": before, "t": after, "note": note, "x": where[0] if where else None,
         "y": where[1] if where else None, "d": json.dumps(data) if data else None},
    )  # fmt: skip


def duplicates(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    """Open cases of the same class within the class's radius and window of this one."""
    rows = conn.execute(
        text(
            "SELECT d.* FROM incident i JOIN incident_class c ON c.code = i.class_code, "
            f"LATERAL ({_DUPLICATES_OF}) d WHERE i.id = :id"
        ),
        {"id": incident_id, "terminal": list(TERMINAL)},
    ).mappings()
    return [dict(r) for r in rows]


def scope_sql(reach: ScopeFilter) -> str:
    """The shared scope filter over cases (alias ``i``): region subtree, or for department
    officers the cases dispatched to their department."""
    return reach.sql(region="i.region_code", department="i.department_code")


# -- transitions --------------------------------------------------------------------------------


@dataclass
class Action:
    action: str
    note: str = ""
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    department: str | None = None
    target: int | None = None  # merge: the case this one duplicates
    amount: float | None = None  # extension: how much more, in the step's time type
    expected_version: int | None = None


def act(
    engine: Engine,
    principal: Principal,
    reach: ScopeFilter,
    incident_id: int,
    request: Action,
    *,
    now: dt.datetime | None = None,
    cal: WorkCalendar | None = None,
) -> None:
    """Apply one action of the transition table to a case, or refuse it (IncidentError)."""
    t = TRANSITIONS.get(request.action)
    if t is None:
        raise IncidentError(
            422, "invalid-parameter",
            f"action: unknown action {request.action!r}; actions: {', '.join(TRANSITIONS)}",
            "action",
        )  # fmt: skip
    where = action_point(request.lon, request.lat, request.crs)
    at = now or dt.datetime.now(dt.UTC)
    cal = cal or calendar()
    with engine.begin() as conn:
        case = conn.execute(
            text(
                "SELECT i.*, ST_X(i.geom) AS x, ST_Y(i.geom) AS y FROM incident i "
                f"WHERE i.id = :id AND {scope_sql(reach)} FOR UPDATE"
            ),
            {**reach.params, "id": incident_id},
        ).mappings().first()  # fmt: skip
        if case is None:
            raise IncidentError(404, "not-found", f"no incident {incident_id}")
        status = case["status"]
        pending = case["extension_request"] is not None
        mine = allowed_actions(status, principal.role, extension_pending=pending)
        if not identity.allowed(principal.role, t.permission):
            raise IncidentError(
                403, "forbidden",
                f"a {principal.role} may not {request.action}; allowed here: "
                f"{', '.join(mine) or 'nothing'}", "action", allowed_actions=mine,
            )  # fmt: skip
        if request.expected_version is not None and request.expected_version != case["version"]:
            raise IncidentError(
                409, "conflict",
                f"the case changed (version {case['version']}, not {request.expected_version})",
                "expected_version", allowed_actions=mine,
            )  # fmt: skip
        if request.action not in mine:
            raise IncidentError(
                409, "invalid-transition",
                f"{request.action} is not possible on a {status} case"
                + (" (no extension is pending)" if "extension" in request.action else "")
                + f"; allowed: {', '.join(mine) or 'nothing'}", "action", allowed_actions=mine,
            )  # fmt: skip
        _apply(conn, case, t, request, principal, at, cal, where)


def advance(
    conn: Connection,
    incident_id: int,
    principal: Principal,
    action: str,
    *,
    at: dt.datetime,
    note: str = "",
    department: str | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """Apply ``action`` to a case inside the caller's transaction if the case's state allows it
    (False: left as it is). No role or scope check: the calling workflow has made them — this is
    how a whistle moves the cases it was blown for, each step in the cases' own history."""
    t = TRANSITIONS[action]
    case = conn.execute(
        text("SELECT i.*, ST_X(i.geom) AS x, ST_Y(i.geom) AS y FROM incident i "
             "WHERE i.id = :id FOR UPDATE"),
        {"id": incident_id},
    ).mappings().first()  # fmt: skip
    if case is None or case["status"] not in t.sources:
        return False
    request = Action(action, note=note, department=department)
    _apply(conn, case, t, request, principal, at, calendar(), None, data)
    return True


def _apply(
    conn: Connection,
    case: Any,
    t: Transition,
    request: Action,
    principal: Principal,
    at: dt.datetime,
    cal: WorkCalendar,
    where: tuple[float, float] | None,
    data: dict[str, Any] | None = None,
) -> None:
    """The effects of an allowed action, the case's new version and its history row."""
    cls = conn.execute(
        text("SELECT * FROM incident_class WHERE code = :c"), {"c": case["class_code"]}
    ).mappings().one()  # fmt: skip
    changes, recorded = _effects(conn, case, cls, t, request, at, cal)
    status = case["status"]
    after = changes.get("status", status)
    sets = ", ".join(f"{k} = :{k}" for k in changes)
    conn.execute(
        text(f"UPDATE incident SET {sets}{', ' if sets else ''}version = version + 1 "
             "WHERE id = :id"),
        {**{k: (json.dumps(v) if k == "extension_request" and v is not None else v)
            for k, v in changes.items()}, "id": case["id"]},
    )  # fmt: skip
    _history(conn, case["id"], principal, request.action, status, after, request.note, at,
             where, {**recorded, **(data or {})})  # fmt: skip


def action_point(lon: float | None, lat: float | None, crs: str) -> tuple[float, float] | None:
    """Where an actor stands, in CGCS2000 (None when not given; both or neither)."""
    if lon is None and lat is None:
        return None
    if lon is None or lat is None:
        missing = "lon" if lon is None else "lat"
        raise IncidentError(422, "invalid-parameter", f"{missing}: give both lon and lat", missing)
    x, y, _ = cgcs2000_point(lon, lat, crs)
    return float(x[0]), float(y[0])


def _effects(
    conn: Connection,
    case: Any,
    cls: dict[str, Any],
    t: Transition,
    request: Action,
    at: dt.datetime,
    cal: WorkCalendar,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an allowed action changes on the case, and what its history row records."""
    action = request.action
    changes: dict[str, Any] = {}
    data: dict[str, Any] = {}
    late = case["due_at"] is not None and at > case["due_at"]
    if t.target is not None:
        changes["status"] = t.target
    if action in ("dispatch", "complete", "verify", "rework") and late:
        changes["overdue_steps"] = case["overdue_steps"] + 1
        data["late_step"] = case["step"]
    if t.step is not None:
        changes["step"] = t.step
        changes["due_at"] = step_deadline(cls, t.step, at, cal)
    if action == "file":
        changes["filed_at"] = at
    elif action == "dispatch":
        department = request.department or _route(conn, case, cls)
        exists = conn.execute(
            text("SELECT 1 FROM department WHERE code = :c"), {"c": department}
        ).first()  # fmt: skip
        if exists is None:
            raise IncidentError(
                422, "invalid-parameter", f"department: unknown department {department!r}",
                "department",
            )  # fmt: skip
        changes.update(department_code=department, dispatched_at=at)
        data["department"] = department
    elif action == "return":
        changes["department_code"] = None
        data["department"] = case["department_code"]
    elif action == "complete":
        changes["handled_at"] = at
    elif action == "rework":
        changes["rework_count"] = case["rework_count"] + 1
    elif action == "verify":
        changes.update(verified_at=at, step=None, due_at=None)
    elif action == "close":
        changes.update(closed_at=at, closed_on_time=case["overdue_steps"] == 0, step=None,
                       due_at=None)  # fmt: skip
    elif action in ("reject",):
        changes.update(step=None, due_at=None)
    elif action == "merge":
        target = request.target
        if target is None or target == case["id"]:
            raise IncidentError(
                422, "invalid-parameter", "target: the id of the case this one duplicates",
                "target",
            )  # fmt: skip
        other = conn.execute(
            text("SELECT status FROM incident WHERE id = :t"), {"t": target}
        ).scalar_one_or_none()  # fmt: skip
        if other is None or other in TERMINAL:
            raise IncidentError(
                422, "invalid-parameter", f"target: {target} is not an open case", "target"
            )  # fmt: skip
        changes.update(merged_into=target, step=None, due_at=None)
        conn.execute(
            text("INSERT INTO incident_link (incident_id, other_id, kind) VALUES "
                 "(:a, :b, 'duplicate_of'), (:b, :a, 'duplicate') ON CONFLICT DO NOTHING"),
            {"a": case["id"], "b": target},
        )  # fmt: skip
        data["target"] = target
    elif action == "park":
        changes.update(parked_from=case["status"], step=None, due_at=None)
    elif action == "unpark":
        restored = case["parked_from"] or "filed"
        step = STEP_OF_STATE.get(restored)
        changes.update(status=restored, parked_from=None, step=step,
                       due_at=step_deadline(cls, step, at, cal) if step else None)  # fmt: skip
    elif action == "request_extension":
        amount = request.amount
        if amount is None or not amount > 0:
            raise IncidentError(
                422, "invalid-parameter",
                "amount: how much more time, a positive number in the step's time type", "amount",
            )  # fmt: skip
        changes["extension_request"] = {"amount": amount, "at": at.isoformat(),
                                        "note": request.note}  # fmt: skip
        data["amount"] = amount
    elif action == "approve_extension":
        ask = case["extension_request"]
        step = case["step"] or "handle"
        time_type = cls["limits"][step]["time_type"]
        base = max(case["due_at"], at) if case["due_at"] else at
        changes.update(
            due_at=cal.deadline(base, float(ask["amount"]), time_type),
            extension_request=None,
            extension_count=case["extension_count"] + 1,
        )
        data.update(amount=ask["amount"], time_type=time_type)
    elif action == "deny_extension":
        changes["extension_request"] = None
    return changes, data


def _route(conn: Connection, case: Any, cls: dict[str, Any]) -> str:
    """The responsible department: of the class's kind, the one whose service area covers the
    point most closely (a station before its bureau), else one of that kind without an area."""
    covering = identity.departments_covering(
        conn, case["x"], case["y"], kind=cls["department_kind"]
    )
    if covering:
        return covering[0]["code"]
    fallback = conn.execute(
        text("SELECT code FROM department WHERE kind = :k ORDER BY service_area IS NOT NULL, code "
             "LIMIT 1"),
        {"k": cls["department_kind"]},
    ).scalar_one_or_none()  # fmt: skip
    if fallback is None:
        raise IncidentError(
            422, "invalid-parameter",
            f"department: no {cls['department_kind']} department to route to; name one",
            "department",
        )  # fmt: skip
    return fallback


# -- region figures -----------------------------------------------------------------------------

FIGURES_SQL = """
SELECT count(*) AS reported,
       count(*) FILTER (WHERE i.filed_at IS NOT NULL) AS filed,
       count(*) FILTER (WHERE i.status = 'not_filed') AS not_filed,
       count(*) FILTER (WHERE i.dispatched_at IS NOT NULL) AS dispatched,
       count(*) FILTER (WHERE i.handled_at IS NOT NULL) AS handled,
       count(*) FILTER (WHERE i.status = 'closed') AS closed,
       count(*) FILTER (WHERE i.status = 'closed' AND i.closed_on_time) AS closed_on_time,
       count(*) FILTER (WHERE i.status <> ALL(:terminal) AND i.due_at < now()) AS overdue,
       count(*) FILTER (WHERE i.status <> ALL(:terminal)) AS open,
       count(*) FILTER (WHERE i.rework_count > 0) AS rework,
       count(*) FILTER (WHERE i.extension_count > 0) AS extended,
       count(*) FILTER (WHERE i.out_of_area) AS out_of_area
FROM incident i
WHERE i.region_code LIKE :region AND i.reported_at >= :since AND i.reported_at < :until
  AND {scope}
"""


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(
    conn: Connection, reach: ScopeFilter, code: str, since: dt.datetime, until: dt.datetime
) -> dict[str, Any]:
    """The case-loop figures of a region's subtree for cases reported in [since, until).

    Rates, each None when its denominator is 0:
    立案率 filing_rate = filed / reported; 结案率 closing_rate = closed / filed;
    按期结案率 on_time_rate = closed with no step past its deadline / closed;
    返工率 rework_rate = cases reworked at least once / cases handled."""
    counts = dict(
        conn.execute(
            text(FIGURES_SQL.replace("{scope}", scope_sql(reach))),
            {**reach.params, "region": prefix_pattern(code), "since": since, "until": until,
             "terminal": list(TERMINAL)},
        ).mappings().one()
    )  # fmt: skip
    rates = {
        "filing_rate": _rate(counts["filed"], counts["reported"]),
        "closing_rate": _rate(counts["closed"], counts["filed"]),
        "on_time_rate": _rate(counts["closed_on_time"], counts["closed"]),
        "rework_rate": _rate(counts["rework"], counts["handled"]),
    }
    return {"counts": counts, "rates": rates}
