"""Whistles (街道吹哨、部门报到): a street — or a community, or the district — summons the
departments that own a problem it cannot solve, and they report on site.

The loop (Hongqiao): whistle source formed → blown → departments report → supervision and
evaluation → feedback. Here:

* **blow** (``blown``): a street commander blows a street whistle, a community officer a
  community whistle (to the grid's 1+8+X members), for cases and/or a place (point or polygon),
  with a call situation and a grade. Addressees are proposed from the situation's department
  kinds and the place (the department whose service area covers it, the local station first) or,
  for a community whistle, from the grid members of the situation's member kinds; the blower may
  name them instead. Each is lead (主办), co-handler (协办) or notified (知会).
* **acknowledge**, then **check_in** on site with a location (``responding``): a check-in farther
  than ``GRIDMAP_CHECKIN_RADIUS_M`` from the place is flagged. A check-in also acknowledges.
* **progress** notes and photos; **resolve** by each lead (after its check-in) — the whistle is
  ``resolved`` when every lead has; **confirm** by each co-handler (after its check-in).
* **close** by the blowing unit once every lead has resolved and every co-handler that came on
  site has confirmed (``closed``; one that never came does not hold the whistle open — its
  absence counts against it in the evaluation), or **reopen** when the check fails; **feedback**
  from the public on a closed one. Reopened work is measured against the original deadline
  (it is already late); a step's supervision record is not opened a second time.
* **escalate**: a second whistle one level up (community → street → district) keeping the link
  to the first, which ends ``escalated``; at district level the district leaders join as
  addressees. **cancel** while nobody is on site.
* Supervision (:func:`supervise`, run by the app's scheduler): steps past their deadline are
  marked overdue, a supervision record (督办) is opened once per step and notifications go to the
  district supervision office, the department and the blowing unit.

Deadlines run on natural time from the blow (emergencies keep no office hours): per grade, to
report on site and to resolve. The cases a whistle covers move on with it, each step in the
case's own history with the actor's own role: at the blow a reported case is filed and a filed
one dispatched to the lead department; when the lead checks in a dispatched case is accepted,
when it resolves a case in handling is completed; at close a handled case is verified and closed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import shapely
from sqlalchemy import Connection, Engine, text

from app.services import identity
from app.services import incidents as cases
from app.services.identity import Principal
from app.services.incidents import (
    IncidentError,
    Photo,
    Report,
    action_point,
    cgcs2000_point,
    locate_point,
)
from app.services.locate import LocateService
from app.services.scoping import ScopeFilter
from app.services.situations import DEFAULT_SITUATIONS, grade_limits, load_situations

LEVELS = ("community", "street", "district")
NEXT_LEVEL = {"community": "street", "street": "district"}
STATES = ("blown", "responding", "resolved", "closed", "escalated", "cancelled")
OPEN = ("blown", "responding", "resolved")
TERMINAL = frozenset({"closed", "escalated", "cancelled"})
PARTY_ROLES = {"lead": "主办 lead", "co": "协办 co-handler", "notified": "知会 notified"}
PARTY_STATES = ("addressed", "acknowledged", "on_site", "done")
FEEDBACK_WORDS = ("satisfied", "basically_satisfied", "dissatisfied")
SYSTEM = "scheduler"

# A whistle's refusals are the same kind of object as a case's: status, stable kind, field.
WhistleError = IncidentError


@dataclass(frozen=True)
class Step:
    """An action: the whistle states it applies in, the state it leads to (None: the same, or
    decided by the effect), who may take it, and its label."""

    sources: tuple[str, ...]
    target: str | None
    actor: str  # party | lead | co | blower | escalator | anyone (a party or the blower)
    label: str


TRANSITIONS: dict[str, Step] = {
    "acknowledge": Step(("blown", "responding", "resolved"), "responding", "party",
                        "收到 acknowledge"),
    "check_in": Step(("blown", "responding", "resolved"), "responding", "party",
                     "到场报到 check in on site"),
    "progress": Step(OPEN, None, "anyone", "进展 progress note"),
    "resolve": Step(("responding",), None, "lead", "办结 resolve (lead)"),
    "confirm": Step(("responding", "resolved"), None, "co", "协办确认 confirm (co-handler)"),
    "reopen": Step(("resolved",), "responding", "blower", "验收不通过 reopen"),
    "close": Step(("resolved",), "closed", "blower", "核查结案 verify and close"),
    "feedback": Step(("closed",), None, "blower", "群众评价 public feedback"),
    "escalate": Step(OPEN, "escalated", "escalator", "二次吹哨 blow again one level up"),
    "cancel": Step(("blown", "responding"), "cancelled", "blower", "撤销 cancel"),
}  # fmt: skip

# Whistle-level SQL (alias ``w``): where the place lies, for scope; overdue right now.
PLACE_CODE = "coalesce(w.grid_code, w.community_code, w.street_code, w.region_code)"
OVERDUE_SQL = (
    "(w.status IN ('blown', 'responding', 'resolved') AND ("
    "(w.resolved_at IS NULL AND w.resolve_due_at < now()) OR (w.report_due_at < now() AND "
    "EXISTS (SELECT 1 FROM whistle_party op WHERE op.whistle_id = w.id "
    "AND op.role IN ('lead', 'co') AND op.arrived_at IS NULL))))"
)


def blow_permission(level: str) -> str:
    return f"whistles:blow_{level}"


# -- the catalogue --------------------------------------------------------------------------------


@cache
def catalog(path: Path = DEFAULT_SITUATIONS) -> Any:
    return load_situations(path)


def load_into(engine: Engine, path: Path = DEFAULT_SITUATIONS) -> int:
    """Insert or update the call situations of a catalogue file (by code); returns how many."""
    cat = load_situations(path)
    with engine.begin() as conn:
        for s in cat.situations.values():
            c = cat.classes[s.class_key]
            conn.execute(
                text(
                    """
                    INSERT INTO whistle_situation (code, class_key, class_code, class_name_zh,
                        class_name_en, name_zh, name_en, grade, lead, co, members)
                    VALUES (:code, :ck, :cc, :czh, :cen, :zh, :en, :grade, :lead, :co, :members)
                    ON CONFLICT (code) DO UPDATE SET class_key = EXCLUDED.class_key,
                        class_code = EXCLUDED.class_code, class_name_zh = EXCLUDED.class_name_zh,
                        class_name_en = EXCLUDED.class_name_en, name_zh = EXCLUDED.name_zh,
                        name_en = EXCLUDED.name_en, grade = EXCLUDED.grade, lead = EXCLUDED.lead,
                        co = EXCLUDED.co, members = EXCLUDED.members
                    """
                ),
                {"code": s.code, "ck": s.class_key, "cc": c.code, "czh": c.name_zh,
                 "cen": c.name_en, "zh": s.name_zh, "en": s.name_en, "grade": s.grade,
                 "lead": list(s.lead), "co": list(s.co), "members": list(s.members)},
            )  # fmt: skip
    return len(cat.situations)


def limits(overrides: dict[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """Per grade: (time to report on site, time to resolve), the catalogue's unless overridden
    (GRIDMAP_WHISTLE_LIMITS)."""
    try:
        return grade_limits(catalog(), overrides or None)
    except ValueError as exc:
        raise WhistleError(422, "invalid-parameter", f"whistle_limits: {exc}") from None


def get_situation(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(
        text("SELECT * FROM whistle_situation WHERE code = :c"), {"c": code}
    ).mappings().first()  # fmt: skip
    if row is None:
        rows = conn.execute(text("SELECT code, name_zh, name_en FROM whistle_situation")).all()
        named = [r.code for r in rows if code and (code in r.name_zh or
                                                   code.lower() in r.name_en.lower())]  # fmt: skip
        near = difflib.get_close_matches(code.upper(), [r.code for r in rows], n=5, cutoff=0.5)
        suggestions = list(dict.fromkeys(named[:5] + near))[:5]
        hint = f"; nearest: {', '.join(suggestions)}" if suggestions else ""
        raise WhistleError(
            422, "unknown-situation", f"situation_code: unknown situation {code!r}{hint}",
            "situation_code", nearest_codes=suggestions,
        )  # fmt: skip
    return dict(row)


# -- the place --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """A point (lon/lat) or a GeoJSON Polygon's rings, in a device CRS."""

    lon: float | None = None
    lat: float | None = None
    polygon: list[list[list[float]]] | None = None
    crs: str = "wgs84"


def place_geometry(place: Place) -> shapely.Geometry:
    """The place in CGCS2000: a point, or a valid polygon (each vertex converted). Coordinate
    problems name their field under ``place`` (``place.lon``, ``place.crs``, ``place.polygon``)."""
    try:
        return _place_geometry(place)
    except WhistleError as exc:
        if exc.field in ("lon", "lat", "crs"):
            field = "place.polygon" if place.polygon is not None and exc.field != "crs" else (
                f"place.{exc.field}")  # fmt: skip
            raise WhistleError(exc.status, exc.kind, f"place.{exc.detail}", field) from None
        raise


def _place_geometry(place: Place) -> shapely.Geometry:
    if place.polygon is None:
        if place.lon is None or place.lat is None:
            raise WhistleError(
                422, "invalid-parameter", "place: give lon and lat, or a polygon", "place"
            )
        x, y, _ = cgcs2000_point(place.lon, place.lat, place.crs)
        return shapely.Point(float(x[0]), float(y[0]))
    rings = []
    for i, ring in enumerate(place.polygon):
        if len(ring) < 4 or any(len(p) != 2 for p in ring):
            raise WhistleError(
                422, "invalid-parameter",
                f"place.polygon[{i}]: a ring needs at least 4 [lon, lat] positions",
                "place.polygon",
            )  # fmt: skip
        points = [cgcs2000_point(float(p[0]), float(p[1]), place.crs) for p in ring]
        rings.append([(float(px[0]), float(py[0])) for px, py, _ in points])
    if not rings:
        raise WhistleError(422, "invalid-parameter", "place.polygon: no ring", "place.polygon")
    polygon = shapely.Polygon(rings[0], rings[1:])
    if not polygon.is_valid:
        raise WhistleError(
            422, "invalid-parameter",
            f"place.polygon: not a valid polygon ({shapely.is_valid_reason(polygon)})",
            "place.polygon",
        )  # fmt: skip
    return polygon


def _chain(locator: LocateService, point: shapely.Point) -> dict[str, Any]:
    return locate_point(locator, Report(point.x, point.y, "cgcs2000", "", "", ""))


# -- addressees -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartyIn:
    """An addressee named by the blower: a department code or a staff user name."""

    role: str
    department: str | None = None
    staff: str | None = None


def propose(
    conn: Connection,
    level: str,
    situation: dict[str, Any],
    point: shapely.Point,
    grid_code: str | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Addressees from the catalogue and the place, and the kinds nobody could be found for.

    Street and district whistles: per department kind, the department whose service area covers
    the point, the smallest first (the street's police station before the district's bureau).
    Community whistles: the grid's members of the situation's member kinds (1+8+X); the grid
    leader — else the grid's own gridworker — leads, the others co-handle."""
    found: list[dict[str, Any]] = []
    missing: list[str] = []
    if level == "community":
        members = conn.execute(
            text(
                "SELECT s.id, s.name, s.display_name, a.kind FROM grid_assignment a "
                "JOIN staff s ON s.id = a.staff_id WHERE a.grid_code = :g AND s.active "
                "ORDER BY a.kind, s.name"
            ),
            {"g": grid_code},
        ).mappings().all()  # fmt: skip
        wanted = [k for k in situation["members"]]
        lead_kind = "leader" if any(m["kind"] == "leader" for m in members) else "primary"
        for m in members:
            if m["kind"] == lead_kind or m["kind"] in wanted:
                role = "lead" if m["kind"] == lead_kind else "co"
                if all(f.get("staff_id") != m["id"] for f in found):
                    found.append(
                        {
                            "staff_id": m["id"],
                            "name": m["name"],
                            "label": m["display_name"],
                            "role": role,
                            "kind": m["kind"],
                        }
                    )
        missing = [k for k in wanted if all(m["kind"] != k for m in members)]
        found.sort(key=lambda f: (f["role"] != "lead", f["name"]))
        return found, missing
    for role, kinds in (("lead", situation["lead"]), ("co", situation["co"])):
        for kind in kinds:
            covering = identity.departments_covering(conn, point.x, point.y, kind=kind)
            if not covering:
                missing.append(kind)
                continue
            d = covering[0]
            if all(f.get("code") != d["code"] for f in found):
                found.append(_department_party(conn, d["code"], role))
    return found, missing


def _department_party(conn: Connection, code: str, role: str) -> dict[str, Any]:
    d = conn.execute(
        text("SELECT id, code, name, kind FROM department WHERE code = :c"), {"c": code}
    ).mappings().first()  # fmt: skip
    if d is None:
        raise WhistleError(422, "invalid-parameter", f"parties: no department {code!r}", "parties")
    return {"department_id": d["id"], "code": d["code"], "name": d["name"], "label": d["name"],
            "role": role, "kind": d["kind"]}  # fmt: skip


def _named_parties(conn: Connection, parties: list[PartyIn]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, p in enumerate(parties):
        where = f"parties[{i}]"
        if p.role not in PARTY_ROLES:
            raise WhistleError(
                422, "invalid-parameter",
                f"{where}.role: {p.role!r} is not one of {', '.join(PARTY_ROLES)}",
                f"{where}.role",
            )  # fmt: skip
        if (p.department is None) == (p.staff is None):
            raise WhistleError(
                422, "invalid-parameter", f"{where}: name a department or a staff member",
                where,
            )  # fmt: skip
        if p.department is not None:
            try:
                party = _department_party(conn, p.department, p.role)
            except WhistleError:
                raise WhistleError(
                    422, "invalid-parameter", f"{where}.department: no department "
                    f"{p.department!r}", f"{where}.department",
                ) from None  # fmt: skip
        else:
            s = conn.execute(
                text("SELECT id, name, display_name FROM staff WHERE name = :n AND active"),
                {"n": p.staff},
            ).mappings().first()  # fmt: skip
            if s is None:
                raise WhistleError(
                    422, "invalid-parameter", f"{where}.staff: no active staff {p.staff!r}",
                    f"{where}.staff",
                )  # fmt: skip
            party = {"staff_id": s["id"], "name": s["name"], "label": s["display_name"],
                     "role": p.role, "kind": "staff"}  # fmt: skip
        key = ("d", party.get("department_id")) if "department_id" in party else (
            "s", party.get("staff_id"))  # fmt: skip
        if any((("d", o.get("department_id")) if "department_id" in o else
                ("s", o.get("staff_id"))) == key for o in out):  # fmt: skip
            raise WhistleError(
                422, "invalid-parameter", f"{where}: {party['name']} is named twice", where
            )
        out.append(party)
    if not any(p["role"] == "lead" for p in out):
        raise WhistleError(422, "invalid-parameter", "parties: name at least one lead", "parties")
    return out


# -- blowing ------------------------------------------------------------------------------------


@dataclass
class BlowRequest:
    level: str
    situation_code: str
    title: str
    place: Place | None = None
    incidents: list[int] = field(default_factory=list)
    grade: str | None = None
    description: str = ""
    parties: list[PartyIn] | None = None


def blow(
    engine: Engine,
    locator: LocateService,
    principal: Principal,
    reach: ScopeFilter,
    request: BlowRequest,
    *,
    limits_by_grade: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, bool]:
    """Blow a whistle; returns (id, created). Only the roles that may blow at that level, only
    within their own area; the place defaults to the first case's point."""
    if request.level not in ("community", "street", "district"):
        raise WhistleError(
            422, "invalid-parameter",
            f"level: {request.level!r} is not one of {', '.join(LEVELS)}", "level",
        )  # fmt: skip
    if not identity.allowed(principal.role, blow_permission(request.level)):
        may = [lv for lv in LEVELS if identity.allowed(principal.role, blow_permission(lv))]
        raise WhistleError(
            403, "forbidden",
            f"a {principal.role} may not blow a {request.level} whistle"
            + (f"; it may blow: {', '.join(may)}" if may else ""), "level",
        )  # fmt: skip
    if not request.title.strip():
        raise WhistleError(422, "invalid-parameter", "title: empty", "title")
    at = now or dt.datetime.now(dt.UTC)
    by_grade = limits_by_grade or limits()
    with engine.begin() as conn:
        if idempotency_key is not None:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:k), :s)"),
                {"k": "whistle:" + idempotency_key, "s": principal.id},
            )
            done = conn.execute(
                text("SELECT id FROM whistle WHERE blown_by = :s AND idempotency_key = :k"),
                {"s": principal.id, "k": idempotency_key},
            ).scalar_one_or_none()  # fmt: skip
            if done is not None:
                return done, False
        situation = get_situation(conn, request.situation_code)
        grade = request.grade or situation["grade"]
        if grade not in by_grade:
            raise WhistleError(
                422, "invalid-parameter", f"grade: {grade!r} is not one of {', '.join(by_grade)}",
                "grade",
            )  # fmt: skip
        covered = _covered_cases(conn, reach, request.incidents)
        geometry = _place_for(conn, request.place, covered)
        point = geometry if geometry.geom_type == "Point" else geometry.point_on_surface()
        chain = _chain(locator, point)
        place_code = chain["grid"] or chain["region"]
        if not reach.allows(place_code):
            raise WhistleError(
                403, "outside-scope",
                f"the place lies in {place_code}, outside your area {principal.region_code}",
                "place",
            )  # fmt: skip
        region = _blowing_region(principal, request.level, chain)
        if request.parties is None:
            parties, missing = propose(conn, request.level, situation, point, chain["grid"])
            if not any(p["role"] == "lead" for p in parties):
                raise WhistleError(
                    422, "no-addressees",
                    f"parties: nobody found to lead at this place (missing kinds: "
                    f"{', '.join(missing) or 'none'}); name the parties", "parties",
                )  # fmt: skip
        else:
            parties = _named_parties(conn, request.parties)
        report_limit, resolve_limit = by_grade[grade]
        whistle_id = conn.execute(
            text(
                """
                INSERT INTO whistle (level, status, situation_code, grade, title, description,
                    region_code, place, place_point, grid_code, community_code, street_code,
                    district_code, boundary_version_id, blown_by, blown_at, report_due_at,
                    resolve_due_at, idempotency_key)
                VALUES (:level, 'blown', :situation, :grade, :title, :description, :region,
                    ST_GeomFromText(:wkt, 4490), ST_SetSRID(ST_MakePoint(:x, :y), 4490), :grid,
                    :community, :street, :district, :version, :by, :at, :report_due,
                    :resolve_due, :key)
                RETURNING id
                """
            ),
            {"level": request.level, "situation": situation["code"], "grade": grade,
             "title": request.title.strip(), "description": request.description,
             "region": region, "wkt": geometry.wkt, "x": point.x, "y": point.y,
             "grid": chain["grid"], "community": chain["community"], "street": chain["street"],
             "district": chain["district"] or _district_of(region), "version": chain["version"],
             "by": principal.id, "at": at, "report_due": at + report_limit,
             "resolve_due": at + resolve_limit, "key": idempotency_key},
        ).scalar_one()  # fmt: skip
        _address(conn, whistle_id, parties, at)
        _history(conn, whistle_id, principal, "blow", None, "blown", at, note=request.description,
                 data={"level": request.level, "grade": grade, "situation": situation["code"],
                       "parties": [{"name": p["name"], "role": p["role"]} for p in parties],
                       "incidents": [c["id"] for c in covered]})  # fmt: skip
        _link_cases(conn, whistle_id, [c["id"] for c in covered])
        lead_department = next((p["code"] for p in parties
                                if p["role"] == "lead" and "code" in p), None)  # fmt: skip
        for c in covered:
            data = {"whistle": whistle_id}
            cases.advance(conn, c["id"], principal, "file", at=at, data=data,
                          note=f"吹哨 whistle {whistle_id}")  # fmt: skip
            if lead_department is not None:
                cases.advance(
                    conn,
                    c["id"],
                    principal,
                    "dispatch",
                    at=at,
                    data=data,
                    department=lead_department,
                    note=f"吹哨 whistle {whistle_id}",
                )
    return whistle_id, True


def _district_of(region: str) -> str | None:
    return region[:6] if len(region) >= 6 else None


def _blowing_region(principal: Principal, level: str, chain: dict[str, Any]) -> str:
    """The unit that blows: the principal's own street or community (an admin blows for the
    place's); a district whistle belongs to the place's district."""
    key = {"community": "community", "street": "street", "district": "district"}[level]
    if principal.role in ("street_commander", "community_officer", "district_commander"):
        own_level = {"street_commander": "street", "community_officer": "community",
                     "district_commander": "district"}[principal.role]  # fmt: skip
        if own_level == level:
            return principal.region_code
    code = chain[key] or (chain["region"] if level == "district" else None)
    if code is None:
        raise WhistleError(
            422, "out-of-area",
            f"place: outside every grid, so no {level} can blow for it", "place",
        )  # fmt: skip
    return code


def _covered_cases(conn: Connection, reach: ScopeFilter, ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    if len(set(ids)) != len(ids):
        raise WhistleError(422, "invalid-parameter", "incidents: a case is named twice",
                           "incidents")  # fmt: skip
    rows = conn.execute(
        text(
            "SELECT i.id, i.status, ST_X(i.geom) AS x, ST_Y(i.geom) AS y FROM incident i "
            f"WHERE i.id = ANY(:ids) AND {cases.scope_sql(reach)}"
        ),
        {**reach.params, "ids": ids},
    ).mappings().all()  # fmt: skip
    found = {r["id"]: dict(r) for r in rows}
    absent = [i for i in ids if i not in found]
    if absent:
        raise WhistleError(
            422, "invalid-parameter",
            f"incidents: no case {', '.join(map(str, absent))} in your area", "incidents",
        )  # fmt: skip
    return [found[i] for i in ids]


def _place_for(conn: Connection, place: Place | None, covered: list[dict[str, Any]]) -> Any:
    if place is not None:
        return place_geometry(place)
    if not covered:
        raise WhistleError(
            422, "invalid-parameter", "place: give a place, or the cases it is for", "place"
        )
    return shapely.Point(covered[0]["x"], covered[0]["y"])


def _address(conn: Connection, whistle_id: int, parties: list[dict[str, Any]], at: Any) -> None:
    for p in parties:
        conn.execute(
            text(
                "INSERT INTO whistle_party (whistle_id, department_id, staff_id, role, "
                "addressed_at) VALUES (:w, :d, :s, :r, :at)"
            ),
            {"w": whistle_id, "d": p.get("department_id"), "s": p.get("staff_id"),
             "r": p["role"], "at": at},
        )  # fmt: skip


def _link_cases(conn: Connection, whistle_id: int, ids: list[int]) -> None:
    for i in ids:
        conn.execute(
            text("INSERT INTO whistle_incident (whistle_id, incident_id) VALUES (:w, :i) "
                 "ON CONFLICT DO NOTHING"),
            {"w": whistle_id, "i": i},
        )  # fmt: skip


def _history(
    conn: Connection,
    whistle_id: int,
    who: Principal | None,
    action: str,
    before: str | None,
    after: str,
    at: dt.datetime,
    *,
    party_id: int | None = None,
    note: str = "",
    where: tuple[float, float] | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    return conn.execute(
        text(
            "INSERT INTO whistle_history (whistle_id, at, actor_id, actor_name, actor_role, "
            "action, from_status, to_status, party_id, note, geom, data) VALUES (:w, :at, :a, "
            ":n, :r, :act, :f, :t, :p, :note, CASE WHEN CAST(:x AS float8) IS NULL THEN NULL "
            "ELSE ST_SetSRID(ST_MakePoint(:x, :y), 4490) END, CAST(:d AS jsonb)) RETURNING id"
        ),
        {"w": whistle_id, "at": at, "a": who.id if who else None,
         "n": who.name if who else SYSTEM, "r": who.role if who else "system", "act": action,
         "f": before, "t": after, "p": party_id, "note": note,
         "x": where[0] if where else None, "y": where[1] if where else None,
         "d": json.dumps(data, ensure_ascii=False) if data else None},
    ).scalar_one()  # fmt: skip


# -- scope ------------------------------------------------------------------------------------


def scope_sql(reach: ScopeFilter, principal: Principal) -> tuple[str, dict[str, Any]]:
    """Whistles a principal may see (alias ``w``): those placed in their area; for department
    officers those addressed to their department or placed in its service area (the local
    station sees its area's whistles, and is refused — not told "no such whistle" — when it
    tries to act on one it was not called to); and always those addressed to them."""
    mine = ("EXISTS (SELECT 1 FROM whistle_party sp WHERE sp.whistle_id = w.id "
            "AND sp.staff_id = :scope_staff)")  # fmt: skip
    params = {**reach.params, "scope_staff": principal.id}
    if reach.departments is not None:
        return (
            "(EXISTS (SELECT 1 FROM whistle_party sp JOIN department sd ON sd.id = "
            "sp.department_id WHERE sp.whistle_id = w.id AND sd.code = ANY(:scope_departments))"
            " OR EXISTS (SELECT 1 FROM department sa WHERE sa.code = ANY(:scope_departments) "
            f"AND ST_Covers(sa.service_area, w.place_point)) OR {mine})", params,
        )  # fmt: skip
    return f"({reach.sql(region=PLACE_CODE)} OR {mine})", params


# -- acting -------------------------------------------------------------------------------------


@dataclass
class WhistleAction:
    action: str
    note: str = ""
    lon: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    party: str | None = None  # a department code or staff name: whom the caller acts for
    feedback: str | int | None = None
    grade: str | None = None  # escalate: the second whistle's grade (default: the same)
    expected_version: int | None = None


def _parties(conn: Connection, whistle_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(
        text(
            "SELECT p.*, d.code AS department_code, d.name AS department_name, "
            "s.name AS staff_name, s.display_name AS staff_display "
            "FROM whistle_party p LEFT JOIN department d ON d.id = p.department_id "
            "LEFT JOIN staff s ON s.id = p.staff_id WHERE p.whistle_id = :w ORDER BY p.id"
        ),
        {"w": whistle_id},
    ).mappings()]  # fmt: skip


def _is_blower(w: dict[str, Any], principal: Principal) -> bool:
    return identity.allowed(principal.role, blow_permission(w["level"])) and w[
        "region_code"
    ].startswith(principal.region_code)


def _is_escalator(w: dict[str, Any], principal: Principal) -> bool:
    """The blowing unit, or whoever may blow one level up over this place."""
    up = NEXT_LEVEL.get(w["level"])
    if up is None:
        return False
    return _is_blower(w, principal) or (
        identity.allowed(principal.role, blow_permission(up))
        and w["region_code"].startswith(principal.region_code)
    )


def _my_parties(
    parties: list[dict[str, Any]], principal: Principal, reach: ScopeFilter
) -> list[dict[str, Any]]:
    """The addressees the caller may act for: themself, or their department (or one below)."""
    out = [p for p in parties if p["staff_id"] is not None and p["staff_id"] == principal.id]
    if reach.departments is not None and identity.allowed(principal.role, "whistles:report"):
        out += [p for p in parties if p["department_code"] in reach.departments]
    return out


def allowed_actions(
    w: dict[str, Any], parties: list[dict[str, Any]], principal: Principal, reach: ScopeFilter
) -> list[str]:
    """What the caller may do to this whistle now."""
    mine = _my_parties(parties, principal, reach)
    out = []
    for action, step in TRANSITIONS.items():
        if w["status"] not in step.sources:
            continue
        if step.actor == "blower" and not _is_blower(w, principal):
            continue
        if step.actor == "escalator" and not _is_escalator(w, principal):
            continue
        if step.actor in ("party", "lead", "co") and not any(
            _party_can(action, p) for p in mine
        ):  # fmt: skip
            continue
        if step.actor == "anyone" and not (mine or _is_blower(w, principal)):
            continue
        out.append(action)
    return out


def _party_can(action: str, p: dict[str, Any]) -> bool:
    if action == "acknowledge":
        return p["status"] == "addressed"
    if action == "check_in":
        return p["status"] in ("addressed", "acknowledged")
    if action == "resolve":
        return p["role"] == "lead" and p["status"] == "on_site"
    if action == "confirm":
        return p["role"] == "co" and p["status"] == "on_site"
    return True


def act(
    engine: Engine,
    locator: LocateService,
    principal: Principal,
    reach: ScopeFilter,
    whistle_id: int,
    request: WhistleAction,
    *,
    photos: list[Photo] = (),  # type: ignore[assignment]
    photo_dir: Path | None = None,
    checkin_radius_m: float = 300.0,
    limits_by_grade: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> int | None:
    """Apply one action, or refuse it. Returns the id of the second whistle for ``escalate``."""
    step = TRANSITIONS.get(request.action)
    if step is None:
        raise WhistleError(
            422, "invalid-parameter",
            f"action: unknown action {request.action!r}; actions: {', '.join(TRANSITIONS)}",
            "action",
        )  # fmt: skip
    at = now or dt.datetime.now(dt.UTC)
    where = action_point(request.lon, request.lat, request.crs)
    scope, params = scope_sql(reach, principal)
    with engine.begin() as conn:
        w = conn.execute(
            text(f"SELECT w.* FROM whistle w WHERE w.id = :id AND {scope} FOR UPDATE"),
            {**params, "id": whistle_id},
        ).mappings().first()  # fmt: skip
        if w is None:
            raise WhistleError(404, "not-found", f"no whistle {whistle_id}")
        w = dict(w)
        parties = _parties(conn, whistle_id)
        mine = allowed_actions(w, parties, principal, reach)
        _check(w, parties, step, request, principal, reach, mine)
        handler = _EFFECTS[request.action]
        return handler(
            conn, w, parties, request, principal, reach, at, where,
            {"photos": photos, "photo_dir": photo_dir, "radius": checkin_radius_m,
             "limits": limits_by_grade, "locator": locator},
        )  # fmt: skip


def _check(
    w: dict[str, Any],
    parties: list[dict[str, Any]],
    step: Step,
    request: WhistleAction,
    principal: Principal,
    reach: ScopeFilter,
    mine: list[str],
) -> None:
    action = request.action
    allowed = ", ".join(mine) or "nothing"
    if request.expected_version is not None and request.expected_version != w["version"]:
        raise WhistleError(
            409, "conflict", f"the whistle changed (version {w['version']}, not "
            f"{request.expected_version})", "expected_version", allowed_actions=mine,
        )  # fmt: skip
    own = _my_parties(parties, principal, reach)
    permitted = {
        "blower": _is_blower(w, principal),
        "escalator": _is_escalator(w, principal),
        "party": bool(own),
        "lead": any(p["role"] == "lead" for p in own),
        "co": any(p["role"] == "co" for p in own),
        "anyone": bool(own) or _is_blower(w, principal),
    }[step.actor]
    if not permitted:
        who = {"blower": f"the {w['level']} that blew it", "escalator": "the blowing unit or "
               "the level above", "party": "an addressed department or member",
               "lead": "the lead (主办)", "co": "a co-handler (协办)",
               "anyone": "an addressee or the blowing unit"}[step.actor]  # fmt: skip
        raise WhistleError(
            403, "forbidden", f"only {who} may {action} this whistle; you may: {allowed}",
            "action", allowed_actions=mine,
        )  # fmt: skip
    if action == "close" and w["status"] in ("blown", "responding"):
        _require_done(parties)  # names who has not resolved yet
    if w["status"] not in step.sources:
        raise WhistleError(
            409, "invalid-transition",
            f"{action} is not possible on a {w['status']} whistle; allowed: {allowed}",
            "action", allowed_actions=mine,
        )  # fmt: skip


def _acting_party(
    parties: list[dict[str, Any]],
    principal: Principal,
    reach: ScopeFilter,
    request: WhistleAction,
    fits: Any,
) -> dict[str, Any]:
    own = _my_parties(parties, principal, reach)
    if request.party is not None:
        own = [p for p in own if request.party in (p["department_code"], p["staff_name"])]
        if not own:
            raise WhistleError(
                403, "forbidden", f"party: {request.party!r} is not an addressee you act for",
                "party",
            )  # fmt: skip
    able = [p for p in own if fits(p)]
    if not able:
        states = ", ".join(f"{p['department_code'] or p['staff_name']} {p['role']} {p['status']}"
                           for p in own)  # fmt: skip
        raise WhistleError(
            409, "invalid-transition",
            f"{request.action} is not possible for your part ({states})", "action",
        )  # fmt: skip
    if len(able) > 1:
        names = ", ".join(p["department_code"] or p["staff_name"] for p in able)
        raise WhistleError(
            422, "invalid-parameter", f"party: you act for several addressees ({names}); name one",
            "party",
        )  # fmt: skip
    return able[0]


def _touch(conn: Connection, w: dict[str, Any], sets: dict[str, Any]) -> None:
    assignments = "".join(f"{k} = :{k}, " for k in sets)
    conn.execute(
        text(f"UPDATE whistle SET {assignments}version = version + 1 WHERE id = :id"),
        {**sets, "id": w["id"]},
    )


def _set_party(conn: Connection, party_id: int, sets: dict[str, Any]) -> None:
    assignments = ", ".join(f"{k} = :{k}" for k in sets)
    conn.execute(text(f"UPDATE whistle_party SET {assignments} WHERE id = :id"),
                 {**sets, "id": party_id})  # fmt: skip


def _covered(conn: Connection, w: dict[str, Any]) -> list[int]:
    return list(conn.execute(
        text("SELECT incident_id FROM whistle_incident WHERE whistle_id = :w ORDER BY 1"),
        {"w": w["id"]},
    ).scalars())  # fmt: skip


def _move_cases(
    conn: Connection, w: dict[str, Any], principal: Principal, actions: tuple[str, ...], at: Any
) -> None:
    for incident_id in _covered(conn, w):
        for action in actions:
            cases.advance(conn, incident_id, principal, action, at=at, data={"whistle": w["id"]},
                          note=f"吹哨 whistle {w['id']}")  # fmt: skip


def _acknowledge(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    p = _acting_party(parties, principal, reach, request, lambda p: p["status"] == "addressed")
    _set_party(conn, p["id"], {"status": "acknowledged", "acknowledged_at": at})
    # Only a lead or co-handler answering makes the whistle responding, not one merely told.
    after = "responding" if w["status"] == "blown" and p["role"] != "notified" else w["status"]
    _touch(conn, w, {"status": after})
    _history(conn, w["id"], principal, "acknowledge", w["status"], after, at, party_id=p["id"],
             note=request.note, where=where)  # fmt: skip


def _check_in(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    if where is None:
        raise WhistleError(422, "invalid-parameter", "lon: a check-in needs where you are", "lon")
    p = _acting_party(parties, principal, reach, request,
                      lambda p: p["status"] in ("addressed", "acknowledged"))  # fmt: skip
    distance = conn.execute(
        text("SELECT ST_Distance(place::geography, ST_SetSRID(ST_MakePoint(:x, :y), 4490)"
             "::geography) FROM whistle WHERE id = :w"),
        {"x": where[0], "y": where[1], "w": w["id"]},
    ).scalar_one()  # fmt: skip
    far = distance > ctx["radius"]
    conn.execute(
        text(
            "UPDATE whistle_party SET status = 'on_site', acknowledged_at = coalesce("
            "acknowledged_at, :at), arrived_at = :at, checkin = ST_SetSRID(ST_MakePoint(:x, :y), "
            "4490), checkin_distance_m = :d, checkin_far = :far WHERE id = :id"
        ),
        {"at": at, "x": where[0], "y": where[1], "d": distance, "far": far, "id": p["id"]},
    )
    after = "responding" if w["status"] == "blown" else w["status"]
    _touch(conn, w, {"status": after})
    _history(conn, w["id"], principal, "check_in", w["status"], after, at, party_id=p["id"],
             note=request.note, where=where,
             data={"distance_m": round(distance, 1), "far": far,
                   "late": at > w["report_due_at"]})  # fmt: skip
    if p["role"] == "lead":
        _move_cases(conn, w, principal, ("accept",), at)


def _progress(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    photos = ctx["photos"]
    if not request.note.strip() and not photos:
        raise WhistleError(422, "invalid-parameter", "note: a progress note or photos", "note")
    own = _my_parties(parties, principal, reach)
    party_id = own[0]["id"] if len(own) == 1 else None
    history_id = _history(conn, w["id"], principal, "progress", w["status"], w["status"], at,
                          party_id=party_id, note=request.note, where=where,
                          data={"photos": len(photos)} if photos else None)  # fmt: skip
    for photo in photos:
        digest, path = cases.store_photo(ctx["photo_dir"], photo)
        conn.execute(
            text("INSERT INTO whistle_photo (whistle_id, history_id, sha256, content_type, bytes, "
                 "path, uploaded_by) VALUES (:w, :h, :s, :t, :n, :p, :u)"),
            {"w": w["id"], "h": history_id, "s": digest, "t": photo.content_type,
             "n": len(photo.content), "p": str(path), "u": principal.id},
        )  # fmt: skip
    _touch(conn, w, {})


def _resolve(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    p = _acting_party(parties, principal, reach, request,
                      lambda p: p["role"] == "lead" and p["status"] == "on_site")  # fmt: skip
    _set_party(conn, p["id"], {"status": "done", "done_at": at})
    others = [q for q in parties if q["role"] == "lead" and q["id"] != p["id"]]
    every = all(q["status"] == "done" for q in others)
    after = "resolved" if every else w["status"]
    _touch(conn, w, {"status": after, "resolved_at": at if every else None})
    _history(conn, w["id"], principal, "resolve", w["status"], after, at, party_id=p["id"],
             note=request.note, where=where,
             data={"late": at > w["resolve_due_at"]})  # fmt: skip
    _move_cases(conn, w, principal, ("accept", "complete"), at)


def _confirm(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    p = _acting_party(parties, principal, reach, request,
                      lambda p: p["role"] == "co" and p["status"] == "on_site")  # fmt: skip
    _set_party(conn, p["id"], {"status": "done", "done_at": at})
    _touch(conn, w, {})
    _history(conn, w["id"], principal, "confirm", w["status"], w["status"], at,
             party_id=p["id"], note=request.note, where=where)  # fmt: skip


def _reopen(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    if not request.note.strip():
        raise WhistleError(422, "invalid-parameter", "note: say why it is reopened", "note")
    conn.execute(
        text("UPDATE whistle_party SET status = 'on_site', done_at = NULL "
             "WHERE whistle_id = :w AND role IN ('lead', 'co') AND status = 'done'"),
        {"w": w["id"]},
    )  # fmt: skip
    _touch(conn, w, {"status": "responding", "resolved_at": None})
    _history(conn, w["id"], principal, "reopen", w["status"], "responding", at,
             note=request.note, where=where)  # fmt: skip
    _move_cases(conn, w, principal, ("rework",), at)


def _require_done(parties: list[dict[str, Any]]) -> None:
    """Closing waits for every lead's resolution and every on-site co-handler's confirmation:
    a 409 naming who is missing."""
    missing = [
        f"{p['department_code'] or p['staff_name']} ({p['role']}) has not "
        + ("resolved" if p["role"] == "lead" else "confirmed")
        for p in parties
        if p["status"] != "done"
        and (p["role"] == "lead" or (p["role"] == "co" and p["arrived_at"] is not None))
    ]
    if missing:
        raise WhistleError(
            409, "incomplete", f"close: not yet — {'; '.join(missing)}", "action",
            missing=missing,
        )  # fmt: skip


def _close(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    _require_done(parties)
    _touch(conn, w, {"status": "closed", "closed_at": at, "ended_at": at})
    _history(conn, w["id"], principal, "close", w["status"], "closed", at, note=request.note,
             where=where)  # fmt: skip
    _move_cases(conn, w, principal, ("verify", "close"), at)
    conn.execute(
        text("UPDATE supervision SET closed_at = :at WHERE whistle_id = :w AND closed_at IS NULL"),
        {"w": w["id"], "at": at},
    )  # fmt: skip


def feedback_score(value: str | int | None) -> float:
    """satisfied 100 / basically_satisfied 60 / dissatisfied 0, or 1–5 stars as (n − 1) × 25."""
    from app.services.evaluation import EvaluationError, satisfaction_score

    if isinstance(value, str) and value.isdigit():
        value = int(value)
    try:
        return satisfaction_score(value)  # type: ignore[arg-type]
    except EvaluationError:
        raise WhistleError(
            422, "invalid-parameter",
            f"feedback: {value!r} is not one of {', '.join(FEEDBACK_WORDS)} or 1–5", "feedback",
        ) from None  # fmt: skip


def _feedback(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    score = feedback_score(request.feedback)
    _touch(conn, w, {"feedback": str(request.feedback), "feedback_score": score,
                     "feedback_note": request.note})  # fmt: skip
    _history(conn, w["id"], principal, "feedback", w["status"], w["status"], at,
             note=request.note, data={"feedback": request.feedback, "score": score})  # fmt: skip


def _cancel(conn, w, parties, request, principal, reach, at, where, ctx) -> None:  # type: ignore[no-untyped-def]
    there = [p["department_code"] or p["staff_name"] for p in parties if p["arrived_at"]]
    if there:
        raise WhistleError(
            409, "invalid-transition",
            f"cancel: {', '.join(there)} already came on site; close or escalate it", "action",
        )  # fmt: skip
    if not request.note.strip():
        raise WhistleError(422, "invalid-parameter", "note: say why it is cancelled", "note")
    _touch(conn, w, {"status": "cancelled", "ended_at": at})
    _history(conn, w["id"], principal, "cancel", w["status"], "cancelled", at, note=request.note)
    conn.execute(
        text("UPDATE supervision SET closed_at = :at WHERE whistle_id = :w AND closed_at IS NULL"),
        {"w": w["id"], "at": at},
    )  # fmt: skip


def _escalate(conn, w, parties, request, principal, reach, at, where, ctx) -> int:  # type: ignore[no-untyped-def]
    """The second whistle: one level up, same situation, place and cases, linked to the first.
    To the street: addressees proposed afresh; to the district: the first whistle's
    departments again, and the district's commanders (the district leaders) as notified."""
    level = NEXT_LEVEL[w["level"]]
    by_grade = ctx["limits"] or limits()
    grade = request.grade or w["grade"]
    if grade not in by_grade:
        raise WhistleError(
            422, "invalid-parameter", f"grade: {grade!r} is not one of {', '.join(by_grade)}",
            "grade",
        )  # fmt: skip
    situation = get_situation(conn, w["situation_code"])
    point = conn.execute(
        text("SELECT ST_X(place_point) AS x, ST_Y(place_point) AS y FROM whistle WHERE id = :w"),
        {"w": w["id"]},
    ).one()  # fmt: skip
    if level == "street":
        region = w["street_code"]
        found, _ = propose(conn, "street", situation, shapely.Point(point.x, point.y),
                           w["grid_code"])  # fmt: skip
        found = found or [
            {"staff_id": p["staff_id"], "department_id": p["department_id"],
             "name": p["staff_name"] or p["department_code"], "role": p["role"]}
            for p in parties if p["role"] != "notified"
        ]  # fmt: skip
    else:
        region = w["district_code"] or w["region_code"][:6]
        found = [{"staff_id": p["staff_id"], "department_id": p["department_id"],
                  "name": p["staff_name"] or p["department_code"], "role": p["role"]}
                 for p in parties if p["role"] != "notified"]  # fmt: skip
        leaders = conn.execute(
            text("SELECT id, name FROM staff WHERE role = 'district_commander' AND active "
                 "AND region_code = :d ORDER BY name"),
            {"d": region},
        ).mappings().all()  # fmt: skip
        found += [{"staff_id": s["id"], "name": s["name"], "role": "notified"} for s in leaders
                  if all(f.get("staff_id") != s["id"] for f in found)]  # fmt: skip
    report_limit, resolve_limit = by_grade[grade]
    second = conn.execute(
        text(
            """
            INSERT INTO whistle (level, status, situation_code, grade, title, description,
                region_code, place, place_point, grid_code, community_code, street_code,
                district_code, boundary_version_id, blown_by, blown_at, report_due_at,
                resolve_due_at, parent_id)
            SELECT :level, 'blown', situation_code, :grade, '二次吹哨 ' || title, :note,
                :region, place, place_point, grid_code, community_code, street_code,
                district_code, boundary_version_id, :by, :at, :report_due, :resolve_due, id
            FROM whistle WHERE id = :w
            RETURNING id
            """
        ),
        {"level": level, "grade": grade, "note": request.note or w["description"],
         "region": region, "by": principal.id, "at": at, "report_due": at + report_limit,
         "resolve_due": at + resolve_limit, "w": w["id"]},
    ).scalar_one()  # fmt: skip
    _address(conn, second, found, at)
    _link_cases(conn, second, _covered(conn, w))
    _touch(conn, w, {"status": "escalated", "ended_at": at})
    _history(conn, w["id"], principal, "escalate", w["status"], "escalated", at,
             note=request.note, data={"second_whistle": second, "level": level})  # fmt: skip
    _history(conn, second, principal, "blow", None, "blown", at, note=request.note,
             data={"level": level, "grade": grade, "situation": w["situation_code"],
                   "first_whistle": w["id"],
                   "parties": [{"name": p["name"], "role": p["role"]} for p in found]})  # fmt: skip
    conn.execute(
        text("UPDATE supervision SET closed_at = :at, note = note || :n "
             "WHERE whistle_id = :w AND closed_at IS NULL"),
        {"w": w["id"], "at": at, "n": f" → 二次吹哨 second whistle {second}"},
    )  # fmt: skip
    _notify(conn, at, second, None, role="district_commander" if level == "district" else
            "street_commander", region=region,
            subject=f"二次吹哨 second whistle {second}: {w['title']}")  # fmt: skip
    return second


_EFFECTS = {
    "acknowledge": _acknowledge, "check_in": _check_in, "progress": _progress,
    "resolve": _resolve, "confirm": _confirm, "reopen": _reopen, "close": _close,
    "feedback": _feedback, "escalate": _escalate, "cancel": _cancel,
}  # fmt: skip


# -- supervision ----------------------------------------------------------------------------------

SUPERVISION_LOCK = 0x67726964  # "grid": one scheduler pass at a time across workers


def _notify(
    conn: Connection,
    at: dt.datetime,
    whistle_id: int | None,
    supervision_id: int | None,
    *,
    subject: str,
    role: str | None = None,
    region: str | None = None,
    department_id: int | None = None,
    body: str = "",
) -> None:
    conn.execute(
        text(
            "INSERT INTO notification (created_at, whistle_id, supervision_id, recipient_role, "
            "recipient_region, recipient_department_id, subject, body) "
            "VALUES (:at, :w, :s, :role, :region, :d, :subject, :body)"
        ),
        {"at": at, "w": whistle_id, "s": supervision_id, "role": role, "region": region,
         "d": department_id, "subject": subject, "body": body},
    )  # fmt: skip


_OVERDUE_STEPS = """
SELECT p.id AS party_id, w.id AS whistle_id, w.title, w.level, w.region_code, w.district_code,
       p.department_id, coalesce(d.code, s.name) AS who, :step AS step,
       CASE WHEN :step = 'report' THEN w.report_due_at ELSE w.resolve_due_at END AS due_at
FROM whistle w JOIN whistle_party p ON p.whistle_id = w.id
LEFT JOIN department d ON d.id = p.department_id LEFT JOIN staff s ON s.id = p.staff_id
WHERE w.status IN ('blown', 'responding', 'resolved') AND p.role IN ('lead', 'co')
  AND CASE WHEN :step = 'report' THEN p.arrived_at IS NULL AND w.report_due_at < :now
           ELSE p.done_at IS NULL AND w.resolve_due_at < :now END
ORDER BY w.id, p.id
"""


def supervise(engine: Engine, *, now: dt.datetime | None = None) -> dict[str, int]:
    """One supervision pass: mark every step past its deadline overdue, open one supervision
    record (督办) per overdue step with its history row, and notify the district supervision
    office, the department and the blowing unit; close records whose step has since been done.
    Safe to run from several workers at once: one pass at a time holds an advisory lock, and a
    step's record is unique, so a second pass opens nothing twice. Returns what it did."""
    at = now or dt.datetime.now(dt.UTC)
    done = {"opened": 0, "closed": 0, "skipped": 0}
    with engine.begin() as conn:
        got = conn.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SUPERVISION_LOCK}
        ).scalar_one()  # fmt: skip
        if not got:
            done["skipped"] = 1
            return done
        for step in ("report", "resolve"):
            for row in conn.execute(text(_OVERDUE_STEPS), {"step": step, "now": at}).mappings():
                flag = f"{step}_overdue"
                opened = conn.execute(
                    text(
                        "INSERT INTO supervision (whistle_id, party_id, step, due_at, opened_at) "
                        "VALUES (:w, :p, :step, :due, :at) ON CONFLICT DO NOTHING RETURNING id"
                    ),
                    {"w": row["whistle_id"], "p": row["party_id"], "step": step,
                     "due": row["due_at"], "at": at},
                ).scalar_one_or_none()  # fmt: skip
                if opened is None:
                    continue
                done["opened"] += 1
                conn.execute(text(f"UPDATE whistle_party SET {flag} = true WHERE id = :p"),
                             {"p": row["party_id"]})  # fmt: skip
                conn.execute(
                    text(f"UPDATE whistle SET {flag} = true, version = version + 1 "
                         "WHERE id = :w"),
                    {"w": row["whistle_id"]},
                )  # fmt: skip
                what = "未按时到场报到 not on site in time" if step == "report" else (
                    "未按时办结 not resolved in time")  # fmt: skip
                _history(conn, row["whistle_id"], None, "overdue", None, _status(
                    conn, row["whistle_id"]), at, party_id=row["party_id"],
                    note=f"{row['who']}: {what}",
                    data={"step": step, "due_at": row["due_at"].isoformat(),
                          "supervision": opened})  # fmt: skip
                subject = f"督办 supervision: whistle {row['whistle_id']} — {row['who']}: {what}"
                district = row["district_code"] or row["region_code"][:6]
                _notify(conn, at, row["whistle_id"], opened, subject=subject,
                        role="supervisor", region=district)  # fmt: skip
                if row["department_id"] is not None:
                    _notify(conn, at, row["whistle_id"], opened, subject=subject,
                            department_id=row["department_id"])  # fmt: skip
                blower = {"community": "community_officer", "street": "street_commander",
                          "district": "district_commander"}[row["level"]]  # fmt: skip
                _notify(conn, at, row["whistle_id"], opened, subject=subject, role=blower,
                        region=row["region_code"])  # fmt: skip
        done["closed"] = conn.execute(
            text(
                """
                UPDATE supervision v SET closed_at = :at
                FROM whistle_party p WHERE p.id = v.party_id AND v.closed_at IS NULL
                  AND ((v.step = 'report' AND p.arrived_at IS NOT NULL)
                       OR (v.step = 'resolve' AND p.done_at IS NOT NULL))
                """
            ),
            {"at": at},
        ).rowcount  # fmt: skip
    return done


def _status(conn: Connection, whistle_id: int) -> str:
    return conn.execute(
        text("SELECT status FROM whistle WHERE id = :w"), {"w": whistle_id}
    ).scalar_one()  # fmt: skip
