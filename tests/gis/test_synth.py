"""gis.synth: the synthetic Hongqiao district and bigger benchmark cities."""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from gis.codes import LEVELS, CodeScheme, reading_order
from gis.crs import metric_area
from gis.hierarchy import ValidationOptions, validate
from gis.synth import CitySpec, city_spec, generate, hongqiao_spec

# Hongqiao District, Tianjin (DOMAIN.md).
HONGQIAO_COUNTS = {"district": 1, "street": 10, "community": 123, "grid": 992}
HONGQIAO_AREA_M2 = 21.3e6
HONGQIAO_POPULATION = 320_000
HONGQIAO_STREETS = {
    "丁字沽街道",
    "西沽街道",
    "咸阳北路街道",
    "和苑街道",
    "邵公庄街道",
    "双环邨街道",
    "西于庄街道",
    "三条石街道",
    "芥园街道",
    "铃铛阁街道",
}
SCHEME = CodeScheme()


@pytest.fixture(scope="module")
def hongqiao() -> gpd.GeoDataFrame:
    return generate()


@pytest.fixture(scope="module")
def city() -> gpd.GeoDataFrame:
    return generate(city_spec(3000))


def level(frame: gpd.GeoDataFrame, name: str) -> gpd.GeoDataFrame:
    return frame[frame["level"] == name]


# --- the demo district -----------------------------------------------------------------------


def test_hongqiao_has_the_real_region_counts(hongqiao):
    counts = hongqiao["level"].value_counts().to_dict()
    assert counts == HONGQIAO_COUNTS


def test_hongqiao_is_a_valid_hierarchy(hongqiao):
    report = validate(hongqiao)
    assert report.errors == []
    assert report.counts == HONGQIAO_COUNTS


def test_floating_point_noise_on_shared_edges_is_no_defect_even_at_full_containment(hongqiao):
    # Clipped cells meet their parent's edge only to floating-point precision; asking for 100 %
    # containment must not turn that noise into "outside its parent" errors.
    report = validate(hongqiao, ValidationOptions(containment=1.0))
    assert report.errors == []


def test_hongqiao_has_the_real_area(hongqiao):
    (district,) = level(hongqiao, "district").geometry
    (area,) = metric_area([district], "EPSG:4548")
    assert area == pytest.approx(HONGQIAO_AREA_M2, rel=0.001)


def test_hongqiao_lies_in_hongqiao(hongqiao):
    assert hongqiao.crs.to_epsg() == 4490
    minx, miny, maxx, maxy = hongqiao.total_bounds
    assert 117.12 <= minx < maxx <= 117.19
    assert 39.14 <= miny < maxy <= 39.20


def test_population_adds_up_at_every_level(hongqiao):
    for name in LEVELS:
        assert int(level(hongqiao, name)["population"].sum()) == HONGQIAO_POPULATION, name
    by_code = hongqiao.set_index("code")
    children = hongqiao[hongqiao["level"] != "district"]
    for column in ("population", "households"):
        sums = children.groupby("parent_code")[column].sum()
        for parent_code, total in sums.items():
            assert int(by_code.loc[parent_code, column]) == int(total), (parent_code, column)


def test_every_grid_has_people_households_and_land_use(hongqiao):
    grids = level(hongqiao, "grid")
    assert (grids["population"] >= 0).all()
    assert (grids["households"] >= 0).all()
    # Households hold more than one person on average, and never more households than people.
    assert (grids["households"] <= grids["population"]).all()
    assert grids["population"].sum() > grids["households"].sum()
    assert all(isinstance(p.get("land_use"), str) for p in grids["properties"])


def test_codes_follow_the_6_3_3_3_scheme_under_120106(hongqiao):
    assert hongqiao["code"].is_unique
    for row in hongqiao.itertuples():
        parent = row.parent_code if isinstance(row.parent_code, str) else None
        assert row.code.startswith("120106"), row.code
        assert SCHEME.level_of(row.code) == row.level, row.code
        assert SCHEME.problems(row.code, row.level, parent) == [], row.code
        if row.level != "district":
            assert parent is not None and row.code[: len(parent)] == parent


def test_streets_carry_the_real_hongqiao_names(hongqiao):
    streets = level(hongqiao, "street")
    assert set(streets["name"]) == HONGQIAO_STREETS
    assert all(p.get("name_en", "").endswith("Subdistrict") for p in streets["properties"])


def test_streets_are_roughly_where_they_lie(hongqiao):
    # Dingzigu is the north of the district, Jieyuan and Lingdangge the south, Heyuan the west.
    streets = level(hongqiao, "street")
    centroids = shapely.centroid(streets.geometry.to_numpy())
    x = dict(zip(streets["name"], shapely.get_x(centroids), strict=True))
    y = dict(zip(streets["name"], shapely.get_y(centroids), strict=True))
    assert y["丁字沽街道"] > y["芥园街道"]
    assert y["丁字沽街道"] > y["铃铛阁街道"]
    assert x["和苑街道"] == min(x.values())


def test_grid_and_community_names_are_unique(hongqiao):
    assert level(hongqiao, "grid")["name"].is_unique
    assert level(hongqiao, "community")["name"].is_unique


def test_grid_sequence_follows_reading_order_within_each_community(hongqiao):
    # Rows are one typical grid high: sqrt(area / grids) metres, in degrees of latitude here.
    lon0, lat0 = 117.155, 39.17
    metres_per_degree = Geod(ellps="GRS80").inv(lon0, lat0 - 0.005, lon0, lat0 + 0.005)[2] / 0.01
    band = math.sqrt(HONGQIAO_AREA_M2 / HONGQIAO_COUNTS["grid"]) / metres_per_degree
    grids = level(hongqiao, "grid")
    checked = 0
    for _, members in grids.groupby("parent_code"):
        members = members.sort_values("code")
        centroids = shapely.centroid(members.geometry.to_numpy())
        order = reading_order(shapely.get_x(centroids), shapely.get_y(centroids), band=band)
        assert list(order) == list(range(len(members))), members["code"].iloc[0][:12]
        checked += 1
    assert checked == HONGQIAO_COUNTS["community"]


def test_same_seed_gives_the_same_district(hongqiao):
    again = generate(hongqiao_spec())
    assert list(again["code"]) == list(hongqiao["code"])
    assert list(again["name"]) == list(hongqiao["name"])
    assert list(again["population"]) == list(hongqiao["population"])
    assert list(again["households"]) == list(hongqiao["households"])
    assert list(again["properties"]) == list(hongqiao["properties"])
    assert all(
        shapely.equals_exact(again.geometry.to_numpy(), hongqiao.geometry.to_numpy(), tolerance=0)
    )


def test_another_seed_gives_another_district(hongqiao):
    other = generate(hongqiao_spec(seed=7))
    assert other["level"].value_counts().to_dict() == HONGQIAO_COUNTS
    grids_a = level(hongqiao, "grid").set_index("code").geometry
    grids_b = level(other, "grid").set_index("code").geometry
    common = grids_a.index.intersection(grids_b.index)
    same = shapely.equals_exact(
        grids_a[common].to_numpy(), grids_b[common].to_numpy(), tolerance=1e-9
    )
    assert not same.any()
    # Same district area, though.
    (area_b,) = metric_area(level(other, "district").geometry.to_numpy(), "EPSG:4548")
    assert area_b == pytest.approx(HONGQIAO_AREA_M2, rel=0.001)


# --- bigger cities ---------------------------------------------------------------------------


def test_city_of_3000_grids_is_valid(city):
    report = validate(city)
    assert report.errors == []
    counts = city["level"].value_counts().to_dict()
    assert counts["grid"] == 3000
    assert counts["district"] >= 2
    assert counts["district"] <= counts["street"] <= counts["community"] <= counts["grid"]
    # Hongqiao's proportions, scaled.
    assert counts["street"] == pytest.approx(10 * 3000 / 992, rel=0.1)
    assert counts["community"] == pytest.approx(123 * 3000 / 992, rel=0.1)


def test_city_codes_are_unique_and_nested(city):
    assert city["code"].is_unique
    for row in city.itertuples():
        parent = row.parent_code if isinstance(row.parent_code, str) else None
        assert SCHEME.problems(row.code, row.level, parent) == [], row.code


def test_city_area_and_population_scale_with_the_grids(city):
    areas = metric_area(level(city, "district").geometry.to_numpy(), "EPSG:4548")
    assert areas.sum() == pytest.approx(HONGQIAO_AREA_M2 * 3000 / 992, rel=0.001)
    total = int(level(city, "grid")["population"].sum())
    assert total == round(HONGQIAO_POPULATION * 3000 / 992)
    assert int(level(city, "district")["population"].sum()) == total


def test_city_spec_rejects_no_grids():
    with pytest.raises(ValueError):
        city_spec(0)


@pytest.mark.parametrize(
    "counts",
    [
        {"districts": 0},
        {"districts": 2, "streets": 1},
        {"streets": 10, "communities": 9},
        {"communities": 123, "grids": 100},
    ],
)
def test_city_spec_rejects_impossible_counts(counts):
    with pytest.raises(ValueError):
        CitySpec(**counts)


@pytest.mark.parametrize("area", [0.0, -1.0])
def test_city_spec_rejects_non_positive_area(area):
    with pytest.raises(ValueError):
        CitySpec(area_km2=area)


def test_small_custom_city_is_valid():
    spec = CitySpec(districts=1, streets=2, communities=3, grids=7, area_km2=0.5, population=900)
    frame = generate(spec)
    assert frame["level"].value_counts().to_dict() == {
        "district": 1,
        "street": 2,
        "community": 3,
        "grid": 7,
    }
    assert validate(frame).ok
    assert int(level(frame, "grid")["population"].sum()) == 900
    (area,) = metric_area(level(frame, "district").geometry.to_numpy(), "EPSG:4548")
    assert area == pytest.approx(0.5e6, rel=0.001)
    assert np.all(frame["valid_from"] == spec.valid_from)
