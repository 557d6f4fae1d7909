"""Patrol tracks and coverage: a gridworker's day as lines, stops and figures; each grid's
coverage per day or week; grids nobody patrolled.

Inputs are what the app reads from PostGIS. ``fixes`` is a DataFrame with ``worker`` (str),
``time`` (timezone-aware), ``x``/``y`` (CGCS2000 lon/lat, EPSG:4490) and optionally
``grid_code`` (the grid the app located each fix in; None or "" outside every grid). ``grids``
is a GeoDataFrame with ``code`` and polygons in EPSG:4490. Lengths, stop extents, buffers and
areas are measured in ``metric_crs`` (Tianjin: EPSG:4548). A day is a Beijing calendar day
(Asia/Shanghai).

Definitions (where the issue left a choice, the choice is written here):

* **Fixes** are taken in (worker, time) order. A second fix of one worker at the same instant is
  dropped, as MovingPandas' ``Trajectory`` drops duplicate timestamps.
* **Segment**: consecutive fixes of one worker on one local day, cut where two fixes are more
  than ``gap`` apart (``ObservationGapSplitter``'s rule, ``diff > gap``). A track never spans
  local midnight: the one interval that crosses it belongs to neither day. A segment needs two
  fixes (as in ``ObservationGapSplitter``); a lone fix makes no segment, but still counts for
  the grids visited, ``first``/``last`` and coverage visits.
* **Length**: the sum of straight distances between consecutive fixes of a segment in
  ``metric_crs``. It is measured on the raw fixes, not on the generalised line. **Duration**:
  last fix minus first fix of each segment; the day's duration is their sum, so gaps do not
  count.
* **Time in a grid**: the interval from a fix to the next fix of the same segment is spent in
  the grid of the first of the two. ``own_grid_s`` and coverage's ``dwell_min`` both use this
  rule, so a worker's ``own_grid_s`` equals his dwell in his own grids.
* **Stop**: a fix is *stopped* when it belongs to a window of consecutive fixes of its
  segment that lasts at least ``min_stop`` and whose fixes all lie within ``stop_radius_m`` of
  one point (the radius of their minimum enclosing circle in ``metric_crs`` is under
  ``stop_radius_m``). A stop is a maximal run of stopped fixes. MovingPandas'
  ``TrajectoryStopDetector`` instead grows each stop from its earliest start. It also tests
  the diagonal of the minimum rotated rectangle against ``max_diameter``. That rectangle's
  circumcircle encloses the fixes, so every stop MovingPandas finds with ``max_diameter = 2 ×
  stop_radius_m`` lies inside one of ours. The differences, all on purpose:
  - The circle does not depend on how the fixes are oriented.
  - The rule reads the same forwards and backwards.
  - One long pause is never cut in two. MovingPandas cuts it when the approaching fixes that
    began the stop widen its rectangle.
  The price: a drift slower than ``2 × stop_radius_m`` per ``min_stop`` (0.33 m/s with the
  defaults) chains into one stop, whose extent can then exceed the radius. A stop's point is
  the median lon and median lat of its fixes, as in ``get_stop_points``.
* **Generalised line**: Douglas–Peucker in ``metric_crs`` with ``tolerance_m``
  (``shapely.simplify(preserve_topology=False)``, the call ``DouglasPeuckerGeneralizer``
  makes). The line stays within ``tolerance_m`` of the raw track. It is returned in EPSG:4490.
* **Grid of a fix**: the ``grid_code`` column when present; otherwise the fix is located
  against ``grids`` with :class:`gis.locate.GridIndex`. That uses the app's rule: a point on a
  shared edge goes to the grid with the lowest code.

Coverage, per grid and period (a local day, or an ISO week named by its Monday):

* ``covered_share``: area(grid ∩ ⋃ buffer(segment, ``cover_m``)) / area(grid), in
  ``metric_crs``, over the period's segments as given, i.e. the generalised lines from
  :func:`daily_tracks`. The band's edge can therefore be off by up to ``tolerance_m``.
* ``visits``: runs of consecutive fixes of one worker in the grid within one segment. A new run
  starts after a fix elsewhere (another grid or none) or after a gap over ``gap``. Runs are cut
  at local midnight like the tracks, so a week's visits and dwell are the sums of its days'.
* ``dwell_min``: the time spent in the grid by the rule above. ``revisit_h``: mean hours
  between the starts of successive visits by any worker, i.e. (last start − first start) /
  (visits − 1); NaN with fewer than two. ``workers``: distinct workers with a visit.

Why the heavy steps are not MovingPandas' own: they are Python loops per trajectory, per fix
or per row. Measured on this machine with bench/bench_tracks.py, on 50 workers (92,385 fixes)
scaled ×20 to 1,000 workers and 1.85 M fixes:

* building the ``TrajectoryCollection``: 6 s;
* ``ObservationGapSplitter``: 12 s;
* ``TrajectoryStopDetector``: 47 s (25 µs per fix);
* ``DouglasPeuckerGeneralizer``: 278 s (for each fix it searches the simplified line's
  coordinates, so the cost is quadratic per trajectory);
* ``to_traj_gdf`` plus own-grid time and grids visited per trajectory: 22 s.

That is 365 s in all, against 2.4 s for :func:`daily_tracks`. So the same rules run
vectorised over all workers at once: numpy for splits, lengths, times and stop windows, and
shapely 2 for lines, simplification, enclosing circles and buffers. Coverage avoids one GEOS
union per grid for the same reason (see :func:`_covered_area`). MovingPandas stays where it
does well. :func:`trajectories` hands the same segments to a planner as a
``TrajectoryCollection`` (plotting, speeds, interpolation, clipping). The tests use
MovingPandas as the reference for splits, lengths, generalisation and stops.
"""

from __future__ import annotations

import datetime as dt
import itertools
import warnings
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from gis.crs import CGCS2000, to_metric
from gis.hierarchy import DEFAULT_METRIC_CRS
from gis.locate import GridIndex

if TYPE_CHECKING:
    import movingpandas as mpd

__all__ = [
    "COVERAGE_COLUMNS",
    "COVER_M",
    "GAP",
    "LOCAL_TZ",
    "MIN_STOP",
    "SEGMENT_COLUMNS",
    "STOP_COLUMNS",
    "STOP_RADIUS_M",
    "UNPATROLLED_COLUMNS",
    "TrackSummary",
    "coverage",
    "daily_tracks",
    "trajectories",
    "unpatrolled",
]

GAP = pd.Timedelta(minutes=5)
MIN_STOP = pd.Timedelta(minutes=3)
STOP_RADIUS_M = 30.0
COVER_M = 25.0
LOCAL_TZ = "Asia/Shanghai"

SEGMENT_COLUMNS = ("worker", "date", "segment", "start", "end", "length_m", "geometry")
STOP_COLUMNS = ("worker", "date", "start", "end", "duration_s", "geometry")
COVERAGE_COLUMNS = (
    "code",
    "period",
    "covered_share",
    "visits",
    "dwell_min",
    "revisit_h",
    "workers",
)
UNPATROLLED_COLUMNS = ("code", "last_visit", "days_since")

_NS_PER_S = 1_000_000_000
_NS_PER_DAY = 86_400 * _NS_PER_S
# Coverage cuts lines into pieces of this many edges: short enough for tight STRtree boxes
# (nearest-distance queries) and cheap buffers, long enough to keep the piece count low.
_PIECE_EDGES = 16
# Coverage cells of side cover_m are split this many times before GEOS decides the rest.
_CELL_LEVELS = 1


@dataclass(frozen=True)
class TrackSummary:
    """One worker's local day.

    ``segments`` counts the segments with at least two fixes. ``length_m`` and ``duration_s``
    are their sums (gaps not counted). ``own_grid_s`` is the time spent in the worker's own
    grids. ``grids_visited`` lists the codes of every grid a fix of the day lay in, sorted.
    ``first`` and ``last`` are the day's first and last fix (UTC), lone fixes included.
    """

    worker: str
    date: dt.date
    segments: int
    length_m: float
    duration_s: float
    own_grid_s: float
    grids_visited: tuple[str, ...]
    stops: int
    first: pd.Timestamp
    last: pd.Timestamp


# ---- preparing the fixes --------------------------------------------------------------------


@dataclass
class _Fixes:
    """The fixes as positional arrays, sorted by (worker, time), duplicates dropped."""

    workers: NDArray[np.object_]  # worker names, sorted; ``w`` indexes them
    w: NDArray[np.intp]
    t: NDArray[np.int64]  # UTC nanoseconds
    day: NDArray[np.int64]  # local day number (days since 1970-01-01 in Beijing wall time)
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    codes: NDArray[np.object_]  # grid codes; ``g`` indexes them, -1 = in no grid
    g: NDArray[np.intp]
    seg: NDArray[np.intp]  # run of one worker, one local day, no gap over ``gap``
    step: NDArray[np.bool_]  # fix i and fix i + 1 are in the same run (the interval counts)

    @property
    def n(self) -> int:
        return len(self.t)


@lru_cache(maxsize=16)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(source, target, always_xy=True)


def _prepare(
    fixes: pd.DataFrame,
    *,
    gap: pd.Timedelta,
    grids: gpd.GeoDataFrame | None,
    metric_crs: str,
    need_grid: bool = True,
) -> _Fixes:
    missing = [c for c in ("worker", "time", "x", "y") if c not in fixes.columns]
    if missing:
        raise ValueError(f"fixes need the columns worker, time, x, y; missing: {missing}")
    times = pd.DatetimeIndex(fixes["time"])
    if len(times) and times.tz is None:
        raise ValueError("fix times must be timezone-aware (UTC)")
    if len(times) and times.hasnans:
        raise ValueError(f"{int(times.isna().sum())} fixes have no time")
    t = times.tz_convert("UTC").as_unit("ns").asi8 if len(times) else np.empty(0, np.int64)
    w, workers = pd.factorize(fixes["worker"], sort=True)
    if (w < 0).any():
        raise ValueError(f"{int((w < 0).sum())} fixes have no worker")
    lon = fixes["x"].to_numpy(dtype=np.float64)
    lat = fixes["y"].to_numpy(dtype=np.float64)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise ValueError("fix coordinates must be finite")

    order = np.lexsort((t, w))
    w, t, lon, lat = w[order], t[order], lon[order], lat[order]
    # MovingPandas keeps the first of two fixes at one instant; so do we.
    keep = np.r_[True, (w[1:] != w[:-1]) | (t[1:] != t[:-1])]
    if not keep.all():
        order, w, t, lon, lat = order[keep], w[keep], t[keep], lon[keep], lat[keep]

    local = pd.DatetimeIndex(t.view("M8[ns]")).tz_localize("UTC").tz_convert(LOCAL_TZ)
    day = local.tz_localize(None).asi8 // _NS_PER_DAY

    if "grid_code" in fixes.columns:
        raw = fixes["grid_code"].to_numpy(dtype=object)[order]
        raw = np.where(pd.isna(raw) | (raw == ""), None, raw)
        g, codes = pd.factorize(raw, sort=True)
        codes = np.asarray(codes, dtype=object).astype(str).astype(object)
    elif grids is not None:
        index = GridIndex(grids, metric_crs=metric_crs)
        g, codes = index.locate_index(lon, lat), index.codes
    elif need_grid:
        raise ValueError("fixes have no grid_code column: pass grids= to locate them")
    else:
        g, codes = np.full(len(t), -1, dtype=np.intp), np.empty(0, dtype=object)

    gap_ns = pd.Timedelta(gap).value
    new = np.r_[True, (w[1:] != w[:-1]) | (day[1:] != day[:-1]) | (np.diff(t) > gap_ns)]
    new = new[: len(t)]  # no fixes: no runs
    return _Fixes(
        workers=np.asarray(workers, dtype=object),
        w=w.astype(np.intp),
        t=t,
        day=day,
        lon=lon,
        lat=lat,
        codes=codes,
        g=np.asarray(g, dtype=np.intp),
        seg=np.cumsum(new) - 1,
        step=np.r_[~new[1:], False][: len(t)],
    )


def _dates(day: NDArray[np.int64]) -> NDArray[np.object_]:
    """Local day numbers → datetime.date objects."""
    return np.asarray(day, dtype=np.int64).astype("M8[D]").astype(object)


def _day_numbers(values: Any) -> NDArray[np.int64]:
    """datetime.date / Timestamp values → day numbers (days since 1970-01-01)."""
    stamps = pd.to_datetime(pd.Series(values), errors="raise")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy(dtype="M8[D]").astype(np.int64)


def _utc(ns: NDArray[np.int64]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _starts(new: NDArray[np.bool_]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """First and last position of each run, from a run-start mask."""
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, len(new) - 1]
    return first, last


def _ranges(count: NDArray[np.intp]) -> NDArray[np.intp]:
    """0 … count[k] − 1 for every k, concatenated."""
    return np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)


# ---- stops ----------------------------------------------------------------------------------


def _window_spread(v: NDArray[np.float64], lo: NDArray[np.intp], hi: NDArray[np.intp]) -> Any:
    """max − min of ``v[lo[k] : hi[k] + 1]`` for every k (lo ≤ hi).

    A sparse table built one level at a time: level p holds the max and min of
    ``v[i : i + 2**p]``, and a window is two overlapping blocks of the largest level that fits
    in it.
    Only one level is kept at a time, so memory stays O(n) however long the windows are.
    """
    out = np.empty(len(lo), dtype=np.float64)
    if not len(lo):
        return out
    level = np.frexp((hi - lo + 1).astype(np.float64))[1] - 1  # floor(log2(length))
    top = int(level.max())
    vmax, vmin, span = v, v, 1
    for p in range(top + 1):
        sel = np.flatnonzero(level == p)
        if sel.size:
            a, b = lo[sel], hi[sel] - span + 1
            out[sel] = np.maximum(vmax[a], vmax[b]) - np.minimum(vmin[a], vmin[b])
        if p < top:
            vmax = np.maximum(vmax[:-span], vmax[span:])
            vmin = np.minimum(vmin[:-span], vmin[span:])
            span *= 2
    return out


def _enclosing_radius(x: NDArray[np.float64], y: NDArray[np.float64], lo: Any, hi: Any) -> Any:
    """Radius of the minimum enclosing circle of fixes ``lo[k]..hi[k]`` for every k (GEOS)."""
    size = hi - lo + 1
    member = np.repeat(lo, size) + _ranges(size)
    points = shapely.multipoints(
        np.column_stack([x[member], y[member]]), indices=np.repeat(np.arange(len(lo)), size)
    )
    return shapely.minimum_bounding_radius(points)


def _fit(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    lo: NDArray[np.intp],
    hi: NDArray[np.intp],
    radius: float,
) -> NDArray[np.bool_]:
    """Whether fixes ``lo[k]..hi[k]`` lie within ``radius`` of one point.

    Two bounding boxes, one on the axes and one turned 45°, decide most windows without GEOS.
    If either box has a diagonal under 2r, its circumcircle already holds the fixes. If the
    fixes spread 2r or more along any of the four directions, no circle of radius r holds
    them. Only the windows in between get their minimum enclosing circle from GEOS.
    """
    diameter = 2.0 * radius
    dx, dy = _window_spread(x, lo, hi), _window_spread(y, lo, hi)
    du = _window_spread((x + y) / np.sqrt(2.0), lo, hi)
    dv = _window_spread((x - y) / np.sqrt(2.0), lo, hi)
    fits = (np.hypot(dx, dy) < diameter) | (np.hypot(du, dv) < diameter)
    widest = np.maximum(np.maximum(dx, dy), np.maximum(du, dv))
    maybe = np.flatnonzero(~fits & (widest < diameter))
    if maybe.size:
        fits[maybe] = _enclosing_radius(x, y, lo[maybe], hi[maybe]) < radius
    return fits


def _detect_stops(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    t: NDArray[np.int64],
    seg: NDArray[np.intp],
    min_stop: pd.Timedelta,
    radius: float,
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """First and last fix of every stop (see the module docstring for the rule).

    Only the shortest windows lasting at least ``min_stop`` are tested. These are, for every fix
    j, the window ending at j (from the latest fix ``min_stop`` or more before it) and the
    window starting at j (to the first fix ``min_stop`` or more after it). Take any longer
    window that fits. The window starting at its first fix covers its head, the one ending at
    its last fix covers its tail, and each fix in between ends a shortest window lying inside
    it. All of these fit too, so marking the fixes of the shortest windows that fit marks every
    fix of every window that fits.
    """
    empty = np.empty(0, dtype=np.intp)
    if len(t) < 2:
        return empty, empty
    new = np.r_[True, seg[1:] != seg[:-1]]
    first, _ = _starts(new)
    run = np.cumsum(new) - 1
    seg_first = first[run]
    # Integer microseconds since the segment's start, offset per segment, give one sorted key
    # for all segments: searchsorted then finds each window's other end within its segment.
    rel = (t - t[seg_first]) // 1000
    span = min_stop.value // 1000
    key = run.astype(np.int64) * (int(rel.max()) + span + 1) + rel
    fix = np.arange(len(t))
    back = np.searchsorted(key, key - span, side="right") - 1
    ahead = np.minimum(np.searchsorted(key, key + span, side="left"), len(t) - 1)
    ends = back >= seg_first
    # A window starting at i is also the one ending at ahead[i] when back[ahead[i]] == i (the
    # rule with regular fixes): test it once.
    starts = (run[ahead] == run) & (key[ahead] - key >= span) & (back[ahead] != fix)
    lo = np.r_[back[ends], fix[starts]]
    hi = np.r_[fix[ends], ahead[starts]]
    if not lo.size:
        return empty, empty
    fits = _fit(x, y, lo, hi, radius)
    # Mark the fixes of the fitting windows (a difference array), then take the runs.
    depth = np.bincount(lo[fits], minlength=len(t) + 1) - np.bincount(
        hi[fits] + 1, minlength=len(t) + 1
    )
    stopped = np.cumsum(depth[:-1]) > 0
    begin = stopped & (new | ~np.r_[False, stopped[:-1]])
    end = stopped & (np.r_[new[1:], True] | ~np.r_[stopped[1:], False])
    return np.flatnonzero(begin), np.flatnonzero(end)


# ---- empty frames ---------------------------------------------------------------------------


def _empty_segments() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "worker": pd.Series([], dtype="str"),
            "date": pd.Series([], dtype=object),
            "segment": pd.Series([], dtype=np.int64),
            "start": pd.Series([], dtype="datetime64[ns, UTC]"),
            "end": pd.Series([], dtype="datetime64[ns, UTC]"),
            "length_m": pd.Series([], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([], crs=CGCS2000),
        crs=CGCS2000,
    )


def _empty_stops() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "worker": pd.Series([], dtype="str"),
            "date": pd.Series([], dtype=object),
            "start": pd.Series([], dtype="datetime64[ns, UTC]"),
            "end": pd.Series([], dtype="datetime64[ns, UTC]"),
            "duration_s": pd.Series([], dtype=np.float64),
        },
        geometry=gpd.GeoSeries([], crs=CGCS2000),
        crs=CGCS2000,
    )


# ---- daily tracks ---------------------------------------------------------------------------


def daily_tracks(
    fixes: pd.DataFrame,
    *,
    own: Mapping[str, Collection[str]],
    grids: gpd.GeoDataFrame | None = None,
    metric_crs: str = DEFAULT_METRIC_CRS,
    gap: pd.Timedelta = GAP,
    min_stop: pd.Timedelta = MIN_STOP,
    stop_radius_m: float = STOP_RADIUS_M,
    tolerance_m: float = 5.0,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, list[TrackSummary]]:
    """Each worker's daily tracks, stops and figures (definitions in the module docstring).

    Returns ``(segments, stops, summaries)``:

    * ``segments``: one generalised LineString per (worker, local day, segment), EPSG:4490,
      with columns ``worker, date, segment, start, end, length_m, geometry``. ``segment``
      numbers the segments of a worker's day from 0 in time order. ``length_m`` is the raw
      track's length.
    * ``stops``: one Point per stop, ``worker, date, start, end, duration_s, geometry``.
    * ``summaries``: one :class:`TrackSummary` per worker and local day with at least one fix,
      ordered by worker and date.

    ``own`` maps a worker to the codes of his own grids (a worker missing from it has none).
    ``grids`` is needed only when ``fixes`` has no ``grid_code`` column; the fixes are then
    located against it. ``tolerance_m`` ≤ 0 keeps every fix in the lines.
    """
    f = _prepare(fixes, gap=gap, grids=grids, metric_crs=metric_crs)
    if f.n == 0:
        return _empty_segments(), _empty_stops(), []
    x, y = _transformer(CGCS2000, metric_crs).transform(f.lon, f.lat)
    x, y = np.asarray(x), np.asarray(y)

    # Intervals between consecutive fixes of one segment (attributed to the first fix).
    dt_s = np.zeros(f.n)
    dt_s[:-1] = np.diff(f.t) / _NS_PER_S
    dt_s[~f.step] = 0.0
    dist = np.zeros(f.n)
    dist[:-1] = np.hypot(np.diff(x), np.diff(y))
    dist[~f.step] = 0.0

    seg_first, seg_last = _starts(np.r_[True, f.seg[1:] != f.seg[:-1]])
    wd_new = np.r_[True, (f.w[1:] != f.w[:-1]) | (f.day[1:] != f.day[:-1])]
    wd = np.cumsum(wd_new) - 1
    wd_first, wd_last = _starts(wd_new)
    n_wd = len(wd_first)

    # Segments: those with two fixes or more, numbered from 0 within each worker-day.
    lined = seg_last > seg_first
    kept_first, kept_last = seg_first[lined], seg_last[lined]
    kept_wd = wd[kept_first]
    rank = np.arange(len(kept_first)) - np.searchsorted(kept_wd, kept_wd, side="left")
    seg_length = np.bincount(f.seg, weights=dist, minlength=len(seg_first))[lined]
    in_line = lined[f.seg]
    line_id = np.cumsum(lined) - 1
    lines = shapely.linestrings(
        np.column_stack([x[in_line], y[in_line]]), indices=line_id[f.seg[in_line]]
    )
    if tolerance_m > 0:
        lines = shapely.simplify(lines, tolerance_m, preserve_topology=False)
    to_lonlat = _transformer(metric_crs, CGCS2000)
    lines = shapely.transform(
        lines, lambda c: np.column_stack(to_lonlat.transform(c[:, 0], c[:, 1]))
    )
    day_dates = _dates(f.day[wd_first])
    segments = gpd.GeoDataFrame(
        {
            "worker": pd.Series(f.workers[f.w[kept_first]], dtype="str"),
            "date": day_dates[kept_wd],
            "segment": rank.astype(np.int64),
            "start": _utc(f.t[kept_first]),
            "end": _utc(f.t[kept_last]),
            "length_m": seg_length,
        },
        geometry=gpd.GeoSeries(lines, crs=CGCS2000),
        crs=CGCS2000,
    )

    # Stops.
    s_idx, e_idx = _detect_stops(x, y, f.t, f.seg, min_stop, stop_radius_m)
    if len(s_idx):
        lengths = e_idx - s_idx + 1
        members = np.repeat(s_idx, lengths) + _ranges(lengths)
        label = np.repeat(np.arange(len(s_idx)), lengths)
        medians = (
            pd.DataFrame({"k": label, "lon": f.lon[members], "lat": f.lat[members]})
            .groupby("k", sort=True)[["lon", "lat"]]
            .median()
        )
        stops = gpd.GeoDataFrame(
            {
                "worker": pd.Series(f.workers[f.w[s_idx]], dtype="str"),
                "date": day_dates[wd[s_idx]],
                "start": _utc(f.t[s_idx]),
                "end": _utc(f.t[e_idx]),
                "duration_s": (f.t[e_idx] - f.t[s_idx]) / _NS_PER_S,
            },
            geometry=gpd.GeoSeries(
                shapely.points(medians["lon"].to_numpy(), medians["lat"].to_numpy()),
                crs=CGCS2000,
            ),
            crs=CGCS2000,
        )
    else:
        stops = _empty_stops()

    # Own grids: (worker, grid) pairs as one integer key, looked up for all fixes at once.
    n_codes = len(f.codes)
    code_pos = {code: k for k, code in enumerate(f.codes)}
    worker_pos = {name: k for k, name in enumerate(f.workers)}
    own_keys = np.fromiter(
        (
            worker_pos[name] * n_codes + code_pos[code]
            for name, codes in own.items()
            if name in worker_pos
            for code in codes
            if code in code_pos
        ),
        dtype=np.int64,
    )
    in_own = (f.g >= 0) & np.isin(f.w.astype(np.int64) * n_codes + f.g, own_keys)

    n_segments = np.bincount(kept_wd, minlength=n_wd)
    length = np.bincount(kept_wd, weights=seg_length, minlength=n_wd)
    duration = np.bincount(wd, weights=dt_s, minlength=n_wd)
    own_s = np.bincount(wd, weights=dt_s * in_own, minlength=n_wd)
    n_stops = np.bincount(wd[s_idx], minlength=n_wd)
    located = f.g >= 0
    pairs = np.unique(wd[located].astype(np.int64) * max(n_codes, 1) + f.g[located])
    pair_wd, pair_g = np.divmod(pairs, max(n_codes, 1))
    cuts = np.searchsorted(pair_wd, np.arange(n_wd + 1))
    firsts, lasts = _utc(f.t[wd_first]), _utc(f.t[wd_last])
    summaries = [
        TrackSummary(
            worker=str(f.workers[f.w[wd_first[k]]]),
            date=day_dates[k],
            segments=int(n_segments[k]),
            length_m=float(length[k]),
            duration_s=float(duration[k]),
            own_grid_s=float(own_s[k]),
            grids_visited=tuple(str(c) for c in f.codes[pair_g[cuts[k] : cuts[k + 1]]]),
            stops=int(n_stops[k]),
            first=firsts[k],
            last=lasts[k],
        )
        for k in range(n_wd)
    ]
    return segments, stops, summaries


# ---- coverage -------------------------------------------------------------------------------


def _periods(day: NDArray[np.int64], by: str) -> NDArray[np.int64]:
    """Day numbers → the period's first day number (the day itself, or its ISO week's Monday)."""
    if by == "day":
        return day
    return day - (day + 3) % 7  # 1970-01-01 was a Thursday (ISO weekday index 3)


def _pieces(lines: NDArray[np.object_], edges: int) -> tuple[NDArray[np.object_], NDArray[Any]]:
    """Cut each line into consecutive pieces of at most ``edges`` edges (sharing end points).
    Returns the pieces and the position of each piece's line."""
    coords = shapely.get_coordinates(lines)
    count = shapely.get_num_coordinates(lines)
    first = np.cumsum(count) - count
    n_pieces = np.maximum(1, -(-(count - 1) // edges))
    owner = np.repeat(np.arange(len(lines)), n_pieces)
    start = first[owner] + _ranges(n_pieces) * edges
    stop = np.minimum(start + edges, (first + count - 1)[owner])
    size = stop - start + 1
    vertex = np.repeat(start, size) + _ranges(size)
    pieces = shapely.linestrings(coords[vertex], indices=np.repeat(np.arange(len(size)), size))
    return pieces, owner


class _Cells:
    """Square cells of side ``side`` on one lattice, laid over each of the chosen grids (its
    bounding box, so the count follows the grids' area, not the extent of the whole set). A
    cell inside its grid keeps ``region`` None (the whole cell counts); otherwise ``region`` is
    the cell clipped to the grid. Cells that only touch their grid are dropped."""

    def __init__(self, grids_m: NDArray[np.object_], chosen: NDArray[np.intp], side: float):
        bounds = shapely.bounds(grids_m[chosen])
        ix0, iy0 = np.floor(bounds[:, 0] / side), np.floor(bounds[:, 1] / side)
        nx = (np.ceil(bounds[:, 2] / side) - ix0).astype(np.intp)
        ny = (np.ceil(bounds[:, 3] / side) - iy0).astype(np.intp)
        per_grid = nx * ny
        grid = np.repeat(chosen, per_grid)
        rank = _ranges(per_grid)
        row, col = np.divmod(rank, np.repeat(nx, per_grid))
        x0 = (np.repeat(ix0, per_grid) + col) * side
        y0 = (np.repeat(iy0, per_grid) + row) * side
        cells = shapely.box(x0, y0, x0 + side, y0 + side)
        shapely.prepare(grids_m)
        inside = shapely.contains_properly(grids_m[grid], cells)
        region = np.full(len(grid), None, dtype=object)
        edge = np.flatnonzero(~inside)
        region[edge] = shapely.intersection(cells[edge], grids_m[grid[edge]])
        keep = inside.copy()
        keep[edge] = shapely.area(region[edge]) > 0
        self.side = side
        self.table = {
            "x0": x0[keep],
            "y0": y0[keep],
            "grid": grid[keep],
            "inside": inside[keep],
            "region": region[keep],
        }


def _covered_area(
    cells: _Cells,
    lines_m: NDArray[np.object_],
    n_grids: int,
    cover_m: float,
) -> NDArray[np.float64]:
    """Area (m²) of each grid within ``cover_m`` of any of ``lines_m``.

    Exact, but without unioning every buffer of a grid: on the bench's dense day that union
    took about 30 ms of GEOS per grid, over 30 s for 1,000 grids. Instead each cell of side
    ``cover_m`` is classified by the distance d from its centre to the nearest line (STRtree
    nearest queries), h being the cell's half-diagonal. A cell with d ≤ cover_m − h lies wholly
    within ``cover_m`` of the lines, and a cell with d > cover_m + h has no point within it.
    The undecided cells are split in four and classified again. Only those still undecided get
    the exact GEOS union of the line buffers that reach them, clipped to the cell. On a dense
    day almost every cell is settled by distance.
    """
    area = np.zeros(n_grids)
    usable = ~(shapely.is_empty(lines_m) | shapely.is_missing(lines_m))
    lines_m = lines_m[usable]
    if not len(lines_m) or not len(cells.table["grid"]):
        return area
    pieces, _ = _pieces(lines_m, _PIECE_EDGES)
    tree = shapely.STRtree(pieces)
    # The nearest vertex is never nearer than the nearest line, and a tree of points answers
    # about six times faster than one of lines, so it settles the well-covered cells first.
    vertices = shapely.STRtree(shapely.points(shapely.get_coordinates(lines_m)))
    table, side = cells.table, cells.side
    for level in range(_CELL_LEVELS + 1):
        half = side / np.sqrt(2.0)
        centres = shapely.points(table["x0"] + side / 2, table["y0"] + side / 2)
        d = np.full(len(centres), np.inf)
        if cover_m > half:
            hit, distance = vertices.query_nearest(
                centres, max_distance=cover_m - half, return_distance=True, all_matches=False
            )
            d[hit[0]] = distance
        rest = np.flatnonzero(d > cover_m - half)
        hit, distance = tree.query_nearest(
            centres[rest], max_distance=cover_m + half, return_distance=True, all_matches=False
        )
        d[rest[hit[0]]] = distance
        full = d <= cover_m - half
        cell_area = np.full(int(full.sum()), side * side)
        partial = ~table["inside"][full]
        cell_area[partial] = shapely.area(table["region"][full][partial])
        area += np.bincount(table["grid"][full], weights=cell_area, minlength=n_grids)
        table = {k: v[~full & (d <= cover_m + half)] for k, v in table.items()}
        if level == _CELL_LEVELS or not len(table["grid"]):
            break
        side /= 2
        table = {k: np.tile(v, 4) for k, v in table.items()}
        quarter = np.repeat(np.arange(4), len(table["grid"]) // 4)
        table["x0"] = table["x0"] + side * (quarter % 2)
        table["y0"] = table["y0"] + side * (quarter // 2)
        edge = np.flatnonzero(~table["inside"])
        if len(edge):
            x0, y0 = table["x0"][edge], table["y0"][edge]
            boxes = shapely.box(x0, y0, x0 + side, y0 + side)
            table["region"][edge] = shapely.intersection(boxes, table["region"][edge])
            keep = np.ones(len(table["grid"]), dtype=bool)
            keep[edge] = shapely.area(table["region"][edge]) > 0
            table = {k: v[keep] for k, v in table.items()}
    if not len(table["grid"]):
        return area
    x0, y0 = table["x0"], table["y0"]
    zone = np.where(table["inside"], shapely.box(x0, y0, x0 + side, y0 + side), table["region"])
    zone_i, piece_i = tree.query(zone, predicate="dwithin", distance=cover_m)
    if not len(zone_i):
        return area
    near = np.unique(piece_i)
    buffers = np.empty(len(pieces), dtype=object)
    buffers[near] = shapely.buffer(pieces[near], cover_m)
    parts = shapely.intersection(buffers[piece_i], zone[zone_i])
    bounds = np.r_[0, np.flatnonzero(np.diff(zone_i)) + 1, len(zone_i)]
    # One GEOS union per undecided cell; there is no grouped union in shapely.
    unions = np.array(
        [shapely.union_all(parts[a:b]) for a, b in itertools.pairwise(bounds)], dtype=object
    )
    grid = table["grid"][zone_i[bounds[:-1]]]
    area += np.bincount(grid, weights=shapely.area(unions), minlength=n_grids)
    return area


def coverage(
    tracks: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    fixes: pd.DataFrame,
    *,
    by: str = "day",
    metric_crs: str = DEFAULT_METRIC_CRS,
    cover_m: float = COVER_M,
    gap: pd.Timedelta = GAP,
) -> pd.DataFrame:
    """Patrol coverage per grid and period (definitions in the module docstring).

    ``tracks`` is the segments frame of :func:`daily_tracks` (``date`` and line ``geometry``
    are used). ``fixes`` are the fixes it was made from; without a ``grid_code`` column they are
    located against ``grids``. Fixes in grids missing from ``grids`` are left out. ``by`` is
    ``"day"`` (period = the local date) or ``"week"`` (period = the ISO week's Monday).

    Returns one row per grid of ``grids`` and period: every period that has a track or a fix,
    and every grid, with zeros where nobody came. Columns ``code, period, covered_share,
    visits, dwell_min, revisit_h, workers``, sorted by period and code. ``period`` holds
    ``datetime.date`` values, and ``frame.attrs["by"]`` records ``by``.
    """
    if by not in ("day", "week"):
        raise ValueError(f"by must be 'day' or 'week', not {by!r}")
    if "code" not in grids.columns:
        raise ValueError("the grids need a 'code' column")
    if grids.crs is not None and grids.crs.to_epsg() != 4490:
        grids = grids.to_crs(CGCS2000)
    grids = grids.sort_values("code", kind="stable").reset_index(drop=True)
    codes = grids["code"].astype(str).to_numpy(dtype=object)
    n_grids = len(codes)

    f = _prepare(fixes, gap=gap, grids=grids, metric_crs=metric_crs)
    fix_period = _periods(f.day, by)
    if len(tracks):
        track_period = _periods(_day_numbers(tracks["date"]), by)
    else:
        track_period = np.empty(0, dtype=np.int64)
    periods = np.unique(np.r_[fix_period, track_period])
    n_periods = len(periods)
    size = n_periods * n_grids

    # Visits: runs of one worker in one grid within one segment.
    # The fixes' grid positions in ``codes`` (-1: in no grid, or in a grid not in ``grids``).
    grid = np.r_[pd.Index(codes).get_indexer(f.codes), -1][f.g]
    run_new = np.r_[True, ~f.step[:-1] | (grid[1:] != grid[:-1])][: f.n]
    run = np.cumsum(run_new) - 1
    run_first = np.flatnonzero(run_new)
    dt_s = np.zeros(f.n)
    if f.n:
        dt_s[:-1] = np.diff(f.t) / _NS_PER_S
        dt_s[~f.step] = 0.0
    run_dwell = np.bincount(run, weights=dt_s, minlength=len(run_first))
    in_grid = grid[run_first] >= 0
    run_first, run_dwell = run_first[in_grid], run_dwell[in_grid]
    key = np.searchsorted(periods, fix_period[run_first]) * n_grids + grid[run_first]
    visits = np.bincount(key, minlength=size)
    dwell = np.bincount(key, weights=run_dwell, minlength=size) / 60.0
    start_h = (f.t[run_first] - (f.t.min() if f.n else 0)) / (3600 * _NS_PER_S)
    first_start = np.full(size, np.inf)
    last_start = np.full(size, -np.inf)
    np.minimum.at(first_start, key, start_h)
    np.maximum.at(last_start, key, start_h)
    with np.errstate(invalid="ignore", divide="ignore"):
        revisit = np.where(visits >= 2, (last_start - first_start) / (visits - 1), np.nan)
    worker_keys = np.unique(key.astype(np.int64) * max(len(f.workers), 1) + f.w[run_first])
    workers = np.bincount(worker_keys // max(len(f.workers), 1), minlength=size)

    # Covered share: per period, the grids' area within cover_m of that period's lines.
    grids_m = to_metric(np.asarray(grids.geometry.array, dtype=object), metric_crs)
    grid_area = shapely.area(grids_m)
    covered = np.zeros((n_periods, n_grids))
    if len(tracks) and n_grids:
        lines = tracks.geometry
        if lines.crs is not None and lines.crs.to_epsg() != 4490:
            lines = lines.to_crs(CGCS2000)
        lines_m = np.asarray(lines.set_crs(CGCS2000, allow_override=True).to_crs(metric_crs).array)
        line_period = np.searchsorted(periods, track_period)
        # Cells only over the grids some line comes within cover_m of.
        near = shapely.STRtree(grids_m).query(lines_m, predicate="dwithin", distance=cover_m)
        cells = _Cells(grids_m, np.unique(near[1]), cover_m)
        for p in np.unique(line_period):
            covered[p] = _covered_area(cells, lines_m[line_period == p], n_grids, cover_m)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip((covered / grid_area).ravel(), 0.0, 1.0)

    frame = pd.DataFrame(
        {
            "code": np.tile(codes, n_periods),
            "period": np.repeat(_dates(periods), n_grids),
            "covered_share": share,
            "visits": visits.astype(np.int64),
            "dwell_min": dwell,
            "revisit_h": revisit,
            "workers": workers.astype(np.int64),
        },
        columns=list(COVERAGE_COLUMNS),
    )
    frame["code"] = frame["code"].astype("str")
    frame["period"] = frame["period"].astype(object)
    frame.attrs["by"] = by
    return frame


# ---- unpatrolled grids ----------------------------------------------------------------------


def unpatrolled(
    coverage_frame: pd.DataFrame,
    grids: gpd.GeoDataFrame,
    *,
    days: int,
    today: dt.date,
) -> pd.DataFrame:
    """Grids with no visit in the ``days`` days up to and including ``today``.

    ``coverage_frame`` is a daily :func:`coverage` frame (a weekly one is refused: a week's
    Monday would understate how recent its visits are). A grid is listed when its last visit
    on or before ``today`` is ``days`` or more days back, or when the frame shows no visit at
    all. Grids of ``grids`` missing from the frame count as never visited. Columns ``code,
    last_visit`` (``datetime.date`` or ``NaT``) and ``days_since`` (nullable integer). Never
    visited grids come first, then the longest unvisited; ties by code.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    if coverage_frame.attrs.get("by", "day") != "day":
        raise ValueError("unpatrolled needs a daily coverage frame (coverage(..., by='day'))")
    codes = np.sort(grids["code"].astype(str).to_numpy(dtype=object))
    visited = coverage_frame[coverage_frame["visits"].to_numpy() > 0]
    day = _day_numbers(visited["period"]) if len(visited) else np.empty(0, dtype=np.int64)
    today_n = int(_day_numbers([today])[0])
    past = day <= today_n
    visited_codes = visited["code"].astype(str).to_numpy(dtype=object)[past]
    last = pd.Series(day[past]).groupby(visited_codes).max().reindex(codes)
    last_day = last.to_numpy(dtype=np.float64)  # NaN: no visit in the frame
    seen = ~np.isnan(last_day)
    since = today_n - last_day
    listed = ~seen | (since >= days)
    # Never visited first, then the longest unvisited, then by code (codes are sorted).
    urgency = np.where(seen, since, np.inf)
    pick = np.flatnonzero(listed)
    pick = pick[np.lexsort((pick, -urgency[pick]))]
    return pd.DataFrame(
        {
            "code": pd.Series(codes[pick], dtype="str"),
            "last_visit": pd.Series(
                [
                    _dates(np.array([int(d)]))[0] if ok else pd.NaT
                    for d, ok in zip(last_day[pick], seen[pick], strict=True)
                ],
                dtype=object,
            ),
            "days_since": pd.Series(since[pick]).astype("Int64"),
        },
        columns=list(UNPATROLLED_COLUMNS),
    )


# ---- MovingPandas, for a planner's drill-down -------------------------------------------------


def trajectories(
    fixes: pd.DataFrame,
    *,
    gap: pd.Timedelta = GAP,
) -> mpd.TrajectoryCollection:
    """The segments of :func:`daily_tracks` as a MovingPandas ``TrajectoryCollection``.

    Each trajectory holds one segment's fixes (EPSG:4490 points, raw, not generalised). Its
    id is ``"<worker>/<YYYY-MM-DD>/<segment>"`` and its ``obj_id`` is the worker. Times are
    naive UTC, because MovingPandas drops the time zone (with a warning) anyway. Meant for one
    worker or a few: MovingPandas builds every trajectory in Python, about 7 ms for a
    2,000-fix day on this machine.
    """
    with warnings.catch_warnings():  # its optional smoother warns at import (no Stone Soup)
        warnings.simplefilter("ignore", UserWarning)
        import movingpandas as mpd  # imported here: only this helper needs it

    f = _prepare(fixes, gap=gap, grids=None, metric_crs=DEFAULT_METRIC_CRS, need_grid=False)
    if f.n == 0:
        return mpd.TrajectoryCollection([])
    seg_first, seg_last = _starts(np.r_[True, f.seg[1:] != f.seg[:-1]])
    lined = seg_last > seg_first
    wd_new = np.r_[True, (f.w[1:] != f.w[:-1]) | (f.day[1:] != f.day[:-1])]
    wd = np.cumsum(wd_new) - 1
    kept_wd = wd[seg_first[lined]]
    rank = np.arange(len(kept_wd)) - np.searchsorted(kept_wd, kept_wd, side="left")
    ids = np.array(
        [
            f"{f.workers[f.w[s]]}/{d}/{r}"
            for s, d, r in zip(seg_first[lined], _dates(f.day[seg_first[lined]]), rank, strict=True)
        ],
        dtype=object,
    )
    keep = lined[f.seg]
    label = (np.cumsum(lined) - 1)[f.seg[keep]]
    frame = gpd.GeoDataFrame(
        {
            "traj_id": ids[label],
            "worker": f.workers[f.w[keep]],
            "t": pd.DatetimeIndex(f.t[keep].view("M8[ns]")),
        },
        geometry=shapely.points(f.lon[keep], f.lat[keep]),
        crs=CGCS2000,
    )
    with warnings.catch_warnings():  # MovingPandas 0.23 uses pandas' deprecated inplace=True
        warnings.filterwarnings("ignore", message="The inplace keyword")
        return mpd.TrajectoryCollection(frame, traj_id_col="traj_id", obj_id_col="worker", t="t")
