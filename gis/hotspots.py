"""Hot spots on the grids: Getis-Ord Gi* and Local Moran (PySAL esda) on queen contiguity or a
distance band; counts per region and period with rates; kernel density; period comparison.
Emerging hot spots (space-time) are in :mod:`gis.emerging`.

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

__all__ = [
    "aggregate",
    "compare_periods",
    "distance_band_weights",
    "fdr_threshold",
    "gi_bins",
    "gi_star",
    "kde",
    "local_moran",
    "period_start",
    "queen_weights",
    "rates",
]


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
    Benjamini-Hochberg's over all the areas (a random field then gives no spot). Permutation
    p-values stop at 1 / (permutations + 1): with 999 and FDR, the 95 % and 99 % bins need tens
    of areas at that floor, so the analytic p (the default of :func:`gi_star`) or more
    permutations are what reach them."""
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


def distance_band_weights(
    grids: gpd.GeoDataFrame, threshold_m: float, *, metric_crs: int | str = 4548,
    id_column: str = "code",
) -> W:  # fmt: skip
    """Binary distance-band weights: grids whose centroids lie within ``threshold_m`` metres
    (measured in ``metric_crs``, CGCS2000 Gauss-Kruger 117E by default) are neighbours — for
    grids of uneven size, where queen contiguity gives big grids many more neighbours."""
    from libpysal.weights import DistanceBand

    if threshold_m <= 0:
        raise ValueError("the distance band must be positive")
    centroids = grids.to_crs(metric_crs).geometry.centroid if grids.crs else grids.centroid
    xy = np.column_stack([centroids.x.to_numpy(), centroids.y.to_numpy()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands: grids with no centroid within the band
        return DistanceBand(xy, threshold=threshold_m, binary=True, ids=list(grids[id_column]),
                            silence_warnings=True)  # fmt: skip


# ---- aggregation ----------------------------------------------------------------------------

PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}


def rates(
    counts: Sequence[float] | np.ndarray,
    population: Sequence[float] | np.ndarray,
    area_m2: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Cases per 1,000 residents (NaN where nobody lives: a park's rate says nothing) and per
    km²."""
    n = np.asarray(counts, dtype=np.float64)
    pop = np.asarray(pd.to_numeric(pd.Series(population), errors="coerce"), dtype=np.float64)
    area = np.asarray(area_m2, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_1000 = np.where(pop > 0, n / pop * 1000.0, np.nan)
        per_km2 = np.where(area > 0, n / area * 1e6, np.nan)
    return per_1000, per_km2


def period_start(times: pd.Series, period: str) -> pd.Series:
    """The local day, Monday-started week or month each timestamp falls in (naive dates, in the
    timestamps' own zone: pass Beijing times to get Beijing days)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    t = pd.to_datetime(times)
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_localize(None)
    return t.dt.to_period(PERIODS[period]).dt.start_time


def aggregate(
    cases: pd.DataFrame,
    regions: pd.DataFrame,
    *,
    period: str,
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    by_class: bool = False,
) -> pd.DataFrame:
    """Cases per region per period, with every period between ``start`` and ``end`` for every
    region (zeros included, so a chart's line does not skip quiet weeks).

    ``cases``: ``code`` (the region at the wanted level), ``at`` (local timestamps), with
    ``by_class`` ``class_code``, and optionally ``n``, how many cases the row stands for (counts
    made in the database per day). ``regions``: ``code``, ``population``, ``area_m2``. Returns
    ``code, [class_code,] start, count, per_1000, per_km2``."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    starts = pd.period_range(pd.Timestamp(start), pd.Timestamp(end), freq=PERIODS[period])
    keys = ["code", "class_code"] if by_class else ["code"]
    frame = cases.assign(start=period_start(cases["at"], period)) if len(cases) else None
    counted = (
        (
            frame.groupby([*keys, "start"])["n"].sum()
            if "n" in frame
            else frame.groupby([*keys, "start"]).size()
        ).rename("count")
        if frame is not None
        else pd.Series(dtype="int64", name="count")
    )
    axes = [list(regions["code"])]
    if by_class:
        axes.append(sorted(cases["class_code"].unique()) if len(cases) else [])
    axes.append(list(starts.start_time))
    full = pd.MultiIndex.from_product(axes, names=[*keys, "start"])
    out = counted.reindex(full, fill_value=0).astype("int64").reset_index()
    info = regions.set_index("code")[["population", "area_m2"]]
    joined = info.reindex(out["code"])
    out["per_1000"], out["per_km2"] = rates(out["count"], joined["population"], joined["area_m2"])
    return out


# ---- kernel density -------------------------------------------------------------------------


def kde(
    xy: np.ndarray,
    *,
    bounds: tuple[float, float, float, float],
    cell_m: float = 50.0,
    bandwidth_m: float = 300.0,
    weights: Sequence[float] | np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A kernel-density surface of points in a metric CRS: the quartic (biweight) kernel of
    ArcGIS's Kernel Density, in cases per km². Returns the cell centres' x (columns), y (rows)
    and the density (rows × columns). Points are binned to cells, then the kernel is applied by
    FFT convolution, so the cost follows the cell count, not the point count; ``weights`` (how
    many cases each point stands for) lets the caller bin in the database first."""
    from scipy.signal import fftconvolve

    if cell_m <= 0 or bandwidth_m <= 0:
        raise ValueError("cell and bandwidth must be positive")
    minx, miny, maxx, maxy = bounds
    pad = bandwidth_m
    xs = np.arange(minx - pad, maxx + pad + cell_m, cell_m)
    ys = np.arange(miny - pad, maxy + pad + cell_m, cell_m)
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    counts, _, _ = np.histogram2d(pts[:, 1], pts[:, 0], bins=[len(ys), len(xs)],
                                  range=[[ys[0], ys[0] + len(ys) * cell_m],
                                         [xs[0], xs[0] + len(xs) * cell_m]],
                                  weights=weights)  # fmt: skip
    r = int(np.ceil(bandwidth_m / cell_m))
    off = np.arange(-r, r + 1) * cell_m
    d2 = (off[None, :] ** 2 + off[:, None] ** 2) / bandwidth_m**2
    kernel = np.where(d2 < 1, 3.0 / (np.pi * bandwidth_m**2) * (1 - d2) ** 2, 0.0)  # per m²
    density = np.clip(fftconvolve(counts, kernel, mode="same"), 0, None) * 1e6
    return xs + cell_m / 2, ys + cell_m / 2, density


# ---- period comparison ----------------------------------------------------------------------


def compare_periods(
    current: Sequence[float] | np.ndarray,
    previous: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    fdr: bool = True,
) -> pd.DataFrame:
    """This period's counts against the last one's (equal lengths), per region: ``change``,
    ``change_pct`` (None from zero), ``p`` — two-sided, the exact conditional test of two
    Poisson counts (given their sum, the current one is Binomial(n, ½) when nothing changed) —
    and ``significant`` (Benjamini-Hochberg over the regions with ``fdr``)."""
    from scipy.stats import binom

    a = np.asarray(current, dtype=np.int64)
    b = np.asarray(previous, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"{len(a)} current counts for {len(b)} previous ones")
    n = a + b
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    p = np.where(n > 0, np.minimum(1.0, binom.cdf(lo, n, 0.5) + binom.sf(hi - 1, n, 0.5)), 1.0)
    p = np.where(a == b, 1.0, p)
    cut = fdr_threshold(p, alpha) if fdr else alpha
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = np.where(b > 0, (a - b) / np.where(b > 0, b, 1) * 100.0, np.nan)
    return pd.DataFrame({"current": a, "previous": b, "change": a - b, "change_pct": pct,
                         "p": p, "significant": (p <= cut) & (n > 0)})  # fmt: skip
