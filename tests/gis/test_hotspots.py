"""Gi* on a field of square grids: a planted cluster is hot, a flat field is not."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gis.hotspots import (
    aggregate,
    compare_periods,
    distance_band_weights,
    fdr_threshold,
    gi_bins,
    gi_star,
    kde,
    local_moran,
    queen_weights,
)


def squares(n: int) -> gpd.GeoDataFrame:
    cells = [shapely.box(i, j, i + 1, j + 1) for j in range(n) for i in range(n)]
    return gpd.GeoDataFrame({"code": [f"g{k:04d}" for k in range(n * n)]}, geometry=cells)


def test_queen_neighbours_share_an_edge_or_a_corner() -> None:
    w = queen_weights(squares(3))
    assert sorted(w.neighbors["g0004"]) == [f"g{k:04d}" for k in (0, 1, 2, 3, 5, 6, 7, 8)]
    assert sorted(w.neighbors["g0000"]) == ["g0001", "g0003", "g0004"]


def test_a_planted_cluster_is_a_hot_spot_and_its_surroundings_are_not() -> None:
    grids = squares(12)
    rng = np.random.default_rng(7)
    y = rng.poisson(2, len(grids)).astype(float)
    planted = ["g0065", "g0066", "g0077", "g0078"]  # a 2 x 2 block in the middle
    index = {c: i for i, c in enumerate(grids["code"])}
    for code in planted:
        y[index[code]] = 25
    got = gi_star(y, queen_weights(grids))
    assert (got.loc[planted, "z"] > 2.58).all() and (got.loc[planted, "p"] < 0.01).all()
    far = [c for c in grids["code"] if c[-2:] in ("00", "01") and c not in planted]
    assert (got.loc[far, "z"] < 1.96).all()
    # With permutations the same grids come out, from the permutation p-values.
    perm = gi_star(y, queen_weights(grids), permutations=199, seed=1)
    assert (perm.loc[planted, "p"] <= 0.01).all()


def test_a_flat_field_has_no_hot_spot_and_bad_input_is_refused() -> None:
    w = queen_weights(squares(4))
    flat = gi_star(np.full(16, 3.0), w)
    assert (flat["z"] == 0).all() and (flat["p"] == 1).all()
    with pytest.raises(ValueError, match="15 values for 16 areas"):
        gi_star(np.ones(15), w)


def test_fdr_bins_mark_a_planted_cluster_hot_and_leave_a_random_field_alone() -> None:
    grids = squares(20)
    w = queen_weights(grids)
    rng = np.random.default_rng(11)
    noise = rng.poisson(3, len(grids)).astype(float)
    # A random field: some raw p < 0.05 by chance, none after the FDR correction.
    plain = gi_star(noise, w)
    assert (plain["p"] < 0.05).any()
    assert (gi_bins(plain["z"], plain["p"]) == 0).all()
    assert (gi_bins(plain["z"], plain["p"], fdr=False) != 0).any()
    # A planted block of high counts: 99 % hot spots.
    planted = [f"g{r * 20 + c:04d}" for r in (9, 10, 11) for c in (9, 10, 11)]
    y = noise.copy()
    index = {code: i for i, code in enumerate(grids["code"])}
    for code in planted:
        y[index[code]] = 30
    got = gi_star(y, w)
    bins = dict(zip(got.index, gi_bins(got["z"], got["p"]), strict=True))
    assert all(bins[code] == 3 for code in planted)
    assert min(bins.values()) >= -1  # nothing strongly cold appears


def test_the_benjamini_hochberg_cut_off() -> None:
    assert fdr_threshold([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205], 0.05) == 0.008
    assert fdr_threshold([0.2, 0.5, 0.9], 0.05) == 0.0
    assert fdr_threshold([0.001, 0.002], 0.05) == 0.002  # all pass: no Bonferroni fallback


def test_local_moran_finds_the_high_high_cluster_and_a_lone_high_outlier() -> None:
    grids = squares(15)
    w = queen_weights(grids)
    rng = np.random.default_rng(5)
    y = rng.poisson(2, len(grids)).astype(float)
    index = {code: i for i, code in enumerate(grids["code"])}
    block = [f"g{r * 15 + c:04d}" for r in (2, 3, 4) for c in (2, 3, 4)]
    for code in block:
        y[index[code]] = 25
    lone = "g0172"  # row 11, column 7: far from the block
    y[index[lone]] = 40
    for code in w.neighbors[lone]:
        y[index[code]] = 0
    got = local_moran(y, w, permutations=499, seed=3)
    assert (got.loc[block, "cluster"] == "HH").sum() >= 7  # the block's edge may test weaker
    assert got.loc["g0048", "cluster"] == "HH"  # its centre
    assert got.loc[lone, "cluster"] == "HL"
    assert (got["cluster"] == "LL").sum() < 0.1 * len(grids)
    flat = local_moran(np.ones(len(grids)), w)
    assert (flat["cluster"] == "").all() and (flat["p"] == 1).all()


def test_distance_band_neighbours_are_the_grids_within_the_band() -> None:
    grids = squares(4).set_crs(3857)  # unit squares: centres 1 m apart in a metric CRS
    w = distance_band_weights(grids, 1.01, metric_crs=3857)
    assert sorted(w.neighbors["g0005"]) == ["g0001", "g0004", "g0006", "g0009"]  # no corners
    w = distance_band_weights(grids, 1.5, metric_crs=3857)
    assert len(w.neighbors["g0005"]) == 8
    with pytest.raises(ValueError, match="positive"):
        distance_band_weights(grids, 0, metric_crs=3857)


def test_aggregate_counts_every_period_with_rates_and_zeros() -> None:
    cases = pd.DataFrame(
        {
            "code": ["a", "a", "a", "b"],
            # Monday 5 Jan and Sunday 11 Jan are one week; Monday 12 Jan starts the next.
            "at": pd.to_datetime(["2026-01-05 08:00", "2026-01-11 23:59", "2026-01-12 00:00",
                                  "2026-02-02 12:00"]),
            "class_code": ["E0101", "E0101", "P0101", "E0101"],
        }
    )  # fmt: skip
    regions = pd.DataFrame(
        {"code": ["a", "b", "park"], "population": [2000, 500, 0], "area_m2": [5e5, 1e6, 2e5]}
    )
    weekly = aggregate(cases, regions, period="week", start="2026-01-05", end="2026-02-08")
    assert len(weekly) == 3 * 5  # every region, every week, quiet weeks included
    a = weekly[weekly["code"] == "a"].set_index("start")["count"]
    assert list(a) == [2, 1, 0, 0, 0]
    first = weekly[(weekly["code"] == "a")].iloc[0]
    assert first["per_1000"] == pytest.approx(1.0) and first["per_km2"] == pytest.approx(4.0)
    assert weekly[weekly["code"] == "park"]["per_1000"].isna().all()  # nobody lives there
    monthly = aggregate(cases, regions, period="month", start="2026-01-01", end="2026-02-28",
                        by_class=True)  # fmt: skip
    got = monthly.set_index(["code", "class_code", "start"])["count"]
    assert got[("a", "E0101", pd.Timestamp("2026-01-01"))] == 2
    assert got[("a", "P0101", pd.Timestamp("2026-01-01"))] == 1
    assert got[("b", "E0101", pd.Timestamp("2026-02-01"))] == 1
    assert monthly["count"].sum() == len(cases)
    with pytest.raises(ValueError, match="period"):
        aggregate(cases, regions, period="year", start="2026-01-01", end="2026-02-28")


def test_kernel_density_integrates_to_the_case_count_and_peaks_at_the_cluster() -> None:
    rng = np.random.default_rng(3)
    cluster = rng.normal([500, 500], 20, size=(200, 2))
    scattered = rng.uniform(0, 1000, size=(50, 2))
    xs, ys, density = kde(np.vstack([cluster, scattered]), bounds=(0, 0, 1000, 1000),
                          cell_m=10, bandwidth_m=100)  # fmt: skip
    assert density.shape == (len(ys), len(xs))
    # Cases per km² over cells of 10 m x 10 m (1e-4 km²): the surface holds every case.
    assert density.sum() * 1e-4 == pytest.approx(250, rel=0.02)
    row, col = np.unravel_index(np.argmax(density), density.shape)
    assert abs(xs[col] - 500) < 30 and abs(ys[row] - 500) < 30
    with pytest.raises(ValueError):
        kde(cluster, bounds=(0, 0, 1000, 1000), bandwidth_m=0)


def test_period_comparison_flags_a_real_rise_and_not_noise() -> None:
    got = compare_periods([40, 11, 0, 7], [10, 9, 0, 7])
    assert list(got["change"]) == [30, 2, 0, 0]
    assert got.loc[0, "change_pct"] == pytest.approx(300.0)
    assert np.isnan(got.loc[2, "change_pct"])  # from nothing: no percentage
    assert list(got["significant"]) == [True, False, False, False]
    assert got.loc[0, "p"] < 0.001 and got.loc[1, "p"] > 0.5
    # Fields of 500 regions with no change in rate: after the FDR correction a field shows a
    # false change in at most ~5 % of cases (one seed in twenty does, by chance).
    fields = [np.random.default_rng(seed) for seed in range(40)]
    noisy = sum(compare_periods(r.poisson(30, 500), r.poisson(30, 500))["significant"].any()
                for r in fields)  # fmt: skip
    assert noisy <= 4
    with pytest.raises(ValueError):
        compare_periods([1, 2], [1])
