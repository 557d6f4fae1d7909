"""Deterministic synthetic districts: the demo hierarchy and bigger cities for benchmarks.

The geometry is synthetic. A smooth random outline of the requested area is cut into districts,
streets, communities and basic grids by Lloyd-relaxed Voronoi partitions, each level clipped to
its parent, so that children tile their parent exactly (to floating-point precision) and every
cell is compact, as real grids drawn along roads and courtyards roughly are. The cutting is done
in a local frame that is an affine map of lon/lat (metres east and north of the centre at the
centre's scale): an affine map keeps straight edges straight, so a vertex that a child adds on
its parent's edge is still on that edge in CGCS2000. The outline is scaled so that its area in
the metric CRS is exactly the one asked for.

The default spec reproduces Hongqiao District, Tianjin (DOMAIN.md): 21.3 km² around
117.155 E 39.17 N, 1 → 10 → 123 → 992, about 320,000 residents, codes under 120106 in the
6+3+3+3 scheme, its ten real street names (placed roughly where they lie), synthetic community
names.

:func:`incident_activity` adds a stream of incident reports over such grids for the demo and for
the analyses (hot spots, rhythms, department ratings) that need months of plausible history:
Hongqiao's volume and closure rate, the sources' mix and their working hours, a right-skewed
closed loop per case, and real spatial clusters.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

from gis.codes import CodeScheme, reading_order
from gis.crs import metric_area
from gis.hierarchy import DEFAULT_METRIC_CRS

__all__ = [
    "SOURCES_MIX",
    "CitySpec",
    "city_spec",
    "generate",
    "hongqiao_spec",
    "incident_activity",
]

HONGQIAO_STREETS: tuple[tuple[str, str, tuple[float, float]], ...] = (
    # name, English name, rough position in the district (x east, y north, -1..1)
    ("丁字沽街道", "Dingzigu Subdistrict", (0.0, 0.8)),
    ("西沽街道", "Xigu Subdistrict", (0.6, 0.6)),
    ("咸阳北路街道", "Xianyang Beilu Subdistrict", (-0.35, 0.4)),
    ("和苑街道", "Heyuan Subdistrict", (-0.9, 0.0)),
    ("邵公庄街道", "Shaogongzhuang Subdistrict", (-0.4, -0.15)),
    ("双环邨街道", "Shuanghuancun Subdistrict", (0.1, 0.1)),
    ("西于庄街道", "Xiyuzhuang Subdistrict", (0.5, 0.1)),
    ("三条石街道", "Santiaoshi Subdistrict", (0.85, -0.3)),
    ("芥园街道", "Jieyuan Subdistrict", (-0.2, -0.7)),
    ("铃铛阁街道", "Lingdangge Subdistrict", (0.4, -0.7)),
)

_PLACE_WORDS = (
    "光荣道", "春和", "丁字沽", "西沽南", "北岸", "水木", "佳园", "湘潭道", "子牙河", "河北大街",
    "红旗路", "勤俭道", "大胡同", "北马路", "白庙", "芥园", "三元", "西青道", "双环", "复兴路",
    "风貌", "文化", "民畅", "龙禧", "宜君", "咸阳", "涟源", "怡然", "红日", "铃铛阁",
    "本溪路", "千禧", "天桥", "天顺", "凯莱", "美丽家园", "丰盈", "园丁", "西站", "同和",
    "如意", "和睦", "康宁", "育红", "中嘉", "新村", "堤头", "南运河", "北运河", "湾兴",
    "河畔", "桃源", "春光", "明华", "惠民", "永乐", "瑞园", "锦绣", "欣苑", "兴河",
)  # fmt: skip
_PLACE_SUFFIXES = ("里", "北里", "南里", "东里", "西里", "新苑", "家园", "花园", "园", "")
_LAND_USE = (("residential", 0.72), ("mixed", 0.14), ("commercial", 0.08), ("public", 0.04),
             ("park", 0.02))  # fmt: skip
_PEOPLE_PER_HOUSEHOLD = (2.2, 2.8)


@dataclass(frozen=True)
class CitySpec:
    """What to generate. Counts are totals over the whole city."""

    districts: int = 1
    streets: int = 10
    communities: int = 123
    grids: int = 992
    area_km2: float = 21.3
    center: tuple[float, float] = (117.155, 39.17)
    population: int = 320_000
    district_codes: tuple[str, ...] = ("120106",)
    district_names: tuple[str, ...] = ("红桥区",)
    district_names_en: tuple[str, ...] = ("Hongqiao District",)
    street_names: tuple[tuple[str, str, tuple[float, float]], ...] = HONGQIAO_STREETS
    seed: int = 20191216
    metric_crs: str = DEFAULT_METRIC_CRS
    valid_from: dt.date = dt.date(2024, 1, 1)
    scheme: CodeScheme = field(default_factory=CodeScheme)

    def __post_init__(self) -> None:
        counts = (self.districts, self.streets, self.communities, self.grids)
        if any(a > b for a, b in itertools.pairwise(counts)) or self.districts < 1:
            raise ValueError(
                f"each level needs at least as many regions as the one above: {counts}"
            )
        if self.area_km2 <= 0:
            raise ValueError("area_km2 must be positive")


def hongqiao_spec(seed: int = 20191216) -> CitySpec:
    """The demo district (DOMAIN.md figures)."""
    return CitySpec(seed=seed)


def city_spec(grids: int, seed: int = 20191216) -> CitySpec:
    """A city of ``grids`` basic grids with Hongqiao's proportions, for benchmarks."""
    if grids < 1:
        raise ValueError("grids must be at least 1")
    ratio = grids / 992
    districts = max(1, round(ratio))
    streets = max(districts, round(10 * ratio))
    communities = max(streets, round(123 * ratio))
    codes = tuple(f"12{(i // 99) + 1:02d}{(i % 99) + 1:02d}" for i in range(districts))
    names = tuple(f"示范{i + 1}区" for i in range(districts))
    return CitySpec(
        districts=districts,
        streets=streets,
        communities=communities,
        grids=grids,
        area_km2=21.3 * ratio,
        population=round(320_000 * ratio),
        district_codes=codes,
        district_names=names,
        district_names_en=tuple(f"Demo District {i + 1}" for i in range(districts)),
        street_names=() if districts > 1 else HONGQIAO_STREETS,
        seed=seed,
    )


def generate(spec: CitySpec | None = None) -> gpd.GeoDataFrame:
    """The whole hierarchy as a canonical boundary frame in CGCS2000 (see :mod:`gis.io`)."""
    spec = spec or hongqiao_spec()
    rng = np.random.default_rng(spec.seed)
    local = _LocalFrame(spec.center, spec.metric_crs)
    outline = local.fit_area(_outline(rng, (0.0, 0.0), spec.area_km2 * 1e6), spec.area_km2 * 1e6)

    rows: list[dict] = []
    typical = math.sqrt(spec.area_km2 * 1e6 / spec.grids)

    districts = _split(outline, spec.districts, rng)
    order = reading_order(*_centroids(districts), band=math.sqrt(outline.area / spec.districts))
    district_rows = []
    for seq, i in enumerate(order):
        row = {
            "level": "district",
            "code": spec.district_codes[seq]
            if seq < len(spec.district_codes)
            else f"12{seq // 99 + 1:02d}{seq % 99 + 1:02d}",
            "name": spec.district_names[seq] if seq < len(spec.district_names) else f"示范{seq}区",
            "parent_code": None,
            "geometry": districts[i],
            "properties": {"name_en": spec.district_names_en[seq]}
            if seq < len(spec.district_names_en)
            else {},
        }
        district_rows.append(row)
    rows.extend(district_rows)

    street_counts = _allocate(spec.streets, [r["geometry"].area for r in district_rows])
    street_rows = _children(
        district_rows, street_counts, "street", rng, spec.scheme, _street_namer(spec, outline)
    )
    english = {name: name_en for name, name_en, _ in spec.street_names}
    for row in street_rows:
        if row["name"] in english:
            row["properties"] = {"name_en": english[row["name"]]}
    rows.extend(street_rows)
    community_counts = _allocate(spec.communities, [r["geometry"].area for r in street_rows])
    community_rows = _children(
        street_rows, community_counts, "community", rng, spec.scheme, _community_namer(rng)
    )
    rows.extend(community_rows)
    grid_counts = _allocate(spec.grids, [r["geometry"].area for r in community_rows])
    grid_rows = _children(
        community_rows,
        grid_counts,
        "grid",
        rng,
        spec.scheme,
        lambda parent, seq, geom: f"{parent['name']}第{seq}网格",
        band=typical,
    )
    rows.extend(grid_rows)
    _people(grid_rows, community_rows, street_rows, district_rows, spec, rng)

    for row in rows:
        row.setdefault("properties", {})
        row["valid_from"] = spec.valid_from
        row["valid_to"] = None
    frame = gpd.GeoDataFrame(rows, geometry="geometry")
    frame["geometry"] = local.to_lonlat(frame.geometry.to_numpy())
    frame = frame.set_crs("EPSG:4490")
    frame["feature"] = [f"synthetic#{i}" for i in range(len(frame))]
    frame["population"] = frame["population"].astype("Int64")
    frame["households"] = frame["households"].astype("Int64")
    columns = ["level", "code", "name", "parent_code", "population", "households"]
    columns += ["valid_from", "valid_to", "properties", "feature", "geometry"]
    return frame[columns]


class _LocalFrame:
    """Metres east/north of a centre at the centre's scale: an affine map of lon/lat."""

    def __init__(self, center: tuple[float, float], metric_crs: str) -> None:
        self.lon0, self.lat0 = center
        geod = Geod(ellps="GRS80")  # CGCS2000's ellipsoid, to well under a millimetre here
        self.mx = geod.inv(self.lon0 - 0.005, self.lat0, self.lon0 + 0.005, self.lat0)[2] / 0.01
        self.my = geod.inv(self.lon0, self.lat0 - 0.005, self.lon0, self.lat0 + 0.005)[2] / 0.01
        self.metric_crs = metric_crs

    def to_lonlat(self, geoms: np.ndarray) -> np.ndarray:
        return shapely.transform(
            np.asarray(geoms, dtype=object),
            lambda c: np.column_stack(
                [self.lon0 + c[:, 0] / self.mx, self.lat0 + c[:, 1] / self.my]
            ),
        )

    def metric_area(self, geom: shapely.Geometry) -> float:
        return float(
            metric_area(self.to_lonlat(np.array([geom], dtype=object)), self.metric_crs)[0]
        )

    def fit_area(self, geom: shapely.Geometry, area: float) -> shapely.Geometry:
        """``geom`` scaled about the origin until its metric-CRS area is ``area``."""
        for _ in range(3):
            factor = math.sqrt(area / self.metric_area(geom))
            geom = shapely.transform(geom, lambda c, f=factor: c * f)
        return geom


def _outline(rng: np.random.Generator, center: tuple[float, float], area: float) -> shapely.Polygon:
    """A smooth irregular blob of exactly ``area`` m², slightly taller than wide."""
    theta = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    radius = np.ones_like(theta)
    for k in range(2, 7):
        radius += rng.uniform(0.02, 0.09) / (k - 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    x = radius * np.cos(theta)
    y = radius * np.sin(theta) * 1.1
    blob = shapely.Polygon(np.column_stack([x, y]))
    scale = math.sqrt(area / blob.area)
    return shapely.Polygon(np.column_stack([center[0] + x * scale, center[1] + y * scale]))


def _random_points(polygon: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = polygon.bounds
    found: list[np.ndarray] = []
    count = 0
    while count < n:
        batch = rng.uniform((minx, miny), (maxx, maxy), size=(max(4 * n, 16), 2))
        inside = batch[shapely.contains_xy(polygon, batch[:, 0], batch[:, 1])]
        found.append(inside)
        count += len(inside)
    return np.concatenate(found)[:n]


def _split(
    polygon: shapely.Geometry, n: int, rng: np.random.Generator, iterations: int = 5
) -> list[shapely.Geometry]:
    """Cut ``polygon`` into ``n`` compact cells that tile it (Lloyd-relaxed Voronoi)."""
    if n == 1:
        return [polygon]
    points = _random_points(polygon, n, rng)
    cells: list[shapely.Geometry] = []
    for step in range(iterations + 1):
        voronoi = shapely.voronoi_polygons(
            shapely.multipoints(points), extend_to=polygon, ordered=True
        )
        raw = shapely.get_parts(voronoi)
        cells = [_polygonal(c) for c in shapely.intersection(raw, polygon)]
        if step == iterations:
            break
        # Move each site to its cell's centroid, kept inside the polygon.
        centroids = np.array([[c.centroid.x, c.centroid.y] for c in cells])
        inside = shapely.contains_xy(polygon, centroids[:, 0], centroids[:, 1])
        points = np.where(inside[:, None], centroids, points)
    return cells


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    return shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]


def _centroids(geoms: Sequence[shapely.Geometry]) -> tuple[np.ndarray, np.ndarray]:
    pts = shapely.centroid(np.asarray(geoms, dtype=object))
    return shapely.get_x(pts), shapely.get_y(pts)


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), at least 1 each."""
    n = len(weights)
    w = np.asarray(weights, dtype=float)
    share = (total - n) * w / w.sum()
    base = np.floor(share).astype(int)
    remainder = total - n - base.sum()
    order = np.argsort(-(share - base), kind="stable")
    base[order[:remainder]] += 1
    return [int(b) + 1 for b in base]


Namer = Callable[[dict, int, shapely.Geometry], str]


def _children(
    parents: list[dict],
    counts: list[int],
    level: str,
    rng: np.random.Generator,
    scheme: CodeScheme,
    namer: Namer,
    band: float | None = None,
) -> list[dict]:
    rows: list[dict] = []
    for parent, count in zip(parents, counts, strict=True):
        cells = _split(parent["geometry"], count, rng)
        row_band = band or math.sqrt(parent["geometry"].area / count)
        order = reading_order(*_centroids(cells), band=row_band)
        for seq, i in enumerate(order, start=1):
            rows.append(
                {
                    "level": level,
                    "code": scheme.child_code(parent["code"], level, seq),
                    "name": namer(parent, seq, cells[i]),
                    "parent_code": parent["code"],
                    "geometry": cells[i],
                }
            )
    return rows


def _street_namer(spec: CitySpec, outline: shapely.Polygon) -> Namer:
    """Real street names where given, each placed at the street nearest its rough position."""
    names = list(spec.street_names)
    cx, cy = outline.centroid.x, outline.centroid.y
    minx, miny, maxx, maxy = outline.bounds
    half_w, half_h = (maxx - minx) / 2, (maxy - miny) / 2
    taken: set[str] = set()

    def name(parent: dict, seq: int, geom: shapely.Geometry) -> str:
        free = [n for n in names if n[0] not in taken]
        if not free:
            return f"{parent['name'].removesuffix('区')}第{seq}街道"
        x = (geom.centroid.x - cx) / half_w
        y = (geom.centroid.y - cy) / half_h
        best = min(free, key=lambda n: (n[2][0] - x) ** 2 + (n[2][1] - y) ** 2)
        taken.add(best[0])
        return best[0]

    return name


def _community_namer(rng: np.random.Generator) -> Namer:
    used: set[str] = set()

    def name(parent: dict, seq: int, geom: shapely.Geometry) -> str:
        for _ in range(200):
            word = _PLACE_WORDS[rng.integers(len(_PLACE_WORDS))]
            suffix = _PLACE_SUFFIXES[rng.integers(len(_PLACE_SUFFIXES))]
            candidate = f"{word}{suffix}社区"
            if candidate not in used:
                used.add(candidate)
                return candidate
        return f"{parent['name'].removesuffix('街道')}第{seq}社区"

    return name


def _people(
    grids: list[dict],
    communities: list[dict],
    streets: list[dict],
    districts: list[dict],
    spec: CitySpec,
    rng: np.random.Generator,
) -> None:
    """Land use, population and households per grid, summed up the hierarchy."""
    uses = [u for u, _ in _LAND_USE]
    weights = np.array([w for _, w in _LAND_USE])
    chosen = rng.choice(len(uses), size=len(grids), p=weights / weights.sum())
    density = {"residential": 1.0, "mixed": 0.6, "commercial": 0.15, "public": 0.1, "park": 0.02}
    raw = np.array(
        [
            g["geometry"].area * density[uses[c]] * rng.lognormal(0.0, 0.25)
            for g, c in zip(grids, chosen, strict=True)
        ]
    )
    population = np.floor(raw / raw.sum() * spec.population).astype(int)
    short = spec.population - population.sum()
    population[np.argsort(-raw)[:short]] += 1
    per_household = rng.uniform(*_PEOPLE_PER_HOUSEHOLD, size=len(grids))
    households = np.maximum(np.rint(population / per_household).astype(int), 0)
    for g, c, p, h in zip(grids, chosen, population, households, strict=True):
        g["population"], g["households"] = int(p), int(h)
        g["properties"] = {"land_use": uses[c]}
    for level_rows, child_rows in ((communities, grids), (streets, communities),
                                   (districts, streets)):  # fmt: skip
        totals: dict[str, list[int]] = {}
        for child in child_rows:
            acc = totals.setdefault(child["parent_code"], [0, 0])
            acc[0] += child["population"]
            acc[1] += child["households"]
        for row in level_rows:
            row["population"], row["households"] = totals.get(row["code"], [0, 0])


# --- incident reports ------------------------------------------------------------------------

SOURCES_MIX: dict[str, float] = {
    "patrol": 0.55,  # gridworkers on their rounds: the bulk of what a grid platform sees
    "hotline": 0.20,  # 12345, transferred to the district
    "app": 0.08,
    "resident": 0.07,  # walk-ins and calls to the community office
    "superior": 0.03,
    "petition": 0.02,
    "video": 0.05,  # cameras and IoT alarms
}

# Reports per local hour 0..23 (relative): patrols and offices keep working hours, the hotline and
# the app follow the citizens into the evening, cameras never sleep.
_OFFICE = (0.01,) * 8 + (0.6, 1.2, 1.3, 1.1, 0.3, 0.5, 1.2, 1.3, 1.2, 0.6, 0.1) + (0.01,) * 5
_HOURLY: dict[str, tuple[float, ...]] = {
    "patrol": (0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.08, 0.45, 1.0, 1.4, 1.5, 1.3,
               0.7, 0.8, 1.3, 1.4, 1.3, 1.0, 0.5, 0.25, 0.12, 0.06, 0.03, 0.02),
    "hotline": (0.12, 0.08, 0.06, 0.05, 0.05, 0.08, 0.25, 0.7, 1.1, 1.4, 1.4, 1.2,
                0.9, 1.0, 1.2, 1.2, 1.1, 1.0, 0.9, 0.9, 0.8, 0.6, 0.4, 0.25),
    "app": (0.10, 0.06, 0.04, 0.03, 0.03, 0.06, 0.2, 0.6, 1.0, 1.2, 1.2, 1.1,
            1.0, 0.9, 1.0, 1.0, 1.0, 1.0, 1.1, 1.2, 1.1, 0.8, 0.5, 0.25),
    "resident": (0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.2, 0.7, 1.2, 1.4, 1.4, 1.2,
                 0.8, 0.8, 1.2, 1.3, 1.2, 1.0, 0.7, 0.6, 0.4, 0.25, 0.12, 0.08),
    "superior": _OFFICE,
    "petition": _OFFICE,
    "video": (0.35, 0.3, 0.25, 0.25, 0.25, 0.3, 0.5, 0.8, 1.0, 1.0, 1.0, 1.0,
              1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.7, 0.5, 0.4),
}  # fmt: skip
# Monday..Sunday: weekend patrols run on a skeleton roster, offices hardly at all.
_WEEKLY: dict[str, tuple[float, ...]] = {
    "patrol": (1.0, 1.0, 1.0, 1.0, 1.0, 0.55, 0.45),
    "hotline": (1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.85),
    "app": (1.0, 1.0, 1.0, 1.0, 1.0, 1.05, 1.05),
    "resident": (1.0, 1.0, 1.0, 1.0, 1.0, 0.9, 0.85),
    "superior": (1.0, 1.0, 1.0, 1.0, 1.0, 0.08, 0.05),
    "petition": (1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.05),
    "video": (1.0,) * 7,
}
# Share of each source's reports the acceptor refuses to file (not the platform's business, no
# problem found on site, a false alarm); about 2 % overall.
_NOT_FILED: dict[str, float] = {"patrol": 0.01, "hotline": 0.035, "app": 0.04, "resident": 0.035,
                                "superior": 0.002, "petition": 0.01, "video": 0.03}  # fmt: skip
# Median handling time by the kind letter of a class code: events (exposed rubbish, vending) are
# cleared within hours, parts (a broken manhole cover) wait for a repair crew, social-governance
# cases (disputes, livelihood) take days of talking.
_HANDLING_HOURS = {"E": 4.0, "P": 20.0, "S": 30.0}
_HANDLING_HOURS_OTHER = 12.0
# Class prefixes a hot spot of each kind attracts: markets breed street vending and rubbish, old
# estates broken facilities and neighbour disputes.
_HOTSPOT_CLASSES = {"market": ("E05", "E01"), "old_estate": ("P05", "S02")}
_HOTSPOT_CLASS_BOOST = 6.0
_MERGED_SHARE = 0.01
_MERGE_RADIUS_M = 300.0
_MERGE_WINDOW_S = 72 * 3600
_REWORK_SHARE = 0.04
_EXTENSION_SHARE = 0.03
_PARKED_SHARE = 0.003
_DAY_S = 86_400
_NEVER = np.iinfo(np.int64).max
_LIFECYCLE = ("filed_at", "dispatched_at", "accepted_at", "handled_at", "verified_at", "closed_at")
_ACTIVITY_COLUMNS = ("reported_at", "lon", "lat", "grid_code", "class_code", "source",
                     *_LIFECYCLE, "final_status", "rework_count", "extension_count",
                     "merged_into")  # fmt: skip


def incident_activity(
    grids: gpd.GeoDataFrame,
    classes: pd.DataFrame,
    *,
    days: int,
    end: dt.datetime,
    per_day: float = 800.0,
    seed: int = 20191216,
    hotspots: int = 12,
    closed_share: float = 0.99,
) -> pd.DataFrame:
    """A deterministic, realistic stream of incident reports over ``grids`` for ``days`` to ``end``.

    The demo wall, the hot-spot analysis and the department ratings all need months of history
    that behaves like Hongqiao's (DOMAIN.md): ~800 reports a day, ~99 % of cases closed, most
    reports in working hours and from patrols, a few districts' corners far busier than the rest.

    ``grids`` are basic grids (``code``, polygonal ``geometry`` in EPSG:4490); ``classes`` has a
    ``code`` (kind letter P/E/S + major + minor, e.g. ``E0101``) and a relative ``weight``. The
    stream covers ``[end - days, end)``; ``end`` must be timezone-aware and its zone is the local
    time of the daily rhythm and of the returned timestamps.

    Each report picks a grid with probability proportional to ``1 + bumps``: Gaussian bumps
    (250–400 m wide, 8–20 × the background) around ``hotspots`` grid centroids, about half of
    them markets and half old estates with their own class mix. Every case runs the closed loop
    with right-skewed step durations and is then cut at ``end``, so recent cases are still open
    in whatever state they had reached, while every case older than two weeks has reached its
    outcome. ~2 % of reports are not filed and ~1 % are merged into an earlier duplicate (same
    class, within 300 m and 72 h); of the remaining, filed cases ``closed_share`` are closed
    (the closure rate counts these, as Hongqiao's 99 % does) and the rest parked (~0.3 %) or
    stuck open. Rows are sorted by ``reported_at``; ``merged_into`` is a position in the
    returned frame (its ``RangeIndex``). The grids' geometries are prepared in place (shapely).
    """
    tz = end.tzinfo
    if tz is None or end.utcoffset() is None:
        raise ValueError("end must be timezone-aware")
    if days < 0 or per_day < 0:
        raise ValueError("days and per_day must not be negative")
    if not 0.0 <= closed_share <= 1.0:
        raise ValueError("closed_share must lie in [0, 1]")
    if grids.crs is not None and grids.crs.to_epsg() != 4490:
        grids = grids.to_crs("EPSG:4490")
    grid_codes = grids["code"].astype(str).to_numpy(dtype=object)
    geoms = np.asarray(grids.geometry.to_numpy(), dtype=object)
    class_codes = classes["code"].astype(str).to_numpy(dtype=object)
    class_weights = classes["weight"].to_numpy(dtype=float)
    if len(geoms) == 0 or len(class_codes) == 0:
        raise ValueError("need at least one grid and one class")
    if not np.all(np.isfinite(class_weights)) or (class_weights < 0).any():
        raise ValueError("class weights must be finite and not negative")
    if class_weights.sum() <= 0:
        raise ValueError("class weights must not all be zero")
    areas = shapely.area(geoms)
    if not (areas > 0).any():
        raise ValueError("no grid has an area")

    rng = np.random.default_rng(seed)
    stop = -(-pd.Timestamp(end).value // 1_000_000_000)  # whole seconds: every t < stop is < end
    start = stop - days * _DAY_S
    times, sources = _report_times(rng, start, stop, per_day, tz)
    n = len(times)
    if n == 0:
        return _empty_activity(tz)

    # Where and what: a mixture of the background and one component per hot spot.
    local = _LocalFrame(_centre_of(geoms), DEFAULT_METRIC_CRS)
    cx, cy = _centroids(geoms)
    mx, my = (cx - local.lon0) * local.mx, (cy - local.lat0) * local.my
    component_weights, kinds = _hotspot_components(rng, mx, my, areas > 0, hotspots)
    class_p = _class_mixes(class_codes, class_weights, kinds)
    totals = component_weights.sum(axis=1)
    component = rng.choice(len(totals), size=n, p=totals / totals.sum())
    grid = np.empty(n, dtype=np.int64)
    cls = np.empty(n, dtype=np.int64)
    for c in range(len(totals)):
        rows = np.flatnonzero(component == c)
        grid[rows] = rng.choice(len(geoms), size=rows.size, p=component_weights[c] / totals[c])
        cls[rows] = rng.choice(len(class_codes), size=rows.size, p=class_p[c])
    lon, lat = _points_in(geoms, grid, rng)

    lifecycle = _lifecycle(
        rng,
        times,
        sources,
        cls,
        class_codes,
        (lon - local.lon0) * local.mx,
        (lat - local.lat0) * local.my,
        stop,
        tz,
        closed_share,
    )
    frame = pd.DataFrame(
        {
            "reported_at": _stamps(times, stop, tz),
            "lon": lon,
            "lat": lat,
            "grid_code": grid_codes[grid],
            "class_code": class_codes[cls],
            "source": np.asarray(list(SOURCES_MIX), dtype=object)[sources],
        }
    )
    for name in _LIFECYCLE:
        frame[name] = _stamps(lifecycle[name], stop, tz)
    frame["final_status"] = lifecycle["final_status"]
    frame["rework_count"] = lifecycle["rework_count"]
    frame["extension_count"] = lifecycle["extension_count"]
    merged_into = lifecycle["merged_into"]
    frame["merged_into"] = pd.arrays.IntegerArray(np.maximum(merged_into, 0), merged_into < 0)
    return frame


def _empty_activity(tz: dt.tzinfo) -> pd.DataFrame:
    stamp = pd.DatetimeTZDtype("us", tz)
    dtypes = {"reported_at": stamp, "lon": "float64", "lat": "float64", "grid_code": "str",
              "class_code": "str", "source": "str", **dict.fromkeys(_LIFECYCLE, stamp),
              "final_status": "str", "rework_count": "int64", "extension_count": "int64",
              "merged_into": "Int64"}  # fmt: skip
    return pd.DataFrame({name: pd.Series(dtype=dtypes[name]) for name in _ACTIVITY_COLUMNS})


def _centre_of(geoms: np.ndarray) -> tuple[float, float]:
    minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    return (minx + maxx) / 2, (miny + maxy) / 2


def _utc_offsets(seconds: np.ndarray, tz: dt.tzinfo) -> np.ndarray:
    """Seconds east of UTC of the zone ``tz`` at each of ``seconds`` (Unix time)."""
    utc = pd.DatetimeIndex(seconds.astype("datetime64[s]")).tz_localize("UTC")
    wall = utc.tz_convert(tz).tz_localize(None)
    return ((wall - utc.tz_localize(None)).total_seconds()).to_numpy().astype(np.int64)


def _report_times(
    rng: np.random.Generator, start: int, stop: int, per_day: float, tz: dt.tzinfo
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted report times (Unix seconds) and source indices, from an hourly Poisson process.

    Each source has its own rhythm over the local day and week; a mild upward trend (+12 % a
    year) and a day-to-day wobble (weather, campaigns) are shared. Each source's intensity is
    scaled so that its expected total is exactly its share of ``per_day`` × days.
    """
    hours = -(-(stop - start) // 3600)
    if hours == 0 or per_day == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    begins = start + 3600 * np.arange(hours, dtype=np.int64)
    mids = np.minimum(begins + 1800, stop - 1)
    wall = mids + _utc_offsets(mids, tz)
    hour_of_day = (wall // 3600) % 24
    weekday = (wall // _DAY_S + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    day = wall // _DAY_S - wall[0] // _DAY_S
    wobble = rng.lognormal(0.0, 0.1, size=int(day[-1]) + 1)[day]
    shared = (1.0 + 0.12 * (mids - start) / (365 * _DAY_S)) * wobble
    lengths = np.minimum(begins + 3600, stop) - begins
    expected = per_day * (stop - start) / _DAY_S
    lam = np.empty((len(SOURCES_MIX), hours))
    for s, (source, share) in enumerate(SOURCES_MIX.items()):
        w = np.asarray(_HOURLY[source])[hour_of_day] * np.asarray(_WEEKLY[source])[weekday]
        w = w * shared * lengths
        lam[s] = expected * share * w / w.sum()
    counts = rng.poisson(lam).ravel()
    cell = np.repeat(np.arange(counts.size), counts)
    source, hour = np.divmod(cell, hours)
    times = begins[hour] + (rng.random(cell.size) * lengths[hour]).astype(np.int64)
    order = np.argsort(times, kind="stable")
    return times[order], source[order]


def _hotspot_components(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, usable: np.ndarray, hotspots: int
) -> tuple[np.ndarray, list[str]]:
    """Per-grid weights of the background and of each hot spot's bump (rows), and their kinds.

    The background varies mildly from grid to grid (lognormal, σ 0.3) as real grids' land use
    does; each bump is Gaussian in metres around a grid centroid, so neighbouring grids are busy
    together, which is what makes a Getis-Ord Gi* find clusters rather than lone outliers.
    """
    base = rng.lognormal(0.0, 0.3, size=len(x)) * usable
    count = min(max(hotspots, 0), int(usable.sum()))
    centres = rng.choice(np.flatnonzero(usable), size=count, replace=False)
    amplitude = rng.uniform(8.0, 20.0, size=count)
    width = rng.uniform(250.0, 400.0, size=count)
    kinds = ["market" if r < 0.5 else "old_estate" for r in rng.random(count)]
    d2 = (x[None, :] - x[centres, None]) ** 2 + (y[None, :] - y[centres, None]) ** 2
    bumps = amplitude[:, None] * np.exp(-d2 / (2.0 * width[:, None] ** 2))
    return np.vstack([base[None, :], base[None, :] * bumps]), kinds


def _class_mixes(codes: np.ndarray, weights: np.ndarray, kinds: Sequence[str]) -> np.ndarray:
    """The class distribution of the background (row 0) and of each hot spot (rows 1..)."""
    rows = [weights / weights.sum()]
    for kind in kinds:
        favoured = np.array([c.upper().startswith(_HOTSPOT_CLASSES[kind]) for c in codes])
        w = weights * np.where(favoured, _HOTSPOT_CLASS_BOOST, 1.0)
        rows.append(w / w.sum())
    return np.vstack(rows)


def _points_in(
    geoms: np.ndarray, grid: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform random point inside each row's grid: rejection sampling in bulk."""
    shapely.prepare(geoms)
    bounds = shapely.bounds(geoms)
    lon = np.empty(len(grid))
    lat = np.empty(len(grid))
    todo = np.arange(len(grid))
    for _ in range(1000):
        if todo.size == 0:
            return lon, lat
        b = bounds[grid[todo]]
        u = rng.random((todo.size, 2))
        px = b[:, 0] + u[:, 0] * (b[:, 2] - b[:, 0])
        py = b[:, 1] + u[:, 1] * (b[:, 3] - b[:, 1])
        inside = shapely.contains_xy(geoms[grid[todo]], px, py)
        lon[todo[inside]], lat[todo[inside]] = px[inside], py[inside]
        todo = todo[~inside]
    raise ValueError("could not place points inside some grids (degenerate geometry?)")


def _durations(
    rng: np.random.Generator, median_s: float | np.ndarray, sigma: float, lo: int, hi: int, n: int
) -> np.ndarray:
    """Right-skewed (lognormal) step durations in whole seconds, clipped to [lo, hi]."""
    raw = np.rint(np.asarray(median_s) * rng.lognormal(0.0, sigma, size=n))
    return np.clip(raw, lo, hi).astype(np.int64)


def _in_daytime(
    rng: np.random.Generator,
    t: np.ndarray,
    tz: dt.tzinfo,
    share: float,
    resume_hour: float,
    jitter_s: int,
    day: tuple[float, float] = (7.0, 21.0),
) -> np.ndarray:
    """``t`` with a ``share`` of the night-time moments moved to the next morning's shift.

    A report at 2 a.m. is filed, a repair finished, a result checked when the morning shift
    starts (``resume_hour`` local plus up to ``jitter_s``), not at 2 a.m.
    """
    offset = _utc_offsets(t, tz)
    wall = t + offset
    clock = wall % _DAY_S
    night = (clock < day[0] * 3600) | (clock >= day[1] * 3600)
    move = night & (rng.random(t.size) < share)
    resume = wall - clock + int(resume_hour * 3600)
    resume = np.where(resume <= wall, resume + _DAY_S, resume)
    jitter = rng.integers(0, jitter_s, size=t.size)
    return np.where(move, resume + jitter - offset, t)


def _lifecycle(
    rng: np.random.Generator,
    reported: np.ndarray,
    sources: np.ndarray,
    cls: np.ndarray,
    class_codes: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    stop: int,
    tz: dt.tzinfo,
    closed_share: float,
) -> dict[str, np.ndarray]:
    """Every case's closed loop in Unix seconds (``_NEVER`` where not reached by ``stop``).

    The whole chain is drawn for every row, each case's outcome then decides how far along it
    runs, and finally everything at or after ``stop`` is cut off: the open states of recent
    cases come out of the same durations that close the old ones. Durations are capped so that
    every case reaches its outcome within 14 days of its report (night waits included: about
    1 day to accept, 4 + 3 of handling and extensions, 3 of rework, 2 to verify and close);
    almost all close within 5.
    """
    n = reported.size
    hours = np.array([_HANDLING_HOURS.get(c[:1].upper(), _HANDLING_HOURS_OTHER)
                      for c in class_codes])  # fmt: skip
    handling_median = (hours * 3600 * rng.lognormal(0.0, 0.3, size=len(class_codes)))[cls]

    # The full chain.
    filed = _in_daytime(rng, reported + _durations(rng, 600, 0.9, 60, 7200, n), tz, 0.6, 7.5, 3600)
    dispatched = filed + _durations(rng, 720, 0.8, 60, 3 * 3600, n)
    accepted = dispatched + _durations(rng, 1200, 1.0, 60, 8 * 3600, n)
    handling = _durations(rng, handling_median, 0.9, 900, 4 * _DAY_S, n)
    extensions = np.where(rng.random(n) < _EXTENSION_SHARE, 1 + (rng.random(n) < 0.15), 0)
    extension_days = rng.integers(_DAY_S, 3 * _DAY_S // 2, size=(n, 2))
    first_extension = accepted + handling // 2
    second_extension = first_extension + extension_days[:, 0]
    extra = np.where(extensions >= 1, extension_days[:, 0], 0)
    extra += np.where(extensions >= 2, extension_days[:, 1], 0)
    handled_first = _in_daytime(rng, accepted + handling + extra, tz, 0.8, 8.0, 3 * 3600)
    rework = rng.random(n) < _REWORK_SHARE
    reworked = _in_daytime(
        rng, handled_first + _durations(rng, 7200, 0.8, 300, _DAY_S // 2, n), tz, 0.9, 8.5, 7200
    )
    rehandling = _durations(rng, handling_median / 2, 0.9, 900, 3 * _DAY_S // 2, n)
    handled_again = _in_daytime(rng, reworked + rehandling, tz, 0.8, 8.0, 3 * 3600)
    handled = np.where(rework, handled_again, handled_first)
    verified = _in_daytime(
        rng, handled + _durations(rng, 7200, 0.8, 300, _DAY_S, n), tz, 0.9, 8.5, 7200
    )
    closed = verified + _durations(rng, 1800, 0.9, 60, 12 * 3600, n)

    # Outcomes.
    refuse = np.asarray([_NOT_FILED[s] for s in SOURCES_MIX])[sources]
    not_filed = rng.random(n) < refuse
    merged_into = _duplicates(rng, reported, x, y, cls, ~not_filed)
    merged = merged_into >= 0
    merged_when_filed = rng.random(n) < 0.3  # merged after filing, else at the filing decision
    merged_at = np.where(merged_when_filed, filed + _durations(rng, 1800, 0.9, 60, 6 * 3600, n),
                         filed)  # fmt: skip
    parked_share = min(_PARKED_SHARE, 0.3 * (1.0 - closed_share))
    stuck_share = max(0.0, 1.0 - closed_share - parked_share)
    u = rng.random(n)
    rest = ~not_filed & ~merged
    parked = rest & (u < parked_share)
    stuck = rest & (u >= parked_share) & (u < parked_share + stuck_share)
    completes = rest & ~parked & ~stuck
    # A parked case was parked while filed, dispatched or being handled; a stuck one was
    # dispatched and usually accepted, and mostly got extensions, but never finished.
    parked_stage = rng.choice(3, size=n, p=[0.3, 0.3, 0.4])
    parked_at = np.choose(parked_stage, [filed, dispatched, accepted])
    parked_at = parked_at + _durations(rng, _DAY_S, 0.8, 3600, 6 * _DAY_S, n)
    stuck_accepted = rng.random(n) < 0.75
    stuck_extensions = rng.choice(3, size=n, p=[0.3, 0.5, 0.2])

    def only(mask: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(mask & (t < stop), t, _NEVER)

    shown = completes & rework & (reworked >= stop)  # the rework has not happened yet
    stamps = {
        "filed_at": only(~not_filed & ~(merged & ~merged_when_filed), filed),
        "dispatched_at": only(completes | stuck | (parked & (parked_stage >= 1)), dispatched),
        "accepted_at": only(
            completes | (stuck & stuck_accepted) | (parked & (parked_stage == 2)), accepted
        ),
        "handled_at": only(completes, np.where(shown, handled_first, handled)),
        "verified_at": only(completes & ~shown, verified),
        "closed_at": only(completes & ~shown, closed),
    }
    status = np.full(n, "reported", dtype=object)
    for name, state in zip(_LIFECYCLE, ("filed", "dispatched", "handling", "handled", "verified",
                                        "closed"), strict=True):  # fmt: skip
        status[stamps[name] < stop] = state
    status[not_filed & (filed < stop)] = "not_filed"
    status[merged & (merged_at < stop)] = "merged"
    status[parked & (parked_at < stop)] = "parked"

    # Extensions count once approved, i.e. once their moment has passed.
    granted = (first_extension < stop) & (extensions >= 1)
    granted_again = (second_extension < stop) & (extensions >= 2)
    stuck_granted = (dispatched + 3 * _DAY_S < stop) & (stuck_extensions >= 1)
    stuck_granted_again = (dispatched + 10 * _DAY_S < stop) & (stuck_extensions >= 2)
    extension_count = np.select(
        [completes, stuck],
        [granted.astype(int) + granted_again, stuck_granted.astype(int) + stuck_granted_again],
        0,
    )
    shown_merge = merged & (merged_at < stop)
    return {
        **stamps,
        "final_status": status,
        "rework_count": (completes & rework & (reworked < stop)).astype(np.int64),
        "extension_count": extension_count.astype(np.int64),
        "merged_into": np.where(shown_merge, merged_into, -1),
    }


def _duplicates(
    rng: np.random.Generator,
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    cls: np.ndarray,
    eligible: np.ndarray,
) -> np.ndarray:
    """For ~1 % of rows the earlier report they duplicate, else -1.

    Random eligible rows are tried until ~1 % found the nearest earlier report of the same class
    within 300 m and 72 h that is neither merged itself nor a duplicate's target (no chains);
    rows without one stay ordinary cases. Tries are capped, so the loop stays short.
    """
    n = t.size
    target = np.full(n, -1, dtype=np.int64)
    wanted = int(rng.binomial(int(eligible.sum()), _MERGED_SHARE))
    if wanted == 0:
        return target
    candidates = rng.permutation(np.flatnonzero(eligible))[: 30 * wanted]
    order = np.argsort(cls, kind="stable")  # rows are in time order, so each class's are too
    bounds = np.searchsorted(cls[order], np.arange(cls.max() + 2))
    is_target = np.zeros(n, dtype=bool)
    found = 0
    for i in candidates:
        if found == wanted:
            break
        if is_target[i]:
            continue
        same = order[bounds[cls[i]] : bounds[cls[i] + 1]]
        lo, hi = np.searchsorted(t[same], [t[i] - _MERGE_WINDOW_S, t[i]])
        near = same[lo:hi]
        near = near[eligible[near] & (target[near] < 0)]
        if near.size == 0:
            continue
        d2 = (x[near] - x[i]) ** 2 + (y[near] - y[i]) ** 2
        j = int(np.argmin(d2))
        if d2[j] <= _MERGE_RADIUS_M**2:
            target[i] = near[j]
            is_target[near[j]] = True
            found += 1
    return target


def _stamps(seconds: np.ndarray, stop: int, tz: dt.tzinfo) -> pd.Series:
    """Unix seconds as timestamps in ``tz`` (µs resolution); NaT at or after ``stop``."""
    missing = seconds >= stop
    values = np.where(missing, 0, seconds).astype("datetime64[s]").astype("datetime64[us]")
    values[missing] = np.datetime64("NaT")
    return pd.Series(pd.DatetimeIndex(values).tz_localize("UTC").tz_convert(tz))
