"""Gi* on a field of square grids: a planted cluster is hot, a flat field is not."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from gis.hotspots import gi_star, queen_weights


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
