"""Hot spots on the grids: Getis-Ord Gi* (PySAL esda) on queen contiguity.

Pure functions over GeoDataFrames and arrays, usable from a notebook without a server.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
from esda.getisord import G_Local
from libpysal.weights import Queen, W

__all__ = ["gi_star", "queen_weights"]


def queen_weights(grids: gpd.GeoDataFrame, *, id_column: str = "code") -> W:
    """Queen contiguity between the grids (sharing an edge or a corner), ids from
    ``id_column``. A grid without neighbours (an island) keeps only itself in Gi*."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal warns about islands and disconnected parts
        return Queen.from_dataframe(grids, ids=list(grids[id_column]), use_index=False)


def gi_star(
    values: Sequence[float] | np.ndarray,
    weights: W,
    *,
    permutations: int = 0,
    seed: int | None = None,
) -> pd.DataFrame:
    """Gi* per area, in ``weights.id_order``: ``z`` (the standardised statistic, positive where
    high values cluster) and ``p`` (two-sided; from the normal approximation, or from
    ``permutations`` conditional permutations when given). Binary weights with each area its
    own neighbour, as ArcGIS's Hot Spot Analysis does. All-equal values give z = 0, p = 1."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) != weights.n:
        raise ValueError(f"{len(y)} values for {weights.n} areas")
    if len(y) == 0 or np.ptp(y) == 0:
        return pd.DataFrame({"z": np.zeros(len(y)), "p": np.ones(len(y))}, index=weights.id_order)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        g = G_Local(y, weights, transform="B", star=True, permutations=permutations, seed=seed,
                    keep_simulations=False, n_jobs=1)  # fmt: skip
    z = np.nan_to_num(np.asarray(g.Zs, dtype=np.float64))
    p = 2 * np.asarray(g.p_norm, dtype=np.float64) if not permutations else g.p_sim
    return pd.DataFrame({"z": z, "p": np.clip(np.nan_to_num(p, nan=1.0), 0, 1)},
                        index=weights.id_order)  # fmt: skip
