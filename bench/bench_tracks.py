"""Patrol tracks and coverage: one day of 1,000 gridworkers through gis.tracks, against the naive
all-MovingPandas path.

The issue's target: building one day's tracks and coverage for 1,000 workers (about 2 million
fixes) takes under 60 s. Measured in one run:

* **Data** (generated, not timed). The grids are 32 × 32 squares of 200 m laid out in EPSG:4548
  from 117.1E 39.1N. Worker k walks a correlated random path inside grid k: 0.8–1.4 m/s, a
  heading that drifts, and reflection at the grid's edges. He has 3 m of GPS noise and a fix
  every 15 s over an 8-hour shift starting 08:00 Beijing ± 30 min. Each worker also has three
  pauses of 1–10 minutes (the shorter ones are not stops), one silent phone of 6–20 minutes
  (which splits the track), and 1% of fixes lost (gaps too short to split). Grid k is his own
  grid. The fixes carry ``grid_code``, located with :class:`gis.locate.GridIndex` as the app
  does at intake. That location is timed and printed but lies outside the target.
* **gridmap**: :func:`gis.tracks.daily_tracks`, then :func:`gis.tracks.coverage` with
  ``by="day"``. Both wall and CPU time are printed, because this machine is shared. Target: the
  sum is under 60 s; the benchmark exits 1 when it is missed.
* **peer**: the naive all-MovingPandas path for the same daily tracks, run on a sample of 50
  workers (seeded) and scaled to the full run by the fix count. The steps are a
  ``TrajectoryCollection`` per worker-day in EPSG:4548, ``ObservationGapSplitter`` (5 min),
  ``TrajectoryStopDetector.get_stop_points`` (max_diameter = 2 × 30 m, 3 min),
  ``DouglasPeuckerGeneralizer`` (5 m), ``to_traj_gdf`` for lengths and times, and per
  trajectory the time in the worker's own grid and the grids visited. MovingPandas has no
  coverage, so the peer covers the tracks only, and its ratio is set against
  ``daily_tracks``. gridmap's ``daily_tracks`` is also timed on the same 50 workers, and the
  two answers are compared: segments, lengths, stops, own-grid time, generalised vertices.

    .venv/bin/python bench/bench_tracks.py                 # 1,000 workers, about 30 s
    .venv/bin/python bench/bench_tracks.py --workers 20    # about 10 s (the peer then runs on 20)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import geopandas as gpd  # noqa: E402

with warnings.catch_warnings():  # its optional smoother warns at import (no Stone Soup)
    warnings.simplefilter("ignore", UserWarning)
    import movingpandas as mpd
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import shapely  # noqa: E402
from _common import run_logged  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from pyproj import Transformer  # noqa: E402

from gis.locate import GridIndex  # noqa: E402
from gis.tracks import (  # noqa: E402
    GAP,
    LOCAL_TZ,
    MIN_STOP,
    STOP_RADIUS_M,
    coverage,
    daily_tracks,
)

RESULTS = ROOT / "bench" / "results" / "tracks.json"
METRIC = "EPSG:4548"
ORIGIN = (117.1, 39.1)
SIDE_M = 200.0
LAYOUT = 32  # grids per side
STEP_S = 15
SHIFT_STEPS = 8 * 3600 // STEP_S
TOLERANCE_M = 5.0
TARGET_S = 60.0
SAMPLE = 50
DEFAULT_WORKERS = 1000
DEFAULT_SEED = 20191216


# ---- the day ------------------------------------------------------------------------------
def synth_day(
    workers: int, seed: int
) -> tuple[pd.DataFrame, gpd.GeoDataFrame, dict[str, set[str]]]:
    """Fixes (worker, time, x, y), grids (code, geometry) and own grids, as described above."""
    if not 1 <= workers <= LAYOUT * LAYOUT:
        raise ValueError(f"--workers must be between 1 and {LAYOUT * LAYOUT}")
    rng = np.random.default_rng(seed)
    to_metric = Transformer.from_crs("EPSG:4490", METRIC, always_xy=True)
    to_lonlat = Transformer.from_crs(METRIC, "EPSG:4490", always_xy=True)
    x0, y0 = to_metric.transform(*ORIGIN)
    row, col = np.divmod(np.arange(LAYOUT * LAYOUT), LAYOUT)
    gx, gy = x0 + col * SIDE_M, y0 + row * SIDE_M
    boxes = shapely.segmentize(shapely.box(gx, gy, gx + SIDE_M, gy + SIDE_M), 20.0)
    grids = gpd.GeoDataFrame(
        {"code": [f"G{k:04d}" for k in range(LAYOUT * LAYOUT)]},
        geometry=shapely.transform(
            boxes, lambda c: np.column_stack(to_lonlat.transform(c[:, 0], c[:, 1]))
        ),
        crs="EPSG:4490",
    )

    # All workers step together: one numpy update per 15 s.
    w = workers
    xmin, ymin = gx[:w] + 2.0, gy[:w] + 2.0
    xmax, ymax = xmin + SIDE_M - 4.0, ymin + SIDE_M - 4.0
    px = rng.uniform(xmin + 10, xmax - 10)
    py = rng.uniform(ymin + 10, ymax - 10)
    heading = rng.uniform(0, 2 * np.pi, w)
    speed = rng.uniform(0.8, 1.4, w)
    pause_at = rng.integers(20, SHIFT_STEPS - 60, (w, 3))
    pause_len = rng.integers(4, 41, (w, 3))  # 1 to 10 minutes
    xs = np.empty((SHIFT_STEPS, w))
    ys = np.empty((SHIFT_STEPS, w))
    for step in range(SHIFT_STEPS):
        paused = ((step >= pause_at) & (step < pause_at + pause_len)).any(axis=1)
        heading = heading + rng.normal(0.0, 0.35, w)
        move = np.where(paused, 0.0, speed * STEP_S)
        nx, ny = px + np.cos(heading) * move, py + np.sin(heading) * move
        out_x, out_y = (nx < xmin) | (nx > xmax), (ny < ymin) | (ny > ymax)
        heading = np.where(out_x, np.pi - heading, heading)
        heading = np.where(out_y, -heading, heading)
        px, py = np.where(out_x, px, nx), np.where(out_y, py, ny)
        xs[step], ys[step] = px, py
    xs += rng.normal(0.0, 3.0, xs.shape)
    ys += rng.normal(0.0, 3.0, ys.shape)

    steps = np.arange(SHIFT_STEPS)[:, None]
    gap_at = rng.integers(40, SHIFT_STEPS - 100, w)
    gap_len = rng.integers(24, 81, w)  # 6 to 20 minutes
    keep = ~((steps >= gap_at) & (steps < gap_at + gap_len))
    keep &= rng.random(keep.shape) > 0.01
    s_i, w_i = np.nonzero(keep)
    start = pd.Timestamp("2026-11-23 08:00", tz=LOCAL_TZ).tz_convert("UTC")
    offset = rng.integers(-120, 121, w)  # ± 30 minutes in 15 s steps
    names = np.array([f"w{k:04d}" for k in range(w)], dtype=object)
    lon, lat = to_lonlat.transform(xs[s_i, w_i], ys[s_i, w_i])
    fixes = pd.DataFrame(
        {
            "worker": names[w_i],
            "time": start + pd.to_timedelta((s_i + offset[w_i]) * STEP_S, unit="s"),
            "x": lon,
            "y": lat,
        }
    )
    fixes = fixes.sort_values(["worker", "time"], kind="stable").reset_index(drop=True)
    own = {str(names[k]): {f"G{k:04d}"} for k in range(w)}
    return fixes, grids, own


# ---- the peer: MovingPandas all the way ----------------------------------------------------
def peer_tracks(
    fixes: pd.DataFrame, own: dict[str, set[str]]
) -> tuple[dict[str, float], dict[str, Any]]:
    """The naive MovingPandas path for what daily_tracks returns; step times and answers."""
    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = fixes.copy()
        frame["day"] = frame["time"].dt.tz_convert(LOCAL_TZ).dt.date.astype(str)
        frame["traj"] = frame["worker"] + "/" + frame["day"]
        frame["t"] = frame["time"].dt.tz_convert("UTC").dt.tz_localize(None)
        points = gpd.GeoDataFrame(
            frame[["traj", "worker", "t", "grid_code"]],
            geometry=gpd.points_from_xy(frame["x"], frame["y"]),
            crs="EPSG:4490",
        ).to_crs(METRIC)
        collection = mpd.TrajectoryCollection(points, "traj", obj_id_col="worker", t="t")
        lap("TrajectoryCollection")
        split = mpd.ObservationGapSplitter(collection).split(gap=GAP.to_pytimedelta())
        lap("ObservationGapSplitter")
        stops = mpd.TrajectoryStopDetector(split).get_stop_points(
            max_diameter=2 * STOP_RADIUS_M, min_duration=MIN_STOP.to_pytimedelta()
        )
        lap("TrajectoryStopDetector")
        general = mpd.DouglasPeuckerGeneralizer(split).generalize(tolerance=TOLERANCE_M)
        lines = gpd.GeoSeries(
            [traj.to_linestring() for traj in general.trajectories], crs=METRIC
        ).to_crs("EPSG:4490")
        lap("DouglasPeuckerGeneralizer")
        table = split.to_traj_gdf()
        own_s: dict[str, float] = {}
        visited: dict[str, set[str]] = {}
        for traj in split.trajectories:
            df = traj.df
            worker = str(df["worker"].iloc[0])
            key = str(traj.id).rsplit("_", 1)[0]
            following = df.index.to_series().diff().shift(-1).dt.total_seconds().fillna(0.0)
            mine = df["grid_code"].isin(own.get(worker, set()))
            own_s[key] = own_s.get(key, 0.0) + float(following[mine].sum())
            visited.setdefault(key, set()).update(df["grid_code"].dropna().astype(str))
        lap("to_traj_gdf + own-grid time + grids visited")
    answers = {
        "stop_ranges": [
            (str(traj_id).split("/", 1)[0], start, end)
            for traj_id, start, end in zip(
                stops.get("traj_id", []),
                stops.get("start_time", []),
                stops.get("end_time", []),
                strict=True,
            )
        ],
        "segments": len(split),
        "length_m": float(table["length"].sum()),
        "stops": len(stops),
        "own_grid_s": float(sum(own_s.values())),
        "vertices": int(shapely.get_num_coordinates(np.asarray(lines.array)).sum()),
    }
    return times, answers


# ---- running --------------------------------------------------------------------------------
def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "gis/tracks.py")
    return rev + (" + uncommitted gis/tracks.py" if dirty else "")


def timed(call: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    load_start = os.getloadavg()[0]
    log(f"generating one day for {args.workers:,} workers …")
    (fixes, grids, own), gen_s, _ = timed(lambda: synth_day(args.workers, args.seed))
    (codes, locate_s, _) = timed(
        lambda: GridIndex(grids).locate(fixes["x"].to_numpy(), fixes["y"].to_numpy())
    )
    fixes["grid_code"] = np.where(codes == "", None, codes)

    log("daily_tracks …")
    (segments, stops, summaries), tracks_s, tracks_cpu = timed(
        lambda: daily_tracks(fixes, own=own, tolerance_m=TOLERANCE_M)
    )
    log("coverage(by='day') …")
    cover, cover_s, cover_cpu = timed(lambda: coverage(segments, grids, fixes, by="day"))
    total_s, total_cpu = tracks_s + cover_s, tracks_cpu + cover_cpu
    met = total_s < TARGET_S

    rng = np.random.default_rng(args.seed)
    names = np.array(sorted(own))
    sample = set(rng.choice(names, size=min(SAMPLE, len(names)), replace=False))
    sample_fixes = fixes[fixes["worker"].isin(sample)].reset_index(drop=True)
    scale = len(fixes) / len(sample_fixes)
    sample_own = {k: v for k, v in own.items() if k in sample}
    log(f"gridmap daily_tracks on the {len(sample)}-worker sample …")
    (s_seg, s_stops, s_sum), ours_sample_s, _ = timed(
        lambda: daily_tracks(sample_fixes, own=sample_own, tolerance_m=TOLERANCE_M)
    )
    log(f"peer: MovingPandas on the {len(sample)}-worker sample (about 20 s) …")
    (peer_steps, peer_answers), peer_s, peer_cpu = timed(
        lambda: peer_tracks(sample_fixes, sample_own)
    )
    ours_answers = {
        "segments": len(s_seg),
        "length_m": float(s_seg["length_m"].sum()),
        "stops": len(s_stops),
        "own_grid_s": float(sum(s.own_grid_s for s in s_sum)),
        "vertices": int(shapely.get_num_coordinates(np.asarray(s_seg.geometry.array)).sum()),
    }
    peer_scaled = peer_s * scale
    # Every stop MovingPandas finds should lie inside one of ours (see gis.tracks on stops);
    # count, for each of ours, the MovingPandas stops it holds.
    ranges = peer_answers.pop("stop_ranges")
    theirs_by_worker: dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]] = {}
    for worker, start, end in ranges:
        theirs_by_worker.setdefault(worker, []).append((start, end))
    held: list[int] = []
    for worker, start, end in zip(
        s_stops["worker"],
        s_stops["start"].dt.tz_localize(None),
        s_stops["end"].dt.tz_localize(None),
        strict=True,
    ):
        pairs = theirs_by_worker.get(str(worker), [])
        held.append(sum(start <= a and b <= end for a, b in pairs))
    holds = np.asarray(held, dtype=np.int64)
    inside = int(holds.sum())
    lone = s_stops["duration_s"].to_numpy()[holds == 0]
    lone_text = (
        f"{len(lone)} hold none ({lone.min() / 60:.1f}–{lone.max() / 60:.1f} min)"
        if len(lone)
        else "none holds none"
    )

    day_rows = cover[cover["visits"] > 0]
    lines = [
        f"tracks bench — {args.workers:,} workers, {len(fixes):,} fixes (one day, a fix every "
        f"{STEP_S} s over an 8-hour shift from 08:00 Beijing ± 30 min), {len(grids):,} grids "
        f"({LAYOUT}×{LAYOUT}, {SIDE_M:.0f} m, from {ORIGIN[0]}E {ORIGIN[1]}N), nproc {nproc()}, "
        f"{dt.date.today()}, commit {_commit()}; MovingPandas {mpd.__version__}, "
        f"shapely {shapely.__version__}; load average {load_start:.2f} at the start",
        f"  generate          {gen_s:7.2f} s   (not timed)",
        f"  locate            {locate_s:7.2f} s   GridIndex.locate, done by the app at intake "
        f"(outside the target)",
        f"  daily_tracks      {tracks_s:7.2f} s   CPU {tracks_cpu:6.2f} s   {len(segments):,} "
        f"segments, {len(stops):,} stops, {len(summaries):,} worker-days",
        f"  coverage(day)     {cover_s:7.2f} s   CPU {cover_cpu:6.2f} s   {len(cover):,} "
        f"grid-days ({len(day_rows):,} visited), mean covered share "
        f"{cover['covered_share'].mean():.3f}, {int(cover['visits'].sum()):,} visits",
        f"  total             {total_s:7.2f} s   CPU {total_cpu:6.2f} s   "
        f"target < {TARGET_S:.0f} s: {'met' if met else 'MISSED'}",
        f"peer — naive all-MovingPandas daily tracks on {len(sample)} workers "
        f"({len(sample_fixes):,} fixes), scaled ×{scale:.2f} by fix count to the full run",
    ]
    for name, seconds in peer_steps.items():
        lines.append(f"  {name:<44} {seconds:7.2f} s   scaled {seconds * scale:8.1f} s")
    lines += [
        f"  {'total':<44} {peer_s:7.2f} s   scaled {peer_scaled:8.1f} s   CPU {peer_cpu:.2f} s",
        f"  ratio peer / gridmap daily_tracks: full run {peer_scaled / tracks_s:.0f}x "
        f"(scaled {peer_scaled:.1f} s vs measured {tracks_s:.2f} s); same {len(sample)} workers "
        f"{peer_s / ours_sample_s:.0f}x ({peer_s:.2f} s vs {ours_sample_s:.2f} s)",
        "  answers on the sample (gridmap / MovingPandas): "
        f"segments {ours_answers['segments']:,} / {peer_answers['segments']:,}; "
        f"length {ours_answers['length_m'] / 1000:,.3f} / "
        f"{peer_answers['length_m'] / 1000:,.3f} km; "
        f"stops {ours_answers['stops']:,} / {peer_answers['stops']:,} ({inside:,} of "
        f"MovingPandas' inside one of gridmap's; of gridmap's, {lone_text}, "
        f"{int((holds > 1).sum())} hold two or more); own-grid time "
        f"{ours_answers['own_grid_s'] / 3600:,.3f} / {peer_answers['own_grid_s'] / 3600:,.3f} h; "
        f"generalised vertices {ours_answers['vertices']:,} / {peer_answers['vertices']:,}",
        f"load average {os.getloadavg()[0]:.2f} at the end (1 minute; nproc {nproc()})",
    ]
    if not met:
        lines.append(f"FAILED: total {total_s:.1f} s >= {TARGET_S:.0f} s")
    print("\n".join(lines), flush=True)

    figures = {
        "benchmark": "tracks",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "commit": _commit(),
        "seed": args.seed,
        "workers": args.workers,
        "fixes": len(fixes),
        "grids": len(grids),
        "seconds": {
            "generate": gen_s,
            "locate": locate_s,
            "daily_tracks": tracks_s,
            "coverage_day": cover_s,
            "total": total_s,
            "cpu_total": total_cpu,
        },
        "target_s": TARGET_S,
        "met": met,
        "peer": {
            "sample_workers": len(sample),
            "sample_fixes": len(sample_fixes),
            "scale": scale,
            "steps_s": peer_steps,
            "total_s": peer_s,
            "scaled_s": peer_scaled,
            "gridmap_sample_s": ours_sample_s,
            "answers": {"gridmap": ours_answers, "movingpandas": peer_answers},
            "movingpandas_stops_inside_gridmap_stops": inside,
        },
        "lines": lines,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n")
    return 0 if met else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help=f"gridworkers, one grid each (at most {LAYOUT * LAYOUT})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="data and sample seed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if not 1 <= args.workers <= LAYOUT * LAYOUT:
        parser.error(f"--workers must be between 1 and {LAYOUT * LAYOUT}")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
