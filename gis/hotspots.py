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
from esda.moran import Moran_Local
from libpysal.weights import Queen, W

__all__ = ["fdr_threshold", "gi_bins", "gi_star", "local_moran", "queen_weights"]


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


def fdr_threshold(p: Sequence[float] | np.ndarray, alpha: float) -> float:
    """The Benjamini-Hochberg cut-off: the largest p(k) with p(k) <= k / n * alpha (0 when no
    test passes). Written out because ``esda.fdr`` falls back to Bonferroni when every test
    passes, which ArcGIS's FDR correction does not."""
    ranked = np.sort(np.asarray(p, dtype=np.float64))
    n = len(ranked)
    passing = np.flatnonzero(ranked <= np.arange(1, n + 1) / n * alpha)
    return float(ranked[passing[-1]]) if len(passing) else 0.0


def gi_bins(
    z: Sequence[float] | np.ndarray, p: Sequence[float] | np.ndarray, *, fdr: bool = True
) -> np.ndarray:
    """Confidence bins like ArcGIS's Gi_Bin: +3 / +2 / +1 a hot spot at 99 / 95 / 90 %,
    -3 / -2 / -1 a cold spot, 0 not significant; with ``fdr`` each level's cut-off is
    Benjamini-Hochberg's over all the areas (a random field then gives no spot)."""
    zs, ps = np.asarray(z, dtype=np.float64), np.asarray(p, dtype=np.float64)
    level = np.zeros(len(ps), dtype=np.int8)
    for bin_, alpha in ((1, 0.10), (2, 0.05), (3, 0.01)):
        cut = fdr_threshold(ps, alpha) if fdr else alpha
        level[ps <= cut] = bin_
    return (np.sign(zs) * level).astype(np.int8)


# esda's quadrants: 1 high-high, 2 low-high, 3 low-low, 4 high-low.
_QUADRANTS = {1: "HH", 2: "LH", 3: "LL", 4: "HL"}


def local_moran(
    values: Sequence[float] | np.ndarray,
    weights: W,
    *,
    permutations: int = 999,
    alpha: float = 0.05,
    seed: int | None = None,
) -> pd.DataFrame:
    """Local Moran's I per area, in ``weights.id_order``: ``i``, ``z`` (of the permutation
    distribution), ``p`` (pseudo p from ``permutations`` conditional permutations) and
    ``cluster`` — HH (high among high), LL, HL (a high outlier among lows), LH, or "" when
    ``p`` > ``alpha``. Row-standardised weights."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) != weights.n:
        raise ValueError(f"{len(y)} values for {weights.n} areas")
    if len(y) == 0 or np.ptp(y) == 0:
        n = len(y)
        return pd.DataFrame({"i": np.zeros(n), "z": np.zeros(n), "p": np.ones(n),
                             "cluster": [""] * n}, index=weights.id_order)  # fmt: skip
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")
        m = Moran_Local(y, weights, transformation="r", permutations=permutations, seed=seed,
                        keep_simulations=False, n_jobs=1)  # fmt: skip
    p = np.asarray(m.p_sim, dtype=np.float64)
    cluster = [_QUADRANTS.get(int(q), "") if pi <= alpha else ""
               for q, pi in zip(m.q, p, strict=True)]  # fmt: skip
    return pd.DataFrame({"i": np.asarray(m.Is, dtype=np.float64),
                         "z": np.nan_to_num(np.asarray(m.z_sim, dtype=np.float64)), "p": p,
                         "cluster": cluster}, index=weights.id_order)  # fmt: skip
