"""Four-level hierarchy validation: geometry, codes, nesting, gaps, overlaps and tiling.

Pure geopandas/shapely. The input is a GeoDataFrame in CGCS2000 (EPSG:4490) with the canonical
columns ``level``, ``code``, ``parent_code`` (and optionally ``feature``, a human reference to the
source feature such as ``grids.gpkg#17``). Areas are measured in the city's metric CRS.

Rules (DOMAIN.md; Xi'an DB6101/T 3185-2024, Beijing DB11/T 2157-2023):

* every geometry is a non-empty, valid (Multi)Polygon;
* codes are unique and follow :class:`gis.codes.CodeScheme`;
* every street, community and grid names an existing parent exactly one level up;
* a child lies inside its parent (at least ``containment`` of its area, default 99.5 %);
* regions of one level do not overlap, and the children of a parent leave no gap in it, each
  above ``tolerance_m2`` (default 1 m²);
* every district, street and community is tiled by its children (it has some, and they cover it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gis.codes import LEVELS, CodeScheme, level_rank
from gis.crs import metric_area, transform_geometries

__all__ = ["Issue", "Report", "ValidationOptions", "validate"]

DEFAULT_METRIC_CRS = "EPSG:4548"  # CGCS2000 / 3-degree Gauss-Kruger CM 117E (Tianjin)


@dataclass(frozen=True)
class Issue:
    """One defect. ``kind`` is a stable identifier; ``location`` is (lon, lat) in CGCS2000."""

    kind: str
    message: str
    level: str | None = None
    code: str | None = None
    feature: str | None = None
    location: tuple[float, float] | None = None
    area_m2: float | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.location is not None:
            data["location"] = [round(self.location[0], 7), round(self.location[1], 7)]
        if self.area_m2 is not None:
            data["area_m2"] = round(self.area_m2, 2)
        return data

    def __str__(self) -> str:
        where = []
        if self.feature:
            where.append(self.feature)
        if self.code:
            where.append(f"code {self.code}")
        if self.location is not None:
            where.append(f"at {self.location[0]:.6f},{self.location[1]:.6f}")
        prefix = f"[{self.kind}] " + (f"{', '.join(where)}: " if where else "")
        return prefix + self.message


@dataclass
class Report:
    """What :func:`validate` found."""

    counts: dict[str, int] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def extend(self, issues: Iterable[Issue]) -> None:
        self.issues.extend(issues)

    def to_dict(self) -> dict[str, Any]:
        kinds = Counter(i.kind for i in self.errors)
        return {
            "ok": self.ok,
            "counts": {level: self.counts.get(level, 0) for level in LEVELS},
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "error_kinds": dict(sorted(kinds.items())),
            "issues": [i.to_dict() for i in self.issues],
        }

    def summary(self) -> str:
        counts = " / ".join(str(self.counts.get(level, 0)) for level in LEVELS)
        head = f"regions (district / street / community / grid): {counts}"
        tail = f"{len(self.errors)} error(s), {len(self.warnings)} warning(s)"
        return f"{head}\n{tail}"


@dataclass(frozen=True)
class ValidationOptions:
    scheme: CodeScheme = field(default_factory=CodeScheme)
    metric_crs: str = DEFAULT_METRIC_CRS
    containment: float = 0.995
    tolerance_m2: float = 1.0


_REASON_POINT = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


class _Ctx:
    """Per-run helpers.

    Set operations run on the geometries as stored (CGCS2000 lon/lat), where shared vertices
    are exact: projecting first would bend a parent's long straight edge differently from its
    children's shorter ones and invent slivers. Only areas are measured in the metric CRS.
    """

    def __init__(self, frame: gpd.GeoDataFrame, options: ValidationOptions) -> None:
        self.options = options
        self.frame = frame

    def area(self, geoms: Any) -> np.ndarray:
        """Areas in m² of lon/lat geometries (see :func:`gis.crs.metric_area`)."""
        return metric_area(geoms, self.options.metric_crs)

    @staticmethod
    def lonlat(point: shapely.Point | None) -> tuple[float, float] | None:
        if point is None or point.is_empty:
            return None
        return (float(point.x), float(point.y))

    def ref(self, idx: Any) -> dict[str, Any]:
        row = self.frame.loc[idx]
        feature = row.get("feature") if "feature" in self.frame.columns else None
        return {
            "level": row["level"] if isinstance(row["level"], str) else None,
            "code": row["code"] if isinstance(row["code"], str) and row["code"] else None,
            "feature": feature if isinstance(feature, str) else None,
        }


def validate(frame: gpd.GeoDataFrame, options: ValidationOptions | None = None) -> Report:
    """Check a boundary set; never raises on bad data, reports it."""
    options = options or ValidationOptions()
    # Rows are addressed by label below: make the labels unique.
    frame = frame.reset_index(drop=True)
    for column in ("level", "code", "parent_code"):
        if column not in frame.columns:
            frame[column] = None
        # pandas' string dtype stores a missing value as NaN; below, only str counts as present.
        frame[column] = frame[column].map(_text_or_none)
    if frame.crs is None:
        frame = frame.set_crs("EPSG:4490")
    elif frame.crs.to_epsg() != 4490:
        # Densified, not frame.to_crs: a projected frame's straight edges must stay shared.
        crs = frame.crs.to_string()
        frame = gpd.GeoDataFrame(
            frame.drop(columns=frame.geometry.name),
            geometry=transform_geometries(frame.geometry.to_numpy(), crs),
            crs="EPSG:4490",
        )
    ctx = _Ctx(frame, options)
    report = Report(counts={level: int((frame["level"] == level).sum()) for level in LEVELS})

    usable = _check_geometries(ctx, report)
    _check_codes(ctx, report)
    parents = _check_parents(ctx, report)

    # Spatial checks run on what is usable: valid (or repaired) polygons with a known level.
    known = frame["level"].isin(LEVELS) & usable.notna()
    overlapping = _check_overlaps(ctx, report, usable, known)
    _check_nesting(ctx, report, usable, known, parents, overlapping)
    return report


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _check_geometries(ctx: _Ctx, report: Report) -> gpd.GeoSeries:
    """Report empty, non-polygonal and invalid geometries; return repaired polygons (or None)."""
    geoms = ctx.frame.geometry.to_numpy()
    usable = np.empty(len(geoms), dtype=object)
    usable[:] = None
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    type_ids = shapely.get_type_id(geoms)
    polygonal = np.isin(type_ids, (3, 6))  # Polygon, MultiPolygon
    valid = np.zeros(len(geoms), dtype=bool)
    valid[~missing] = shapely.is_valid(geoms[~missing])
    for pos, idx in enumerate(ctx.frame.index):
        ref = ctx.ref(idx)
        if missing[pos]:
            report.issues.append(Issue("empty-geometry", "the geometry is missing or empty", **ref))
            continue
        geom = geoms[pos]
        if not polygonal[pos]:
            report.issues.append(
                Issue(
                    "not-polygon",
                    f"the geometry is a {geom.geom_type}, not a Polygon or MultiPolygon",
                    location=_lonlat_of(geom),
                    **ref,
                )
            )
            continue
        if not valid[pos]:
            reason = shapely.is_valid_reason(geom)
            match = _REASON_POINT.search(reason)
            location = (float(match[1]), float(match[2])) if match else _lonlat_of(geom)
            report.issues.append(
                Issue("invalid-geometry", f"invalid geometry: {reason}", location=location, **ref)
            )
            geom = _polygonal(shapely.make_valid(geom))
            if geom is None:
                continue
        usable[pos] = geom
    return gpd.GeoSeries(usable, index=ctx.frame.index, crs="EPSG:4490")


def _lonlat_of(geom: shapely.Geometry) -> tuple[float, float] | None:
    try:
        point = shapely.point_on_surface(geom)
    except shapely.errors.GEOSException:
        point = shapely.centroid(geom)
    if point is None or point.is_empty:
        return None
    return (float(point.x), float(point.y))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of a geometry (make_valid may return a collection)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return shapely.union_all(parts)


def _check_codes(ctx: _Ctx, report: Report) -> None:
    scheme = ctx.options.scheme
    frame = ctx.frame
    codes = frame["code"]
    present = codes.notna()
    for idx in frame.index[~present]:
        report.issues.append(Issue("missing-code", "the feature has no code", **ctx.ref(idx)))
    for idx in frame.index:
        if frame.at[idx, "level"] not in LEVELS:
            raw = _text_or_none(frame.at[idx, "level"])
            report.issues.append(
                Issue(
                    "unknown-level",
                    f"level {raw!r} is none of {', '.join(LEVELS)}"
                    if raw is not None
                    else "the feature has no level",
                    **ctx.ref(idx),
                )
            )
    duplicated = codes[present].duplicated(keep=False)
    for code, group in codes[present][duplicated].groupby(codes[present][duplicated]):
        refs = ", ".join(_feature_name(ctx, idx) for idx in group.index)
        for idx in group.index:
            report.issues.append(
                Issue(
                    "duplicate-code",
                    f"code {code} is used by {len(group)} features ({refs})",
                    location=_lonlat_of(frame.geometry.loc[idx])
                    if _has_geom(frame.geometry.loc[idx])
                    else None,
                    **ctx.ref(idx),
                )
            )
    for idx in frame.index[present]:
        level = frame.at[idx, "level"]
        if level not in LEVELS:
            continue
        parent = frame.at[idx, "parent_code"]
        parent = parent if isinstance(parent, str) and parent else None
        for problem in scheme.problems(frame.at[idx, "code"], level, parent):
            report.issues.append(Issue("bad-code", problem, **ctx.ref(idx)))


def _has_geom(geom: Any) -> bool:
    return geom is not None and not shapely.is_missing(geom) and not geom.is_empty


def _feature_name(ctx: _Ctx, idx: Any) -> str:
    ref = ctx.ref(idx)
    return ref["feature"] or f"row {idx}"


def _check_parents(ctx: _Ctx, report: Report) -> pd.Series:
    """Report missing or wrong-level parents; return each row's parent index (or NaN)."""
    frame = ctx.frame
    present = frame["code"].notna()
    first = frame[present].drop_duplicates("code")
    by_code = pd.Series(first.index, index=first["code"])
    parent_index = pd.Series(np.nan, index=frame.index, dtype=object)
    for idx in frame.index:
        level = frame.at[idx, "level"]
        if level not in LEVELS or level == LEVELS[0]:
            continue
        want = LEVELS[level_rank(level) - 1]
        parent = frame.at[idx, "parent_code"]
        ref = ctx.ref(idx)
        geom = frame.geometry.loc[idx]
        location = _lonlat_of(geom) if _has_geom(geom) else None
        if not isinstance(parent, str) or not parent:
            report.issues.append(
                Issue(
                    "missing-parent", f"a {level} needs a parent {want}", location=location, **ref
                )
            )
            continue
        if parent not in by_code.index:
            report.issues.append(
                Issue(
                    "missing-parent",
                    f"parent code {parent} does not exist in this boundary set",
                    location=location,
                    **ref,
                )
            )
            continue
        pidx = by_code[parent]
        if frame.at[pidx, "level"] != want:
            report.issues.append(
                Issue(
                    "wrong-parent-level",
                    f"parent {parent} is a {frame.at[pidx, 'level']}, a {level} needs a {want}",
                    location=location,
                    **ref,
                )
            )
            continue
        parent_index[idx] = pidx
    return parent_index


def _check_overlaps(
    ctx: _Ctx, report: Report, geoms_s: gpd.GeoSeries, known: pd.Series
) -> set[Any]:
    """Regions of the same level must not overlap (siblings or not); returns the rows that do."""
    tol = ctx.options.tolerance_m2
    overlapping: set[Any] = set()
    for level in LEVELS:
        subset = geoms_s[known & (ctx.frame["level"] == level)]
        if len(subset) < 2:
            continue
        geoms = subset.to_numpy()
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        if left.size == 0:
            continue
        inter = shapely.intersection(geoms[left], geoms[right])
        areas = ctx.area(inter)
        for a, b, geom, area in zip(left, right, inter, areas, strict=True):
            if area <= tol:
                continue
            ia, ib = subset.index[a], subset.index[b]
            overlapping.update((ia, ib))
            other = ctx.ref(ib)
            report.issues.append(
                Issue(
                    "overlap",
                    f"overlaps {level} {other['code'] or _feature_name(ctx, ib)} by {area:,.1f} m²",
                    location=ctx.lonlat(_interior_point(geom)),
                    area_m2=float(area),
                    **ctx.ref(ia),
                )
            )
    return overlapping


def _interior_point(geom: shapely.Geometry) -> shapely.Point | None:
    polys = _polygonal(geom)
    if polys is None:
        return None
    biggest = max(shapely.get_parts(polys), key=lambda g: g.area)
    return shapely.point_on_surface(biggest)


def _check_nesting(
    ctx: _Ctx,
    report: Report,
    geoms_s: gpd.GeoSeries,
    known: pd.Series,
    parents: pd.Series,
    overlapping: set[Any],
) -> None:
    """Children inside their parent, no gaps, and every non-leaf region tiled by its children."""
    options = ctx.options
    frame = ctx.frame
    has_parent = parents.notna() & known
    children_of: dict[Any, list[Any]] = {}
    for idx in frame.index[has_parent]:
        children_of.setdefault(parents[idx], []).append(idx)

    # Containment, vectorised over all child/parent pairs.
    child_idx = list(frame.index[has_parent])
    if child_idx:
        child_geoms = geoms_s.loc[child_idx].to_numpy()
        parent_geoms = geoms_s.loc[parents.loc[child_idx].tolist()].to_numpy()
        ok_parent = ~shapely.is_missing(parent_geoms)
        child_area = ctx.area(child_geoms)
        inter_area = np.zeros(len(child_idx))
        if ok_parent.any():
            inter_area[ok_parent] = ctx.area(
                shapely.intersection(child_geoms[ok_parent], parent_geoms[ok_parent])
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            inside = np.where(child_area > 0, inter_area / child_area, 1.0)
        outside_parents: set[Any] = set()
        for pos in np.flatnonzero(ok_parent & (inside < options.containment)):
            idx = child_idx[pos]
            pidx = parents[idx]
            spill = shapely.difference(child_geoms[pos], parent_geoms[pos])
            outside_parents.add(pidx)
            report.issues.append(
                Issue(
                    "outside-parent",
                    f"only {inside[pos]:.1%} of it lies inside its parent "
                    f"{frame.at[pidx, 'code']} ({child_area[pos] - inter_area[pos]:,.1f} m² "
                    "outside)",
                    location=ctx.lonlat(_interior_point(spill)),
                    area_m2=float(child_area[pos] - inter_area[pos]),
                    **ctx.ref(idx),
                )
            )
    else:
        outside_parents = set()

    overlapping_parents = {
        parents[idx] for idx in overlapping if idx in parents.index and has_parent[idx]
    }

    for pidx in frame.index[known & frame["level"].isin(LEVELS[:-1])]:
        parent_geom = geoms_s[pidx]
        level = frame.at[pidx, "level"]
        child_level = LEVELS[level_rank(level) + 1]
        kids = children_of.get(pidx, [])
        if not kids:
            report.issues.append(
                Issue(
                    "not-tiling",
                    f"this {level} has no {child_level} inside it",
                    location=ctx.lonlat(_interior_point(parent_geom)),
                    **ctx.ref(pidx),
                )
            )
            continue
        union = shapely.union_all(geoms_s.loc[kids].to_numpy())
        gaps = shapely.difference(parent_geom, union)
        gap_parts = np.array(
            [g for g in shapely.get_parts(_polygonal(gaps) or shapely.Polygon()) if not g.is_empty],
            dtype=object,
        )
        gap_areas = ctx.area(gap_parts) if gap_parts.size else np.zeros(0)
        big_gaps = 0
        for gap, gap_area in zip(gap_parts, gap_areas, strict=True):
            if gap_area <= options.tolerance_m2:
                continue
            big_gaps += 1
            report.issues.append(
                Issue(
                    "gap",
                    f"{gap_area:,.1f} m² of this {level} is covered by none of its "
                    f"{len(kids)} {child_level}(s)",
                    location=ctx.lonlat(shapely.point_on_surface(gap)),
                    area_m2=float(gap_area),
                    **ctx.ref(pidx),
                )
            )
        if big_gaps or pidx in outside_parents or pidx in overlapping_parents:
            covered, whole = ctx.area([shapely.intersection(parent_geom, union), parent_geom])
            share = covered / whole if whole > 0 else 0.0
            report.issues.append(
                Issue(
                    "not-tiling",
                    f"its {len(kids)} {child_level}(s) do not tile it: they cover {share:.2%}"
                    f" of it, with {big_gaps} gap(s)"
                    + (", overlapping each other" if pidx in overlapping_parents else "")
                    + (", spilling outside it" if pidx in outside_parents else ""),
                    location=ctx.lonlat(_interior_point(parent_geom)),
                    **ctx.ref(pidx),
                )
            )
