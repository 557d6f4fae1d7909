"""The planners' analytics API on a real PostGIS holding 120 days of demo cases (the statistics
themselves: tests/gis/test_hotspots.py and tests/gis/test_emerging.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.db.embedded import EmbeddedPostgres
from app.db.engine import make_engine
from app.settings import Settings
from tests.conftest import _clone, bearer

ZONE = ZoneInfo("Asia/Shanghai")
TODAY = dt.datetime.now(ZONE).date()
DISTRICT = "120106"
STREET = "120106001"
OTHER_STREET = "120106002"
BINS = {-3, -2, -1, 0, 1, 2, 3}


@pytest.fixture(scope="module")
def world(
    pg: EmbeddedPostgres, activity_template: str, demo_users: dict[str, Any], tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    from app.main import create_app

    for url in _clone(pg, activity_template):
        engine = make_engine(url)
        settings = Settings(database_url=url, var_dir=Path(tmp_path_factory.mktemp("var")))
        with TestClient(create_app(settings)) as client:
            yield {"engine": engine, "client": client, "users": demo_users}
        engine.dispose()


def get(world: dict[str, Any], path: str, role: str = "district_commander", **params: Any) -> Any:
    token = world["users"][role]["token"]
    return world["client"].get(f"/api/v1/analytics/{path}", params=params, headers=bearer(token))


def cases_between(
    engine: Engine, start: dt.date, end: dt.date, where: str = "true", **p: Any
) -> int:
    since = dt.datetime.combine(start, dt.time(), ZONE)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), ZONE)
    with engine.connect() as conn:
        return conn.execute(
            text(f"SELECT count(*) FROM incident i WHERE i.reported_at >= :s "
                 f"AND i.reported_at < :u AND {where}"),
            {"s": since, "u": until, **p},
        ).scalar_one()  # fmt: skip


def window(days: int = 28) -> dict[str, str]:
    return {"from": (TODAY - dt.timedelta(days=days - 1)).isoformat(), "to": TODAY.isoformat()}


def test_hot_spots_of_the_grids_carry_gi_z_p_and_bin(world) -> None:  # type: ignore[no-untyped-def]
    got = get(world, "hotspots", region=DISTRICT, **window())
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/geo+json")
    body = got.json()
    assert body["type"] == "FeatureCollection" and body["reason"] is None
    assert body["method"] == "gi" and body["level"] == "grid" and body["fdr"] is True
    features = body["features"]
    assert len(features) == 992
    props = [f["properties"] for f in features]
    # Every case of the window is counted once, in its grid.
    expected = cases_between(world["engine"], TODAY - dt.timedelta(days=27), TODAY)
    assert body["total"] == expected == sum(p["count"] for p in props)
    assert all(p["gi_bin"] in BINS and 0 <= p["gi_p"] <= 1 for p in props)
    # A bin's sign is its z's, and the demo's planted hot spots come out at 99 %.
    assert all((p["gi_bin"] > 0) == (p["gi_z"] > 0) for p in props if p["gi_bin"])
    hot = [p for p in props if p["gi_bin"] == 3]
    assert hot, "the demo district's hot spots were not found"
    mean = body["total"] / 992
    assert sum(p["count"] for p in hot) / len(hot) > 2 * mean
    assert features[0]["geometry"]["type"] in ("Polygon", "MultiPolygon")


def test_rates_per_resident_and_km2_at_street_level(world) -> None:  # type: ignore[no-untyped-def]
    body = get(world, "hotspots", region=DISTRICT, level="street", **window()).json()
    assert len(body["features"]) == 10
    with world["engine"].connect() as conn:
        people = dict(conn.execute(text(
            "SELECT r.code, r.population FROM region r JOIN boundary_version v ON v.id = "
            "r.version_id AND v.is_active WHERE r.level = 'street'")).all())  # fmt: skip
    for f in body["features"]:
        p = f["properties"]
        assert p["per_1000"] == pytest.approx(p["count"] / people[p["code"]] * 1000)
        assert p["per_km2"] == pytest.approx(p["count"] / p["area_km2"])
    rated = get(world, "hotspots", region=DISTRICT, measure="per_1000", **window()).json()
    assert rated["measure"] == "per_1000" and len(rated["features"]) == 992


def test_local_moran_clusters_and_a_distance_band(world) -> None:  # type: ignore[no-untyped-def]
    body = get(world, "hotspots", region=DISTRICT, method="moran", **window()).json()
    clusters = [f["properties"]["moran_cluster"] for f in body["features"]]
    assert set(clusters) <= {"HH", "LL", "HL", "LH", ""}
    assert "HH" in clusters and body["permutations"] == 999
    band = get(world, "hotspots", region=DISTRICT, distance_m=400, **window()).json()
    assert band["weights"] == "distance band 400 m"
    assert any(f["properties"]["gi_bin"] == 3 for f in band["features"])


def test_a_class_filter_counts_only_that_class(world) -> None:  # type: ignore[no-untyped-def]
    start = TODAY - dt.timedelta(days=27)
    with world["engine"].connect() as conn:
        major = conn.execute(text(
            "SELECT left(i.class_code, 3) FROM incident i GROUP BY 1 ORDER BY count(*) DESC "
            "LIMIT 1")).scalar_one()  # fmt: skip
    body = get(world, "hotspots", region=DISTRICT, **{"class": major.lower()}, **window()).json()
    expected = cases_between(world["engine"], start, TODAY, "i.class_code LIKE :c", c=major + "%")
    assert body["class"] == major and body["total"] == expected
    assert 0 < expected < cases_between(world["engine"], start, TODAY)


def test_a_street_commander_sees_their_street_only(world) -> None:  # type: ignore[no-untyped-def]
    mine = get(world, "hotspots", role="street_commander", **window()).json()
    assert mine["region"] == STREET
    assert mine["features"] and all(f["id"].startswith(STREET) for f in mine["features"])
    other = get(world, "hotspots", role="street_commander", region=OTHER_STREET)
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    assert get(world, "hotspots", role="gridworker").status_code == 403


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("hotspots", {"level": "town"}, "level"),
        ("hotspots", {"class": "X9999"}, "class"),
        ("series", {"class": "E99"}, "class"),
        ("hotspots", {"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ("hotspots", {"from": "2020-01-01", "to": "2026-03-01"}, "from"),
        ("hotspots", {"from": "yesterday"}, "from"),
        ("hotspots", {"to": "0001-01-01"}, "to"),
        ("compare", {"from": "9999-12-31", "to": "9999-12-31"}, "to"),
        ("emerging", {"to": "0001-01-03"}, "to"),
        ("hotspots", {"method": "kriging"}, "method"),
        ("hotspots", {"measure": "per_household"}, "measure"),
        ("hotspots", {"distance_m": "-5"}, "distance_m"),
        ("hotspots", {"permutations": "100000"}, "permutations"),
        ("hotspots", {"region": "12010x"}, "region"),
        ("emerging", {"weeks": "1"}, "weeks"),
        ("emerging", {"level": "province"}, "level"),
        ("series", {"period": "year"}, "period"),
        ("compare", {"class": "nope"}, "class"),
        ("density", {"bandwidth_m": "0"}, "bandwidth_m"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(world, path, params, field) -> None:  # type: ignore[no-untyped-def]
    got = get(world, path, **params)
    assert got.status_code == 422, got.text
    assert got.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in got.json()["errors"]]


def test_too_many_series_rows_is_a_422_that_points_to_exports(world) -> None:  # type: ignore[no-untyped-def]
    got = get(world, "series", region=DISTRICT, level="grid", period="day", **window(365))
    assert got.status_code == 422
    assert got.json()["errors"][0]["field"] == "period" and "export" in got.json()["detail"]


@pytest.mark.parametrize("path", ["hotspots", "emerging", "series", "compare", "density"])
def test_a_period_without_cases_is_empty_with_a_reason(world, path) -> None:  # type: ignore[no-untyped-def]
    params = {"from": "2001-01-01", "to": "2001-03-31"} if path != "emerging" else {}
    if path == "emerging":
        params = {"to": "2001-03-31", "weeks": 8}
    got = get(world, path, region=DISTRICT, **params)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["total"] == 0 and "no cases" in body["reason"]
    rows = body.get("features", body.get("series", body.get("cells")))
    assert rows == []


def test_emerging_hot_spots_classify_every_grid(world) -> None:  # type: ignore[no-untyped-def]
    from gis.emerging import CATEGORIES

    got = get(world, "emerging", region=DISTRICT, weeks=8)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["weeks"] == 8 and len(body["features"]) == 992
    categories = [f["properties"]["category"] for f in body["features"]]
    assert set(categories) <= set(CATEGORIES)
    assert sum(body["categories"].values()) == 992
    # The demo's hot spots have been hot all along: persistent (or steadier) hot spots exist.
    assert any(c.endswith("hot spot") for c in categories)
    since = TODAY - dt.timedelta(days=8 * 7 - 1)
    assert body["total"] == cases_between(world["engine"], since, TODAY)


def test_series_per_street_and_week_with_every_week(world) -> None:  # type: ignore[no-untyped-def]
    start = TODAY - dt.timedelta(days=TODAY.weekday() + 21)  # a Monday, four weeks ago
    params = {"from": start.isoformat(), "to": TODAY.isoformat()}
    body = get(world, "series", region=DISTRICT, level="street", period="week", **params).json()
    rows = body["series"]
    assert len(rows) == 10 * 4 and {r["start"][:10] for r in rows} == {
        (start + dt.timedelta(days=7 * k)).isoformat() for k in range(4)
    }
    assert sum(r["count"] for r in rows) == body["total"]
    assert body["total"] == cases_between(world["engine"], start, TODAY)
    assert all(r["name"] and r["per_1000"] is not None for r in rows)


def test_compare_this_period_with_the_last(world) -> None:  # type: ignore[no-untyped-def]
    body = get(world, "compare", region=DISTRICT, level="street", **window(14)).json()
    assert body["previous_from"] == (TODAY - dt.timedelta(days=27)).isoformat()
    engine = world["engine"]
    assert body["total"] == cases_between(engine, TODAY - dt.timedelta(days=13), TODAY)
    assert body["previous_total"] == cases_between(
        engine, TODAY - dt.timedelta(days=27), TODAY - dt.timedelta(days=14)
    )
    for f in body["features"]:
        p = f["properties"]
        assert p["change"] == p["count"] - p["previous"]
        assert isinstance(p["significant"], bool) and 0 <= p["p"] <= 1


def test_density_cells_lie_in_the_district_and_peak_where_cases_are(world) -> None:  # type: ignore[no-untyped-def]
    body = get(world, "density", region=DISTRICT, bandwidth_m=300, **window()).json()
    cells = body["cells"]
    assert cells and body["unit"] == "cases per km²"
    assert all(39.1 < lat < 39.25 and 117.08 < lon < 117.23 for lat, lon, _ in cells)
    assert max(d for _, _, d in cells) == body["max"] > 0
