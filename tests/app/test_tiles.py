"""Vector tiles (GET /tiles/{layer}/{z}/{x}/{y}.pbf) on a real PostGIS: what each layer holds,
the incident filters and scope, aggregation at low zoom, ETag/304, the per-worker cache and its
invalidation through LISTEN/NOTIFY, and bad input."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import mapbox_vector_tile
import pytest
import shapely.geometry
from pyproj import Geod
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import identity
from app.services import tiles as service
from app.services.patrols import ZONE
from app.services.scoping import ScopeFilter
from tests.conftest import bearer, point_inside

GRID = "120106001001001"  # the demo users' first grid (street 120106001)
OTHER_GRID = "120106002001001"  # another street
GEOD = Geod(ellps="WGS84")


def tile_at(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = (lon + 180) / 360 * n
    y = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return int(x), int(y)


def in_tile(lon: float, lat: float, z: int, x: int, y: int) -> tuple[float, float]:
    """The point in the tile's own units (0 … 4096, y down)."""
    n = 2**z
    fx = (lon + 180) / 360 * n
    fy = (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
    return (fx - x) * service.EXTENT, (fy - y) * service.EXTENT


def decode(body: bytes) -> dict[str, Any]:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def features(response: Any, layer: str) -> list[dict[str, Any]]:
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == service.MEDIA_TYPE
    decoded = decode(response.content)
    assert set(decoded) == {layer}  # the layer is named as in the URL
    return decoded[layer]["features"]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Wait for another thread (the listener) to get somewhere; no assertion on how long."""
    deadline = time.monotonic() + 20
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def world(demo_db: str, client_for, demo_users) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
        x2, y2 = point_inside(conn, OTHER_GRID)
    identity.add_user(engine, "cmd-b", role="street_commander", region="120106002")
    users = {role: bearer(u["token"]) for role, u in demo_users.items()}
    users["street_b"] = bearer(identity.create_token(engine, "cmd-b"))
    client = client_for(demo_db, token=None)
    tiles: service.TileService = client.app.state.tiles
    wait_for(lambda: tiles.cache.live, "the tile listener to connect")
    yield {"engine": engine, "client": client, "users": users, "point": (x, y),
           "other": (x2, y2), "tiles": tiles}  # fmt: skip
    engine.dispose()


def get(world: dict[str, Any], path: str, role: str = "district_commander", **kw: Any) -> Any:
    return world["client"].get(path, headers={**world["users"][role], **kw.pop("headers", {})},
                               **kw)  # fmt: skip


def report(world: dict[str, Any], at: tuple[float, float] | None = None, **body: Any) -> int:
    x, y = at or world["point"]
    payload = {"lon": x, "lat": y, "crs": "cgcs2000", "class_code": "E0101",
               "source": "patrol", "description": "tile", **body}  # fmt: skip
    made = world["client"].post("/api/v1/incidents", json=payload, headers=world["users"]["admin"])
    assert made.status_code == 201, made.text
    return made.json()["id"]


def point_tile(world: dict[str, Any], z: int, at: tuple[float, float] | None = None) -> str:
    x, y = tile_at(*(at or world["point"]), z)
    return f"{z}/{x}/{y}"


# -- boundaries -------------------------------------------------------------------------------


def test_a_grid_tile_holds_the_grids_whose_polygons_intersect_it(world) -> None:  # type: ignore[no-untyped-def]
    z = 15
    x, y = tile_at(*world["point"], z)
    found = features(get(world, f"/tiles/grid/{z}/{x}/{y}.pbf"), "grid")
    codes = {f["properties"]["code"] for f in found}
    margin = service.BUFFER / service.EXTENT
    with world["engine"].connect() as conn:

        def grids(margin: float) -> set[str]:
            return set(conn.execute(text(
                "SELECT r.code FROM region r JOIN boundary_version v ON v.id = r.version_id "
                "AND v.is_active WHERE r.level = 'grid' AND ST_Intersects("
                "ST_Transform(r.geom, 3857), ST_TileEnvelope(:z, :x, :y, margin => :m))"),
                {"z": z, "x": x, "y": y, "m": margin}).scalars())  # fmt: skip

        inside, near = grids(0.0), grids(margin)
        parents = dict(conn.execute(text("SELECT code, parent_code FROM region")).all())
    assert len(inside) > 3 and GRID in inside
    assert inside <= codes <= near  # every grid in the tile; beyond it only the buffer's
    assert len(codes) == len(found)  # one feature per grid
    for f in found:
        props = f["properties"]
        assert props["level"] == "grid" and props["parent_code"] == parents[props["code"]]
        assert props["name"]
    # The grid's polygon lies where its point is, in tile units.
    mine = next(f for f in found if f["properties"]["code"] == GRID)
    shape = shapely.geometry.shape(mine["geometry"])
    assert shape.is_valid and shape.contains(shapely.Point(in_tile(*world["point"], z, x, y)))


def test_each_level_is_its_own_layer(world) -> None:  # type: ignore[no-untyped-def]
    z = 11
    x, y = tile_at(*world["point"], z)
    district = features(get(world, f"/tiles/district/{z}/{x}/{y}.pbf"), "district")
    assert [f["properties"]["code"] for f in district] == ["120106"]
    streets = features(get(world, f"/tiles/street/{z}/{x}/{y}.pbf"), "street")
    assert {f["properties"]["parent_code"] for f in streets} == {"120106"}
    assert "120106001" in {f["properties"]["code"] for f in streets}
    community = features(get(world, f"/tiles/community/{z}/{x}/{y}.pbf"), "community")
    assert GRID[:12] in {f["properties"]["code"] for f in community}
    # Far from the district: nothing, as 204.
    empty = get(world, "/tiles/grid/15/0/0.pbf")
    assert empty.status_code == 204 and not empty.content and empty.headers["etag"]


# -- incidents --------------------------------------------------------------------------------


def test_incident_tiles_follow_the_list_filters(world) -> None:  # type: ignore[no-untyped-def]
    ids = {
        "patrol": report(world),
        "hotline": report(world, source="hotline"),
        "other_class": report(world, class_code="P0101"),
    }
    filed = report(world, source="app")
    done = world["client"].post(f"/api/v1/incidents/{filed}/actions", json={"action": "file"},
                                headers=world["users"]["admin"])  # fmt: skip
    assert done.status_code == 200, done.text
    path = f"/tiles/incidents/{point_tile(world, 16)}.pbf"
    cases = [
        {},
        {"source": "hotline"},
        {"status": ["filed"]},
        {"status": ["reported", "filed"], "class": "e01"},
        {"class": "P01"},
        {"region": "120106002"},
        {"overdue": "false", "out_of_area": "false"},
        {"overdue": "true"},
        {"from": "2000-01-01T00:00:00+08:00", "to": "2001-01-01T00:00:00+08:00"},
    ]
    for params in cases:
        tile = features(get(world, path, params=params), "incidents")
        listed = get(world, "/api/v1/incidents", params=params).json()["items"]
        assert {f["properties"]["id"] for f in tile} == {c["id"] for c in listed}, params
        for f in tile:
            assert f["id"] == f["properties"]["id"]  # also the MVT feature id
    whole = {f["properties"]["id"]: f["properties"] for f in features(get(world, path),
                                                                      "incidents")}  # fmt: skip
    assert set(whole) == {*ids.values(), filed}
    one = whole[ids["hotline"]]
    assert one["status"] == "reported" and one["class_code"] == "E0101"
    assert one["grid_code"] == GRID and one["overdue"] is False
    assert abs(one["reported_at"] - time.time()) < 3600  # epoch seconds


def test_incident_tiles_keep_to_the_callers_scope(world) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = report(world), report(world, at=world["other"])
    here = f"/tiles/incidents/{point_tile(world, 16)}.pbf"
    there = f"/tiles/incidents/{point_tile(world, 16, world['other'])}.pbf"
    assert here != there

    def ids(path: str, role: str) -> set[int]:
        return {f["properties"]["id"] for f in features(get(world, path, role), "incidents")}

    assert ids(here, "district_commander") == {mine}
    assert ids(there, "district_commander") == {theirs}
    assert ids(here, "street_commander") == {mine}
    assert ids(there, "street_commander") == set()  # another street's case: not in A's tile
    assert ids(here, "street_b") == set() and ids(there, "street_b") == {theirs}
    # The same tile for two areas is two cache entries, never one shared.
    fresh = f"/tiles/incidents/{point_tile(world, 17)}.pbf"
    first = get(world, fresh, "street_commander")
    assert get(world, fresh, "street_commander").headers["x-tile-cache"] == "hit"
    second = get(world, fresh, "street_b")
    assert second.headers["x-tile-cache"] == "miss" and second.status_code == 204
    assert first.headers["etag"] != second.headers["etag"]
    assert get(world, fresh, "street_b").headers["x-tile-cache"] == "hit"
    # Clusters keep to the scope too: A's low-zoom counts add up to A's cases.
    z = 9
    x, y = tile_at(*world["point"], z)
    for role, expected in (("street_commander", 1), ("district_commander", 2)):
        counted = sum(
            f["properties"]["count"]
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for f in features(get(world, f"/tiles/incidents/{z}/{x + dx}/{y + dy}.pbf", role),
                              "incidents")
        )  # fmt: skip
        assert counted == expected, role


def _many_cases(world: dict[str, Any], n: int) -> tuple[int, tuple[float, float, float, float]]:
    """n + 1 cases scattered over about 400 m around the point (copies of one report, so the
    test does not make n requests); returns how many and their bounds."""
    first = report(world)
    with world["engine"].begin() as conn:
        conn.execute(text("""
            INSERT INTO incident (status, class_code, source, description, geom, input_lon,
                input_lat, input_crs, grid_code, community_code, street_code, district_code,
                region_code, boundary_version_id, reported_at)
            SELECT i.status, i.class_code, i.source, i.description,
                   ST_SetSRID(ST_MakePoint(ST_X(i.geom) + ((g * 7919) % 1000 - 500) * 4e-6,
                                           ST_Y(i.geom) + ((g * 104729) % 1000 - 500) * 4e-6),
                              4490), i.input_lon, i.input_lat, i.input_crs, i.grid_code,
                   i.community_code, i.street_code, i.district_code, i.region_code,
                   i.boundary_version_id, i.reported_at
            FROM incident i, generate_series(1, :n) g WHERE i.id = :id
        """), {"n": n, "id": first})  # fmt: skip
        box = conn.execute(
            text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                 "FROM (SELECT ST_Extent(geom)::geometry AS e FROM incident) s")
        ).one()  # fmt: skip
    return n + 1, tuple(box)  # type: ignore[return-value]


def _covering(box: tuple[float, float, float, float], z: int) -> list[tuple[int, int]]:
    x0, y1 = tile_at(box[0], box[1], z)
    x1, y0 = tile_at(box[2], box[3], z)
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def test_low_zoom_incident_tiles_are_aggregated(world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    total, box = _many_cases(world, 2000)
    for z in (10, 12, 13):
        found = [
            f for x, y in _covering(box, z)
            for f in features(get(world, f"/tiles/incidents/{z}/{x}/{y}.pbf"), "incidents")
        ]  # fmt: skip
        assert len(found) < total / 10, z  # clusters, not points
        assert sum(f["properties"]["count"] for f in found) == total, z  # each case once
        assert all(set(f["properties"]) == {"count", "overdue_count"} for f in found)
        assert all(f["geometry"]["type"] == "Point" for f in found)
    # From zoom 14 single cases — unless one tile would carry too many of them.
    z = 15
    tiles = _covering(box, z)
    points = sum(len(features(get(world, f"/tiles/incidents/{z}/{x}/{y}.pbf"), "incidents"))
                 for x, y in tiles)  # fmt: skip
    assert points >= total  # every case (the buffer may show one in two tiles)
    monkeypatch.setattr(service, "MAX_POINTS", 100)
    world["tiles"].cache.clear()
    dense = [features(get(world, f"/tiles/incidents/{z}/{x}/{y}.pbf"), "incidents")
             for x, y in tiles]  # fmt: skip
    assert sum(f["properties"]["count"] for tile in dense for f in tile) == total
    assert all(len(tile) <= (service.EXTENT // service.CLUSTER_PX) ** 2 for tile in dense)


# -- tracks -----------------------------------------------------------------------------------


def test_track_tiles_hold_a_days_lines_in_the_callers_area(world) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    start = dt.datetime.now(ZONE) - dt.timedelta(minutes=20)
    if (start + dt.timedelta(minutes=10)).date() != start.date():  # near midnight: all before
        start -= dt.timedelta(minutes=30)
    fixes = []
    for i in range(30):
        lon, lat, _ = GEOD.fwd(x, y, 90, i * 10)
        fixes.append({"worker": "demo-gridworker", "lon": lon, "lat": lat, "crs": "cgcs2000",
                      "time": (start + dt.timedelta(seconds=15 * i)).isoformat(),
                      "accuracy_m": 5, "client_id": f"t{i}"})  # fmt: skip
    sent = world["client"].post("/api/v1/patrols/fixes", json={"fixes": fixes},
                                headers=world["users"]["gridworker"])  # fmt: skip
    assert sent.status_code == 200 and sent.json()["accepted"] == 30, sent.text
    wait_for(lambda: world["tiles"].cache.version("tracks") > 0, "the ingest's notification")
    path = f"/tiles/tracks/{point_tile(world, 17)}.pbf"
    day = {"date": start.date().isoformat()}
    lines = features(get(world, path, params=day), "tracks")
    assert [f["properties"] for f in lines] == [{"worker": "demo-gridworker", "fixes": 30}]
    assert lines[0]["geometry"]["type"] in ("LineString", "MultiLineString")
    assert features(get(world, path, "street_commander", params=day), "tracks") == lines
    assert get(world, path, "street_b", params=day).status_code == 204  # another street's
    before = {"date": (start.date() - dt.timedelta(days=1)).isoformat()}
    assert get(world, path, params=before).status_code == 204
    if start.date() == dt.datetime.now(ZONE).date():
        assert features(get(world, path), "tracks") == lines  # the default day: today


# -- HTTP: ETag, 304, the cache and its invalidation --------------------------------------------


def test_etag_and_if_none_match(world) -> None:  # type: ignore[no-untyped-def]
    path = f"/tiles/grid/{point_tile(world, 15)}.pbf"
    first = get(world, path)
    tag = first.headers["etag"]
    assert first.status_code == 200 and tag.startswith('"') and not tag.startswith("W/")
    assert first.headers["cache-control"] == "private, max-age=300"
    assert first.headers["x-tile-cache"] == "miss"
    again = get(world, path, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag and again.headers["x-tile-cache"] == "hit"
    assert get(world, path, headers={"If-None-Match": f'"x", W/{tag}'}).status_code == 304
    assert get(world, path, headers={"If-None-Match": '"other"'}).status_code == 200
    # The same data from another worker (a cold cache) has the same ETag.
    world["tiles"].cache.clear()
    cold = get(world, path, headers={"If-None-Match": tag})
    assert cold.status_code == 304 and cold.headers["x-tile-cache"] == "miss"
    incidents = get(world, f"/tiles/incidents/{point_tile(world, 15)}.pbf")
    assert incidents.headers["cache-control"] == "private, max-age=10"


def test_a_new_incident_changes_its_tiles_after_commit_and_no_other_layer(world) -> None:  # type: ignore[no-untyped-def]
    cache = world["tiles"].cache
    old = report(world)
    wait_for(lambda: cache.version("incidents") > 0, "the first report's notification")
    cases = f"/tiles/incidents/{point_tile(world, 16)}.pbf"
    grids = f"/tiles/grid/{point_tile(world, 16)}.pbf"
    before, grid_before = get(world, cases), get(world, grids)
    assert get(world, cases).headers["x-tile-cache"] == "hit"
    assert get(world, grids).headers["x-tile-cache"] == "hit"
    version = cache.version("incidents")
    boundaries = cache.version("boundaries")
    new = report(world)  # committed by the request; its NOTIFY reaches the listener after
    wait_for(lambda: cache.version("incidents") > version, "the new report's notification")
    after = get(world, cases, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and after.headers["x-tile-cache"] == "miss"
    assert after.headers["etag"] != before.headers["etag"]
    assert {f["properties"]["id"] for f in features(before, "incidents")} == {old}
    assert {f["properties"]["id"] for f in features(after, "incidents")} == {old, new}
    grid_after = get(world, grids, headers={"If-None-Match": grid_before.headers["etag"]})
    assert grid_after.status_code == 304 and grid_after.headers["x-tile-cache"] == "hit"
    assert cache.version("boundaries") == boundaries
    # An action on a case (an UPDATE) is a change too.
    version = cache.version("incidents")
    filed = world["client"].post(f"/api/v1/incidents/{new}/actions", json={"action": "file"},
                                 headers=world["users"]["admin"])  # fmt: skip
    assert filed.status_code == 200
    wait_for(lambda: cache.version("incidents") > version, "the action's notification")
    statuses = {f["properties"]["id"]: f["properties"]["status"]
                for f in features(get(world, cases), "incidents")}  # fmt: skip
    assert statuses == {old: "reported", new: "filed"}


def test_two_workers_agree_on_etags_and_both_hear_of_a_change(world, client_for) -> None:  # type: ignore[no-untyped-def]
    """Two apps on one database stand for two uvicorn workers: same data, same ETag; a case
    reported through one drops the other's cached tile too."""
    other = client_for(world["client"].app.state.settings.database_url, token=None)
    theirs: service.TileService = other.app.state.tiles
    wait_for(lambda: theirs.cache.live, "the second worker's listener")
    path = f"/tiles/incidents/{point_tile(world, 16)}.pbf"
    headers = world["users"]["district_commander"]
    mine = get(world, path)
    first = other.get(path, headers=headers)
    assert first.headers["etag"] == mine.headers["etag"]
    assert other.get(path, headers=headers).headers["x-tile-cache"] == "hit"
    version = theirs.cache.version("incidents")
    new = report(world)  # through the first worker
    wait_for(lambda: theirs.cache.version("incidents") > version, "the second worker to hear")
    changed = other.get(path, headers={**headers, "If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.headers["x-tile-cache"] == "miss"
    assert new in {f["properties"]["id"] for f in features(changed, "incidents")}


def test_boundary_changes_reach_the_cache(world) -> None:  # type: ignore[no-untyped-def]
    cache = world["tiles"].cache
    path = f"/tiles/grid/{point_tile(world, 15)}.pbf"
    get(world, path)
    assert get(world, path).headers["x-tile-cache"] == "hit"
    version = cache.version("boundaries")
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE region SET name = 'renamed' WHERE code = :c"), {"c": GRID})
    wait_for(lambda: cache.version("boundaries") > version, "the rename's notification")
    renamed = get(world, path)
    assert renamed.headers["x-tile-cache"] == "miss"
    names = {f["properties"]["code"]: f["properties"]["name"] for f in features(renamed, "grid")}
    assert names[GRID] == "renamed"


def test_a_dropped_listener_empties_the_cache_and_reconnects(world) -> None:  # type: ignore[no-untyped-def]
    tiles = world["tiles"]
    path = f"/tiles/grid/{point_tile(world, 15)}.pbf"
    get(world, path)
    assert get(world, path).headers["x-tile-cache"] == "hit"
    connects = tiles.connects
    with world["engine"].begin() as conn:
        ended = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'gridmap-tiles' AND datname = current_database()"
        )).scalar_one()  # fmt: skip
    assert ended == 1
    wait_for(lambda: tiles.connects > connects and tiles.cache.live, "the listener to reconnect")
    assert get(world, path).headers["x-tile-cache"] == "miss"
    assert get(world, path).headers["x-tile-cache"] == "hit"


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/tiles/parcels/1/0/0.pbf", 404, None),
        ("/tiles/grid/23/0/0.pbf", 400, "z"),
        ("/tiles/grid/3/8/0.pbf", 400, "x"),
        ("/tiles/grid/3/0/8.pbf", 400, "y"),
        ("/tiles/grid/0/0/-1.pbf", 400, "y"),
        ("/tiles/grid/a/0/0.pbf", 400, "z"),
        ("/tiles/grid/1/0/99999999999999999999999.pbf", 400, "y"),
        ("/tiles/grid/1/٠/0.pbf", 400, "x"),  # an Arabic-Indic zero: ASCII digits only
        ("/tiles/incidents/1/0/0.pbf?status=lost", 422, "status"),
        ("/tiles/incidents/1/0/0.pbf?from=yesterday", 422, "from"),
        ("/tiles/incidents/1/0/0.pbf?class=Z99", 422, "class"),
        ("/tiles/incidents/1/0/0.pbf?class=E0%25", 422, "class"),
        ("/tiles/incidents/1/0/0.pbf?overdue=maybe", 422, "overdue"),
        ("/tiles/tracks/1/0/0.pbf?date=2026-13-01", 422, "date"),
    ],
)
def test_bad_input_is_named(shared_client, path, status, field) -> None:  # type: ignore[no-untyped-def]
    response = shared_client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    if field is None:
        assert body["type"] == "urn:gridmap:problem:not-found" and "grid" in body["detail"]
    else:
        assert body["errors"][0]["field"].split(".")[0] == field  # status.0: its first value


def test_the_wall_roles_may_see_what_every_layer_shows() -> None:
    """One action guards every layer, so each role that holds it must be allowed to list the
    cases and the patrols the incident and track layers show."""
    wall = {r for r, a in identity.PERMISSIONS if a == "screen:view"}
    assert wall and all(identity.allowed(r, "incidents:read") for r in wall)
    assert all(identity.allowed(r, "patrols:read") for r in wall)


# -- the cache alone ----------------------------------------------------------------------------


def test_the_cache_is_bounded_in_bytes_and_forgets_the_least_recently_used() -> None:
    cache = service.TileCache(max_bytes=3 * (1000 + service.TileCache.OVERHEAD))
    cache.live = True
    tile = service.Tile(b"x" * 1000, '"t"')
    for key in ("a", "b", "c"):
        assert cache.put(key, "boundaries", 0, tile)
    assert cache.get("a") is tile  # a is now the most recent
    assert cache.put("d", "boundaries", 0, tile)
    assert cache.get("b") is None and cache.get("a") is tile and len(cache) == 3
    assert cache.size <= cache.max_bytes
    assert not cache.put("huge", "boundaries", 0, service.Tile(b"x" * 10_000, '"h"'))
    # A tile built before a change is not kept; the change forgets only its own group.
    assert cache.put("i", "incidents", 0, tile)
    cache.bump("incidents")
    assert cache.get("i") is None and cache.get("a") is tile
    assert not cache.put("i", "incidents", 0, tile)
    assert cache.put("i", "incidents", 1, tile)
    cache.live = False  # the listener is down: nothing is served or kept
    assert cache.get("a") is None and not cache.put("e", "boundaries", 0, tile)
    scoped = [("incidents", ScopeFilter("120106001")), ("incidents", ScopeFilter("120106002"))]
    assert scoped[0] != scoped[1] and hash(scoped[0]) != hash(scoped[1])


def test_a_tiles_lon_lat_bounds_are_postgis_own(shared_demo_db: str) -> None:
    """Track tiles pick their workers with the tile's bounds worked out in Python: they must be
    the envelope PostGIS filters with."""
    engine = make_engine(shared_demo_db)
    with engine.connect() as conn:
        for z, x, y in ((0, 0, 0), (1, 1, 0), (5, 26, 12), (15, 27048, 12503), (22, 3, 4194303)):
            row = conn.execute(text(
                "SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) FROM "
                "(SELECT ST_Transform(ST_TileEnvelope(:z, :x, :y), 4490) AS g) s"),
                {"z": z, "x": x, "y": y}).one()  # fmt: skip
            assert service.TileRef(z, x, y).bounds(0.0) == pytest.approx(tuple(row), abs=1e-9)
    engine.dispose()
