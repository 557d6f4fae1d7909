"""Patrol fixes: idempotent, order-tolerant batch ingest with per-item refusals and flags, day
partitions, live positions and a day's playback — on a real PostGIS."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from pyproj import Geod
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app.db.engine import make_engine
from app.services import patrols
from gis.crs import wgs84_to_gcj02
from tests.conftest import bearer, point_inside

GRID = "120106001001001"
GEOD = Geod(ellps="WGS84")


def east(x: float, y: float, metres: float) -> tuple[float, float]:
    lon, lat, _ = GEOD.fwd(x, y, 90, metres)
    return lon, lat


@pytest.fixture
def world(demo_db: str, client_for, demo_users) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
    client = client_for(demo_db, token=None)
    yield {"engine": engine, "client": client, "x": x, "y": y, "users": demo_users,
           "worker": demo_users["gridworker"]["name"], "url": demo_db}  # fmt: skip
    engine.dispose()


def send(world: dict[str, Any], fixes: list[Any], role: str = "gridworker") -> Any:
    return world["client"].post("/api/v1/patrols/fixes", json={"fixes": fixes},
                                headers=bearer(world["users"][role]["token"]))  # fmt: skip


def walk(world: dict[str, Any], n: int, *, start: dt.datetime, step_s: float = 15,
         metres: float = 15, prefix: str = "f") -> list[dict[str, Any]]:  # fmt: skip
    """A walk east at 1 m/s from the grid's inner point, a fix every 15 s."""
    out = []
    for i in range(n):
        lon, lat = east(world["x"], world["y"], i * metres)
        out.append({"worker": world["worker"], "time": (start + dt.timedelta(seconds=i * step_s))
                    .isoformat(), "lon": lon, "lat": lat, "crs": "cgcs2000", "accuracy_m": 5,
                    "speed_mps": metres / step_s, "client_id": f"{prefix}{i}"})  # fmt: skip
    return out


def stored(world: dict[str, Any]) -> list[Any]:
    with world["engine"].connect() as conn:
        return conn.execute(text(
            "SELECT client_id, flags, grid_code, fix_time FROM patrol_fix ORDER BY fix_time"
        )).all()  # fmt: skip


def test_a_batch_sent_twice_is_stored_once_whatever_the_order(world) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    fixes = walk(world, 40, start=start)
    first = send(world, fixes[::-1])  # a phone emptying its buffer newest first
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 40, "duplicates": 0, "flagged": 0, "rejected": []}
    again = send(world, fixes)
    assert again.json() == {"accepted": 0, "duplicates": 40, "flagged": 0, "rejected": []}
    overlap = send(world, fixes[30:] + walk(world, 50, start=start)[40:])
    assert overlap.json()["accepted"] == 10 and overlap.json()["duplicates"] == 10
    rows = stored(world)
    assert len(rows) == 50 and all(r.flags == 0 for r in rows)
    assert rows[0].grid_code == GRID  # located onto its grid


def test_bad_fixes_are_named_and_the_good_ones_stored_flags_kept(world) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)
    good = walk(world, 6, start=start)
    far_lon, far_lat = east(world["x"], world["y"], 10_000)
    jump = {
        **good[3],
        "lon": far_lon,
        "lat": far_lat,
        "client_id": "jump",
        "time": (start + dt.timedelta(seconds=50)).isoformat(),
    }  # 10 km in 5 s
    inaccurate = {**good[4], "client_id": "fuzzy", "accuracy_m": 250,
                  "time": (start + dt.timedelta(seconds=70)).isoformat()}  # fmt: skip
    future = {
        **good[5],
        "client_id": "later",
        "time": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
    }
    bad = [
        ({**good[0], "lon": 200, "client_id": "b0"}, "lon"),
        ({**good[0], "crs": "mars", "client_id": "b1"}, "crs"),
        ({**good[0], "time": "yesterday", "client_id": "b2"}, "time"),
        ({k: v for k, v in good[0].items() if k != "lat"} | {"client_id": "b3"}, "lat"),
        ({**good[0], "accuracy_m": -1, "client_id": "b4"}, "accuracy_m"),
        ({**good[0], "time": "2099-01-01T00:00:00Z", "client_id": "b5"}, "time"),
        ("not a fix", "not an object"),
        ({**good[0], "lat": str(good[0]["lat"]), "client_id": "b7"}, "lat"),  # a number
        ({**good[0], "worker": "gw\x00", "client_id": "b8"}, "worker"),
    ]
    batch = good + [jump, inaccurate, future] + [b for b, _ in bad]
    got = send(world, batch)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["accepted"] == 9 and body["flagged"] == 3 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == list(range(9, 9 + len(bad)))
    for r, (_, field) in zip(body["rejected"], bad, strict=True):
        assert r["reason"].startswith(field), r
    flags = {r.client_id: r.flags for r in stored(world)}
    assert flags["jump"] == patrols.JUMP and flags["fuzzy"] == patrols.ACCURACY
    assert flags["later"] == patrols.FUTURE
    assert flags["f4"] == 0  # the fix after the jump is judged from the last plausible one


def test_whole_batch_refusals(world) -> None:  # type: ignore[no-untyped-def]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    fix = walk(world, 1, start=start)[0]
    unknown = send(world, [fix, {**fix, "worker": "nobody", "client_id": "x"}], role="admin")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "fixes[1].worker"
    too_many = send(world, [fix] * (patrols.MAX_BATCH + 1))
    assert too_many.status_code == 413
    someone_else = send(world, [{**fix, "worker": world["users"]["admin"]["name"]}])
    assert someone_else.status_code == 403  # a gridworker sends only their own fixes
    for body in ({"fix": []}, [fix], {"fixes": "many"}):
        got = world["client"].post(
            "/api/v1/patrols/fixes",
            json=body,
            headers=bearer(world["users"]["gridworker"]["token"]),
        )
        assert got.status_code == 422 and got.json()["errors"][0]["field"] == "fixes"
    broken = world["client"].post(
        "/api/v1/patrols/fixes",
        content=b'{"fixes": [',
        headers={**bearer(world["users"]["gridworker"]["token"]),
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert broken.status_code == 422 and broken.json()["errors"][0]["field"] == "body"
    assert stored(world) == []
    # Out of the sender's area: a street commander may not send (role), an admin may.
    assert send(world, [fix], role="street_commander").status_code == 403
    assert send(world, [fix], role="admin").json()["accepted"] == 1


def test_a_worker_with_fixes_cannot_be_deleted(world) -> None:  # type: ignore[no-untyped-def]
    # No per-fix foreign key (it cost 40 % of an ingest): a trigger keeps the fixes' worker.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    assert send(world, walk(world, 2, start=start)).json()["accepted"] == 2
    with pytest.raises(IntegrityError, match="has patrol fixes"), world["engine"].begin() as conn:
        conn.execute(text("DELETE FROM staff WHERE name = :n"), {"n": world["worker"]})
    with world["engine"].begin() as conn:  # staff without fixes are deleted as before
        conn.execute(text("INSERT INTO staff (name, display_name, role, region_code) "
                          "VALUES ('gw-temp', 'temp', 'gridworker', :g)"), {"g": GRID})  # fmt: skip
        assert conn.execute(text("DELETE FROM staff WHERE name = 'gw-temp'")).rowcount == 1


def test_a_gcj02_fix_is_stored_on_the_grid_its_wgs84_position_lies_in(world) -> None:  # type: ignore[no-untyped-def]
    gx, gy = wgs84_to_gcj02(world["x"], world["y"])
    fix = {"worker": world["worker"], "time": dt.datetime.now(dt.UTC).isoformat(),
           "lon": float(gx), "lat": float(gy), "crs": "gcj02", "client_id": "g"}  # fmt: skip
    assert send(world, [fix]).json()["accepted"] == 1
    assert stored(world)[0].grid_code == GRID


def test_live_shows_the_latest_plausible_fix_of_the_last_ten_minutes(world) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    send(world, walk(world, 4, start=now - dt.timedelta(minutes=2)))
    screen = bearer(world["users"]["screen"]["token"])
    live = world["client"].get("/api/v1/patrols/live", headers=screen)
    assert live.status_code == 200
    assert live.headers["content-type"].startswith("application/geo+json")
    (feature,) = live.json()["features"]
    lon, lat = east(world["x"], world["y"], 45)
    assert feature["geometry"]["coordinates"] == pytest.approx([lon, lat])
    assert feature["properties"]["worker"] == world["worker"]
    assert feature["properties"]["grid_code"] == GRID
    # A newer jump is not a position; a newer plausible fix is.
    far = east(world["x"], world["y"], 20_000)
    send(world, [{"worker": world["worker"], "time": now.isoformat(), "lon": far[0],
                  "lat": far[1], "crs": "cgcs2000", "client_id": "j"}])  # fmt: skip
    again = world["client"].get("/api/v1/patrols/live", headers=screen).json()["features"]
    assert again[0]["geometry"]["coordinates"] == pytest.approx([lon, lat])
    # Another street's commander does not see this worker.
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE staff SET region_code = '120106002' "
                          "WHERE name = 'demo-street-commander'"))  # fmt: skip
    other = world["client"].get(
        "/api/v1/patrols/live", headers=bearer(world["users"]["street_commander"]["token"])
    )
    assert other.json()["features"] == []


def test_a_day_plays_back_split_at_silences(world) -> None:  # type: ignore[no-untyped-def]
    day = dt.datetime.now(patrols.ZONE).date() - dt.timedelta(days=2)
    start = dt.datetime.combine(day, dt.time(10), patrols.ZONE)
    morning = walk(world, 21, start=start)  # 300 m in 5 min
    later = walk(world, 11, start=start + dt.timedelta(minutes=30), prefix="g")  # 150 m
    pause = walk(world, 17, start=start + dt.timedelta(minutes=60), metres=0, prefix="p")  # 4 min
    assert send(world, morning + later + pause).json()["accepted"] == 49
    with world["engine"].connect() as conn:
        made = conn.execute(text("SELECT to_regclass(:n) IS NOT NULL"),
                            {"n": patrols.partition_name(day)}).scalar()  # fmt: skip
    assert made  # its day's partition was made for it
    got = world["client"].get(
        "/api/v1/patrols/tracks",
        params={"worker": world["worker"], "date": day.isoformat()},
        headers=bearer(world["users"]["street_commander"]["token"]),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    lines = [f for f in body["features"] if f["properties"]["kind"] == "track"]
    assert [f["geometry"]["type"] for f in lines] == ["LineString"] * 3
    assert len(lines[0]["properties"]["times"]) == 21
    stops = [f for f in body["features"] if f["properties"]["kind"] == "stop"]
    assert len(stops) == 1 and stops[0]["properties"]["duration_s"] == 240
    summary = body["summary"]
    assert summary["segments"] == 3 and summary["fixes"] == 49 and summary["stops"] == 1
    assert summary["distance_m"] == pytest.approx(450, rel=0.01)
    assert summary["moving_s"] == 690  # 20 + 10 + 16 steps of 15 s; silences not counted
    assert GRID in summary["grids_visited"]
    nobody = world["client"].get("/api/v1/patrols/tracks", params={"worker": "nobody"},
                                 headers=bearer(world["users"]["admin"]["token"]))  # fmt: skip
    assert nobody.status_code == 404
    assert patrols.detach_before(world["engine"], day + dt.timedelta(days=1)) == [
        patrols.partition_name(day)]  # fmt: skip
    assert len(stored(world)) == 0  # detached: no longer part of patrol_fix


def test_the_demo_workers_move_on_the_live_layer_while_the_feed_runs(world, cli_for) -> None:  # type: ignore[no-untyped-def]
    from app.services import demo_patrols, identity
    from app.services.locate import LocateService

    workers = identity.demo_gridworkers(world["engine"])  # one per grid, as `make run` makes
    screen = bearer(world["users"]["screen"]["token"])
    seen: list[dict[str, tuple[float, float]]] = []

    def look(step: int, stored: int) -> None:  # what the wall sees after each round
        live = world["client"].get("/api/v1/patrols/live", headers=screen).json()["features"]
        seen.append({f["id"]: tuple(f["geometry"]["coordinates"]) for f in live})

    locator = LocateService(world["engine"], metric_crs="EPSG:4548")
    locator.refresh()
    try:
        sent = demo_patrols.live(world["engine"], locator, steps=3, interval_s=1,
                                 always_on=True, on_step=look)  # fmt: skip
    finally:
        locator.stop()
    assert sent == 3 * workers
    # Everyone but the odd fix too inaccurate to show (flagged, kept off the wall) …
    assert all(len(s) >= 0.98 * workers for s in seen)
    # … and each walks on between the rounds.
    for before, after in itertools.pairwise(seen):
        both = set(before) & set(after)
        assert sum(before[w] != after[w] for w in both) > 0.9 * workers
    with world["engine"].connect() as conn:  # where their own grid is
        inside = conn.execute(text(
            "SELECT avg((grid_code = substr(s.name, 4))::int) FROM patrol_fix f "
            "JOIN staff s ON s.id = f.worker_id WHERE s.name LIKE 'gw-%'")).scalar()  # fmt: skip
    assert inside > 0.9
    # The command runs the same feed.
    ran = cli_for(world["url"])("demo", "live", "--steps", "2", "--interval", "1", "--always-on")
    assert ran.exit_code == 0, ran.output
    assert f"round 2: {workers} fix(es) sent" in ran.output


def test_coverage_and_unpatrolled_grids(world) -> None:  # type: ignore[no-untyped-def]
    day = dt.datetime.now(patrols.ZONE).date() - dt.timedelta(days=1)
    start = dt.datetime.combine(day, dt.time(9), patrols.ZONE)
    assert send(world, walk(world, 9, start=start, metres=8)).json()["accepted"] == 9  # 64 m
    community = GRID[:12]
    commander = bearer(world["users"]["street_commander"]["token"])
    got = world["client"].get("/api/v1/patrols/coverage", headers=commander,
                              params={"region": community, "date": day.isoformat()})  # fmt: skip
    assert got.status_code == 200, got.text
    grids = {f["id"]: f["properties"] for f in got.json()["features"]}
    assert all(code.startswith(community) for code in grids) and len(grids) > 1
    mine = grids[GRID]
    assert mine["visits"] == 1 and mine["workers"] == 1 and mine["dwell_min"] == 2.0  # 8 × 15 s
    assert 0 < mine["covered_share"] < 1
    walked = {r.grid_code for r in stored(world)}  # the walk may step into a neighbour
    assert {code for code, p in grids.items() if p["visits"]} == walked
    week = world["client"].get("/api/v1/patrols/coverage", headers=commander,
                               params={"region": community, "date": day.isoformat(),
                                       "by": "week"}).json()  # fmt: skip
    assert {f["id"]: f["properties"]["visits"] for f in week["features"]}[GRID] == 1
    idle = world["client"].get("/api/v1/patrols/unpatrolled", headers=commander,
                               params={"region": community, "days": 3}).json()  # fmt: skip
    assert {g["code"] for g in idle} == set(grids) - walked
    assert all(g["last_visit"] is None for g in idle)
    # Each gridworker's day in the community, those who did not patrol with zeros.
    from app.services import identity

    identity.add_user(world["engine"], "gw-idle", role="gridworker", region=GRID[:15])
    days = world["client"].get("/api/v1/patrols/daily", headers=commander,
                               params={"region": community, "date": day.isoformat()})  # fmt: skip
    assert days.status_code == 200, days.text
    by_worker = {d["worker"]: d for d in days.json()}
    me = by_worker[world["worker"]]
    assert me["fixes"] == 9 and me["distance_m"] == pytest.approx(64, rel=0.01)
    assert me["moving_s"] == 120 and me["grids_visited"] == len(walked)
    assert me["first"] is not None and me["reports"] == 0
    idle_workers = [d for w, d in by_worker.items() if w != world["worker"]]
    assert [d["worker"] for d in idle_workers] == ["gw-idle"]
    assert idle_workers[0]["fixes"] == 0 and idle_workers[0]["distance_m"] == 0
    assert all(d["region_code"].startswith(community) for d in days.json())
    nowhere = world["client"].get("/api/v1/patrols/daily", headers=commander,
                                  params={"region": community + "999"})  # fmt: skip
    assert nowhere.status_code == 404
    # Another street's grids are not the commander's; a bad period is named.
    other = world["client"].get("/api/v1/patrols/unpatrolled", headers=commander,
                                params={"region": "120106002"})  # fmt: skip
    assert other.status_code == 404
    bad = world["client"].get("/api/v1/patrols/coverage", headers=commander,
                              params={"region": community, "by": "month"})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "by"
