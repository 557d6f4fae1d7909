"""`gridmap locate`: one point, and files in CSV, GeoPackage, GeoJSON and Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely

from app.db.engine import make_engine
from app.services import boundaries as boundary_service
from app.services import regions as region_service
from gis.crs import wgs84_to_gcj02
from gis.io import read_boundaries
from tests.conftest import DEMO_FILE


@pytest.fixture(scope="module")
def grid_points() -> list[tuple[str, float, float]]:
    frame = read_boundaries([DEMO_FILE]).frame
    grids = frame[frame["level"] == "grid"].sort_values("code").iloc[::97]
    pts = shapely.point_on_surface(grids.geometry.to_numpy())
    return list(zip(grids["code"], shapely.get_x(pts), shapely.get_y(pts), strict=True))


def oracle(url: str, lon: float, lat: float) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        version = boundary_service.active_version(conn)
        found = region_service.covering(conn, version.id, lon, lat)
    engine.dispose()
    return next((r["code"] for r in found if r["level"] == "grid"), "")


def test_one_point_prints_the_chain(cli_for, shared_demo_db, grid_points) -> None:  # type: ignore[no-untyped-def]
    code, lon, lat = grid_points[3]
    cli = cli_for(shared_demo_db)
    result = cli("locate", lon, lat)
    assert result.exit_code == 0, result.output
    assert code in result.output and code[:12] in result.output and "红桥区" in result.output
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    as_json = json.loads(cli("locate", glon, glat, "--crs", "gcj02", "--json").stdout)
    assert as_json["grid"]["code"] == code
    assert as_json["district"]["code"] == "120106"
    outside = json.loads(cli("locate", 117.0, 39.0, "--json").stdout)
    assert "grid" not in outside and outside["nearest"]["distance_m"] > 1000


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("117.1", "95"), "out of range"),
        (("39.16", "117.15"), "swapped"),
        (("nan", "39.1"), "finite"),
        (("117.1", "39.1", "--crs", "utm"), "wgs84, cgcs2000, gcj02, bd09"),
        (("117.1", "39.1", "--as-of", "soon"), "as_of"),
        (("117.1",), "LON LAT"),
        (("--input", "x.csv"), "--output"),
    ],
)
def test_bad_input_is_refused_with_a_reason(cli_for, shared_demo_db, args, words) -> None:  # type: ignore[no-untyped-def]
    result = cli_for(shared_demo_db)("locate", *args)
    assert result.exit_code != 0
    assert words in result.output


def test_csv_to_geopackage_parquet_and_back(cli_for, shared_demo_db, grid_points, tmp_path):  # type: ignore[no-untyped-def]
    cli = cli_for(shared_demo_db)
    rows = [{"case": f"c{i}", "lng": x, "lat": y} for i, (_, x, y) in enumerate(grid_points)]
    rows += [{"case": "bad", "lng": "east", "lat": 39.1}, {"case": "far", "lng": 117, "lat": 39}]
    src = tmp_path / "cases.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    expected = [code for code, _, _ in grid_points] + ["", ""]

    gpkg = tmp_path / "located.gpkg"
    result = cli("locate", "--input", src, "--output", gpkg, "--nearest")
    assert result.exit_code == 0, result.output
    assert f"{len(grid_points)} in a grid" in result.output and "1 unreadable" in result.output
    out = pyogrio.read_dataframe(gpkg)
    assert list(out["case"]) == [r["case"] for r in rows]  # every row kept, in order
    assert [v or "" for v in out["grid_code"]] == expected
    assert "not a number" in out["error"].iloc[-2]
    assert out["nearest_grid_code"].iloc[-1] and out["nearest_distance_m"].iloc[-1] > 1000
    assert out.crs.to_epsg() == 4490
    assert out.geometry.iloc[0].x == pytest.approx(grid_points[0][1])

    parquet = tmp_path / "located.parquet"
    assert cli("locate", "-i", gpkg, "-o", parquet).exit_code == 0
    again = gpd.read_parquet(parquet)
    assert [v or "" for v in again["grid_code"]] == expected
    csv_out = tmp_path / "again.csv"
    assert cli("locate", "-i", parquet, "-o", csv_out).exit_code == 0
    back = pd.read_csv(csv_out, dtype=str, keep_default_na=False)
    assert list(back["grid_code"]) == expected


def test_gcj02_file_and_a_file_crs(cli_for, shared_demo_db, grid_points, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(shared_demo_db)
    lon = [p[1] for p in grid_points]
    lat = [p[2] for p in grid_points]
    glon, glat = wgs84_to_gcj02(lon, lat)
    src = tmp_path / "gcj.csv"
    pd.DataFrame({"lon": glon, "lat": glat}).to_csv(src, index=False)
    dst = tmp_path / "out.csv"
    assert cli("locate", "-i", src, "-o", dst, "--crs", "gcj02").exit_code == 0
    got = list(pd.read_csv(dst, dtype=str, keep_default_na=False)["grid_code"])
    assert got == [p[0] for p in grid_points]
    # A projected GeoPackage (EPSG:4548) is converted through its own CRS.
    gdf = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4490).to_crs(4548)
    projected = tmp_path / "projected.gpkg"
    gdf.to_file(projected)
    dst2 = tmp_path / "out2.geojson"
    assert cli("locate", "-i", projected, "-o", dst2).exit_code == 0
    located = json.loads(dst2.read_text())
    assert [f["properties"]["grid_code"] for f in located["features"]] == got
    for code, x, y in grid_points[:3]:
        assert oracle(shared_demo_db, x, y) == code


def test_unreadable_files_are_refused(cli_for, shared_demo_db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(shared_demo_db)
    no_cols = tmp_path / "nocols.csv"
    no_cols.write_text("a,b\n1,2\n")
    result = cli("locate", "-i", no_cols, "-o", tmp_path / "o.csv")
    assert result.exit_code == 1 and "no longitude column" in result.output
    missing = cli("locate", "-i", tmp_path / "missing.csv", "-o", tmp_path / "o.csv")
    assert missing.exit_code == 1 and "no such file" in missing.output
    bad_out = cli("locate", "-i", no_cols, "-o", tmp_path / "o.xlsx")
    assert bad_out.exit_code != 0 and "--output" in bad_out.output
    (tmp_path / "p.txt.gz").write_text("x")
    odd = cli("locate", "-i", tmp_path / "p.txt.gz", "-o", tmp_path / "o.csv")
    assert odd.exit_code == 1 and "unsupported" in odd.output
