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
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Geod

from gis.codes import CodeScheme, reading_order
from gis.crs import metric_area
from gis.hierarchy import DEFAULT_METRIC_CRS

__all__ = ["CitySpec", "city_spec", "generate", "hongqiao_spec"]

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
