"""Tiles: incident vector tiles at z12–z17, cold and from the cache, beside tipg on the same table.

The wall issue's tile target, measured in one run against one private PostGIS cluster in
var/bench/tiles-pg (``fast=True``): migrated, the class catalogue and the demo departments
loaded, the demo district imported and activated, one gridworker per grid
(``identity.demo_gridworkers``), an administrator homed on the district with a bearer token, then
``--days`` of demo cases (default 365: about 290,000, ``demo_activity.load``) and ANALYZE.

* gridmap: ``GET /tiles/incidents/{z}/{x}/{y}.pbf`` with the administrator's token, served by
  ``app.main:create_app`` under uvicorn as bench_incidents starts it (1 worker, httptools,
  uvloop; supervision off, no demo patrols; the default tile cache of 64 MiB, where an incident
  tile is kept 30 s). Single cases (id, status, class_code, overdue, reported_at, grid_code)
  from z14 on; clusters below z14 and past 5,000 cases in a tile.
* peer: tipg (developmentseed/tipg, OGC API Features and Tiles on FastAPI and asyncpg),
  installed by this benchmark into its own virtualenv var/bench/tipg-venv (uv, or venv + pip;
  reused when present, ``--reinstall-tipg`` to redo) and never a dependency of the project. Its
  own uvicorn process with the same options, on the same database, serving the view
  ``incident_tile``: the incident table's rows in the administrator's scope (the condition
  gridmap applies) with exactly the tile's columns — id, status, class_code, overdue (due_at
  passed, as gridmap computes it), reported_at in epoch seconds, grid_code — and the geometry
  (SRID 4490, the table's GiST index answers). Requests name those columns with ``properties``.
  ``TIPG_MAX_FEATURES_PER_TILE`` is set above the number of cases (default; tipg's own default
  is 10,000) so no tile is cut short, ``TIPG_CATALOG_TTL=0`` so no catalogue refresh lands in a
  timed run, ``TIPG_DB_TABLES`` names the view only.
* The tiles: every tile at z12…z17 that meets the demo district's bounding box, at most
  ``--max-per-zoom`` a zoom (a seeded sample where there are more: z17). The same list, in the
  same order (by zoom), for both; ``--threads`` keep-alive clients (default 2);
  ``Accept-Encoding: identity`` (``--gzip``: gzip, as a browser sends; tipg then compresses,
  gridmap does not).
* Runs: after one untimed request to each server (an empty tile off the list; gridmap's until
  its cache is live), an untimed first pass of tipg over the list warms PostgreSQL's buffers
  and the OS cache for both. Then gridmap cold (a fresh process: every tile built), then
  ``--repeat`` warm passes of gridmap (default 3, the same list again at once: every tile from
  the cache, within the 30 s an incident tile is kept), then ``--repeat`` passes of tipg (it
  has no cache: every pass builds every tile, so each is cold and warm alike). gridmap's warm
  figure and tipg's figure are the median passes: the cold ratio is gridmap cold / tipg, the
  warm ratio gridmap warm / tipg. Per pass: tiles/s, p50/p95 latency, bytes on the wire, the
  answers, CPU of the server, of PostgreSQL and of the clients, and how busy the machine was;
  per zoom: latencies, bytes a tile and what gridmap sent (points or clusters); and, apart,
  the mean latencies on the tiles both send as single cases (like for like, not enforced).

Checks: every answer 200 or 204; gridmap's cold run all misses and its warm runs all hits
(``X-Tile-Cache``) with the same bytes; on every tile of z14 and above that gridmap sends as
single cases, its cases inside the tile (it also sends those in its 64-unit buffer) are tipg's,
id for id, but for cases on the tile's very edge; on every clustered tile, the sum of the
clusters' counts equals tipg's features but for edge cases; on a sample of ``--check-tiles``
point tiles, both decoded with ``mapbox_vector_tile``: the same properties and point per case.

Targets: gridmap's cold throughput >= tipg's, warm >= 5x tipg's, with a year of cases. Exits
non-zero when a target is missed (not with ``--quick``, a smoke test: on 30 days of cases
tipg's tiles are light and both targets are missed) or a check fails. Stops by itself; the
servers and the cluster are stopped and removed on the way out (also on Ctrl-C or SIGTERM);
the tipg virtualenv is kept for the next run.

    .venv/bin/python bench/bench_tiles.py                 # a year of cases, about 2.5 minutes
    .venv/bin/python bench/bench_tiles.py --quick         # 30 days, 120 tiles a zoom, 40 s
    .venv/bin/python bench/bench_tiles.py --tipg-max-features 10000   # tipg's default limit
    .venv/bin/python bench/bench_tiles.py --gzip --py-spy # as a browser asks; sample gridmap
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
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
from _common import demo_cluster, run_logged, uvicorn_process  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from bench_incidents import (  # noqa: E402
    UVICORN_OPTIONS,
    _commit,
    cpu_seconds,
    finish,
    machine_busy_seconds,
    uvicorn_server,
)
from bench_patrols import PY_SPY, start_py_spy, stop_py_spy  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.services import tiles as tile_service  # noqa: E402

DEPARTMENTS = ROOT / "data" / "catalogs" / "departments.yaml"
CACHE_DIR = ROOT / "var" / "bench"
PG_DIR = CACHE_DIR / "tiles-pg"  # its own cluster: it may run beside the other benchmarks
WORK = CACHE_DIR / "tiles"  # logs; tipg's working directory (it reads a .env there, if any)
TIPG_VENV = CACHE_DIR / "tipg-venv"
TIPG_PACKAGES = ("tipg", "uvicorn", "httptools", "uvloop")
TIPG_DEFAULT_LIMIT = 10_000  # tipg's own TIPG_MAX_FEATURES_PER_TILE
RESULTS = ROOT / "bench" / "results" / "tiles.json"
ADMIN = "bench-admin"
VIEW = "incident_tile"
COLLECTION = f"public.{VIEW}"
PROPERTIES = ("id", "status", "class_code", "overdue", "reported_at", "grid_code")
ZOOMS = tuple(range(12, 18))
TARGET_COLD = 1.0
TARGET_WARM = 5.0
EXTENT = tile_service.EXTENT
BUFFER = tile_service.BUFFER
OFF_LIST = (17, 0, 0)  # an empty tile far from the district: each server's untimed first request
GRIDMAP_PATH = "/tiles/incidents/{z}/{x}/{y}.pbf"
TIPG_PATH = (
    f"/collections/{COLLECTION}/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}"
    f"?properties={','.join(PROPERTIES)}"
)


# ---- tipg in a virtualenv of its own --------------------------------------------------------
def _venv_python() -> Path:
    return TIPG_VENV / "bin" / "python"


def _tipg_versions() -> dict[str, str] | None:
    """The versions in the tipg virtualenv, or None when it is missing or incomplete."""
    python = _venv_python()
    if not python.exists():
        return None
    names = ["tipg", "uvicorn", "httptools", "uvloop", "fastapi", "asyncpg", "morecantile"]
    code = (
        "import json, importlib.metadata as m, tipg, uvicorn, httptools, uvloop; "
        f"print(json.dumps({{n: m.version(n) for n in {names!r}}}))"
    )
    WORK.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [str(python), "-c", code], cwd=WORK, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    versions: dict[str, str] = json.loads(done.stdout)
    versions["python"] = subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return versions


def ensure_tipg(reinstall: bool, log: Callable[[str], None]) -> dict[str, Any]:
    """var/bench/tipg-venv with tipg and uvicorn (httptools, uvloop): made on the first run with
    ``uv venv`` + ``uv pip install`` (UV_PYTHON_DOWNLOADS=never; or venv + pip without uv), then
    reused. Never installed into the project's environment."""
    versions = None if reinstall else _tipg_versions()
    if versions is not None:
        return {"versions": versions, "installed_s": None, "installer": None}
    if TIPG_VENV.exists():
        why = "--reinstall-tipg" if reinstall else "incomplete"
        log(f"removing {TIPG_VENV.relative_to(ROOT)} ({why}) …")
        shutil.rmtree(TIPG_VENV)
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    uv = shutil.which("uv")
    started = time.perf_counter()
    log(f"installing {' '.join(TIPG_PACKAGES)} into {TIPG_VENV.relative_to(ROOT)} "
        f"({'uv' if uv else 'venv + pip'}) …")  # fmt: skip
    if uv:
        steps = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(TIPG_VENV)],
            [uv, "pip", "install", "--quiet", "--python", str(_venv_python()), *TIPG_PACKAGES],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(TIPG_VENV)],
            [str(_venv_python()), "-m", "pip", "install", "--quiet", *TIPG_PACKAGES],
        ]
    for cmd in steps:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    versions = _tipg_versions()
    if versions is None:
        raise RuntimeError(f"tipg is not importable in {TIPG_VENV} after installing it")
    return {"versions": versions, "installed_s": time.perf_counter() - started,
            "installer": "uv" if uv else "pip"}  # fmt: skip


@contextlib.contextmanager
def tipg_server(env: dict[str, str], log_file: Path) -> Iterator[tuple[str, int]]:
    """``uvicorn tipg.main:app`` from the tipg virtualenv, with the options gridmap's server
    gets, on a free loopback port; yields its base URL and process id once /healthz answers
    (tipg has read its catalogue by then). Stopped on the way out."""
    python = str(_venv_python())
    with uvicorn_process(
        ["tipg.main:app"], python=python, cwd=WORK, env=env, log_file=log_file,
        ready_path="/healthz", timeout=120,
    ) as server:  # fmt: skip
        yield server


# ---- the database ---------------------------------------------------------------------------
@contextlib.contextmanager
def tiles_database(args: argparse.Namespace, log: Callable[[str], None]) -> Iterator[dict]:
    """A private embedded cluster in var/bench/tiles-pg with the demo district and ``--days`` of
    demo cases (see the module docstring), ANALYZEd, and tipg's view. Yields its URLs (SQLAlchemy
    and asyncpg), versions, the administrator's token, the district's bounding box and counts.
    Destroyed on the way out."""
    from app.services import demo_activity, identity, incidents
    from app.services.catalog import DEFAULT_CATALOG
    from app.services.scoping import prefix_pattern

    with demo_cluster(PG_DIR, log) as demo:
        engine, version, cluster = demo.engine, demo.version, demo.cluster
        took: dict[str, float] = {}
        incidents.load_classes(engine, DEFAULT_CATALOG)
        identity.demo_gridworkers(engine)
        identity.load_departments(engine, DEPARTMENTS)
        with engine.connect() as conn:
            district = conn.execute(
                text("SELECT code FROM region WHERE version_id = :v AND level = 'district' "
                     "ORDER BY code LIMIT 1"), {"v": version.id},
            ).scalar_one()  # fmt: skip
        identity.add_user(engine, ADMIN, role="admin", region=district)
        token = identity.create_token(engine, ADMIN)
        log(f"loading {args.days} days of demo cases (demo_activity.load) …")
        started = time.perf_counter()
        cases = demo_activity.load(engine, days=args.days)
        took["cases_s"] = time.perf_counter() - started
        log(f"{cases:,} cases in {took['cases_s']:.0f} s; ANALYZE, tipg's view …")
        scope = prefix_pattern(district).replace("'", "''")
        with engine.begin() as conn:
            # What gridmap's tile selects for this caller (the scope of incident_filters)
            # and the columns it writes, as a view for tipg over the same table.
            conn.execute(text(f"""
                CREATE VIEW {VIEW} AS
                SELECT i.id, i.status, i.class_code,
                       (i.due_at IS NOT NULL AND i.due_at < now()) AS overdue,
                       extract(epoch FROM i.reported_at)::bigint AS reported_at,
                       i.grid_code, i.geom
                FROM incident i WHERE i.region_code LIKE '{scope}'
            """))  # fmt: skip
        started = time.perf_counter()
        with engine.begin() as conn:  # what autovacuum does within a minute or so of a load
            conn.execute(text("ANALYZE"))
        took["analyze_s"] = time.perf_counter() - started
        info = demo.versions()
        with engine.connect() as conn:
            counts = conn.execute(
                text(f"SELECT count(*) AS cases, (SELECT count(*) FROM {VIEW}) AS in_view, "
                     "count(*) FILTER (WHERE out_of_area) AS out_of_area, "
                     "min(reported_at) AS first, max(reported_at) AS last, "
                     "(SELECT count(*) FROM region WHERE version_id = :v AND level = 'grid') "
                     "AS grids FROM incident"), {"v": version.id},
            ).one()._asdict()  # fmt: skip
            box = conn.execute(
                text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT "
                     "ST_Extent(geom) AS e FROM region WHERE version_id = :v AND "
                     "code = :d) s"), {"v": version.id, "d": district},
            ).one()  # fmt: skip
        engine.dispose()  # the benchmark opens its own connections
        socket = quote(str(cluster.socket_dir), safe="")  # asyncpg: a quoted path is a socket
        yield {
            "url": demo.url,
            "asyncpg_url": f"postgresql://{cluster.superuser}@{socket}:{cluster.port}/"
            f"{cluster.database}",
            "versions": info,
            "token": token,
            "district": district,
            "bbox": tuple(float(v) for v in box),
            "counts": counts,
            "load_s": took,
            "postmaster": demo.postmaster,
        }


# ---- the tiles ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileKey:
    z: int
    x: int
    y: int

    def __str__(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


def _column(lon: float, z: int) -> int:
    return min(2**z - 1, max(0, math.floor((lon + 180.0) / 360.0 * 2**z)))


def _row(lat: float, z: int) -> int:
    r = math.radians(lat)
    y = (1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * 2**z
    return min(2**z - 1, max(0, math.floor(y)))


def tile_list(
    bbox: tuple[float, float, float, float], max_per_zoom: int, seed: int
) -> tuple[list[TileKey], dict[int, int]]:
    """Every tile of :data:`ZOOMS` meeting ``bbox`` (lon/lat), at most ``max_per_zoom`` a zoom
    (a sample drawn with ``seed``, kept in x, y order); also how many each zoom had in all."""
    rng = np.random.default_rng(seed)
    chosen: list[TileKey] = []
    total: dict[int, int] = {}
    x0, y0, x1, y1 = bbox
    for z in ZOOMS:
        every = [TileKey(z, x, y) for x in range(_column(x0, z), _column(x1, z) + 1)
                 for y in range(_row(y1, z), _row(y0, z) + 1)]  # fmt: skip
        total[z] = len(every)
        if len(every) > max_per_zoom:
            keep = np.sort(rng.choice(len(every), size=max_per_zoom, replace=False))
            every = [every[i] for i in keep.tolist()]
        chosen += every
    return chosen, total


def cases_per_tile(url: str, tiles: list[TileKey]) -> list[tuple[int, int]]:
    """Per tile, the cases of tipg's view inside it, and inside it with gridmap's 64-unit
    buffer (the envelope gridmap's point tiles select, and count against 5,000)."""
    from app.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"""
                WITH t AS (SELECT * FROM unnest(CAST(:z AS int[]), CAST(:x AS int[]),
                                                CAST(:y AS int[]))
                           WITH ORDINALITY AS t(z, x, y, k)),
                b AS (SELECT k, ST_Transform(ST_TileEnvelope(z, x, y), 4490) AS g FROM t)
                SELECT b.k,
                       (SELECT count(*) FROM {VIEW} i WHERE i.geom && b.g) AS inside,
                       (SELECT count(*) FROM {VIEW} i WHERE i.geom && ST_Expand(b.g,
                            (ST_XMax(b.g) - ST_XMin(b.g)) * :m,
                            (ST_YMax(b.g) - ST_YMin(b.g)) * :m)) AS buffered
                FROM b ORDER BY b.k
                """),
                {"z": [t.z for t in tiles], "x": [t.x for t in tiles], "y": [t.y for t in tiles],
                 "m": BUFFER / EXTENT},
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    return [(int(r.inside), int(r.buffered)) for r in rows]


# ---- the clients ----------------------------------------------------------------------------
def fetch_all(base: str, paths: list[str], threads: int, headers: dict[str, str]) -> dict[str, Any]:
    """GET every path once with ``threads`` keep-alive clients, in order; wall time and, per
    path, latency, status, body and the X-Tile-Cache header."""
    import httpx2 as httpx

    n = len(paths)
    latency = [0.0] * n
    status = [0] * n
    bodies: list[bytes] = [b""] * n
    cache: list[str | None] = [None] * n
    wire = [0] * n
    position = [0]
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=base, timeout=600, headers=headers) as client:
            while True:
                with lock:
                    i = position[0]
                    position[0] += 1
                if i >= n:
                    return
                started = time.perf_counter()
                response = client.get(paths[i])
                body = response.content
                latency[i] = time.perf_counter() - started
                status[i], bodies[i] = response.status_code, body
                wire[i] = response.num_bytes_downloaded  # the body as sent (compressed or not)
                cache[i] = response.headers.get("X-Tile-Cache")

    with ThreadPoolExecutor(threads, thread_name_prefix="bench-client") as pool:
        started = time.perf_counter()
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
        wall = time.perf_counter() - started
    return {"wall_s": wall, "latency_s": latency, "status": status, "bodies": bodies,
            "cache": cache, "wire": wire}  # fmt: skip


def measured_pass(
    base: str,
    paths: list[str],
    threads: int,
    headers: dict[str, str],
    server: int,
    postmaster: int,
) -> dict[str, Any]:
    """:func:`fetch_all` with the CPU time of the server, PostgreSQL (postmaster and backends)
    and this process (the clients), and the machine's busy time, over the pass."""
    before = (cpu_seconds(server), cpu_seconds(postmaster, tree=True), time.process_time(),
              machine_busy_seconds())  # fmt: skip
    got = fetch_all(base, paths, threads, headers)
    after = (cpu_seconds(server), cpu_seconds(postmaster, tree=True), time.process_time(),
             machine_busy_seconds())  # fmt: skip
    got.update(server_cpu_s=after[0] - before[0], postgres_cpu_s=after[1] - before[1],
               client_cpu_s=after[2] - before[2], machine_busy_s=after[3] - before[3])  # fmt: skip
    return got


def summarise(run: dict[str, Any], tiles: list[TileKey]) -> dict[str, Any]:
    """A pass's figures (everything but the bodies), overall and per zoom."""
    lat = np.asarray(run["latency_s"]) * 1000
    sizes = np.array(run["wire"])
    zooms = np.array([t.z for t in tiles])
    per_zoom = {}
    for z in ZOOMS:
        m = zooms == z
        if m.any():
            per_zoom[z] = {"tiles": int(m.sum()), "p50_ms": float(np.median(lat[m])),
                           "mean_ms": float(lat[m].mean()), "sum_ms": float(lat[m].sum()),
                           "bytes": int(sizes[m].sum())}  # fmt: skip
    wall = run["wall_s"]
    mine = run["server_cpu_s"] + run["postgres_cpu_s"] + run["client_cpu_s"]
    return {
        "tiles": len(tiles), "wall_s": wall, "rate_per_s": len(tiles) / wall,
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
        "mean_ms": float(lat.mean()), "max_ms": float(lat.max()), "bytes": int(sizes.sum()),
        "status": dict(Counter(run["status"])),
        "cache": dict(Counter(c or "-" for c in run["cache"])),
        "server_cpu_s": run["server_cpu_s"], "postgres_cpu_s": run["postgres_cpu_s"],
        "client_cpu_s": run["client_cpu_s"], "machine_busy_s": run["machine_busy_s"],
        "machine_busy_share": run["machine_busy_s"] / (wall * nproc()),
        "other_share": max(0.0, run["machine_busy_s"] - mine) / (wall * nproc()),
        "per_zoom": per_zoom, "latency_ms": lat.round(3).tolist(),
    }  # fmt: skip


# ---- what the tiles hold --------------------------------------------------------------------
def _value(v: Any) -> Any:
    fields = v.ListFields()  # a Value sets one of its typed fields
    return fields[0][1] if fields else None


def read_tile(body: bytes) -> dict[str, Any]:
    """One layer's features from the tile's protobuf (quick, for every tile): per feature the
    case id (the MVT id, else the ``id`` property), the point in tile units (y down) and, for a
    cluster, its ``count``. ``kind``: empty, points or clusters."""
    from mapbox_vector_tile.Mapbox import vector_tile_pb2

    tile = vector_tile_pb2.tile()
    tile.ParseFromString(body)
    if not tile.layers or not tile.layers[0].features:
        return {"kind": "empty", "layer": None, "n": 0}
    layer = tile.layers[0]
    keys = list(layer.keys)
    values = [_value(v) for v in layer.values]
    id_key = keys.index("id") if "id" in keys else -1
    count_key = keys.index("count") if "count" in keys else -1
    ids: list[int] = []
    xs: list[int] = []
    ys: list[int] = []
    counts: list[int] = []
    for f in layer.features:
        g = f.geometry
        if len(g) != 3 or g[0] != 9:
            raise ValueError(f"not a single point: {list(g)[:6]}")
        xs.append((g[1] >> 1) ^ -(g[1] & 1))
        ys.append((g[2] >> 1) ^ -(g[2] & 1))
        tags = f.tags
        if count_key >= 0:
            counts.append(next(values[tags[k + 1]] for k in range(0, len(tags), 2)
                               if tags[k] == count_key))  # fmt: skip
        elif f.HasField("id"):
            ids.append(int(f.id))
        else:
            ids.append(next(values[tags[k + 1]] for k in range(0, len(tags), 2)
                            if tags[k] == id_key))  # fmt: skip
    x, y = np.array(xs), np.array(ys)
    inside = (x >= 0) & (x <= layer.extent) & (y >= 0) & (y <= layer.extent)
    edge = inside & ((x == 0) | (x == layer.extent) | (y == 0) | (y == layer.extent))
    out: dict[str, Any] = {"layer": layer.name, "n": len(xs), "extent": layer.extent,
                           "inside": inside, "edge": edge}  # fmt: skip
    if count_key >= 0:
        out.update(kind="clusters", counts=np.array(counts))
    else:
        out.update(kind="points", ids=np.array(ids, dtype=np.int64))
    return out


def compare(
    tiles: list[TileKey],
    cases: list[tuple[int, int]],
    mine: list[bytes],
    peer: list[bytes],
    limit: int,
) -> dict[str, Any]:
    """Every tile, gridmap's against tipg's. A point tile: gridmap's cases inside the tile (not
    those in its buffer) against tipg's, by id; a case in one only is explained when it lies on
    the tile's edge (a coordinate of 0 or the extent) in that tile. A cluster tile: the clusters'
    counts summed against tipg's features; the difference is explained up to tipg's cases on
    the edge. Where tipg cut a tile short at ``limit``, its missing cases are counted apart."""
    by_zoom: dict[int, Counter[str]] = {z: Counter() for z in ZOOMS}
    problems: list[str] = []
    for tile, (inside_n, _), a_body, b_body in zip(tiles, cases, mine, peer, strict=True):
        a, b = read_tile(a_body), read_tile(b_body)
        c = by_zoom[tile.z]
        c["tiles"] += 1
        c["peer_features"] += b["n"]
        cut = b["n"] >= limit and inside_n > limit
        c["peer_truncated"] += cut
        if b["kind"] == "clusters" or (b["kind"] == "points" and b["n"] != len(set(b["ids"]))):
            c["unexplained"] += 1
            problems.append(f"{tile}: tipg's tile is not one point per case")
            continue
        peer_ids = b["ids"] if b["kind"] == "points" else np.zeros(0, dtype=np.int64)
        peer_edge = b["edge"] if b["kind"] == "points" else np.zeros(0, dtype=bool)
        if a["kind"] == "clusters":
            total = int(a["counts"].sum())
            c["cluster_tiles"] += 1
            c["mine_clusters"] += a["n"]
            c["mine_cluster_cases"] += total
            c["peer_cluster_features"] += b["n"]
            diff = abs(b["n"] - total)
            c["cluster_diff"] += diff
            if cut:
                c["cluster_diff_truncated"] += diff
            elif diff > int(peer_edge.sum()):
                c["unexplained"] += diff - int(peer_edge.sum())
                c["unexplained_clusters"] += diff - int(peer_edge.sum())
                problems.append(f"{tile}: clusters hold {total:,} cases, tipg {b['n']:,} "
                                f"features ({int(peer_edge.sum())} on the edge)")  # fmt: skip
            continue
        mine_ids = a["ids"] if a["kind"] == "points" else np.zeros(0, dtype=np.int64)
        c["point_tiles" if a["kind"] == "points" else "mine_empty"] += 1
        if a["kind"] == "points":
            c["mine_features"] += a["n"]
            c["mine_in_buffer"] += int((~a["inside"]).sum())
            mine_in, mine_edge = mine_ids[a["inside"]], mine_ids[a["edge"]]
        else:
            mine_in = mine_edge = mine_ids
        only_mine = set(mine_in.tolist()) - set(peer_ids.tolist())
        only_peer = set(peer_ids.tolist()) - set(mine_in.tolist())
        if cut:
            c["diff_truncated"] += len(only_mine)
            only_mine = set()
        if a["kind"] == "points":
            c["same_ids"] += not only_mine and not only_peer
        else:
            c["both_empty"] += not only_peer
        c["edge_diff"] += len(only_mine) + len(only_peer)
        bad = len(only_mine - set(mine_edge.tolist()))
        bad += len(only_peer - set(peer_ids[peer_edge].tolist()))
        if bad:
            c["unexplained"] += bad
            c["unexplained_points"] += bad
            problems.append(f"{tile}: {len(only_mine)} cases only in gridmap's, "
                            f"{len(only_peer)} only in tipg's, {bad} of them not on the "
                            "edge")  # fmt: skip
    return {"by_zoom": {z: dict(c) for z, c in by_zoom.items()}, "problems": problems}


def compare_sample(
    tiles: list[TileKey], idx: list[int], mine: list[bytes], peer: list[bytes]
) -> dict[str, Any]:
    """Tiles ``idx`` decoded with ``mapbox_vector_tile.decode`` (y down): for each case in both,
    the same properties and the same point."""
    import mapbox_vector_tile

    options = {"y_coord_down": True}
    fields = Counter[str]()
    same = cases = tiles_done = 0
    layers: set[tuple[str, str]] = set()
    for i in idx:
        a = mapbox_vector_tile.decode(mine[i], default_options=options) if mine[i] else {}
        b = mapbox_vector_tile.decode(peer[i], default_options=options) if peer[i] else {}
        la, lb = next(iter(a), None), next(iter(b), None)
        layers.add((str(la), str(lb)))
        fa = {f["properties"].get("id"): f for f in (a[la]["features"] if la else [])}
        fb = {f["properties"].get("id"): f for f in (b[lb]["features"] if lb else [])}
        fa.pop(None, None)  # a cluster has no id (not expected in a point tile)
        tiles_done += 1
        for key in fa.keys() & fb.keys():
            cases += 1
            pa, pb = fa[key]["properties"], fb[key]["properties"]
            bad = [p for p in PROPERTIES if pa.get(p) != pb.get(p)]
            if fa[key]["geometry"]["coordinates"] != fb[key]["geometry"]["coordinates"]:
                bad.append("point")
            if fa[key].get("id") != key:
                bad.append("mvt id")
            fields.update(bad)
            same += not bad
    return {"tiles": tiles_done, "cases": cases, "same": same, "differing": dict(fields),
            "layers": sorted(layers)}  # fmt: skip


# ---- the table ------------------------------------------------------------------------------
def _run_line(label: str, s: dict[str, Any], mark: str = "") -> str:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(s["status"].items()))
    cache = s["cache"]
    cached = (f"; X-Tile-Cache hit {cache.get('hit', 0):,}, miss {cache.get('miss', 0):,}"
              if "hit" in cache or "miss" in cache else "")  # fmt: skip
    per = 1000 / s["tiles"]
    return (
        f"  {label:<38} {s['rate_per_s']:8,.1f} tiles/s   {s['tiles']:,} tiles in "
        f"{s['wall_s']:6.2f} s; p50 {s['p50_ms']:6.1f} ms, p95 {s['p95_ms']:6.1f} ms, max "
        f"{s['max_ms']:,.0f} ms; {s['bytes'] / 2**20:,.1f} MiB; {statuses}{cached}; CPU a tile: "
        f"server {s['server_cpu_s'] * per:.1f} ms, PostgreSQL {s['postgres_cpu_s'] * per:.1f} "
        f"ms, clients {s['client_cpu_s'] * per:.1f} ms; the machine's {nproc()} CPUs busy "
        f"{s['machine_busy_share']:.0%}, other processes {s['other_share']:.0%}{mark}"
    )


def _rates(runs: dict[str, dict[str, Any]], keys: list[str], digits: int) -> str:
    return ", ".join(f"{runs[k]['rate_per_s']:,.{digits}f}" for k in keys)


def spy_lines(label: str, spy: dict[str, Any], top: int = 10) -> list[str]:
    if "error" in spy:
        return [f"  py-spy ({label}): failed: {spy['error']}"]
    total = spy["samples"] or 1
    threads = spy["threads"]
    lines = [
        f"  py-spy on gridmap's server, {label} (sampled while timed): "
        f"{spy['samples']:,} samples ({spy['file']}), {threads.get('worker', 0) / total:.0%} "
        f"in the thread pool, {threads.get('loop', 0) / total:.0%} on the event loop; by the "
        "deepest line of app/, then by the function on top of the stack:"
    ]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in spy["app_line"][:top]]
    lines += ["    on top:"] + [f"    {n / total:6.1%}  {name}" for name, n in spy["self"][:top]]
    return lines


def lines_for(figures: dict[str, Any], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    out: list[str] = []
    failures: list[str] = []
    runs = figures["runs"]
    r = args.repeat
    warm_keys, peer_keys = _keys(r)
    median = figures["median"]
    gc, gw, tc = runs["gridmap_cold"], runs[median["gridmap_warm"]], runs[median["tipg"]]
    out.append(
        f"runs (in this order; each tile once a run; ◀ the median of {r} passes, which the "
        "ratios use)"
    )
    out.append(_run_line("tipg    first pass (untimed: warms PG)", runs["tipg_first"]))
    out.append(_run_line("gridmap cold (a fresh process)", gc))
    for k, key in enumerate(warm_keys, start=1):
        mark = "  ◀" if key == median["gridmap_warm"] else ""
        out.append(_run_line(f"gridmap warm {k}/{r} (the list again)", runs[key], mark))
    for k, key in enumerate(peer_keys, start=1):
        mark = "  ◀" if key == median["tipg"] else ""
        out.append(_run_line(f"tipg    pass {k}/{r} (no cache: all cold)", runs[key], mark))
    cold, warm = gc["rate_per_s"] / tc["rate_per_s"], gw["rate_per_s"] / tc["rate_per_s"]
    figures["ratio"] = {"cold": cold, "warm": warm}
    cold_ok, warm_ok = cold >= TARGET_COLD, warm >= TARGET_WARM
    # The targets are for a year of cases; --quick only smoke-tests the benchmark.
    judged = "" if not args.quick else " (not enforced with --quick: the targets are for a year)"
    out.append(
        f"  ratio cold: gridmap cold / tipg {cold:.2f}x — target >= {TARGET_COLD:.0f}x: "
        f"{'met' if cold_ok else 'MISSED'}{judged}"
    )
    out.append(
        f"  ratio warm: gridmap warm / tipg {warm:.2f}x — target >= {TARGET_WARM:.0f}x: "
        f"{'met' if warm_ok else 'MISSED'}{judged}"
        f"   (every pass: gridmap warm {_rates(runs, warm_keys, 0)} tiles/s; tipg "
        f"{_rates(runs, peer_keys, 1)} tiles/s)"
    )
    if not cold_ok and not args.quick:
        failures.append(f"cold ratio {cold:.2f}x < {TARGET_COLD:.0f}x")
    if not warm_ok and not args.quick:
        failures.append(f"warm ratio {warm:.2f}x < {TARGET_WARM:.0f}x")
    # per zoom
    cmp = figures["compare"]["by_zoom"]
    out.append(
        "per zoom — tiles; cases in a tile (mean, max); latency p50 / mean ms: gridmap cold, "
        "gridmap warm, tipg (the median passes); KiB a tile: gridmap, tipg; gridmap's tiles as "
        "points / clusters / empty"
    )
    cases = figures["cases_per_tile"]
    for z in ZOOMS:
        if z not in gc["per_zoom"]:
            continue
        zc = [c for t, c in zip(figures["tile_keys"], cases, strict=True) if t[0] == z]
        inside = np.array([c[0] for c in zc])
        g, w, t = gc["per_zoom"][z], gw["per_zoom"][z], tc["per_zoom"][z]
        c = cmp[z]
        out.append(
            f"  z{z}  {g['tiles']:4,} tiles of {figures['tiles_per_zoom'][z]:,}   cases "
            f"{inside.mean():8,.0f} mean, {inside.max():7,} max   gridmap cold "
            f"{g['p50_ms']:7.1f} / {g['mean_ms']:7.1f}   warm {w['p50_ms']:5.1f} / "
            f"{w['mean_ms']:5.1f}   tipg {t['p50_ms']:7.1f} / {t['mean_ms']:7.1f}   KiB "
            f"{g['bytes'] / g['tiles'] / 1024:7.1f} / {t['bytes'] / t['tiles'] / 1024:8.1f}   "
            f"points {c.get('point_tiles', 0)}, clusters {c.get('cluster_tiles', 0)}, empty "
            f"{c.get('mine_empty', 0)}"
        )
    like = figures["like_for_like"]
    if like["tiles"]:
        out.append(
            f"  like for like — the {like['tiles']:,} tiles (z>={tile_service.POINT_ZOOM}) that "
            f"both send as single cases: mean latency gridmap cold {like['mine_ms']:.1f} ms, "
            f"warm {like['warm_ms']:.1f} ms, tipg {like['peer_ms']:.1f} ms; ratio cold "
            f"{like['cold']:.2f}x, warm {like['warm']:.2f}x (mean latency; not enforced)"
        )
    # what the tiles hold
    limit = figures["tipg"]["max_features_per_tile"]
    truncated = sum(c.get("peer_truncated", 0) for c in cmp.values())
    out.append("what the tiles hold")
    out.append(
        f"  gridmap: layer 'incidents'; single cases from z{tile_service.POINT_ZOOM} (MVT id = "
        f"case id, properties {', '.join(PROPERTIES)}) with the cases in a {BUFFER}-unit "
        f"buffer around the tile; below z{tile_service.POINT_ZOOM}, and past "
        f"{tile_service.MAX_POINTS:,} cases in the tile + buffer, clusters on a "
        f"{EXTENT // tile_service.CLUSTER_PX} × {EXTENT // tile_service.CLUSTER_PX} grid (count, "
        "overdue_count; the tile only); an empty tile is a 204"
    )
    out.append(
        f"  tipg: layer 'default'; every case in the tile as a point (no MVT id; properties "
        f"{', '.join(PROPERTIES)}), up to TIPG_MAX_FEATURES_PER_TILE={limit:,} a tile "
        f"(tipg's default {TIPG_DEFAULT_LIMIT:,}); tiles cut short at that limit: {truncated:,}; "
        "the cases in the tile only (its buffer of 256 units clips shapes, it selects no "
        "more points); an empty tile is a 200 with no body; no authentication (gridmap looks "
        "the bearer token up in PostgreSQL on every request)"
    )
    # checks
    bad_status = {k: sum(v for s, v in runs[k]["status"].items() if s not in (200, 204))
                  for k in ("gridmap_cold", *warm_keys, *peer_keys)}  # fmt: skip
    out.append(
        f"  check: answers other than 200/204: gridmap "
        f"{sum(v for k, v in bad_status.items() if k.startswith('gridmap')):,}, tipg "
        f"{sum(v for k, v in bad_status.items() if k.startswith('tipg')):,}"
    )
    if any(bad_status.values()):
        failures.append("answers other than 200/204")
        out += [f"    error: {e}" for e in figures["errors"][:5]]
    hits = sum(runs[k]["cache"].get("hit", 0) for k in warm_keys)
    misses = gc["cache"].get("miss", 0)
    same = figures["warm_same_bytes"]
    ttl = tile_service.CACHE_TTL["incidents"]
    asked = gw["tiles"] * r
    out.append(
        f"  check: gridmap cold: misses {misses:,} of {gc['tiles']:,}; warm: hits {hits:,} of "
        f"{asked:,} ({hits / asked:.1%}; an incident tile is kept {ttl:.0f} s, the last warm "
        f"pass ended {figures['warm_end_s']:.1f} s after the cold run began), tiles with the "
        f"same bytes as cold in every warm pass {same:,} of {gc['tiles']:,}"
    )
    if misses != gc["tiles"] or hits != asked or same != gw["tiles"]:
        failures.append("gridmap's cache: not every cold answer a miss and every warm one a hit")

    def total(key: str, zooms: Any = ZOOMS) -> int:
        return sum(cmp[z].get(key, 0) for z in zooms)

    high = [z for z in ZOOMS if z >= tile_service.POINT_ZOOM]
    truncated_note = (f"; missing from tipg's tiles cut short {total('diff_truncated'):,}"
                      if total("diff_truncated") else "")  # fmt: skip
    out.append(
        f"  check (every tile gridmap sends as single cases, z>={tile_service.POINT_ZOOM}: its "
        f"cases inside the tile against tipg's, by id): {total('point_tiles'):,} tiles "
        f"identical in {total('same_ids'):,} (+{total('mine_empty'):,} empty, "
        f"{total('both_empty'):,} of them in both); cases in one "
        f"only {total('edge_diff'):,}, on the tile's edge (a coordinate of 0 or {EXTENT}) all "
        f"but {total('unexplained_points'):,}; "
        f"gridmap's cases in its {BUFFER}-unit buffer (not compared) "
        f"{total('mine_in_buffer'):,}{truncated_note}"
    )
    out.append(
        f"  check (every tile gridmap sends as clusters: their counts summed against tipg's "
        f"features): {total('cluster_tiles'):,} tiles ({total('cluster_tiles', high):,} at "
        f"z>={tile_service.POINT_ZOOM}), {total('mine_clusters'):,} clusters holding "
        f"{total('mine_cluster_cases'):,} cases, tipg's features in those tiles "
        f"{total('peer_cluster_features'):,}; differing by {total('cluster_diff'):,} cases"
        + (
            f" ({total('cluster_diff_truncated'):,} where tipg cut the tile short)"
            if total("cluster_diff_truncated")
            else ""
        )
        + f", all but {total('unexplained_clusters'):,} explained by tipg's cases on the tile's "
        "edge"
    )
    unexplained = total("unexplained")
    if unexplained or figures["compare"]["problems"]:
        failures.append(f"tile contents: {unexplained:,} cases differ beyond the tile's edge")
        out += [f"    {p}" for p in figures["compare"]["problems"][:10]]
    s = figures["sample"]
    out.append(
        f"  check (sample of {s['tiles']} point tiles, mapbox_vector_tile.decode): "
        f"{s['cases']:,} cases in both, same properties ({', '.join(PROPERTIES)}) and point "
        f"{s['same']:,}"
        + (
            f"; differing: {', '.join(f'{k} {v}' for k, v in s['differing'].items())}"
            if s["differing"]
            else ""
        )
        + f"; layers {', '.join('/'.join(p) for p in s['layers'])}"
    )
    differing = {k: v for k, v in s["differing"].items() if k != "overdue"}
    if differing or s["differing"].get("overdue", 0) > max(2, s["cases"] // 1000):
        failures.append("sample: cases in both tiles differ in properties or point")
    if not s["tiles"] or not total("point_tiles"):
        failures.append("no point tile to compare (try more --days or --max-per-zoom)")
    return out, failures


# ---- main -----------------------------------------------------------------------------------
def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    figures: dict[str, Any] = {
        "benchmark": "tiles",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "commit": _commit(),
        "seed": args.seed,
        "options": {k: str(v) for k, v in vars(args).items()},
        "targets": {"cold_ratio": TARGET_COLD, "warm_ratio": TARGET_WARM},
    }
    out: list[str] = []
    failures: list[str] = []

    def emit(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        out.extend(lines)

    WORK.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    try:
        tipg = ensure_tipg(args.reinstall_tipg, log)
    except RuntimeError as exc:
        emit([f"error: {exc}"])
        return finish(figures, out, ["tipg could not be installed"], args.results, emit, log)
    versions = tipg["versions"]
    log(
        f"tipg {versions['tipg']} in {TIPG_VENV.relative_to(ROOT)} "
        + (f"(installed in {tipg['installed_s']:.0f} s)" if tipg["installed_s"] else "(reused)")
    )
    with tiles_database(args, log) as db:
        counts = db["counts"]
        tiles, per_zoom = tile_list(db["bbox"], args.max_per_zoom, args.seed)
        log(f"{len(tiles):,} tiles; counting each one's cases …")
        cases = cases_per_tile(db["url"], tiles)
        limit = args.tipg_max_features or max(TIPG_DEFAULT_LIMIT, counts["in_view"] + 1)
        figures.update(server=db["versions"], data=counts, load_s=db["load_s"],
                       bbox=db["bbox"], tiles_per_zoom=per_zoom,
                       tile_keys=[(t.z, t.x, t.y) for t in tiles], cases_per_tile=cases,
                       tipg={**tipg, "max_features_per_tile": limit})  # fmt: skip
        headers = {"Accept-Encoding": "gzip" if args.gzip else "identity"}
        mine_headers = {**headers, "Authorization": f"Bearer {db['token']}"}
        sampled = ", ".join(f"z{z} {sum(t.z == z for t in tiles):,}"
                            + (f" of {per_zoom[z]:,}" if per_zoom[z] > args.max_per_zoom else "")
                            for z in ZOOMS)  # fmt: skip
        cache_mb = _tile_cache_mb()
        emit([
            f"tiles bench — nproc {nproc()}, {dt.date.today().isoformat()}, commit "
            f"{figures['commit']}; PostgreSQL {db['versions']['postgres']} / PostGIS "
            f"{db['versions']['postgis']} (fsync off); demo district ({counts['grids']:,} grids), "
            f"{args.days} days of demo cases: {counts['cases']:,} ({counts['in_view']:,} in the "
            f"administrator's scope, {counts['out_of_area']:,} out of area) from "
            f"{counts['first']:%Y-%m-%d} to {counts['last']:%Y-%m-%d}; tiles: every tile at "
            f"z{ZOOMS[0]}–z{ZOOMS[-1]} meeting the district's bbox "
            f"({', '.join(f'{v:.4f}' for v in db['bbox'])}), at most {args.max_per_zoom:,} a "
            f"zoom (seeded sample): {sampled} = {len(tiles):,} tiles; {args.threads} keep-alive "
            f"clients, Accept-Encoding: {headers['Accept-Encoding']}; load average "
            f"{load_start:.2f} at the start",
            f"gridmap: GET {GRIDMAP_PATH} (the administrator's bearer token), app.main:create_app "
            f"under uvicorn {UVICORN_OPTIONS}; tile cache {cache_mb:g} MiB, an incident tile kept "
            f"{tile_service.CACHE_TTL['incidents']:.0f} s",
            f"tipg {versions['tipg']} (fastapi {versions['fastapi']}, asyncpg "
            f"{versions['asyncpg']}, Python {versions['python']}) in "
            f"{TIPG_VENV.relative_to(ROOT)}: GET {TIPG_PATH}, uvicorn {versions['uvicorn']} with "
            f"the same options; view {VIEW} (id, status, class_code, overdue, reported_at epoch s, "
            f"grid_code, geom 4490) over incident, the administrator's scope; "
            f"TIPG_MAX_FEATURES_PER_TILE={limit:,}, TIPG_CATALOG_TTL=0, "
            f"TIPG_DB_TABLES=[\"{COLLECTION}\"], other settings tipg's defaults",
        ])  # fmt: skip
        mine_env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDMAP_")}
        mine_env.update(
            GRIDMAP_DATABASE_URL=db["url"], GRIDMAP_VAR_DIR=str(WORK / "var"),
            GRIDMAP_SUPERVISION_INTERVAL_S="0", GRIDMAP_DEMO_PATROLS="false",
            PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )  # fmt: skip
        peer_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("GRIDMAP_", "TIPG_", "POSTGRES_", "DATABASE_URL",
                                         "VIRTUAL_ENV", "PYTHONPATH"))}  # fmt: skip
        peer_env.update(
            DATABASE_URL=db["asyncpg_url"], TIPG_DB_TABLES=json.dumps([COLLECTION]),
            TIPG_MAX_FEATURES_PER_TILE=str(limit), TIPG_CATALOG_TTL="0",
        )  # fmt: skip
        mine_paths = [GRIDMAP_PATH.format(z=t.z, x=t.x, y=t.y) for t in tiles]
        peer_paths = [TIPG_PATH.format(z=t.z, x=t.x, y=t.y) for t in tiles]
        z, x, y = OFF_LIST
        runs: dict[str, dict[str, Any]] = {}
        bodies: dict[str, list[bytes]] = {}
        spies: dict[str, dict[str, Any]] = {}
        warm_keys, peer_keys = _keys(args.repeat)
        cold_started = warm_end = 0.0
        errors: list[str] = []
        try:
            with contextlib.ExitStack() as stack:
                log("starting uvicorn: app.main:create_app, and tipg …")
                mine_base, mine_pid = stack.enter_context(
                    uvicorn_server("app.main:create_app", ROOT, mine_env, WORK / "app.log")
                )
                peer_base, peer_pid = stack.enter_context(tipg_server(peer_env, WORK / "tipg.log"))
                live = _first_requests(mine_base, peer_base, mine_headers, headers,
                                       GRIDMAP_PATH.format(z=z, x=x, y=y),
                                       TIPG_PATH.format(z=z, x=x, y=y))  # fmt: skip
                if not live:
                    raise RuntimeError("gridmap's tile cache did not come live in 30 s")
                mine = (mine_base, mine_paths, mine_headers, mine_pid)
                peer = (peer_base, peer_paths, headers, peer_pid)
                order = [("tipg_first", *peer), ("gridmap_cold", *mine)]
                order += [(key, *mine) for key in warm_keys]
                order += [(key, *peer) for key in peer_keys]
                spy: Any = None
                for label, base, paths, hdrs, pid in order:
                    log(f"{label.replace('_', ' ')}: {len(paths):,} tiles, {args.threads} "
                        "clients …")  # fmt: skip
                    # py-spy: the cold run, and the warm runs together (more samples)
                    if args.py_spy and label in ("gridmap_cold", warm_keys[0]):
                        name = "gridmap_cold" if label == "gridmap_cold" else "gridmap_warm"
                        spy = (name, start_py_spy(pid, WORK / f"server-{name}.pyspy"))
                    if label == "gridmap_cold":
                        cold_started = time.perf_counter()
                    got = measured_pass(base, paths, args.threads, hdrs, pid, db["postmaster"])
                    if label == warm_keys[-1]:
                        warm_end = time.perf_counter() - cold_started
                    runs[label] = summarise(got, tiles)
                    if spy is not None and label in ("gridmap_cold", warm_keys[-1]):
                        name, started = spy
                        spies[name] = (stop_py_spy(*started) if started is not None
                                       else {"error": f"{PY_SPY} not found"})  # fmt: skip
                        spy = None
                    if label.startswith("gridmap") or label == peer_keys[-1]:
                        bodies[label] = got["bodies"]  # for the checks
                    errors += [
                        f"{label} {tiles[i]}: {s} {got['bodies'][i][:200]!r}"
                        for i, s in enumerate(got["status"])
                        if s not in (200, 204)
                    ]
                    log(f"  {runs[label]['rate_per_s']:,.1f} tiles/s in "
                        f"{runs[label]['wall_s']:.1f} s")  # fmt: skip
        except RuntimeError as exc:  # a server that fails to start
            emit([f"error: {exc}"])
            failures.append("error")
    if len(runs) == 2 + 2 * args.repeat:
        mine_last, peer_last = bodies[warm_keys[-1]], bodies[peer_keys[-1]]
        figures.update(runs=runs, errors=errors, warm_end_s=warm_end, py_spy=spies)
        figures["median"] = {"gridmap_warm": _median_key(runs, warm_keys),
                             "tipg": _median_key(runs, peer_keys)}  # fmt: skip
        figures["warm_same_bytes"] = sum(
            all(bodies[k][i] == body for k in warm_keys)
            for i, body in enumerate(bodies["gridmap_cold"])
        )
        log("comparing every tile's contents …")
        figures["compare"] = compare(tiles, cases, mine_last, peer_last, limit)
        points = [i for i, t in enumerate(tiles)
                  if t.z >= tile_service.POINT_ZOOM
                  and 0 < cases[i][1] <= tile_service.MAX_POINTS]  # fmt: skip
        rng = np.random.default_rng(args.seed + 1)
        pick = sorted(rng.choice(len(points), size=min(args.check_tiles, len(points)),
                                 replace=False).tolist()) if points else []  # fmt: skip
        figures["sample"] = compare_sample(tiles, [points[i] for i in pick], mine_last, peer_last)
        figures["like_for_like"] = _like_for_like(runs, figures["median"], points)
        lines, more = lines_for(figures, args)
        emit(lines)
        failures += more
        for name, spied in spies.items():
            emit(spy_lines(name.replace("_", " "), spied))
    figures.pop("tile_keys", None)
    figures.pop("cases_per_tile", None)
    return finish(figures, out, failures, args.results, emit, log)


def _tile_cache_mb() -> float:
    from app.settings import Settings

    return float(Settings.model_fields["tile_cache_mb"].default)


def _first_requests(
    mine: str, peer: str, mine_headers: dict[str, str], headers: dict[str, str], mine_path: str,
    peer_path: str,
) -> bool:  # fmt: skip
    """One untimed request to each server (an empty tile off the list: connections, the first
    query). gridmap's is repeated until it is a cache hit: its cache keeps tiles only once the
    listener is connected, and the cold run must fill it."""
    import httpx2 as httpx

    with httpx.Client(base_url=peer, timeout=60, headers=headers) as client:
        client.get(peer_path)
    with httpx.Client(base_url=mine, timeout=60, headers=mine_headers) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if client.get(mine_path).headers.get("X-Tile-Cache") == "hit":
                return True
            time.sleep(0.2)
    return False


def _keys(repeat: int) -> tuple[list[str], list[str]]:
    """The labels of gridmap's warm passes and of tipg's timed passes."""
    return ([f"gridmap_warm_{k}" for k in range(1, repeat + 1)],
            [f"tipg_{k}" for k in range(1, repeat + 1)])  # fmt: skip


def _median_key(runs: dict[str, dict[str, Any]], keys: list[str]) -> str:
    """The pass with the median rate (the lower middle one of an even count)."""
    return sorted(keys, key=lambda k: runs[k]["rate_per_s"])[(len(keys) - 1) // 2]


def _like_for_like(
    runs: dict[str, dict[str, Any]], median: dict[str, str], points: list[int]
) -> dict[str, Any]:
    """Mean latency over the tiles both send as single cases (z >= 14, at most 5,000 cases with
    gridmap's buffer), from the latencies of gridmap's cold pass and the median passes."""
    if not points:
        return {"tiles": 0}
    lat = {k: float(np.asarray(runs[key]["latency_ms"])[points].mean())
           for k, key in (("cold", "gridmap_cold"), ("warm", median["gridmap_warm"]),
                          ("peer", median["tipg"]))}  # fmt: skip
    return {"tiles": len(points), "mine_ms": lat["cold"], "warm_ms": lat["warm"],
            "peer_ms": lat["peer"], "cold": lat["peer"] / lat["cold"],
            "warm": lat["peer"] / lat["warm"]}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=None,
                        help="days of demo cases (default 365; 30 with --quick)")  # fmt: skip
    parser.add_argument("--max-per-zoom", type=int, default=None,
                        help="tiles a zoom at most, a seeded sample beyond (default 400; 120 "
                        "with --quick)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2, help="concurrent keep-alive clients")
    parser.add_argument("--repeat", type=int, default=3,
                        help="gridmap's warm passes and tipg's timed passes (the median "
                        "counts)")  # fmt: skip
    parser.add_argument("--check-tiles", type=int, default=None,
                        help="point tiles decoded with mapbox_vector_tile and compared case by "
                        "case (default 60; 20 with --quick)")  # fmt: skip
    parser.add_argument("--tipg-max-features", type=int, default=0,
                        help="TIPG_MAX_FEATURES_PER_TILE (default 0: above the number of "
                        "cases, so no tile is cut short; tipg's own default is "
                        f"{TIPG_DEFAULT_LIMIT:,})")  # fmt: skip
    parser.add_argument("--gzip", action="store_true",
                        help="send Accept-Encoding: gzip (tipg compresses its answers, gridmap "
                        "does not); default identity")  # fmt: skip
    parser.add_argument("--py-spy", action="store_true",
                        help=f"sample gridmap's server with {PY_SPY} during its runs")  # fmt: skip
    parser.add_argument("--reinstall-tipg", action="store_true",
                        help=f"remove and re-create {TIPG_VENV.relative_to(ROOT)}")  # fmt: skip
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: 30 days of cases, 120 tiles a zoom at most, 20 checked tiles; "
        "the ratios are printed, not enforced",
    )
    parser.add_argument("--seed", type=int, default=20191216, help="the tile samples' seed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    args.days = args.days or (30 if args.quick else 365)
    args.max_per_zoom = args.max_per_zoom or (120 if args.quick else 400)
    args.check_tiles = args.check_tiles if args.check_tiles is not None else (
        20 if args.quick else 60)  # fmt: skip
    if min(args.days, args.max_per_zoom, args.threads, args.repeat) < 1 or args.check_tiles < 0:
        parser.error("--days, --max-per-zoom, --threads, --repeat >= 1; --check-tiles >= 0")
    if args.tipg_max_features < 0:
        parser.error("--tipg-max-features must not be negative")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
