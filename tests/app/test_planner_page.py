"""The planners' page over HTTP: who may open it, for which region, and that it references only
the app's own assets (the page in a browser: tests/browser/test_planner.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

from tests.conftest import bearer

STREET = "120106001"
OTHER_STREET = "120106002"


def get(client, users, url: str, role: str = "planner", **params: Any):  # type: ignore[no-untyped-def]
    return client.get(url, params=params, headers=bearer(users[role]["token"]))


def config(page: str) -> dict[str, Any]:
    found = re.search(r"gridmapPlanner\.start\((\{.*?\})\)\);", page)
    assert found, "no gridmapPlanner.start(config) in the page"
    return json.loads(found.group(1))


def test_the_page_is_offline_and_opens_on_the_last_365_days(shared_client, demo_users) -> None:  # type: ignore[no-untyped-def]
    got = get(shared_client, demo_users, "/planner")
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("text/html")
    page = got.text
    assert "红桥区" in page and "案件热点分析" in page
    # Every script, style and link from the app itself.
    for url in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert not url.startswith(("http:", "https:", "//")), url
    assert "/static/planner.js" in page and "/static/planner.css" in page
    assert "/static/vendor/heat/leaflet_heat.min.js" in page  # Leaflet.heat for the density
    assert "cdn" not in page.lower()
    assert len(got.content) < 1_000_000  # outlines only: the grids come with the analyses
    cfg = config(page)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert cfg["region"] == "120106"
    assert cfg["filters"]["to"] == today.isoformat() == cfg["today"]
    assert cfg["filters"]["from"] == (today - dt.timedelta(days=364)).isoformat()
    assert cfg["filters"] | {"from": None, "to": None} == {
        "class": "", "from": None, "to": None, "level": "grid", "method": "gi", "measure": "count",
    }  # fmt: skip
    assert cfg["levels"] == ["street", "community", "grid"]
    assert set(cfg["urls"]) == {"hotspots", "emerging", "series", "compare", "density"}
    assert all(u.startswith("/api/v1/analytics/") for u in cfg["urls"].values())
    # The class filter: all, each major (its code prefix) and its minor classes, named.
    assert '<option value="">全部类别</option>' in page
    assert '<optgroup label="01 ' not in page
    assert re.search(r'<option value="E01">E01 市容环境', page)
    assert '<option value="E0101">E0101 暴露垃圾</option>' in page
    assert cfg["labels"]["legend_hot_99"] == "热点 - 99% 置信度"


def test_the_page_speaks_english(shared_client, demo_users) -> None:  # type: ignore[no-untyped-def]
    page = get(shared_client, demo_users, "/planner", lang="en").text
    assert "Hot spots for planners" in page and "Case class" in page
    assert '<option value="E0101">E0101 Exposed garbage</option>' in page
    assert "Last 12 months" in page and "Cases per 1,000 residents" in page
    assert config(page)["labels"]["legend_hot_99"] == "Hot spot, 99 % confidence"
    assert '<a id="planner-lang" href="?lang=zh">' in page


def test_a_street_commander_gets_the_street_and_nothing_outside_it(  # type: ignore[no-untyped-def]
    shared_client, demo_users
) -> None:
    own = get(shared_client, demo_users, "/planner", role="street_commander")
    assert own.status_code == 200, own.text
    cfg = config(own.text)
    assert cfg["region"] == STREET and cfg["region_level"] == "street"
    assert cfg["levels"] == ["community", "grid"]  # one street has no neighbours to compare
    assert get(shared_client, demo_users, f"/planner/{STREET}001", role="street_commander"
               ).status_code == 200  # fmt: skip
    for code in (OTHER_STREET, "120106", "999999"):
        got = get(shared_client, demo_users, f"/planner/{code}", role="street_commander")
        assert got.status_code == 404, (code, got.text)
        assert got.json()["type"].endswith("not-found")
    # A district planner sees any street of the district, and nothing that does not exist.
    assert get(shared_client, demo_users, f"/planner/{OTHER_STREET}").status_code == 200
    assert get(shared_client, demo_users, "/planner/120199").status_code == 404


def test_without_a_login_or_the_permission_the_page_is_refused(  # type: ignore[no-untyped-def]
    anonymous, shared_client, demo_users
) -> None:
    browser = anonymous.get("/planner", headers={"Accept": "text/html"}, follow_redirects=False)
    assert browser.status_code == 303
    assert browser.headers["location"] == "/login?next=%2Fplanner"
    assert anonymous.get("/planner").status_code == 401
    assert anonymous.get(f"/planner/{STREET}").status_code == 401
    for role in ("gridworker", "department_officer"):  # no analytics:read
        assert get(shared_client, demo_users, "/planner", role=role).status_code == 403, role
    for role in ("planner", "district_commander", "screen"):
        assert get(shared_client, demo_users, "/planner", role=role).status_code == 200, role


def test_bad_input_is_named(shared_client, demo_users) -> None:  # type: ignore[no-untyped-def]
    got = get(shared_client, demo_users, "/planner", lang="fr")
    assert got.status_code == 422
    assert got.json()["errors"][0]["field"] == "lang"
    assert get(shared_client, demo_users, "/planner/abc").status_code == 422


def test_the_home_page_links_the_pages_the_role_may_open(shared_client, demo_users) -> None:  # type: ignore[no-untyped-def]
    planner = get(shared_client, demo_users, "/").text
    assert 'href="/planner?lang=zh"' in planner and 'href="/screen?lang=zh"' in planner
    worker = get(shared_client, demo_users, "/", role="gridworker").text
    assert "/planner" not in worker and "/screen" not in worker
