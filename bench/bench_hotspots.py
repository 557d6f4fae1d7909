"""Hot spots: gridmap's Gi* pipeline (gis.hotspots, gis.emerging) beside esda's own run.

The issue's target: Gi* with 999 permutations on the 992 demo grids and on a generated city of
100,000 grids, and emerging hot spots over 52 weekly bins on the demo grids, each timed beside
esda's own run on the same input; the project's pipeline adds at most 20 % on top of esda
(ratio = gridmap time / peer time <= 1.20). Measured in one process, with no database:

* **Input** (not timed). The grids are the shipped demo district (992 grids, read with
  ``gis.io.read_boundaries``) and a city from ``gis.synth.generate(city_spec(N))`` (default
  N = 100,000; cached as GeoParquet under ``var/bench/`` like bench_locate's, since generating
  it takes about a minute). Counts: one synthetic year of weekly incident counts per grid,
  Poisson with a mean that follows the grid's population and a mild season, times planted
  clusters (a Gaussian footprint of 250 m around one grid in 165: persistent hot, intensifying,
  diminishing, cold). Gi* runs on the year's totals, emerging hot spots on the 52 weeks.
* **Gi*** (cases 1 and 2). gridmap: ``queen_weights(grids)``, ``gi_star(values, w,
  permutations=999, seed=…)`` and ``gi_bins(z, p, fdr=True)``. Peer: ``libpysal.weights.Queen
  .from_dataframe(grids, use_index=False)`` and ``esda.getisord.G_Local(y, w, transform="B",
  star=True, permutations=999, seed=…)`` with the options gridmap passes (``n_jobs=1``,
  ``keep_simulations=False``). Runs are interleaved, alternating which side goes first (11 a
  side on the demo, one on the city); the medians are compared. The answers must agree: same
  neighbours, z within 1e-9, same permutation p. esda with its own defaults (``n_jobs=-1``,
  ``keep_simulations=True``) is timed once beside, outside the target.
* **Emerging hot spots** (case 3; skipped with a message when ``gis.emerging`` does not
  import). gridmap: ``emerging_hotspots(counts, w, time_window=1)`` on the (992, 52) counts.
  Peer: the same work with the bare libraries: the space-time weights (an area's queen
  neighbours and itself, in its week and the week before) built with scipy as a
  ``libpysal.graph.Graph``, one ``G_Local`` (star, binary, normal approximation) over the
  51,584 area-weeks, and ``pymannkendall.original_test`` on each grid's series of z from the
  second week on (gis.emerging leaves out the first ``time_window`` weeks). The queen weights
  are built once, outside both. The answers must agree within 1e-9: ``space_time_gi``'s z and
  p, and the trend's tau and p.

Each step is timed in wall and CPU time. Both sides run all their work in this process, so CPU
time counts it and little of what other processes do on a shared machine: the target is checked
on the CPU ratio, and the wall ratio is printed beside it.

Exits 1 when a ratio exceeds 1.20 or the answers differ. Writes bench/results/hotspots.json.

    .venv/bin/python bench/bench_hotspots.py            # demo + 100,000-grid city
    .venv/bin/python bench/bench_hotspots.py --quick    # demo + 10,000-grid city, 5 demo runs
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import statistics
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

import esda  # noqa: E402
import geopandas as gpd  # noqa: E402
import libpysal  # noqa: E402
import numpy as np  # noqa: E402
from _common import DEMO_FILE, run_logged  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from bench_locate import city_frame  # noqa: E402
from esda.getisord import G_Local  # noqa: E402
from libpysal.weights import Queen  # noqa: E402

from gis.hotspots import gi_bins, gi_star, queen_weights  # noqa: E402
from gis.io import read_boundaries  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "hotspots.json"
DEFAULT_CITY_GRIDS = 100_000
QUICK_CITY_GRIDS = 10_000
DEFAULT_SEED = 20191216
PERMUTATIONS = 999
WEEKS = 52
TIME_WINDOW = 1
TARGET_RATIO = 1.20
Z_TOLERANCE = 1e-9
CLUSTER_EVERY = 165  # one planted cluster per this many grids
CLUSTER_RADIUS_M = 250.0
PEOPLE_PER_WEEKLY_CASE = 250.0  # a grid's weekly mean = population / this (before clusters)

Log = Callable[[str], None]


# ---- the input ------------------------------------------------------------------------------
def demo_grids() -> gpd.GeoDataFrame:
    frame = read_boundaries([DEMO_FILE]).frame
    return frame[frame["level"] == "grid"].reset_index(drop=True)


def city_grids(grids: int, seed: int, log: Log) -> tuple[gpd.GeoDataFrame, str, float]:
    """The generated city's grids (bench_locate's GeoParquet cache, else generated and cached),
    how they were obtained, and the seconds that took."""
    started = clock()
    frame, origin = city_frame(grids, seed, log)
    took = clock() - started
    frame = frame[frame["level"] == "grid"].reset_index(drop=True)
    return frame, origin, took


def weekly_counts(
    grids: gpd.GeoDataFrame, weeks: int, seed: int
) -> tuple[np.ndarray, dict[str, int]]:
    """(n grids, ``weeks``) Poisson counts: a mean from the population and a mild season, times
    planted clusters (persistent hot ×3, intensifying ×1→×5, diminishing ×5→×1, cold ×0.25)
    with a Gaussian footprint of CLUSTER_RADIUS_M. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n = len(grids)
    population = grids["population"].to_numpy(dtype=np.float64, na_value=0.0)
    base = np.maximum(population, 1.0) / PEOPLE_PER_WEEKLY_CASE
    season = 1.0 + 0.15 * np.sin(2 * np.pi * np.arange(weeks) / 52)
    mean = base[:, None] * season[None, :]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # centroids in lon/lat: fine at a few hundred metres
        centroids = grids.geometry.centroid
    lat0 = float(centroids.y.mean())
    x = centroids.x.to_numpy() * 111_320.0 * np.cos(np.radians(lat0))
    y = centroids.y.to_numpy() * 110_574.0
    ramp = np.arange(weeks) / max(weeks - 1, 1)
    kinds = {
        "persistent": np.full(weeks, 3.0),
        "intensifying": 1.0 + 4.0 * ramp,
        "diminishing": 5.0 - 4.0 * ramp,
        "cold": np.full(weeks, 0.25),
    }
    names = list(kinds)
    planted = dict.fromkeys(names, 0)
    centres = rng.choice(n, size=min(n, max(len(names), n // CLUSTER_EVERY)), replace=False)
    for k, centre in enumerate(centres):
        kind = names[k % len(names)]
        planted[kind] += 1
        d2 = (x - x[centre]) ** 2 + (y - y[centre]) ** 2
        near = np.flatnonzero(d2 < (3 * CLUSTER_RADIUS_M) ** 2)
        foot = np.exp(-d2[near] / (2 * CLUSTER_RADIUS_M**2))
        mean[near] *= 1.0 + (kinds[kind][None, :] - 1.0) * foot[:, None]
    return rng.poisson(mean).astype(np.float64), planted


# ---- timing ---------------------------------------------------------------------------------
def clock() -> float:
    return time.perf_counter()


class Laps:
    """Wall and CPU time (this process) of consecutive steps. Both sides run every step in
    this process (``n_jobs=1``), so CPU time counts all their work and little of the other
    processes on a shared machine; the target is checked on it."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._wall0 = self._wall = time.perf_counter()
        self._cpu0 = self._cpu = time.process_time()

    def lap(self, step: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[step], self.times[f"{step}_cpu"] = wall - self._wall, cpu - self._cpu
        self._wall, self._cpu = wall, cpu

    def done(self) -> dict[str, float]:
        self.times["total"] = self._wall - self._wall0
        self.times["total_cpu"] = self._cpu - self._cpu0
        return self.times


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each step's median (and the total's: not the sum of the steps' medians)."""
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def interleaved(
    repeat: int,
    ours: Callable[[], dict[str, Any]],
    peer: Callable[[], dict[str, Any]],
    log: Log,
    name: str,
) -> tuple[list[dict[str, float]], list[dict[str, float]], dict[str, Any], dict[str, Any]]:
    """``repeat`` runs of each side, alternating which goes first; the step times of every run
    and the last answers of each side."""
    ours_runs: list[dict[str, float]] = []
    peer_runs: list[dict[str, float]] = []
    last: dict[str, dict[str, Any]] = {}
    for k in range(repeat):
        log(f"{name}: run {k + 1}/{repeat} …")
        for side in ("gridmap", "peer") if k % 2 == 0 else ("peer", "gridmap"):
            last.pop(side, None)  # free the previous answer before timing the next
            gc.collect()
            answer = ours() if side == "gridmap" else peer()
            (ours_runs if side == "gridmap" else peer_runs).append(answer.pop("s"))
            last[side] = answer
    return ours_runs, peer_runs, last["gridmap"], last["peer"]


def timing(
    result: dict[str, Any], ours_runs: list[dict[str, float]], peer_runs: list[dict[str, float]]
) -> None:
    """The runs, their medians and the ratios (CPU: the target's; wall: printed beside)."""
    ours, peer = medians(ours_runs), medians(peer_runs)
    result.update(
        gridmap_runs_s=ours_runs,
        peer_runs_s=peer_runs,
        gridmap_s=ours,
        peer_s=peer,
        ratio=ours["total_cpu"] / peer["total_cpu"],
        ratio_wall=ours["total"] / peer["total"],
    )


def step(times: dict[str, float], key: str) -> str:
    return f"{times[key]:8.3f} s (CPU {times[key + '_cpu']:7.3f})"


def runs_text(repeat: int) -> str:
    return f"median of {repeat} interleaved runs a side" if repeat > 1 else "one run a side"


def verdict(r: dict[str, Any]) -> str:
    met = "met" if r["ratio"] <= TARGET_RATIO else "MISSED"
    return (
        f"ratio CPU {r['ratio']:.2f}x (target <= {TARGET_RATIO:.2f}x: {met}), "
        f"wall {r['ratio_wall']:.2f}x"
    )


def runs_lines(r: dict[str, Any]) -> list[str]:
    def totals(runs: list[dict[str, float]], key: str) -> str:
        return " ".join(f"{t[key]:.3f}" for t in runs)

    o, p = r["gridmap_runs_s"], r["peer_runs_s"]
    return [
        f"  runs wall   gridmap {totals(o, 'total')}   peer {totals(p, 'total')}",
        f"  runs CPU    gridmap {totals(o, 'total_cpu')}   peer {totals(p, 'total_cpu')}",
    ]


# ---- cases 1 and 2: Gi* with 999 permutations ------------------------------------------------
def gridmap_gi(grids: gpd.GeoDataFrame, y: np.ndarray, seed: int) -> dict[str, Any]:
    laps = Laps()
    w = queen_weights(grids)
    laps.lap("weights")
    result = gi_star(y, w, permutations=PERMUTATIONS, seed=seed)
    laps.lap("statistic")
    bins = gi_bins(result["z"].to_numpy(), result["p"].to_numpy(), fdr=True)
    laps.lap("bins")
    return {
        "s": laps.done(),
        "w": w,
        "z": result["z"].to_numpy(),
        "p": result["p"].to_numpy(),
        "bins": bins,
    }


def peer_gi(grids: gpd.GeoDataFrame, y: np.ndarray, seed: int) -> dict[str, Any]:
    """libpysal's queen weights and esda's G_Local, called directly with the options gridmap
    passes. Warnings are silenced as gridmap silences them (libpysal warns about islands)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laps = Laps()
        w = Queen.from_dataframe(grids, use_index=False)
        laps.lap("weights")
        g = G_Local(y, w, transform="B", star=True, permutations=PERMUTATIONS, seed=seed,
                    n_jobs=1, keep_simulations=False)  # fmt: skip
        laps.lap("statistic")
    return {
        "s": laps.done(),
        "w": w,
        "z": np.asarray(g.Zs, dtype=np.float64),
        "p": np.asarray(g.p_sim, dtype=np.float64),
    }


def same_neighbours(a: Any, b: Any) -> bool:
    sa, sb = a.sparse.tocsr(), b.sparse.tocsr()
    return bool(sa.shape == sb.shape and (sa != sb).nnz == 0)


def compare_gi(
    name: str, grids: gpd.GeoDataFrame, y: np.ndarray, repeat: int, seed: int, log: Log
) -> dict[str, Any]:
    """Interleaved runs of both sides and their answers compared; then esda's G_Local with its
    own defaults once, on weights built beforehand (the statistic alone, wall time)."""
    ours_runs, peer_runs, ours, peer = interleaved(
        repeat, lambda: gridmap_gi(grids, y, seed), lambda: peer_gi(grids, y, seed), log, name
    )
    n = len(y)
    z_diff = float(np.max(np.abs(ours["z"] - peer["z"])))
    values, counts = np.unique(ours["bins"], return_counts=True)
    result: dict[str, Any] = {
        "name": name,
        "grids": n,
        "links": int(ours["w"].s0) // 2,
        "islands": len(ours["w"].islands),
        "count_sum": int(y.sum()),
        "count_max": int(y.max()),
        "repeat": repeat,
        "same_neighbours": same_neighbours(ours["w"], peer["w"]),
        "z_max_abs_diff": z_diff,
        "p_same": int(np.sum(ours["p"] == peer["p"])),
        "bins": {int(v): int(c) for v, c in zip(values, counts, strict=True)},
    }
    timing(result, ours_runs, peer_runs)
    result["agree"] = bool(
        result["same_neighbours"] and z_diff <= Z_TOLERANCE and result["p_same"] == n
    )
    serial_p = peer["p"]
    del ours, peer
    log(f"{name}: esda G_Local with its defaults (n_jobs=-1, keep_simulations=True) …")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = Queen.from_dataframe(grids, use_index=False)
        gc.collect()
        t0 = clock()
        g = G_Local(y, w, transform="B", star=True, permutations=PERMUTATIONS, seed=seed)
        took = clock() - t0
    result["esda_defaults"] = {
        "statistic_s": took,
        "options": "n_jobs=-1, keep_simulations=True",
        "p_same_as_n_jobs_1": int(np.sum(np.asarray(g.p_sim) == serial_p)),
    }
    return result


def bins_text(bins: dict[int, int]) -> str:
    hot = "/".join(f"{bins.get(b, 0):,}" for b in (3, 2, 1))
    cold = "/".join(f"{bins.get(-b, 0):,}" for b in (3, 2, 1))
    return f"hot 99/95/90 % {hot}, cold {cold}, none {bins.get(0, 0):,}"


def gi_lines(r: dict[str, Any], origin: str) -> list[str]:
    o, p = r["gridmap_s"], r["peer_s"]
    d = r["esda_defaults"]
    n = r["grids"]
    agree = "agree" if r["agree"] else "DIFFER"
    return [
        f"Gi* ({PERMUTATIONS} permutations) — {r['name']}: {n:,} grids, {r['links']:,} queen "
        f"links, {r['islands']} islands; {origin}; counts: one year, sum {r['count_sum']:,}, "
        f"max {r['count_max']:,} a grid; {runs_text(r['repeat'])}",
        f"  weights     gridmap queen_weights      {step(o, 'weights')}   "
        f"peer Queen.from_dataframe  {step(p, 'weights')}",
        f"  statistic   gridmap gi_star            {step(o, 'statistic')}   "
        f"peer G_Local               {step(p, 'statistic')}",
        f"  bins        gridmap gi_bins(fdr=True)  {step(o, 'bins')}   peer (none)",
        f"  total       gridmap                    {step(o, 'total')}   "
        f"peer                       {step(p, 'total')}   {verdict(r)}",
        f"  answers     {agree}: neighbours {'same' if r['same_neighbours'] else 'DIFFER'}; "
        f"z max |diff| {r['z_max_abs_diff']:.1e} (tolerance {Z_TOLERANCE:.0e}); permutation p "
        f"same in {r['p_same']:,} of {n:,}; gridmap's bins {bins_text(r['bins'])}",
        *runs_lines(r),
        f"  esda's defaults ({d['options']}): G_Local {d['statistic_s']:.3f} s wall once, not "
        f"in the target (peer G_Local above: {p['statistic']:.3f} s); permutation p same as "
        f"n_jobs=1 in {d['p_same_as_n_jobs_1']:,} of {n:,}",
    ]


# ---- case 3: emerging hot spots over 52 weekly bins -------------------------------------------
def load_emerging() -> tuple[Any, str]:
    """gis.emerging, or None and why it cannot be used."""
    if importlib.util.find_spec("gis.emerging") is None:
        return None, "gis/emerging.py is not there"
    try:
        import gis.emerging as emerging
    except Exception as exc:  # a module being written may fail in any way
        return None, f"import gis.emerging failed: {type(exc).__name__}: {exc}"
    missing = [f for f in ("emerging_hotspots", "space_time_gi") if not hasattr(emerging, f)]
    if missing:
        return None, f"gis.emerging has no {', '.join(missing)}"
    return emerging, ""


def trend_skip(weeks: int, window: int) -> int:
    """The first bins left out of the trend, as gis.emerging leaves them out: they lack the
    ``window`` bins before them, so their z is smaller for the same clustering."""
    return window if weeks - window >= 2 else 0


def space_time_graph(w: Any, weeks: int, window: int) -> Any:
    """The space-time weights as a libpysal Graph over area-major (area, week) nodes: an area's
    queen neighbours and itself, in its week and the ``window`` weeks before (self included:
    Gi*'s own value, weight 1)."""
    import scipy.sparse as sp
    from libpysal.graph import Graph

    space = (w.sparse.tocsr() != 0).astype(np.float64) + sp.identity(w.n, format="csr")
    lags = range(window + 1)
    time_ = sp.diags([np.ones(weeks - d) for d in lags], [-d for d in lags],
                     shape=(weeks, weeks), format="csr")  # fmt: skip
    return Graph.from_sparse(sp.kron(space, time_, format="csr"))


def peer_emerging(counts: np.ndarray, w: Any, window: int) -> dict[str, Any]:
    """The bare libraries: the space-time weights (scipy, libpysal Graph), one esda G_Local over
    every area-week (Gi*, binary, normal approximation) and pymannkendall.original_test on each
    area's series of z."""
    import pymannkendall as mk

    n, weeks = counts.shape
    skip = trend_skip(weeks, window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laps = Laps()
        graph = space_time_graph(w, weeks, window)
        laps.lap("weights")
        g = G_Local(counts.ravel(), graph, transform="B", star=True, permutations=0)
        z = np.asarray(g.Zs, dtype=np.float64).reshape(n, weeks)
        p = 2 * np.asarray(g.p_norm, dtype=np.float64).reshape(n, weeks)
        laps.lap("statistic")
        trends = [mk.original_test(z[a, skip:]) for a in range(n)]
        laps.lap("trend")
    return {
        "s": laps.done(),
        "z": z,
        "p": p,
        "tau": np.array([t.Tau for t in trends], dtype=np.float64),
        "trend_p": np.array([t.p for t in trends], dtype=np.float64),
        "links": int(graph.n_edges),
    }


def gridmap_emerging(emerging: Any, counts: np.ndarray, w: Any, window: int) -> dict[str, Any]:
    laps = Laps()
    frame = emerging.emerging_hotspots(counts, w, time_window=window)
    laps.lap("emerging")
    return {"s": laps.done(), "frame": frame}


def compare_emerging(
    emerging: Any, counts: np.ndarray, w: Any, repeat: int, log: Log
) -> dict[str, Any]:
    name = "emerging hot spots"
    ours_runs, peer_runs, ours, peer = interleaved(
        repeat,
        lambda: gridmap_emerging(emerging, counts, w, TIME_WINDOW),
        lambda: peer_emerging(counts, w, TIME_WINDOW),
        log,
        name,
    )
    log(f"{name}: checking the answers (space_time_gi, untimed) …")
    z, p = emerging.space_time_gi(counts, w, time_window=TIME_WINDOW)
    z, p = np.asarray(z, dtype=np.float64), np.asarray(p, dtype=np.float64)
    frame = ours["frame"]
    tau = frame["trend_tau"].to_numpy(dtype=np.float64)
    trend_p = frame["trend_p"].to_numpy(dtype=np.float64)

    def max_diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")

    result: dict[str, Any] = {
        "name": name,
        "grids": counts.shape[0],
        "weeks": counts.shape[1],
        "time_window": TIME_WINDOW,
        "trend_skips": trend_skip(counts.shape[1], TIME_WINDOW),
        "space_time_links": peer["links"],
        "count_sum": int(counts.sum()),
        "repeat": repeat,
        "z_max_abs_diff": max_diff(z, peer["z"]),
        "p_max_abs_diff": max_diff(p, peer["p"]),
        "tau_max_abs_diff": max_diff(tau, peer["tau"]),
        "trend_p_max_abs_diff": max_diff(trend_p, peer["trend_p"]),
        "categories": {str(k): int(v) for k, v in frame["category"].value_counts().items()},
    }
    timing(result, ours_runs, peer_runs)
    result["agree"] = all(
        result[k] <= Z_TOLERANCE
        for k in ("z_max_abs_diff", "p_max_abs_diff", "tau_max_abs_diff", "trend_p_max_abs_diff")
    )
    return result


def emerging_lines(r: dict[str, Any]) -> list[str]:
    o, p = r["gridmap_s"], r["peer_s"]
    n, weeks = r["grids"], r["weeks"]
    agree = "agree" if r["agree"] else "DIFFER"
    categories = ", ".join(f"{k} {v:,}" for k, v in r["categories"].items())
    return [
        f"emerging hot spots — hongqiao demo: {n:,} grids × {weeks} weekly bins = "
        f"{n * weeks:,} area-weeks, time window {r['time_window']} ({r['space_time_links']:,} "
        f"space-time links, self included), counts sum {r['count_sum']:,}; queen weights built "
        f"once, outside both; {runs_text(r['repeat'])}",
        f"  weights     gridmap (inside the call)                          "
        f"peer space-time Graph      {step(p, 'weights')}",
        f"  statistic   gridmap (inside the call)                          "
        f"peer G_Local on the cube   {step(p, 'statistic')}",
        f"  trend       gridmap (inside the call)                          "
        f"peer pymannkendall × {n:<5,}{step(p, 'trend')}",
        f"  total       gridmap emerging_hotspots  {step(o, 'total')}   "
        f"peer                       {step(p, 'total')}   {verdict(r)}",
        f"  answers     {agree}: space_time_gi z max |diff| {r['z_max_abs_diff']:.1e}, p "
        f"{r['p_max_abs_diff']:.1e}; Mann-Kendall (weeks {r['trend_skips'] + 1}–{weeks}) tau "
        f"{r['tau_max_abs_diff']:.1e}, p {r['trend_p_max_abs_diff']:.1e} (tolerance "
        f"{Z_TOLERANCE:.0e})",
        f"  categories  {categories}",
        *runs_lines(r),
    ]


# ---- running --------------------------------------------------------------------------------
def _commit() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    rev = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "gis/hotspots.py", "gis/emerging.py")
    files = sorted(line.split(maxsplit=1)[-1] for line in dirty.splitlines() if line.strip())
    return rev + (f" + uncommitted {', '.join(files)}" if files else "")


def run(args: argparse.Namespace, log: Log) -> int:
    import pymannkendall

    load_start = os.getloadavg()[0]
    numba = importlib.util.find_spec("numba") is not None
    header = (
        f"hotspots bench — nproc {nproc()}, {dt.date.today()}, commit {_commit()}; esda "
        f"{esda.__version__}, libpysal {libpysal.__version__}, pymannkendall "
        f"{getattr(pymannkendall, '__version__', '?')}, numpy {np.__version__}; numba "
        + ("installed" if numba else "not installed (esda's permutations run in plain Python)")
        + f"; seed {args.seed}; ratio = gridmap time / peer time, the target's on CPU time (both "
        f"sides run in this process, n_jobs=1); load average {load_start:.2f} at the start"
    )
    print(header, flush=True)
    out = [header]
    figures: dict[str, Any] = {
        "benchmark": "hotspots",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "commit": _commit(),
        "numba": numba,
        "seed": args.seed,
        "target_ratio": TARGET_RATIO,
        "cases": [],
    }
    failures: list[str] = []

    def emit(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        out.extend(lines)

    def check(result: dict[str, Any]) -> None:
        figures["cases"].append(result)
        if result["ratio"] > TARGET_RATIO:
            failures.append(f"{result['name']}: ratio {result['ratio']:.2f}x > {TARGET_RATIO}x")
        if not result["agree"]:
            failures.append(f"{result['name']}: the answers differ")

    log("reading the demo grids …")
    demo = demo_grids()
    demo_counts, demo_planted = weekly_counts(demo, WEEKS, args.seed)
    figures["demo_planted_clusters"] = demo_planted
    result = compare_gi("hongqiao demo", demo, demo_counts.sum(axis=1), args.repeat, args.seed,
                        log)  # fmt: skip
    check(result)
    emit(gi_lines(result, f"read from {DEMO_FILE.relative_to(ROOT)}"))

    if args.city_grids:
        city, origin, took = city_grids(args.city_grids, args.seed, log)
        origin = (
            f"generated in {took:.1f} s (not timed)"
            if origin.startswith("generated")
            else f"read from the cache in {took:.1f} s (generation not timed)"
        )
        figures["city_source"] = origin
        log(f"{len(city):,} city grids; drawing their counts …")
        city_counts, city_planted = weekly_counts(city, WEEKS, args.seed)
        figures["city_planted_clusters"] = city_planted
        y = city_counts.sum(axis=1)
        del city_counts
        name = f"generated city ({args.city_grids:,} grids)"
        result = compare_gi(name, city, y, args.city_repeat, args.seed, log)
        check(result)
        emit(gi_lines(result, origin))
        del city, y

    emerging, why = load_emerging()
    if emerging is None:
        emit([f"emerging hot spots — skipped: {why}"])
        figures["emerging_skipped"] = why  # reported, not a failure (as bench_locate's HTTP)
    else:
        w = queen_weights(demo)
        result = compare_emerging(emerging, demo_counts, w, args.repeat, log)
        check(result)
        emit(emerging_lines(result))

    emit([f"load average {os.getloadavg()[0]:.2f} at the end (1 minute; nproc {nproc()})"])
    if failures:
        emit([f"FAILED: {f}" for f in failures])
    figures.update(failures=failures, lines=out)
    results = args.results.absolute()
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(figures, indent=2, ensure_ascii=False, default=str) + "\n")
    shown = results.relative_to(ROOT) if results.is_relative_to(ROOT) else results
    log(f"figures written to {shown}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a {QUICK_CITY_GRIDS:,}-grid city, 5 runs on the demo")  # fmt: skip
    parser.add_argument("--city-grids", type=int, default=None,
                        help=f"basic grids in the generated city (default {DEFAULT_CITY_GRIDS:,}, "
                        f"--quick {QUICK_CITY_GRIDS:,}; 0 skips the city)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=None,
                        help="interleaved runs a side on the demo (11; --quick 5)")  # fmt: skip
    parser.add_argument("--city-repeat", type=int, default=1,
                        help="interleaved runs a side on the city")  # fmt: skip
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="city, counts, permutations")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if args.city_grids is None:
        args.city_grids = QUICK_CITY_GRIDS if args.quick else DEFAULT_CITY_GRIDS
    if args.repeat is None:
        args.repeat = 5 if args.quick else 11
    if args.city_grids < 0 or args.repeat < 1 or args.city_repeat < 1:
        parser.error("--city-grids must not be negative, --repeat and --city-repeat at least 1")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
