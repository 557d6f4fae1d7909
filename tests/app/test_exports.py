"""Exports (GeoPackage, CSV, GeoJSON) through the API and `gridmap export`, on a real PostGIS:
files read back with pyogrio/geopandas and the csv module, background jobs over the row limit,
other users kept out, bad input named, and empty periods explained."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import geopandas as gpd
import pyogrio
import pytest
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import demo_activity
from app.services import exports as service
from tests.conftest import bearer

DISTRICT = "120106"
ZONE = dt.timezone(dt.timedelta(hours=8))
END = dt.datetime(2026, 3, 29, 23, 0, tzinfo=ZONE)  # the cases' last day: Sunday 29 March
PERIOD = {"from": "2026-03-02", "to": "2026-03-29"}  # four Monday-to-Sunday weeks
EMPTY = {"from": "2020-03-02", "to": "2020-03-29"}


@pytest.fixture(scope="module")
def cases_db(pg, demo_template: str) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A demo database with four weeks of demo cases, shared by this module's tests (they only
    add export jobs)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    pg.create_database(name, template=demo_template)
    engine = make_engine(pg.url(name))
    demo_activity.load(engine, days=28, per_day=60, seed=11, end=END)
    engine.dispose()
    yield pg.url(name)
    pg.drop_database(name)


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def cases_in(url: str, start: str, end: str) -> int:
    return scalar(
        url,
        "SELECT count(*) FROM incident WHERE region_code LIKE '120106%' AND reported_at >= "
        "CAST(CAST(:a AS date) AS timestamp) AT TIME ZONE 'Asia/Shanghai' AND reported_at < "
        "CAST(CAST(:b AS date) + 1 AS timestamp) AT TIME ZONE 'Asia/Shanghai'",
        a=start,
        b=end,
    )


def regions_of(url: str, level: str) -> int:
    return scalar(
        url,
        "SELECT count(*) FROM region r JOIN boundary_version v ON v.id = r.version_id "
        "AND v.is_active WHERE r.level = :lv",
        lv=level,
    )


def save(response: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(response.content)
    return path


def post(client: Any, token: str, **body: Any) -> Any:
    return client.post("/api/v1/exports", json=body, headers=bearer(token))


def wait_for(client: Any, token: str, href: str, deadline_s: float = 60) -> dict[str, Any]:
    """Poll a job until it is done or failed (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + deadline_s
    while True:
        status = client.get(href, headers=bearer(token))
        assert status.status_code == 200, status.text
        body = status.json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_each_format_reads_back(cases_db: str, client_for, demo_users, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = client_for(cases_db, token=None)
    token = demo_users["planner"]["token"]
    total = cases_in(cases_db, PERIOD["from"], PERIOD["to"])
    assert total > 500

    # Hot spots as a GeoPackage: one polygon per grid, the description kept beside them.
    got = post(client, token, kind="hotspots", format="gpkg", region=DISTRICT, **PERIOD)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/geopackage+sqlite3"
    assert got.headers["content-disposition"] == (
        'attachment; filename="hotspots_120106_grid_20260302-20260329.gpkg"'
    )
    assert "x-gridmap-reason" not in got.headers
    path = save(got, tmp_path, "hot.gpkg")
    assert set(pyogrio.list_layers(path)[:, 0]) == {"hotspots", "meta"}
    hot = gpd.read_file(path, layer="hotspots")
    assert len(hot) == regions_of(cases_db, "grid") == int(got.headers["x-gridmap-rows"])
    assert hot.crs.to_epsg() == 4490 and set(hot.geom_type) == {"MultiPolygon"}
    assert {"code", "name", "count", "per_1000", "per_km2", "gi_z", "gi_p", "gi_bin"} <= set(
        hot.columns
    )
    assert hot["count"].sum() == total
    meta = pyogrio.read_dataframe(path, layer="meta", read_geometry=False)
    described = {k: json.loads(v) for k, v in zip(meta["key"], meta["value"], strict=True)}
    assert described["total"] == total and described["reason"] is None
    assert described["from"] == PERIOD["from"] and described["method"] == "gi"
    assert pyogrio.read_info(path, layer="hotspots")["layer_metadata"]["total"] == str(total)

    # The raw cases as CSV for Excel: a BOM, Chinese class names, lon/lat, no geometry.
    got = post(client, token, kind="cases", format="csv", **PERIOD)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    assert got.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert len(rows) == total
    assert {"id", "class_code", "class_name", "grid_code", "reported_at", "lon", "lat"} <= set(
        rows[0]
    )
    assert "geometry" not in rows[0]
    assert any(not r["class_name"].isascii() for r in rows)
    assert all(115 < float(r["lon"]) < 119 and 38 < float(r["lat"]) < 41 for r in rows)
    first = dt.datetime.strptime(rows[0]["reported_at"], "%Y-%m-%d %H:%M:%S")  # Beijing time
    assert dt.date(2026, 3, 2) <= first.date() <= dt.date(2026, 3, 29)

    # Period comparison as GeoJSON: RFC 7946 lon/lat, one feature per street, the description
    # on the collection.
    got = post(client, token, kind="compare", format="geojson", **PERIOD)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/geo+json"
    path = save(got, tmp_path, "compare.geojson")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert doc["level"] == "street" and doc["previous_from"] == "2026-02-02"
    assert len(doc["features"]) == regions_of(cases_db, "street")
    lon, lat = doc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 115 < lon < 119 and 38 < lat < 41
    read = gpd.read_file(path)
    assert {"code", "count", "previous", "change", "significant"} <= set(read.columns)
    assert read["count"].sum() == total

    # A series as CSV: every street and week; density and cases as points in a GeoPackage.
    got = post(client, token, kind="series", format="csv", period="week", **PERIOD)
    rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert len(rows) == regions_of(cases_db, "street") * 4
    assert {r["start"] for r in rows} == {"2026-03-02", "2026-03-09", "2026-03-16", "2026-03-23"}
    assert sum(int(r["count"]) for r in rows) == total
    got = post(client, token, kind="density", format="gpkg", cell_m=200, **PERIOD)
    density = gpd.read_file(save(got, tmp_path, "density.gpkg"), layer="density")
    assert len(density) > 0 and set(density.geom_type) == {"Point"}
    assert {"lon", "lat", "density"} <= set(density.columns)
    got = post(client, token, kind="cases", format="gpkg", **PERIOD)
    points = gpd.read_file(save(got, tmp_path, "cases.gpkg"), layer="cases")
    assert len(points) == total and points.crs.to_epsg() == 4490


def test_an_export_over_the_row_limit_is_a_job(  # type: ignore[no-untyped-def]
    cases_db: str, client_for, demo_users, tmp_path: Path
) -> None:
    client = client_for(cases_db, token=None, settings={"export_row_limit": 100})
    planner = demo_users["planner"]["token"]
    total = cases_in(cases_db, PERIOD["from"], PERIOD["to"])
    got = post(client, planner, kind="cases", format="geojson", **PERIOD)
    assert got.status_code == 202, got.text
    accepted = got.json()
    assert accepted["status"] == "queued" and accepted["estimate"] == total
    assert got.headers["location"] == accepted["href"] == f"/api/v1/exports/{accepted['id']}"
    job = wait_for(client, planner, accepted["href"])
    assert job["status"] == "done", job
    assert job["rows"] == total and job["bytes"] > 0 and job["reason"] is None
    assert job["params"]["from"] == PERIOD["from"] and job["params"]["region"] == DISTRICT
    assert job["download"] == accepted["href"] + "/file"
    got = client.get(job["download"], headers=bearer(planner))
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/geo+json"
    assert "cases_120106_grid_20260302-20260329.geojson" in got.headers["content-disposition"]
    assert len(got.json()["features"]) == total == int(got.headers["x-gridmap-rows"])

    # Another user (who may read analytics too) cannot see the job or its file.
    other = demo_users["district_commander"]["token"]
    for url in (accepted["href"], job["download"]):
        refused = client.get(url, headers=bearer(other))
        assert refused.status_code == 404, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    assert client.get(f"/api/v1/exports/{uuid.uuid4()}", headers=bearer(planner)).status_code == 404

    # A job still running answers 409 with Retry-After; one whose process died is failed at
    # the next start, and says so.
    stuck = uuid.uuid4()
    engine = make_engine(cases_db)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO export_job (id, owner_id, kind, format, params, status, started_at) "
                "SELECT :id, id, 'cases', 'csv', CAST(:p AS jsonb), 'running', now() FROM staff "
                "WHERE name = :n"
            ),
            {"id": stuck, "p": json.dumps(job["params"]), "n": demo_users["planner"]["name"]},
        )
    pending = client.get(f"/api/v1/exports/{stuck}/file", headers=bearer(planner))
    assert pending.status_code == 409 and pending.headers["retry-after"]
    assert pending.json()["type"] == "urn:gridmap:problem:export-pending"
    assert service.recover(engine) == 1
    engine.dispose()
    failed = client.get(f"/api/v1/exports/{stuck}", headers=bearer(planner)).json()
    assert failed["status"] == "failed" and "ended" in failed["error"]
    got = client.get(f"/api/v1/exports/{stuck}/file", headers=bearer(planner))
    assert got.status_code == 409 and got.json()["type"] == "urn:gridmap:problem:export-failed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "heatmap"}, "kind"),
        ({"kind": "hotspots", "format": "xlsx"}, "format"),
        ({"kind": "hotspots", "class": "Z99"}, "class"),
        ({"kind": "series", "level": "block"}, "level"),
        ({"kind": "cases", "from": "2026-03-10", "to": "2026-03-01"}, "from"),
        ({"kind": "cases", "from": "2026-02-30"}, "from"),
        ({"kind": "hotspots", "method": "kriging"}, "method"),
        ({"kind": "emerging", "weeks": 1}, "weeks"),
        ({"kind": "cases", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_422_naming_the_field(shared_client, body: dict[str, Any], field: str) -> None:  # type: ignore[no-untyped-def]
    got = shared_client.post("/api/v1/exports", json=body)
    assert got.status_code == 422, got.text
    assert got.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in got.json()["errors"]] == [field]


def test_a_region_outside_the_callers_area_is_404(shared_client, demo_users) -> None:  # type: ignore[no-untyped-def]
    for region in ("120106999", "3101"):
        got = post(shared_client, demo_users["planner"]["token"], kind="cases", region=region)
        assert got.status_code == 404, got.text


def test_an_empty_period_is_an_empty_file_with_its_reason(  # type: ignore[no-untyped-def]
    demo_db: str, client_for, demo_users, tmp_path: Path
) -> None:
    client = client_for(demo_db, token=None)
    token = demo_users["planner"]["token"]
    got = post(client, token, kind="hotspots", format="gpkg", **EMPTY)
    assert got.status_code == 200, got.text
    reason = unquote(got.headers["x-gridmap-reason"])
    assert reason == "no cases in 120106 from 2020-03-02 to 2020-03-29"
    assert got.headers["x-gridmap-rows"] == "0"
    empty = gpd.read_file(save(got, tmp_path, "empty.gpkg"), layer="hotspots")
    assert len(empty) == 0 and {"code", "count"} <= set(empty.columns)
    got = post(client, token, kind="cases", format="csv", **EMPTY)
    assert unquote(got.headers["x-gridmap-reason"]) == reason
    header, *rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    assert rows == [] and {"id", "class_code", "lon", "lat"} <= set(header)
    got = post(client, token, kind="series", format="geojson", **EMPTY)
    doc = got.json()
    assert doc["features"] == [] and doc["reason"] == reason and doc["total"] == 0

    # As a job, the reason is in its status.
    client = client_for(demo_db, token=None, settings={"export_row_limit": 0})
    got = post(client, token, kind="compare", format="csv", **EMPTY)
    assert got.status_code == 202, got.text
    job = wait_for(client, token, got.json()["href"])
    assert job["status"] == "done" and job["rows"] == 0
    assert job["reason"].startswith("no cases in 120106 from 2020-03-02 to 2020-03-29")
    assert client.get(job["download"], headers=bearer(token)).status_code == 200


def test_the_cli_writes_a_geopackage(cases_db: str, cli_for, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(cases_db)
    target = tmp_path / "hot.gpkg"
    result = cli("export", "hotspots", "-o", target, "--level", "community",
                 "--from", PERIOD["from"], "--to", PERIOD["to"], "--method", "moran",
                 "--permutations", "99")  # fmt: skip
    assert result.exit_code == 0, result.output
    communities = regions_of(cases_db, "community")
    assert f"{communities:,} row(s) written" in result.output
    hot = gpd.read_file(target, layer="hotspots")
    assert len(hot) == communities and "moran_cluster" in hot.columns
    assert hot["count"].sum() == cases_in(cases_db, PERIOD["from"], PERIOD["to"])

    empty = cli("export", "cases", "-o", tmp_path / "none.csv", "--from", EMPTY["from"],
                "--to", EMPTY["to"])  # fmt: skip
    assert empty.exit_code == 0, empty.output
    assert "0 row(s) written" in empty.output and "empty: no cases" in empty.output

    for args, field in (
        (["hotspots", "-o", tmp_path / "x.gpkg", "--class", "Z99"], "class"),
        (["hotspots", "-o", tmp_path / "x.gpkg", "--level", "block"], "level"),
        (["hotspots", "-o", tmp_path / "x.xlsx"], "format"),
        (["cases", "-o", tmp_path / "x.csv", "--from", "2026-03-10", "--to", "2026-03-01"],
         "from"),
    ):  # fmt: skip
        bad = cli("export", *args)
        assert bad.exit_code == 2, bad.output
        assert f"{field}:" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x.gpkg").exists()
