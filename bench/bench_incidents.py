"""Incidents: HTTP intake with location, and one street's incidents as GeoJSON.

The incidents issue's two targets, measured in one run against one private PostGIS cluster
(the demo district imported and activated, the class catalogue and the departments loaded):

* Intake: ``POST /api/v1/incidents`` (JSON) served by ``app.main:create_app`` under uvicorn
  (1 worker), beside the same app in which ``app.services.incidents.locate_point`` is replaced
  by :func:`postgis_locate_point` — the same job done with a database query per report
  (``regions.covering`` on the active version, and ``regions.nearest_grid`` when no grid
  covers the point) — served from :func:`create_postgis_locate_app`. A pool of keep-alive
  clients (``--threads``, default 8) sends a fixed count of reports to each, in alternating
  blocks. Points are uniform in the demo grids' bounds, kept where a grid holds them, sent as
  WGS84, GCJ-02 (converted so that they land in that grid) or CGCS2000, with a real class code.
  Every answer must be 201 with the grid the point lies in (a shapely lookup).
  Targets: gridmap >= 200 incidents/s on one worker, and >= 3x the peer.
* Listing: ``--listing-rows`` incidents (default 10,000) are bulk-inserted into one street
  (``INSERT … SELECT`` over ``ST_GeneratePoints`` in the street's grids), then
  ``GET /api/v1/incidents?region=<street>&format=geojson&limit=10000`` is timed over loopback
  HTTP and in-process (``app.api.incidents._geojson`` on a connection), beside
  ``geopandas.read_postgis`` of the same rows and columns followed by ``.to_json()``. Both
  outputs must hold the same feature ids. Target: gridmap <= 1/5 of geopandas' time.

Exits non-zero on a wrong answer, on differing ids, or when a ratio target is missed (the
absolute intake rate is reported, not enforced). Stops by itself; the servers and the cluster
are stopped and removed on the way out (also on Ctrl-C or SIGTERM).

    .venv/bin/python bench/bench_incidents.py                       # both parts, about 1.5 min
    .venv/bin/python bench/bench_incidents.py --requests 400 --listing-rows 2000   # quick
    .venv/bin/python bench/bench_incidents.py --skip-http           # listing in-process only
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import geopandas as gpd  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from _common import run_logged, uvicorn_process  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from app.services import incidents as incident_service  # noqa: E402
from app.services import regions  # noqa: E402
from app.services.incidents import IncidentError, Report  # noqa: E402
from app.services.locate import LocateService  # noqa: E402
from gis.crs import to_cgcs2000, wgs84_to_gcj02  # noqa: E402
from gis.io import read_boundaries  # noqa: E402

DEMO_FILE = ROOT / "data" / "boundaries" / "hongqiao_demo.gpkg"
DEPARTMENTS = ROOT / "data" / "catalogs" / "departments.yaml"
CACHE_DIR = ROOT / "var" / "bench"
RESULTS = ROOT / "bench" / "results" / "incidents.json"
INTAKE_PATH = "/api/v1/incidents"
CRS_MIX = ("wgs84", "gcj02", "cgcs2000")
REPORTER = "demo-admin"  # an admin homed on the district: every demo point is in its scope
TARGET_RATE = 200.0
TARGET_INTAKE_RATIO = 3.0
TARGET_LISTING_RATIO = 5.0
MAX_LIMIT = 10_000  # the listing endpoint's largest page
PEER_COUNT_ENV = "GRIDMAP_BENCH_PEER_COUNT_FILE"
UVICORN_OPTIONS = (
    "1 worker, 127.0.0.1, --http httptools --loop uvloop (as `gridmap serve` picks them), "
    "--log-level warning, --no-access-log, --timeout-keep-alive 60"
)


# ---- the peer: the same app, locating with one PostGIS query per report ---------------------
_peer_engines: dict[str, Engine] = {}
_peer_lock = threading.Lock()
_peer_lookups = [0]

DISTRICT_OF_SQL = """
WITH RECURSIVE up AS (
    SELECT code, parent_code, level FROM region WHERE version_id = :v AND code = :code
    UNION ALL
    SELECT r.code, r.parent_code, r.level FROM region r JOIN up ON r.code = up.parent_code
    WHERE r.version_id = :v
)
SELECT code FROM up WHERE level = 'district'
"""


def _peer_engine(engine: Engine) -> Engine:
    """The app's database with a pool of its own and no pre-ping, so the peer's lookup costs one
    query on a connection already open — no more than it would inside ``report_incident``."""
    key = engine.url.render_as_string(hide_password=False)
    with _peer_lock:
        if key not in _peer_engines:
            _peer_engines[key] = create_engine(key, pool_size=10, max_overflow=10)
        return _peer_engines[key]


def postgis_locate_point(locator: LocateService, report: Report) -> dict[str, Any]:
    """What ``app.services.incidents.locate_point`` answers, from the database: the grid chain
    from ``regions.covering`` on the active version (its id taken from the worker's snapshot,
    no query), else out of area with the district of ``regions.nearest_grid``."""
    x, y, name = incident_service.cgcs2000_point(report.lon, report.lat, report.crs)
    snapshot = locator.current()
    if snapshot is None:
        raise IncidentError(503, "no-boundary-version", "no boundary version is active")
    version = snapshot.version.id
    lon, lat = float(x[0]), float(y[0])
    where = {"x": lon, "y": lat, "crs": name, "version": version}
    with _peer_lock:
        _peer_lookups[0] += 1
    with _peer_engine(locator.engine).connect() as conn:
        found = {r["level"]: r["code"] for r in regions.covering(conn, version, lon, lat)}
        if "grid" in found:
            codes = {k: found.get(k) for k in ("grid", "community", "street", "district")}
            return {**where, **codes, "region": found["grid"], "out_of_area": False}
        near = regions.nearest_grid(conn, version, lon, lat)
        if near is None:
            raise IncidentError(503, "no-boundary-version", "the active version has no grids")
        district = conn.execute(
            text(DISTRICT_OF_SQL), {"v": version, "code": near["code"]}
        ).scalar_one()
    return {**where, "grid": None, "community": None, "street": None, "district": None,
            "region": district, "out_of_area": True}  # fmt: skip


def create_postgis_locate_app() -> FastAPI:
    """``app.main:create_app`` with :func:`postgis_locate_point` in place of the in-memory
    ``locate_point`` (served by uvicorn from this file). The number of lookups it made is
    written at shutdown to the file named by $GRIDMAP_BENCH_PEER_COUNT_FILE, so the benchmark can
    check that the replacement really answered."""
    from app.main import create_app

    incident_service.locate_point = postgis_locate_point
    app = create_app()
    count_file = os.environ.get(PEER_COUNT_ENV)
    if count_file:
        inner = app.router.lifespan_context

        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
            async with inner(app) as state:
                yield state
            Path(count_file).write_text(str(_peer_lookups[0]))

        app.router.lifespan_context = lifespan
    return app


# ---- processes: uvicorn servers, CPU time ---------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # fields from the 3rd (state) on


def machine_busy_seconds() -> float:
    """CPU time all processors have spent busy since boot (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / _TICK


def cpu_seconds(pid: int, *, tree: bool = False) -> float:
    """User + system CPU time of a process; with ``tree``, also of its children, both those
    running (read from /proc) and those it has waited for (its cutime and cstime) — how the
    CPU time of PostgreSQL's backends is counted, as they come and go with connections."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    total = int(fields[11]) + int(fields[12])
    if tree:
        total += int(fields[13]) + int(fields[14])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                child = _stat(int(entry.name))
                if child is not None and int(child[1]) == pid:
                    total += int(child[11]) + int(child[12])
    return total / _TICK


@contextlib.contextmanager
def uvicorn_server(
    target: str, app_dir: Path, env: dict[str, str], log_file: Path
) -> Iterator[tuple[str, int]]:
    """``uvicorn --factory target`` on a free loopback port; yields its base URL and process id
    once /health answers. Stopped on the way out."""
    with uvicorn_process(["--factory", target, "--app-dir", str(app_dir)], env=env,
                         log_file=log_file, ready_path="/health") as server:  # fmt: skip
        yield server


# ---- the database ---------------------------------------------------------------------------
@contextlib.contextmanager
def bench_database(log: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """A private embedded cluster in var/bench/incidents-pg: migrated, the class catalogue
    loaded, the demo boundaries imported and activated, the departments and the demo users
    made (no demo gridworkers). Yields its URL, versions, a district admin's token and more.
    Destroyed on the way out."""
    from app.db.embedded import EmbeddedPostgres
    from app.db.engine import make_engine, upgrade
    from app.services import boundaries as boundary_service
    from app.services import identity
    from app.services.catalog import DEFAULT_CATALOG
    from app.settings import Settings

    base = CACHE_DIR / "incidents-pg"
    cluster = EmbeddedPostgres(base, fast=True, database="gridmap_bench")
    if base.exists():  # left behind by an interrupted run of this benchmark
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    base.chmod(0o755)
    try:
        log("starting a private PostGIS cluster in var/bench/incidents-pg, importing the demo …")
        cluster.up()
        url = cluster.url()
        engine = make_engine(url)
        try:
            upgrade(engine)
            incident_service.load_classes(engine, DEFAULT_CATALOG)
            settings = Settings(database_url=url)
            data = read_boundaries([DEMO_FILE], scheme=settings.code_scheme)
            version, _ = boundary_service.import_boundaries(
                engine, data, settings.validation, label="bench", source_paths=[DEMO_FILE]
            )
            boundary_service.activate(engine, version.id)
            identity.load_departments(engine, DEPARTMENTS)
            identity.demo_users(engine)
            token = identity.create_token(engine, REPORTER)
            with engine.connect() as conn:
                info = {
                    "postgres": conn.execute(text("SHOW server_version")).scalar_one(),
                    "postgis": conn.execute(text("SELECT postgis_lib_version()")).scalar_one(),
                }
                classes = list(
                    conn.execute(text("SELECT code FROM incident_class ORDER BY code")).scalars()
                )
                reporter = conn.execute(
                    text("SELECT id, region_code FROM staff WHERE name = :n"), {"n": REPORTER}
                ).one()
        finally:
            engine.dispose()
        pid_file = cluster.data_dir / "postmaster.pid"
        yield {
            "url": url,
            "versions": info,
            "token": token,
            "classes": classes,
            "version_id": version.id,
            "reporter_id": reporter.id,
            "reporter_region": reporter.region_code,
            "frame": data.frame,
            "postmaster": int(pid_file.read_text().split()[0]),
        }
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


# ---- intake ---------------------------------------------------------------------------------
def intake_reports(
    frame: gpd.GeoDataFrame, classes: list[str], n: int, seed: int
) -> tuple[list[bytes], list[str], dict[str, int]]:
    """``n`` JSON reports, each with the grid its point lies in. Points are uniform in the
    grids' bounds, kept where exactly one grid holds them (shapely ``within``); the CRS is drawn
    from CRS_MIX and a GCJ-02 point is the CGCS2000 point converted forward. A point whose
    conversion back (what the server does) leaves its grid — within about a centimetre of an
    edge — is dropped and counted."""
    grids = frame[frame["level"] == "grid"]
    geoms = np.asarray(grids.geometry.array, dtype=object)
    codes = grids["code"].astype(str).to_numpy(dtype=object)
    tree = shapely.STRtree(geoms)
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)

    def owner(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        pt, grid = tree.query(shapely.points(x, y), predicate="within")
        count = np.bincount(pt, minlength=len(x))
        out = np.full(len(x), -1, dtype=np.intp)
        out[pt] = grid
        out[count != 1] = -1
        return out

    bodies: list[bytes] = []
    expected: list[str] = []
    dropped = {"edge": 0}
    while len(bodies) < n:
        m = 2 * (n - len(bodies)) + 100
        x, y = rng.uniform(xmin, xmax, m), rng.uniform(ymin, ymax, m)
        crs = rng.choice(len(CRS_MIX), m)
        cls = rng.choice(len(classes), m)
        inside = owner(x, y)
        keep = inside >= 0
        x, y, crs, cls, inside = x[keep], y[keep], crs[keep], cls[keep], inside[keep]
        sent_x, sent_y = x.copy(), y.copy()
        gcj = crs == CRS_MIX.index("gcj02")
        sent_x[gcj], sent_y[gcj] = wgs84_to_gcj02(x[gcj], y[gcj])
        back_x, back_y = x.copy(), y.copy()
        back_x[gcj], back_y[gcj] = to_cgcs2000(sent_x[gcj], sent_y[gcj], "gcj02")
        same = owner(back_x, back_y) == inside
        dropped["edge"] += int((~same).sum())
        for i in np.flatnonzero(same)[: n - len(bodies)].tolist():
            k = len(bodies)
            body = {
                "lon": float(sent_x[i]),
                "lat": float(sent_y[i]),
                "crs": CRS_MIX[int(crs[i])],
                "class_code": classes[int(cls[i])],
                "source": "patrol",
                "description": f"bench report {k}: 巡查发现问题",
            }
            bodies.append(json.dumps(body, ensure_ascii=False).encode())
            expected.append(str(codes[inside[i]]))
    return bodies, expected, dropped


class Clients:
    """A pool of ``threads`` threads, each with one keep-alive httpx2 client per server."""

    def __init__(self, threads: int, token: str) -> None:
        self.threads = threads
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.run, self.blocks = f"{time.time_ns():x}", 0
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="bench-client")
        self.local = threading.local()
        self.all: list[Any] = []
        self.lock = threading.Lock()

    def _client(self, base: str) -> Any:
        import httpx2 as httpx

        clients = getattr(self.local, "clients", None)
        if clients is None:
            clients = self.local.clients = {}
        if base not in clients:
            clients[base] = httpx.Client(base_url=base, timeout=60, headers=self.headers)
            with self.lock:
                self.all.append(clients[base])
        return clients[base]

    def block(self, base: str, bodies: list[bytes]) -> tuple[float, list[tuple[float, int, bytes]]]:
        """POST every body once, ``threads`` at a time; the block's wall time and, per body,
        (latency, status, answer)."""
        results: list[Any] = [None] * len(bodies)
        position = [0]
        lock = threading.Lock()
        with self.lock:
            self.blocks += 1
            prefix = f"bench-{self.run}-{self.blocks}"  # a key per report, unique across runs

        def work() -> None:
            client = self._client(base)
            while True:
                with lock:
                    i = position[0]
                    position[0] += 1
                if i >= len(bodies):
                    return
                started = time.perf_counter()
                # a phone's key, as every retrying client sends
                response = client.post(INTAKE_PATH, content=bodies[i],
                                       headers={"Idempotency-Key": f"{prefix}-{i}"})  # fmt: skip
                results[i] = (time.perf_counter() - started, response.status_code, response.content)

        started = time.perf_counter()
        for future in [self.pool.submit(work) for _ in range(self.threads)]:
            future.result()
        return time.perf_counter() - started, results

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for client in self.all:
            client.close()


def _check(results: list[tuple[float, int, bytes]], expected: list[str]) -> list[dict[str, Any]]:
    wrong = []
    for (_, status, content), code in zip(results, expected, strict=True):
        got = None
        out_of_area = None
        with contextlib.suppress(ValueError):
            body = json.loads(content)
            got, out_of_area = body.get("grid_code"), body.get("out_of_area")
        if status != 201 or got != code or out_of_area is not False:
            wrong.append(
                {"status": status, "expected": code, "got": got, "answer": content[:300].decode(
                    errors="replace")}
            )  # fmt: skip
    return wrong


def outside_points(frame: gpd.GeoDataFrame, n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` points in the grids' bounds that no grid touches, and one east of the bounds."""
    grids = np.asarray(frame[frame["level"] == "grid"].geometry.array, dtype=object)
    tree = shapely.STRtree(grids)
    xmin, ymin, xmax, ymax = shapely.total_bounds(grids)
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(xmin, xmax, 50 * n), rng.uniform(ymin, ymax, 50 * n)
    hit = np.zeros(len(x), dtype=bool)
    hit[tree.query(shapely.points(x, y), predicate="intersects")[0]] = True
    keep = np.flatnonzero(~hit)[:n]
    return [(float(x[i]), float(y[i])) for i in keep] + [(xmax + 0.01, (ymin + ymax) / 2)]


def in_process(
    url: str,
    token: str,
    photo_dir: Path,
    bodies: list[bytes],
    outside: list[tuple[float, float]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Where a report's time goes, in this process, one thread, without HTTP: the steps of
    ``POST /api/v1/incidents`` called one after the other as the endpoint calls them
    (authenticate on the autocommit engine; the request's connection and scope; the service's
    ``report_incident``, which stores the case and reads it back with its possible duplicates;
    the answer: the response model and its JSON), and each lookup
    by itself: ``locate_point`` (the worker's in-memory index) and :func:`postgis_locate_point`
    on the same reports. Medians; the two lookups must agree on every report, and on points
    outside every grid (``outside``: out of area, the nearest grid's district), untimed."""
    from app.api.incidents import case_out
    from app.db.engine import make_engine
    from app.services import identity
    from app.services.scoping import scope_for

    engine = make_engine(url)
    auth_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    locator = LocateService(engine, metric_crs="EPSG:4548")
    steps = ("authenticate", "scope", "report_incident", "answer", "memory", "postgis")
    times: dict[str, list[float]] = {k: [] for k in steps}
    mismatches = 0
    try:
        locator.refresh()
        reports = [Report(**json.loads(b)) for b in bodies]
        for i, report in enumerate(reports):
            t0 = time.perf_counter()
            with auth_engine.connect() as conn:
                principal = identity.authenticate(conn, token)
            t1 = time.perf_counter()
            with engine.connect() as conn, conn.begin():
                reach = scope_for(conn, principal)
                t2 = time.perf_counter()
                taken = incident_service.report_incident(
                    engine, locator, principal, reach, report, photo_dir=photo_dir
                )
                t3 = time.perf_counter()
                json.dumps(case_out(taken.case, principal).model_dump(mode="json"))
                t4 = time.perf_counter()
            a = incident_service.locate_point(locator, report)
            t5 = time.perf_counter()
            b = postgis_locate_point(locator, report)
            t6 = time.perf_counter()
            mismatches += a != b
            if i >= 20:  # the first ones warm connections and caches
                for key, took in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                                     strict=True):  # fmt: skip
                    times[key].append(took)
        for lon, lat in outside:
            report = Report(lon, lat, "cgcs2000", reports[0].class_code, "patrol", "outside")
            a = incident_service.locate_point(locator, report)
            b = postgis_locate_point(locator, report)
            mismatches += a != b or not a["out_of_area"]
        log(f"in-process: {len(reports)} reports, {mismatches} differing lookups")
        return {
            "reports": len(reports) - 20,
            "outside": len(outside),
            **{f"{k}_ms": statistics.median(v) * 1000 for k, v in times.items()},
            "mismatches": mismatches,
        }
    finally:
        locator.stop()
        for peer in list(_peer_engines.values()):
            peer.dispose()
        _peer_engines.clear()
        engine.dispose()


def in_process_lines(r: dict[str, Any]) -> list[str]:
    steps = r["authenticate_ms"] + r["scope_ms"] + r["report_incident_ms"] + r["answer_ms"]
    return [
        f"  in-process, one thread, {r['reports']} reports, medians: authenticate "
        f"{r['authenticate_ms']:.2f} ms, connection + scope {r['scope_ms']:.2f} ms, "
        f"report_incident (store, read back, duplicates) {r['report_incident_ms']:.2f} ms, "
        f"answer (model + JSON) {r['answer_ms']:.2f} ms (sum {steps:.2f} ms); the lookup alone: "
        f"locate_point "
        f"{r['memory_ms']:.3f} ms, postgis_locate_point {r['postgis_ms']:.3f} ms; differing "
        f"lookups {r['mismatches']} (also compared on {r['outside']} points outside every grid)"
    ]


def run_intake(
    args: argparse.Namespace,
    db: dict[str, Any],
    servers: dict[str, tuple[str, int]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    per = args.warmup + args.requests
    bodies, expected, dropped = intake_reports(db["frame"], db["classes"], 2 * per, args.seed)
    # Two samples of the same distribution: even reports to gridmap, odd ones to the peer (the
    # same point twice would make each one the other's duplicate).
    mine = {"gridmap": (bodies[0::2], expected[0::2]), "peer": (bodies[1::2], expected[1::2])}
    clients = Clients(args.threads, db["token"])
    postmaster = db["postmaster"]
    stats: dict[str, dict[str, Any]] = {
        name: {"wall_s": 0.0, "latency_s": [], "server_cpu_s": 0.0, "pg_cpu_s": 0.0,
               "client_cpu_s": 0.0, "machine_busy_s": 0.0, "sessions": 0, "wrong": [],
               "answered": 0}
        for name in servers
    }  # fmt: skip

    def block(name: str, lo: int, hi: int, timed: bool) -> None:
        base, pid = servers[name]
        sent, codes = mine[name][0][lo:hi], mine[name][1][lo:hi]
        opened = sessions()
        before = (cpu_seconds(pid), cpu_seconds(postmaster, tree=True), time.process_time(),
                  machine_busy_seconds())  # fmt: skip
        wall, results = clients.block(base, sent)
        after = (cpu_seconds(pid), cpu_seconds(postmaster, tree=True), time.process_time(),
                 machine_busy_seconds())  # fmt: skip
        time.sleep(0.2)  # let the backends of closed connections exit and report
        opened = sessions() - opened
        s = stats[name]
        s["wrong"] += _check(results, codes)
        s["answered"] += len(results)
        if timed:
            s["wall_s"] += wall
            s["latency_s"] += [r[0] for r in results]
            s["server_cpu_s"] += after[0] - before[0]
            s["pg_cpu_s"] += after[1] - before[1]
            s["client_cpu_s"] += after[2] - before[2]
            s["sessions"] += opened
            s["machine_busy_s"] += after[3] - before[3]

    monitor = create_engine(db["url"], poolclass=NullPool).connect()
    monitor = monitor.execution_options(isolation_level="AUTOCOMMIT")

    def sessions() -> int:
        """Sessions (connections) PostgreSQL has opened so far in the bench database."""
        return int(
            monitor.execute(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )

    try:
        log(f"intake: {args.warmup} warm-up reports to each …")
        block("gridmap", 0, args.warmup, timed=False)
        block("peer", 0, args.warmup, timed=False)
        blocks = math.ceil(args.requests / args.block)
        log(
            f"intake: {args.requests:,} timed reports to each, {args.threads} clients, "
            f"{blocks} blocks of {args.block}, alternating …"
        )
        for k in range(blocks):
            lo = args.warmup + k * args.block
            hi = min(lo + args.block, per)
            for name in ("gridmap", "peer") if k % 2 == 0 else ("peer", "gridmap"):
                block(name, lo, hi, timed=True)
    finally:
        clients.close()
        monitor.close()

    out: dict[str, Any] = {
        "requests": args.requests,
        "warmup": args.warmup,
        "threads": args.threads,
        "block": args.block,
        "dropped_near_edges": dropped["edge"],
        "crs_mix": {c: sum(json.loads(b)["crs"] == c for b in bodies) for c in CRS_MIX},
        "classes": len(db["classes"]),
    }
    for name, s in stats.items():
        lat = np.asarray(s["latency_s"]) * 1000
        n = len(lat)
        out[name] = {
            "rate_per_s": n / s["wall_s"],
            "wall_s": s["wall_s"],
            "p50_ms": float(np.percentile(lat, 50)),
            "p95_ms": float(np.percentile(lat, 95)),
            "mean_ms": float(lat.mean()),
            "server_cpu_ms_per_report": s["server_cpu_s"] * 1000 / n,
            "postgres_cpu_ms_per_report": s["pg_cpu_s"] * 1000 / n,
            "client_cpu_ms_per_report": s["client_cpu_s"] * 1000 / n,
            "sessions_opened": s["sessions"],
            "machine_busy_share": s["machine_busy_s"] / (s["wall_s"] * nproc()),
            "others_busy_share": (
                s["machine_busy_s"] - s["server_cpu_s"] - s["pg_cpu_s"] - s["client_cpu_s"]
            )
            / (s["wall_s"] * nproc()),
            "answered": s["answered"],
            "wrong": len(s["wrong"]),
            "wrong_examples": s["wrong"][:5],
        }
    out["ratio"] = out["gridmap"]["rate_per_s"] / out["peer"]["rate_per_s"]
    return out


def intake_lines(r: dict[str, Any], lookups: int | None) -> list[str]:
    g, p = r["gridmap"], r["peer"]
    mix = "/".join(f"{r['crs_mix'][c]:,}" for c in CRS_MIX)
    expected_lookups = p["answered"]
    lines = [
        f"intake — POST {INTAKE_PATH} (JSON, 201 + the case as read back), uvicorn "
        f"{UVICORN_OPTIONS}; {r['threads']} keep-alive clients, {r['requests']:,} timed reports "
        f"to each in blocks of {r['block']}, alternating which server goes first, after "
        f"{r['warmup']} warm-up; points inside grids, crs {'/'.join(CRS_MIX)} {mix}, "
        f"{r['classes']} classes, source patrol",
    ]
    for label, s in (("gridmap  GridIndex in memory", g), ("peer     regions.covering SQL", p)):
        lines.append(
            f"  {label}  {s['rate_per_s']:7.1f} incidents/s   p50 {s['p50_ms']:6.1f} ms   "
            f"p95 {s['p95_ms']:6.1f} ms   CPU per report: server "
            f"{s['server_cpu_ms_per_report']:.2f} ms, PostgreSQL "
            f"{s['postgres_cpu_ms_per_report']:.2f} ms, clients "
            f"{s['client_cpu_ms_per_report']:.2f} ms; connections opened {s['sessions_opened']:,}"
        )
    lines.append(
        f"  the machine's {nproc()} CPUs during the timed blocks: busy "
        f"{g['machine_busy_share']:.0%} (gridmap's blocks) and {p['machine_busy_share']:.0%} "
        f"(the peer's), of which other processes than the server, its PostgreSQL and the "
        f"clients {g['others_busy_share']:.0%} and {p['others_busy_share']:.0%}"
    )
    rate_ok = g["rate_per_s"] >= TARGET_RATE
    ratio_ok = r["ratio"] >= TARGET_INTAKE_RATIO
    lines.append(
        f"  ratio {r['ratio']:.2f}x (target >= {TARGET_INTAKE_RATIO:.0f}x: "
        f"{'met' if ratio_ok else 'MISSED'}); gridmap {g['rate_per_s']:.0f} incidents/s on one "
        f"worker (target >= {TARGET_RATE:.0f}/s: {'met' if rate_ok else 'MISSED'})"
    )
    shown = "unknown (no count written)" if lookups is None else f"{lookups:,}"
    lines.append(
        f"  answers wrong: gridmap {g['wrong']:,} of {g['answered']:,}, peer {p['wrong']:,} of "
        f"{p['answered']:,}; lookups made by postgis_locate_point in the peer: {shown} "
        f"(expected {expected_lookups:,}); {r['dropped_near_edges']} candidate points dropped "
        "(their GCJ-02 round trip left the grid)"
    )
    for name, s in (("gridmap", g), ("peer", p)):
        lines += [
            f"  wrong ({name})  status {w['status']}, expected {w['expected']}, got {w['got']}: "
            f"{w['answer'][:160]}"
            for w in s["wrong_examples"]
        ]
    return lines


# ---- listing --------------------------------------------------------------------------------
BULK_SQL = """
WITH grids AS (
    SELECT g.code AS grid, c.code AS community, s.code AS street, s.parent_code AS district,
           g.geom, row_number() OVER (ORDER BY g.code) AS gi
    FROM region g
    JOIN region c ON c.version_id = g.version_id AND c.code = g.parent_code
    JOIN region s ON s.version_id = g.version_id AND s.code = c.parent_code
    WHERE g.version_id = :v AND g.level = 'grid' AND s.code = :street
),
pts AS (
    SELECT grids.grid, grids.community, grids.street, grids.district, grids.gi,
           d.path[1] AS k, d.geom AS p
    FROM grids, ST_Dump(ST_GeneratePoints(grids.geom, CAST(:per AS int),
                                    CAST(:seed + grids.gi AS int))) d
    ORDER BY d.path[1], grids.gi
    LIMIT :n
),
numbered AS (SELECT pts.*, row_number() OVER (ORDER BY k, gi) AS j FROM pts),
cases AS (
    SELECT numbered.*,
           (ARRAY['reported', 'filed', 'dispatched', 'handling', 'handled', 'closed'])
               [1 + j % 6] AS status,
           now() - j * interval '37 minutes' AS at
    FROM numbered
)
INSERT INTO incident (status, class_code, source, description, geom, input_lon, input_lat,
    input_crs, grid_code, community_code, street_code, district_code, region_code,
    boundary_version_id, out_of_area, reporter_id, reported_at, step, due_at, department_code)
SELECT status,
       (CAST(:classes AS text[]))[1 + (j * 7) % cardinality(CAST(:classes AS text[]))],
       (ARRAY['patrol', 'hotline', 'app', 'resident', 'video'])[1 + j % 5],
       'bench bulk report ' || j, p, ST_X(p), ST_Y(p), 'cgcs2000',
       grid, community, street, district, grid, :v, false, :reporter, at,
       CASE status WHEN 'filed' THEN 'dispatch' WHEN 'dispatched' THEN 'handle'
                   WHEN 'handling' THEN 'handle' WHEN 'handled' THEN 'verify' END,
       CASE WHEN status IN ('filed', 'dispatched', 'handling', 'handled')
            THEN at + interval '3 days' END,
       CASE WHEN status IN ('dispatched', 'handling', 'handled', 'closed')
            THEN 'hq-cityman' END
FROM cases
"""

PEER_COLUMNS = (
    "i.id, i.status, i.class_code, i.source, i.geom, i.grid_code, i.street_code, i.out_of_area, "
    "i.department_code, i.reported_at, i.due_at, "
    "(i.due_at IS NOT NULL AND i.due_at < now()) AS overdue"
)


def _iso(value: Any) -> Any:
    """json.dumps' ``default`` for what ``to_json`` cannot write itself (timestamps)."""
    return value.isoformat()


def bulk_insert(engine: Engine, db: dict[str, Any], street: str, n: int, seed: int) -> dict:
    with engine.begin() as conn:
        grids = conn.execute(
            text(
                "SELECT count(*) FROM region g JOIN region c ON c.version_id = g.version_id "
                "AND c.code = g.parent_code WHERE g.version_id = :v AND g.level = 'grid' "
                "AND c.parent_code = :s"
            ),
            {"v": db["version_id"], "s": street},
        ).scalar_one()
        if not grids:
            raise RuntimeError(f"street {street} has no grids in the active version")
        started = time.perf_counter()
        inserted = conn.execute(
            text(BULK_SQL),
            {"v": db["version_id"], "street": street, "per": math.ceil(n / grids), "seed": seed,
             "n": n, "classes": db["classes"], "reporter": db["reporter_id"]},
        ).rowcount  # fmt: skip
        took = time.perf_counter() - started
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE incident"))
        held = conn.execute(
            text("SELECT count(*) FROM incident WHERE street_code = :s"), {"s": street}
        ).scalar_one()
    return {"grids": grids, "inserted": inserted, "insert_s": took, "street_holds": held}


def run_listing(
    args: argparse.Namespace,
    db: dict[str, Any],
    server: tuple[str, int] | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import httpx2 as httpx

    from app.api.incidents import _geojson
    from app.services.incidents import scope_sql
    from app.services.scoping import ScopeFilter, prefix_pattern

    engine = create_engine(db["url"])
    try:
        with engine.connect() as conn:
            street = (
                args.street
                or conn.execute(
                    text(
                        "SELECT c.parent_code FROM region g JOIN region c ON c.version_id = "
                        "g.version_id AND c.code = g.parent_code WHERE g.version_id = :v AND "
                        "g.level = 'grid' GROUP BY c.parent_code ORDER BY count(*) DESC, "
                        "c.parent_code LIMIT 1"
                    ),
                    {"v": db["version_id"]},
                ).scalar_one()
            )
        log(f"listing: bulk-inserting {args.listing_rows:,} incidents into street {street} …")
        bulk = bulk_insert(engine, db, street, args.listing_rows, args.seed)
        limit = min(args.listing_rows, MAX_LIMIT)
        # The listing's query exactly as GET /api/v1/incidents builds it for this caller.
        reach = ScopeFilter(db["reporter_region"])
        where = [scope_sql(reach), "i.region_code LIKE :region"]
        params = {**reach.params, "n": limit + 1, "region": prefix_pattern(street)}
        peer_sql = (
            f"SELECT {PEER_COLUMNS} FROM incident i WHERE {' AND '.join(where)} "
            "ORDER BY i.id DESC LIMIT :n"
        )
        peer_params = {**params, "n": limit}
        path = f"{INTAKE_PATH}?region={street}&format=geojson&limit={limit}"
        times: dict[str, list[float]] = {"http": [], "inproc": [], "peer": [], "read": [],
                                         "to_json": []}  # fmt: skip
        bodies: dict[str, bytes | str] = {}
        client = (
            httpx.Client(base_url=server[0], timeout=60,
                         headers={"Authorization": f"Bearer {db['token']}"})
            if server is not None else None
        )  # fmt: skip
        log(f"listing: {args.listing_repeat} timed runs (+1 warm-up) of each, interleaved …")
        try:
            with engine.connect() as conn:
                for run in range(args.listing_repeat + 1):
                    if client is not None:
                        started = time.perf_counter()
                        response = client.get(path)
                        took = time.perf_counter() - started
                        if response.status_code != 200:
                            raise RuntimeError(
                                f"GET {path} answered {response.status_code}: {response.text[:300]}"
                            )
                        bodies["http"] = response.content
                        if run:
                            times["http"].append(took)
                    started = time.perf_counter()
                    answer = _geojson(conn, where, dict(params), limit)
                    took = time.perf_counter() - started
                    conn.rollback()
                    bodies["inproc"] = bytes(answer.body)
                    if run:
                        times["inproc"].append(took)
                    started = time.perf_counter()
                    frame = gpd.read_postgis(
                        text(peer_sql), conn, geom_col="geom", params=peer_params
                    )
                    read = time.perf_counter()
                    peer_body = frame.set_index("id", drop=False).to_json(default=_iso)
                    done = time.perf_counter()
                    conn.rollback()
                    bodies["peer"] = peer_body
                    if run:
                        times["peer"].append(done - started)
                        times["read"].append(read - started)
                        times["to_json"].append(done - read)
        finally:
            if client is not None:
                client.close()
    finally:
        engine.dispose()

    parsed = {k: json.loads(v) for k, v in bodies.items()}
    ids = {k: [int(f["id"]) for f in v["features"]] for k, v in parsed.items()}
    coords = {
        k: {int(f["id"]): tuple(f["geometry"]["coordinates"]) for f in v["features"]}
        for k, v in parsed.items()
    }
    same_coords = sum(coords["peer"].get(i) == c for i, c in coords["inproc"].items())
    med = {k: statistics.median(v) for k, v in times.items() if v}
    return {
        "street": street,
        **bulk,
        "limit": limit,
        "path": path,
        "repeat": args.listing_repeat,
        "times_s": times,
        "median_s": med,
        "body_bytes": {k: len(v) for k, v in bodies.items()},
        "features": {k: len(v) for k, v in ids.items()},
        "same_ids": all(v == ids["peer"] for v in ids.values()),
        "same_id_sets": all(set(v) == set(ids["peer"]) for v in ids.values()),
        "same_coordinates": same_coords,
        "ratio_http": med["peer"] / med["http"] if "http" in med else None,
        "ratio_inproc": med["peer"] / med["inproc"],
        "next_cursor": parsed["inproc"].get("next_cursor"),
    }


def listing_lines(r: dict[str, Any]) -> list[str]:
    med = r["median_s"]
    mb = {k: v / 2**20 for k, v in r["body_bytes"].items()}

    def ms(key: str) -> str:
        return f"{med[key] * 1000:7.1f} ms"

    lines = [
        f"listing — GET {r['path']}; street {r['street']} ({r['grids']} grids), "
        f"{r['inserted']:,} incidents bulk-inserted in {r['insert_s']:.2f} s (the street holds "
        f"{r['street_holds']:,}); median of {r['repeat']} runs after 1 warm-up, interleaved",
    ]
    if "http" in med:
        lines.append(
            f"  gridmap  HTTP, loopback, one keep-alive client   {ms('http')}   body "
            f"{mb['http']:.1f} MiB   (request time: auth, SQL, transfer)"
        )
    lines += [
        f"  gridmap  _geojson in-process                    {ms('inproc')}   body "
        f"{mb['inproc']:.1f} MiB   (the endpoint's SQL; PostgreSQL writes the JSON)",
        f"  peer     geopandas read_postgis + to_json       {ms('peer')}   body "
        f"{mb['peer']:.1f} MiB   (read_postgis {med['read'] * 1000:.1f} ms, to_json "
        f"{med['to_json'] * 1000:.1f} ms)",
    ]
    ok_http = r["ratio_http"] is None or r["ratio_http"] >= TARGET_LISTING_RATIO
    ok_in = r["ratio_inproc"] >= TARGET_LISTING_RATIO
    http = (
        f"HTTP {r['ratio_http']:.1f}x ({'met' if ok_http else 'MISSED'}), "
        if r["ratio_http"] is not None
        else ""
    )
    lines.append(
        f"  ratio geopandas / gridmap: {http}in-process {r['ratio_inproc']:.1f}x "
        f"({'met' if ok_in else 'MISSED'}) (target >= {TARGET_LISTING_RATIO:.0f}x, i.e. gridmap "
        "<= 1/5 of geopandas' time)"
    )
    counts = ", ".join(f"{k} {v:,}" for k, v in r["features"].items())
    lines.append(
        f"  features: {counts}; same ids in the same order: {'yes' if r['same_ids'] else 'NO'}; "
        f"same coordinates: {r['same_coordinates']:,} of {r['features']['inproc']:,}; "
        f"next_cursor {'set' if r['next_cursor'] else 'null'}"
    )
    return lines


# ---- main -----------------------------------------------------------------------------------


def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "app", "gis")
    return rev + (" + uncommitted changes in app/ or gis/" if dirty else "")


def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    figures: dict[str, Any] = {
        "benchmark": "incidents",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "geopandas": gpd.__version__,
        "commit": _commit(),
        "seed": args.seed,
        "targets": {
            "rate_per_s": TARGET_RATE,
            "intake_ratio": TARGET_INTAKE_RATIO,
            "listing_ratio": TARGET_LISTING_RATIO,
        },
    }
    out: list[str] = []
    failures: list[str] = []

    def emit(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        out.extend(lines)

    work = CACHE_DIR / "incidents"
    work.mkdir(parents=True, exist_ok=True)
    with bench_database(log) as db:
        figures["server"] = db["versions"]
        emit(
            [
                f"incidents bench — nproc {nproc()}, {dt.date.today().isoformat()}, commit "
                f"{figures['commit']}; PostgreSQL {db['versions']['postgres']} / PostGIS "
                f"{db['versions']['postgis']} (fsync off), geopandas {gpd.__version__}; demo "
                f"district ({int((db['frame']['level'] == 'grid').sum())} grids), "
                f"{len(db['classes'])} incident classes; reporter {REPORTER} (bearer token); "
                f"load average {os.getloadavg()[0]:.2f} at the start"
            ]
        )
        env = {
            **os.environ,
            "GRIDMAP_DATABASE_URL": db["url"],
            "GRIDMAP_VAR_DIR": str(work / "var"),
            PEER_COUNT_ENV: str(work / "peer-lookups"),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        (work / "peer-lookups").unlink(missing_ok=True)
        do_intake = not (args.skip_http or args.skip_intake)
        if do_intake:
            sample, _, _ = intake_reports(db["frame"], db["classes"], 320, args.seed + 1)
            outside = outside_points(db["frame"], 20, args.seed + 2)
            figures["in_process"] = in_process(
                db["url"], db["token"], work / "var" / "photos", sample, outside, log
            )
        intake: dict[str, Any] | None = None
        try:
            with contextlib.ExitStack() as stack:
                servers: dict[str, tuple[str, int]] = {}
                if not args.skip_http:
                    log("starting uvicorn: app.main:create_app …")
                    servers["gridmap"] = stack.enter_context(
                        uvicorn_server("app.main:create_app", ROOT, env, work / "app.log")
                    )
                if do_intake:
                    log("starting uvicorn: bench_incidents:create_postgis_locate_app …")
                    servers["peer"] = stack.enter_context(
                        uvicorn_server(
                            "bench_incidents:create_postgis_locate_app", HERE, env,
                            work / "peer.log",
                        )
                    )  # fmt: skip
                    intake = run_intake(args, db, servers, log)
                if not args.skip_listing:
                    listing = run_listing(args, db, servers.get("gridmap"), log)
                    figures["listing"] = listing
        except RuntimeError as exc:  # a server that fails to start or answers wrongly
            emit([f"error: {exc}"])
            failures.append("error")
        # The peer has stopped here and written how many lookups it made.
        if intake is not None:
            count_file = work / "peer-lookups"
            lookups = int(count_file.read_text()) if count_file.exists() else None
            intake["peer_lookups"] = lookups
            figures["intake"] = intake
            emit(intake_lines(intake, lookups))
            wrong = intake["gridmap"]["wrong"] + intake["peer"]["wrong"]
            if wrong:
                failures.append(f"intake: {wrong:,} wrong answers")
            if lookups is not None and lookups < intake["peer"]["answered"]:
                failures.append(f"intake: the peer made only {lookups:,} PostGIS lookups")
            if intake["ratio"] < TARGET_INTAKE_RATIO:
                failures.append(
                    f"intake: ratio {intake['ratio']:.2f}x < {TARGET_INTAKE_RATIO:.0f}x"
                )
        elif not do_intake:
            emit(["intake — skipped (--skip-http or --skip-intake)"])
        if "in_process" in figures:
            emit(in_process_lines(figures["in_process"]))
            if figures["in_process"]["mismatches"]:
                failures.append("intake: locate_point and postgis_locate_point disagree")
        if "listing" in figures:
            listing = figures["listing"]
            emit(listing_lines(listing))
            if not listing["same_ids"] or listing["features"]["inproc"] != listing["limit"]:
                failures.append("listing: the outputs' feature ids differ")
            worst = min(r for r in (listing["ratio_http"], listing["ratio_inproc"]) if r)
            if worst < TARGET_LISTING_RATIO:
                failures.append(f"listing: ratio {worst:.1f}x < {TARGET_LISTING_RATIO:.0f}x")
        elif args.skip_listing:
            emit(["listing — skipped (--skip-listing)"])
    return finish(figures, out, failures, args.results, emit, log)


def finish(
    figures: dict[str, Any],
    out: list[str],
    failures: list[str],
    path: Path,
    emit: Callable[[list[str]], None],
    log: Callable[[str], None],
) -> int:
    """The end of a benchmark run: the load average and the failures printed, every figure and
    the printed table written as JSON to ``path``; the exit status (1 when a target is missed)."""
    emit([f"load average {os.getloadavg()[0]:.2f} at the end (1 minute; nproc {nproc()})"])
    if failures:
        emit([f"FAILED: {f}" for f in failures])
    figures.update(failures=failures, table=out)
    results = path.absolute()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n")
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    log(f"figures written to {shown}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed reports to each server")
    parser.add_argument("--warmup", type=int, default=100, help="untimed reports to each")
    parser.add_argument("--threads", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--block", type=int, default=200, help="reports per alternating block")
    parser.add_argument("--listing-rows", type=int, default=10_000,
                        help="incidents bulk-inserted into the street")  # fmt: skip
    parser.add_argument("--listing-repeat", type=int, default=5, help="timed listing runs")
    parser.add_argument("--street", help="street code (default: the one with the most grids)")
    parser.add_argument("--seed", type=int, default=20191216, help="points and classes seed")
    parser.add_argument("--skip-intake", action="store_true", help="no intake comparison")
    parser.add_argument("--skip-listing", action="store_true", help="no listing comparison")
    parser.add_argument("--skip-http", action="store_true",
                        help="no servers: no intake, listing in-process only")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if min(args.requests, args.threads, args.block, args.listing_rows, args.listing_repeat) < 1:
        parser.error("--requests, --threads, --block, --listing-rows, --listing-repeat >= 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
