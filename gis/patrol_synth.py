"""Deterministic synthetic GPS fixes of gridworkers patrolling their own grids.

The demo needs the feed a district's phones send: one gridworker per basic grid (一格一员), a fix
every ~15 s through an 8-hour shift, about 2 million fixes a day for Hongqiao's 992 grids.
:func:`patrol_day` makes a whole day (or the day so far) at once; :class:`LiveFeed` makes the next
fix of every worker on shift, each time it is called, for a wall that keeps moving.

How a worker walks. Waypoints are drawn uniformly inside the own grid shrunk by
:data:`_INSET_M` (people walk the lanes and courtyards, not the boundary line, and the inset keeps
GPS noise from pushing fixes of a walk along the edge into the neighbour) and joined by straight
legs; a leg that leaves the shrunk grid (a concave grid) is dropped and the walk goes on to the
next waypoint. Each leg has its own pace (1.0–1.4 m/s); after a leg the worker stops for 2–10 min
(talking to residents) about once per 40 min of walking; about 1.5 times a day the walk steps
10–35 m past the boundary (into a neighbouring grid, or out of the district at its edge) and comes
back. The geometry is done in the metric CRS (EPSG:4548) and the fixes converted back to CGCS2000
lon/lat, which is WGS84 to well under a metre, so the numbers are the phones' WGS84 too.

The day. Shifts start and end at ``shift`` (local Asia/Shanghai hours) each jittered by up to
±20 min per worker and day. Lunch starts at 11:30–12:30 local and lasts 30–60 min; the phone is
off (no fixes) and the worker does not move, so the walk resumes where it paused. Fix times are
``interval_s`` apart ±3 %.

The fixes. The GPS error is a correlated (AR(1), 60 s time constant) Gaussian of σ 5 m per axis,
as real errors drift rather than jump from fix to fix. The reported accuracy is mostly 3–15 m,
in short episodes (indoors, between tall blocks) 8–95 m with the error grown to match, and ~0.5 %
of fixes are network (Wi-Fi/cell) fixes with accuracy above 100 m, an error of that size and no
speed (NaN, as Android reports none). About 1 fix in 20,000 is an implausible jump 2–5 km away
with an ordinary accuracy, for the ingest's flagging to catch. ``speed_mps`` is the phone's
Doppler speed: the true pace with 0.15 m/s noise.

Determinism. Every worker's day draws from its own generator, seeded by (``seed``, day, worker
name), and its shift and lunch from another; so a worker's day does not depend on the others,
on the order of ``workers`` or on ``until``, and :class:`LiveFeed` uses the same shift and lunch
windows as :func:`patrol_day` for the same seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Mapping, Sequence
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from pyproj import Transformer

from gis.crs import CGCS2000, to_metric
from gis.hierarchy import DEFAULT_METRIC_CRS

__all__ = ["FIX_COLUMNS", "LOCAL_TZ", "LiveFeed", "patrol_day"]

LOCAL_TZ = ZoneInfo("Asia/Shanghai")
FIX_COLUMNS = ("worker", "time", "lon", "lat", "accuracy_m", "speed_mps", "client_id")

_SHIFT_JITTER_S = 20 * 60
_LUNCH_START_H = (11.5, 12.5)  # local
_LUNCH_S = (30 * 60, 60 * 60)
_INTERVAL_JITTER = 0.03
_PACE_MPS = (1.0, 1.4)
_STOP_S = (120.0, 600.0)
_WALK_PER_STOP_S = 2400.0  # one stop per ~40 min of walking: ~10 a day
_INSET_M = 10.0
_OUT_M = (10.0, 35.0)  # how far past the boundary a step next door goes
_STEPS_OUT_PER_DAY = 1.5
_GPS_SIGMA_M = 5.0
_GPS_TAU_S = 60.0  # time constant of the GPS error's drift
_ACCURACY_TO_SIGMA = 1.5  # Android's accuracy is a 68 % radius: about 1.5 σ of a 2-D Gaussian
_EPISODE_P = 0.002  # a bad-accuracy episode starts at ~1 fix in 500 ...
_EPISODE_FIXES = (4, 20)  # ... and lasts 1–5 min
_NETWORK_P = 0.005
_JUMP_P = 1.0 / 20_000
_JUMP_M = (2000.0, 5000.0)
_SPEED_NOISE_MPS = 0.15
_LIVE_MAX_GAP_S = 120.0  # a late call moves a walker at most this far in time


def patrol_day(
    grids: gpd.GeoDataFrame,
    day: dt.date,
    *,
    workers: Mapping[str, str] | None = None,
    interval_s: float = 15.0,
    shift: tuple[float, float] = (8.5, 17.5),
    seed: int = 20191216,
    until: dt.datetime | None = None,
) -> pd.DataFrame:
    """Every gridworker's GPS fixes of ``day``: ~1,950 per worker for a 15 s interval.

    ``grids`` has ``code`` and polygonal ``geometry`` (EPSG:4490; another CRS is converted; no
    CRS is taken as 4490). ``workers`` maps worker name → own grid code; by default one worker
    per grid named ``gw-<code>`` as ``app.services.identity.demo_gridworkers`` names them (rows
    with a ``level`` other than ``grid`` are skipped if the frame has that column). A code not
    among ``grids`` is a ``ValueError``. ``shift`` is local (Asia/Shanghai) hours. ``until``
    (timezone-aware) drops fixes after that moment; the rest are the same as without it, client
    ids included.

    Columns :data:`FIX_COLUMNS`: ``worker`` and ``client_id`` (``<worker>:<yyyymmdd>:<n>``, n
    counting the worker's fixes of the day from 0) as strings, ``time`` UTC (µs), ``lon``/``lat``,
    ``accuracy_m``, ``speed_mps`` (NaN for network fixes) as floats; sorted by worker, then time.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    if not 0 <= shift[0] < shift[1] <= 24:
        raise ValueError("shift must be (start, end) hours with 0 <= start < end <= 24")
    stop = _epoch(until, "until") if until is not None else math.inf
    beats = _Beats(grids, workers)
    day = dt.date(day.year, day.month, day.day)  # a datetime is taken for its date

    parts = []
    for w, name in enumerate(beats.names):
        plan = _plan(seed, day, name, shift)
        rng = np.random.default_rng(_seed_words(seed, name, day.toordinal(), 1))
        parts.append(_worker_day(rng, beats, w, plan, interval_s))

    counts = np.array([p[0].size for p in parts], dtype=np.int64)
    t, x, y, acc, speed = (np.concatenate([p[i] for p in parts]) if parts else np.empty(0)
                           for i in range(5))  # fmt: skip
    worker = np.repeat(np.arange(len(parts)), counts)
    seq = np.arange(t.size) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = t <= stop
    if not keep.all():
        t, x, y, acc, speed, worker, seq = (a[keep] for a in (t, x, y, acc, speed, worker, seq))
    lon, lat = _to_lonlat(x, y)
    return _frame(beats.names, worker, t, lon, lat, acc, speed, f":{day:%Y%m%d}:", seq)


class LiveFeed:
    """The next fix of every worker on shift, each worker continuing its own walk.

    Call :meth:`step` every ``interval_s`` with the current moment. A worker walks the same way
    as in :func:`patrol_day` (pace, stops, steps next door, GPS error and accuracy), moving by
    the time since its previous fix, at most :data:`_LIVE_MAX_GAP_S` (a late call does not make
    it run). On shift means inside the same shift and outside the same lunch as
    :func:`patrol_day` gives that worker that local day, unless ``always_on`` (a demo at night
    still moves); off shift a worker sends nothing and stands still, and its first fix back is
    where it stopped. Client ids are ``<worker>:live:<Unix ms>``: unique per worker and moment,
    and the same when a moment is sent again. Each worker has its own generator (``seed``,
    name), so its walk depends only on the moments it was stepped at.
    """

    def __init__(
        self,
        grids: gpd.GeoDataFrame,
        *,
        workers: Mapping[str, str] | None = None,
        interval_s: float = 15.0,
        seed: int = 20191216,
        shift: tuple[float, float] = (8.5, 17.5),
        always_on: bool = False,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if not 0 <= shift[0] < shift[1] <= 24:
            raise ValueError("shift must be (start, end) hours with 0 <= start < end <= 24")
        self.interval_s = float(interval_s)
        self.seed = seed
        self.shift = shift
        self.always_on = always_on
        self._beats = _Beats(grids, workers)
        self.workers: tuple[str, ...] = tuple(self._beats.names)
        n = len(self.workers)
        self._rngs = [np.random.default_rng(_seed_words(seed, name, 0, 2)) for name in self.workers]
        self._pool = [np.empty((0, 2)) for _ in range(n)]
        self._pos = np.empty((n, 2))
        for i in range(n):
            self._pos[i] = self._pool_point(i)
        self._target = self._pos.copy()  # the first advance picks a real target
        self._origin = self._pos.copy()  # where the current leg began
        self._pace = np.ones(n)
        self._stop_left = np.zeros(n)
        self._out = np.zeros(n, dtype=bool)  # the target is next door
        self._origin_out = np.zeros(n, dtype=bool)  # the current leg began next door
        self._last = np.full(n, np.nan)  # time of the previous fix, NaN after a pause
        self._error = np.zeros((n, 2))  # the GPS error's drift, in units of σ
        self._episode_left = np.zeros(n, dtype=np.int64)
        self._plans: dict[dt.date, np.ndarray] = {}

    def step(self, now: dt.datetime) -> pd.DataFrame:
        """The fix every worker on shift sends at ``now`` (timezone-aware); same columns as
        :func:`patrol_day`, sorted by worker."""
        t = _epoch(now, "now")
        on = np.ones(len(self.workers), dtype=bool) if self.always_on else self._on_shift(now, t)
        budget = np.where(on & np.isfinite(self._last), np.clip(t - self._last, 0.0, None), 0.0)
        self._advance(np.minimum(budget, _LIVE_MAX_GAP_S))
        idx = np.flatnonzero(on)
        gap = np.where(np.isfinite(self._last[idx]), t - self._last[idx], np.inf)
        self._last = np.where(on, t, np.nan)
        if idx.size == 0:
            return _empty_frame()

        u = np.stack([self._rngs[i].random(15) for i in idx])
        normal = _box_muller(u[:, :6]).reshape(-1, 3, 2)  # (worker, draw, axis)
        # The error drifts (AR(1)); a worker back from a pause starts afresh.
        rho = np.exp(-np.maximum(gap, 0.0) / _GPS_TAU_S)[:, None]
        self._error[idx] = rho * self._error[idx] + np.sqrt(1.0 - rho**2) * normal[:, 0]
        left = self._episode_left[idx]
        begins = (left == 0) & (u[:, 6] < _EPISODE_P)
        span = _EPISODE_FIXES[1] - _EPISODE_FIXES[0] + 1
        left = np.where(begins, _EPISODE_FIXES[0] + (u[:, 7] * span).astype(np.int64), left)
        self._episode_left[idx] = np.maximum(left - 1, 0)
        acc = _accuracy(u[:, 8], u[:, 9], left > 0)
        err = self._error[idx] * np.maximum(_GPS_SIGMA_M, acc / _ACCURACY_TO_SIGMA)[:, None]
        network = u[:, 10] < _NETWORK_P
        acc = np.where(network, 100.0 - 150.0 * np.log1p(-u[:, 11]), acc)  # 100 m + Exp(150 m)
        err = np.where(network[:, None], normal[:, 1] * (acc / _ACCURACY_TO_SIGMA)[:, None], err)
        err = np.where((u[:, 12] < _JUMP_P)[:, None], _jump(u[:, 13], u[:, 14]), err)
        pace = np.where(self._stop_left[idx] > 0, 0.0, self._pace[idx])
        speed = np.abs(pace + _SPEED_NOISE_MPS * normal[:, 2, 0])
        speed[network] = np.nan

        xy = self._pos[idx] + err
        lon, lat = _to_lonlat(xy[:, 0], xy[:, 1])
        return _frame(self.workers, idx, np.full(idx.size, t), lon, lat, acc, speed, ":live:",
                      np.full(idx.size, round(t * 1000)))  # fmt: skip

    # --- the walk ------------------------------------------------------------------------------

    def _on_shift(self, now: dt.datetime, t: float) -> np.ndarray:
        day = now.astimezone(LOCAL_TZ).date()
        plans = self._plans.get(day)
        if plans is None:
            plans = np.array([_plan(self.seed, day, name, self.shift) for name in self.workers])
            plans = plans.reshape(len(self.workers), 4)
            self._plans = {day: plans}  # only today's are needed
        start, end, lunch0, lunch1 = plans.T
        return (t >= start) & (t < end) & ~((t >= lunch0) & (t < lunch1))

    def _advance(self, budget: np.ndarray) -> None:
        """Move every worker along its walk by ``budget`` seconds (stops, then legs, then new
        targets, as often as a worker reaches one within its budget)."""
        budget = budget.copy()
        idx = np.flatnonzero(budget > 0)
        for _ in range(10_000):  # each round ends a leg or a stop of every worker still going
            if idx.size == 0:
                return
            used = np.minimum(self._stop_left[idx], budget[idx])
            self._stop_left[idx] -= used
            budget[idx] -= used
            idx = idx[budget[idx] > 0]
            delta = self._target[idx] - self._pos[idx]
            dist = np.hypot(delta[:, 0], delta[:, 1])
            need = dist / self._pace[idx]
            arrive = need <= budget[idx]
            part = idx[~arrive]
            frac = (budget[part] * self._pace[part] / dist[~arrive])[:, None]
            self._pos[part] += frac * delta[~arrive]
            budget[part] = 0.0
            done = idx[arrive]
            self._pos[done] = self._target[done]
            budget[done] -= need[arrive]
            self._new_legs(done)
            idx = done[budget[done] > 0]
        raise RuntimeError("a walker made no progress")  # unreachable: every leg takes time

    def _new_legs(self, idx: np.ndarray) -> None:
        """Workers ``idx`` have reached their targets: maybe a stop, then the next leg."""
        if idx.size == 0:
            return
        came_from = self._origin[idx].copy()
        came_from_out = self._origin_out[idx].copy()
        here_out = self._out[idx].copy()  # standing next door now
        beats = self._beats
        grid = beats.grid[idx]
        u = np.stack([self._rngs[i].random(4) for i in idx])
        walked = np.hypot(*(self._pos[idx] - came_from).T) / self._pace[idx]
        stop = u[:, 0] < -np.expm1(-walked / _WALK_PER_STOP_S)
        self._stop_left[idx] = np.where(stop, _STOP_S[0] + u[:, 1] * np.diff(_STOP_S)[0], 0.0)
        self._pace[idx] = _PACE_MPS[0] + u[:, 2] * np.diff(_PACE_MPS)[0]
        # Next door about as often per leg as patrol_day's walks go (1.5 a day), and back at once.
        legs_per_day = 8 * 3600 / np.maximum(beats.mean_leg_s[grid], 1.0)
        out = ~here_out & (u[:, 3] < _STEPS_OUT_PER_DAY / legs_per_day)
        target = np.array(
            [
                _sample(beats.ring[g], 1, self._rngs[i])[0] if o else self._pool_point(i)
                for i, g, o in zip(idx, grid, out, strict=True)
            ]
        )
        ok = _legs_inside(beats, grid, self._pos[idx], target, out | here_out)
        for _ in range(8):  # a leg that leaves a concave grid: the next waypoint instead
            if ok.all():
                break
            bad = np.flatnonzero(~ok)
            out[bad] = False
            target[bad] = [self._pool_point(i) for i in idx[bad]]
            ok[bad] = _legs_inside(beats, grid[bad], self._pos[idx[bad]], target[bad],
                                   here_out[bad])  # fmt: skip
        # Still none: back the way it came, which it has walked.
        target[~ok] = came_from[~ok]
        self._origin[idx] = self._pos[idx]
        self._origin_out[idx] = here_out
        self._target[idx] = target
        self._out[idx] = np.where(ok, out, came_from_out)

    def _pool_point(self, i: int) -> np.ndarray:
        """The next of worker ``i``'s waypoints inside its grid (drawn 64 at a time)."""
        if len(self._pool[i]) == 0:
            beats = self._beats
            self._pool[i] = _sample(beats.walk[beats.grid[i]], 64, self._rngs[i])
        point, self._pool[i] = self._pool[i][0], self._pool[i][1:]
        return point


# --- geometry --------------------------------------------------------------------------------


class _Beats:
    """The workers (sorted by name) and their grids' walking geometry in the metric CRS."""

    names: list[str]
    grid: np.ndarray  # each worker's row in the arrays below
    walk: np.ndarray  # the grid shrunk by _INSET_M (or the grid, if that leaves too little)
    outer: np.ndarray  # legs to and from next door stay inside this
    ring: np.ndarray  # where a step next door ends
    mean_leg_s: np.ndarray  # rough time of a leg, for the rate of steps next door

    def __init__(self, grids: gpd.GeoDataFrame, workers: Mapping[str, str] | None) -> None:
        if grids.crs is not None and grids.crs.to_epsg() != 4490:
            grids = grids.to_crs(CGCS2000)
        if workers is None:
            rows = grids if "level" not in grids else grids[grids["level"] == "grid"]
            workers = {f"gw-{code}": str(code) for code in rows["code"]}
        codes = grids["code"].astype(str).to_numpy(dtype=object)
        position = {}
        for i, code in enumerate(codes):
            position.setdefault(code, i)
        missing = sorted({str(c) for c in workers.values()} - position.keys())
        if missing:
            raise ValueError(f"workers' grids not among the grids: {', '.join(missing[:5])}")
        self.names = sorted(workers)
        used = sorted({position[str(workers[name])] for name in self.names})
        row_of = {row: k for k, row in enumerate(used)}
        self.grid = np.array([row_of[position[str(workers[n])]] for n in self.names], dtype=int)
        geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)[used]
        if len(geoms) and not shapely.is_valid(geoms).all():
            geoms = shapely.make_valid(geoms)
        metric = to_metric(geoms, DEFAULT_METRIC_CRS) if len(geoms) else geoms
        area = shapely.area(metric)
        if len(geoms) and not (area > 0).all():
            raise ValueError("a worker's grid has no area")
        inset = shapely.buffer(metric, -_INSET_M)
        # A narrow grid keeps its full width: walking its edges beats not walking it.
        self.walk = np.where(shapely.area(inset) >= 0.25 * area, inset, metric)
        self.outer = shapely.buffer(metric, _OUT_M[1] + 1.0)
        self.ring = shapely.difference(
            shapely.buffer(metric, _OUT_M[1]), shapely.buffer(metric, _OUT_M[0])
        )
        self.mean_leg_s = 0.5 * np.sqrt(shapely.area(self.walk)) / np.mean(_PACE_MPS)
        for arr in (self.walk, self.outer, self.ring):
            shapely.prepare(arr)


def _sample(polygon: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside ``polygon`` (rejection sampling in its bounds)."""
    minx, miny, maxx, maxy = polygon.bounds
    share = max(polygon.area / max((maxx - minx) * (maxy - miny), 1e-9), 0.05)
    found: list[np.ndarray] = []
    count = 0
    for _ in range(1000):
        batch = rng.uniform((minx, miny), (maxx, maxy), size=(int(n / share * 1.3) + 8, 2))
        inside = batch[shapely.contains_xy(polygon, batch[:, 0], batch[:, 1])]
        found.append(inside)
        count += len(inside)
        if count >= n:
            return np.concatenate(found)[:n]
    raise ValueError("could not place points inside a grid (degenerate geometry?)")


def _legs_inside(
    beats: _Beats, grid: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray
) -> np.ndarray:
    """Whether each straight leg a→b stays where it may: the shrunk grid, or for a leg to or
    from next door (``out``) the grid's 36 m buffer."""
    if len(a) == 0:
        return np.ones(0, dtype=bool)
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    area = np.where(out, beats.outer[grid], beats.walk[grid])
    return shapely.covers(area, lines)


def _waypoints(rng: np.random.Generator, beats: _Beats, g: int, length_m: float) -> np.ndarray:
    """The waypoints (n ≥ 2, 2) of a walk of straight legs at least ``length_m`` (> 0) long
    inside grid ``g``, with a few steps next door."""
    walk = beats.walk[g]
    points = _sample(walk, 1, rng)
    total = 0.0
    for _ in range(1000):
        if total >= length_m:
            break
        mean_leg = 0.5 * math.sqrt(walk.area)
        want = int((length_m - total) / mean_leg * 1.2) + 4
        chain = np.concatenate([points[-1:], _sample(walk, want, rng)])
        keep = np.ones(len(chain), dtype=bool)
        for _ in range(len(chain)):  # drop the far end of every leg that leaves the grid
            kept = np.flatnonzero(keep)
            c = chain[kept]
            ok = _legs_inside(beats, np.full(len(c) - 1, g), c[:-1], c[1:],
                              np.zeros(len(c) - 1, dtype=bool))  # fmt: skip
            if ok.all():
                break
            keep[kept[1:][~ok]] = False
        chain = chain[keep]
        total += float(np.hypot(*np.diff(chain, axis=0).T).sum())
        points = np.concatenate([points, chain[1:]])
    else:
        raise ValueError("could not lay a walk inside a grid (degenerate geometry?)")

    # Steps next door, between two waypoints early enough in the walk to fall within the shift
    # (the walk is longer than the shift needs).
    early = max(int(0.7 * (len(points) - 1)), 1)
    k = min(int(rng.poisson(_STEPS_OUT_PER_DAY)), early)
    if k == 0:
        return points
    after = np.sort(rng.choice(early, size=k, replace=False))
    there = _sample(beats.ring[g], k, rng)
    grid = np.full(k, g)
    ok = _legs_inside(beats, grid, points[after], there, np.ones(k, dtype=bool))
    ok &= _legs_inside(beats, grid, there, points[after + 1], np.ones(k, dtype=bool))
    return np.insert(points, after[ok] + 1, there[ok], axis=0)


def _schedule(
    rng: np.random.Generator, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Legs and stops along ``points`` as segments: start time, duration, from, to, pace."""
    legs = len(points) - 1
    length = np.hypot(*np.diff(points, axis=0).T)
    pace = rng.uniform(*_PACE_MPS, size=legs)
    walk_s = length / pace
    stops = rng.random(legs) < -np.expm1(-walk_s / _WALK_PER_STOP_S)
    stop_s = np.where(stops, rng.uniform(*_STOP_S, size=legs), 0.0)
    duration = np.column_stack([walk_s, stop_s]).ravel()  # leg 0, stop 0, leg 1, stop 1, …
    start = np.concatenate([[0.0], np.cumsum(duration)[:-1]])
    origin = np.repeat(points[:-1], 2, axis=0)
    origin[1::2] = points[1:]
    target = np.repeat(points[1:], 2, axis=0)
    speed = np.column_stack([pace, np.zeros(legs)]).ravel()
    return start, duration, origin, target, speed


def _worker_day(
    rng: np.random.Generator,
    beats: _Beats,
    w: int,
    plan: np.ndarray,
    interval_s: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One worker's fixes: Unix time (s), metric x, y, accuracy, speed."""
    start, end, lunch0, lunch1 = plan
    steps = interval_s * rng.uniform(1 - _INTERVAL_JITTER, 1 + _INTERVAL_JITTER,
                                     size=int((end - start) / (interval_s * 0.96)) + 2)  # fmt: skip
    t = start + np.concatenate([[0.0], np.cumsum(steps)])
    t = t[(t < end) & ~((t >= lunch0) & (t < lunch1))]
    walked = t - start - np.where(t >= lunch1, lunch1 - lunch0, 0.0)  # the walk waits at lunch
    n = t.size

    # Enough walk for the shift even at the fastest pace and without a stop.
    length = max((walked[-1] if n else 0.0) * _PACE_MPS[1], 1.0)
    points = _waypoints(rng, beats, beats.grid[w], length)
    seg_start, seg_len, origin, target, pace = _schedule(rng, points)
    seg = np.searchsorted(seg_start, walked, side="right") - 1
    frac = np.clip((walked - seg_start[seg]) / np.maximum(seg_len[seg], 1e-9), 0.0, 1.0)
    xy = origin[seg] + frac[:, None] * (target[seg] - origin[seg])

    episode = _episodes(rng, n)
    u = rng.random((n, 2))
    acc = _accuracy(u[:, 0], u[:, 1], episode)
    sigma = np.maximum(_GPS_SIGMA_M, acc / _ACCURACY_TO_SIGMA)
    err = _drift(rng, n, interval_s) * sigma[:, None]
    network = rng.random(n) < _NETWORK_P
    k = int(network.sum())
    acc[network] = 100.0 + rng.exponential(150.0, size=k)
    err[network] = rng.standard_normal((k, 2)) * (acc[network] / _ACCURACY_TO_SIGMA)[:, None]
    jump = rng.random(n) < _JUMP_P
    u = rng.random((int(jump.sum()), 2))
    err[jump] = _jump(u[:, 0], u[:, 1])
    speed = np.abs(pace[seg] + _SPEED_NOISE_MPS * rng.standard_normal(n))
    speed[network] = np.nan
    return t, xy[:, 0] + err[:, 0], xy[:, 1] + err[:, 1], acc, speed


# --- fixes -----------------------------------------------------------------------------------


def _accuracy(u0: np.ndarray, u1: np.ndarray, episode: np.ndarray) -> np.ndarray:
    """Reported accuracy (m) from two uniforms: 3 m plus a lognormal of median 3.5 m (σ 0.45:
    ~0.3 % above 15 m), or in an episode a lognormal of median 25 m (σ 0.4) within 8–95 m."""
    z = _box_muller(np.column_stack([u0, u1]))[:, 0]
    good = 3.0 + 3.5 * np.exp(0.45 * z)
    bad = np.clip(25.0 * np.exp(0.4 * z), 8.0, 95.0)
    return np.where(episode, bad, np.minimum(good, 95.0))


def _episodes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Which of ``n`` consecutive fixes fall in a bad-accuracy episode."""
    begins = np.flatnonzero(rng.random(n) < _EPISODE_P)
    length = rng.integers(_EPISODE_FIXES[0], _EPISODE_FIXES[1] + 1, size=begins.size)
    edges = np.zeros(n + _EPISODE_FIXES[1] + 1, dtype=np.int64)
    np.add.at(edges, begins, 1)
    np.add.at(edges, begins + length, -1)
    return np.cumsum(edges)[:n] > 0


def _drift(rng: np.random.Generator, n: int, interval_s: float) -> np.ndarray:
    """``n`` × 2 unit-variance AR(1) noise with :data:`_GPS_TAU_S`: white noise through the
    AR(1)'s impulse response, truncated where it has decayed (numpy has no recursive filter and
    scipy is not a dependency)."""
    rho = math.exp(-interval_s / _GPS_TAU_S)
    taps = max(1, math.ceil(5 * _GPS_TAU_S / interval_s))
    kernel = rho ** np.arange(taps)
    kernel /= np.sqrt((kernel**2).sum())
    white = rng.standard_normal((n + taps - 1, 2))
    if n == 0:
        return np.empty((0, 2))
    return np.column_stack([np.convolve(white[:, a], kernel, mode="valid") for a in (0, 1)])


def _jump(u0: np.ndarray, u1: np.ndarray) -> np.ndarray:
    """Offsets 2–5 km in a random direction (m), from two uniforms."""
    r = _JUMP_M[0] + u0 * (_JUMP_M[1] - _JUMP_M[0])
    theta = 2 * np.pi * u1
    return np.column_stack([r * np.cos(theta), r * np.sin(theta)])


def _box_muller(u: np.ndarray) -> np.ndarray:
    """Pairs of uniforms (…, 2k) → as many standard normals (same shape)."""
    pairs = u.reshape(u.shape[0], u.shape[1] // 2, 2)
    r = np.sqrt(-2.0 * np.log1p(-pairs[..., 0]))  # 1 - u: never log(0)
    theta = 2.0 * np.pi * pairs[..., 1]
    return np.stack([r * np.cos(theta), r * np.sin(theta)], axis=-1).reshape(u.shape)


# --- time, seeds and output ------------------------------------------------------------------


def _plan(seed: int, day: dt.date, name: str, shift: tuple[float, float]) -> np.ndarray:
    """A worker's shift start, end, lunch start and end on ``day`` (Unix s). Lunch is at
    11:30–12:30 local for 30–60 min if that falls inside the shift, else there is none."""
    rng = np.random.default_rng(_seed_words(seed, name, day.toordinal(), 0))
    midnight = pd.Timestamp(day).tz_localize(LOCAL_TZ).timestamp()
    u = rng.random(4)
    start = midnight + shift[0] * 3600 + (2 * u[0] - 1) * _SHIFT_JITTER_S
    end = midnight + shift[1] * 3600 + (2 * u[1] - 1) * _SHIFT_JITTER_S
    lunch0 = midnight + 3600 * (_LUNCH_START_H[0] + u[2] * np.diff(_LUNCH_START_H)[0])
    lunch1 = lunch0 + _LUNCH_S[0] + u[3] * (_LUNCH_S[1] - _LUNCH_S[0])
    if not (start < lunch0 and lunch1 < end):
        lunch0 = lunch1 = end
    return np.array([start, max(end, start), lunch0, lunch1])


def _seed_words(seed: int, name: str, day: int, stream: int) -> list[int]:
    """Entropy for one worker's generator: a stable digest of the name (Python's ``hash`` of a
    str changes from run to run)."""
    digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
    return [seed, day, stream, int.from_bytes(digest, "little")]


def _epoch(moment: dt.datetime, what: str) -> float:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return moment.timestamp()


_TO_LONLAT = Transformer.from_crs(DEFAULT_METRIC_CRS, CGCS2000, always_xy=True)


def _to_lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) == 0:
        return np.empty(0), np.empty(0)
    lon, lat = _TO_LONLAT.transform(x, y)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _frame(
    names: Sequence[str],
    worker: np.ndarray,
    t: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    acc: np.ndarray,
    speed: np.ndarray,
    middle: str,
    n: np.ndarray,
) -> pd.DataFrame:
    """The output frame; ``worker`` indexes ``names``, client ids are name + middle + n.

    The strings are built in Arrow, which pandas' ``str`` columns hold anyway: a Python
    f-string per fix took a third of the whole day's run.
    """
    ms = np.rint(t * 1000).astype(np.int64).astype("datetime64[ms]").astype("datetime64[us]")
    who = pc.take(pa.array(list(names), pa.string()), pa.array(worker, pa.int64()))
    client_id = pc.binary_join_element_wise(
        who, pa.scalar(middle), pc.cast(pa.array(n, pa.int64()), pa.string()), ""
    )
    return pd.DataFrame(
        {
            "worker": pd.Series(who, dtype="str"),
            "time": pd.DatetimeIndex(ms).tz_localize("UTC"),
            "lon": lon,
            "lat": lat,
            "accuracy_m": acc,
            "speed_mps": speed,
            "client_id": pd.Series(client_id, dtype="str"),
        }
    )


def _empty_frame() -> pd.DataFrame:
    e = np.empty(0)
    return _frame([], np.empty(0, dtype=np.int64), e, e, e, e, e, "", e)
