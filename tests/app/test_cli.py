"""The gridmap command line against a real PostGIS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from sqlalchemy import create_engine, text

from gis.crs import gcj02_to_wgs84
from gis.io import write_boundaries
from tests.conftest import DEMO_FILE, FIXTURES, ROOT
from tests.fixtures.tiny import frame, tiny_rows

TABLES = ("boundary_version", "boundary_activation", "region", "region_subdivided")


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return counts


def test_validate_the_demo_district(cli_for, empty_db: str) -> None:  # type: ignore[no-untyped-def]
    result = cli_for(empty_db)("boundaries", "validate", DEMO_FILE)
    assert result.exit_code == 0, result.output
    assert "1 / 10 / 123 / 992" in result.output
    assert "0 error(s)" in result.output
    as_json = cli_for(empty_db)("boundaries", "validate", DEMO_FILE, "--json")
    report = json.loads(as_json.stdout)
    assert report["ok"] is True
    assert report["counts"] == {"district": 1, "street": 10, "community": 123, "grid": 992}


def test_broken_file_is_refused_naming_all_three_defects(cli_for, demo_db: str) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    before = _counts(demo_db)
    validate = cli("boundaries", "validate", FIXTURES / "broken_hierarchy.geojson")
    assert validate.exit_code == 1
    imported = cli("boundaries", "import", FIXTURES / "broken_hierarchy.geojson", "--activate")
    assert imported.exit_code == 1
    for output in (validate.output, imported.output):
        assert "[invalid-geometry]" in output and "120106001001001" in output
        assert "Self-intersection" in output
        assert "[overlap]" in output and "120106002001002" in output
        assert "[missing-parent]" in output and "120106002009" in output
    assert "nothing was written" in imported.output
    assert _counts(demo_db) == before


def test_import_activate_list(cli_for, empty_db: str) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(empty_db)
    result = cli("boundaries", "import", FIXTURES / "tiny_ok.geojson", "--label", "tiny")
    assert result.exit_code == 0, result.output
    assert "1 / 2 / 2 / 8" in result.output and "inactive" in result.output
    listed = json.loads(cli("boundaries", "list", "--json").stdout)
    assert [(v["label"], v["active"]) for v in listed] == [("tiny", False)]
    assert cli("boundaries", "activate", "tiny").exit_code == 0
    listed = json.loads(cli("boundaries", "list", "--json").stdout)
    assert listed[0]["active"] is True and listed[0]["activated_at"]
    again = cli("boundaries", "import", FIXTURES / "tiny_ok.geojson", "--label", "tiny")
    assert again.exit_code == 2 and "already exists" in again.output
    missing = cli("boundaries", "activate", "nope")
    assert missing.exit_code == 2 and "no boundary version" in missing.output


def test_one_file_per_level(cli_for, empty_db: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    whole = frame(tiny_rows())
    files = []
    for level in ("district", "street", "community", "grid"):
        part = whole[whole["level"] == level].drop(columns=["level"])
        files.append(write_boundaries(part, tmp_path / f"{level}.gpkg"))
    cli = cli_for(empty_db)
    args = ["boundaries", "import", *files]
    for level in ("district", "street", "community", "grid"):
        args += ["--level", level]
    result = cli(*args, "--activate")
    assert result.exit_code == 0, result.output
    assert "1 / 2 / 2 / 8" in result.output
    wrong = cli("boundaries", "import", *files, "--level", "grid", "--level", "street")
    assert wrong.exit_code == 2 and "--level given 2 times for 4 files" in wrong.output


def test_gcj02_file_is_converted_to_cgcs2000(cli_for, empty_db: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A file digitised on an AMap basemap: its topology is exact in GCJ-02 coordinates.
    digitised = frame(tiny_rows())
    path = write_boundaries(digitised, tmp_path / "amap.geojson")
    result = cli_for(empty_db)("boundaries", "import", path, "--crs", "gcj02", "--label", "g")
    assert result.exit_code == 0, result.output
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(text("SELECT code, ST_AsBinary(geom) FROM region")).tuples().all()
        )
    engine.dispose()
    for code, geom in zip(digitised["code"], digitised.geometry, strict=True):
        back = shapely.from_wkb(stored[code])
        corners = shapely.get_coordinates(geom)
        lon, lat = gcj02_to_wgs84(corners[:, 0], corners[:, 1])
        # Each corner moved by the GCJ-02 offset (hundreds of metres) ...
        assert np.hypot(lon - corners[:, 0], lat - corners[:, 1]).min() > 0.002
        # ... and lies on the stored boundary within 1 cm (1e-7°).
        assert shapely.distance(shapely.points(lon, lat), back.boundary).max() < 1e-7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["boundaries", "validate", "/nonexistent.gpkg"], "no such file"),
        (["boundaries", "validate", "README.md"], "not a GeoPackage"),
        (["boundaries", "validate", FIXTURES / "tiny_ok.geojson", "--crs", "mars"], "unknown CRS"),
        (
            ["boundaries", "validate", FIXTURES / "tiny_ok.geojson", "--field", "code"],
            "NAME=COLUMN",
        ),
        (["boundaries", "validate", FIXTURES / "tiny_ok.geojson", "--field", "code=NOPE"], "NOPE"),
        (["boundaries", "validate", FIXTURES / "tiny_ok.geojson", "--level", "city"], "city"),
    ],
)
def test_bad_files_and_options_fail_clearly(cli_for, empty_db: str, args, message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli_for(empty_db)(*[str(a) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_corrupt_geopackage_is_refused(cli_for, empty_db: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "corrupt.gpkg"
    bad.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    before = _counts(empty_db)
    result = cli_for(empty_db)("boundaries", "import", bad)
    assert result.exit_code == 2
    assert "corrupt.gpkg" in result.output
    assert _counts(empty_db) == before


def test_demo_city_generates_a_valid_bigger_city(cli_for, empty_db: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(empty_db)
    out = tmp_path / "city.gpkg"
    made = cli("demo", "city", "--grids", "2000", "-o", out)
    assert made.exit_code == 0, made.output
    checked = cli("boundaries", "validate", out, "--json")
    report = json.loads(checked.stdout)
    assert report["ok"] is True
    assert report["counts"]["grid"] == 2000
    assert report["counts"]["district"] == 2


def test_setup_loads_the_demo_into_an_empty_database_once(cli_for, empty_db: str) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(empty_db)
    week = {"GRIDMAP_DEMO_DAYS": "2"}
    first = cli("setup", env=week)
    assert first.exit_code == 0, first.output
    assert "loaded the demo district" in first.output
    assert "1 / 10 / 123 / 992" in first.output
    assert "loaded 2 days of demo cases" in first.output
    assert "created 9 demo users" in first.output
    second = cli("setup", env=week)
    assert second.exit_code == 0
    assert "loaded the demo" not in second.output
    assert "demo cases" not in second.output and "demo users" not in second.output
    assert _counts(empty_db)["boundary_version"] == 1


def test_external_database_must_be_migrated(cli_for, pg) -> None:  # type: ignore[no-untyped-def]
    pg.create_database("unmigrated", exist_ok=True)
    try:
        result = cli_for(pg.url("unmigrated"))("boundaries", "list")
        assert result.exit_code == 2
        assert "gridmap db migrate" in result.output
        assert cli_for(pg.url("unmigrated"))("db", "migrate").exit_code == 0
        assert cli_for(pg.url("unmigrated"))("boundaries", "list").exit_code == 0
    finally:
        pg.drop_database("unmigrated")


def test_console_script_help_lists_the_commands() -> None:
    gridmap = Path(sys.executable).with_name("gridmap")
    out = subprocess.run([gridmap, "--help"], capture_output=True, text=True, cwd=ROOT, check=True)
    for command in ("db", "boundaries", "demo", "setup", "serve"):
        assert command in out.stdout
    sub = subprocess.run(
        [gridmap, "boundaries", "import", "--help"], capture_output=True, text=True, check=True
    )
    assert "--crs" in sub.stdout and "--field" in sub.stdout and "--level" in sub.stdout
