"""The command wall's page and the figures it polls, on a real PostGIS (the page in a browser:
tests/browser/test_wall.py)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from app.db.engine import make_engine
from tests.conftest import bearer, point_inside

GRID = "120106001001001"
STREET = GRID[:9]
OTHER_STREET = "120106002"


@pytest.fixture
def world(demo_db: str, client_for, demo_users) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
    yield {"engine": engine, "client": client_for(demo_db, token=None), "users": demo_users,
           "point": (x, y)}  # fmt: skip
    engine.dispose()


def get(world: dict[str, Any], url: str, role: str = "district_commander", **params: Any) -> Any:
    return world["client"].get(url, params=params, headers=bearer(world["users"][role]["token"]))


def report(world: dict[str, Any]) -> int:
    x, y = world["point"]
    made = world["client"].post(
        "/api/v1/incidents",
        json={"lon": x, "lat": y, "crs": "cgcs2000", "class_code": "E0101", "source": "patrol",
              "description": "垃圾暴露"},
        headers=bearer(world["users"]["gridworker"]["token"]),
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_the_headline_and_grid_figures_count_what_happened_today(world) -> None:  # type: ignore[no-untyped-def]
    empty = get(world, "/api/v1/screen/figures", region=STREET).json()
    assert empty["reports_today"] == 0 and empty["gridworkers_on_duty"] == 0
    report(world)
    report(world)
    x, y = world["point"]
    fix = {"worker": world["users"]["gridworker"]["name"], "crs": "cgcs2000", "lon": x, "lat": y,
           "time": dt.datetime.now(dt.UTC).isoformat(), "client_id": "here"}  # fmt: skip
    sent = world["client"].post("/api/v1/patrols/fixes", json={"fixes": [fix]},
                                headers=bearer(world["users"]["gridworker"]["token"]))  # fmt: skip
    assert sent.json()["accepted"] == 1
    got = get(world, "/api/v1/screen/figures", region=STREET)
    assert got.status_code == 200, got.text
    figures = got.json()
    assert figures["reports_today"] == 2 and figures["open_cases"] == 2
    assert figures["gridworkers_on_duty"] == 1
    assert figures["whistles_open"] == 0 and figures["overdue_cases"] == 0
    # Another street's wall does not see them.
    other = get(world, "/api/v1/screen/figures", region=OTHER_STREET).json()
    assert other["reports_today"] == 0 and other["gridworkers_on_duty"] == 0
    grids = get(world, "/api/v1/screen/grid-values", region=STREET).json()
    assert grids[GRID]["reports_today"] == 2 and grids[GRID]["open_cases"] == 2
    assert all(code.startswith(STREET) for code in grids)
    # Two cases in one grid of a quiet district: a hot spot there, none far away.
    assert grids[GRID]["hotspot_z"] > 1.96
    with world["engine"].connect() as conn:  # only the grid and those touching it are hot
        near = set(conn.execute(text(
            "SELECT b.code FROM region a JOIN region b ON b.level = 'grid' AND "
            "ST_Intersects(a.geom, b.geom) WHERE a.code = :g AND a.level = 'grid'"),
            {"g": GRID}).scalars())  # fmt: skip
    hot = {code for code, v in grids.items() if (v["hotspot_z"] or 0) > 1.96}
    assert GRID in hot and hot <= near
    with world["engine"].connect() as conn:  # the grid had no case before today: no anomaly
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 2
    assert grids[GRID]["anomaly_z"] is None


def test_the_wall_page_is_offline_bounded_and_in_both_languages(world) -> None:  # type: ignore[no-untyped-def]
    report(world)
    page = get(world, "/screen")
    assert page.status_code == 200, page.text
    html = page.text
    assert "红桥区" in html and "网格化管理指挥大屏" in html
    # Every script and style from the app itself.
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not url.startswith(("http:", "https:", "//")), url
    assert "/static/wall.js" in html and "/static/vendor/realtime/" in html
    assert len(page.content) < 2_000_000
    # Cases are fetched by the page, never embedded: the report is not in it.
    assert "垃圾暴露" not in html
    english = get(world, "/screen", lang="en").text
    assert "Grid management command wall" in english and "Open cases" in english


def test_a_street_commander_gets_the_street_wall_and_no_other(world) -> None:  # type: ignore[no-untyped-def]
    own = get(world, "/screen", role="street_commander")
    assert own.status_code == 200
    assert re.search(r'"region": "(\d+)"', own.text).group(1) == STREET  # type: ignore[union-attr]
    assert get(world, f"/screen/{STREET}", role="street_commander").status_code == 200
    assert get(world, f"/screen/{GRID[:12]}", role="street_commander").status_code == 200
    for url in (f"/screen/{OTHER_STREET}", "/screen/120106"):
        assert get(world, url, role="street_commander").status_code == 404
    assert get(world, "/api/v1/screen/figures", role="street_commander",
               region=OTHER_STREET).status_code == 404  # fmt: skip


def test_bad_input_is_named(world) -> None:  # type: ignore[no-untyped-def]
    assert get(world, "/screen/999999").status_code == 404
    assert get(world, "/api/v1/screen/figures", region="999999").status_code == 404
    for url, params, field in (
        ("/api/v1/screen/figures", {"region": "abc"}, "region"),
        ("/api/v1/screen/grid-values", {}, "region"),
        ("/screen", {"lang": "fr"}, "lang"),
    ):
        got = get(world, url, **params)
        assert got.status_code == 422, (url, got.text)
        assert got.json()["errors"][0]["field"] == field
    assert get(world, "/screen/abc").status_code == 422
    assert world["client"].get("/api/v1/screen/figures", params={"region": STREET}).status_code \
        == 401  # fmt: skip
