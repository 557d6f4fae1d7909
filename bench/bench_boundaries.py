"""Boundary import of a big synthetic city: gridmap's import beside geopandas.to_postgis.

What a district platform scaling to a whole city does with a new boundary set: write it to a
GeoPackage and read it back, validate the four-level hierarchy, and load it into PostGIS with the
parent links and the ST_Subdivide lookup table. The load is measured twice, in one run, on the
same frame, in two databases of one throw-away cluster:

* gridmap: :func:`app.services.boundaries.import_boundaries` (validation, then COPY, parent
  linking and ST_Subdivide in one transaction). It has no "already validated" entry point, so
  its write is the whole call minus the validation inside that same call, timed by a transparent
  timing wrapper around ``app.services.boundaries.check`` (the import's behaviour is unchanged).
* peer: ``GeoDataFrame.to_postgis`` (pandas.to_sql through GeoAlchemy2, SQLAlchemy executemany
  INSERT on psycopg 3) of the same rows and attribute columns, followed by the same post-steps in
  SQL: parent_id by a code join, ST_Subdivide into a table, and the keys, constraints and indexes
  (GiST included) of gridmap's schema, built after the load, so both end in the same state.

Both loads run in one transaction each, after a CHECKPOINT, on a cluster started with fsync off.
Not a test: no timing is asserted. Stops by itself; the cluster and every temporary directory it
creates are removed on the way out (also on Ctrl-C or SIGTERM).

    .venv/bin/python bench/bench_boundaries.py               # 100,000 grids (several minutes)
    .venv/bin/python bench/bench_boundaries.py --quick       # 5,000 grids, under a minute
    .venv/bin/python bench/bench_boundaries.py --grids 20000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import geopandas as gpd  # noqa: E402
import pyogrio  # noqa: E402
from _common import run_logged  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.engine import make_engine, upgrade  # noqa: E402
from app.services import boundaries as boundary_service  # noqa: E402
from gis.codes import LEVELS  # noqa: E402
from gis.hierarchy import ValidationOptions, validate  # noqa: E402
from gis.io import BoundaryFile, read_boundaries, write_boundaries  # noqa: E402
from gis.synth import city_spec, generate  # noqa: E402

DEFAULT_GRIDS = 100_000
QUICK_GRIDS = 5_000
RESULTS = ROOT / "bench" / "results" / "boundaries.json"
PEER = "geopandas.to_postgis"
PEER_TABLE = "region_peer"
# The peer's post-steps, the load-then-index way: after to_postgis (which makes the table and,
# through GeoAlchemy2, its GiST index), give it the same keys, constraints and indexes as
# gridmap's schema (app/db/migrations/versions/0001_regions.py; the peer has no version_id),
# link parents by a code join and cut the ST_Subdivide lookup table.
_T = PEER_TABLE
PEER_POST_STEPS = (
    f"ALTER TABLE {_T} ADD PRIMARY KEY (id)",
    f"CREATE UNIQUE INDEX {_T}_code ON {_T} (code)",
    f"ALTER TABLE {_T} ADD CONSTRAINT {_T}_level CHECK "
    f"(level IN ({', '.join(repr(level) for level in LEVELS)}))",
    f"ALTER TABLE {_T} ADD COLUMN parent_id bigint REFERENCES {_T} (id) ON DELETE CASCADE",
    f"UPDATE {_T} c SET parent_id = p.id FROM {_T} p WHERE p.code = c.parent_code",
    f"CREATE INDEX {_T}_level_code ON {_T} (level, code)",
    f"CREATE INDEX {_T}_parent ON {_T} (parent_code)",
    f"CREATE TABLE {_T}_subdivided AS SELECT row_number() OVER () AS id, region_id, level, geom "
    f"FROM (SELECT id AS region_id, level, ST_Subdivide(geometry, 64) AS geom FROM {_T}) AS s",
    f"ALTER TABLE {_T}_subdivided ADD PRIMARY KEY (id), ADD FOREIGN KEY (region_id) "
    f"REFERENCES {_T} (id) ON DELETE CASCADE",
    f"CREATE INDEX {_T}_subdivided_region ON {_T}_subdivided (region_id)",
    f"CREATE INDEX {_T}_subdivided_level ON {_T}_subdivided (level)",
    f"CREATE INDEX {_T}_subdivided_geom ON {_T}_subdivided USING gist (geom)",
)
_TIMED = {"check": "validation", "metric_area": "areas"}  # boundary_service name -> phase


# ---- measuring ------------------------------------------------------------------------------
class Clock:
    """Named wall-clock marks (perf_counter) inside one timed section."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter() - self.start)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


@contextlib.contextmanager
def timed() -> Iterator[Clock]:
    clock = Clock()
    yield clock
    clock.mark("end")


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark, VmHWM (Linux >= 4.0), to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _status_bytes(field: str) -> int | None:
    """A "kB" field of /proc/self/status (VmRSS, VmHWM) in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _maxrss() -> int:
    """resource.getrusage peak RSS in bytes (kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@contextlib.contextmanager
def peak_rss_growth() -> Iterator[dict[str, Any]]:
    """Peak RSS during the block minus RSS at its start.

    On Linux, VmHWM after resetting it through /proc/self/clear_refs. Not getrusage's
    ru_maxrss: it also keeps the peaks recorded when threads exit, which the reset leaves alone.
    """
    out: dict[str, Any] = {}
    before = _status_bytes("VmRSS") if _reset_peak_rss() else None
    if before is None:  # no reset possible: growth above the process's earlier peak only
        before = _maxrss()
        out["method"] = "getrusage ru_maxrss growth above the process's earlier peak"
        yield out
        out["bytes"] = max(0, _maxrss() - before)
        return
    out["method"] = "VmHWM minus VmRSS before, peak reset via /proc/self/clear_refs"
    yield out
    out["bytes"] = max(0, (_status_bytes("VmHWM") or before) - before)


# ---- the city -------------------------------------------------------------------------------
def level_counts(frame: gpd.GeoDataFrame) -> dict[str, int]:
    return {level: int((frame["level"] == level).sum()) for level in LEVELS}


def peer_frame(frame: gpd.GeoDataFrame, metric_crs: str) -> gpd.GeoDataFrame:
    """The same rows and attribute columns, as a GIS developer would shape them for to_postgis:
    ids as the index, properties as JSON text, the area from ``to_crs(...).area``."""
    out = frame.drop(columns=[c for c in ("feature",) if c in frame.columns]).copy()
    out["properties"] = [
        json.dumps(p if isinstance(p, dict) else {}, ensure_ascii=False) for p in out["properties"]
    ]
    out["area_m2"] = out.geometry.to_crs(metric_crs).area.to_numpy()
    out.index = range(1, len(out) + 1)
    out.index.name = "id"
    return out


# ---- the two loads --------------------------------------------------------------------------
def index_counts(engine: Engine, tables: tuple[str, ...]) -> dict[str, int]:
    """How many indexes (and GiST ones) the load left on its tables: the end states compared."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) AS total, count(*) FILTER (WHERE indexdef ILIKE '%USING gist%') "
                "AS gist FROM pg_indexes WHERE tablename = ANY(:t)"
            ),
            {"t": list(tables)},
        ).one()
    return {"total": int(row.total), "gist": int(row.gist)}


def checkpoint(engine: Engine) -> None:
    """Start each load from a clean checkpoint so neither pays for the other's WAL."""
    with engine.connect() as conn:
        conn.execute(text("CHECKPOINT"))
        conn.commit()


def load_gridmap(engine: Engine, data: BoundaryFile, options: ValidationOptions) -> dict[str, Any]:
    checkpoint(engine)
    # Transparent timing wrappers around two module-level names the import calls; the call's
    # behaviour is unchanged and they are put back afterwards.
    originals = {name: getattr(boundary_service, name, None) for name in _TIMED}
    with timed() as clock:

        def wrapper(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
            def timed_call(*args: Any, **kwargs: Any) -> Any:
                clock.mark(f"{_TIMED[name]} start")
                try:
                    return func(*args, **kwargs)
                finally:
                    clock.mark(f"{_TIMED[name]} end")

            return timed_call

        def progress(step: str, done: int, total: int) -> None:
            if step == "writing regions" and done == total:
                clock.mark("copy end")
            elif step.startswith("subdividing") and done == total:
                clock.mark("subdivide end")

        for name, func in originals.items():
            if func is not None:
                setattr(boundary_service, name, wrapper(name, func))
        try:
            version, _report = boundary_service.import_boundaries(
                engine, data, options, label="bench", progress=progress
            )
        finally:
            for name, func in originals.items():
                if func is not None:
                    setattr(boundary_service, name, func)
    marks = clock.marks
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT count(*) AS n, count(parent_id) AS linked FROM region WHERE version_id = :v"
            ),
            {"v": version.id},
        ).one()
        parts = conn.execute(
            text("SELECT count(*) FROM region_subdivided WHERE version_id = :v"),
            {"v": version.id},
        ).scalar_one()
    total = marks["end"]
    validation = None
    if "validation end" in marks:
        validation = marks["validation end"] - marks.get("validation start", 0.0)
    phases: dict[str, float] = {}
    if {"validation end", "areas end", "copy end", "subdivide end"} <= marks.keys():
        phases["areas (gis.crs.metric_area)"] = marks["areas end"] - marks["validation end"]
        phases["wkb+ids+copy (parents linked)"] = marks["copy end"] - marks["areas end"]
        phases["subdivide"] = marks["subdivide end"] - marks["copy end"]
        phases["commit+rest"] = total - marks["subdivide end"]
    return {
        "total_s": total,
        "validation_in_call_s": validation,
        "phases_s": phases,
        "rows": int(stored.n),
        "linked": int(stored.linked),
        "subdivided": int(parts),
        "indexes": index_counts(engine, ("region", "region_subdivided")),
    }


def load_peer(engine: Engine, frame: gpd.GeoDataFrame, metric_crs: str) -> dict[str, Any]:
    checkpoint(engine)
    with timed() as clock:
        shaped = peer_frame(frame, metric_crs)
        clock.mark("prepare end")
        with engine.begin() as conn:
            shaped.to_postgis(PEER_TABLE, conn, if_exists="fail", index=True, index_label="id")
            clock.mark("to_postgis end")
            for statement in PEER_POST_STEPS:
                conn.execute(text(statement))
            clock.mark("post-steps end")
    marks = clock.marks
    with engine.connect() as conn:
        stored = conn.execute(
            text(f"SELECT count(*) AS n, count(parent_id) AS linked FROM {PEER_TABLE}")
        ).one()
        parts = conn.execute(text(f"SELECT count(*) FROM {PEER_TABLE}_subdivided")).scalar_one()
    return {
        "total_s": marks["end"],
        "phases_s": {
            "prepare (to_crs().area, json)": marks["prepare end"],
            "to_postgis": marks["to_postgis end"] - marks["prepare end"],
            "post-steps+commit": marks["end"] - marks["to_postgis end"],
        },
        "rows": int(stored.n),
        "linked": int(stored.linked),
        "subdivided": int(parts),
        "indexes": index_counts(engine, (PEER_TABLE, f"{PEER_TABLE}_subdivided")),
    }


# ---- output ---------------------------------------------------------------------------------
def rate(n: int, seconds: float | None) -> str:
    return f"{n / seconds:>9,.0f} regions/s" if seconds and seconds > 0 else " " * 19


def line(
    step: str,
    ours: float | None,
    n: int,
    peer_name: str = "",
    theirs: float | None = None,
    note: str = "",
) -> str:
    text_ = f"{step:<18}gridmap {ours:>8.2f} s {rate(n, ours)}"
    if theirs is not None:
        ratio = theirs / ours if ours else float("nan")
        text_ += f"   {peer_name} {theirs:>8.2f} s {rate(n, theirs)}   ratio {ratio:.2f}x"
    if note:
        text_ += f"   {note}"
    return text_


def server_versions(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            "postgres": conn.execute(text("SHOW server_version")).scalar_one(),
            "postgis": conn.execute(text("SELECT postgis_lib_version()")).scalar_one(),
        }


# ---- main -----------------------------------------------------------------------------------
def nproc() -> int:
    """What ``nproc`` prints: the CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _private_tmpdir(prefix: str) -> Path:
    """A temporary directory the cluster's OS user can reach (it is 'postgres' under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def run(grids: int, seed: int, results: Path, log: Callable[[str], None]) -> int:
    options = ValidationOptions()
    figures: dict[str, Any] = {
        "benchmark": "boundaries",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "grids": grids,
        "seed": seed,
        "python": platform.python_version(),
        "geopandas": gpd.__version__,
        "metric_crs": options.metric_crs,
    }

    log(f"generating a city of {grids:,} grids …")
    with timed() as t_gen:
        frame = generate(city_spec(grids, seed=seed))
    counts = level_counts(frame)
    n = len(frame)
    figures.update(regions=n, counts=counts)

    work = Path(tempfile.mkdtemp(prefix="gridmap-bench-files-"))
    base: Path | None = None
    cluster: EmbeddedPostgres | None = None
    engines: list[Engine] = []
    try:
        gpkg = work / "city.gpkg"
        log("writing and reading the GeoPackage …")
        with timed() as t_write:
            write_boundaries(frame, gpkg)
        with timed() as t_read:
            data = read_boundaries([gpkg], scheme=options.scheme)
        with timed() as t_raw:
            raw = pyogrio.read_dataframe(gpkg)
        raw_rows = len(raw)
        del raw
        if len(data.frame) != n or raw_rows != n:
            log(f"error: wrote {n} regions, read {len(data.frame)} (raw {raw_rows})")
            return 1
        del frame  # from here on, both loads use the frame read back from the file
        gpkg_mib = gpkg.stat().st_size / 2**20

        log("validating …")
        with peak_rss_growth() as rss, timed() as t_val:
            report = validate(data.frame, options)
        errors = len(report.errors) + sum(1 for i in data.issues if i.severity == "error")
        if errors:
            for issue in report.errors[:10]:
                log(f"  {issue}")
            log(f"error: the synthetic city has {errors} validation error(s); nothing imported")
            return 1

        log("starting a throw-away PostGIS cluster …")
        base = _private_tmpdir("gridmap-bench-pg-")
        cluster = EmbeddedPostgres(base, fast=True, database="postgres")
        with timed() as t_up:
            cluster.up()
            for name in ("bench_gridmap", "bench_peer"):
                cluster.create_database(name)
                engine = make_engine(cluster.url(name))
                engines.append(engine)
                upgrade(engine)
        gm_engine, peer_engine = engines
        figures["server"] = server_versions(gm_engine)

        log("importing with gridmap (import_boundaries) …")
        gm = load_gridmap(gm_engine, data, options)
        log(f"importing with {PEER} …")
        peer = load_peer(peer_engine, data.frame, options.metric_crs)
    finally:
        for engine in engines:
            engine.dispose()
        if cluster is not None:
            cluster.destroy()
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    gm_validation = gm["validation_in_call_s"]
    if gm_validation is not None:
        write_basis = "import minus the validation timed inside the same call"
    else:  # the import no longer calls boundaries.check: fall back to step 2's figure
        gm_validation = t_val.marks["end"]
        write_basis = "import minus the separate validation step"
    gm_write = gm["total_s"] - gm_validation
    peer_write = peer["total_s"]
    same_rows = peer["rows"] == gm["rows"] == n

    level_text = " / ".join(f"{level} {counts[level]:,}" for level in LEVELS)
    out = [
        f"boundaries bench — N={grids:,} grids, {n:,} regions ({level_text}), "
        f"nproc {nproc()}, {dt.date.today().isoformat()}, "
        f"PostgreSQL {figures['server']['postgres']} / PostGIS {figures['server']['postgis']} "
        "(fsync off); ratio = peer time / gridmap time, below 1 = the peer is faster",
        line("generate", t_gen.marks["end"], n, note="gis.synth.generate(city_spec(N))"),
        line(
            "write gpkg",
            t_write.marks["end"],
            n,
            note=f"gis.io.write_boundaries, {gpkg_mib:,.1f} MiB",
        ),
        line(
            "read gpkg",
            t_read.marks["end"],
            n,
            "pyogrio.read_dataframe (raw)",
            t_raw.marks["end"],
            note="gis.io.read_boundaries = raw read + canonical frame",
        ),
        line(
            "validate",
            t_val.marks["end"],
            n,
            note=f"{len(report.errors)} errors, peak RSS +{rss['bytes'] / 2**20:,.0f} MiB "
            f"({rss['method']})",
        ),
        line(
            "import (total)",
            gm["total_s"],
            n,
            note=f"import_boundaries: validation {gm_validation:.2f} s + write {gm_write:.2f} s",
        ),
        line("import (write)", gm_write, n, PEER, peer_write, note=f"gridmap = {write_basis}"),
        "  gridmap phases: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in gm["phases_s"].items())
        + f"  | stored {gm['rows']:,} rows, {gm['linked']:,} parent links, "
        f"{gm['subdivided']:,} subdivided parts, {gm['indexes']['total']} indexes "
        f"({gm['indexes']['gist']} GiST)",
        f"  {PEER} phases: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in peer["phases_s"].items())
        + f"  | stored {peer['rows']:,} rows, {peer['linked']:,} parent links, "
        f"{peer['subdivided']:,} subdivided parts, {peer['indexes']['total']} indexes "
        f"({peer['indexes']['gist']} GiST)",
        f"  same row count in both databases: {'yes' if same_rows else 'NO'}",
    ]
    print("\n".join(out), flush=True)

    figures.update(
        generate_s=t_gen.marks["end"],
        write_gpkg_s=t_write.marks["end"],
        gpkg_mib=gpkg_mib,
        read_gpkg_s=t_read.marks["end"],
        read_gpkg_raw_pyogrio_s=t_raw.marks["end"],
        validate={
            "seconds": t_val.marks["end"],
            "errors": len(report.errors),
            "peak_rss_growth_bytes": rss["bytes"],
            "peak_rss_method": rss["method"],
        },
        cluster_up_and_migrate_s=t_up.marks["end"],
        gridmap={**gm, "write_s": gm_write, "write_basis": write_basis},
        peer={"name": PEER, **peer, "write_s": peer_write},
        ratio_write_peer_over_gridmap=peer_write / gm_write if gm_write > 0 else None,
        same_row_count=same_rows,
        table=out,
    )
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    log(f"figures written to {shown}")
    if not same_rows:
        log(f"error: {PEER} stored {peer['rows']} rows, gridmap {gm['rows']}, expected {n}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grids", type=int, default=DEFAULT_GRIDS, help="basic grids in the city")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_GRIDS:,} grids (smoke run)")
    parser.add_argument("--seed", type=int, default=20191216)
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    grids = QUICK_GRIDS if args.quick else args.grids
    if grids < 1:
        parser.error("--grids must be at least 1")
    return run_logged(lambda log: run(grids, args.seed, args.results.absolute(), log))


if __name__ == "__main__":
    sys.exit(main())
