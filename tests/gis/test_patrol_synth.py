"""gis.patrol_synth: synthetic GPS fixes of gridworkers patrolling their own grids."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Transformer

from gis.patrol_synth import FIX_COLUMNS, LOCAL_TZ, LiveFeed, patrol_day

DEMO_FILE = Path(__file__).resolve().parents[2] / "data" / "boundaries" / "hongqiao_demo.gpkg"
DAY = dt.date(2025, 6, 3)
TO_METRIC = Transformer.from_crs("EPSG:4490", "EPSG:4548", always_xy=True)
TO_LONLAT = Transformer.from_crs("EPSG:4548", "EPSG:4490", always_xy=True)
JUMP_M = 1000.0  # a fix this far from its own grid is one of the rare implausible jumps


@pytest.fixture(scope="module")
def demo() -> gpd.GeoDataFrame:
    return gpd.read_file(DEMO_FILE)


@pytest.fixture(scope="module")
def grids(demo) -> gpd.GeoDataFrame:
    """Six demo grids from the smallest to the largest."""
    rows = demo[demo["level"] == "grid"][["code", "geometry"]].reset_index(drop=True)
    area = rows.to_crs("EPSG:4548").area.to_numpy()
    order = np.argsort(area)
    pick = order[[0, 1, len(order) // 3, len(order) // 2, -2, -1]]
    return rows.iloc[pick].reset_index(drop=True)


@pytest.fixture(scope="module")
def day(grids) -> pd.DataFrame:
    return patrol_day(grids, DAY)


def metric(frame: pd.DataFrame) -> np.ndarray:
    x, y = TO_METRIC.transform(frame["lon"].to_numpy(), frame["lat"].to_numpy())
    return np.column_stack([x, y])


def own_grids(frame: pd.DataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    geom = dict(zip("gw-" + grids["code"], grids.geometry, strict=True))
    return np.array([geom[w] for w in frame["worker"]], dtype=object)


def metres_outside(frame: pd.DataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    """Each fix's distance (m) from its worker's grid, 0 inside."""
    own = shapely.transform(
        own_grids(frame, grids), lambda c: np.column_stack(TO_METRIC.transform(c[:, 0], c[:, 1]))
    )
    xy = metric(frame)
    return shapely.distance(own, shapely.points(xy))


def steps(frame: pd.DataFrame) -> pd.DataFrame:
    """Consecutive fixes of one worker: seconds between, metres between, and whether either
    end is a jump."""
    xy = metric(frame)
    same = frame["worker"].to_numpy()[1:] == frame["worker"].to_numpy()[:-1]
    seconds = np.diff(frame["time"].astype("int64").to_numpy()) / 1e6
    far = frame["_far"].to_numpy() if "_far" in frame else np.zeros(len(frame), dtype=bool)
    return pd.DataFrame(
        {
            "worker": frame["worker"].to_numpy()[1:],
            "seconds": seconds,
            "metres": np.hypot(*np.diff(xy, axis=0).T),
            "jump": far[1:] | far[:-1],
        }
    )[same]


# --- shape ----------------------------------------------------------------------------------


def test_columns_types_and_order(day, grids):
    assert tuple(day.columns) == FIX_COLUMNS
    assert day["worker"].dtype == "str" and day["client_id"].dtype == "str"
    assert isinstance(day["time"].dtype, pd.DatetimeTZDtype) and str(day["time"].dt.tz) == "UTC"
    for column in ("lon", "lat", "accuracy_m", "speed_mps"):
        assert day[column].dtype == np.float64
    assert set(day["worker"]) == {f"gw-{code}" for code in grids["code"]}
    ordered = day.sort_values(["worker", "time"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(day, ordered)


def test_default_workers_are_one_per_grid_of_a_whole_hierarchy(demo):
    some = demo[demo["code"].str.startswith("120106001001")]  # a community and its grids
    assert set(some["level"]) == {"community", "grid"}
    frame = patrol_day(some, DAY, until=dt.datetime(2025, 6, 3, 9, 0, tzinfo=LOCAL_TZ))
    grids = some[some["level"] == "grid"]
    assert set(frame["worker"]) == {f"gw-{code}" for code in grids["code"]}


def test_client_ids_are_unique_and_name_worker_day_and_fix(day):
    assert day["client_id"].is_unique
    n = day.groupby("worker").cumcount().astype(str)
    assert (day["client_id"] == day["worker"] + ":20250603:" + n).all()
    assert day["client_id"].str.len().max() <= 64  # patrol_fix.client_id is varchar(64)


# --- the day --------------------------------------------------------------------------------


def test_fixes_every_15_s_within_the_shift(day):
    local = day["time"].dt.tz_convert(LOCAL_TZ)
    hours = local.dt.hour + local.dt.minute / 60 + local.dt.second / 3600
    assert (local.dt.date == DAY).all()
    assert hours.min() >= 8.5 - 1 / 3 and hours.max() <= 17.5 + 1 / 3
    starts = hours.groupby(day["worker"]).min()
    assert starts.nunique() == len(starts)  # jittered per worker
    step = steps(day)
    regular = step[step["seconds"] < 60]["seconds"]
    assert regular.between(14.0, 16.0).all()
    assert abs(regular.median() - 15.0) < 0.2
    per_worker = day.groupby("worker").size()
    assert per_worker.between(1700, 2250).all()  # 8–10 h less lunch, every 15 s


def test_every_worker_has_one_lunch_gap(day):
    step = steps(day)
    long = step[step["seconds"] > 120]
    assert long["worker"].value_counts().to_dict() == dict.fromkeys(day["worker"].unique(), 1)
    assert long["seconds"].between(25 * 60, 61 * 60).all()
    local = (day["time"].dt.tz_convert(LOCAL_TZ)).to_numpy()
    began = pd.DatetimeIndex(local[long.index]).tz_localize(None)  # the fix before the gap
    hours = began.hour + began.minute / 60
    assert ((hours >= 11.4) & (hours <= 12.5)).all()


def test_workers_stay_in_their_own_grids(day, grids):
    inside = shapely.contains_xy(
        own_grids(day, grids), day["lon"].to_numpy(), day["lat"].to_numpy()
    )
    assert inside.mean() >= 0.97
    assert pd.Series(inside).groupby(day["worker"].to_numpy()).mean().min() >= 0.95


def test_walking_speeds_are_plausible(day, grids):
    frame = day.assign(_far=(metres_outside(day, grids) > JUMP_M) & (day["accuracy_m"] < 100))
    step = steps(frame)
    step = step[~step["jump"] & (step["seconds"] < 60)]
    speed = step["metres"] / step["seconds"]
    assert speed.quantile(0.95) < 3.0
    assert 0.7 < speed.median() < 1.5
    moving = day["speed_mps"][day["speed_mps"] > 0.5]
    assert moving.median() == pytest.approx(1.2, abs=0.15)


def test_workers_stop_now_and_then(day):
    # A stop: at least 2 min (8 fixes) in a row at walking speed ~0.
    slow = (day["speed_mps"] < 0.5).to_numpy()
    worker = day["worker"].to_numpy()
    change = np.r_[True, (slow[1:] != slow[:-1]) | (worker[1:] != worker[:-1])]
    run = np.cumsum(change)
    runs = (
        pd.DataFrame({"run": run, "slow": slow, "worker": worker})
        .groupby("run")
        .agg(slow=("slow", "first"), worker=("worker", "first"), n=("slow", "size"))
    )
    stops = runs[runs["slow"] & (runs["n"] >= 8)]
    counts = stops["worker"].value_counts().reindex(day["worker"].unique(), fill_value=0)
    assert counts.min() >= 3
    assert stops["n"].max() <= 10 * 4 + 2  # at most 10 min


def test_some_workers_step_next_door_briefly(day, grids):
    outside = metres_outside(day, grids)
    # Several good fixes in a row well beyond the boundary: not GPS error, a visit next door.
    beyond = ((outside > 8) & (outside < 60) & (day["accuracy_m"] < 15)).to_numpy()
    pairs = (
        beyond[1:] & beyond[:-1] & (day["worker"].to_numpy()[1:] == day["worker"].to_numpy()[:-1])
    )
    assert pairs.any()
    assert (outside > 60).mean() < 0.01


def test_accuracy_and_speed_are_reported_like_a_phone(day):
    acc = day["accuracy_m"]
    assert acc.min() >= 3.0
    assert acc.between(3.0, 15.0).mean() >= 0.95
    assert 0.001 < (acc > 100).mean() < 0.012
    network = acc > 100
    assert day["speed_mps"][network].isna().all()
    assert (day["speed_mps"][~network] >= 0).all()  # and so not NaN


def test_rare_jumps_land_2_to_5_km_away(grids):
    # One fix a second gives 15 times as many fixes: enough to see a few ~1/20,000 jumps.
    frame = patrol_day(grids, DAY, interval_s=1.0)
    outside = metres_outside(frame, grids)
    # A network fix's error can be as large, but it owns up to it (accuracy > 100 m).
    jumps = (outside > JUMP_M) & (frame["accuracy_m"] < 100).to_numpy()
    assert 1 <= jumps.sum() <= 40
    assert outside[jumps].max() < 5000.0


# --- determinism and `until` ----------------------------------------------------------------


def test_the_same_seed_gives_the_same_frame_and_another_another(day, grids):
    pd.testing.assert_frame_equal(day, patrol_day(grids, DAY))
    other = patrol_day(grids, DAY, seed=7)
    assert not np.array_equal(day["lon"].to_numpy()[:100], other["lon"].to_numpy()[:100])
    next_day = patrol_day(grids, DAY + dt.timedelta(days=1))
    assert not np.array_equal(day["lon"].to_numpy()[:100], next_day["lon"].to_numpy()[:100])


def test_a_workers_day_does_not_depend_on_the_others(day, grids):
    code = grids["code"].iloc[2]
    alone = patrol_day(grids, DAY, workers={f"gw-{code}": code})
    expected = day[day["worker"] == f"gw-{code}"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, expected)


def test_workers_may_be_named_and_share_a_grid(grids):
    code = grids["code"].iloc[0]
    frame = patrol_day(grids, DAY, workers={"李娜": code, "王伟": code})
    assert list(frame["worker"].unique()) == ["李娜", "王伟"]
    a, b = (frame[frame["worker"] == w] for w in ("李娜", "王伟"))
    assert not np.array_equal(a["lon"].to_numpy()[:50], b["lon"].to_numpy()[:50])
    with pytest.raises(ValueError, match="not among the grids"):
        patrol_day(grids, DAY, workers={"nobody": "999"})


def test_until_cuts_the_day_so_far(day, grids):
    until = dt.datetime(2025, 6, 3, 10, 30, tzinfo=LOCAL_TZ)
    so_far = patrol_day(grids, DAY, until=until)
    expected = day[day["time"] <= pd.Timestamp(until)].reset_index(drop=True)
    pd.testing.assert_frame_equal(so_far, expected)
    assert len(so_far) < len(day) / 3
    early = patrol_day(grids, DAY, until=dt.datetime(2025, 6, 3, 6, 0, tzinfo=LOCAL_TZ))
    assert early.empty and tuple(early.columns) == FIX_COLUMNS
    with pytest.raises(ValueError, match="timezone-aware"):
        patrol_day(grids, DAY, until=dt.datetime(2025, 6, 3, 10, 30))


def test_a_concave_grid_is_walked_without_cutting_its_notch():
    # An L of 240 m × 240 m less its 140 m × 140 m north-east corner.
    x0, y0 = TO_METRIC.transform(117.155, 39.17)
    corners = [(0, 0), (240, 0), (240, 100), (100, 100), (100, 240), (0, 240)]
    moved = [
        shapely.Polygon([(x0 + x, y0 + y) for x, y in corners]),
        shapely.box(x0 + 100, y0 + 100, x0 + 240, y0 + 240),  # the notch
    ]
    lonlat = [
        shapely.transform(g, lambda c: np.column_stack(TO_LONLAT.transform(c[:, 0], c[:, 1])))
        for g in moved
    ]
    grids = gpd.GeoDataFrame({"code": ["L"]}, geometry=[lonlat[0]], crs="EPSG:4490")
    deep = shapely.buffer(moved[1], -20)  # 20 m into the notch: a stray fix, a step next door
    live = walk_live(LiveFeed(grids, always_on=True), dt.datetime(2025, 6, 3, tzinfo=LOCAL_TZ), 480)
    for frame in (patrol_day(grids, DAY), live):
        lon, lat = frame["lon"].to_numpy(), frame["lat"].to_numpy()
        assert shapely.contains_xy(lonlat[0], lon, lat).mean() >= 0.95
        xy = metric(frame)
        assert shapely.contains_xy(deep, xy[:, 0], xy[:, 1]).mean() < 0.01


# --- the live feed --------------------------------------------------------------------------


def walk_live(feed: LiveFeed, start: dt.datetime, n: int) -> pd.DataFrame:
    frames = [feed.step(start + dt.timedelta(seconds=15 * k)) for k in range(n)]
    return pd.concat(frames, ignore_index=True).sort_values(["worker", "time"], kind="stable")


def test_live_feed_walks_each_worker_on(grids):
    night = dt.datetime(2025, 6, 3, 2, 0, tzinfo=LOCAL_TZ)
    feed = LiveFeed(grids, always_on=True)
    frame = walk_live(feed, night, 240).reset_index(drop=True)
    assert tuple(frame.columns) == FIX_COLUMNS
    assert frame.groupby("worker").size().eq(240).all()
    assert frame["client_id"].is_unique
    step = steps(frame.assign(_far=metres_outside(frame, grids) > JUMP_M))
    step = step[~step["jump"]]
    speed = step["metres"] / step["seconds"]
    assert speed.quantile(0.95) < 3.0
    assert 0.5 < speed.median() < 1.5
    inside = shapely.contains_xy(
        own_grids(frame, grids), frame["lon"].to_numpy(), frame["lat"].to_numpy()
    )
    assert inside.mean() >= 0.95
    assert pd.Series(inside).groupby(frame["worker"].to_numpy()).mean().min() >= 0.8
    # The walk goes on: an hour covers much of the grid, not one spot.
    spread = pd.DataFrame(metric(frame), columns=["x", "y"]).groupby(frame["worker"].to_numpy())
    assert (spread.std().min(axis=1) > 10).all()


def test_live_feed_is_deterministic(grids):
    start = dt.datetime(2025, 6, 3, 9, 0, tzinfo=LOCAL_TZ)
    a = walk_live(LiveFeed(grids), start, 20)
    b = walk_live(LiveFeed(grids), start, 20)
    pd.testing.assert_frame_equal(a, b)
    c = walk_live(LiveFeed(grids, seed=7), start, 20)
    assert not np.array_equal(a["lon"].to_numpy(), c["lon"].to_numpy())


def test_live_feed_follows_the_days_shifts_and_lunches(day, grids):
    feed = LiveFeed(grids)
    assert feed.step(dt.datetime(2025, 6, 3, 3, 0, tzinfo=LOCAL_TZ)).empty
    assert set(feed.step(dt.datetime(2025, 6, 3, 10, 0, tzinfo=LOCAL_TZ))["worker"]) == set(
        day["worker"]
    )
    step = steps(day)
    lunch = step[step["seconds"] > 120]
    for i, row in lunch.iterrows():
        middle = day["time"].iloc[i] + pd.Timedelta(seconds=row["seconds"] / 2)
        on = LiveFeed(grids).step(middle.to_pydatetime())
        assert row["worker"] not in set(on["worker"])
    with pytest.raises(ValueError, match="timezone-aware"):
        feed.step(dt.datetime(2025, 6, 3, 10, 0))


def test_live_feed_resumes_where_it_paused(grids):
    feed = LiveFeed(grids)
    before = feed.step(dt.datetime(2025, 6, 3, 11, 0, tzinfo=LOCAL_TZ))
    feed.step(dt.datetime(2025, 6, 3, 23, 0, tzinfo=LOCAL_TZ))  # off shift: nothing, no move
    after = feed.step(dt.datetime(2025, 6, 4, 10, 0, tzinfo=LOCAL_TZ))
    both = before.merge(after, on="worker", suffixes=("_a", "_b"))
    xa, ya = TO_METRIC.transform(both["lon_a"].to_numpy(), both["lat_a"].to_numpy())
    xb, yb = TO_METRIC.transform(both["lon_b"].to_numpy(), both["lat_b"].to_numpy())
    good = (both["accuracy_m_a"] < 15) & (both["accuracy_m_b"] < 15)
    assert (np.hypot(xa - xb, ya - yb)[good] < 60).all()  # GPS error, not a walk
