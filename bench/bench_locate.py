"""Point location: gridmap's GridIndex.locate beside shapely.STRtree.query(predicate="within").

The issue's acceptance criteria, measured in one run:

* In memory, on two hierarchies (the shipped demo district, 992 grids, and a generated city of
  N grids, default 100,000): uniformly random points in the grids' total bounds (default
  1,000,000, numpy ``default_rng`` with a fixed seed) are located by
  :meth:`gis.locate.GridIndex.locate` and by ``shapely.STRtree(grids).query(points,
  predicate="within")``. Both indexes are built outside the timing (build times are printed).
  The peer is timed twice: the query on points already built (the headline, the strict reading
  of the issue) and ``shapely.points`` plus the query. Every point's answer is compared: the
  peer's (point, grid) pairs become one code per point (the lowest code if several grids hold
  it, "" if none). Target: ratio = peer query time / gridmap time >= 20, no mismatch.
* Over HTTP: a single-point ``GET /api/v1/locate`` against a bare FastAPI endpoint
  (:func:`create_bare_app`), each served by uvicorn in its own subprocess with the same options,
  on loopback, with one keep-alive client and interleaved requests. Target: the difference of
  the medians < 2 ms. The served app runs against a private embedded PostGIS cluster under
  ``var/bench/`` holding the demo boundaries, imported and activated. Skipped (with a message)
  when the endpoint is not there yet, or with ``--skip-http``.

The generated city is cached as GeoParquet under ``var/bench/`` (keyed by grid count, seed and
a hash of gis/synth.py), since generating it takes about a minute. Exits non-zero when a
hierarchy misses the ratio or has a mismatch, or when an HTTP answer is wrong; the HTTP latency
target is reported, not enforced. Stops by itself; the servers and the cluster it starts are
stopped and removed on the way out (also on Ctrl-C or SIGTERM).

    .venv/bin/python bench/bench_locate.py                  # demo + 100,000-grid city + HTTP
    .venv/bin/python bench/bench_locate.py --skip-city      # demo + HTTP, about half a minute
    .venv/bin/python bench/bench_locate.py --skip-http --city-grids 20000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
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
from _common import demo_cluster, run_logged, uvicorn_process  # noqa: E402
from bench_boundaries import nproc, peak_rss_growth  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from gis.io import read_boundaries  # noqa: E402
from gis.locate import GridIndex, grids_with_chain  # noqa: E402

DEMO_FILE = ROOT / "data" / "boundaries" / "hongqiao_demo.gpkg"
CACHE_DIR = ROOT / "var" / "bench"
RESULTS = ROOT / "bench" / "results" / "locate.json"
DEFAULT_POINTS = 1_000_000
DEFAULT_CITY_GRIDS = 100_000
DEFAULT_SEED = 20191216
TARGET_RATIO = 20.0
TARGET_HTTP_MS = 2.0
PEER = "STRtree.query(within)"
PEER_FULL = "shapely.STRtree(grids).query(points, predicate='within')"
LOCATE_PATH = "/api/v1/locate"
BARE_PATH = "/bare"
HTTP_CRS = "cgcs2000"  # the points are CGCS2000 lon/lat, as the index's (the API's default: wgs84)
# The city frame's columns kept in the cache (properties as JSON text: Parquet has no "any").
CACHE_COLUMNS = ("level", "code", "name", "parent_code", "population", "households")


# ---- the bare endpoint (served by uvicorn from this file) -----------------------------------
def create_bare_app() -> FastAPI:
    """FastAPI with one endpoint taking the same query as the locate endpoint and returning a
    small dict: what any FastAPI endpoint costs, the baseline of the HTTP comparison. It is
    ``async def`` like ``GET /api/v1/locate`` (no threadpool hop on either side)."""
    app = FastAPI()

    @app.get(BARE_PATH)
    async def bare(lon: float, lat: float, crs: str = "wgs84") -> dict[str, Any]:
        return {"lon": lon, "lat": lat, "crs": crs, "grid": None}

    return app


# ---- the hierarchies ------------------------------------------------------------------------
def demo_frame() -> gpd.GeoDataFrame:
    return read_boundaries([DEMO_FILE]).frame


def city_frame(grids: int, seed: int, log: Callable[[str], None]) -> tuple[gpd.GeoDataFrame, str]:
    """The generated city, from the GeoParquet cache when there (else generated and cached)."""
    from gis import synth

    source = Path(synth.__file__).read_bytes()
    key = hashlib.sha256(source).hexdigest()[:10]
    path = CACHE_DIR / f"city-{grids}-seed{seed}-synth{key}.parquet"
    shown = path.relative_to(ROOT)
    if path.exists():
        started = time.perf_counter()
        frame = gpd.read_parquet(path)
        log(f"read the cached city from {shown} in {time.perf_counter() - started:.1f} s")
        return frame, f"cached {shown}"
    log(f"generating a city of {grids:,} grids (cached afterwards in {shown}) …")
    started = time.perf_counter()
    frame = synth.generate(synth.city_spec(grids, seed=seed))
    took = time.perf_counter() - started
    log(f"generated in {took:.1f} s")
    keep = frame[[*CACHE_COLUMNS, "geometry"]].copy()
    keep["properties"] = [
        json.dumps(p if isinstance(p, dict) else {}, ensure_ascii=False)
        for p in frame["properties"]
    ]
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    try:
        keep.to_parquet(partial)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return frame, f"generated in {took:.1f} s, cached in {shown}"


# ---- the in-memory comparison ---------------------------------------------------------------
def random_points(bounds: tuple[float, ...], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xmin, ymin, xmax, ymax = bounds
    return rng.uniform(xmin, xmax, n), rng.uniform(ymin, ymax, n)


def peer_codes(pairs: np.ndarray, codes: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """One code per point from the peer's (point, grid) pairs: the lowest code among the grids
    holding the point, "" for none. Also how many points several grids hold."""
    order = np.argsort(codes, kind="stable")
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes))
    best = np.full(n, len(codes), dtype=np.int64)
    np.minimum.at(best, pairs[0], rank[pairs[1]])
    several = int((np.bincount(pairs[0], minlength=n) > 1).sum())
    sorted_codes = np.concatenate([codes[order], np.array([""], dtype=object)])
    return sorted_codes[best], several


def compare(
    name: str,
    frame: gpd.GeoDataFrame,
    n_points: int,
    repeat: int,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    grids = grids_with_chain(frame)
    geoms = np.asarray(grids.geometry.array, dtype=object)
    codes = grids["code"].astype(str).to_numpy(dtype=object)
    log(f"{name}: building GridIndex over {len(grids):,} grids …")
    with peak_rss_growth() as rss:
        started = time.perf_counter()
        index = GridIndex(grids)
        build_s = time.perf_counter() - started
    started = time.perf_counter()
    tree = shapely.STRtree(geoms)
    tree_s = time.perf_counter() - started

    bounds = tuple(float(v) for v in shapely.total_bounds(geoms))
    lon, lat = random_points(bounds, n_points, seed)

    log(f"{name}: GridIndex.locate × {repeat} on {n_points:,} points …")
    ours_s: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        ours = index.locate(lon, lat)
        ours_s.append(time.perf_counter() - started)

    peer_repeat = min(repeat, 3)
    log(f"{name}: shapely.points + {PEER} × {peer_repeat} …")
    points_s: list[float] = []
    query_s: list[float] = []
    pairs: np.ndarray | None = None
    for _ in range(peer_repeat):
        pairs = None  # free the previous run's answer first
        started = time.perf_counter()
        points = shapely.points(lon, lat)
        built = time.perf_counter()
        pairs = tree.query(points, predicate="within")
        done = time.perf_counter()
        del points
        points_s.append(built - started)
        query_s.append(done - built)
    full_s = [a + b for a, b in zip(points_s, query_s, strict=True)]

    assert pairs is not None
    theirs, several = peer_codes(pairs, codes, n_points)
    differ = np.flatnonzero(ours != theirs)
    examples = [
        {"lon": float(lon[i]), "lat": float(lat[i]), "gridmap": ours[i], "peer": theirs[i]}
        for i in differ[:5]
    ]
    ours_med = statistics.median(ours_s)
    query_med = statistics.median(query_s)
    full_med = statistics.median(full_s)
    ratio = query_med / ours_med if ours_med > 0 else float("inf")
    return {
        "name": name,
        "grids": len(grids),
        "points": n_points,
        "bounds": bounds,
        "repeat": repeat,
        "peer_repeat": peer_repeat,
        "gridmap_build_s": build_s,
        "gridmap_build_peak_rss_growth_bytes": rss["bytes"],
        "peak_rss_method": rss["method"],
        "index_stats": index.stats,
        "peer_build_s": tree_s,
        "gridmap_s": ours_s,
        "gridmap_median_s": ours_med,
        "peer_query_s": query_s,
        "peer_query_median_s": query_med,
        "peer_points_s": points_s,
        "peer_points_and_query_s": full_s,
        "peer_points_and_query_median_s": full_med,
        "ratio": ratio,
        "ratio_points_and_query": full_med / ours_med if ours_med > 0 else float("inf"),
        "mismatches": int(differ.size),
        "mismatch_examples": examples,
        "in_no_grid": {
            "gridmap": int((ours == "").sum()),
            "peer": int((theirs == "").sum()),
        },
        "in_several_grids_peer": several,
    }


def duration(value: float) -> str:
    """A duration, in ms below a tenth of a second (index builds span 0.3 ms … 10 s)."""
    return f"{value:8.3f} s " if value >= 0.1 else f"{value * 1000:7.1f} ms"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} points/s" if seconds > 0 else " " * 21


def compare_lines(r: dict[str, Any]) -> list[str]:
    n = r["points"]
    ok = r["ratio"] >= TARGET_RATIO
    stats = r["index_stats"]
    lines = [
        f"{r['name']} — {r['grids']:,} grids, {n:,} points, "
        f"bbox {', '.join(f'{v:.4f}' for v in r['bounds'])}",
        f"  build           gridmap GridIndex {duration(r['gridmap_build_s'])}"
        f"   peer STRtree {duration(r['peer_build_s'])}   (both outside the timings below)",
        f"  locate          gridmap {r['gridmap_median_s']:8.3f} s {rate(n, r['gridmap_median_s'])}"
        f"   {PEER:<26}{r['peer_query_median_s']:8.3f} s "
        f"{rate(n, r['peer_query_median_s'])}   ratio {r['ratio']:6.1f}x   "
        f"(target >= {TARGET_RATIO:.0f}x: {'met' if ok else 'MISSED'})",
        f"  points+locate   gridmap {r['gridmap_median_s']:8.3f} s {rate(n, r['gridmap_median_s'])}"
        f"   {'shapely.points + query':<26}{r['peer_points_and_query_median_s']:8.3f} s "
        f"{rate(n, r['peer_points_and_query_median_s'])}   ratio "
        f"{r['ratio_points_and_query']:6.1f}x",
        f"  answers         mismatches {r['mismatches']:,} of {n:,}; in no grid: gridmap "
        f"{r['in_no_grid']['gridmap']:,}, peer {r['in_no_grid']['peer']:,}; "
        f"in several grids (peer): {r['in_several_grids_peer']:,}",
        f"  index           cell {stats.get('cell_m')} m, {stats.get('root_cells', 0):,} root "
        f"cells, {stats.get('edges', 0):,} edges, simple/split/crowded cells "
        f"{stats.get('simple_cells', 0):,}/{stats.get('split_cells', 0):,}/"
        f"{stats.get('crowded_cells', 0):,}, {stats.get('memory_mb')} MiB; build peak RSS "
        f"+{r['gridmap_build_peak_rss_growth_bytes'] / 2**20:,.0f} MiB",
        "  runs (s)        gridmap "
        + " ".join(f"{s:.3f}" for s in r["gridmap_s"])
        + f"   peer query {' '.join(f'{s:.3f}' for s in r['peer_query_s'])}"
        + f"   peer points {' '.join(f'{s:.3f}' for s in r['peer_points_s'])}",
    ]
    for ex in r["mismatch_examples"]:
        lines.append(
            f"  mismatch        lon {ex['lon']!r} lat {ex['lat']!r}: gridmap "
            f"{ex['gridmap'] or '(none)'}, peer {ex['peer'] or '(none)'}"
        )
    return lines


# ---- HTTP -----------------------------------------------------------------------------------
class HttpSkipped(Exception):
    """The HTTP comparison cannot run (the endpoint is not there yet)."""


@contextlib.contextmanager
def uvicorn_server(
    target: str, app_dir: Path, env: dict[str, str], ready_path: str, log_file: Path
) -> Iterator[str]:
    """``uvicorn --factory target`` on a free loopback port (uvicorn's default HTTP stack, as
    this benchmark was first measured); yields its base URL once ``ready_path`` answers."""
    flags = ("--workers", "1", "--log-level", "warning", "--no-access-log")
    app = ["--factory", target, "--app-dir", str(app_dir)]
    with uvicorn_process(app, env=env, log_file=log_file, ready_path=ready_path, flags=flags) as (
        base,
        _,
    ):
        yield base


@contextlib.contextmanager
def demo_database(log: Callable[[str], None]) -> Iterator[tuple[str, dict[str, str], str]]:
    """A private embedded cluster in var/bench/http-pg holding the demo boundaries, imported
    and activated; yields its URL, server versions and a gridworker's bearer token (every
    request pays authentication, as a phone's does). Destroyed on the way out."""
    from sqlalchemy import text

    from app.services import identity

    with demo_cluster(CACHE_DIR / "http-pg", log) as demo:
        identity.demo_gridworkers(demo.engine)  # answers carry a duty gridworker, as `make run`
        with demo.engine.connect() as conn:
            last = conn.execute(
                text("SELECT max(code) FROM region WHERE version_id = :v AND level = 'grid'"),
                {"v": demo.version.id},
            ).scalar_one()
        token = identity.create_token(demo.engine, "gw-" + last)
        versions = demo.versions()
        demo.engine.dispose()  # the servers open their own connections
        yield demo.url, versions, token


def _grid_code(body: Any) -> str | None:
    """The grid code in a locate answer: ``{"grid": {"code": …}, …}``."""
    if isinstance(body, dict) and isinstance(body.get("grid"), dict):
        code = body["grid"].get("code")
        return None if code is None else str(code)
    return None


def _summary(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
    }


def compare_http(requests: int, warmup: int, seed: int, log: Callable[[str], None]) -> dict:
    import httpx2 as httpx

    grids = grids_with_chain(demo_frame())
    index = GridIndex(grids)
    # Points inside grids (uniform in the bounds, kept where a grid holds them), each with the
    # code the index gives it; the first is a grid's point_on_surface, checked before timing.
    lon, lat = random_points(index.bounds, 4 * (requests + warmup), seed + 1)
    inside = index.locate(lon, lat) != ""
    lon, lat = lon[inside][: requests + warmup], lat[inside][: requests + warmup]
    probe = shapely.point_on_surface(grids.geometry.iloc[0])
    lon[0], lat[0] = probe.x, probe.y
    expected = index.locate(lon, lat)
    if expected[0] != grids["code"].iloc[0]:
        raise RuntimeError(
            f"point_on_surface of grid {grids['code'].iloc[0]} located in {expected[0]!r}"
        )

    work = CACHE_DIR / "http"
    work.mkdir(parents=True, exist_ok=True)
    with demo_database(log) as (url, versions, token):
        env = {
            **os.environ,
            "GRIDMAP_DATABASE_URL": url,
            "GRIDMAP_VAR_DIR": str(work / "var"),
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        log("starting uvicorn: app.main:create_app and the bare app …")
        with (
            uvicorn_server("app.main:create_app", ROOT, env, "/health", work / "app.log") as app,
            uvicorn_server(
                "bench_locate:create_bare_app", HERE, env, f"{BARE_PATH}?lon=0&lat=0",
                work / "bare.log",
            ) as bare,
            httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as client,
        ):  # fmt: skip
            paths = client.get(app + "/openapi.json").json().get("paths", {})
            query = f"lon={float(lon[0])!r}&lat={float(lat[0])!r}&crs={HTTP_CRS}"
            first = client.get(f"{app}{LOCATE_PATH}?{query}")
            if first.status_code == 404 and LOCATE_PATH not in paths:
                raise HttpSkipped(
                    f"GET {LOCATE_PATH} answers 404 and the app's OpenAPI has no such path: "
                    "the endpoint is not there yet"
                )
            body = first.json() if "json" in first.headers.get("content-type", "") else None
            if first.status_code != 200 or _grid_code(body) != expected[0]:
                raise RuntimeError(
                    f"GET {LOCATE_PATH}?{query} (inside grid {expected[0]}) answered "
                    f"{first.status_code}: {first.text[:500]}"
                )
            log(
                f"GET {LOCATE_PATH}?{query} → 200, grid {expected[0]} as expected; "
                f"{warmup} warm-up + {requests} timed requests to each, interleaved …"
            )
            urls = [
                (
                    f"{app}{LOCATE_PATH}?lon={x!r}&lat={y!r}&crs={HTTP_CRS}",
                    f"{bare}{BARE_PATH}?lon={x!r}&lat={y!r}&crs={HTTP_CRS}",
                )
                for x, y in zip(lon.tolist(), lat.tolist(), strict=True)
            ]
            times: dict[str, list[float]] = {"locate": [], "bare": []}
            answers: list[tuple[int, int, bytes]] = []
            errors = 0
            for i, (u_locate, u_bare) in enumerate(urls):
                # Alternate which goes first, so neither always follows the other.
                order = (("locate", u_locate), ("bare", u_bare))
                for which, u in order if i % 2 == 0 else order[::-1]:
                    started = time.perf_counter()
                    response = client.get(u)
                    took = time.perf_counter() - started
                    if i >= warmup:
                        times[which].append(took)
                    if which == "locate":
                        answers.append((i, response.status_code, response.content))
                    elif response.status_code != 200:
                        errors += 1
    wrong = []
    for i, status, content in answers:
        code = _grid_code(json.loads(content)) if status == 200 else None
        if status != 200 or code != expected[i]:
            wrong.append(
                {
                    "lon": float(lon[i]),
                    "lat": float(lat[i]),
                    "status": status,
                    "expected": expected[i],
                    "got": code,
                }
            )
    loc, bar = _summary(times["locate"]), _summary(times["bare"])
    return {
        "requests": requests,
        "warmup": warmup,
        "server": versions,
        "uvicorn": "1 worker, 127.0.0.1, --log-level warning, --no-access-log",
        "locate": loc,
        "bare": bar,
        "median_difference_ms": loc["median_ms"] - bar["median_ms"],
        "wrong_answers": len(wrong) + errors,
        "wrong_examples": wrong[:5],
    }


def http_lines(h: dict[str, Any]) -> list[str]:
    diff = h["median_difference_ms"]
    met = diff < TARGET_HTTP_MS
    loc, bar = h["locate"], h["bare"]
    return [
        f"HTTP — demo district in PostgreSQL {h['server']['postgres']} / PostGIS "
        f"{h['server']['postgis']}; uvicorn {h['uvicorn']}; one keep-alive client, "
        f"{h['requests']:,} interleaved requests to each after {h['warmup']} warm-up",
        f"  GET {LOCATE_PATH:<17}median {loc['median_ms']:6.2f} ms   p95 {loc['p95_ms']:6.2f} ms"
        f"   mean {loc['mean_ms']:6.2f} ms   min {loc['min_ms']:6.2f} ms",
        f"  GET {BARE_PATH + ' (bare)':<17}median {bar['median_ms']:6.2f} ms   p95 "
        f"{bar['p95_ms']:6.2f} ms   mean {bar['mean_ms']:6.2f} ms   min {bar['min_ms']:6.2f} ms",
        f"  locate adds {diff:.2f} ms median over the bare endpoint (target < "
        f"{TARGET_HTTP_MS:.0f} ms: {'met' if met else 'MISSED'}); wrong answers "
        f"{h['wrong_answers']:,} of {h['requests'] + h['warmup']:,}",
        *(
            f"  wrong           lon {w['lon']!r} lat {w['lat']!r}: status {w['status']}, "
            f"expected {w['expected']}, got {w['got']}"
            for w in h["wrong_examples"]
        ),
    ]


# ---- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    figures: dict[str, Any] = {
        "benchmark": "locate",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "shapely": shapely.__version__,
        "geos": shapely.geos_version_string,
        "numpy": np.__version__,
        "points": args.points,
        "repeat": args.repeat,
        "seed": args.seed,
        "target_ratio": TARGET_RATIO,
        "target_http_ms": TARGET_HTTP_MS,
        "hierarchies": [],
    }
    peer_repeat = min(args.repeat, 3)
    header = (
        f"locate bench — nproc {nproc()}, {dt.date.today().isoformat()}, shapely "
        f"{shapely.__version__} / GEOS {shapely.geos_version_string}; {args.points:,} uniform "
        f"random points in each hierarchy's grid bounds (seed {args.seed}); median of "
        f"{args.repeat} runs (peer {peer_repeat}); peer = {PEER_FULL}; "
        "ratio = peer time / gridmap time"
    )
    print(header, flush=True)
    out = [header]
    failures: list[str] = []

    hierarchies: list[tuple[str, Callable[[], gpd.GeoDataFrame]]] = [("hongqiao demo", demo_frame)]
    if not args.skip_city:

        def city() -> gpd.GeoDataFrame:
            frame, origin = city_frame(args.city_grids, args.seed, log)
            figures["city_source"] = origin
            return frame

        hierarchies.append((f"generated city ({args.city_grids:,} grids)", city))
    for name, load in hierarchies:
        frame = load()
        result = compare(name, frame, args.points, args.repeat, args.seed, log)
        del frame
        figures["hierarchies"].append(result)
        lines = compare_lines(result)
        print("\n".join(lines), flush=True)
        out += lines
        if result["ratio"] < TARGET_RATIO:
            failures.append(f"{name}: ratio {result['ratio']:.1f}x < {TARGET_RATIO:.0f}x")
        if result["mismatches"]:
            failures.append(f"{name}: {result['mismatches']:,} mismatches")

    if args.skip_http:
        lines = ["HTTP — skipped (--skip-http)"]
    else:
        try:
            http = compare_http(args.http_requests, args.http_warmup, args.seed, log)
        except HttpSkipped as exc:
            lines = [f"HTTP — skipped: {exc}"]
            figures["http"] = {"skipped": str(exc)}
        except RuntimeError as exc:  # a server that fails to start or answers wrongly
            lines = [f"HTTP — error: {exc}"]
            figures["http"] = {"error": str(exc)}
            failures.append("HTTP: error")
        else:
            figures["http"] = http
            lines = http_lines(http)
            if http["wrong_answers"]:
                failures.append(f"HTTP: {http['wrong_answers']:,} wrong answers")
    print("\n".join(lines), flush=True)
    out += lines
    if failures:
        lines = [f"FAILED: {f}" for f in failures]
        print("\n".join(lines), flush=True)
        out += lines

    figures.update(failures=failures, table=out)
    results = args.results.absolute()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n")
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    log(f"figures written to {shown}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=DEFAULT_POINTS, help="random points")
    parser.add_argument("--city-grids", type=int, default=DEFAULT_CITY_GRIDS,
                        help="basic grids in the generated city")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (peer: at most 3)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="city and points seed")
    parser.add_argument("--skip-city", action="store_true", help="only the demo district")
    parser.add_argument("--skip-http", action="store_true", help="no HTTP comparison")
    parser.add_argument("--http-requests", type=int, default=2000, help="timed, to each")
    parser.add_argument("--http-warmup", type=int, default=200, help="untimed, to each")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if args.points < 1 or args.repeat < 1 or args.city_grids < 1 or args.http_requests < 1:
        parser.error("--points, --repeat, --city-grids and --http-requests must be at least 1")
    if args.http_warmup < 0:
        parser.error("--http-warmup must not be negative")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
