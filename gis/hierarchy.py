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
    """The boundary set as plain positional arrays, and per-run helpers.

    Set operations run on the geometries as stored (CGCS2000 lon/lat), where shared vertices
    are exact: projecting first would bend a parent's long straight edge differently from its
    children's shorter ones and invent slivers. Only areas are measured in the metric CRS.
    """

    def __init__(self, frame: gpd.GeoDataFrame, options: ValidationOptions) -> None:
        self.options = options
        self.n = len(frame)
        self.levels = [_text_or_none(v) for v in frame["level"]]
        self.codes = [_text_or_none(v) for v in frame["code"]]
        self.parents = [_text_or_none(v) for v in frame["parent_code"]]
        features = frame["feature"] if "feature" in frame.columns else [None] * self.n
        self.features = [_text_or_none(v) for v in features]
        self.geoms = np.asarray(frame.geometry.to_numpy(), dtype=object)

    def area(self, geoms: Any) -> np.ndarray:
        """Areas in m² of lon/lat geometries (see :func:`gis.crs.metric_area`)."""
        return metric_area(geoms, self.options.metric_crs)

    @staticmethod
    def lonlat(point: shapely.Point | None) -> tuple[float, float] | None:
        if point is None or point.is_empty:
            return None
        return (float(point.x), float(point.y))

    def ref(self, i: int) -> dict[str, Any]:
        return {"level": self.levels[i], "code": self.codes[i], "feature": self.features[i]}

    def name(self, i: int) -> str:
        return self.codes[i] or self.features[i] or f"row {i}"

    def location(self, i: int) -> tuple[float, float] | None:
        geom = self.geoms[i]
        return _lonlat_of(geom) if _has_geom(geom) else None


def validate(frame: gpd.GeoDataFrame, options: ValidationOptions | None = None) -> Report:
    """Check a boundary set; never raises on bad data, reports it."""
    options = options or ValidationOptions()
    frame = frame.reset_index(drop=True)
    for column in ("level", "code", "parent_code"):
        if column not in frame.columns:
            frame[column] = None
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
    levels = Counter(ctx.levels)
    report = Report(counts={level: levels.get(level, 0) for level in LEVELS})

    usable = _check_geometries(ctx, report)
    _check_codes(ctx, report)
    parents = _check_parents(ctx, report)

    # Spatial checks run on what is usable: valid (or repaired) polygons with a known level.
    known = np.array([lv in LEVELS for lv in ctx.levels], dtype=bool) & ~shapely.is_missing(usable)
    overlapping = _check_overlaps(ctx, report, usable, known)
    _check_nesting(ctx, report, usable, known, parents, overlapping)
    return report


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _check_geometries(ctx: _Ctx, report: Report) -> np.ndarray:
    """Report empty, non-polygonal and invalid geometries; return usable polygons (or None),
    invalid ones repaired so that the spatial checks can still look at them."""
    geoms = ctx.geoms
    usable = geoms.copy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    polygonal = np.isin(shapely.get_type_id(geoms), (3, 6))  # Polygon, MultiPolygon
    valid = np.zeros(ctx.n, dtype=bool)
    valid[~missing] = shapely.is_valid(geoms[~missing])
    for i in np.flatnonzero(missing | ~polygonal | ~valid):
        geom = geoms[i]
        usable[i] = None
        if missing[i]:
            report.issues.append(
                Issue("empty-geometry", "the geometry is missing or empty", **ctx.ref(i))
            )
            continue
        if not polygonal[i]:
            report.issues.append(
                Issue(
                    "not-polygon",
                    f"the geometry is a {geom.geom_type}, not a Polygon or MultiPolygon",
                    location=_lonlat_of(geom),
                    **ctx.ref(i),
                )
            )
            continue
        reason = shapely.is_valid_reason(geom)
        match = _REASON_POINT.search(reason)
        location = (float(match[1]), float(match[2])) if match else _lonlat_of(geom)
        report.issues.append(
            Issue(
                "invalid-geometry", f"invalid geometry: {reason}", location=location, **ctx.ref(i)
            )
        )
        usable[i] = _polygonal(shapely.make_valid(geom))
    return usable


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
    for i in range(ctx.n):
        if ctx.codes[i] is None:
            report.issues.append(Issue("missing-code", "the feature has no code", **ctx.ref(i)))
        if ctx.levels[i] not in LEVELS:
            raw = ctx.levels[i]
            report.issues.append(
                Issue(
                    "unknown-level",
                    f"level {raw!r} is none of {', '.join(LEVELS)}"
                    if raw is not None
                    else "the feature has no level",
                    **ctx.ref(i),
                )
            )
    positions: dict[str, list[int]] = {}
    for i, code in enumerate(ctx.codes):
        if code is not None:
            positions.setdefault(code, []).append(i)
    for code, rows in positions.items():
        if len(rows) < 2:
            continue
        refs = ", ".join(ctx.features[i] or f"row {i}" for i in rows)
        for i in rows:
            report.issues.append(
                Issue(
                    "duplicate-code",
                    f"code {code} is used by {len(rows)} features ({refs})",
                    location=ctx.location(i),
                    **ctx.ref(i),
                )
            )
    for i, code in enumerate(ctx.codes):
        if code is None or ctx.levels[i] not in LEVELS:
            continue
        for problem in scheme.problems(code, ctx.levels[i], ctx.parents[i]):
            report.issues.append(Issue("bad-code", problem, **ctx.ref(i)))


def _has_geom(geom: Any) -> bool:
    return geom is not None and not shapely.is_missing(geom) and not geom.is_empty


def _check_parents(ctx: _Ctx, report: Report) -> np.ndarray:
    """Report missing or wrong-level parents; return each row's parent position (or -1)."""
    by_code: dict[str, int] = {}
    for i, code in enumerate(ctx.codes):
        if code is not None:
            by_code.setdefault(code, i)
    parent_pos = np.full(ctx.n, -1, dtype=np.intp)
    for i in range(ctx.n):
        level = ctx.levels[i]
        if level not in LEVELS or level == LEVELS[0]:
            continue
        want = LEVELS[level_rank(level) - 1]
        parent = ctx.parents[i]
        if parent is None:
            problem = ("missing-parent", f"a {level} needs a parent {want}")
        elif parent not in by_code:
            problem = (
                "missing-parent",
                f"parent code {parent} does not exist in this boundary set",
            )
        elif ctx.levels[by_code[parent]] != want:
            found = ctx.levels[by_code[parent]]
            problem = (
                "wrong-parent-level",
                f"parent {parent} is a {found}, a {level} needs a {want}",
            )
        else:
            parent_pos[i] = by_code[parent]
            continue
        report.issues.append(Issue(*problem, location=ctx.location(i), **ctx.ref(i)))
    return parent_pos


def _check_overlaps(ctx: _Ctx, report: Report, usable: np.ndarray, known: np.ndarray) -> set[int]:
    """Regions of the same level must not overlap (siblings or not); returns the rows that do."""
    tol = ctx.options.tolerance_m2
    overlapping: set[int] = set()
    levels = np.array(ctx.levels, dtype=object)
    for level in LEVELS:
        rows = np.flatnonzero(known & (levels == level))
        if rows.size < 2:
            continue
        geoms = usable[rows]
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        # Neighbours share edges; only pairs whose interiors meet can overlap.
        inner = shapely.relate_pattern(geoms[left], geoms[right], "T********")
        left, right = left[inner], right[inner]
        if left.size == 0:
            continue
        inter = shapely.intersection(geoms[left], geoms[right])
        # Floating-point slivers along shared edges: rule them out on planar area first.
        rough = shapely.area(inter) * _m2_per_deg2(shapely.get_y(shapely.centroid(inter)))
        big = rough > tol / 2
        left, right, inter = left[big], right[big], inter[big]
        areas = ctx.area(inter) if inter.size else np.zeros(0)
        for a, b, geom, area in zip(left, right, inter, areas, strict=True):
            if area <= tol:
                continue
            ia, ib = int(rows[a]), int(rows[b])
            overlapping.update((ia, ib))
            report.issues.append(
                Issue(
                    "overlap",
                    f"overlaps {level} {ctx.name(ib)} by {area:,.1f} m²",
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


def _m2_per_deg2(lat: np.ndarray) -> np.ndarray:
    """Rough m² per square degree at ``lat``: only to decide where to look closer."""
    return 111_320.0 * np.cos(np.radians(lat)) * 110_574.0


def _check_nesting(
    ctx: _Ctx,
    report: Report,
    usable: np.ndarray,
    known: np.ndarray,
    parents: np.ndarray,
    overlapping: set[int],
) -> None:
    """Children inside their parent, no gaps, and every non-leaf region tiled by its children.

    Exact metric geometry is only computed where a cheap test says it may matter: children not
    covered by their parent, and parents whose children's planar area falls short of theirs.
    """
    options = ctx.options
    children = np.flatnonzero(known & (parents >= 0))
    children = children[known[parents[children]]]
    child_geoms = usable[children]
    parent_geoms = usable[parents[children]]

    # Containment: most children are covered by their parent outright.
    inter_planar = shapely.area(child_geoms)
    outside_parents: set[int] = set()
    loose = np.flatnonzero(~shapely.covered_by(child_geoms, parent_geoms))
    if loose.size:
        inside = shapely.intersection(child_geoms[loose], parent_geoms[loose])
        inter_planar[loose] = shapely.area(inside)
        # Most are off by floating-point noise only: keep those clearly short of containment.
        with np.errstate(divide="ignore", invalid="ignore"):
            planar_share = inter_planar[loose] / shapely.area(child_geoms[loose])
        short = ~(planar_share >= options.containment + (1 - options.containment) / 2)
        loose, inside = loose[short], inside[short]
    if loose.size:
        child_area = ctx.area(child_geoms[loose])
        inside_area = ctx.area(inside)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(child_area > 0, inside_area / child_area, 1.0)
        spilled = child_area - inside_area
        # Below the area tolerance a spill is floating-point noise, whatever the share.
        for k in np.flatnonzero((share < options.containment) & (spilled > options.tolerance_m2)):
            pos = loose[k]
            i, p = int(children[pos]), int(parents[children[pos]])
            spill = shapely.difference(child_geoms[pos], parent_geoms[pos])
            outside = float(spilled[k])
            outside_parents.add(p)
            report.issues.append(
                Issue(
                    "outside-parent",
                    f"only {share[k]:.1%} of it lies inside its parent {ctx.codes[p]} "
                    f"({outside:,.1f} m² outside)",
                    location=ctx.lonlat(_interior_point(spill)),
                    area_m2=outside,
                    **ctx.ref(i),
                )
            )

    kids: dict[int, list[int]] = {}
    covered_planar: dict[int, float] = {}
    for pos, i in enumerate(children):
        p = int(parents[i])
        kids.setdefault(p, []).append(int(i))
        covered_planar[p] = covered_planar.get(p, 0.0) + float(inter_planar[pos])
    overlapping_parents = {int(parents[i]) for i in overlapping if parents[i] >= 0}

    levels = np.array(ctx.levels, dtype=object)
    for p in np.flatnonzero(known & np.isin(levels, LEVELS[:-1])):
        p = int(p)
        parent_geom = usable[p]
        level = ctx.levels[p]
        child_level = LEVELS[level_rank(level) + 1]
        if p not in kids:
            report.issues.append(
                Issue(
                    "not-tiling",
                    f"this {level} has no {child_level} inside it",
                    location=ctx.lonlat(_interior_point(parent_geom)),
                    **ctx.ref(p),
                )
            )
            continue
        shortfall = (shapely.area(parent_geom) - covered_planar[p]) * _m2_per_deg2(
            np.array([shapely.get_y(shapely.centroid(parent_geom))])
        )[0]
        suspect = shortfall > options.tolerance_m2 / 2
        if not (suspect or p in outside_parents or p in overlapping_parents):
            continue
        union = shapely.union_all(usable[kids[p]])
        gaps = _polygonal(shapely.difference(parent_geom, union)) or shapely.Polygon()
        gap_parts = np.array([g for g in shapely.get_parts(gaps) if not g.is_empty], dtype=object)
        gap_areas = ctx.area(gap_parts) if gap_parts.size else np.zeros(0)
        big = [
            (g, a) for g, a in zip(gap_parts, gap_areas, strict=True) if a > options.tolerance_m2
        ]
        for gap, gap_area in big:
            report.issues.append(
                Issue(
                    "gap",
                    f"{gap_area:,.1f} m² of this {level} is covered by none of its "
                    f"{len(kids[p])} {child_level}(s)",
                    location=ctx.lonlat(shapely.point_on_surface(gap)),
                    area_m2=float(gap_area),
                    **ctx.ref(p),
                )
            )
        if big or p in outside_parents or p in overlapping_parents:
            covered, whole = ctx.area([shapely.intersection(parent_geom, union), parent_geom])
            share = covered / whole if whole > 0 else 0.0
            report.issues.append(
                Issue(
                    "not-tiling",
                    f"its {len(kids[p])} {child_level}(s) do not tile it: they cover {share:.2%}"
                    f" of it, with {len(big)} gap(s)"
                    + (", overlapping each other" if p in overlapping_parents else "")
                    + (", spilling outside it" if p in outside_parents else ""),
                    location=ctx.lonlat(_interior_point(parent_geom)),
                    **ctx.ref(p),
                )
            )
