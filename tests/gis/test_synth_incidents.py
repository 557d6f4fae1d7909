"""gis.synth.incident_activity: a deterministic, realistic stream of incident reports."""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from gis.synth import SOURCES_MIX, generate, incident_activity

CST = dt.timezone(dt.timedelta(hours=8))
END = dt.datetime(2025, 6, 1, tzinfo=CST)
PER_DAY = 800.0
YEAR = 365
LIFECYCLE = ["filed_at", "dispatched_at", "accepted_at", "handled_at", "verified_at", "closed_at"]
COLUMNS = ["reported_at", "lon", "lat", "grid_code", "class_code", "source", *LIFECYCLE,
           "final_status", "rework_count", "extension_count", "merged_into"]  # fmt: skip
STATUSES = {"reported", "filed", "not_filed", "dispatched", "handling", "handled", "verified",
            "closed", "parked", "merged"}  # fmt: skip
OPEN = {"reported", "filed", "dispatched", "handling", "handled", "verified", "parked"}
# The last timestamp each status has (None: not even filed) and the first it must not have.
STATUS_STAMPS = {
    "reported": (None, "filed_at"),
    "not_filed": (None, "filed_at"),
    "filed": ("filed_at", "dispatched_at"),
    "dispatched": ("dispatched_at", "accepted_at"),
    "handling": ("accepted_at", "handled_at"),
    "handled": ("handled_at", "verified_at"),
    "verified": ("verified_at", "closed_at"),
    "closed": ("closed_at", None),
}
CLASSES = pd.DataFrame(
    {
        "code": ["E0101", "E0501", "E0201", "E0302", "P0103", "P0501", "S0201", "S0101"],
        "weight": [10.0, 8.0, 6.0, 3.0, 4.0, 2.0, 5.0, 3.0],
    }
)


@pytest.fixture(scope="module")
def grids() -> gpd.GeoDataFrame:
    frame = generate()
    return frame[frame["level"] == "grid"][["code", "geometry"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def year_run(grids) -> tuple[pd.DataFrame, float]:
    """A year at Hongqiao's volume over the 992 demo grids, generated once, and its run time."""
    began = time.perf_counter()
    frame = incident_activity(grids, CLASSES, days=YEAR, end=END, per_day=PER_DAY)
    return frame, time.perf_counter() - began


@pytest.fixture(scope="module")
def year(year_run) -> pd.DataFrame:
    return year_run[0]


def older_than(frame: pd.DataFrame, days: int) -> pd.DataFrame:
    return frame[frame["reported_at"] < pd.Timestamp(END) - pd.Timedelta(days=days)]


# --- shape and determinism -------------------------------------------------------------------


def test_same_arguments_give_the_same_frame(grids):
    first = incident_activity(grids, CLASSES, days=30, end=END)
    again = incident_activity(grids, CLASSES, days=30, end=END)
    pd.testing.assert_frame_equal(first, again)
    other = incident_activity(grids, CLASSES, days=30, end=END, seed=7)
    assert not first[["lon", "lat"]].head(100).equals(other[["lon", "lat"]].head(100))


def test_columns_and_dtypes(year):
    assert list(year.columns) == COLUMNS
    assert isinstance(year.index, pd.RangeIndex) and year.index[0] == 0
    for name in ["reported_at", *LIFECYCLE]:
        assert isinstance(year[name].dtype, pd.DatetimeTZDtype), name
        assert year[name].dt.tz.utcoffset(None) == dt.timedelta(hours=8)
    assert year["reported_at"].notna().all()
    assert year["lon"].dtype == np.float64 and year["lat"].dtype == np.float64
    assert year["rework_count"].dtype == np.int64 and year["extension_count"].dtype == np.int64
    assert year["merged_into"].dtype == "Int64"
    assert set(year["final_status"]) <= STATUSES
    assert set(year["source"]) <= set(SOURCES_MIX)
    assert set(year["class_code"]) <= set(CLASSES["code"])


def test_sources_mix_is_a_distribution_led_by_patrols():
    assert set(SOURCES_MIX) == {"patrol", "hotline", "app", "resident", "superior", "petition",
                                "video"}  # fmt: skip
    assert sum(SOURCES_MIX.values()) == pytest.approx(1.0)
    assert max(SOURCES_MIX, key=SOURCES_MIX.__getitem__) == "patrol"
    assert SOURCES_MIX["patrol"] == pytest.approx(0.55, abs=0.05)
    assert SOURCES_MIX["hotline"] == pytest.approx(0.20, abs=0.05)


def test_an_empty_window_gives_an_empty_frame_with_the_columns(grids):
    empty = incident_activity(grids, CLASSES, days=0, end=END)
    assert empty.empty and list(empty.columns) == COLUMNS
    assert isinstance(empty["closed_at"].dtype, pd.DatetimeTZDtype)


def test_a_naive_end_is_refused(grids):
    with pytest.raises(ValueError, match="timezone-aware"):
        incident_activity(grids, CLASSES, days=1, end=dt.datetime(2025, 6, 1))


def test_gis_stays_free_of_the_web_app_and_the_database():
    code = (
        "import sys, gis.synth; "
        "bad = {m for m in sys.modules if m.split('.')[0] in {'app', 'fastapi', 'sqlalchemy'}}; "
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- volume, time and place ------------------------------------------------------------------


def test_volume_is_per_day_times_days(year, grids):
    assert len(year) == pytest.approx(PER_DAY * YEAR, rel=0.1)
    small = incident_activity(grids, CLASSES, days=10, end=END, per_day=100.0)
    assert len(small) == pytest.approx(1000, rel=0.1)


def test_reports_cover_the_window_in_order(year):
    reported = year["reported_at"]
    assert reported.is_monotonic_increasing
    assert reported.min() >= pd.Timestamp(END) - pd.Timedelta(days=YEAR)
    assert reported.max() < pd.Timestamp(END)
    assert reported.min() < pd.Timestamp(END) - pd.Timedelta(days=YEAR - 1)


def test_an_end_off_the_hour_in_another_zone_is_respected(grids):
    end = dt.datetime(2025, 3, 4, 9, 30, 15, 250_000, tzinfo=dt.UTC)
    frame = incident_activity(grids, CLASSES, days=2, end=end, per_day=200.0)
    assert frame["reported_at"].dt.tz.utcoffset(None) == dt.timedelta(0)
    assert frame["reported_at"].min() >= pd.Timestamp(end) - pd.Timedelta(days=2)
    for name in ["reported_at", *LIFECYCLE]:
        assert (frame[name].dropna() < pd.Timestamp(end)).all(), name


def test_every_point_lies_in_its_grid(year, grids):
    polygons = dict(zip(grids["code"], grids.geometry, strict=True))
    geoms = np.array([polygons[code] for code in year["grid_code"]], dtype=object)
    assert shapely.contains_xy(geoms, year["lon"].to_numpy(), year["lat"].to_numpy()).all()


def test_most_reports_come_in_working_hours_and_fewer_at_weekends(year):
    hour = year["reported_at"].dt.hour
    assert ((hour >= 7) & (hour < 20)).mean() > 0.8
    assert (hour < 5).mean() < 0.03
    per_weekday = year["reported_at"].dt.day_of_week.value_counts()
    assert per_weekday[[5, 6]].mean() < 0.8 * per_weekday[[0, 1, 2, 3, 4]].mean()


def test_volume_grows_mildly_over_the_year(year):
    first = year["reported_at"] < pd.Timestamp(END) - pd.Timedelta(days=YEAR - 91)
    last = year["reported_at"] >= pd.Timestamp(END) - pd.Timedelta(days=91)
    assert 1.03 < last.sum() / first.sum() < 1.2


def test_sources_follow_the_mix(year):
    share = year["source"].value_counts(normalize=True)
    for source, expected in SOURCES_MIX.items():
        assert share[source] == pytest.approx(expected, rel=0.15, abs=0.005), source


def test_patrols_keep_working_hours_and_the_hotline_does_not(year):
    night = year["reported_at"].dt.hour.isin([0, 1, 2, 3, 4])
    by_source = night.groupby(year["source"]).mean()
    assert by_source["patrol"] < 0.01
    assert by_source["hotline"] > 3 * by_source["patrol"]
    assert by_source["video"] > by_source["hotline"]


# --- spatial skew ----------------------------------------------------------------------------


def counts_per_grid(frame: pd.DataFrame, grids: gpd.GeoDataFrame) -> np.ndarray:
    return frame["grid_code"].value_counts().reindex(grids["code"], fill_value=0).to_numpy()


def test_the_busiest_grids_hold_far_more_than_their_share(year, grids):
    counts = np.sort(counts_per_grid(year, grids))[::-1]
    top = counts[: len(counts) // 20].sum() / counts.sum()
    assert top >= 0.15
    assert counts.min() > 0  # the background keeps every grid alive


def test_getis_ord_finds_significant_hot_spot_clusters(year, grids):
    counts = counts_per_grid(year, grids).astype(float)
    centroids = shapely.centroid(grids.geometry.to_numpy())
    mx = 111_320.0 * np.cos(np.radians(39.17))
    x, y = shapely.get_x(centroids) * mx, shapely.get_y(centroids) * 110_990.0
    w = (np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) <= 400.0).astype(float)
    n, mean = len(counts), counts.mean()
    sd = np.sqrt((counts**2).mean() - mean**2)
    wi = w.sum(axis=1)
    z = (w @ counts - mean * wi) / (sd * np.sqrt((n * (w**2).sum(axis=1) - wi**2) / (n - 1)))
    hot = z > 3.29  # p < 0.001, two-sided
    assert hot.sum() >= 20
    # Several separate clusters, not one blob: hot grids lie more than 1.5 km apart.
    hx, hy = x[hot], y[hot]
    assert np.hypot(hx[:, None] - hx[None, :], hy[:, None] - hy[None, :]).max() > 1500.0


# --- the closed loop -------------------------------------------------------------------------


def test_lifecycle_timestamps_are_ordered_and_reached_in_order(year):
    columns = ["reported_at", *LIFECYCLE]
    for earlier, later in itertools.pairwise(columns):
        both = year[earlier].notna() & year[later].notna()
        assert (year.loc[both, earlier] <= year.loc[both, later]).all(), (earlier, later)
        # A later step is never reached without the one before.
        assert not (year[later].notna() & year[earlier].isna()).any(), (earlier, later)


def test_final_status_matches_the_timestamps(year):
    for status, (last, first_missing) in STATUS_STAMPS.items():
        rows = year[year["final_status"] == status]
        if last is not None:
            assert rows[last].notna().all(), status
        if first_missing is not None:
            assert rows[first_missing].isna().all(), status
    parked = year[year["final_status"] == "parked"]
    assert parked["filed_at"].notna().all() and parked["handled_at"].isna().all()
    merged = year[year["final_status"] == "merged"]
    assert merged["dispatched_at"].isna().all()
    assert (year["merged_into"].notna() == (year["final_status"] == "merged")).all()
    assert (year.loc[year["handled_at"].isna(), "rework_count"] <= 1).all()
    assert (year.loc[year["accepted_at"].isna() & year["dispatched_at"].isna(),
                     "extension_count"] == 0).all()  # fmt: skip


def test_old_cases_are_closed(year):
    old = older_than(year, 14)
    cases = old[~old["final_status"].isin(["not_filed", "merged"])]
    # The closure rate counts filed cases; refusals and duplicates are outcomes of their own.
    assert (cases["final_status"] == "closed").mean() >= 0.97
    assert (cases["final_status"] == "closed").mean() == pytest.approx(0.99, abs=0.005)
    assert not old["final_status"].isin(["reported", "filed", "verified"]).any()


def test_closed_share_is_a_knob(grids):
    frame = incident_activity(grids, CLASSES, days=60, end=END, closed_share=0.9)
    old = older_than(frame, 14)
    cases = old[~old["final_status"].isin(["not_filed", "merged"])]
    assert (cases["final_status"] == "closed").mean() == pytest.approx(0.9, abs=0.02)


def test_side_paths_have_realistic_shares(year):
    status = year["final_status"].value_counts(normalize=True)
    assert status["not_filed"] == pytest.approx(0.02, abs=0.007)
    assert status["merged"] == pytest.approx(0.01, abs=0.004)
    assert status["parked"] == pytest.approx(0.003, abs=0.002)
    handled = year[year["handled_at"].notna()]
    assert handled["rework_count"].mean() == pytest.approx(0.04, abs=0.01)
    assert (handled["extension_count"] > 0).mean() == pytest.approx(0.03, abs=0.01)
    assert set(year["rework_count"]) <= {0, 1} and set(year["extension_count"]) <= {0, 1, 2}


def test_recent_cases_are_often_open_in_several_states(year):
    recent = year[year["reported_at"] >= pd.Timestamp(END) - pd.Timedelta(days=3)]
    states = recent["final_status"].value_counts()
    assert recent["final_status"].isin(OPEN).mean() > 0.1
    assert len(set(states.index) & OPEN) >= 4
    assert states.get("handling", 0) > 0 and states.get("handled", 0) > 0


def test_merged_reports_point_to_an_earlier_nearby_report_of_the_same_class(year):
    merged = year[year["merged_into"].notna()]
    assert len(merged) > 0
    targets = year.loc[merged["merged_into"].astype(int).to_numpy()]
    assert (targets.index.to_numpy() < merged.index.to_numpy()).all()
    assert (targets["class_code"].to_numpy() == merged["class_code"].to_numpy()).all()
    lag = merged["reported_at"].reset_index(drop=True) - targets["reported_at"].reset_index(
        drop=True
    )
    assert (lag > pd.Timedelta(0)).all() and (lag <= pd.Timedelta(hours=72)).all()
    _, _, metres = Geod(ellps="GRS80").inv(
        merged["lon"].to_numpy(), merged["lat"].to_numpy(),
        targets["lon"].to_numpy(), targets["lat"].to_numpy(),
    )  # fmt: skip
    assert (metres <= 300.5).all()
    assert not targets["final_status"].isin(["merged", "not_filed"]).any()


def test_step_durations_are_realistic_and_right_skewed(year):
    daytime = year["reported_at"].dt.hour.between(8, 17)
    filing = (year.loc[daytime, "filed_at"] - year.loc[daytime, "reported_at"]).dropna()
    assert filing.median() < pd.Timedelta(minutes=30)
    assert filing.quantile(0.9) <= pd.Timedelta(hours=1)
    dispatch = (year["dispatched_at"] - year["filed_at"]).dropna()
    assert dispatch.median() < pd.Timedelta(hours=1)
    handling = (year["handled_at"] - year["accepted_at"]).dropna()
    assert handling.mean() > 1.3 * handling.median()  # right-skewed
    by_kind = handling.groupby(year["class_code"].str[0]).median()
    assert by_kind["E"] < pd.Timedelta(hours=12) < by_kind["P"] < by_kind["S"]
    assert handling.max() > pd.Timedelta(days=2)
    verify = (year["verified_at"] - year["handled_at"]).dropna()
    assert verify.median() < pd.Timedelta(hours=6)
    whole = (year["closed_at"] - year["reported_at"]).dropna()
    assert whole.max() < pd.Timedelta(days=14)
