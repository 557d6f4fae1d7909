"""Patrols: bulk ingest of gridworkers' GPS fixes, beside a row-by-row ORM insert.

The patrols issue's performance target, measured in one run against one private PostGIS cluster
(the demo district imported and activated, one gridworker per demo grid and more up to
``--workers``, an administrator homed on the district):

* Fixes: every worker walks inside its own grid (a random walk at 1.0–1.4 m/s that turns back
  at the grid's edge, GPS noise of σ 4 m), a fix every 15 s, WGS84, accuracy 3–15 m, the
  phone's speed and a client id. A batch is consecutive fixes of all workers in time order (what
  a relay sends), so the ingest's jump test finds each worker's previous fix already stored.
* gridmap over HTTP: ``POST /api/v1/patrols/fixes`` with ``{"fixes": [...]}`` served by
  ``app.main:create_app`` under uvicorn (1 worker, as bench_incidents starts it), ``--threads``
  keep-alive clients posting ready-made JSON bodies with the administrator's bearer token:
  ``--fixes`` in batches of ``--batch`` (10,000, the largest the endpoint takes), then the next
  ``--small-fixes`` in batches of ``--small-batch`` (500, nearer a phone's). Rate = fixes stored
  / wall time. Each run's day partition must then hold exactly the fixes sent, and the first
  batch sent again must store none (all duplicates). Each run, and the in-process one, puts its
  fixes on a day of its own and starts from a table without the other runs' fixes (the
  partitions of the HTTP runs are emptied after their checks), as the ingest's jump test reads
  the whole table: the first and last batches' times show how the cost grows with it.
* gridmap in-process: ``app.services.patrols.ingest`` called directly on the same fixes (no
  HTTP; from the same request bodies' bytes), with timing wrappers around the steps it calls by
  name (parse, the workers' lookup, the grid lookup, the jump test, staging + COPY + INSERT) —
  the service itself is unchanged — and then one more batch under cProfile.
* peer: a row-by-row ORM insert of the first ``--peer-fixes`` of the same fixes into the same
  table, on a day of its own: per fix a ``PatrolFix`` with the geometry as
  ``WKTElement('POINT(x y)', srid=4490)``, ``session.add`` and ``session.flush``, one commit per
  batch. Its grid codes are the ones gridmap's index gives (located before the timing), so only
  the write path differs; afterwards its rows must equal the in-process run's (point and grid)
  fix by fix.

Targets: gridmap >= 50,000 fixes/s over HTTP in batches of 10,000, and >= 10x the peer (judged
on the in-process figure with --skip-http). Exits non-zero when one is missed or a check fails.
Stops by itself; the server and the cluster are stopped and removed on the way out (also on
Ctrl-C or SIGTERM).

    .venv/bin/python bench/bench_patrols.py                     # about 3 minutes
    .venv/bin/python bench/bench_patrols.py --fixes 100000 --small-fixes 20000 --peer-fixes 5000
    .venv/bin/python bench/bench_patrols.py --skip-http          # in-process and peer only
    .venv/bin/python bench/bench_patrols.py --py-spy             # also sample the server
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import hashlib
import io
import json
import math
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from _common import demo_cluster, run_logged  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from bench_incidents import (  # noqa: E402
    UVICORN_OPTIONS,
    _commit,
    cpu_seconds,
    finish,
    machine_busy_seconds,
    uvicorn_server,
)
from sqlalchemy import text  # noqa: E402

from app.services import patrols  # noqa: E402

CACHE_DIR = ROOT / "var" / "bench"
PG_DIR = CACHE_DIR / "patrols-pg"  # not bench_incidents' cluster: the two may run at once
WORK = CACHE_DIR / "patrols"
RESULTS = ROOT / "bench" / "results" / "patrols.json"
INGEST_PATH = "/api/v1/patrols/fixes"
ADMIN = "bench-admin"
INTERVAL_S = 15
START_HOUR = 6  # local; a day holds (24 - 6) * 240 = 4,320 fixes per worker
TARGET_RATE = 50_000.0
TARGET_RATIO = 10.0
PY_SPY = Path.home() / ".local" / "bin" / "py-spy"
STEPS = ("parse", "_workers", "locate_index", "_jumps", "_copy")


# ---- the database ---------------------------------------------------------------------------
@contextlib.contextmanager
def patrol_database(workers: int, log: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """A private embedded cluster in var/bench/patrols-pg: migrated, the demo boundaries imported
    and activated, one gridworker per grid (``identity.demo_gridworkers``) and more with
    ``identity.add_user`` (``gw-<grid>-b``, ...) up to ``workers``, and an administrator homed on
    the district with a bearer token. Destroyed on the way out."""
    from app.services import identity

    with demo_cluster(PG_DIR, log) as demo:
        engine, version = demo.engine, demo.version
        identity.demo_gridworkers(engine)
        with engine.connect() as conn:
            district = conn.execute(
                text("SELECT code FROM region WHERE version_id = :v AND level = 'district' "
                     "ORDER BY code LIMIT 1"), {"v": version.id},
            ).scalar_one()  # fmt: skip
            grids = conn.execute(
                text("SELECT code, ST_AsBinary(geom) AS wkb FROM region WHERE "
                     "version_id = :v AND level = 'grid' ORDER BY code"), {"v": version.id},
            ).all()  # fmt: skip
        for k in range(max(0, workers - len(grids))):  # a second, third … walker per grid
            code = grids[k % len(grids)].code
            identity.add_user(engine, f"gw-{code}-{chr(ord('b') + k // len(grids))}",
                              role="gridworker", region=code)  # fmt: skip
        identity.add_user(engine, ADMIN, role="admin", region=district)
        token = identity.create_token(engine, ADMIN)
        with engine.connect() as conn:
            staff = conn.execute(
                text("SELECT id, name, region_code FROM staff WHERE role = 'gridworker' "
                     "ORDER BY name LIMIT :n"), {"n": workers},
            ).all()  # fmt: skip
        info = demo.versions()
        engine.dispose()  # the benchmark opens its own connections
        geoms = dict(zip([g.code for g in grids], shapely.from_wkb([bytes(g.wkb) for g in grids]),
                         strict=True))  # fmt: skip
        yield {
            "url": demo.url,
            "versions": info,
            "token": token,
            "version_id": version.id,
            "district": district,
            "grids": len(grids),
            "workers": [(s.id, s.name, s.region_code) for s in staff],
            "geoms": np.array([geoms[s.region_code] for s in staff], dtype=object),
            "postmaster": demo.postmaster,
        }


# ---- the fixes ------------------------------------------------------------------------------
class Fixes:
    """``steps`` fixes of each of the workers, step-major: fix k is step k // W of worker k % W.
    A fix's day is chosen when its JSON is written, so the same walk can be sent on several days
    without duplicates."""

    def __init__(self, names: list[str], geoms: np.ndarray, steps: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = len(names)
        shapely.prepare(geoms)
        bounds = shapely.bounds(geoms)
        x, y = np.empty(n), np.empty(n)
        todo = np.arange(n)
        while todo.size:  # a start uniform inside each worker's own grid
            b = bounds[todo]
            cx, cy = rng.uniform(b[:, 0], b[:, 2]), rng.uniform(b[:, 1], b[:, 3])
            ok = shapely.contains_xy(geoms[todo], cx, cy)
            x[todo[ok]], y[todo[ok]] = cx[ok], cy[ok]
            todo = todo[~ok]
        mx, my = 111_320.0 * np.cos(np.radians(y)), 110_574.0  # metres per degree
        heading = rng.uniform(0, 2 * np.pi, n)
        pace = rng.uniform(1.0, 1.4, n)
        self.x, self.y = np.empty((steps, n)), np.empty((steps, n))
        speed = np.empty((steps, n))
        for s in range(steps):
            self.x[s], self.y[s] = x, y
            heading = heading + rng.normal(0, 0.4, n)
            cx = x + pace * INTERVAL_S * np.cos(heading) / mx
            cy = y + pace * INTERVAL_S * np.sin(heading) / my
            ok = shapely.contains_xy(geoms, cx, cy)  # a step out of the grid turns back instead
            x, y = np.where(ok, cx, x), np.where(ok, cy, y)
            heading = np.where(ok, heading, heading + np.pi + rng.normal(0, 0.5, n))
            speed[s] = np.where(ok, pace, 0.0)
        self.x += rng.normal(0, 4.0, (steps, n)) / mx
        self.y += rng.normal(0, 4.0, (steps, n)) / my
        self.x, self.y = np.round(self.x, 7).ravel(), np.round(self.y, 7).ravel()
        self.accuracy = np.round(rng.uniform(3, 15, steps * n), 1)
        self.speed = np.round(np.maximum(speed.ravel() + rng.normal(0, 0.15, steps * n), 0), 2)
        self.offset = rng.integers(0, INTERVAL_S, n)  # phones do not tick together
        self.names = names
        self.n, self.count = n, steps * n

    def start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(START_HOUR), patrols.ZONE)

    def times(self, lo: int, hi: int, day: dt.date) -> list[dt.datetime]:
        k = np.arange(lo, hi)
        seconds = (k // self.n) * INTERVAL_S + self.offset[k % self.n]
        start = self.start(day)
        return [start + dt.timedelta(seconds=int(s)) for s in seconds.tolist()]

    def items(self, lo: int, hi: int, day: dt.date) -> list[dict[str, Any]]:
        k = range(lo, hi)
        names = [self.names[i % self.n] for i in k]
        return [
            {"worker": w, "time": t.isoformat(), "lon": x, "lat": y, "accuracy_m": a,
             "speed_mps": v, "client_id": f"{w}:{i // self.n}"}
            for i, w, t, x, y, a, v in zip(
                k, names, self.times(lo, hi, day), self.x[lo:hi].tolist(),
                self.y[lo:hi].tolist(), self.accuracy[lo:hi].tolist(),
                self.speed[lo:hi].tolist(), strict=True,
            )
        ]  # fmt: skip

    def body(self, lo: int, hi: int, day: dt.date) -> bytes:
        return json.dumps({"fixes": self.items(lo, hi, day)}, separators=(",", ":")).encode()


def spans(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, hi)) for a in range(lo, hi, size)]


def partition_count(conn: Any, day: dt.date) -> int:
    return int(conn.execute(text(f"SELECT count(*) FROM {patrols.partition_name(day)}")).scalar())


# ---- gridmap over HTTP ----------------------------------------------------------------------
def post_all(base: str, token: str, bodies: list[bytes], threads: int) -> dict[str, Any]:
    """POST every body once with ``threads`` keep-alive clients; wall time, latencies, answers."""
    import httpx2 as httpx

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    answers: list[Any] = [None] * len(bodies)
    latency: list[float] = [0.0] * len(bodies)
    position = [0]
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(base_url=base, timeout=300, headers=headers) as client:
            while True:
                with lock:
                    i = position[0]
                    position[0] += 1
                if i >= len(bodies):
                    return
                started = time.perf_counter()
                response = client.post(INGEST_PATH, content=bodies[i])
                latency[i] = time.perf_counter() - started
                answers[i] = (response.status_code, response.content)

    with ThreadPoolExecutor(threads, thread_name_prefix="bench-client") as pool:
        started = time.perf_counter()
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
        wall = time.perf_counter() - started
    totals: Counter[str] = Counter()
    bad: list[str] = []
    for status, content in answers:
        if status != 200:
            bad.append(f"{status}: {content[:200].decode(errors='replace')}")
            continue
        body = json.loads(content)
        totals.update(accepted=body["accepted"], duplicates=body["duplicates"],
                      flagged=body["flagged"], rejected=len(body["rejected"]))  # fmt: skip
    return {"wall_s": wall, "latency_s": latency, "totals": dict(totals), "bad": bad}


def run_http(
    args: argparse.Namespace,
    db: dict[str, Any],
    fixes: Fixes,
    days: dict[str, dt.date],
    env: dict[str, str],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The batches of ``--batch`` on one day, then those of ``--small-batch`` on another; each
    day's partition is counted and emptied after its run, so that each run (and the in-process
    one after them) starts from the same table: the ingest's jump test reads the whole table."""
    from app.db.engine import make_engine

    phases = {
        "big": (spans(0, args.fixes, args.batch), args.batch, days["http"]),
        "small": (spans(args.fixes, args.fixes + args.small_fixes, args.small_batch),
                  args.small_batch, days["http_small"]),
    }  # fmt: skip
    log(f"HTTP: writing the JSON bodies ({len(phases['big'][0])} of {args.batch:,}, "
        f"{len(phases['small'][0])} of {args.small_batch:,}) …")  # fmt: skip
    bodies = {k: [fixes.body(lo, hi, day) for lo, hi in parts] for k, (parts, _, day)
              in phases.items()}  # fmt: skip
    warm = fixes.body(0, min(args.batch, fixes.count), days["warm"])
    first = phases["big"][0][0]
    out: dict[str, Any] = {"threads": args.threads,
                           "body_mib_per_10k": len(bodies["big"][0]) / 2**20 * 10_000
                           / (first[1] - first[0])}  # fmt: skip
    postmaster = db["postmaster"]
    engine = make_engine(db["url"])
    log("starting uvicorn: app.main:create_app …")
    try:
        with uvicorn_server("app.main:create_app", ROOT, env, WORK / "app.log") as (base, pid):
            post_all(base, db["token"], [warm], 1)  # untimed: the first request, the first COPY
            for label, (parts, size, day) in phases.items():
                if not parts:
                    continue
                log(f"HTTP: {sum(len(b) for b in bodies[label]) / 2**20:,.0f} MiB in "
                    f"{len(parts):,} batches of {size:,}, {args.threads} clients …")  # fmt: skip
                spy = start_py_spy(pid, WORK / f"server-{label}.pyspy") if args.py_spy else None
                before = (cpu_seconds(pid), cpu_seconds(postmaster, tree=True),
                          time.process_time(), machine_busy_seconds())  # fmt: skip
                sent = post_all(base, db["token"], bodies[label], args.threads)
                after = (cpu_seconds(pid), cpu_seconds(postmaster, tree=True),
                         time.process_time(), machine_busy_seconds())  # fmt: skip
                lat = np.asarray(sent["latency_s"]) * 1000
                k = max(1, min(5 * args.threads, len(lat) // 4))
                phase = out[label] = {
                    "day": day.isoformat(), "batch": size, "batches": len(parts),
                    "fixes": sum(hi - lo for lo, hi in parts), "wall_s": sent["wall_s"],
                    "rate_per_s": sent["totals"].get("accepted", 0) / sent["wall_s"],
                    "p50_ms": float(np.percentile(lat, 50)),
                    "p95_ms": float(np.percentile(lat, 95)),
                    "first_p50_ms": float(np.median(lat[:k])),
                    "last_p50_ms": float(np.median(lat[-k:])), "edge_batches": k,
                    "server_cpu_s": after[0] - before[0], "postgres_cpu_s": after[1] - before[1],
                    "client_cpu_s": after[2] - before[2], **sent["totals"],
                    "machine_busy_s": after[3] - before[3],
                    "bad": sent["bad"][:5], "bad_count": len(sent["bad"]),
                }  # fmt: skip
                if spy is not None:
                    phase["py_spy"] = stop_py_spy(*spy)
                with engine.connect() as conn:
                    phase["stored"] = partition_count(conn, day)
                if label == "big":
                    log("HTTP: sending one batch again …")
                    again = post_all(base, db["token"], bodies[label][:1], 1)
                    out["resent"] = {"fixes": first[1] - first[0], **again["totals"],
                                     "bad": again["bad"]}  # fmt: skip
                    with engine.connect() as conn:
                        out["stored_after_resend"] = partition_count(conn, day)
                with engine.begin() as conn:
                    conn.execute(text(f"TRUNCATE {patrols.partition_name(day)}"))
    finally:
        engine.dispose()
    return out


# ---- py-spy on the server -------------------------------------------------------------------
def start_py_spy(pid: int, out: Path) -> tuple[subprocess.Popen[bytes], Path] | None:
    if not PY_SPY.exists():
        return None
    cmd = [str(PY_SPY), "record", "-p", str(pid), "-f", "raw", "-o", str(out), "--nonblocking",
           "-r", "200"]  # fmt: skip
    log_file = out.with_suffix(".log")
    with log_file.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(0.5)  # attached before the first batch
    return proc, out


def _function(frame: str) -> str:
    """``name (path/file.py:123)`` → ``name (file.py)``."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0]})"


def stop_py_spy(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    """Stop py-spy (SIGINT: it writes what it sampled) and sum its stacks: each sample under the
    deepest frame of gridmap's own code (app/, by line), and under the function it was in."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not out.exists():
        return {"error": out.with_suffix(".log").read_text()[-500:]}
    threads: Counter[str] = Counter()
    where: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames, n = stack.split(";"), int(count)
        threads["worker" if frames[0].startswith("Thread._bootstrap") else "loop"] += n
        app = [f for f in frames if "(app/" in f]
        where[app[-1] if app else f"outside app/: {_function(frames[-1])}"] += n
        own[_function(frames[-1])] += n
    return {
        "file": str(out.relative_to(ROOT)),
        "samples": sum(threads.values()),
        "threads": dict(threads),
        "app_line": where.most_common(40),
        "self": own.most_common(40),
    }


# ---- gridmap in-process ---------------------------------------------------------------------
@contextlib.contextmanager
def timed_steps(locator: Any) -> Iterator[dict[str, float]]:
    """Wrap the functions ``patrols.ingest`` calls by their module name, and the snapshot's
    ``locate_index``, with timers; restored on the way out (the service is not changed)."""
    spent = dict.fromkeys(STEPS, 0.0)

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - started

        return timed

    index = locator.current().index
    names = [n for n in STEPS if n != "locate_index" and hasattr(patrols, n)]
    originals = {name: getattr(patrols, name) for name in names}
    for name, fn in originals.items():
        setattr(patrols, name, wrap(name, fn))
    index.locate_index = wrap("locate_index", index.locate_index)
    try:
        yield spent
    finally:
        for name, fn in originals.items():
            setattr(patrols, name, fn)
        del index.locate_index


def run_in_process(
    args: argparse.Namespace,
    db: dict[str, Any],
    fixes: Fixes,
    days: dict[str, dt.date],
    log: Callable[[str], None],
) -> dict[str, Any]:
    from app.db.engine import make_engine
    from app.services import identity
    from app.services.locate import LocateService
    from app.services.scoping import scope_for

    engine = make_engine(db["url"])
    locator = LocateService(engine, metric_crs="EPSG:4548")
    day = days["inproc"]
    try:
        locator.refresh()
        with engine.connect() as conn:
            principal = identity.authenticate(conn, db["token"])
            assert principal is not None
            reach = scope_for(conn, principal)
        # untimed: the first call (caches, the first COPY) on the warm-up day
        second = spans(args.batch, min(2 * args.batch, fixes.count), args.batch)
        patrols.ingest(engine, locator, principal, reach, fixes.body(*second[0], days["warm"]))
        batches = spans(0, args.fixes, args.batch)
        log(f"in-process: patrols.ingest on {args.fixes:,} fixes in {len(batches)} batches …")
        totals: Counter[str] = Counter()
        took: list[float] = []
        before = (time.process_time(), cpu_seconds(db["postmaster"], tree=True),
                  machine_busy_seconds())  # fmt: skip
        loop_started = time.perf_counter()
        with timed_steps(locator) as spent:
            for lo, hi in batches:
                body = fixes.body(lo, hi, day)  # the request's bytes, as the endpoint passes them
                started = time.perf_counter()
                done = patrols.ingest(engine, locator, principal, reach, body)
                took.append(time.perf_counter() - started)
                totals.update(accepted=done.accepted, duplicates=done.duplicates,
                              flagged=done.flagged, rejected=len(done.rejected))  # fmt: skip
        after = (time.process_time(), cpu_seconds(db["postmaster"], tree=True),
                 machine_busy_seconds())  # fmt: skip
        loop_wall = time.perf_counter() - loop_started
        with engine.connect() as conn:
            stored = partition_count(conn, day)
        profile = None
        if args.profile and len(second) and fixes.count >= 3 * args.batch:
            third = spans(2 * args.batch, 3 * args.batch, args.batch)[0]
            body = fixes.body(*third, days["warm"])
            profiler = cProfile.Profile()
            profiler.enable()
            patrols.ingest(engine, locator, principal, reach, body)
            profiler.disable()
            text_out = io.StringIO()
            stats = pstats.Stats(profiler, stream=text_out)
            stats.sort_stats("cumulative").print_stats(args.profile)
            text_out.write("\n")
            stats.sort_stats("tottime").print_stats(args.profile)
            profile = text_out.getvalue()
        wall = sum(took)
        return {
            "day": day.isoformat(), "batch": args.batch, "batches": len(batches),
            "fixes": args.fixes, "wall_s": wall, "rate_per_s": totals["accepted"] / wall,
            "median_batch_ms": statistics.median(took) * 1000,
            "first_batches_ms": statistics.median(took[:5]) * 1000,
            "last_batches_ms": statistics.median(took[-5:]) * 1000,
            "steps_ms_per_batch": {k: v * 1000 / len(batches) for k, v in spent.items()},
            "stored": stored, **totals, "profile": profile,
            "process_cpu_s": after[0] - before[0], "postgres_cpu_s": after[1] - before[1],
            "machine_busy_s": after[2] - before[2], "loop_wall_s": loop_wall,
        }  # fmt: skip
    finally:
        locator.stop()
        engine.dispose()


# ---- the peer: a row-by-row ORM insert ------------------------------------------------------
def run_peer(
    args: argparse.Namespace,
    db: dict[str, Any],
    fixes: Fixes,
    days: dict[str, dt.date],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The first ``--peer-fixes`` fixes, from the same parsed JSON items as gridmap's, each an
    ORM object added and flushed by itself; a commit per batch. Worker ids and grid codes are
    looked up before the timing (the codes from the same GridIndex that gridmap uses)."""
    from geoalchemy2 import WKTElement
    from sqlalchemy.orm import Session

    from app.db.engine import make_engine
    from app.db.models import PatrolFix
    from app.services.locate import LocateService

    engine = make_engine(db["url"])
    locator = LocateService(engine, metric_crs="EPSG:4548")
    n = min(args.peer_fixes, fixes.count)
    day = days["peer"]
    try:
        locator.refresh()
        snapshot = locator.current()
        codes = snapshot.index.codes
        ids = {name: wid for wid, name, _ in db["workers"]}
        version = snapshot.version.id

        def located(lo: int, hi: int) -> list[str | None]:
            where = snapshot.index.locate_index(fixes.x[lo:hi], fixes.y[lo:hi])
            return [codes[i] if i >= 0 else None for i in where.tolist()]

        def insert(session: Session, items: list[dict[str, Any]], grid: list[str | None]) -> None:
            for item, code in zip(items, grid, strict=True):
                fix = PatrolFix(
                    worker_id=ids[item["worker"]],
                    fix_time=dt.datetime.fromisoformat(item["time"]),
                    client_id=item["client_id"],
                    geom=WKTElement(f"POINT({item['lon']!r} {item['lat']!r})", srid=4490),
                    input_crs="wgs84",
                    accuracy_m=item["accuracy_m"],
                    speed_mps=item["speed_mps"],
                    grid_code=code,
                    boundary_version_id=version,
                    flags=0,
                )
                session.add(fix)
                session.flush()
            session.commit()

        with Session(engine) as session:  # untimed: 200 rows on the warm-up day
            lo = 3 * args.batch  # after the fixes the other warm-ups and the profile use
            insert(session, fixes.items(lo, lo + 200, days["warm"]), located(lo, lo + 200))
        batches = spans(0, n, args.batch)
        log(f"peer: row-by-row ORM insert of {n:,} fixes (session.add + flush each, a commit "
            f"per {args.batch:,}) …")  # fmt: skip
        took = 0.0
        with Session(engine) as session:
            for lo, hi in batches:
                items = json.loads(fixes.body(lo, hi, day))["fixes"]
                grid = located(lo, hi)
                started = time.perf_counter()
                insert(session, items, grid)
                took += time.perf_counter() - started
        with engine.connect() as conn:
            stored = partition_count(conn, day)
            same = same_rows(conn, days, n)
        return {"day": day.isoformat(), "fixes": n, "batches": len(batches), "wall_s": took,
                "rate_per_s": stored / took, "stored": stored, "same_as_gridmap": same}  # fmt: skip
    finally:
        locator.stop()
        engine.dispose()


def same_rows(conn: Any, days: dict[str, dt.date], n: int) -> dict[str, int]:
    """The peer's rows against gridmap's for the same fixes (worker, client id; the time a whole
    number of days apart): how many have the same point (1e-9°) and the same grid code."""
    other = days["inproc"]
    shift = (other - days["peer"]).days
    row = conn.execute(
        text(
            f"SELECT count(*) AS pairs, count(*) FILTER (WHERE abs(ST_X(a.geom) - ST_X(b.geom)) "
            f"< 1e-9 AND abs(ST_Y(a.geom) - ST_Y(b.geom)) < 1e-9) AS same_point, "
            f"count(*) FILTER (WHERE a.grid_code IS NOT DISTINCT FROM b.grid_code) AS same_grid, "
            f"count(*) FILTER (WHERE a.grid_code IS NULL) AS no_grid "
            f"FROM {patrols.partition_name(days['peer'])} a "
            f"JOIN {patrols.partition_name(other)} b ON b.worker_id = a.worker_id "
            f"AND b.client_id = a.client_id AND b.fix_time = a.fix_time + make_interval(days => "
            f"{shift})"
        )
    ).one()
    return {"fixes": n, **row._asdict()}


# ---- the table ------------------------------------------------------------------------------
def _busy(s: dict[str, Any], wall: float) -> str:
    """The machine's CPUs during a run: how busy, and how much of that was other processes."""
    mine = s["postgres_cpu_s"] + s.get("server_cpu_s", 0) + s.get("client_cpu_s", 0)
    mine += s.get("process_cpu_s", 0)
    total = wall * nproc()
    return (
        f"the machine's {nproc()} CPUs busy {s['machine_busy_s'] / total:.0%}, other processes "
        f"{(s['machine_busy_s'] - mine) / total:.0%}"
    )


def lines_for(figures: dict[str, Any], args: argparse.Namespace) -> tuple[list[str], list[str]]:
    out: list[str] = []
    failures: list[str] = []
    http, inproc, peer = figures.get("http"), figures["in_process"], figures["peer"]
    runs = [http[k] for k in ("big", "small") if http and k in http]
    if http is not None:
        out.append(
            f"ingest — POST {INGEST_PATH} (JSON {{'fixes': [...]}}, the administrator's bearer "
            f"token), uvicorn {UVICORN_OPTIONS}; {http['threads']} keep-alive clients posting "
            f"ready-made bodies ({http['body_mib_per_10k']:.2f} MiB per 10,000 fixes); rate = "
            f"fixes stored / wall time; each run on a day of its own, from a table without "
            f"other fixes"
        )
        for s in runs:
            per = 10_000 / s["fixes"]
            out.append(
                f"  gridmap  HTTP, batches of {s['batch']:>6,}   {s['rate_per_s']:9,.0f} fixes/s"
                f"   {s['fixes']:,} fixes in {s['wall_s']:.2f} s, {s['batches']:,} batches; "
                f"a batch's answer p50 {s['p50_ms']:.0f} ms (first {s['edge_batches']}: "
                f"{s['first_p50_ms']:.0f} ms, last {s['edge_batches']}: {s['last_p50_ms']:.0f} "
                f"ms), p95 {s['p95_ms']:.0f} ms; CPU per 10,000 fixes: server "
                f"{s['server_cpu_s'] * per * 1000:.0f} ms, PostgreSQL "
                f"{s['postgres_cpu_s'] * per * 1000:.0f} ms, clients "
                f"{s['client_cpu_s'] * per * 1000:.0f} ms; {_busy(s, s['wall_s'])}"
            )
    st = {k: inproc["steps_ms_per_batch"].get(k, math.nan) for k in STEPS}
    rest = inproc["wall_s"] * 1000 / inproc["batches"] - sum(v for v in st.values() if v == v)
    out.append(
        f"  gridmap  patrols.ingest in-process, batches of {inproc['batch']:,}, one thread "
        f"  {inproc['rate_per_s']:9,.0f} fixes/s   {inproc['fixes']:,} fixes in "
        f"{inproc['wall_s']:.2f} s; a batch: median {inproc['median_batch_ms']:.0f} ms, first "
        f"five {inproc['first_batches_ms']:.0f} ms, last five {inproc['last_batches_ms']:.0f} "
        f"ms (from the request body's bytes); {_busy(inproc, inproc['loop_wall_s'])} (writing "
        "the bodies included)"
    )
    out.append(
        f"    per batch: parse (validate the JSON, columns) {st['parse']:.0f} ms, workers' "
        f"lookup {st['_workers']:.0f} ms, "
        f"locate_index {st['locate_index']:.1f} ms, jump test (SQL + numpy) {st['_jumps']:.0f} "
        f"ms, staging + COPY + INSERT … ON CONFLICT {st['_copy']:.0f} ms, the rest (frame, "
        f"sort, dedupe, flags, partitions, commit) {rest:.0f} ms"
    )
    out.append(
        f"  peer     row-by-row ORM insert (PatrolFix, session.add + flush per fix, commit per "
        f"{args.batch:,})   {peer['rate_per_s']:9,.0f} fixes/s   {peer['fixes']:,} fixes in "
        f"{peer['wall_s']:.2f} s; from the same JSON items, with grid codes from gridmap's "
        "GridIndex looked up before the timing, so only the write path differs"
    )
    judged = http["big"] if http and "big" in http else None
    headline = judged["rate_per_s"] if judged else inproc["rate_per_s"]
    where = f"HTTP, batches of {args.batch:,}" if judged else "in-process"
    ratio = headline / peer["rate_per_s"]
    ratio_in = inproc["rate_per_s"] / peer["rate_per_s"]
    figures["ratio"] = {"headline": ratio, "in_process": ratio_in, "judged_on": where}
    rate_ok, ratio_ok = headline >= TARGET_RATE, ratio >= TARGET_RATIO
    out.append(
        f"  ratio gridmap / peer: {ratio:.1f}x ({where})"
        + (f", in-process {ratio_in:.1f}x" if judged else "")
        + f" — target >= {TARGET_RATIO:.0f}x: {'met' if ratio_ok else 'MISSED'}"
    )
    out.append(
        f"  gridmap {headline:,.0f} fixes/s ({where}) — target >= {TARGET_RATE:,.0f}/s: "
        f"{'met' if rate_ok else 'MISSED'}"
    )
    if not rate_ok:
        failures.append(f"rate {headline:,.0f} fixes/s < {TARGET_RATE:,.0f}/s ({where})")
    if not ratio_ok:
        failures.append(f"ratio {ratio:.1f}x < {TARGET_RATIO:.0f}x ({where})")
    # checks
    for s in runs:
        out.append(
            f"  check (HTTP, batches of {s['batch']:,}): sent {s['fixes']:,}, accepted "
            f"{s.get('accepted', 0):,}, duplicates {s.get('duplicates', 0):,}, rejected "
            f"{s.get('rejected', 0):,}, flagged {s.get('flagged', 0):,}, answers other than 200: "
            f"{s['bad_count']}; the day's partition holds {s['stored']:,}"
        )
        out += [f"    error: {b}" for b in s["bad"]]
        if not s["stored"] == s.get("accepted", 0) == s["fixes"] or s["bad_count"]:
            failures.append(f"HTTP: the stored fixes are not the fixes sent ({s['batch']:,})")
    if judged:
        r = http["resent"]
        out.append(
            f"  check (HTTP): one batch of {r['fixes']:,} sent again: accepted "
            f"{r.get('accepted', 0):,}, duplicates {r.get('duplicates', 0):,}; then the "
            f"partition holds {http['stored_after_resend']:,}"
        )
        if (r.get("accepted", 0) != 0 or r.get("duplicates", 0) != r["fixes"] or r["bad"]
                or http["stored_after_resend"] != judged["stored"]):  # fmt: skip
            failures.append("HTTP: a batch sent again was not all duplicates")
    same = peer["same_as_gridmap"]
    out.append(
        f"  check (in-process): accepted {inproc.get('accepted', 0):,} of {inproc['fixes']:,}, "
        f"the day's partition holds {inproc['stored']:,}; peer: its partition holds "
        f"{peer['stored']:,} of {peer['fixes']:,}; against gridmap's rows for the same fixes: "
        f"{same['pairs']:,} found, same point {same['same_point']:,}, same grid code "
        f"{same['same_grid']:,} ({same['no_grid']:,} in no grid)"
    )
    if inproc["stored"] != inproc.get("accepted") or inproc.get("accepted") != inproc["fixes"]:
        failures.append("in-process: the stored fixes are not exactly the fixes given")
    if (
        not peer["stored"]
        == same["pairs"]
        == same["same_point"]
        == same["same_grid"]
        == peer["fixes"]
    ):
        failures.append("peer: its rows differ from gridmap's")
    return out, failures


def spy_lines(label: str, spy: dict[str, Any], top: int = 12) -> list[str]:
    if "error" in spy:
        return [f"  py-spy ({label}): failed: {spy['error']}"]
    total = spy["samples"] or 1
    threads = spy["threads"]
    lines = [
        f"  py-spy on the server ({label}): {spy['samples']:,} samples ({spy['file']}), "
        f"{threads.get('worker', 0) / total:.0%} in the thread pool (the ingest), "
        f"{threads.get('loop', 0) / total:.0%} on the event loop (HTTP); by the "
        "deepest line of app/, then by the function on top of the stack:"
    ]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in spy["app_line"][:top]]
    lines += ["    on top:"] + [f"    {n / total:6.1%}  {name}" for name, n in spy["self"][:top]]
    return lines


# ---- main -----------------------------------------------------------------------------------
def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    figures: dict[str, Any] = {
        "benchmark": "patrols",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "commit": _commit(),
        "service_sha1": hashlib.sha1(Path(patrols.__file__).read_bytes()).hexdigest()[:10],
        "seed": args.seed,
        "options": {k: str(v) for k, v in vars(args).items()},
        "targets": {"rate_per_s": TARGET_RATE, "ratio": TARGET_RATIO},
    }
    out: list[str] = []

    def emit(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        out.extend(lines)

    WORK.mkdir(parents=True, exist_ok=True)
    today = dt.datetime.now(patrols.ZONE).date()
    phases = ("http", "http_small", "inproc", "peer", "warm")
    days = {name: today - dt.timedelta(days=k) for k, name in enumerate(phases, start=1)}
    failures: list[str] = []
    with patrol_database(args.workers, log) as db:
        names = [name for _, name, _ in db["workers"]]
        total = max(args.fixes + (0 if args.skip_http else args.small_fixes), 3 * args.batch + 200,
                    args.peer_fixes)  # fmt: skip
        steps = math.ceil(total / len(names))
        log(f"walking {len(names):,} workers for {steps:,} steps of {INTERVAL_S} s …")
        fixes = Fixes(names, db["geoms"], steps, args.seed)
        from app.db.engine import make_engine

        engine = make_engine(db["url"])
        try:
            patrols.ensure_partitions(engine, days.values())
        finally:
            engine.dispose()
        figures["server"] = db["versions"]
        figures["workers"] = len(names)
        emit([
            f"patrols bench — nproc {nproc()}, {dt.date.today().isoformat()}, commit "
            f"{figures['commit']} (app/services/patrols.py sha1 {figures['service_sha1']}); "
            f"PostgreSQL {db['versions']['postgres']} / PostGIS "
            f"{db['versions']['postgis']} (fsync off); demo district ({db['grids']} grids), "
            f"{len(names):,} gridworkers each walking inside its own grid (1.0–1.4 m/s, turning "
            f"back at the edge, GPS noise σ 4 m), a fix every {INTERVAL_S} s from "
            f"{START_HOUR:02d}:00 Beijing time, WGS84, accuracy 3–15 m, speed and client id; a "
            f"batch = consecutive fixes of all workers in time order; load average "
            f"{os.getloadavg()[0]:.2f} at the start"
        ])  # fmt: skip
        env = {
            **os.environ,
            "GRIDMAP_DATABASE_URL": db["url"],
            "GRIDMAP_VAR_DIR": str(WORK / "var"),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        try:
            if not args.skip_http:
                figures["http"] = run_http(args, db, fixes, days, env, log)
            figures["in_process"] = run_in_process(args, db, fixes, days, log)
            figures["peer"] = run_peer(args, db, fixes, days, log)
        except RuntimeError as exc:  # a server that fails to start
            emit([f"error: {exc}"])
            failures.append("error")
    if "peer" in figures:
        lines, more = lines_for(figures, args)
        emit(lines)
        failures += more
        http = figures.get("http") or {}
        for key in ("big", "small"):
            if "py_spy" in http.get(key, {}):
                emit(spy_lines(f"batches of {http[key]['batch']:,}", http[key]["py_spy"]))
        if figures["in_process"]["profile"]:
            emit([f"  cProfile, one more patrols.ingest of {args.batch:,} fixes in-process, the "
                  f"table holding the in-process run's fixes (top {args.profile} by cumulative "
                  "time, then by own time):"])  # fmt: skip
            skip = ("Ordered by", "List reduced")
            profile = figures["in_process"]["profile"].splitlines()
            emit(["    " + ln for ln in profile if ln.strip() and not ln.lstrip().startswith(skip)])
    return finish(figures, out, failures, args.results, emit, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixes", type=int, default=500_000,
                        help="fixes sent in batches of --batch (HTTP and in-process)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=patrols.MAX_BATCH, help="fixes a batch")
    parser.add_argument("--small-fixes", type=int, default=100_000,
                        help="fixes sent over HTTP in batches of --small-batch")  # fmt: skip
    parser.add_argument("--small-batch", type=int, default=500, help="fixes a small batch")
    parser.add_argument("--peer-fixes", type=int, default=20_000, help="the peer's sample")
    parser.add_argument("--workers", type=int, default=1000, help="gridworkers walking")
    parser.add_argument("--threads", type=int, default=2, help="concurrent keep-alive clients")
    parser.add_argument("--skip-http", action="store_true",
                        help="no server: in-process and peer only")  # fmt: skip
    parser.add_argument("--profile", type=int, default=12,
                        help="cProfile lines to print (0: no profile)")  # fmt: skip
    parser.add_argument("--py-spy", action="store_true",
                        help=f"sample the server with {PY_SPY} during the HTTP runs")  # fmt: skip
    parser.add_argument("--seed", type=int, default=20191216, help="the walks' seed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if min(args.fixes, args.batch, args.small_batch, args.peer_fixes, args.workers,
           args.threads) < 1 or args.small_fixes < 0 or args.profile < 0:  # fmt: skip
        parser.error("--fixes, --batch, --small-batch, --peer-fixes, --workers, --threads >= 1")
    if args.peer_fixes > args.fixes:
        parser.error("--peer-fixes must not exceed --fixes (the peer inserts the same fixes)")
    if max(args.batch, args.small_batch) > patrols.MAX_BATCH:
        parser.error(f"a batch holds at most {patrols.MAX_BATCH:,} fixes")
    per_day = (24 - START_HOUR) * 3600 // INTERVAL_S
    if max(args.fixes + args.small_fixes, args.peer_fixes) > per_day * args.workers:
        parser.error(f"at most {per_day:,} fixes per worker fit in a day")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
