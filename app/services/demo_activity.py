"""A realistic stream of demo cases for the demo district, loaded in bulk (PostgreSQL COPY).

``gis.synth.incident_activity`` draws the reports (hot spots, sources, daily rhythm, each case's
lifecycle as timestamps); this module gives them what the live service would have: the grid
chain and boundary version, the department the class routes to, deadlines and lateness from
the class's limits on the working-time calendar, and one history row per transition. Demo rows
carry an ``idempotency_key`` ``demo:<seed>:<n>``, so loading again only adds days not yet
loaded (``make run`` on a later day tops the year up).
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Engine, text

from app.services import incidents
from app.services.boundaries import active_version
from app.services.worktime import WorkCalendar
from gis import synth

ZONE = "Asia/Shanghai"
# Relative frequency by kind: street events dominate a city's reports, parts and social
# governance less; each class also gets a deterministic factor so the mix is uneven.
KIND_WEIGHT = {"event": 3.0, "part": 1.0, "social": 1.2}
INCIDENT_COLUMNS = (
    "id", "status", "class_code", "source", "description", "geom", "input_lon", "input_lat",
    "input_crs", "grid_code", "community_code", "street_code", "district_code", "region_code",
    "boundary_version_id", "out_of_area", "reporter_id", "department_code", "step", "due_at",
    "reported_at", "filed_at", "dispatched_at", "handled_at", "verified_at", "closed_at",
    "closed_on_time", "overdue_steps", "rework_count", "extension_count", "merged_into",
    "idempotency_key",
)  # fmt: skip


def load(
    engine: Engine,
    *,
    days: int = 365,
    per_day: float = 800.0,
    seed: int = 20191216,
    end: dt.datetime | None = None,
    cal: WorkCalendar | None = None,
) -> int:
    """Load ``days`` of demo cases ending at ``end`` (default: now); returns how many rows were
    added (0 when those days are already there)."""
    cal = cal or incidents.calendar()
    end = (end or dt.datetime.now(dt.UTC)).astimezone(cal.zone)
    with engine.connect() as conn:
        version = active_version(conn)
        if version is None:
            return 0
        regions = pd.DataFrame(
            conn.execute(
                text("SELECT code, level, parent_code, name, ST_AsBinary(geom) AS wkb "
                     "FROM region WHERE version_id = :v"), {"v": version.id},
            ).mappings().all()
        )  # fmt: skip
        classes = pd.DataFrame(
            conn.execute(text("SELECT code, kind, limits, department_kind FROM incident_class "
                              "ORDER BY code")).mappings().all()
        )  # fmt: skip
        latest = conn.execute(
            text("SELECT max(reported_at) FROM incident WHERE idempotency_key LIKE :k"),
            {"k": f"demo:{seed}:%"},
        ).scalar_one()
        routes = _routes(conn, version.id)
        workers = dict(
            conn.execute(text("SELECT grid_code, staff_id FROM grid_assignment "
                              "WHERE kind = 'primary'")).all()
        )  # fmt: skip
        base = conn.execute(text("SELECT coalesce(max(id), 0) FROM incident")).scalar_one()
    if classes.empty:
        return 0
    grids = regions[regions.level == "grid"]
    frame = gpd.GeoDataFrame(
        {"code": grids.code.to_numpy()},
        geometry=shapely.from_wkb([bytes(w) for w in grids.wkb]),
        crs=4490,
    )
    rng = np.random.default_rng(seed)
    weights = classes.kind.map(KIND_WEIGHT).fillna(1.0) * rng.lognormal(0.0, 0.8, len(classes))
    cases = synth.incident_activity(
        frame, pd.DataFrame({"code": classes.code, "weight": weights}),
        days=days, end=end, per_day=per_day, seed=seed,
    )  # fmt: skip
    cases["n"] = np.arange(len(cases))
    if latest is not None:  # only the days not loaded yet
        cases = cases[cases.reported_at > latest]
    if cases.empty:
        return 0
    parent = dict(zip(regions.code, regions.parent_code, strict=True))
    cases["community_code"] = cases.grid_code.map(parent)
    cases["street_code"] = cases.community_code.map(parent)
    cases["district_code"] = cases.street_code.map(parent)
    cases["id"] = base + 1 + np.arange(len(cases))
    kinds = dict(zip(classes.code, classes.department_kind, strict=True))
    # A kind with no department of its own (e.g. "other") goes to city management, as a
    # dispatcher would send it.
    cases["department"] = [
        routes.get((kinds[c], s)) or routes.get(("city_management", s))
        for c, s in zip(cases.class_code, cases.street_code, strict=True)
    ]
    _deadlines(cases, dict(zip(classes.code, classes.limits, strict=True)), cal, end, seed)
    merged = cases.merged_into.notna()
    id_of_n = pd.Series(base + 1 + np.arange(len(cases)), index=cases.n.to_numpy())
    cases["merged_id"] = pd.array(
        [id_of_n.get(int(m)) if ok else None for m, ok in zip(cases.merged_into, merged,
                                                             strict=True)], dtype="Int64",
    )  # fmt: skip
    cases["reporter"] = pd.array(
        [workers.get(g) if s == "patrol" else None for g, s in zip(cases.grid_code, cases.source,
                                                                   strict=True)], dtype="Int64",
    )  # fmt: skip
    rows = _incident_rows(cases, version.id, seed)
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE demo_accepted (id bigint PRIMARY KEY, "
                          "accepted_at timestamptz) ON COMMIT DROP"))  # fmt: skip
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            _copy(cursor, "incident", INCIDENT_COLUMNS, rows)
            _copy(cursor, "demo_accepted", ("id", "accepted_at"),
                  pd.DataFrame({"id": cases.id, "accepted_at": cases.accepted_at}))  # fmt: skip
        # The history rows are made by the database from the cases: one row per transition.
        conn.execute(text(HISTORY_SQL))
        conn.execute(text("SELECT setval(pg_get_serial_sequence('incident', 'id'), "
                          "(SELECT max(id) FROM incident))"))  # fmt: skip
        conn.execute(text("INSERT INTO incident_link (incident_id, other_id, kind) "
                          "SELECT id, merged_into, 'duplicate_of' FROM incident "
                          "WHERE merged_into IS NOT NULL AND id > :b UNION ALL "
                          "SELECT merged_into, id, 'duplicate' FROM incident "
                          "WHERE merged_into IS NOT NULL AND id > :b ON CONFLICT DO NOTHING"),
                     {"b": base})  # fmt: skip
    with engine.connect() as conn:
        # A bulk load leaves the planner blind until autovacuum comes round (~a minute): the
        # wall's per-grid figures took 6-8 s instead of ~60 ms (bench_screen).
        conn.execute(text("ANALYZE incident, incident_history"))
        conn.commit()
    return len(cases)


def _routes(conn: Any, version_id: int) -> dict[tuple[str, str], str]:
    """(department kind, street) → the department the live service would route to there: the
    smallest service area covering the street, else the kind's department without an area."""
    rows = conn.execute(
        text(
            """
            SELECT DISTINCT ON (d.kind, r.code) d.kind, r.code AS street, d.code
            FROM department d JOIN region r ON r.version_id = :v AND r.level = 'street'
            WHERE d.service_area IS NULL
               OR ST_Covers(d.service_area, ST_PointOnSurface(r.geom))
            ORDER BY d.kind, r.code, d.service_area IS NULL, ST_Area(d.service_area), d.code
            """
        ),
        {"v": version_id},
    ).all()
    return {(r.kind, r.street): r.code for r in rows}


def _measure(cal: WorkCalendar, first: dt.date, last: dt.date) -> dict[str, Any]:
    """For each hour or day time type, breakpoints (epoch seconds, working time elapsed since
    ``first``) of a piecewise linear function, so that working time between two moments is a
    difference of ``np.interp`` values, and ``np.interp`` the other way round finds the moment a
    working time is reached. Work days count one per working day's 24 hours (so the same clock
    time a working day later is 1). ``natural_days`` is plain time and is not listed."""
    xs: dict[str, list[float]] = {"work_hours": [], "urgent_work_hours": [], "work_days": []}
    ys: dict[str, list[float]] = {k: [] for k in xs}
    totals = dict.fromkeys(xs, 0.0)
    day = first
    while day <= last:
        midnight = dt.datetime.combine(day, dt.time(), cal.zone).timestamp()
        workday = cal.is_workday(day)
        for kind, windows, on in (("work_hours", cal.work_hours, workday),
                                  ("urgent_work_hours", cal.urgent_work_hours, True),
                                  ("work_days", ((0, 86_400_000_000),), workday)):  # fmt: skip
            if not on:
                continue
            for a, b in windows:
                xs[kind] += [midnight + a / 1e6, midnight + b / 1e6]
                unit = 86_400 if kind == "work_days" else 3_600
                ys[kind] += [totals[kind], totals[kind] + (b - a) / 1e6 / unit]
                totals[kind] += (b - a) / 1e6 / unit
        day += dt.timedelta(days=1)
    return {k: (np.array(xs[k]), np.array(ys[k])) for k in xs}


def _took(measure: dict[str, Any], kind: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Working time from ``s`` to ``e`` (epoch seconds) in each row's time type."""
    took = (e - s) / 86_400  # natural days
    for k, (x, y) in measure.items():
        rows = kind == k
        took[rows] = np.interp(e[rows], x, y) - np.interp(s[rows], x, y)
    return took


LIFECYCLE = ("filed_at", "dispatched_at", "accepted_at", "handled_at", "verified_at", "closed_at")
STEP_TIMES = (("dispatch", "filed_at", "dispatched_at"), ("handle", "dispatched_at", "handled_at"),
              ("verify", "handled_at", "verified_at"))  # fmt: skip


def _step_limits(cases: pd.DataFrame, limits: dict[str, Any], step: str) -> tuple[Any, Any]:
    amount = cases.class_code.map(lambda c: float(limits[c][step]["amount"])).to_numpy()
    kind = cases.class_code.map(lambda c: limits[c][step]["time_type"]).to_numpy()
    if step == "handle":  # an approved extension doubles the handling time
        amount = np.where(cases.extension_count.to_numpy() > 0, amount * 2, amount)
    return amount, kind


def _fit_to_limits(
    cases: pd.DataFrame, limits: dict[str, Any], measure: dict[str, Any], seed: int,
    share: float = 0.93,
) -> None:  # fmt: skip
    """The generator draws durations without knowing the classes' limits; a district that closes
    99 % of its cases meets most limits, so most steps that would run over are finished within
    their limit instead (the later moments of the case move earlier by as much)."""
    rng = np.random.default_rng(seed + 1)
    for step, start, done in STEP_TIMES:
        amount, kind = _step_limits(cases, limits, step)
        s_sec, e_sec = _epoch(cases[start]), _epoch(cases[done])
        both = ~np.isnan(s_sec) & ~np.isnan(e_sec)
        took = np.full(len(cases), np.nan)
        took[both] = _took(measure, kind[both], s_sec[both], e_sec[both])
        fix = both & (took > amount) & (rng.random(len(cases)) < share)
        want = amount * rng.uniform(0.2, 0.95, len(cases))
        new_e = s_sec + want * 86_400  # natural days
        for k, (x, y) in measure.items():
            rows = fix & (kind == k)
            new_e[rows] = np.interp(np.interp(s_sec[rows], x, y) + want[rows], y, x)
        delta = pd.to_timedelta(np.round(np.where(fix, new_e - e_sec, 0.0) * 1e6), unit="us")
        for column in LIFECYCLE[LIFECYCLE.index(done) :]:
            if not (done == "handled_at" and column == "accepted_at"):
                cases[column] = cases[column] + delta
        if done == "handled_at":  # acceptance stays between dispatch and handling
            after = cases.accepted_at > cases.handled_at
            middle = cases.dispatched_at + (cases.handled_at - cases.dispatched_at) / 3
            cases.loc[after, "accepted_at"] = middle[after]


def _epoch(times: pd.Series) -> np.ndarray:
    """Zoned times as float epoch seconds (NaN for NaT)."""
    utc = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
    return np.where(np.isnat(utc), np.nan, utc.astype("int64") / 1e6)


def _deadlines(
    cases: pd.DataFrame, limits: dict[str, Any], cal: WorkCalendar, end: dt.datetime, seed: int
) -> None:
    """Each step's lateness (the working time it took, against the class's limit) and, for open
    cases, the step that runs and its deadline — as the live service keeps them."""
    first = (cases.reported_at.min() - pd.Timedelta(days=2)).date()
    measure = _measure(cal, first, (end + dt.timedelta(days=60)).date())
    _fit_to_limits(cases, limits, measure, seed)
    late = np.zeros(len(cases), dtype=int)
    for step, start, done in STEP_TIMES:
        amount, kind = _step_limits(cases, limits, step)
        s_sec, e_sec = _epoch(cases[start]), _epoch(cases[done])
        both = ~np.isnan(s_sec) & ~np.isnan(e_sec)
        took = _took(measure, kind[both], s_sec[both], e_sec[both])
        late[np.flatnonzero(both)[took > amount[both] + 1e-9]] += 1
    cases["overdue_steps"] = late
    step_of = {"filed": "dispatch", "dispatched": "handle", "handling": "handle",
               "handled": "verify"}  # fmt: skip
    start_of = {"dispatch": "filed_at", "handle": "dispatched_at", "verify": "handled_at"}
    steps: list[str | None] = [None] * len(cases)
    dues: list[dt.datetime | None] = [None] * len(cases)
    statuses, classes = cases.final_status.to_numpy(), cases.class_code.to_numpy()
    for i in np.flatnonzero(cases.final_status.isin(list(step_of)).to_numpy()):
        step = step_of[statuses[i]]
        limit = limits[classes[i]][step]
        steps[i] = step
        started = cases[start_of[step]].iloc[i].to_pydatetime()
        dues[i] = cal.deadline(started, float(limit["amount"]), limit["time_type"])
    cases["step"] = steps
    cases["due_at"] = pd.to_datetime(pd.Series(dues, index=cases.index, dtype=object), utc=True)


def _incident_rows(cases: pd.DataFrame, version_id: int, seed: int) -> pd.DataFrame:
    closed = cases.final_status == "closed"
    dispatched = cases.dispatched_at.notna() & ~cases.final_status.isin(["not_filed", "merged"])
    return pd.DataFrame(
        {
            "id": cases.id,
            "status": cases.final_status,
            "class_code": cases.class_code,
            "source": cases.source,
            "description": "演示案件 demo case",
            "geom": [
                f"SRID=4490;POINT({x!r} {y!r})" for x, y in zip(cases.lon, cases.lat, strict=True)
            ],
            "input_lon": cases.lon,
            "input_lat": cases.lat,
            "input_crs": "cgcs2000",
            "grid_code": cases.grid_code,
            "community_code": cases.community_code,
            "street_code": cases.street_code,
            "district_code": cases.district_code,
            "region_code": cases.grid_code,
            "boundary_version_id": version_id,
            "out_of_area": False,
            "reporter_id": cases.reporter,
            "department_code": cases.department.where(dispatched, None),
            "step": cases.step,
            "due_at": cases.due_at,
            "reported_at": cases.reported_at,
            "filed_at": cases.filed_at,
            "dispatched_at": cases.dispatched_at,
            "handled_at": cases.handled_at,
            "verified_at": cases.verified_at,
            "closed_at": cases.closed_at,
            "closed_on_time": (cases.overdue_steps == 0).where(closed, None),
            "overdue_steps": cases.overdue_steps,
            "rework_count": cases.rework_count,
            "extension_count": cases.extension_count,
            "merged_into": cases.merged_id,
            "idempotency_key": [f"demo:{seed}:{n}" for n in cases.n],
        }
    )


HISTORY_SQL = """
WITH c AS (
    SELECT i.*, a.accepted_at, 'gw-' || i.grid_code AS gridworker,
           '指挥中心 ' || i.street_code AS commander, coalesce(i.department_code, '—') AS dept
    FROM incident i JOIN demo_accepted a ON a.id = i.id
),
steps (incident_id, at, actor_id, actor_name, actor_role, action, from_status, to_status) AS (
    SELECT id, reported_at, reporter_id,
           CASE WHEN source = 'patrol' THEN gridworker ELSE source END, 'gridworker',
           'report', NULL, 'reported' FROM c
    UNION ALL SELECT id, reported_at + interval '20 minutes', NULL, commander,
           'street_commander', 'reject', 'reported', 'not_filed' FROM c WHERE status = 'not_filed'
    UNION ALL SELECT id, filed_at, NULL, commander, 'street_commander', 'file', 'reported',
           'filed' FROM c WHERE filed_at IS NOT NULL
    UNION ALL SELECT id, coalesce(filed_at, reported_at) + interval '5 minutes', NULL, commander,
           'street_commander', 'merge', CASE WHEN filed_at IS NULL THEN 'reported' ELSE 'filed'
           END, 'merged' FROM c WHERE status = 'merged'
    UNION ALL SELECT id, dispatched_at, NULL, commander, 'street_commander', 'dispatch', 'filed',
           'dispatched' FROM c WHERE dispatched_at IS NOT NULL
    UNION ALL SELECT id, accepted_at, NULL, dept, 'department_officer', 'accept', 'dispatched',
           'handling' FROM c WHERE accepted_at IS NOT NULL
    UNION ALL SELECT id, accepted_at + (coalesce(handled_at, accepted_at) - accepted_at) / 3,
           NULL, dept, 'department_officer', 'request_extension', 'handling', 'handling'
           FROM c WHERE extension_count > 0 AND accepted_at IS NOT NULL
    UNION ALL SELECT id, ask + least(interval '30 minutes',
                                     (coalesce(handled_at, ask + interval '1 hour') - ask) / 4),
           NULL, '督办 supervisor', 'supervisor', 'approve_extension', 'handling', 'handling'
           FROM (SELECT *, accepted_at + (coalesce(handled_at, accepted_at) - accepted_at) / 3
                 AS ask FROM c) e WHERE extension_count > 0 AND accepted_at IS NOT NULL
    UNION ALL SELECT id, accepted_at + (handled_at - accepted_at) / 2, NULL, dept,
           'department_officer', 'complete', 'handling', 'handled'
           FROM c WHERE rework_count > 0 AND handled_at IS NOT NULL
    UNION ALL SELECT id, accepted_at + (handled_at - accepted_at) * 2 / 3, reporter_id,
           gridworker, 'gridworker', 'rework', 'handled', 'handling'
           FROM c WHERE rework_count > 0 AND handled_at IS NOT NULL
    UNION ALL SELECT id, handled_at, NULL, dept, 'department_officer', 'complete', 'handling',
           'handled' FROM c WHERE handled_at IS NOT NULL
    UNION ALL SELECT id, verified_at, reporter_id, gridworker, 'gridworker', 'verify',
           'handled', 'verified' FROM c WHERE verified_at IS NOT NULL
    UNION ALL SELECT id, closed_at, NULL, commander, 'street_commander', 'close', 'verified',
           'closed' FROM c WHERE closed_at IS NOT NULL
    UNION ALL SELECT id, greatest(filed_at, dispatched_at, accepted_at) + interval '1 hour',
           NULL, commander, 'district_commander', 'park',
           CASE WHEN accepted_at IS NOT NULL THEN 'handling'
                WHEN dispatched_at IS NOT NULL THEN 'dispatched' ELSE 'filed' END, 'parked'
           FROM c WHERE status = 'parked'
)
INSERT INTO incident_history (incident_id, at, actor_id, actor_name, actor_role, action,
                              from_status, to_status)
SELECT * FROM steps ORDER BY incident_id, at
"""


def _copy(cursor: Any, table: str, columns: tuple[str, ...], frame: pd.DataFrame) -> None:
    """COPY a frame in as CSV (empty unquoted fields are NULL)."""
    buffer = io.StringIO()
    out = frame[list(columns)].copy()
    for column in out.columns:  # pandas formats zoned times slowly: numpy writes UTC in C
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            utc = out[column].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
            text_ = np.char.add(np.datetime_as_string(utc, unit="us"), "+00")
            out[column] = np.where(np.isnat(utc), "", text_)
    out.to_csv(buffer, index=False, header=False, na_rep="")
    buffer.seek(0)
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)"
    with cursor.copy(sql) as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)


def summary(engine: Engine) -> dict[str, Any]:
    """How many cases there are and over which days (for the CLI's message)."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT count(*) AS n, min(reported_at) AS first, max(reported_at) AS last "
                 "FROM incident")
        ).mappings().one()  # fmt: skip
    return json.loads(json.dumps(dict(row), default=str))
