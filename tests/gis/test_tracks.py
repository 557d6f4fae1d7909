"""gis.tracks: daily tracks, stops, coverage and unpatrolled grids, on hand-checkable walks.

Walks are laid out in EPSG:4548 metres, from round coordinates near Tianjin, and turned into
CGCS2000 lon/lat fixes, as the app passes them. Expected figures can then be worked out by hand.
MovingPandas is the reference for splits, lengths, generalisation and stops. Plain GEOS (the
union of every buffer) is the reference for the covered area.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import shapely.affinity
from pyproj import Transformer

from gis.locate import GridIndex
from gis.tracks import (
    COVERAGE_COLUMNS,
    GAP,
    MIN_STOP,
    SEGMENT_COLUMNS,
    STOP_COLUMNS,
    STOP_RADIUS_M,
    UNPATROLLED_COLUMNS,
    coverage,
    daily_tracks,
    trajectories,
    unpatrolled,
)

with warnings.catch_warnings():  # its optional smoother warns at import (no Stone Soup)
    warnings.simplefilter("ignore", UserWarning)
    import movingpandas as mpd

METRIC = "EPSG:4548"
X0, Y0 = 520_000.0, 4_330_000.0  # EPSG:4548 metres, about 117.23E 39.11N
T0 = pd.Timestamp("2026-11-23 02:00", tz="UTC")  # 10:00 in Beijing, a Monday
TO_LONLAT = Transformer.from_crs(METRIC, "EPSG:4490", always_xy=True)


# --- building walks ------------------------------------------------------------------------


def fixes_at(
    worker: str, seconds: np.ndarray, x: np.ndarray, y: np.ndarray, start: pd.Timestamp = T0
) -> pd.DataFrame:
    """Fixes of one worker at ``start + seconds``, at metric offsets (x, y) from (X0, Y0)."""
    lon, lat = TO_LONLAT.transform(X0 + np.asarray(x, float), Y0 + np.asarray(y, float))
    return pd.DataFrame(
        {
            "worker": worker,
            "time": start + pd.to_timedelta(np.asarray(seconds, float), unit="s"),
            "x": lon,
            "y": lat,
        }
    )


def walk(
    worker: str,
    legs: list[tuple[str, float]],
    speed: float = 1.0,
    every: float = 15.0,
    start: pd.Timestamp = T0,
    y: float = 0.0,
) -> pd.DataFrame:
    """A walk east along y from x = 0: legs of ("walk", seconds), ("pause", seconds) (in
    place, fixes go on) or ("silent", seconds) (walking on, no fixes). A fix every ``every``
    seconds from 0, and one at the very end."""
    t_end = sum(length for _, length in legs)
    times = np.r_[np.arange(0.0, t_end, every), t_end]
    x = np.zeros_like(times)
    keep = np.ones(len(times), dtype=bool)
    clock, pos = 0.0, 0.0
    for kind, length in legs:
        inside = (times >= clock) & (times <= clock + length)
        if kind == "pause":
            x[inside] = pos
        else:
            x[inside] = pos + speed * (times[inside] - clock)
            pos += speed * length
        if kind == "silent":
            keep &= ~((times > clock) & (times < clock + length))
        clock += length
    return fixes_at(worker, times[keep], x[keep], np.full(keep.sum(), y), start=start)


def square(code: str, x: float, y: float, w: float, h: float | None = None) -> dict:
    """A grid from metric offsets, as lon/lat (edges segmentized first, as the app's are)."""
    box = shapely.segmentize(shapely.box(X0 + x, Y0 + y, X0 + x + w, Y0 + y + (h or w)), 10.0)
    geom = shapely.transform(box, lambda c: np.column_stack(TO_LONLAT.transform(*c.T)))
    return {"code": code, "geometry": geom}


def grid_frame(*rows: dict) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(list(rows), geometry="geometry", crs="EPSG:4490")


def located(fixes: pd.DataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
    codes = GridIndex(grids).locate(fixes["x"].to_numpy(), fixes["y"].to_numpy())
    return fixes.assign(grid_code=np.where(codes == "", None, codes))


def to_metric(geom: shapely.Geometry) -> shapely.Geometry:
    back = Transformer.from_crs("EPSG:4490", METRIC, always_xy=True)
    return shapely.transform(geom, lambda c: np.column_stack(back.transform(*c.T)))


# The walk of the issue: 1 km east at 1 m/s, a fix every 15 s.
KM = [("walk", 1000.0)]
# Grid A holds the first half of the walk (fixes at 0 … 495 m), grid B the rest.
GRIDS_AB = grid_frame(square("A", -100, -100, 602.5, 200), square("B", 502.5, -100, 600, 200))


# --- daily tracks ----------------------------------------------------------------------------


def test_a_straight_kilometre_is_one_segment_of_1000_m():
    fixes = walk("w1", KM)
    segments, stops, summaries = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert len(segments) == 1 and len(stops) == 0 and len(summaries) == 1
    row = segments.iloc[0]
    assert row["length_m"] == pytest.approx(1000.0, rel=0.01)
    assert row["length_m"] == pytest.approx(1000.0, abs=1e-3)  # in fact exact
    assert row["start"] == T0 and row["end"] == T0 + pd.Timedelta(seconds=1000)
    assert row["date"] == dt.date(2026, 11, 23) and row["segment"] == 0
    # The generalised line of a straight walk is its two ends.
    assert shapely.get_num_coordinates(row["geometry"]) == 2
    assert segments.crs.to_epsg() == 4490
    s = summaries[0]
    assert (s.worker, s.segments, s.stops) == ("w1", 1, 0)
    assert s.duration_s == 1000.0 and s.length_m == pytest.approx(1000.0, abs=1e-3)
    assert (s.first, s.last) == (T0, T0 + pd.Timedelta(seconds=1000))


def test_a_gap_over_five_minutes_splits_and_is_not_counted():
    fixes = walk("w1", [("walk", 450), ("silent", 600), ("walk", 450)])
    segments, _, (summary,) = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert list(segments["segment"]) == [0, 1]
    assert summary.segments == 2
    # 0 … 450 s and 1050 … 1500 s: the ten minutes without fixes are not duration.
    assert summary.duration_s == pytest.approx(900.0)
    assert summary.length_m == pytest.approx(900.0, abs=1e-3)
    assert list(segments["length_m"]) == pytest.approx([450.0, 450.0], abs=1e-3)


def test_a_gap_of_exactly_five_minutes_does_not_split():
    seconds = np.r_[0.0, 15.0, 15.0 + GAP.total_seconds(), 330.0]
    fixes = fixes_at("w1", seconds, seconds, np.zeros(4))
    segments, _, (summary,) = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert len(segments) == 1 and summary.duration_s == 330.0


# A 2-minute pause at 1 m/s sits exactly on the stop radius: any 3-minute window holds one
# minute of walking, 60 m, i.e. a circle of radius 30 m. So the pauses are walked at 1.25 m/s
# (75 m per minute), where a 2-minute pause is clearly no stop.
def test_a_four_minute_pause_is_a_stop_and_a_two_minute_pause_is_not():
    fixes = walk(
        "w1",
        [("walk", 300), ("pause", 240), ("walk", 300), ("pause", 120), ("walk", 300)],
        speed=1.25,
    )
    _, stops, (summary,) = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert len(stops) == 1 and summary.stops == 1
    stop = stops.iloc[0]
    # The pause, widened by the approaching and leaving fixes still within 30 m of a centre.
    assert 240.0 <= stop["duration_s"] <= 240.0 + 2 * 2 * STOP_RADIUS_M / 1.25
    assert stop["start"] <= T0 + pd.Timedelta(seconds=300)
    assert stop["end"] >= T0 + pd.Timedelta(seconds=540)
    x, y = shapely.get_coordinates(to_metric(stop["geometry"]))[0]
    assert (x - X0, y - Y0) == pytest.approx((375.0, 0.0), abs=1e-3)  # the median: the pause
    assert list(stops.columns) == list(STOP_COLUMNS)


def test_a_long_pause_stays_one_stop():
    fixes = walk("w1", [("walk", 300), ("pause", 1800), ("walk", 300)])
    _, stops, _ = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert len(stops) == 1
    assert stops.iloc[0]["duration_s"] >= 1800.0


def test_a_stop_starts_at_its_first_fix_when_fixes_are_irregular():
    # Standing at 200 m from 0 s to 200 s with fixes at 0, 20 and 200 s; walking before and
    # after. The only 3-minute windows ending at 200 s start at 20 s, yet 0 … 200 s is a stop.
    seconds = np.array([-30.0, -15.0, 0.0, 20.0, 200.0, 215.0, 230.0])
    x = np.array([0.0, 100.0, 200.0, 200.0, 200.0, 300.0, 400.0])
    _, stops, _ = daily_tracks(fixes_at("w1", seconds, x, np.zeros(7)), own={}, grids=GRIDS_AB)
    assert len(stops) == 1
    assert stops.iloc[0]["start"] == T0 and stops.iloc[0]["end"] == T0 + pd.Timedelta(seconds=200)


def test_time_in_own_grid_and_grids_visited():
    fixes = walk("w1", KM)
    _, _, (summary,) = daily_tracks(fixes, own={"w1": {"A"}}, grids=GRIDS_AB)
    # Fixes at 0, 15, …, 495 m lie in A; each one's interval to the next counts: 34 × 15 s.
    assert summary.own_grid_s == 510.0
    assert summary.grids_visited == ("A", "B")
    _, _, (other,) = daily_tracks(fixes, own={"w1": {"B"}}, grids=GRIDS_AB)
    assert other.own_grid_s == 490.0  # 495 → 510 is A's; then 510 … 990 → 1000
    _, _, (nobody,) = daily_tracks(fixes, own={"w2": {"A"}}, grids=GRIDS_AB)
    assert nobody.own_grid_s == 0.0


def test_given_grid_codes_and_located_grids_agree():
    fixes = walk("w1", KM)
    given = daily_tracks(located(fixes, GRIDS_AB), own={"w1": {"A"}})
    found = daily_tracks(fixes, own={"w1": {"A"}}, grids=GRIDS_AB)
    assert given[2] == found[2]
    # A fix outside every grid (None, NaN or "") visits nothing.
    outside = located(fixes, GRIDS_AB).assign(grid_code=None)
    _, _, (summary,) = daily_tracks(outside, own={"w1": {"A"}})
    assert summary.grids_visited == () and summary.own_grid_s == 0.0
    with pytest.raises(ValueError, match="grid_code"):
        daily_tracks(fixes, own={})


def test_a_walk_across_beijing_midnight_gives_two_days():
    start = pd.Timestamp("2026-11-23 23:50", tz="Asia/Shanghai").tz_convert("UTC")
    fixes = walk("w1", [("walk", 1200)], start=start)
    segments, _, summaries = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    assert [s.date for s in summaries] == [dt.date(2026, 11, 23), dt.date(2026, 11, 24)]
    assert list(segments["date"]) == [dt.date(2026, 11, 23), dt.date(2026, 11, 24)]
    assert [s.segments for s in summaries] == [1, 1]
    # 23:50:00 … 23:59:45 and 00:00:00 … 00:10:00; the 15 s across midnight is neither day's.
    assert [s.duration_s for s in summaries] == [585.0, 600.0]
    assert summaries[1].first == pd.Timestamp("2026-11-24 00:00", tz="Asia/Shanghai")


def test_duplicate_fixes_and_unsorted_input():
    fixes = walk("w1", KM)
    shuffled = pd.concat([fixes, fixes.iloc[:5]]).sample(frac=1.0, random_state=3)
    assert (
        daily_tracks(shuffled, own={}, grids=GRIDS_AB)[2]
        == daily_tracks(fixes, own={}, grids=GRIDS_AB)[2]
    )


def test_naive_times_and_missing_columns_are_refused():
    fixes = walk("w1", KM)
    with pytest.raises(ValueError, match="timezone-aware"):
        daily_tracks(fixes.assign(time=fixes["time"].dt.tz_localize(None)), own={}, grids=GRIDS_AB)
    with pytest.raises(ValueError, match="missing"):
        daily_tracks(fixes.drop(columns="x"), own={}, grids=GRIDS_AB)


def test_empty_input_gives_empty_outputs_with_the_columns():
    empty = walk("w1", KM).iloc[:0]
    segments, stops, summaries = daily_tracks(empty, own={}, grids=GRIDS_AB)
    assert list(segments.columns) == list(SEGMENT_COLUMNS) and len(segments) == 0
    assert list(stops.columns) == list(STOP_COLUMNS) and len(stops) == 0
    assert segments.crs.to_epsg() == 4490 and stops.crs.to_epsg() == 4490
    assert summaries == []
    frame = coverage(segments, GRIDS_AB, empty)
    assert list(frame.columns) == list(COVERAGE_COLUMNS) and len(frame) == 0
    listed = unpatrolled(frame, GRIDS_AB, days=7, today=dt.date(2026, 11, 23))
    assert list(listed.columns) == list(UNPATROLLED_COLUMNS)
    assert list(listed["code"]) == ["A", "B"] and listed["days_since"].isna().all()


# --- MovingPandas as the reference -----------------------------------------------------------


def noisy_day(workers: int = 3, seed: int = 5) -> pd.DataFrame:
    """Correlated random walks with GPS noise, pauses of 1–8 minutes and a silent phone."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(workers):
        n = 600
        heading = np.cumsum(rng.normal(0.0, 0.4, n))
        speed = np.where(rng.random(n) < 0.2, 0.0, 1.2)
        for at in rng.integers(20, n - 40, 3):
            speed[at : at + rng.integers(4, 33)] = 0.0
        x = np.cumsum(np.cos(heading) * speed * 15) + rng.normal(0, 3, n)
        y = np.cumsum(np.sin(heading) * speed * 15) + rng.normal(0, 3, n)
        seconds = np.arange(n) * 15.0
        keep = ~((seconds > 3000) & (seconds < 3000 + 60 * (6 + k)))
        keep &= rng.random(n) > 0.03  # lost fixes: irregular sampling, no split
        frames.append(fixes_at(f"w{k}", seconds[keep], x[keep], y[keep]))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def reference():
    fixes = noisy_day()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = fixes.assign(t=fixes["time"].dt.tz_localize(None))
        points = gpd.GeoDataFrame(
            frame[["worker", "t"]],
            geometry=gpd.points_from_xy(frame["x"], frame["y"]),
            crs="EPSG:4490",
        ).to_crs(METRIC)
        collection = mpd.TrajectoryCollection(points, "worker", t="t")
        split = mpd.ObservationGapSplitter(collection).split(gap=GAP.to_pytimedelta())
        stops = mpd.TrajectoryStopDetector(split).get_stop_points(
            max_diameter=2 * STOP_RADIUS_M, min_duration=MIN_STOP.to_pytimedelta()
        )
        general = mpd.DouglasPeuckerGeneralizer(split).generalize(tolerance=5.0)
    ours = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    return fixes, split, stops, general, ours


def test_segments_and_lengths_match_movingpandas(reference):
    _, split, _, _, (segments, _, _) = reference
    with warnings.catch_warnings():  # MovingPandas 0.23 uses pandas' deprecated inplace=True
        warnings.simplefilter("ignore")
        table = split.to_traj_gdf()
    assert len(segments) == len(table) == 6  # three workers, one silent phone each
    assert list(segments["start"].dt.tz_localize(None)) == list(table["start_t"])
    assert list(segments["end"].dt.tz_localize(None)) == list(table["end_t"])
    assert segments["length_m"].to_numpy() == pytest.approx(table["length"].to_numpy(), rel=1e-9)


def test_generalised_lines_match_movingpandas(reference):
    _, _, _, general, (segments, _, _) = reference
    theirs = [traj.to_linestring() for traj in general.trajectories]
    ours = [to_metric(line) for line in segments.geometry]
    assert [shapely.get_num_coordinates(g) for g in ours] == [
        shapely.get_num_coordinates(g) for g in theirs
    ]
    for mine, other in zip(ours, theirs, strict=True):
        assert shapely.get_coordinates(mine) == pytest.approx(shapely.get_coordinates(other))


def test_every_movingpandas_stop_lies_inside_one_of_ours(reference):
    _, _, theirs, _, (_, ours, _) = reference
    assert len(theirs) >= 6
    start = ours["start"].dt.tz_localize(None)
    end = ours["end"].dt.tz_localize(None)
    for _, stop in theirs.iterrows():
        worker = stop["traj_id"].rsplit("_", 1)[0]
        inside = (
            (ours["worker"] == worker) & (start <= stop["start_time"]) & (end >= stop["end_time"])
        )
        assert inside.sum() == 1, stop
    assert len(ours) <= len(theirs) + 2  # and ours are not many more


def test_trajectories_hands_the_same_segments_to_movingpandas(reference):
    fixes, _, _, _, (segments, _, _) = reference
    collection = trajectories(fixes)
    assert isinstance(collection, mpd.TrajectoryCollection)
    assert len(collection) == len(segments)
    ids = [f"{w}/{d}/{s}" for w, d, s in segments[["worker", "date", "segment"]].to_numpy()]
    assert [traj.id for traj in collection.trajectories] == ids
    assert [traj.get_start_time() for traj in collection.trajectories] == list(
        segments["start"].dt.tz_localize(None)
    )


# --- coverage --------------------------------------------------------------------------------

EDGE = grid_frame(square("E", 0, 0, 200))


def test_a_grid_walked_along_one_edge_is_covered_25_m_deep():
    # Along the south edge, 100 m beyond either corner, so no round cap reaches inside.
    fixes = fixes_at("w1", np.arange(0, 401) * 1.0, np.arange(-100, 301) * 1.0, np.zeros(401))
    segments, _, _ = daily_tracks(fixes, own={}, grids=EDGE)
    frame = coverage(segments, EDGE, fixes)
    (row,) = frame.itertuples()
    assert row.covered_share == pytest.approx(25 * 200 / 200**2, rel=1e-3)
    assert row.period == dt.date(2026, 11, 23)


def lonlat(geom: shapely.Geometry) -> shapely.Geometry:
    """Metric offsets from (X0, Y0) → lon/lat, edges segmentized first."""
    moved = shapely.affinity.translate(shapely.segmentize(geom, 10.0), X0, Y0)
    return shapely.transform(moved, lambda c: np.column_stack(TO_LONLAT.transform(*c.T)))


def test_covered_share_equals_the_union_of_all_buffers():
    # Plain GEOS is the reference: every segment buffered, all unioned, clipped to each grid.
    # Squares on a 150 m lattice, plus a turned square, an L and a triangle over the walks.
    fixes = noisy_day(workers=3, seed=11)
    lattice = [
        square(f"G{i}{j}", -300 + 150 * i, -300 + 150 * j, 150) for i in range(4) for j in range(4)
    ]
    odd = [
        {"code": "T", "geometry": lonlat(shapely.affinity.rotate(shapely.box(0, 0, 170, 90), 33))},
        {"code": "L", "geometry": lonlat(shapely.Polygon([(20, -100), (260, -100), (260, -40),
                                                          (80, -40), (80, 250), (20, 250)]))},
        {"code": "V", "geometry": lonlat(shapely.Polygon([(-60, 40), (130, -110), (110, 120)]))},
    ]  # fmt: skip
    segments, _, _ = daily_tracks(fixes, own={}, grids=grid_frame(*lattice))
    grids = grid_frame(*lattice, *odd)
    frame = coverage(segments, grids, fixes).set_index("code")
    lines = np.array([to_metric(g) for g in segments.geometry])
    band = shapely.union_all(shapely.buffer(lines, 25.0))
    for code, geom in zip(grids["code"], grids.geometry, strict=True):
        cell = to_metric(geom)
        expected = shapely.area(shapely.intersection(band, cell)) / shapely.area(cell)
        # Cells settled by distance count whole; GEOS's arcs are chords up to 0.12 m inside.
        assert frame.loc[code, "covered_share"] == pytest.approx(expected, abs=1e-5), code
    assert ((frame["covered_share"] > 0) & (frame["covered_share"] < 1)).sum() >= 4
    assert (frame.loc[["T", "L", "V"], "covered_share"] > 0.1).all()


def test_visits_count_reentries_and_the_revisit_interval():
    a, b = "A", "B"
    # w1: in A (0 … 45 s), B (60 … 105 s), A again (120 … 165 s), silent 10 minutes, A (765 …).
    seconds = np.r_[np.arange(0, 166, 15), np.arange(765, 811, 15)]
    x = np.where((seconds >= 60) & (seconds < 120), 600.0, 100.0)
    w1 = fixes_at("w1", seconds, x, np.zeros(len(seconds)))
    w2 = fixes_at("w2", np.arange(0, 61, 15), np.full(5, 700.0), np.zeros(5))  # in B
    fixes = located(pd.concat([w1, w2], ignore_index=True), GRIDS_AB)
    segments, _, _ = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    frame = coverage(segments, GRIDS_AB, fixes).set_index("code")
    assert frame.loc[a, "visits"] == 3 and frame.loc[b, "visits"] == 2
    assert frame.loc[a, "workers"] == 1 and frame.loc[b, "workers"] == 2
    # A's visits start at 0, 120 and 765 s: (765 − 0) / 2 seconds between starts.
    assert frame.loc[a, "revisit_h"] == pytest.approx(765 / 2 / 3600)
    assert frame.loc[b, "revisit_h"] == pytest.approx(60 / 3600)  # w2 at 0, w1 at 60
    # Dwell: A has 0 → 60 and 120 → 165 (w1's last fix before the gap has no next), 765 → 810.
    assert frame.loc[a, "dwell_min"] == pytest.approx((60 + 45 + 45) / 60)
    assert frame.loc[b, "dwell_min"] == pytest.approx((60 + 60) / 60)


def test_a_grid_with_one_visit_has_no_revisit_interval_and_unvisited_grids_have_zeros():
    fixes = located(walk("w1", [("walk", 300)]), GRIDS_AB)
    segments, _, _ = daily_tracks(fixes, own={}, grids=GRIDS_AB)
    frame = coverage(segments, GRIDS_AB, fixes).set_index("code")
    assert frame.loc["A", "visits"] == 1 and np.isnan(frame.loc["A", "revisit_h"])
    assert frame.loc["B", ["visits", "dwell_min", "workers", "covered_share"]].tolist() == [
        0,
        0.0,
        0,
        0.0,
    ]


def test_own_grid_time_equals_dwell_in_own_grids():
    fixes = located(noisy_day(seed=8), GRIDS_AB)
    own = {"w0": {"A"}, "w1": {"B"}, "w2": {"A", "B"}}
    segments, _, summaries = daily_tracks(fixes, own=own)
    for worker, codes in own.items():
        mine = fixes[fixes["worker"] == worker]
        frame = coverage(segments[segments["worker"] == worker], GRIDS_AB, mine)
        dwell = frame.loc[frame["code"].isin(codes), "dwell_min"].sum() * 60
        (summary,) = [s for s in summaries if s.worker == worker]
        assert summary.own_grid_s == pytest.approx(dwell)


def test_a_week_sums_its_days_and_is_named_by_its_monday():
    monday = T0  # 2026-11-23 is a Monday
    days = [monday, monday + pd.Timedelta(days=2), monday + pd.Timedelta(days=7)]
    fixes = located(
        pd.concat([walk("w1", KM, start=start) for start in days], ignore_index=True), GRIDS_AB
    )
    segments, _, _ = daily_tracks(fixes, own={})
    daily = coverage(segments, GRIDS_AB, fixes, by="day")
    weekly = coverage(segments, GRIDS_AB, fixes, by="week")
    assert weekly.attrs["by"] == "week"
    assert sorted(set(weekly["period"])) == [dt.date(2026, 11, 23), dt.date(2026, 11, 30)]
    first_week = daily[daily["period"] < dt.date(2026, 11, 30)].groupby("code")
    week = weekly[weekly["period"] == dt.date(2026, 11, 23)].set_index("code")
    assert (week["visits"] == first_week["visits"].sum()).all()
    assert week["dwell_min"].to_numpy() == pytest.approx(first_week["dwell_min"].sum().to_numpy())
    # The same line twice covers what it covers once.
    assert week["covered_share"].to_numpy() == pytest.approx(
        first_week["covered_share"].max().to_numpy()
    )
    with pytest.raises(ValueError, match="by must be"):
        coverage(segments, GRIDS_AB, fixes, by="month")


# --- unpatrolled -----------------------------------------------------------------------------


def test_unpatrolled_lists_grids_never_or_long_ago_visited():
    grids = grid_frame(square("A", 0, 0, 100), square("B", 100, 0, 100), square("C", 200, 0, 100))
    today = dt.date(2026, 11, 23)
    frame = pd.DataFrame(
        {
            "code": ["A", "B", "C", "A", "B"],
            "period": [today, today, today, today - dt.timedelta(days=3), dt.date(2026, 11, 13)],
            "covered_share": 0.0,
            "visits": [2, 0, 0, 1, 4],
            "dwell_min": 0.0,
            "revisit_h": np.nan,
            "workers": 1,
        }
    )
    listed = unpatrolled(frame, grids, days=7, today=today)
    assert list(listed.columns) == list(UNPATROLLED_COLUMNS)
    assert list(listed["code"]) == ["C", "B"]  # never visited first
    assert listed["last_visit"].iloc[0] is pd.NaT and listed["days_since"].isna().iloc[0]
    assert listed["last_visit"].iloc[1] == dt.date(2026, 11, 13)
    assert listed["days_since"].iloc[1] == 10
    assert list(unpatrolled(frame, grids, days=11, today=today)["code"]) == ["C"]
    # Visits after "today" do not count for it.
    assert list(unpatrolled(frame, grids, days=1, today=dt.date(2026, 11, 21))["code"]) == [
        "C",
        "B",
        "A",
    ]
    weekly = frame.copy()
    weekly.attrs["by"] = "week"
    with pytest.raises(ValueError, match="daily"):
        unpatrolled(weekly, grids, days=7, today=today)


def test_unpatrolled_from_coverage():
    fixes = located(walk("w1", [("walk", 300)]), GRIDS_AB)
    segments, _, _ = daily_tracks(fixes, own={})
    frame = coverage(segments, GRIDS_AB, fixes)
    listed = unpatrolled(frame, GRIDS_AB, days=3, today=dt.date(2026, 11, 25))
    assert list(listed["code"]) == ["B"]


def test_gis_tracks_stays_free_of_the_web_app_and_the_database():
    code = (
        "import sys, gis.tracks; "
        "bad = {m for m in sys.modules if m.split('.')[0] in {'app', 'fastapi', 'sqlalchemy'}}; "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
