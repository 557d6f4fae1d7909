"""Patrols: gridworkers' GPS fixes — ingest, partitions, live positions and daily tracks.

Phones buffer fixes offline and send them in batches (up to 10,000), in any order, again after
a failed upload. A batch is parsed item by item: a fix with bad coordinates, an unknown CRS or
an unparsable time is answered with its index and reason while the rest is stored. Then, for the
whole batch at once (numpy): conversion to CGCS2000, location onto the grid with the worker's
in-memory index, the implausibility flags, and one COPY into a staging table followed by one
``INSERT … ON CONFLICT DO NOTHING`` into the day-partitioned ``patrol_fix`` — so a fix sent twice
(same worker, time and client id) is stored once.

Flags (kept, but left out of live positions and analytics): ``JUMP`` — faster than 150 km/h from
the worker's previous plausible fix (in this batch or stored, whatever the order they arrive
in); ``ACCURACY`` — worse than 100 m; ``FUTURE`` — more than two minutes ahead of the server's
clock. A time more than a day ahead or more than a year back is refused, so a phone with a wild
clock cannot create partitions far away. The jump test looks at the fixes known when a batch
arrives; a fix that arrives later between two stored ones does not re-flag them.

Partitions are one Beijing day each (``patrol_fix_YYYYMMDD``), made on demand for the days a
batch holds and ahead of time by :func:`ensure_partitions` (the app's housekeeping makes the
next week's); :func:`detach_before` detaches old ones, which stay as plain tables to archive
or drop.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, NotRequired
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pydantic_core
import shapely
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine, text
from typing_extensions import TypedDict

from app.services.identity import Principal
from app.services.incidents import IncidentError
from app.services.locate import LocateService, coordinate_problems
from app.services.scoping import ScopeFilter, prefix_pattern
from gis import tracks
from gis.crs import UnknownCRSError, point_crs, to_cgcs2000

ZONE = ZoneInfo("Asia/Shanghai")
MAX_BATCH = 10_000
MAX_SPEED_MPS = 150 / 3.6
MAX_ACCURACY_M = 100.0
FUTURE_SLACK = dt.timedelta(minutes=2)
MAX_AHEAD = dt.timedelta(days=1)
MAX_AGE = dt.timedelta(days=366)
LIVE_WINDOW = dt.timedelta(minutes=10)
JUMP, ACCURACY, FUTURE = 1, 2, 4
FLAG_NAMES = {JUMP: "jump", ACCURACY: "accuracy", FUTURE: "future"}
EARTH_M = 6_371_008.8
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)
_NO_NUL = r"^[^\x00]*$"

# A patrol refusal is the same kind of object as a case's: status, stable kind, field.
PatrolError = IncidentError


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int
    flagged: int
    rejected: list[dict[str, Any]]


# -- parsing ------------------------------------------------------------------------------------


class _Fix(TypedDict):
    # Strict: a number is a JSON number (not "39.1", not true), a time an ISO 8601 string.
    __pydantic_config__ = ConfigDict(strict=True)  # type: ignore[misc]
    worker: Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_NUL)]
    time: dt.datetime
    lon: Annotated[float, Field(allow_inf_nan=False)]
    lat: Annotated[float, Field(allow_inf_nan=False)]
    crs: NotRequired[str]
    accuracy_m: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None]
    speed_mps: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)] | None]
    client_id: NotRequired[Annotated[str, Field(min_length=1, max_length=64, pattern=_NO_NUL)]
                           | None]  # fmt: skip


class _Body(TypedDict):
    fixes: list[_Fix]


# Validated in Rust straight from the request's bytes (pydantic-core): a batch of 10,000 costs
# ~17 ms, against ~100 ms for json.loads and a Python loop over the items.
_BODY = TypeAdapter(_Body)
_REASONS = {"string_pattern_mismatch": "contains a NUL character", "missing": "missing"}


def _reason(error: Any) -> str:
    loc = error["loc"]
    if len(loc) == 2:
        return "not an object"
    message = _REASONS.get(error["type"], error["msg"])
    return f"{loc[2]}: {message}"


def _validate(raw: bytes) -> tuple[list[dict[str, Any]], list[int], list[dict[str, Any]]]:
    """The valid items, their indexes in the batch, and the invalid ones by index and reason.
    Anything wrong outside an item (not JSON, no ``fixes`` array) refuses the whole body."""
    try:
        return _BODY.validate_json(raw)["fixes"], [], []  # type: ignore[return-value]
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
    bad: dict[int, str] = {}
    for error in errors:
        loc = error["loc"]
        if error["type"] == "json_invalid":
            raise PatrolError(422, "invalid", f"body: not valid JSON ({error['msg']})", "body")
        if len(loc) < 2 or loc[0] != "fixes" or not isinstance(loc[1], int):
            shape = '{"fixes": [{worker, time, lon, lat, crs, …}, …]}'
            raise PatrolError(422, "invalid", f"fixes: {error['msg']}; send {shape}", "fixes")
        bad.setdefault(loc[1], _reason(error))
    # Rare (a phone with a bug): validate again without the bad items, to keep the good ones.
    items = pydantic_core.from_json(raw)["fixes"]
    kept = [i for i in range(len(items)) if i not in bad]
    good = _BODY.validate_json(pydantic_core.to_json({"fixes": [items[i] for i in kept]}))
    rejected = [{"index": i, "reason": r} for i, r in sorted(bad.items())]
    return good["fixes"], kept, rejected  # type: ignore[return-value]


def _epoch_us(at: dt.datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZONE)  # a phone's local time
    return (at - EPOCH) // MICROSECOND  # exact: integers, not floats or objects


def parse(raw: bytes, now: dt.datetime) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The good items of a JSON body ``{"fixes": [...]}`` as a frame (with their index in the
    batch), and the bad ones by index with the reason, naming the field."""
    items, kept, rejected = _validate(raw)
    if len(items) > MAX_BATCH:
        raise PatrolError(
            413, "batch-too-large", f"fixes: {len(items):,} fixes; at most {MAX_BATCH:,} a batch",
            "fixes",
        )  # fmt: skip
    index = np.asarray(kept, dtype=np.int64) if rejected else np.arange(len(items))
    micros = np.fromiter((_epoch_us(f["time"]) for f in items), np.int64, len(items))
    lon = np.fromiter((f["lon"] for f in items), np.float64, len(items))
    lat = np.fromiter((f["lat"] for f in items), np.float64, len(items))
    nan = math.nan
    accuracy = np.fromiter(
        (nan if (a := f.get("accuracy_m")) is None else a for f in items), np.float64, len(items)
    )
    speed = np.fromiter(
        (nan if (v := f.get("speed_mps")) is None else v for f in items), np.float64, len(items)
    )
    crs_names: dict[str, str | UnknownCRSError] = {}  # a batch uses one or two spellings
    for spelling in {f.get("crs", "wgs84") for f in items}:
        try:
            crs_names[spelling] = point_crs(spelling)
        except UnknownCRSError as exc:
            crs_names[spelling] = exc
    crs = [crs_names[f.get("crs", "wgs84")] for f in items]
    lo, hi = _epoch_us(now - MAX_AGE), _epoch_us(now + MAX_AHEAD)
    problems = coordinate_problems(lon, lat)
    good = np.ones(len(items), dtype=bool)
    for j in np.flatnonzero(
        (micros > hi)
        | (micros < lo)
        | np.fromiter((p is not None for p in problems), bool, len(items))
        | np.fromiter((isinstance(c, UnknownCRSError) for c in crs), bool, len(items))
    ).tolist():
        if micros[j] > hi:
            reason = "time: more than a day ahead of the server"
        elif micros[j] < lo:
            reason = "time: more than a year old"
        elif isinstance(crs[j], UnknownCRSError):
            reason = f"crs: {crs[j]}"
        else:
            field, message = problems[j]  # type: ignore[misc]
            reason = f"{field}: {message}"
        rejected.append({"index": int(index[j]), "reason": reason})
        good[j] = False
    rows = np.flatnonzero(good) if not good.all() else None

    def pick(values: Any) -> Any:
        if rows is None:
            return values
        return values[rows] if isinstance(values, np.ndarray) else [values[k] for k in rows]

    # Without a client id a fix is known by its time and place (a resend is the same fix).
    client = [
        f.get("client_id") or f"{f['time'].isoformat()}:{f['lon']:.7f}:{f['lat']:.7f}"
        for f in items
    ]
    frame = pd.DataFrame(
        {"index": pick(index), "worker": pick([f["worker"] for f in items]),
         "time": pd.to_datetime(pick(micros), unit="us", utc=True),
         "lon": pick(lon), "lat": pick(lat), "crs": pick(crs),
         "accuracy_m": pick(accuracy), "speed_mps": pick(speed), "client_id": pick(client)}
    )  # fmt: skip
    rejected.sort(key=lambda r: r["index"])
    return frame, rejected


# -- partitions ---------------------------------------------------------------------------------

# Days whose partition is known to exist, per database (tests and tools use several).
_known_days: dict[str, set[dt.date]] = {}


def _known(engine: Engine) -> set[dt.date]:
    return _known_days.setdefault(engine.url.render_as_string(hide_password=True), set())


def partition_name(day: dt.date) -> str:
    return f"patrol_fix_{day:%Y%m%d}"


def ensure_partitions(engine: Engine, days: Iterable[dt.date]) -> int:
    """Make the day partitions that do not exist yet; returns how many were made. Safe from
    several workers at once (an advisory lock per day)."""
    known = _known(engine)
    wanted = sorted(set(days) - known)
    made = 0
    for day in wanted:
        name = partition_name(day)
        start, end = day_bounds(day)
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": name})
            exists = conn.execute(
                text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}
            ).scalar_one()  # fmt: skip
            if not exists:
                conn.execute(
                    text(
                        f"CREATE TABLE {name} PARTITION OF patrol_fix FOR VALUES FROM "
                        f"('{start.isoformat()}') TO ('{end.isoformat()}')"
                    )
                )
                made += 1
        known.add(day)
    return made


def ensure_ahead(engine: Engine, *, days: int = 7, now: dt.datetime | None = None) -> int:
    today = (now or dt.datetime.now(dt.UTC)).astimezone(ZONE).date()
    return ensure_partitions(engine, (today + dt.timedelta(days=i) for i in range(-1, days + 1)))


def detach_before(engine: Engine, day: dt.date) -> list[str]:
    """Detach every day partition before ``day``; they stay as plain tables (archive, drop)."""
    with engine.begin() as conn:
        names = conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'patrol_fix'::regclass ORDER BY c.relname"
            )
        ).scalars().all()  # fmt: skip
        old = [n for n in names if n < partition_name(day)]
        for name in old:
            conn.execute(text(f"ALTER TABLE patrol_fix DETACH PARTITION {name}"))
    for name in old:
        _known(engine).discard(dt.datetime.strptime(name[-8:], "%Y%m%d").date())
    return old


# -- ingest -------------------------------------------------------------------------------------


def _workers(
    conn: Connection, frame: pd.DataFrame, principal: Principal, reach: ScopeFilter
) -> dict[str, int]:
    names = sorted(set(frame["worker"]))
    rows = conn.execute(
        text("SELECT id, name, region_code FROM staff WHERE name = ANY(:n) AND active"),
        {"n": names},
    ).all()  # fmt: skip
    found = {r.name: r for r in rows}
    unknown = [n for n in names if n not in found]
    if unknown:
        first = int(frame.loc[frame["worker"] == unknown[0], "index"].iat[0])
        raise PatrolError(
            422, "unknown-worker", f"fixes[{first}].worker: no active staff "
            f"{', '.join(map(repr, unknown[:5]))}", f"fixes[{first}].worker",
        )  # fmt: skip
    for name in names:
        row = found[name]
        mine = name == principal.name
        if principal.role == "gridworker" and not mine:
            raise PatrolError(403, "forbidden", f"a gridworker sends only their own fixes, "
                              f"not {name!r}'s", "worker")  # fmt: skip
        if not mine and not reach.allows(row.region_code):
            raise PatrolError(403, "outside-scope",
                              f"{name} works outside your area {principal.region_code}",
                              "worker")  # fmt: skip
    return {n: found[n].id for n in names}


def _micros(times: pd.Series) -> np.ndarray:
    return times.astype("datetime64[us, UTC]").astype("int64").to_numpy()


def _seconds(times: pd.Series) -> np.ndarray:
    """Epoch seconds, whatever the column's resolution (pandas keeps µs from Python datetimes)."""
    return times.astype("datetime64[ns, UTC]").astype("int64").to_numpy() / 1e9


def _haversine(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> np.ndarray:
    lam0, phi0, lam1, phi1 = map(np.radians, (x0, y0, x1, y1))
    a = (np.sin((phi1 - phi0) / 2) ** 2
         + np.cos(phi0) * np.cos(phi1) * np.sin((lam1 - lam0) / 2) ** 2)  # fmt: skip
    return 2 * EARTH_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def _jumps(conn: Connection, frame: pd.DataFrame) -> np.ndarray:
    """Per fix (frame sorted by worker and time): faster than 150 km/h from the worker's last
    plausible fix before it — stored or in this batch."""
    before = conn.execute(
        text(
            """
            SELECT b.worker_id, f.fix_time, ST_X(f.geom) AS x, ST_Y(f.geom) AS y
            FROM unnest(CAST(:w AS int[]), CAST(:t AS timestamptz[])) AS b(worker_id, first)
            CROSS JOIN LATERAL (
                -- one backward step on the primary key per worker; the bounds are constants
                -- per worker, so only the partitions of that hour are read
                SELECT p.fix_time, p.geom FROM patrol_fix p
                WHERE p.worker_id = b.worker_id AND p.fix_time < b.first
                  AND p.fix_time > b.first - interval '1 hour' AND p.flags & 1 = 0
                ORDER BY p.fix_time DESC LIMIT 1
            ) f
            """
        ),
        {"w": [int(w) for w in frame.groupby("worker_id")["worker_id"].first()],
         "t": [t.to_pydatetime() for t in frame.groupby("worker_id")["time"].min()]},
    ).all()  # fmt: skip
    last = {r.worker_id: (r.x, r.y, r.fix_time.timestamp()) for r in before}
    ids = frame["worker_id"].to_numpy()
    xs, ys = frame["x"].to_numpy(), frame["y"].to_numpy()
    ts = _seconds(frame["time"])
    # Vectorised first: the speed from the previous fix (the stored one for a worker's first).
    first = np.r_[True, ids[1:] != ids[:-1]]
    px, py, pt = np.r_[np.nan, xs[:-1]], np.r_[np.nan, ys[:-1]], np.r_[np.nan, ts[:-1]]
    for i in np.flatnonzero(first):
        px[i], py[i], pt[i] = last.get(ids[i], (np.nan, np.nan, np.nan))
    with np.errstate(invalid="ignore"):
        fast = _haversine(px, py, xs, ys) > MAX_SPEED_MPS * np.maximum(ts - pt, 1.0)
    if not fast.any():
        return fast
    # A worker with a jump: one pass in time order, so a jump is not the next fix's reference
    # (plain floats: numpy per element would cost more than the arithmetic).
    out = np.zeros(len(frame), dtype=bool)
    for worker in set(ids[fast].tolist()):
        ref = last.get(worker)
        rows = np.flatnonzero(ids == worker).tolist()
        for i, x, y, t in zip(rows, xs[rows].tolist(), ys[rows].tolist(), ts[rows].tolist(),
                              strict=True):  # fmt: skip
            if ref is not None and _metres(ref[0], ref[1], x, y) > MAX_SPEED_MPS * max(
                t - ref[2], 1.0
            ):
                out[i] = True
                continue
            ref = (x, y, t)
    return out


def _metres(x0: float, y0: float, x1: float, y1: float) -> float:
    p0, p1 = math.radians(y0), math.radians(y1)
    a = (math.sin((p1 - p0) / 2) ** 2
         + math.cos(p0) * math.cos(p1) * math.sin(math.radians(x1 - x0) / 2) ** 2)  # fmt: skip
    return 2 * EARTH_M * math.asin(math.sqrt(min(a, 1.0)))


def ingest(
    engine: Engine,
    locator: LocateService,
    principal: Principal,
    reach: ScopeFilter,
    body: bytes | list[Any],
    *,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Store a batch of fixes — a request's JSON body ``{"fixes": [...]}``, or the list of
    items — the good ones located and flagged, each once."""
    if not isinstance(body, bytes):
        body = pydantic_core.to_json({"fixes": body})
    now = now or dt.datetime.now(dt.UTC)
    frame, rejected = parse(body, now)
    if not len(frame):
        return IngestResult(0, 0, 0, rejected)
    snapshot = locator.current()
    if snapshot is None:
        raise PatrolError(503, "no-boundary-version", "no boundary version is active")
    with engine.connect() as conn:
        ids = _workers(conn, frame, principal, reach)
    frame["worker_id"] = frame["worker"].map(ids)
    stored, duplicates, flagged = store(engine, snapshot, frame, now=now)
    return IngestResult(stored, duplicates, flagged, rejected)


def store(
    engine: Engine, snapshot: Any, frame: pd.DataFrame, *, now: dt.datetime
) -> tuple[int, int, int]:
    """Locate, flag and store parsed fixes (columns worker_id, time, lon, lat, crs, accuracy_m,
    speed_mps, client_id); returns (stored, duplicates, flagged). Callers have checked who may
    send them — the ingest above, or the demo loader."""
    frame = frame.copy()
    frame["x"], frame["y"] = frame["lon"].astype(float), frame["lat"].astype(float)
    for crs, rows in frame.groupby("crs").groups.items():
        if crs in ("wgs84", "cgcs2000"):
            continue
        x, y = to_cgcs2000(frame.loc[rows, "lon"].to_numpy(), frame.loc[rows, "lat"].to_numpy(),
                           str(crs))  # fmt: skip
        frame.loc[rows, "x"], frame.loc[rows, "y"] = x, y
    index = snapshot.index
    where = index.locate_index(frame["x"].to_numpy(), frame["y"].to_numpy())
    codes = np.asarray(index.codes, dtype=object)
    frame["grid_code"] = np.where(where >= 0, codes[np.maximum(where, 0)], None)
    frame = frame.sort_values(["worker_id", "time"], kind="stable").reset_index(drop=True)
    unique = frame.drop_duplicates(["worker_id", "time", "client_id"]).reset_index(drop=True)
    repeated = len(frame) - len(unique)
    frame = unique
    flags = np.where(frame["accuracy_m"].fillna(0).to_numpy() > MAX_ACCURACY_M, ACCURACY, 0)
    future = (frame["time"] > pd.Timestamp(now + FUTURE_SLACK)).to_numpy()
    flags = flags | np.where(future, FUTURE, 0)
    days = pd.DatetimeIndex(frame["time"]).tz_convert(ZONE).normalize().unique()
    ensure_partitions(engine, {d.date() for d in days})
    with engine.begin() as conn:
        frame["flags"] = flags | np.where(_jumps(conn, frame), JUMP, 0)
        stored, flagged = _copy(conn, frame, snapshot.version.id)
    return stored, len(frame) - stored + repeated, flagged


_STAGE = ("worker_id", "fix_time", "client_id", "x", "y", "input_crs", "accuracy_m",
          "speed_mps", "grid_code", "flags")  # fmt: skip


def _copy(conn: Connection, frame: pd.DataFrame, version: int) -> tuple[int, int]:
    conn.execute(
        text(
            "CREATE TEMP TABLE patrol_stage (worker_id int, fix_time bigint, client_id text, "
            "x float8, y float8, input_crs text, accuracy_m real, speed_mps real, grid_code text, "
            "flags smallint) ON COMMIT DROP"
        )
    )
    # Arrow writes the CSV in C++ (pandas' to_csv took most of a batch's time); the time goes
    # as epoch microseconds (exact), turned back into timestamptz by the INSERT below.
    table = pa.table(
        {"worker_id": pa.array(frame["worker_id"].to_numpy(dtype=np.int64)),
         "fix_time": pa.array(_micros(frame["time"])),
         "client_id": pa.array(frame["client_id"].astype(str).tolist(), pa.string()),
         "x": pa.array(frame["x"].to_numpy(dtype=np.float64)),
         "y": pa.array(frame["y"].to_numpy(dtype=np.float64)),
         "input_crs": pa.array(frame["crs"].astype(str).tolist(), pa.string()),
         "accuracy_m": pa.array(frame["accuracy_m"].to_numpy(dtype=np.float64),
                                mask=frame["accuracy_m"].isna().to_numpy()),
         "speed_mps": pa.array(frame["speed_mps"].to_numpy(dtype=np.float64),
                               mask=frame["speed_mps"].isna().to_numpy()),
         "grid_code": pa.array([c if isinstance(c, str) else None
                                for c in frame["grid_code"].tolist()], pa.string()),
         "flags": pa.array(frame["flags"].to_numpy(dtype=np.int16))}
    )  # fmt: skip
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    raw = conn.connection.driver_connection
    statement = f"COPY patrol_stage ({', '.join(_STAGE)}) FROM STDIN WITH (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[union-attr]
        copy.write(sink.getvalue().to_pybytes())
    row = conn.execute(
        text(
            """
            WITH stored AS (
                INSERT INTO patrol_fix (worker_id, fix_time, client_id, geom, input_crs,
                    accuracy_m, speed_mps, grid_code, boundary_version_id, flags)
                SELECT worker_id, timestamptz 'epoch' + fix_time * interval '1 microsecond',
                    client_id,
                    ST_SetSRID(ST_MakePoint(x, y), 4490),
                    input_crs, accuracy_m, speed_mps, grid_code, :v, flags
                FROM patrol_stage
                ON CONFLICT DO NOTHING
                RETURNING flags
            )
            SELECT count(*) AS n, count(*) FILTER (WHERE flags <> 0) AS flagged FROM stored
            """
        ),
        {"v": version},
    ).one()
    return int(row.n), int(row.flagged)


# -- reading ------------------------------------------------------------------------------------


def live(
    conn: Connection, reach: ScopeFilter, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Each on-duty worker's latest plausible fix of the last ten minutes, in the caller's
    area (by the worker's home region)."""
    now = now or dt.datetime.now(dt.UTC)
    rows = conn.execute(
        text(
            f"""
            SELECT DISTINCT ON (f.worker_id) s.name AS worker, s.display_name, s.region_code,
                   f.fix_time, ST_X(f.geom) AS lon, ST_Y(f.geom) AS lat, f.grid_code,
                   f.accuracy_m, f.speed_mps
            FROM patrol_fix f JOIN staff s ON s.id = f.worker_id
            WHERE f.fix_time > :since AND f.fix_time <= :until AND f.flags = 0
              AND {reach.sql(region="s.region_code")}
            ORDER BY f.worker_id, f.fix_time DESC
            """
        ),
        {**reach.params, "since": now - LIVE_WINDOW, "until": now + FUTURE_SLACK},
    ).mappings()
    return [dict(r) for r in rows]


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), ZONE)
    return start, start + dt.timedelta(days=1)


def day_fixes(conn: Connection, worker_id: int, day: dt.date) -> pd.DataFrame:
    """A worker's plausible fixes of one Beijing day, in time order."""
    start, end = day_bounds(day)
    rows = conn.execute(
        text(
            "SELECT fix_time AS time, ST_X(geom) AS x, ST_Y(geom) AS y, grid_code "
            "FROM patrol_fix WHERE worker_id = :w AND fix_time >= :a AND fix_time < :b "
            "AND flags = 0 ORDER BY fix_time"
        ),
        {"w": worker_id, "a": start, "b": end},
    ).all()  # fmt: skip
    frame = pd.DataFrame(rows, columns=["time", "x", "y", "grid_code"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def track_geojson(
    worker: str, day: dt.date, fixes: pd.DataFrame, own: set[str], reports: int
) -> dict[str, Any]:
    """A worker's day as GeoJSON for playback: one LineString per stretch without a silence
    over five minutes, the fixes' ``times`` beside the coordinates; the stops of three minutes
    or more as points; and the day's figures from ``gis.tracks.daily_tracks`` — distance, time
    on the move (silences not counted), time inside the worker's own grids, grids visited,
    stops — with the reports the worker made that day."""
    features: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"fixes": len(fixes), "segments": 0, "distance_m": 0.0,
                               "moving_s": 0, "own_grid_s": 0, "stops": 0}  # fmt: skip
    if len(fixes):
        walked = fixes.assign(worker=worker)
        _, stops, days = tracks.daily_tracks(walked, own={worker: own})
        xs, ys = fixes["x"].to_numpy(), fixes["y"].to_numpy()
        ts = _seconds(fixes["time"])
        cuts = np.flatnonzero(np.diff(ts) > tracks.GAP.total_seconds()) + 1
        for n, (a, b) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, len(fixes)], strict=True)):
            part = fixes.iloc[a:b]
            coords = [[round(x, 7), round(y, 7)] for x, y in zip(xs[a:b], ys[a:b], strict=True)]
            geometry = ({"type": "LineString", "coordinates": coords} if len(coords) > 1
                        else {"type": "Point", "coordinates": coords[0]})  # fmt: skip
            features.append({
                "type": "Feature", "id": f"{worker}:{day}:{n}", "geometry": geometry,
                "properties": {"kind": "track", "segment": n,
                               "start": part["time"].iat[0].isoformat(),
                               "end": part["time"].iat[-1].isoformat(),
                               "times": [t.isoformat() for t in part["time"]]},
            })  # fmt: skip
        for i, stop in enumerate(stops.itertuples()):
            features.append({
                "type": "Feature", "id": f"{worker}:{day}:stop:{i}",
                "geometry": {"type": "Point", "coordinates": [round(stop.geometry.x, 7),
                                                              round(stop.geometry.y, 7)]},
                "properties": {"kind": "stop", "start": stop.start.isoformat(),
                               "end": stop.end.isoformat(),
                               "duration_s": round(float(stop.duration_s))},
            })  # fmt: skip
        mine = [d for d in days if d.date == day]
        if mine:
            d = mine[0]
            summary.update(segments=d.segments, distance_m=round(d.length_m, 1),
                           moving_s=round(d.duration_s), own_grid_s=round(d.own_grid_s),
                           stops=d.stops)  # fmt: skip
    visited = sorted({g for g in fixes["grid_code"].dropna()}) if len(fixes) else []
    summary.update(own_grids=sorted(own), grids_visited=visited, reports=int(reports))
    return {"type": "FeatureCollection", "features": features, "worker": worker,
            "date": day.isoformat(), "summary": summary}  # fmt: skip


def daily(conn: Connection, region: str, day: dt.date, *, metric_crs: str) -> list[dict[str, Any]]:
    """Each active gridworker homed in ``region`` and their day: fixes, distance, time on the
    move, time inside their own grids, grids visited, stops, reports made, first and last fix —
    from the plausible fixes with ``gis.tracks.daily_tracks``. A worker without a fix that day
    is listed with zeros (who did not patrol is what a commander looks for first)."""
    start, end = day_bounds(day)
    staff = conn.execute(
        text(
            "SELECT s.id, s.name, s.display_name, s.region_code, "
            "coalesce(array_agg(a.grid_code ORDER BY a.grid_code) FILTER "
            "(WHERE a.grid_code IS NOT NULL), '{}') AS own, "
            "(SELECT count(*) FROM incident i WHERE i.reporter_id = s.id "
            " AND i.reported_at >= :a AND i.reported_at < :b) AS reports "
            "FROM staff s LEFT JOIN grid_assignment a ON a.staff_id = s.id "
            "WHERE s.active AND s.role = 'gridworker' AND s.region_code LIKE :p "
            "GROUP BY s.id ORDER BY s.name"
        ),
        {"p": prefix_pattern(region), "a": start, "b": end},
    ).all()  # fmt: skip
    rows = conn.execute(
        text(
            "SELECT s.name AS worker, f.fix_time AS time, ST_X(f.geom) AS x, ST_Y(f.geom) AS y, "
            "f.grid_code FROM patrol_fix f JOIN staff s ON s.id = f.worker_id "
            "WHERE f.fix_time >= :a AND f.fix_time < :b AND f.flags = 0 "
            "AND s.id = ANY(:ids) ORDER BY s.name, f.fix_time"
        ),
        {"a": start, "b": end, "ids": [r.id for r in staff]},
    ).all()  # fmt: skip
    fixes = pd.DataFrame(rows, columns=["worker", "time", "x", "y", "grid_code"])
    fixes["time"] = pd.to_datetime(fixes["time"], utc=True)
    counts = fixes["worker"].value_counts().to_dict()
    summaries: dict[str, tracks.TrackSummary] = {}
    if len(fixes):
        own = {r.name: list(r.own) for r in staff}
        _, _, days = tracks.daily_tracks(fixes, own=own, metric_crs=metric_crs)
        summaries = {d.worker: d for d in days if d.date == day}
    out = []
    for r in staff:
        d = summaries.get(r.name)
        out.append({
            "worker": r.name, "name": r.display_name, "region_code": r.region_code,
            "own_grids": list(r.own), "fixes": int(counts.get(r.name, 0)),
            "distance_m": round(d.length_m, 1) if d else 0.0,
            "moving_s": round(d.duration_s) if d else 0,
            "own_grid_s": round(d.own_grid_s) if d else 0,
            "grids_visited": len(d.grids_visited) if d else 0,
            "stops": d.stops if d else 0, "reports": int(r.reports),
            "first": d.first.to_pydatetime() if d else None,
            "last": d.last.to_pydatetime() if d else None,
        })  # fmt: skip
    return out


def _grids(conn: Connection, region: str) -> gpd.GeoDataFrame:
    rows = conn.execute(
        text(
            "SELECT r.code, ST_AsBinary(r.geom) AS wkb FROM region r JOIN boundary_version v "
            "ON v.id = r.version_id AND v.is_active WHERE r.level = 'grid' AND r.code LIKE :p "
            "ORDER BY r.code"
        ),
        {"p": prefix_pattern(region)},
    ).all()  # fmt: skip
    return gpd.GeoDataFrame(
        {"code": [r.code for r in rows]},
        geometry=[shapely.from_wkb(bytes(r.wkb)) for r in rows],
        crs=4490,
    )


def coverage(
    conn: Connection, region: str, start: dt.date, days: int, *, metric_crs: str
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Per grid of ``region`` and day (or the week, when ``days`` is 7 from a Monday): the share
    of its area within 25 m of a track, visits, dwell minutes, revisit interval and workers —
    computed with ``gis.tracks`` from the plausible fixes stored in those grids."""
    grids = _grids(conn, region)
    first, _ = day_bounds(start)
    end = first + dt.timedelta(days=days)
    rows = conn.execute(
        text(
            "SELECT s.name AS worker, f.fix_time AS time, ST_X(f.geom) AS x, ST_Y(f.geom) AS y, "
            "f.grid_code FROM patrol_fix f JOIN staff s ON s.id = f.worker_id "
            "WHERE f.fix_time >= :a AND f.fix_time < :b AND f.flags = 0 AND f.grid_code LIKE :p "
            "ORDER BY s.name, f.fix_time"
        ),
        {"a": first, "b": end, "p": prefix_pattern(region)},
    ).all()  # fmt: skip
    fixes = pd.DataFrame(rows, columns=["worker", "time", "x", "y", "grid_code"])
    fixes["time"] = pd.to_datetime(fixes["time"], utc=True)
    segments, _, _ = tracks.daily_tracks(fixes, own={}, metric_crs=metric_crs)
    by = "week" if days == 7 else "day"
    table = tracks.coverage(segments, grids, fixes, by=by, metric_crs=metric_crs)
    return grids, table


def unpatrolled(
    conn: Connection, region: str, *, days: int, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """The grids of ``region`` with no plausible fix in the last ``days`` days, with the last
    one within the 90 days before (None: none in that time), the longest neglected first."""
    now = now or dt.datetime.now(dt.UTC)
    rows = conn.execute(
        text(
            """
            SELECT r.code, last.at AS last_visit FROM region r
            JOIN boundary_version v ON v.id = r.version_id AND v.is_active
            LEFT JOIN LATERAL (
                SELECT max(f.fix_time) AS at FROM patrol_fix f
                WHERE f.grid_code = r.code AND f.flags = 0
                  AND f.fix_time >= :since AND f.fix_time <= :now
            ) last ON true
            WHERE r.level = 'grid' AND r.code LIKE :p
              AND (last.at IS NULL OR last.at < :cut)
            ORDER BY last.at NULLS FIRST, r.code
            """
        ),
        {"p": prefix_pattern(region), "now": now, "since": now - dt.timedelta(days=90),
         "cut": now - dt.timedelta(days=days)},
    ).mappings()  # fmt: skip
    return [
        {"code": r["code"], "last_visit": r["last_visit"],
         "days_since": None if r["last_visit"] is None else (now - r["last_visit"]).days}
        for r in rows
    ]  # fmt: skip
