"""GET/POST /api/v1/locate on a real PostGIS: chains, coordinate systems, batches, versions,
freshness and every bad input the issue names."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import boundaries as boundary_service
from app.services import regions as region_service
from app.services.locate import LocateService
from app.settings import Settings
from gis.crs import wgs84_to_bd09, wgs84_to_gcj02
from gis.io import read_boundaries
from tests.conftest import FIXTURES

GEOD = Geod(ellps="WGS84")
TINY = FIXTURES / "tiny_ok.geojson"


def grid_points(client: TestClient, n: int = 5) -> list[tuple[str, float, float]]:
    """(code, lon, lat) of a point inside each of the first n grids (their label points)."""
    grids = client.get("/api/v1/regions", params={"level": "grid", "limit": n}).json()
    items = grids["items"] if isinstance(grids, dict) else grids
    return [(g["code"], *g["label_point"]) for g in items[:n]]


def db_chain(url: str, lon: float, lat: float) -> dict[str, str]:
    """The oracle: PostGIS ST_Covers on the stored regions."""
    engine = make_engine(url)
    with engine.connect() as conn:
        version = boundary_service.active_version(conn)
        found = region_service.covering(conn, version.id, lon, lat)
    engine.dispose()
    return {r["level"]: r["code"] for r in found}


def test_a_point_gets_its_whole_chain_and_version(shared_client, shared_demo_db) -> None:
    for code, lon, lat in grid_points(shared_client, 8):
        r = shared_client.get("/api/v1/locate", params={"lon": lon, "lat": lat})
        assert r.status_code == 200, r.text
        body = r.json()
        expected = db_chain(shared_demo_db, lon, lat)
        assert body["covered"] is True
        assert body["grid"]["code"] == code == expected["grid"]
        for level in ("community", "street", "district"):
            assert body[level]["code"] == expected[level]
            assert body[level]["name"]
        assert body["grid"]["code"].startswith(body["community"]["code"])
        assert body["boundary_version"]["label"] == "demo"
        assert body["cgcs2000"] == [lon, lat]
        assert body["nearest"] is None


def test_gcj02_point_finds_the_same_grid_and_the_same_numbers_as_wgs84_land_557_m_away(
    shared_client,
) -> None:
    code, lon, lat = grid_points(shared_client, 40)[37]
    glon, glat = (float(v) for v in wgs84_to_gcj02(lon, lat))
    as_gcj = shared_client.post(
        "/api/v1/locate", params={"crs": "gcj02"}, json=[{"lon": glon, "lat": glat, "id": "p"}]
    ).json()["results"][0]
    assert as_gcj["grid_code"] == code
    as_wgs = shared_client.post("/api/v1/locate", params={"crs": "wgs84"},
                                json=[[glon, glat]]).json()["results"][0]  # fmt: skip
    assert as_wgs["grid_code"] and as_wgs["grid_code"] != code
    distance = GEOD.inv(lon, lat, glon, glat)[2]
    assert 520 < distance < 600, distance
    # The single-point endpoint agrees.
    one = shared_client.get("/api/v1/locate", params={"lon": glon, "lat": glat, "crs": "gcj02"})
    assert one.json()["grid"]["code"] == code
    assert one.json()["cgcs2000"] == pytest.approx([lon, lat], abs=1e-7)


def test_bd09_and_cgcs2000_points(shared_client) -> None:
    code, lon, lat = grid_points(shared_client, 3)[2]
    blon, blat = (float(v) for v in wgs84_to_bd09(lon, lat))
    r = shared_client.get("/api/v1/locate", params={"lon": blon, "lat": blat, "crs": "bd09"})
    assert r.json()["grid"]["code"] == code
    r = shared_client.get("/api/v1/locate", params={"lon": lon, "lat": lat, "crs": "CGCS2000"})
    assert r.json()["grid"]["code"] == code and r.json()["crs"] == "cgcs2000"


def test_outside_every_grid_names_the_nearest_grid(shared_client, shared_demo_db) -> None:
    r = shared_client.get("/api/v1/locate", params={"lon": 117.0, "lat": 39.0})
    body = r.json()
    assert r.status_code == 200
    assert body["covered"] is False and body["grid"] is None and body["district"] is None
    engine = make_engine(shared_demo_db)
    with engine.connect() as conn:
        version = boundary_service.active_version(conn)
        oracle = region_service.nearest_grid(conn, version.id, 117.0, 39.0)
    engine.dispose()
    assert body["nearest"]["code"] == oracle["code"]
    # Projected (EPSG:4548) against geodesic distance: well within 0.5 %.
    assert body["nearest"]["distance_m"] == pytest.approx(oracle["distance_m"], rel=5e-3)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"lon": "nan", "lat": 39.1}, "lon", "finite"),
        ({"lon": 117.1, "lat": "inf"}, "lat", "finite"),
        ({"lon": 117.1, "lat": "-Infinity"}, "lat", "finite"),
        ({"lon": 200, "lat": 39.1}, "lon", "out of range"),
        ({"lon": 117.1, "lat": -91}, "lat", "out of range"),
        ({"lon": 39.16, "lat": 117.15}, "lat", "swapped"),
        ({"lon": 40.0, "lat": 80.0}, "lat", "swapped"),
        ({"lon": "east", "lat": 39.1}, "lon", "number"),
        ({"lat": 39.1}, "lon", ""),
        ({"lon": 117.1, "lat": 39.1, "crs": "mercator"}, "crs", "wgs84, cgcs2000, gcj02, bd09"),
        ({"lon": 117.1, "lat": 39.1, "crs": "EPSG:3857"}, "crs", "accepted"),
        ({"lon": 117.1, "lat": 39.1, "as_of": "yesterday"}, "as_of", "ISO 8601"),
        ({"lon": 117.1, "lat": 39.1, "as_of": "1999-01-01"}, "as_of", "no boundary version"),
    ],
)
def test_bad_single_points_are_422_naming_the_field(shared_client, params, field, words) -> None:
    r = shared_client.get("/api/v1/locate", params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["errors"][0]["field"] == field
    assert words.lower() in (body["detail"] + body["errors"][0]["message"]).lower()


def _csv_rows(text_: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text_)))


def test_batches_in_json_geojson_and_csv_agree_with_single_points(shared_client) -> None:
    points = grid_points(shared_client, 6)
    pts = [(lon, lat) for _, lon, lat in points] + [(117.0, 39.0)]
    expected = [c for c, _, _ in points] + [None]

    r = shared_client.post("/api/v1/locate", json=[{"lon": x, "lat": y, "id": f"p{i}"}
                                                   for i, (x, y) in enumerate(pts)])  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["count"] == len(pts) and body["covered"] == len(pts) - 1 and body["errors"] == 0
    assert body["boundary_version"]["label"] == "demo"
    assert r.headers["gridmap-boundary-version"] == str(body["boundary_version"]["id"])
    assert [x["grid_code"] for x in body["results"]] == expected
    assert [x["id"] for x in body["results"]] == [f"p{i}" for i in range(len(pts))]
    assert [x["index"] for x in body["results"]] == list(range(len(pts)))
    single = shared_client.get("/api/v1/locate", params={"lon": pts[0][0], "lat": pts[0][1]})
    first = body["results"][0]
    assert first["street_code"] == single.json()["street"]["code"]
    assert first["community_name"] == single.json()["community"]["name"]

    fc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": i,
                "properties": {"note": "x"},
                "geometry": {"type": "Point", "coordinates": [x, y]},
            }
            for i, (x, y) in enumerate(pts)
        ],
    }
    r = shared_client.post("/api/v1/locate", content=json.dumps(fc),
                           headers={"content-type": "application/geo+json"})  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    out = r.json()
    assert out["type"] == "FeatureCollection"
    assert [f["properties"]["grid_code"] for f in out["features"]] == expected
    assert [f["id"] for f in out["features"]] == list(range(len(pts)))
    assert all(f["properties"]["note"] == "x" for f in out["features"])

    lines = "lon,lat,id\n" + "".join(f"{x},{y},c{i}\n" for i, (x, y) in enumerate(pts))
    r = shared_client.post("/api/v1/locate", content=lines, headers={"content-type": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = _csv_rows(r.text)
    assert [row["grid_code"] or None for row in rows] == expected
    assert [row["id"] for row in rows] == [f"c{i}" for i in range(len(pts))]
    assert [row["row"] for row in rows] == [str(i + 2) for i in range(len(pts))]

    headerless = "".join(f"{x},{y}\n" for x, y in pts)
    r = shared_client.post("/api/v1/locate", content=headerless,
                           headers={"content-type": "text/csv"})  # fmt: skip
    assert [row["grid_code"] or None for row in _csv_rows(r.text)] == expected


def test_malformed_csv_rows_are_reported_by_row_and_the_rest_answered(shared_client) -> None:
    (code, lon, lat), (code2, lon2, lat2) = grid_points(shared_client, 2)
    body = (
        f"lon,lat,id\n{lon},{lat},good\nabc,39.1,bad-lon\n117.1\n"
        f"{lon},nan,nan-lat\n39.16,117.15,swapped\n{lon2},{lat2},good2\n"
    )
    r = shared_client.post("/api/v1/locate", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    rows = {row["row"]: row for row in _csv_rows(r.text)}
    assert rows["2"]["grid_code"] == code and not rows["2"]["error"]
    assert rows["7"]["grid_code"] == code2
    assert "not a number" in rows["3"]["error"] and not rows["3"]["grid_code"]
    assert (rows["3"]["lon"], rows["3"]["lat"]) == ("abc", "39.1")  # echoed as sent
    assert rows["6"]["lon"] == "39.16" and rows["4"]["lon"] == ""
    assert "expected lon,lat" in rows["4"]["error"]
    assert "finite" in rows["5"]["error"]
    assert "swapped" in rows["6"]["error"]

    strict = shared_client.post("/api/v1/locate", params={"strict": "true"}, content=body,
                                headers={"content-type": "text/csv"})  # fmt: skip
    assert strict.status_code == 422
    fields = [e["field"] for e in strict.json()["errors"]]
    assert fields == ["row 3", "row 4", "row 5", "row 6"]
    assert "4 of 6" in strict.json()["detail"]


def test_bad_json_items_are_answered_per_item(shared_client) -> None:
    code, lon, lat = grid_points(shared_client, 1)[0]
    items = [[lon, lat], "nonsense", {"lon": "x", "lat": 39}, {"lat": 39}, [lon, 1e999],
             {"lon": lon, "lat": lat, "id": {"nested": 1}}, [lon, lat, "last"]]  # fmt: skip
    r = shared_client.post("/api/v1/locate", content=json.dumps(items).replace("Infinity", "1e999"),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["grid_code"] == code and res[6]["grid_code"] == code and res[6]["id"] == "last"
    assert [x.get("error_field") for x in res] == [
        None, "body[1]", "body[2].lon", "body[3].lon", "body[4].lat", "body[5].id", None
    ]  # fmt: skip
    assert r.json()["errors"] == 5
    strict = shared_client.post("/api/v1/locate?strict=true", json=items[:4])
    assert strict.status_code == 422 and len(strict.json()["errors"]) == 3


@pytest.mark.parametrize(
    ("content", "ctype", "status", "field"),
    [
        (b"{not json", "application/json", 422, "body"),
        (b'{"a": 1}', "application/json", 422, "body"),
        (b'{"type": "Feature"}', "application/geo+json", 422, "body"),
        (b'{"type": "FeatureCollection"}', "application/geo+json", 422, "features"),
        (b"name,value\nx,1\n", "text/csv", 422, "body"),
        (b"\xff\xfe\x00bad", "text/csv", 422, "body"),
        (b"<points/>", "application/xml", 415, None),
    ],
)
def test_malformed_batches_are_refused_clearly(shared_client, content, ctype, status, field):
    r = shared_client.post("/api/v1/locate", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if field:
        assert r.json()["errors"][0]["field"] == field


def test_a_batch_over_the_limit_is_413(shared_client) -> None:
    too_many = [[117.15, 39.16]] * 100_001
    r = shared_client.post("/api/v1/locate", json=too_many)
    assert r.status_code == 413 and r.json()["type"].endswith("too-many-points")
    csv_body = "lon,lat\n" + "117.15,39.16\n" * 100_001
    r = shared_client.post("/api/v1/locate", content=csv_body, headers={"content-type": "text/csv"})
    assert r.status_code == 413
    fc = {"type": "FeatureCollection", "features": [None] * 100_001}
    r = shared_client.post("/api/v1/locate", json=fc)
    assert r.status_code == 413
    bad_crs = shared_client.post("/api/v1/locate?crs=utm", json=[[117.15, 39.16]])
    assert bad_crs.status_code == 422 and bad_crs.json()["errors"][0]["field"] == "crs"


def test_a_full_batch_of_100000_points_is_answered_in_order(shared_client) -> None:
    rng = np.random.default_rng(7)
    lon = rng.uniform(117.10, 117.20, 100_000)
    lat = rng.uniform(39.13, 39.20, 100_000)
    body = "lon,lat,id\n" + "".join(f"{x:.7f},{y:.7f},{i}\n" for i, (x, y) in
                                    enumerate(zip(lon, lat, strict=True)))  # fmt: skip
    r = shared_client.post("/api/v1/locate", content=body, headers={"content-type": "text/csv"})
    assert r.status_code == 200
    rows = _csv_rows(r.text)
    assert len(rows) == 100_000 and [row["id"] for row in rows[:3]] == ["0", "1", "2"]
    covered = sum(1 for row in rows if row["grid_code"])
    assert 0 < covered < 100_000
    for i in (0, 12_345, 99_999):
        params = {"lon": rows[i]["lon"], "lat": rows[i]["lat"]}
        one = shared_client.get("/api/v1/locate", params=params).json()
        assert (one["grid"] or {}).get("code", "") == rows[i]["grid_code"]


def _import_tiny(url: str) -> boundary_service.Version:
    settings = Settings(database_url=url)
    engine = make_engine(url)
    data = read_boundaries([TINY], scheme=settings.code_scheme)
    version, _ = boundary_service.import_boundaries(
        engine, data, settings.validation, label="tiny", source_paths=[TINY]
    )
    engine.dispose()
    return version


def _tiny_point() -> tuple[str, float, float]:
    data = read_boundaries([TINY])
    grid = data.frame[data.frame["level"] == "grid"].sort_values("code").iloc[0]
    p = grid.geometry.representative_point()
    return grid["code"], p.x, p.y


def test_as_of_answers_from_the_version_active_then(demo_db, client_for) -> None:
    client = client_for(demo_db)
    tiny = _import_tiny(demo_db)
    engine = make_engine(demo_db)
    boundary_service.activate(engine, tiny.id)
    with engine.connect() as conn:
        first = conn.execute(text("SELECT min(activated_at) FROM boundary_activation")).scalar()
    engine.dispose()
    client.app.state.locate.refresh()  # don't wait for the listener (tested below)
    code, x, y = _tiny_point()
    before = (first + dt.timedelta(microseconds=1)).isoformat()
    now = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
    then = client.get("/api/v1/locate", params={"lon": x, "lat": y, "as_of": before}).json()
    assert now["boundary_version"]["label"] == "tiny" and now["grid"]["code"] == code
    assert then["boundary_version"]["label"] == "demo"
    assert then["grid"]["code"] != code and then["grid"]["code"].startswith("120106")
    batch = client.post("/api/v1/locate", params={"as_of": before}, json=[[x, y]]).json()
    assert batch["boundary_version"]["label"] == "demo"
    assert batch["results"][0]["grid_code"] == then["grid"]["code"]
    # Outside the old version's grids, the database names the nearest one.
    far = client.get("/api/v1/locate", params={"lon": 117.0, "lat": 39.0, "as_of": before})
    assert far.json()["covered"] is False and far.json()["nearest"]["distance_m"] > 1000


def test_no_active_version_is_404(empty_db, client_for) -> None:
    r = client_for(empty_db).get("/api/v1/locate", params={"lon": 117.15, "lat": 39.16})
    assert r.status_code == 404 and r.json()["type"].endswith("no-boundary-version")


def test_activation_refreshes_every_worker(demo_db) -> None:
    """Two services (as two worker processes would hold) both switch on NOTIFY, well before
    their poll interval."""
    engine = make_engine(demo_db)
    workers = [LocateService(make_engine(demo_db), metric_crs="EPSG:4548", poll_s=3600)
               for _ in range(2)]  # fmt: skip
    try:
        for w in workers:
            w.warm()
            w.start()
        assert all(w.current().version.label == "demo" for w in workers)
        time.sleep(0.5)  # let both LISTENs take effect
        tiny = _import_tiny(demo_db)
        boundary_service.activate(engine, tiny.id)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if all(w.current().version.id == tiny.id for w in workers):
                break
            time.sleep(0.05)
        assert [w.current().version.label for w in workers] == ["tiny", "tiny"]
        code, x, y = _tiny_point()
        assert all(w.current().index.locate([x], [y])[0] == code for w in workers)
    finally:
        for w in workers:
            w.stop()
            w.engine.dispose()
        engine.dispose()


def test_no_answer_ever_comes_from_a_half_built_index(demo_db, client_for) -> None:
    """While versions are switched back and forth, every answer's grid belongs to the version
    the same answer names."""
    client = client_for(demo_db)
    tiny = _import_tiny(demo_db)
    code, x, y = _tiny_point()
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        demo_id = boundary_service.active_version(conn).id
    expected = {tiny.id: code, demo_id: db_chain(demo_db, x, y)["grid"]}
    seen: list[tuple[int, str]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            body = client.get("/api/v1/locate", params={"lon": x, "lat": y}).json()
            seen.append((body["boundary_version"]["id"], body["grid"]["code"]))

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for ref in (tiny.id, demo_id, tiny.id):
            boundary_service.activate(engine, ref)
            client.app.state.locate.refresh()
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    assert {v for v, _ in seen} == {tiny.id, demo_id}
    assert all(expected[v] == grid for v, grid in seen)


def test_every_worker_process_switches_after_activation(
    demo_db, cli_for, tmp_path, admin_token
) -> None:
    """`gridmap serve --workers 2`, then a version activated from another process: both
    worker processes report and answer from the new version, well within their poll time."""
    import os
    import subprocess
    import sys

    import httpx2 as httpx

    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "GRIDMAP_DATABASE_URL": demo_db, "GRIDMAP_VAR_DIR": str(tmp_path),
           "GRIDMAP_LOCATE_POLL_S": "3600"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def workers_on(version: int, rounds: int = 60) -> set[int]:
        pids = set()
        with httpx.Client(base_url=base, timeout=5) as http:
            for _ in range(rounds):  # new connections land on either worker
                body = http.get("/health", headers={"connection": "close"}).json()
                if body["locate_index_version"] == version:
                    pids.add(body["worker_pid"])
        return pids

    try:
        deadline = time.monotonic() + 180  # a loaded CI machine starts workers slowly
        while True:
            try:
                if len(workers_on(1, 20)) == 2:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the two workers did not come up"
            time.sleep(0.3)
        tiny = _import_tiny(demo_db)
        assert cli_for(demo_db)("boundaries", "activate", str(tiny.id)).exit_code == 0
        deadline = time.monotonic() + 20
        while len(workers_on(tiny.id, 20)) < 2:
            assert time.monotonic() < deadline, "not every worker switched"
            time.sleep(0.2)
        code, x, y = _tiny_point()
        with httpx.Client(base_url=base, timeout=5) as http:
            for _ in range(10):
                r = http.get("/api/v1/locate", params={"lon": x, "lat": y},
                             headers={"connection": "close",
                                      "authorization": f"Bearer {admin_token}"}).json()  # fmt: skip
                assert r["boundary_version"]["id"] == tiny.id and r["grid"]["code"] == code
    finally:
        proc.terminate()
        printed, _ = proc.communicate(timeout=20)
    assert f"{base}/api/v1/locate?lon=" in printed  # serve names the locate endpoint
