"""Emerging hot spots on fields of square grids: planted histories get ArcGIS's categories, a
random field gets none, and the space-time Gi* is esda's."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pymannkendall
import pytest
import shapely
from esda.getisord import G_Local
from libpysal.weights import W

from gis.emerging import (
    CATEGORIES,
    _category,
    _mann_kendall,
    emerging_hotspots,
    space_time_gi,
)
from gis.hotspots import gi_star, queen_weights

WEEKS = 20
WEEK = np.arange(WEEKS)


def squares(n: int) -> gpd.GeoDataFrame:
    cells = [shapely.box(i, j, i + 1, j + 1) for j in range(n) for i in range(n)]
    return gpd.GeoDataFrame({"code": [f"g{k:04d}" for k in range(n * n)]}, geometry=cells)


def block(n: int, row: int, col: int, size: int = 2) -> list[int]:
    """Row numbers (in ``squares(n)`` order) of a size × size block of grids."""
    return [r * n + c for r in range(row, row + size) for c in range(col, col + size)]


def test_the_categories_are_arcgis_seventeen_in_order() -> None:
    assert len(CATEGORIES) == 17 and CATEGORIES[-1] == "no pattern"
    assert CATEGORIES[:3] == ("new hot spot", "consecutive hot spot", "intensifying hot spot")
    assert CATEGORIES[7:9] == ("historical hot spot", "new cold spot")


def test_without_a_time_window_and_per_bin_moments_it_is_gi_star_per_bin() -> None:
    w = queen_weights(squares(10))
    rng = np.random.default_rng(1)
    y = rng.poisson(3, (100, 6)).astype(float)
    y[block(10, 4, 4), 2] = 20  # a cluster in one bin
    y[:, 4] = 5  # a flat bin: z = 0, p = 1 as gi_star gives
    z, p = space_time_gi(y, w, time_window=0, global_window="neighbourhood")
    for t in range(6):
        expected = gi_star(y[:, t], w)
        np.testing.assert_allclose(z[:, t], expected["z"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(p[:, t], expected["p"], rtol=0, atol=1e-9)
    assert (z[block(10, 4, 4), 2] > 3).all()
    # Against the whole cube instead, a week busy everywhere is hot everywhere.
    y[:, 5] += 6
    cube, _ = space_time_gi(y, w, time_window=0)
    per_bin, _ = space_time_gi(y, w, time_window=0, global_window="neighbourhood")
    assert (cube[:, 5] > 1.96).mean() > 0.9 and (per_bin[:, 5] > 1.96).mean() < 0.1


def _space_time_weights(w: W, n_bins: int, time_window: int) -> W:
    """The space-time neighbours spelled out bin by bin, to check the sparse arithmetic."""
    ids = w.id_order
    neighbours = {}
    for i, area in enumerate(ids):
        for t in range(n_bins):
            neighbours[i * n_bins + t] = [
                ids.index(other) * n_bins + s
                for other in [area, *w.neighbors[area]]
                for s in range(max(0, t - time_window), t + 1)
            ]
    return W(neighbours, silence_warnings=True)


def test_the_space_time_gi_is_esdas_over_the_space_time_neighbours() -> None:
    w = queen_weights(squares(5))
    rng = np.random.default_rng(2)
    y = rng.poisson(4, (25, 6)).astype(float)
    y[block(5, 1, 1), 3:] += 10
    z, p = space_time_gi(y, w, time_window=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = G_Local(y.ravel(), _space_time_weights(w, 6, 2), transform="B", star=True,
                    permutations=0)  # fmt: skip
    np.testing.assert_allclose(z.ravel(), g.Zs, rtol=0, atol=1e-9)
    np.testing.assert_allclose(p.ravel(), 2 * g.p_norm, rtol=0, atol=1e-9)
    # Per-window moments: the last bin is esda's Gi* over bins 3..5 alone.
    z_window, _ = space_time_gi(y, w, time_window=2, global_window="neighbourhood")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = G_Local(y[:, 3:].ravel(), _space_time_weights(w, 3, 2), transform="B", star=True,
                    permutations=0)  # fmt: skip
    np.testing.assert_allclose(z_window[:, -1], g.Zs.reshape(25, 3)[:, -1], rtol=0, atol=1e-9)


def test_a_steadily_growing_cluster_is_an_intensifying_hot_spot() -> None:
    grids = squares(12)
    rng = np.random.default_rng(7)
    counts = rng.poisson(2, (144, WEEKS)).astype(float)
    planted = block(12, 5, 5)  # a 2 x 2 block in the middle
    counts[planted] = rng.poisson(10 + 2 * WEEK, (4, WEEKS))  # hot from the start, rising
    got = emerging_hotspots(counts, queen_weights(grids))
    codes = grids["code"].iloc[planted]
    assert (got.loc[codes, "category"] == "intensifying hot spot").all()
    assert (got.loc[codes, "trend"] == "increasing").all()
    assert (got.loc[codes, "trend_tau"] > 0.5).all() and (got.loc[codes, "trend_p"] < 0.05).all()
    assert (got.loc[codes, "share_hot"] >= 0.9).all() and (got.loc[codes, "gi_bin"] == 3).all()
    assert (got.loc[codes, "cold_bins"] == 0).all()
    assert list(got.columns) == ["category", "trend_tau", "trend_p", "trend", "gi_z", "gi_p",
                                 "gi_bin", "hot_bins", "cold_bins", "share_hot"]  # fmt: skip
    assert list(got.index) == list(grids["code"])


def test_planted_histories_get_their_hot_spot_categories() -> None:
    n = 24
    grids = squares(n)
    rng = np.random.default_rng(4)
    counts = rng.poisson(2, (n * n, WEEKS)).astype(float)
    # Blocks far enough apart that no grid neighbours two of them; 0 = leave the background.
    plans = {
        "new hot spot": (block(n, 2, 2), np.where(WEEK == WEEKS - 1, 30.0, 0)),
        "consecutive hot spot": (block(n, 2, 10), np.where(WEEK >= WEEKS - 4, 30.0, 0)),
        "persistent hot spot": (block(n, 2, 17, size=3), np.full(WEEKS, 25.0)),
        # Gone from the final two weeks: the final week's window reaches back one week.
        "historical hot spot": (block(n, 10, 2), np.where(WEEK < WEEKS - 2, 30.0, 0)),
        "diminishing hot spot": (block(n, 10, 10), 60.0 - 2 * WEEK),
    }
    for cells, level in plans.values():
        counts[cells] = np.where(level > 0, level, counts[cells])
    got = emerging_hotspots(counts, queen_weights(grids))
    for category, (cells, _) in plans.items():
        if category != "persistent hot spot":
            assert list(got["category"].iloc[cells]) == [category] * 4, category
    # A steady level: the centre's whole neighbourhood is the block, so its z is the same every
    # week (but the first, with no week before it). The block's edge grids see background noise,
    # which Mann-Kendall may read as a trend: hot all along either way.
    steady = got.iloc[plans["persistent hot spot"][0]]
    assert steady["category"].iloc[4] == "persistent hot spot"
    assert steady["trend"].iloc[4] == "no trend" and steady["trend_p"].iloc[4] == 1.0
    assert steady["category"].str.contains("persistent|intensifying|diminishing").all()
    assert (steady["share_hot"] >= 0.9).all()
    new = got.iloc[plans["new hot spot"][0]]
    assert (new["hot_bins"] == 1).all() and (new["gi_bin"] == 3).all()
    assert (got.iloc[plans["consecutive hot spot"][0]]["hot_bins"] == 4).all()
    historical = got.iloc[plans["historical hot spot"][0]]
    assert (historical["share_hot"] >= 0.9).all() and (historical["gi_bin"] <= 0).all()
    assert (got.iloc[plans["diminishing hot spot"][0]]["trend"] == "decreasing").all()
    assert (got["category"] == "no pattern").mean() > 0.8  # the background far from the blocks


def test_holes_in_a_busy_field_are_cold_spots() -> None:
    n = 16
    grids = squares(n)
    rng = np.random.default_rng(5)
    counts = rng.poisson(10, (n * n, WEEKS)).astype(float)
    quiet_lately = block(n, 3, 3)
    counts[quiet_lately, WEEKS - 4 :] = 0
    hole = block(n, 10, 10, size=3)  # its centre has only empty neighbours
    counts[hole, -1] = 0
    got = emerging_hotspots(counts, queen_weights(grids))
    assert list(got["category"].iloc[quiet_lately]) == ["consecutive cold spot"] * 4
    assert got["cold_bins"].iloc[quiet_lately].between(3, 4).all()  # the first week half-empty
    centre = hole[4]
    assert got["category"].iloc[centre] == "new cold spot"
    assert got["gi_bin"].iloc[centre] == -3 and got["gi_z"].iloc[centre] < -3


def test_a_random_field_shows_almost_no_pattern() -> None:
    n = 20
    w = queen_weights(squares(n))
    rng = np.random.default_rng(6)
    counts = rng.poisson(3, (n * n, WEEKS)).astype(float)
    got = emerging_hotspots(counts, w)
    patterned = got["category"] != "no pattern"
    assert patterned.mean() <= 0.02
    assert (got["hot_bins"] + got["cold_bins"]).sum() <= 0.01 * n * n * WEEKS
    # Without the FDR correction, chance alone makes patterns: the correction is what stops them.
    assert (emerging_hotspots(counts, w, fdr=False)["category"] != "no pattern").mean() > 0.02


def test_the_categories_follow_the_published_definitions() -> None:
    def cat(hot: str, cold: str = "", trend: str = "no trend") -> str:
        """``_category`` of 20 bins drawn as text: x significant, . not."""
        hot_bins, cold_bins = (np.array([c == "x" for c in s.ljust(20, ".")]) for s in (hot, cold))
        return _category(hot_bins, cold_bins, trend)

    assert cat("." * 19 + "x") == "new hot spot"
    assert cat("." * 16 + "xxxx") == "consecutive hot spot"
    assert cat("x" * 20, trend="increasing") == "intensifying hot spot"
    assert cat("." + "x" * 19) == "persistent hot spot"  # 95 % hot: one miss is allowed
    assert cat("x" * 20, trend="decreasing") == "diminishing hot spot"
    assert cat("..x..x....xx....x..x") == "sporadic hot spot"
    assert cat("........xx.........x", cold="xx") == "oscillating hot spot"
    assert cat("x" * 18 + "..") == "historical hot spot"
    assert cat("x" * 17 + "...") == "no pattern"  # 85 % hot and not hot now
    assert cat("..x" + "." * 15 + "xx") == "sporadic hot spot"  # a run, but hot before it
    # Cold mirrors hot, trend included: a cold spot intensifies as its z falls.
    assert cat("", cold="x" * 20, trend="decreasing") == "intensifying cold spot"
    assert cat("", cold="x" * 20, trend="increasing") == "diminishing cold spot"
    assert cat("", cold="." * 17 + "xxx") == "consecutive cold spot"
    # Where two definitions fit, the first in CATEGORIES wins.
    assert cat("." * 19 + "x", cold="xx") == "new hot spot"  # over oscillating
    long_hot_now_cold = cat("x" * 19 + ".", cold="." * 19 + "x")
    assert long_hot_now_cold == "historical hot spot"  # over oscillating cold


def test_the_trend_is_pymannkendalls_original_test() -> None:
    rng = np.random.default_rng(8)
    series = np.vstack([
        rng.normal(size=(5, 30)),
        np.arange(30.0) + rng.normal(size=30),
        np.round(rng.normal(size=30), 1),  # ties
        np.r_[np.zeros(20), np.ones(10)],  # heavy ties
        np.zeros(30),  # constant: no trend, p = 1
    ])  # fmt: skip
    tau, p, trend = _mann_kendall(series, 0.05)
    for i, row in enumerate(series):
        expected = pymannkendall.original_test(row, alpha=0.05)
        assert tau[i] == pytest.approx(expected.Tau, abs=1e-12)
        assert p[i] == pytest.approx(expected.p, abs=1e-12)
        assert trend[i] == expected.trend
    assert trend[5] == "increasing" and p[-1] == 1.0


def test_permutation_p_values_find_the_planted_cluster() -> None:
    w = queen_weights(squares(8))
    rng = np.random.default_rng(9)
    counts = rng.poisson(2, (64, 5)).astype(float)
    planted = block(8, 3, 3)
    counts[planted] = 15
    z, p = space_time_gi(counts, w, permutations=99, seed=1)
    assert (p[planted] <= 0.02).all() and (z[planted] > 3).all()
    assert p.min() >= 0.0099 and np.median(p) > 0.1  # pseudo p: (1 + as extreme) / (99 + 1)
    _, p_window = space_time_gi(counts, w, permutations=99, seed=1, global_window="neighbourhood")
    assert (p_window[planted] <= 0.02).all()


def test_bad_input_is_refused_and_a_flat_cube_has_no_pattern() -> None:
    w = queen_weights(squares(4))
    with pytest.raises(ValueError, match=r"15 rows .* 16 areas"):
        emerging_hotspots(np.ones((15, 10)), w)
    with pytest.raises(ValueError, match="at least 2 time bins"):
        emerging_hotspots(np.ones((16, 1)), w)
    with pytest.raises(ValueError, match="2-D"):
        space_time_gi(np.ones(16), w)
    with pytest.raises(ValueError, match="finite"):
        space_time_gi(np.full((16, 3), np.nan), w)
    with pytest.raises(ValueError, match="time_window"):
        space_time_gi(np.ones((16, 3)), w, time_window=-1)
    with pytest.raises(ValueError, match="global_window"):
        space_time_gi(np.ones((16, 3)), w, global_window="week")  # type: ignore[arg-type]
    # A window longer than the series reaches back to the first bin, no further.
    y = np.random.default_rng(10).poisson(3, (16, 4)).astype(float)
    np.testing.assert_array_equal(space_time_gi(y, w, time_window=9)[0],
                                  space_time_gi(y, w, time_window=3)[0])  # fmt: skip
    flat = emerging_hotspots(np.full((16, 12), 4.0), w)
    assert (flat["category"] == "no pattern").all()
    assert (flat["gi_z"] == 0).all() and (flat["gi_p"] == 1).all()
    assert (flat["trend"] == "no trend").all()
