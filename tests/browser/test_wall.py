"""The command wall in a real browser: every layer loads with no console error and no request to
any host but the app, every layer toggles, and a gridworker's position moves on the wall after
the server receives a new fix."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.engine import make_engine
from app.services import demo_activity, demo_patrols, demo_whistles, identity
from app.services.locate import LocateService
from app.settings import Settings
from tests.browser.conftest import ARTIFACTS, foreign_requests, log_in, watched_page
from tests.conftest import _clone, bearer, serve_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def wall_server(pg: EmbeddedPostgres, demo_template: str) -> Iterator[dict[str, Any]]:
    """The app on its own demo database with two weeks of cases, whistles and one round of
    every gridworker's fix — served by uvicorn on a free loopback port."""
    for url in _clone(pg, demo_template):
        engine = make_engine(url)
        locator = LocateService(engine, metric_crs="EPSG:4548")
        locator.refresh()
        try:
            demo_activity.load(engine, days=14, per_day=400)
            demo_whistles.load(engine, locator, count=12, days=14)
            workers = identity.demo_gridworkers(engine)
            demo_patrols.live(engine, locator, steps=1, interval_s=1, always_on=True)
        finally:
            locator.stop()
        settings = Settings(database_url=url, supervision_interval_s=0, demo_patrols=False)
        with serve_app(settings) as base:
            yield {"base": base, "engine": engine, "workers": workers}
        engine.dispose()


@pytest.fixture
def wall(browser, wall_server, demo_users):  # type: ignore[no-untyped-def]
    """A district commander's browser on the wall, recording requests and console errors."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = watched_page(context)
    log_in(page, wall_server["base"], demo_users["district_commander"], "/screen")
    page.wait_for_function("window.gridmapReady === true", timeout=30_000)
    yield page
    context.close()


def test_the_wall_loads_every_layer_offline(wall, wall_server) -> None:  # type: ignore[no-untyped-def]
    page = wall
    # Figures filled, cases clustered, whistles drawn, gridworkers on the live layer.
    assert page.locator("#fig-open_cases").inner_text() not in ("", "—")
    assert page.locator(".marker-cluster").count() > 0
    assert page.locator(".wall-whistle").count() > 0
    live = page.evaluate("gridmapWall.featureCount('workers')")
    assert live > 0.9 * wall_server["workers"]
    assert page.locator(".leaflet-control-scale").count() == 1
    assert page.locator("#wall-legend").inner_text().strip() != ""
    assert "红桥区" in page.locator("#wall-title").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "wall.png"))
    assert foreign_requests(page.requests_seen, wall_server["base"]) == []
    assert page.console_errors == []


FILLED = """(() => { let n = 0;
  window[gridmapWall.config.grid_layer].eachLayer(l => { if (l.options.fillOpacity > 0.5) n++; });
  return n; })()"""
WHERE = """(() => { const l = window[gridmapWall.config.realtime.workers].getLayer(%r);
  return l ? [l.getLatLng().lat, l.getLatLng().lng] : null; })()"""


def test_every_layer_toggles(wall) -> None:  # type: ignore[no-untyped-def]
    page = wall
    boxes = page.locator(".leaflet-control-layers input[type=checkbox]")
    assert boxes.count() >= 11  # 4 levels, cases, heat, hot spots, month, whistles, workers, tracks
    count = "Object.keys(window[gridmapWall.config.map]._layers).length"
    for i in range(boxes.count()):
        before = page.evaluate(count)
        boxes.nth(i).click()
        assert page.evaluate(count) != before, f"layer {i} did not toggle"
        boxes.nth(i).click()
        assert page.evaluate(count) == before
    # The choropleth switches recolour the grids (radio buttons).
    radios = page.locator(".leaflet-control-layers input[type=radio]")
    page.locator("label", has_text="在办案件").locator("input[type=radio]").click()
    assert page.evaluate(FILLED) > 0  # grids with open cases are coloured
    radios.last.click()  # none
    assert page.evaluate(FILLED) == 0
    assert page.console_errors == []


def test_the_hot_spot_overlay_shows_the_last_7_days_spots(wall, wall_server) -> None:  # type: ignore[no-untyped-def]
    page = wall
    assert page.evaluate("gridmapWall.hotspotBins()") == {}  # hidden at start: not fetched
    page.locator("label", has_text="近 7 日显著冷热点").locator("input").click()
    page.wait_for_function("Object.keys(gridmapWall.hotspotBins()).length > 0", timeout=30_000)
    assert page.evaluate("gridmapWall.hotspotBins()").get("3", 0) > 0  # the demo's planted spots
    (url,) = [u for u in page.requests_seen if "/api/v1/analytics/hotspots" in u]
    query = parse_qs(urlsplit(url).query)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert query["level"] == ["grid"] and query["to"] == [today.isoformat()]
    assert query["from"] == [(today - dt.timedelta(days=6)).isoformat()]
    assert "热点 - 99% 置信度" in page.locator("#wall-legend").inner_text()
    assert page.console_errors == []


def test_a_gridworker_moves_on_the_wall_after_a_new_fix(wall, wall_server, demo_users) -> None:  # type: ignore[no-untyped-def]
    page = wall
    worker = "gw-120106001001001"
    before = page.evaluate(WHERE % worker)
    assert before is not None
    # 26 m east: a walk, not a jump (a jump would be flagged and kept off the wall).
    fix = {
        "worker": worker,
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "crs": "cgcs2000",
        "lon": before[1] + 0.0003,
        "lat": before[0],
        "accuracy_m": 5,
        "client_id": "wall",
    }
    sent = page.request.post(
        f"{wall_server['base']}/api/v1/patrols/fixes",
        data={"fixes": [fix]},
        headers=bearer(demo_users["admin"]["token"]),
    )
    assert sent.json()["accepted"] == 1, sent.text()
    # The live layer polls every 10 s: the marker must move by itself, without a reload.
    moved = f"(() => {{ const p = {WHERE % worker}; return p && p[1] > {before[1] + 0.0002}; }})()"
    page.wait_for_function(moved, timeout=25_000)
    assert page.console_errors == []


def test_the_wall_speaks_english(wall, wall_server) -> None:  # type: ignore[no-untyped-def]
    page = wall
    page.goto(f"{wall_server['base']}/screen?lang=en")
    page.wait_for_function("window.gridmapReady === true", timeout=30_000)
    control = page.locator(".leaflet-control-layers").first.inner_text()
    assert "Open cases" in control and "Streets" in control
    assert "Gridworkers on duty" in page.locator("#wall-figures").inner_text()
    assert foreign_requests(page.requests_seen, wall_server["base"]) == []
