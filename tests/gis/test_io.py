"""gis.io: reading boundary files into the canonical frame, and writing them back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Geod

from gis.crs import wgs84_to_gcj02
from gis.hierarchy import validate
from gis.io import (
    BoundaryFileError,
    BoundarySource,
    read_boundaries,
    write_boundaries,
)
from tests.fixtures.tiny import X0, Y0, U, frame, tiny_frame, tiny_rows

LEVELS = ("district", "street", "community", "grid")
GEOD = Geod(ellps="WGS84")

# pyogrio warns when a GeoJSON column mixes numbers and text; that mix is what some tests want.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse column:UserWarning")


def rows_with_land_use() -> list[dict]:
    rows = tiny_rows()
    for row in rows:
        if row["level"] == "grid":
            row["properties"] = {"land_use": "residential" if row["code"][-1] in "13" else "park"}
    return rows


def by_code(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gdf.set_index("code").sort_index()


def missing(value: object) -> bool:
    return value is None or bool(pd.isna(value))


def assert_same_regions(got: gpd.GeoDataFrame, want: gpd.GeoDataFrame) -> None:
    """Same codes, levels, parents, names, people, dates, properties and shapes."""
    got, want = by_code(got), by_code(want)
    assert list(got.index) == list(want.index)
    for code in want.index:
        g, w = got.loc[code], want.loc[code]
        assert g["level"] == w["level"], code
        assert g["name"] == w["name"], code
        if missing(w["parent_code"]):
            assert missing(g["parent_code"]), code
        else:
            assert g["parent_code"] == w["parent_code"], code
        for column in ("population", "households"):
            if missing(w[column]):
                assert missing(g[column]), (code, column)
            else:
                assert int(g[column]) == int(w[column]), (code, column)
        assert g["valid_from"] == w["valid_from"], code
        assert dict(g["properties"]) == dict(w["properties"]), code
        assert g.geometry.normalize().equals_exact(w.geometry.normalize(), 1e-12), code


def write_raw(gdf: gpd.GeoDataFrame, path: Path, **kwargs: object) -> Path:
    """Write a plain attribute table (no canonical processing) as a GIS user would."""
    pyogrio.write_dataframe(gdf, path, **kwargs)
    return path


def plain(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The tiny frame as plain columns a GIS file would carry."""
    out = gdf.drop(columns=["properties", "feature", "valid_to"]).copy()
    out["valid_from"] = [d.isoformat() for d in out["valid_from"]]
    return out


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gpkg", ".geojson"])
def test_round_trip_keeps_everything(tmp_path, suffix):
    original = frame(rows_with_land_use())
    path = write_boundaries(original, tmp_path / f"tiny{suffix}")
    read = read_boundaries([path])
    assert read.issues == []
    assert_same_regions(read.frame, original)
    assert read.frame.crs.to_epsg() == 4490
    assert validate(read.frame).ok


def test_round_trip_names_each_feature(tmp_path):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    read = read_boundaries([path])
    assert list(read.frame["feature"]) == [f"tiny.geojson#{i}" for i in range(13)]


def test_write_refuses_a_property_that_clashes_with_a_column(tmp_path):
    rows = tiny_rows()
    rows[0]["properties"] = {"name": "clash"}
    with pytest.raises(ValueError, match="name"):
        write_boundaries(frame(rows), tmp_path / "clash.gpkg")


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "tiny.gpkg"
    write_boundaries(tiny_frame(), path)
    just_grids = tiny_frame()[lambda f: f["level"] == "grid"]
    write_boundaries(just_grids, path)
    assert len(read_boundaries([path]).frame) == 8


# --- where the levels come from --------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [("district", "street", "community", "grid"), ("区", "街道", "社区", "网格"), (1, 2, 3, 4)],
    ids=["english", "chinese", "rank"],
)
def test_one_file_per_level(tmp_path, names):
    original = frame(rows_with_land_use())
    sources = []
    for level, name in zip(LEVELS, names, strict=True):
        subset = original[original["level"] == level].drop(columns=["level"])
        path = write_boundaries(subset, tmp_path / f"{level}.geojson")
        sources.append(BoundarySource(path, level=name))
    read = read_boundaries(sources)
    assert read.issues == []
    assert_same_regions(read.frame, original)
    assert validate(read.frame).ok
    grid_features = read.frame.loc[read.frame["level"] == "grid", "feature"]
    assert all(f.startswith("grid.geojson#") for f in grid_features)


def test_geopackage_with_one_layer_per_level(tmp_path):
    original = tiny_frame()
    path = tmp_path / "levels.gpkg"
    for level in LEVELS:
        subset = plain(original[original["level"] == level]).drop(columns=["level"])
        write_raw(subset, path, layer=level)
    read = read_boundaries([path])
    assert read.issues == []
    assert_same_regions(read.frame, original)
    features = read.frame.set_index("code")["feature"]
    assert features["120106"].startswith("levels.gpkg:district#")
    assert features["120106002001004"].startswith("levels.gpkg:grid#")


def test_geopackage_with_unrelated_layer_names_is_refused(tmp_path):
    original = plain(tiny_frame())
    path = tmp_path / "misc.gpkg"
    write_raw(original, path, layer="roads")
    write_raw(original, path, layer="rivers")
    with pytest.raises(BoundaryFileError, match="layers"):
        read_boundaries([path])
    # Choosing a layer explicitly works.
    read = read_boundaries([BoundarySource(path, layer="rivers")])
    assert len(read.frame) == len(original)


def test_choosing_a_missing_layer_is_refused(tmp_path):
    path = write_raw(plain(tiny_frame()), tmp_path / "one.gpkg", layer="regions")
    with pytest.raises(BoundaryFileError, match="roads"):
        read_boundaries([BoundarySource(path, layer="roads")])


def test_file_without_level_column_needs_a_level(tmp_path):
    path = write_raw(plain(tiny_frame()).drop(columns=["level"]), tmp_path / "x.geojson")
    with pytest.raises(BoundaryFileError, match="level"):
        read_boundaries([path])


@pytest.mark.parametrize("level", ["village", "5", ""])
def test_unknown_level_value_is_refused(tmp_path, level):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    with pytest.raises(BoundaryFileError, match="level"):
        read_boundaries([BoundarySource(path, level=level)])


# --- columns ---------------------------------------------------------------------------------


def test_chinese_column_names_are_found(tmp_path):
    original = tiny_frame()
    chinese = plain(original).rename(
        columns={
            "code": "编码",
            "name": "名称",
            "level": "层级",
            "parent_code": "上级编码",
            "population": "人口",
            "households": "户数",
            "valid_from": "启用日期",
        }
    )
    chinese["层级"] = chinese["层级"].map(
        {"district": "区", "street": "街道", "community": "社区", "grid": "网格"}
    )
    read = read_boundaries([write_raw(chinese, tmp_path / "中文.geojson")])
    assert read.issues == []
    assert_same_regions(read.frame, original)


def test_field_mapping_names_the_code_column(tmp_path):
    original = tiny_frame()
    renamed = plain(original).rename(columns={"code": "GRID_ID"})
    path = write_raw(renamed, tmp_path / "mapped.geojson")
    with pytest.raises(BoundaryFileError, match="--field code"):
        read_boundaries([path])  # no usual code column: the error says how to map one
    read = read_boundaries([path], fields={"code": "GRID_ID"})
    assert_same_regions(read.frame, original)


def test_field_mapping_to_a_missing_column_names_it(tmp_path):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    with pytest.raises(BoundaryFileError, match="GRID_ID"):
        read_boundaries([path], fields={"code": "GRID_ID"})


def test_field_mapping_of_an_unknown_field_is_refused(tmp_path):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    with pytest.raises(BoundaryFileError, match="colour"):
        read_boundaries([path], fields={"colour": "name"})


def test_missing_parent_code_is_derived_from_the_code(tmp_path):
    original = tiny_frame()
    path = write_raw(plain(original).drop(columns=["parent_code"]), tmp_path / "x.geojson")
    read = read_boundaries([path])
    got = by_code(read.frame)["parent_code"]
    want = by_code(original)["parent_code"]
    for code in want.index:
        if missing(want[code]):
            assert missing(got[code])
        else:
            assert got[code] == want[code]
    assert validate(read.frame).ok


def test_numeric_codes_and_levels_are_read_as_text(tmp_path):
    original = tiny_frame()
    numeric = plain(original)
    numeric["code"] = numeric["code"].astype("int64")
    numeric["level"] = numeric["level"].map({lv: i + 1 for i, lv in enumerate(LEVELS)})
    numeric = numeric.drop(columns=["parent_code"])
    read = read_boundaries([write_raw(numeric, tmp_path / "numeric.gpkg")])
    assert sorted(read.frame["code"]) == sorted(original["code"])
    assert list(by_code(read.frame)["level"]) == list(by_code(original)["level"])
    assert validate(read.frame).ok


# --- coordinate systems ----------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:'crs' was not provided:UserWarning")
@pytest.mark.filterwarnings("ignore:Normalized/laundered field name:RuntimeWarning")
@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_file_without_crs_needs_one(tmp_path, suffix):
    original = tiny_frame()
    bare = plain(original).set_crs(None, allow_override=True)
    path = write_raw(bare, tmp_path / f"bare{suffix}")
    with pytest.raises(BoundaryFileError, match="--crs"):
        read_boundaries([path])
    read = read_boundaries([path], crs="cgcs2000")
    got, want = by_code(read.frame), by_code(original)
    for code in want.index:
        assert got.geometry[code].normalize().equals_exact(want.geometry[code].normalize(), 1e-12)


def test_unknown_declared_crs_is_refused(tmp_path):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    with pytest.raises(BoundaryFileError, match="nonsense"):
        read_boundaries([path], crs="nonsense")


def test_declared_gcj02_gives_back_the_original_vertices(tmp_path):
    original = tiny_frame()

    def to_gcj(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(wgs84_to_gcj02(coords[:, 0], coords[:, 1]))

    shifted = original.copy()
    shifted["geometry"] = shapely.transform(original.geometry.to_numpy(), to_gcj)
    # The file claims plain WGS84, as files written from AMap coordinates do.
    path = write_boundaries(shifted.set_crs("EPSG:4326", allow_override=True), tmp_path / "a.gpkg")
    read = read_boundaries([path], crs="gcj02")
    got, want = by_code(read.frame), by_code(original)
    for code in want.index:
        result = shapely.get_coordinates(got.geometry[code])
        for lon, lat in shapely.get_coordinates(want.geometry[code]):
            distance = GEOD.inv(
                np.full(len(result), lon), np.full(len(result), lat), result[:, 0], result[:, 1]
            )[2]
            assert distance.min() < 0.01, code
    # Without the declaration everything would be hundreds of metres off.
    plain_read = by_code(read_boundaries([path]).frame)
    assert shapely.hausdorff_distance(plain_read.geometry["120106"], want.geometry["120106"]) > 1e-3


@pytest.mark.parametrize("declared", ["gcj02", "bd09"])
def test_hierarchy_drawn_in_offset_coordinates_stays_tiled(tmp_path, declared):
    # Boundaries digitised on an AMap or Baidu basemap tile each other in those coordinates;
    # after conversion, shared edges must still be shared (no slivers, no overlaps).
    drawn = tiny_frame().set_crs("EPSG:4326", allow_override=True)
    read = read_boundaries([write_boundaries(drawn, tmp_path / "drawn.gpkg")], crs=declared)
    report = validate(read.frame)
    assert report.ok, report.issues
    # And the regions really moved (by hundreds of metres at Tianjin).
    moved = by_code(read.frame).geometry["120106"].centroid
    before = by_code(tiny_frame()).geometry["120106"].centroid
    assert GEOD.inv(before.x, before.y, moved.x, moved.y)[2] > 300


def test_projected_file_is_converted_and_stays_tiled(tmp_path):
    # The tiny layout drawn in Gauss-Kruger metres (EPSG:4548), 1 unit = 1 km.
    x0, y0, unit = 515_000.0, 4_335_000.0, 1_000.0
    rows = []
    for row in tiny_rows():
        minx, miny, maxx, maxy = row["geometry"].bounds
        corners = [(minx - X0) / U, (miny - Y0) / U, (maxx - X0) / U, (maxy - Y0) / U]
        a, b, c, d = (round(v) for v in corners)
        gk_box = shapely.box(x0 + a * unit, y0 + b * unit, x0 + c * unit, y0 + d * unit)
        rows.append({**row, "geometry": gk_box})
    gk = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:4548")
    read = read_boundaries([write_boundaries(gk, tmp_path / "gk.gpkg")])
    district = by_code(read.frame).geometry["120106"]
    lon, lat = district.exterior.coords[0]
    assert 117.0 < lon < 117.5 and 39.0 < lat < 39.3
    assert validate(read.frame).ok


# --- per-feature defects ---------------------------------------------------------------------


def test_bad_population_and_date_become_issues_naming_the_feature(tmp_path):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    data = json.loads(path.read_text(encoding="utf-8"))
    code_3 = data["features"][3]["properties"]["code"]
    code_5 = data["features"][5]["properties"]["code"]
    data["features"][3]["properties"]["population"] = "many"
    data["features"][5]["properties"]["valid_from"] = "2024-13-45"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    read = read_boundaries([path])
    assert {(i.kind, i.feature, i.code) for i in read.issues} == {
        ("bad-attribute", "tiny.geojson#3", code_3),
        ("bad-attribute", "tiny.geojson#5", code_5),
    }
    messages = {i.feature: i.message for i in read.issues}
    assert "population" in messages["tiny.geojson#3"] and "many" in messages["tiny.geojson#3"]
    assert "valid_from" in messages["tiny.geojson#5"]
    got = by_code(read.frame)
    assert missing(got.loc[code_3, "population"])
    assert got.loc[code_5, "valid_from"] is None
    # The other features keep their values.
    assert int(got.loc["120106001001002", "population"]) == 302
    assert got.loc["120106001001002", "valid_from"] == dt.date(2024, 1, 1)


@pytest.mark.parametrize("value", [-5, 2.5, "三百"])
def test_population_must_be_a_non_negative_whole_number(tmp_path, value):
    path = write_boundaries(tiny_frame(), tmp_path / "tiny.geojson")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["features"][6]["properties"]["households"] = value
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    (issue,) = read_boundaries([path]).issues
    assert issue.kind == "bad-attribute"
    assert issue.feature == "tiny.geojson#6"
    assert "households" in issue.message


# --- unreadable files ------------------------------------------------------------------------


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(BoundaryFileError, match="no such file"):
        read_boundaries([tmp_path / "absent.gpkg"])


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.gpkg"
    folder.mkdir()
    with pytest.raises(BoundaryFileError, match="not a GeoPackage"):
        read_boundaries([folder])


def test_text_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a map", encoding="utf-8")
    with pytest.raises(BoundaryFileError, match="not a GeoPackage"):
        read_boundaries([path])


def test_corrupt_geopackage_is_refused(tmp_path):
    path = tmp_path / "corrupt.gpkg"
    path.write_bytes(np.random.default_rng(3).bytes(8192))
    with pytest.raises(BoundaryFileError, match=r"corrupt\.gpkg.*cannot be read"):
        read_boundaries([path])


def test_no_sources_is_refused():
    with pytest.raises(BoundaryFileError):
        read_boundaries([])
