"""Gi* on a field of square grids: a planted cluster is hot, a flat field is not."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis.hotspots import fdr_threshold, gi_bins, gi_star, local_moran, queen_weights


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
