"""Emerging hot spots: where Gi* hot and cold spots appear, grow, persist or fade over time.

ArcGIS Pro's Emerging Hot Spot Analysis on a cube of counts (areas × time bins, oldest first):

1. a space-time Getis-Ord Gi* for every area in every bin (:func:`space_time_gi`), where an
   area's neighbours are its spatial neighbours and itself, in the same bin and in the
   ``time_window`` bins before it (ArcGIS's "Neighborhood Time Step", default 1);
2. a bin is a significant hot (cold) spot when its p passes the Benjamini-Hochberg cut-off over
   every bin of the cube and z > 0 (z < 0);
3. the Mann-Kendall trend of each area's Gi* z series (``pymannkendall.original_test``'s
   arithmetic, vectorised), leaving out the first ``time_window`` bins: they lack the bins
   before them, so their z is smaller for the same clustering and would tilt every steady hot
   spot towards "intensifying";
4. one of :data:`CATEGORIES` per area.

The categories follow Esri's published definitions, "How Emerging Hot Spot Analysis works":
https://pro.arcgis.com/en/pro-app/latest/tool-reference/space-time-pattern-mining/learnmoreemerging.htm
(cold spots mirror them, with the trend mirrored too: an intensifying cold spot's z falls):

- new: hot in the final bin and never before;
- consecutive: a single uninterrupted run of at least two hot bins ending in the final bin, never
  hot before the run, fewer than 90 % of the bins hot;
- intensifying / persistent / diminishing: hot in at least 90 % of the bins including the final
  one, with a significant upward / no / a significant downward Mann-Kendall trend of z;
- sporadic: hot in the final bin, on-again off-again before, fewer than 90 % hot, never cold;
- oscillating: hot in the final bin, cold in some earlier bin, fewer than 90 % hot;
- historical: not hot in the final bin, but hot in at least 90 % of the bins.

Where two definitions fit, the first in :data:`CATEGORIES` wins (this settles "new" vs
"oscillating" for an area cold earlier and hot only now, and "historical hot" vs "oscillating
cold" for a long-hot area that turned cold at the end). Esri's wording of "persistent" leaves out
"including the final time step"; it is read in here, or no trendless series could be "historical".

The Mann-Kendall test assumes independent values, and overlapping time windows make successive z
alike: with ``time_window=1`` a steady hot spot's edge grids read as intensifying or diminishing
about three times as often as ``alpha`` says. That is ArcGIS's method; ``time_window=0`` avoids it.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd
from esda.getisord import G_Local
from libpysal.weights import W
from scipy import sparse, stats

from gis.hotspots import fdr_threshold, gi_bins

__all__ = ["CATEGORIES", "GlobalWindow", "emerging_hotspots", "space_time_gi"]

_PATTERNS = (
    "new", "consecutive", "intensifying", "persistent",
    "diminishing", "sporadic", "oscillating", "historical",
)  # fmt: skip

CATEGORIES: tuple[str, ...] = (
    *(f"{pattern} hot spot" for pattern in _PATTERNS),
    *(f"{pattern} cold spot" for pattern in _PATTERNS),
    "no pattern",
)

# Which bins give the mean and variance a neighbourhood sum is compared with (ArcGIS's "Define
# Global Window"): "cube" every bin (ArcGIS's default, "Entire cube"), so a bin is hot when it is
# high for the whole period — growth shows; "neighbourhood" only the bins of the focal bin's time
# window ("Neighborhood time step"; with ``time_window=0`` that is "Individual time step", i.e.
# plain Gi* per bin), so a city-wide surge in one week does not make that week hot everywhere.
GlobalWindow = Literal["cube", "neighbourhood"]


def space_time_gi(
    counts: np.ndarray,
    weights: W,
    *,
    time_window: int = 1,
    permutations: int = 0,
    seed: int | None = None,
    global_window: GlobalWindow = "cube",
) -> tuple[np.ndarray, np.ndarray]:
    """Gi* z-score and two-sided p of every area in every bin, both (n_areas, n_bins).

    ``counts`` is (n_areas, n_bins), rows in ``weights.id_order``, bins oldest first. Area i in
    bin t neighbours area j in bin s when j is i or one of its neighbours and t - ``time_window``
    <= s <= t, with binary weights, as ArcGIS does; the first bins have fewer temporal neighbours.
    The z is esda's ``G_Local(star=True, transform="B")`` over the flattened cube, computed with
    a sparse product and cumulative sums instead so that a year of weeks over a thousand grids
    takes milliseconds. p comes from the normal approximation, or, with ``permutations``, from
    esda's conditional permutations (slow: tens of seconds for 50,000 bins). A window whose
    values are all equal gives z = 0, p = 1.
    """
    y = _checked(counts, weights, time_window, min_bins=1)
    if global_window not in ("cube", "neighbourhood"):
        raise ValueError(f"global_window must be 'cube' or 'neighbourhood', not {global_window!r}")
    n_bins = y.shape[1]
    time_window = min(time_window, n_bins - 1)  # a longer window reaches back no further
    spatial = _binary_star(weights)
    # Neighbourhood sums: spatial sums per bin, then a running sum over the time window.
    spatial_sums = np.cumsum(spatial @ y, axis=1)
    sums = spatial_sums.copy()
    sums[:, time_window + 1 :] -= spatial_sums[:, : n_bins - time_window - 1]
    bins_in_window = np.minimum(np.arange(n_bins), time_window) + 1
    k = np.asarray(spatial.sum(axis=1)).reshape(-1, 1) * bins_in_window  # neighbours incl. self

    if global_window == "cube":
        mean, var, n_obs = _moments(y)
        z = _gi_z(sums, k, mean, var, n_obs)
    else:
        z = np.empty_like(y)
        for t in range(n_bins):
            mean, var, n_obs = _moments(y[:, max(0, t - time_window) : t + 1])
            z[:, t] = _gi_z(sums[:, t], k[:, t], mean, var, n_obs)
    p = 2.0 * stats.norm.sf(np.abs(z))
    if permutations:
        p = _permutation_p(y, spatial, time_window, global_window, permutations, seed)
    return z, np.clip(p, 0.0, 1.0)


def emerging_hotspots(
    counts: np.ndarray,
    weights: W,
    *,
    time_window: int = 1,
    alpha: float = 0.05,
    fdr: bool = True,
    permutations: int = 0,
    seed: int | None = None,
    global_window: GlobalWindow = "cube",
) -> pd.DataFrame:
    """One ArcGIS emerging hot spot category per area, indexed by ``weights.id_order``.

    Columns: ``category`` (one of :data:`CATEGORIES`); ``trend_tau``, ``trend_p`` and ``trend``
    ("increasing" / "decreasing" / "no trend" at ``alpha``) from the Mann-Kendall test of the
    area's Gi* z series from bin ``time_window`` on (see the module notes); ``gi_z``, ``gi_p``
    and ``gi_bin`` (-3..+3 as :func:`gis.hotspots.gi_bins`, its FDR over the whole cube) of the
    final bin; ``hot_bins`` and ``cold_bins``, how many bins are significant hot / cold spots at
    ``alpha`` (Benjamini-Hochberg over all areas × bins with ``fdr``, as ArcGIS applies it, so a
    random field shows no pattern); ``share_hot``, the fraction of bins hot. ArcGIS asks for at
    least 10 bins for a meaningful trend; fewer than 2 are refused.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    y = _checked(counts, weights, time_window, min_bins=2)
    z, p = space_time_gi(y, weights, time_window=time_window, permutations=permutations,
                         seed=seed, global_window=global_window)  # fmt: skip
    cut = fdr_threshold(p.ravel(), alpha) if fdr else alpha
    significant = p <= cut
    hot, cold = significant & (z > 0), significant & (z < 0)
    bins = gi_bins(z.ravel(), p.ravel(), fdr=fdr).reshape(z.shape)

    # The first bins have fewer neighbours, hence smaller z: left out of the trend (module notes).
    skip = time_window if y.shape[1] - time_window >= 2 else 0
    tau, trend_p, trend = _mann_kendall(z[:, skip:], alpha)
    category = [_category(hot[i], cold[i], trend[i]) for i in range(z.shape[0])]
    return pd.DataFrame(
        {
            "category": category,
            "trend_tau": tau,
            "trend_p": trend_p,
            "trend": trend,
            "gi_z": z[:, -1],
            "gi_p": p[:, -1],
            "gi_bin": bins[:, -1],
            "hot_bins": hot.sum(axis=1),
            "cold_bins": cold.sum(axis=1),
            "share_hot": hot.mean(axis=1),
        },
        index=weights.id_order,
    )


def _checked(counts: np.ndarray, weights: W, time_window: int, *, min_bins: int) -> np.ndarray:
    """The counts as a float (areas × bins) array, or a ValueError saying what is wrong."""
    y = np.asarray(counts, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"counts must be 2-D (areas × time bins), got shape {y.shape}")
    if y.shape[0] != weights.n:
        raise ValueError(f"counts has {y.shape[0]} rows (areas) for {weights.n} areas in weights")
    if y.shape[1] < min_bins:
        raise ValueError(f"at least {min_bins} time bins are needed, got {y.shape[1]}")
    if not np.isfinite(y).all():
        raise ValueError("counts must be finite (no NaN or inf)")
    if isinstance(time_window, bool) or not isinstance(time_window, int | np.integer):
        raise ValueError(f"time_window must be an integer, not {time_window!r}")
    if time_window < 0:
        raise ValueError(f"time_window must be 0 or more, not {time_window}")
    return y


def _binary_star(weights: W) -> sparse.csr_matrix:
    """The binary spatial weights with each area its own neighbour, in ``weights.id_order``: what
    esda uses for Gi* with ``transform="B"`` (an island keeps only itself), without touching the
    caller's ``weights.transform`` as esda does."""
    pattern = sparse.csr_matrix(weights.sparse)
    binary = sparse.csr_matrix(
        (np.ones(len(pattern.indices)), pattern.indices, pattern.indptr), shape=pattern.shape
    )
    star = (binary + sparse.identity(weights.n, format="csr")).tocsr()
    star.data[:] = 1.0  # a diagonal already present becomes 2 in the sum
    return star


def _moments(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, population variance (as esda and ArcGIS use) and size of a global window; the
    variance is exactly 0 when all values are equal, which marks the window degenerate."""
    var = float(np.var(values)) if np.ptp(values) > 0 else 0.0
    return float(np.mean(values)), var, values.size


def _gi_z(sums: np.ndarray, k: np.ndarray, mean: float, var: float, n_obs: int) -> np.ndarray:
    """Getis-Ord Gi* z: (sum - k·mean) / (s·sqrt((N·k - k²) / (N - 1))), which is what esda's
    G_Local computes for binary star weights (its statistic over its moments, rearranged).
    0 where it is undefined: all values equal, or a neighbourhood covering the whole window."""
    spread = var * (n_obs * k - k.astype(np.float64) ** 2) / max(n_obs - 1, 1)
    ok = (spread > 0) & (var > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(ok, (sums - k * mean) / np.sqrt(np.where(ok, spread, 1.0)), 0.0)
    return np.asarray(z, dtype=np.float64)


def _permutation_p(
    y: np.ndarray,
    spatial: sparse.csr_matrix,
    time_window: int,
    global_window: GlobalWindow,
    permutations: int,
    seed: int | None,
) -> np.ndarray:
    """Pseudo p from esda's conditional permutations (folded, as ``gi_star`` reports it), each bin
    permuted against its global window: the whole cube, or the bins of its time window."""
    n_bins = y.shape[1]
    if global_window == "cube":
        return _esda_p_sim(y, spatial, n_bins, time_window, permutations, seed).reshape(y.shape)
    p = np.ones_like(y)
    for t in range(n_bins):
        start = max(0, t - time_window)
        window = y[:, start : t + 1]
        sim = _esda_p_sim(window, spatial, t + 1 - start, time_window, permutations, seed)
        p[:, t] = sim.reshape(window.shape)[:, -1]
    return p


def _esda_p_sim(
    y: np.ndarray,
    spatial: sparse.csr_matrix,
    n_bins: int,
    time_window: int,
    permutations: int,
    seed: int | None,
) -> np.ndarray:
    """esda's ``p_sim`` for the space-time Gi* of an (areas × bins) block, flattened area-major."""
    if np.ptp(y) == 0:
        return np.ones(y.size)
    lags = np.arange(n_bins)
    in_window = (lags[None, :] <= lags[:, None]) & (lags[None, :] >= lags[:, None] - time_window)
    space_time = sparse.kron(spatial, sparse.csr_matrix(in_window.astype(np.float64))).tocsr()
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # esda: no numba; libpysal: disconnected components
        g = G_Local(y.ravel(), W.from_sparse(space_time), transform="B", star=True,
                    permutations=permutations, seed=seed, keep_simulations=False,
                    n_jobs=1)  # fmt: skip
    return np.nan_to_num(np.asarray(g.p_sim, dtype=np.float64), nan=1.0)


def _mann_kendall(series: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kendall's tau, two-sided p and trend ("increasing" / "decreasing" / "no trend" at
    ``alpha``) of every row, exactly as ``pymannkendall.original_test`` computes them (ties
    corrected, continuity-corrected S), for all rows at once: the library's Python loops take
    seven seconds for a thousand series of 52 bins."""
    n_rows, n = series.shape
    first, second = np.triu_indices(n, k=1)
    s = np.empty(n_rows)
    step = max(1, 4_000_000 // max(len(first), 1))  # rows per chunk: bounded memory for long series
    for start in range(0, n_rows, step):
        block = series[start : start + step]
        later, earlier = block[:, second], block[:, first]
        s[start : start + step] = (later > earlier).sum(axis=1) - (later < earlier).sum(axis=1)
    var = np.full(n_rows, n * (n - 1) * (2 * n + 5) / 18.0)
    ordered = np.sort(series, axis=1)
    for row in np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1)):
        ties = np.unique(series[row], return_counts=True)[1].astype(np.float64)
        var[row] -= np.sum(ties * (ties - 1) * (2 * ties + 5)) / 18.0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(s > 0, (s - 1) / np.sqrt(var), np.where(s < 0, (s + 1) / np.sqrt(var), 0.0))
    p = 2 * (1 - stats.norm.cdf(np.abs(z)))
    significant = np.abs(z) > stats.norm.ppf(1 - alpha / 2)
    trend = np.where(significant & (z > 0), "increasing",
                     np.where(significant & (z < 0), "decreasing", "no trend"))  # fmt: skip
    return s / (0.5 * n * (n - 1)), p, trend


def _category(hot: np.ndarray, cold: np.ndarray, trend: str) -> str:
    """The first of :data:`CATEGORIES` whose definition fits an area's hot and cold bins and the
    Mann-Kendall trend of its z (rising z strengthens a hot spot and weakens a cold one)."""
    pattern = _pattern(hot, cold, trend == "increasing", trend == "decreasing")
    if pattern:
        return f"{pattern} hot spot"
    pattern = _pattern(cold, hot, trend == "decreasing", trend == "increasing")
    return f"{pattern} cold spot" if pattern else "no pattern"


def _pattern(
    spot: np.ndarray, opposite: np.ndarray, strengthening: bool, weakening: bool
) -> str | None:
    """Which of the eight patterns a series of significant ``spot`` bins (hot, or cold for the
    mirror) shows, ``opposite`` marking bins significant the other way; None for none."""
    n_bins = len(spot)
    mostly = 10 * int(spot.sum()) >= 9 * n_bins  # "90 percent of the time-step intervals"
    if not spot[-1]:
        return "historical" if mostly else None
    if mostly:
        return "intensifying" if strengthening else "diminishing" if weakening else "persistent"
    if not spot[:-1].any():
        return "new"
    run_start = int(np.flatnonzero(~spot)[-1]) + 1  # the final uninterrupted run of spot bins
    if not spot[:run_start].any():
        return "consecutive"
    return "oscillating" if opposite.any() else "sporadic"
