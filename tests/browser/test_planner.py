"""The planners' page in a real browser: it opens on the hot spots of the loaded months with no
console error and no request to any host but the app; the filters refetch and redraw without a
reload; the other analyses, a region's popup with its weekly chart, and English."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.db.embedded import EmbeddedPostgres
from app.db.engine import make_engine
from app.settings import Settings
from tests.browser.conftest import ARTIFACTS, foreign_requests, log_in, watched_page
from tests.conftest import _clone, bearer, serve_app

pytestmark = pytest.mark.browser

GRIDS = 992  # the demo district's
STREETS = 10


@pytest.fixture(scope="module")
def planner_server(pg: EmbeddedPostgres, activity_template: str) -> Iterator[dict[str, Any]]:
    """The app on its own demo database with four months of cases (~36,000, the demo's planted
    hot spots among them) — served by uvicorn on a free loopback port."""
    for url in _clone(pg, activity_template):
        engine = make_engine(url)
        settings = Settings(database_url=url, supervision_interval_s=0, demo_patrols=False)
        with serve_app(settings) as base:
            yield {"base": base, "engine": engine}
        engine.dispose()


@pytest.fixture
def planner(browser, planner_server, demo_users):  # type: ignore[no-untyped-def]
    """A district planner's browser on /planner, recording requests and console errors."""
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = watched_page(context)
    log_in(page, planner_server["base"], demo_users["planner"], "/planner")
    page.wait_for_function("window.gridmapPlanner && gridmapPlanner.ready === true",
                           timeout=60_000)  # fmt: skip
    yield page
    context.close()


def _redrawn(page, action) -> None:  # type: ignore[no-untyped-def]
    """Do ``action`` and wait until the page has fetched and drawn what it changed."""
    before = page.evaluate("gridmapPlanner.generation")
    action()
    page.wait_for_function(
        f"gridmapPlanner.generation > {before} && gridmapPlanner.pending === 0", timeout=60_000
    )


def _analytics(page, kind: str) -> list[dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    """The query strings of the page's requests to /api/v1/analytics/<kind>."""
    return [parse_qs(urlsplit(u).query) for u in page.requests_seen
            if urlsplit(u).path == f"/api/v1/analytics/{kind}"]  # fmt: skip


def _total(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.locator("#planner-total").inner_text().replace(",", ""))


def test_the_planner_shows_the_hot_spots_offline(planner, planner_server) -> None:  # type: ignore[no-untyped-def]
    page = planner
    cfg = page.evaluate("gridmapPlanner.config")
    assert page.input_value("#planner-from") == cfg["filters"]["from"]
    assert page.input_value("#planner-to") == cfg["today"]
    assert "active" in (page.locator(".planner-preset").nth(2).get_attribute("class") or "")
    # Gi* at grid level over the last 365 days: every grid drawn, the planted hot spots at 99 %.
    drawn = page.evaluate("gridmapPlanner.drawn('gi')")
    assert len(drawn) == GRIDS
    hot = [f for f in drawn if f["gi_bin"] == 3]
    assert hot and all(f["fill"] == "#d62f27" for f in hot)
    assert {f["fill"] for f in drawn if f["gi_bin"] == 0} == {"#e3e3e3"}
    assert int(page.locator('#planner-spots td[data-bin="3"]').inner_text()) == len(hot)
    assert _total(page) > 30_000  # the 120 days loaded
    assert page.locator("#planner-reason").is_hidden()
    legend = page.locator("#planner-legend").inner_text()
    assert "热点 - 99% 置信度" in legend and "不显著" in legend and "冷点 - 90% 置信度" in legend
    (request,) = _analytics(page, "hotspots")
    assert request["level"] == ["grid"] and request["method"] == ["gi"]
    assert request["from"] == [cfg["filters"]["from"]] and request["to"] == [cfg["today"]]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "planner.png"))
    assert foreign_requests(page.requests_seen, planner_server["base"]) == []
    assert page.console_errors == []


def test_the_filters_refetch_and_redraw_without_a_reload(planner) -> None:  # type: ignore[no-untyped-def]
    page = planner
    page.evaluate("window.notReloaded = true")
    _redrawn(page, lambda: page.select_option("#planner-level", "street"))
    assert len(page.evaluate("gridmapPlanner.drawn('gi')")) == STREETS
    assert _analytics(page, "hotspots")[-1]["level"] == ["street"]
    everything = _total(page)
    _redrawn(page, lambda: page.select_option("#planner-class", "E0101"))
    assert _analytics(page, "hotspots")[-1]["class"] == ["E0101"]
    minor = _total(page)
    assert 0 < minor < everything
    _redrawn(page, lambda: page.select_option("#planner-class", "E01"))  # its major
    assert _analytics(page, "hotspots")[-1]["class"] == ["E01"]
    assert minor < _total(page) < everything
    _redrawn(page, lambda: page.select_option("#planner-measure", "per_1000"))
    assert _analytics(page, "hotspots")[-1]["measure"] == ["per_1000"]
    _redrawn(page, lambda: page.locator(".planner-preset").first.click())  # last 4 weeks
    last = _analytics(page, "hotspots")[-1]
    assert last["to"] == [page.evaluate("gridmapPlanner.config.today")]
    assert page.input_value("#planner-from") == last["from"][0]
    # A period with no cases: the reason, no error, nothing drawn.
    page.select_option("#planner-class", "")

    def empty() -> None:
        page.fill("#planner-from", "2020-01-01")
        page.fill("#planner-to", "2020-01-31")

    _redrawn(page, empty)
    reason = page.locator("#planner-reason")
    assert reason.is_visible() and "no cases" in reason.inner_text()
    assert "2020-01-01" in reason.inner_text()
    assert page.locator("#planner-error").is_hidden()
    assert page.evaluate("gridmapPlanner.drawn('gi')") == []
    assert _total(page) == 0
    # A start after the end is refused on the page, without asking the API.
    asked = len(page.requests_seen)
    page.fill("#planner-from", "2020-02-15")
    assert page.locator("#planner-error").is_visible()
    assert len(page.requests_seen) == asked
    assert page.evaluate("window.notReloaded") is True
    assert page.console_errors == []


def test_the_other_analyses_and_a_regions_trend(planner, planner_server, demo_users) -> None:  # type: ignore[no-untyped-def]
    page = planner
    control = page.locator(".leaflet-control-layers").first

    def choose(text: str) -> None:
        control.locator("label", has_text=text).locator("input").click()

    # Local Moran: the method follows the layer, and the planted hot spots are high-high.
    _redrawn(page, lambda: choose("聚类和异常值"))
    assert page.input_value("#planner-method") == "moran"
    clusters = {f["moran_cluster"] for f in page.evaluate("gridmapPlanner.drawn('moran')")}
    assert "HH" in clusters
    assert "高-高聚类" in page.locator("#planner-legend").inner_text()
    # Emerging hot spots (gis/emerging.py): categories on the map and in the legend.
    probe = page.request.get(
        f"{planner_server['base']}/api/v1/analytics/emerging?level=street&weeks=4",
        headers=bearer(demo_users["planner"]["token"]),
    )
    if probe.status >= 500:
        pytest.skip(f"/api/v1/analytics/emerging answers {probe.status}: gis/emerging.py missing")
    _redrawn(page, lambda: choose("时空热点趋势"))
    categories = {f["category"] for f in page.evaluate("gridmapPlanner.drawn('emerging')")}
    assert categories - {"no pattern"}, categories
    legend = page.locator("#planner-legend [data-category]")
    assert legend.count() >= 2
    assert _analytics(page, "emerging")[-1]["weeks"] == ["52"]
    # The change from the previous period: the year before the demo months had no case.
    _redrawn(page, lambda: choose("与上一时段对比"))
    changes = page.evaluate("gridmapPlanner.drawn('compare')")
    assert len(changes) == GRIDS and any(f["significant"] for f in changes)
    assert "上一时段" in page.locator("#planner-summary").inner_text()
    # The kernel density as a heat layer, over the analysis.
    _redrawn(page, lambda: page.locator("label", has_text="核密度").locator("input").click())
    assert page.evaluate("window[gridmapPlanner.config.heat.layer]._latlngs.length") > 1000
    # A region's popup: its figures and its weekly series as a small SVG chart.
    _redrawn(page, lambda: choose("热点 (Gi*)"))
    hot = page.evaluate("gridmapPlanner.drawn('gi').filter(f => f.gi_bin === 3)[0].code")
    assert page.evaluate(f"gridmapPlanner.openRegion('{hot}')") is True
    page.wait_for_selector(".planner-popup .planner-chart svg polyline", timeout=30_000)
    popup = page.locator(".planner-popup").inner_text()
    assert hot in popup and "热点 - 99% 置信度" in popup and "每周案件" in popup
    series = _analytics(page, "series")[-1]
    assert series["region"] == [hot] and series["period"] == ["week"]
    assert foreign_requests(page.requests_seen, planner_server["base"]) == []
    assert page.console_errors == []


def test_the_planner_speaks_english(planner, planner_server) -> None:  # type: ignore[no-untyped-def]
    page = planner
    page.goto(f"{planner_server['base']}/planner?lang=en")
    page.wait_for_function("window.gridmapPlanner && gridmapPlanner.ready === true",
                           timeout=60_000)  # fmt: skip
    control = page.locator(".leaflet-control-layers").first.inner_text()
    assert "Hot spots (Gi*)" in control and "Emerging hot spots" in control
    panel = page.locator("#planner-panel").inner_text()
    for text in ("Hot spots for planners", "Case class", "Last quarter", "Counted per", "Measure"):
        assert text in panel, text
    assert "Hot spot, 99 % confidence" in page.locator("#planner-legend").inner_text()
    assert "Hot spots" in page.locator("#planner-summary").inner_text()
    assert foreign_requests(page.requests_seen, planner_server["base"]) == []
    assert page.console_errors == []
