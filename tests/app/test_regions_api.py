"""The regions API on the demo district (shared, read-only database)."""

from __future__ import annotations

import pytest
import shapely
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


def _problem(response, status: int, field: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:gridmap:problem:")
    assert body["detail"]
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field]
        assert field in body["detail"]
    return body


def test_streets_of_the_demo_district(shared_client: TestClient) -> None:
    body = shared_client.get("/api/v1/regions", params={"level": "street"}).json()
    codes = [r["code"] for r in body["items"]]
    assert len(codes) == 10
    assert codes == sorted(codes)
    assert all(r["level"] == "street" and r["parent_code"] == "120106" for r in body["items"])
    assert "丁字沽街道" in {r["name"] for r in body["items"]}
    assert body["next_cursor"] is None
    assert body["boundary_version"]["label"] == "demo"
    population = sum(r["population"] for r in body["items"])
    district = shared_client.get("/api/v1/regions/120106").json()
    assert population == district["population"]


def test_cursor_pages_through_every_grid_once(shared_client: TestClient) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"level": "grid", "limit": 300}
        if cursor:
            params["cursor"] = cursor
        body = shared_client.get("/api/v1/regions", params=params).json()
        seen += [r["code"] for r in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 992
    assert seen == sorted(seen)


def test_parent_filter_and_children_agree(shared_client: TestClient) -> None:
    detail = shared_client.get("/api/v1/regions/120106001001").json()
    by_filter = shared_client.get("/api/v1/regions", params={"parent": "120106001001"}).json()
    children = shared_client.get("/api/v1/regions/120106001001/children").json()
    assert detail["level"] == "community"
    assert detail["children_count"] == len(by_filter["items"]) == len(children["items"]) > 0
    assert {r["code"] for r in children["items"]} == {r["code"] for r in by_filter["items"]}
    assert all(r["code"].startswith("120106001001") for r in children["items"])


def test_bbox_returns_the_regions_touching_it(shared_client: TestClient) -> None:
    grid = shared_client.get("/api/v1/regions/120106003002001").json()
    lon, lat = grid["label_point"]
    box = f"{lon - 1e-4},{lat - 1e-4},{lon + 1e-4},{lat + 1e-4}"
    found = shared_client.get("/api/v1/regions", params={"bbox": box, "level": "grid"}).json()
    codes = {r["code"] for r in found["items"]}
    assert "120106003002001" in codes
    assert len(codes) < 10
    query = shapely.box(lon - 1e-4, lat - 1e-4, lon + 1e-4, lat + 1e-4)
    for region in found["items"]:
        assert shapely.box(*region["bbox"]).intersects(query)
    everything = shared_client.get("/api/v1/regions", params={"bbox": box}).json()["items"]
    assert {r["level"] for r in everything} == {"district", "street", "community", "grid"}


def test_region_detail(shared_client: TestClient) -> None:
    body = shared_client.get("/api/v1/regions/120106001").json()
    assert body["level"] == "street"
    assert body["properties"]["name_en"].endswith("Subdistrict")
    assert body["children_count"] > 0
    assert body["boundary_version"]["id"] == 1
    minx, miny, maxx, maxy = body["bbox"]
    lon, lat = body["label_point"]
    assert minx < lon < maxx and miny < lat < maxy


def test_ancestors_of_a_grid_run_from_the_district_down(shared_client: TestClient) -> None:
    chain = shared_client.get("/api/v1/regions/120106004003002/ancestors").json()["items"]
    assert [r["code"] for r in chain] == ["120106", "120106004", "120106004003"]
    assert [r["level"] for r in chain] == ["district", "street", "community"]
    assert shared_client.get("/api/v1/regions/120106/ancestors").json()["items"] == []


def test_children_of_district_and_grid(shared_client: TestClient) -> None:
    streets = shared_client.get("/api/v1/regions/120106/children").json()["items"]
    assert len(streets) == 10
    assert shared_client.get("/api/v1/regions/120106001001001/children").json()["items"] == []


def test_geometry_is_rfc7946_geojson_and_simplifies(shared_client: TestClient) -> None:
    exact = shared_client.get("/api/v1/regions/120106005/geometry")
    assert exact.status_code == 200
    assert exact.headers["content-type"].startswith("application/geo+json")
    feature = exact.json()
    assert feature["type"] == "Feature"
    assert "crs" not in feature["geometry"]
    geom = shapely.geometry.shape(feature["geometry"])
    assert geom.is_valid
    minx, miny, maxx, maxy = feature["properties"]["bbox"]
    assert geom.bounds == pytest.approx((minx, miny, maxx, maxy), abs=1e-6)
    assert 117 < geom.centroid.x < 118 and 39 < geom.centroid.y < 40  # lon, lat order
    simple = shared_client.get("/api/v1/regions/120106005/geometry", params={"simplify": 50}).json()
    simple_geom = shapely.geometry.shape(simple["geometry"])
    assert shapely.get_num_coordinates(simple_geom) < shapely.get_num_coordinates(geom)
    assert simple_geom.is_valid
    # Simplified within 50 m: the shapes still overlap almost entirely.
    assert simple_geom.intersection(geom).area / geom.area > 0.97


def test_boundary_versions(shared_client: TestClient) -> None:
    versions = shared_client.get("/api/v1/boundary-versions").json()
    assert len(versions) == 1
    assert versions[0]["active"] is True
    assert versions[0]["counts"] == {"district": 1, "street": 10, "community": 123, "grid": 992}
    assert versions[0]["source_file"].startswith("hongqiao_demo.gpkg")


def test_health(shared_client: TestClient) -> None:
    body = shared_client.get("/health").json()
    assert body["status"] == "ok"
    assert body["postgis"].startswith("3.")
    assert body["active_boundary_version"] == 1


def test_health_answers_503_when_the_database_is_gone(client_for, tmp_path) -> None:  # type: ignore[no-untyped-def]
    missing = f"postgresql+psycopg://nobody@/none?host={tmp_path}&port=1"
    _problem(client_for(missing).get("/health"), 503)


# ---- bad input: 404 for unknown codes, 422 naming the field -----------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/regions/999999",
        "/api/v1/regions/999999/children",
        "/api/v1/regions/999999/ancestors",
        "/api/v1/regions/999999/geometry",
        "/regions/999999/map",
    ],
)
def test_unknown_code_is_404(shared_client: TestClient, path: str) -> None:
    body = _problem(shared_client.get(path), 404)
    assert "999999" in body["detail"]


def test_unknown_parent_is_404(shared_client: TestClient) -> None:
    _problem(shared_client.get("/api/v1/regions", params={"parent": "120106999"}), 404)


@pytest.mark.parametrize(
    "bbox",
    [
        "1,2,3",
        "a,b,c,d",
        "117.2,39.1,117.1,39.2",  # min above max
        "117.1,39.2,117.2,39.1",
        "200,0,201,1",
        "nan,0,1,1",
        "",
    ],
)
def test_bad_bbox_is_422_naming_bbox(shared_client: TestClient, bbox: str) -> None:
    _problem(shared_client.get("/api/v1/regions", params={"bbox": bbox}), 422, "bbox")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"level": "city"}, "level"),
        ({"level": ""}, "level"),
        ({"limit": 0}, "limit"),
        ({"limit": 100000}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "!!not-a-cursor!!"}, "cursor"),
        ({"as_of": "yesterday"}, "as_of"),
        ({"as_of": "2026-13-45"}, "as_of"),
        ({"as_of": "1999-01-01"}, "as_of"),  # before any boundary version was active
    ],
)
def test_bad_list_parameters_are_422_naming_the_field(
    shared_client: TestClient, params: dict, field: str
) -> None:
    _problem(shared_client.get("/api/v1/regions", params=params), 422, field)


@pytest.mark.parametrize("simplify", ["-1", "1e9", "abc"])
def test_bad_simplify_is_422(shared_client: TestClient, simplify: str) -> None:
    response = shared_client.get("/api/v1/regions/120106/geometry", params={"simplify": simplify})
    _problem(response, 422, "simplify")


def test_bad_as_of_on_a_region_is_422(shared_client: TestClient) -> None:
    _problem(shared_client.get("/api/v1/regions/120106", params={"as_of": "x"}), 422, "as_of")


def test_as_of_now_and_a_bare_date_today_answer_the_active_version(
    shared_client: TestClient,
) -> None:
    import datetime as dt

    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    for as_of in (today.isoformat(), dt.datetime.now(dt.UTC).isoformat()):
        body = shared_client.get("/api/v1/regions/120106", params={"as_of": as_of}).json()
        assert body["boundary_version"]["id"] == 1


def test_unknown_route_is_a_problem(shared_client: TestClient) -> None:
    _problem(shared_client.get("/api/v1/nowhere"), 404)


def test_no_active_version_is_a_clear_404(client_for, empty_db: str) -> None:  # type: ignore[no-untyped-def]
    body = _problem(client_for(empty_db).get("/api/v1/regions"), 404)
    assert "gridmap boundaries import" in body["detail"]


def test_map_page_and_docs_reference_only_local_assets(shared_client: TestClient) -> None:
    import re

    for path in ("/regions/120106/map", "/regions/120106001001001/map?lang=en", "/docs", "/"):
        page = shared_client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", page.text)
        assert external == [], (path, external)
    page = shared_client.get("/regions/120106/map").text
    assert "/static/vendor/leaflet/leaflet.js" in page
    assert "红桥区" in page
    assert shared_client.get("/static/vendor/leaflet/leaflet.js").status_code == 200
