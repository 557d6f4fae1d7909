"""Whistles (街道吹哨、部门报到): one whistle's whole loop on a controlled clock, the evaluation
it feeds, and the API's rules and refusals — on a real PostGIS."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pyproj import Geod
from sqlalchemy import text

from app.api.whistles import evaluate_period
from app.db.engine import make_engine
from app.services import identity
from app.services import incidents as cases
from app.services import whistles as service
from app.services.locate import LocateService
from app.services.scoping import scope_for
from app.settings import Settings
from tests.conftest import bearer, point_inside

GRID = "120106001001001"  # inside the first street and community: every demo user's home
STREET = "120106001"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 10, 12, 9, 0, tzinfo=SHANGHAI)  # a Monday of a month long past
GEOD = Geod(ellps="WGS84")


def h(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def moved(x: float, y: float, metres: float) -> tuple[float, float]:
    """A point ``metres`` due east (CGCS2000 ≈ WGS84 here)."""
    lon, lat, _ = GEOD.fwd(x, y, 90, metres)
    return lon, lat


@pytest.fixture
def world(demo_db: str, demo_users: dict[str, Any]) -> Iterator[dict[str, Any]]:
    engine = make_engine(demo_db)
    locator = LocateService(engine, metric_crs="EPSG:4548")
    locator.refresh()
    for code in ("hq-housing", "hq-cityman-001", "hq-politics"):
        identity.add_user(engine, f"officer-{code}", role="department_officer",
                          region="120106", department=code)  # fmt: skip
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
    yield {"engine": engine, "locator": locator, "x": x, "y": y, "url": demo_db,
           "users": demo_users}  # fmt: skip
    locator.stop()
    engine.dispose()


def who(world: dict[str, Any], name: str) -> tuple[Any, Any]:
    """The principal and scope of a user, as the API would make them."""
    with world["engine"].connect() as conn:
        row = conn.execute(
            text("SELECT s.id, s.name, s.role, s.region_code, d.code AS department, "
                 "s.display_name FROM staff s LEFT JOIN department d ON d.id = s.department_id "
                 "WHERE s.name = :n"), {"n": name},
        ).one()  # fmt: skip
        principal = identity.Principal(row.id, row.name, row.role, row.region_code,
                                       row.department, row.display_name)  # fmt: skip
        return principal, scope_for(conn, principal)


def do(world: dict[str, Any], name: str, whistle: int, action: str, at: dt.datetime,
       **fields: Any) -> int | None:  # fmt: skip
    principal, reach = who(world, name)
    return service.act(world["engine"], world["locator"], principal, reach, whistle,
                       service.WhistleAction(action, **fields), now=at)  # fmt: skip


def state(world: dict[str, Any], whistle: int) -> dict[str, Any]:
    with world["engine"].connect() as conn:
        w = dict(conn.execute(text("SELECT * FROM whistle WHERE id = :w"),
                              {"w": whistle}).mappings().one())  # fmt: skip
        w["parties"] = {(p["department_code"] or p["staff_name"]): p
                        for p in service._parties(conn, whistle)}  # fmt: skip
        w["history"] = [r.action for r in conn.execute(
            text("SELECT action FROM whistle_history WHERE whistle_id = :w ORDER BY id"),
            {"w": whistle})]  # fmt: skip
    return w


def case_status(world: dict[str, Any], case: int) -> tuple[str, str | None]:
    with world["engine"].connect() as conn:
        row = conn.execute(text("SELECT status, department_code FROM incident WHERE id = :i"),
                           {"i": case}).one()  # fmt: skip
    return row.status, row.department_code


def test_one_whistle_from_blowing_to_evaluation_on_a_controlled_clock(world) -> None:  # type: ignore[no-untyped-def]
    engine, x, y = world["engine"], world["x"], world["y"]
    commander = "demo-street-commander"
    police, housing = "demo-department-officer", "officer-hq-housing"
    # A gridworker's report, then the street blows for it.
    gw, gw_reach = who(world, "demo-gridworker")
    case = cases.report_incident(
        engine, world["locator"], gw, gw_reach,
        cases.Report(x, y, "cgcs2000", "S0101", "patrol", "群租房 group rental"),
        photo_dir=Path("unused"), now=h(-1),
    ).id  # fmt: skip
    principal, reach = who(world, commander)
    first, created = service.blow(
        engine, world["locator"], principal, reach,
        service.BlowRequest(
            level="street", situation_code="MD01", title="群租房整治", grade="yellow",
            incidents=[case], parties=[
                service.PartyIn("lead", department="hq-police-001"),
                service.PartyIn("co", department="hq-housing"),
                service.PartyIn("co", department="hq-cityman-001"),
                service.PartyIn("notified", department="hq-fire"),
            ],
        ),
        now=T0,
    )  # fmt: skip
    assert created
    w = state(world, first)
    assert (w["status"], w["level"], w["region_code"], w["grid_code"]) == (
        "blown", "street", STREET, GRID)  # fmt: skip
    assert (w["report_due_at"], w["resolve_due_at"]) == (h(2), h(72))  # yellow: 2 h / 3 days
    assert case_status(world, case) == ("dispatched", "hq-police-001")

    # The lead acknowledges and checks in 50 m away; its case is accepted.
    do(world, police, first, "acknowledge", h(1 / 6))
    do(world, police, first, "check_in", h(2 / 3), lon=moved(x, y, 50)[0],
       lat=moved(x, y, 50)[1], crs="cgcs2000")  # fmt: skip
    w = state(world, first)
    assert w["status"] == "responding"
    lead = w["parties"]["hq-police-001"]
    assert lead["status"] == "on_site" and not lead["checkin_far"]
    assert lead["checkin_distance_m"] == pytest.approx(50, abs=1)
    assert case_status(world, case)[0] == "handling"

    # Three hours on, housing and city management never came: supervision opens a record
    # each, once however often it runs, and tells the supervision office, them and the street.
    assert service.supervise(engine, now=h(3))["opened"] == 2
    assert service.supervise(engine, now=h(3.5))["opened"] == 0
    with engine.connect() as conn:
        records = conn.execute(text(
            "SELECT d.code, v.step, v.closed_at FROM supervision v JOIN whistle_party p "
            "ON p.id = v.party_id JOIN department d ON d.id = p.department_id ORDER BY d.code"
        )).all()  # fmt: skip
        told = conn.execute(text(
            "SELECT coalesce(recipient_role, d.code) FROM notification n LEFT JOIN department d "
            "ON d.id = n.recipient_department_id WHERE n.whistle_id = :w"), {"w": first},
        ).scalars().all()  # fmt: skip
    assert [(r.code, r.step, r.closed_at) for r in records] == [
        ("hq-cityman-001", "report", None), ("hq-housing", "report", None)]  # fmt: skip
    assert sorted(told) == sorted(["supervisor", "hq-housing", "street_commander"] * 1 +
                                  ["supervisor", "hq-cityman-001", "street_commander"])  # fmt: skip
    w = state(world, first)
    assert w["report_overdue"] and w["parties"]["hq-housing"]["report_overdue"]
    assert w["history"].count("overdue") == 2

    # Housing arrives late and 800 m off: flagged; its record closes on the next pass.
    do(world, housing, first, "check_in", h(4), lon=moved(x, y, 800)[0],
       lat=moved(x, y, 800)[1], crs="cgcs2000")  # fmt: skip
    assert state(world, first)["parties"]["hq-housing"]["checkin_far"] is True
    assert service.supervise(engine, now=h(4.1))["closed"] == 1

    # Past the 3 days nothing is resolved: resolve-overdue records, then a second whistle.
    assert service.supervise(engine, now=h(80))["opened"] == 3  # police, housing, cityman
    second = do(world, commander, first, "escalate", h(81), note="部门未按期办结 not resolved")
    assert second is not None
    w1, w2 = state(world, first), state(world, second)
    assert w1["status"] == "escalated" and w1["ended_at"] == h(81)
    assert (w2["level"], w2["parent_id"], w2["status"]) == ("district", first, "blown")
    assert w2["region_code"] == "120106" and (w2["report_due_at"], w2["resolve_due_at"]) == (
        h(83), h(81 + 72))  # fmt: skip
    assert {k: p["role"] for k, p in w2["parties"].items()} == {
        "hq-police-001": "lead", "hq-housing": "co", "hq-cityman-001": "co",
        "demo-district-commander": "notified"}  # fmt: skip
    with engine.connect() as conn:
        still_open = conn.execute(text("SELECT count(*) FROM supervision WHERE whistle_id = :w "
                                       "AND closed_at IS NULL"), {"w": first}).scalar()  # fmt: skip
    assert still_open == 0

    # The district's whistle: both come on time; the street may not close it, and the district
    # may not close it before the co-handler on site confirms.
    for name in (police, housing):
        do(world, name, second, "check_in", h(82), lon=x, lat=y, crs="cgcs2000")
    do(world, police, second, "resolve", h(90), note="已整治 done")
    assert state(world, second)["status"] == "resolved"
    assert case_status(world, case)[0] == "handled"
    with pytest.raises(cases.IncidentError) as refused:
        do(world, commander, second, "close", h(90.2))
    assert refused.value.status == 403
    with pytest.raises(cases.IncidentError) as early:
        do(world, "demo-district-commander", second, "close", h(90.3))
    assert early.value.status == 409 and "hq-housing (co) has not confirmed" in early.value.detail
    do(world, housing, second, "confirm", h(90.5))
    do(world, "demo-district-commander", second, "close", h(91), note="核查通过")
    do(world, "demo-district-commander", second, "feedback", h(92), feedback="satisfied")
    w2 = state(world, second)
    assert (w2["status"], w2["closed_at"], w2["feedback_score"]) == ("closed", h(91), 100.0)
    assert case_status(world, case)[0] == "closed"
    assert w2["history"] == ["blow", "check_in", "check_in", "resolve", "confirm", "close",
                             "feedback"]  # fmt: skip
    with engine.connect() as conn:
        case_steps = conn.execute(text(
            "SELECT action FROM incident_history WHERE incident_id = :i ORDER BY id"),
            {"i": case}).scalars().all()  # fmt: skip
    assert case_steps == ["report", "file", "dispatch", "accept", "complete", "verify", "close"]

    # The street rates housing down, with a reason; then the evaluation of October.
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO street_rating (period, street_code, department_id, deductions, rated_at) "
            "SELECT '2026-10', :s, id, CAST(:d AS jsonb), now() FROM department "
            "WHERE code = 'hq-housing'"),
            {"s": STREET, "d": '[{"points": 10, "reason": "迟到且未到现场 late"}]'})  # fmt: skip
    with engine.connect() as conn:
        ev = evaluate_period(conn, "2026-10", Settings())
    got = {d.department_code: d for d in ev.departments}
    assert set(got) == {"hq-police-001", "hq-housing", "hq-cityman-001"}  # not the notified
    # police: arrivals 2/2 on time, resolutions 1/2 (the first whistle's lapsed) → 75;
    # satisfaction 100 (the second whistle's); perceived 100 → .5*75 + .2*100 + .3*100 = 87.5
    # housing: arrivals 1/2, confirmations 1/2 → 50; 100; 90 → 25 + 20 + 27 = 72
    # city management: nothing on time → 0; 100; 100 → 0 + 20 + 30 = 50
    assert [(d.department_code, d.completion, d.perceived, d.score, d.rank, d.tier)
            for d in ev.departments] == [
        ("hq-police-001", 75.0, 100.0, 87.5, 1, "excellent"),
        ("hq-housing", 50.0, 90.0, 72.0, 2, "excellent"),
        ("hq-cityman-001", 0.0, 100.0, 50.0, 3, "good"),
    ]  # fmt: skip
    assert got["hq-police-001"].satisfaction == 100.0
    assert got["hq-police-001"].annual_points == pytest.approx(43.75)  # 50 % of 87.5


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture
def api(world, client_for) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    client: TestClient = client_for(world["url"], token=None)
    tokens = {role: u["token"] for role, u in world["users"].items()}
    for code in ("hq-housing", "hq-politics"):
        tokens[code] = identity.create_token(world["engine"], f"officer-{code}")
    return {**world, "client": client, "tokens": tokens}


def as_(api: dict[str, Any], who: str) -> dict[str, str]:
    return bearer(api["tokens"][who])


def blow(api: dict[str, Any], who: str = "street_commander", **body: Any) -> Any:
    payload = {"level": "street", "situation_code": "MD01", "title": "群租房",
               "place": {"lon": api["x"], "lat": api["y"], "crs": "cgcs2000"},
               "parties": [{"role": "lead", "department": "hq-police-001"},
                           {"role": "co", "department": "hq-housing"}], **body}  # fmt: skip
    return api["client"].post("/api/v1/whistles", json=payload, headers=as_(api, who))


def act(api: dict[str, Any], who: str, whistle: int, **body: Any) -> Any:
    return api["client"].post(f"/api/v1/whistles/{whistle}/actions", json=body,
                              headers=as_(api, who))  # fmt: skip


def test_the_proposal_comes_from_the_situation_and_the_place(api) -> None:  # type: ignore[no-untyped-def]
    got = api["client"].get(
        "/api/v1/whistles/proposal", headers=as_(api, "street_commander"),
        params={"situation": "MD01", "lon": api["x"], "lat": api["y"], "crs": "cgcs2000"},
    )  # fmt: skip
    assert got.status_code == 200, got.text
    body = got.json()
    roles = {p["code"]: p["role"] for p in body["parties"]}
    # 群租房: political-legal leads; police, housing, emergency, fire co-handle — and the police
    # is the station serving this street, not the district bureau.
    assert roles == {"hq-politics": "lead", "hq-police-001": "co", "hq-housing": "co",
                     "hq-emergency": "co", "hq-fire": "co"}  # fmt: skip
    made = blow(api, parties=None)
    assert made.status_code == 201, made.text
    assert {p["department_code"]: p["role"] for p in made.json()["parties"]} == roles
    unknown = api["client"].get("/api/v1/whistles/proposal", headers=as_(api, "street_commander"),
                                params={"situation": "MD1", "lon": api["x"], "lat": api["y"],
                                        "crs": "cgcs2000"})  # fmt: skip
    assert unknown.status_code == 422 and "MD01" in unknown.json()["nearest_codes"]


def test_only_the_roles_that_may_blow_can_and_only_at_their_level(api) -> None:  # type: ignore[no-untyped-def]
    for role in ("gridworker", "department_officer", "supervisor", "screen", "planner"):
        refused = blow(api, role)
        assert refused.status_code == 403, role
    wrong_level = blow(api, "community_officer")  # a street whistle from a community
    assert wrong_level.status_code == 403
    assert "community" in wrong_level.json()["detail"]
    community = blow(api, "community_officer", level="community",
                     parties=[{"role": "lead", "staff": "demo-gridworker"}])  # fmt: skip
    assert community.status_code == 201, community.text
    assert community.json()["region_code"] == GRID[:12]
    # Only in their own area: another street's commander cannot blow here.
    identity.add_user(api["engine"], "sc-2", role="street_commander", region="120106002")
    api["tokens"]["sc-2"] = identity.create_token(api["engine"], "sc-2")
    elsewhere = blow(api, "sc-2")
    assert elsewhere.status_code == 403 and elsewhere.json()["type"].endswith("outside-scope")


def test_bad_blows_are_refused_naming_the_field(api) -> None:  # type: ignore[no-untyped-def]
    cases_ = [
        ({"situation_code": "XX99"}, "situation_code"),
        ({"grade": "purple"}, "grade"),
        ({"title": ""}, "title"),
        ({"place": {"lon": 200, "lat": 39.1}}, "place.lon"),
        ({"place": {"lon": api["x"], "lat": api["y"], "crs": "mars"}}, "crs"),
        ({"place": None, "incidents": []}, "place"),
        ({"incidents": [999999]}, "incidents"),
        ({"parties": [{"role": "co", "department": "hq-housing"}]}, "parties"),
        ({"parties": [{"role": "lead", "department": "hq-nowhere"}]}, "parties[0].department"),
        ({"parties": [{"role": "lead", "staff": "nobody"}]}, "parties[0].staff"),
        ({"parties": [{"role": "boss", "department": "hq-housing"}]}, "parties.0.role"),
        ({"place": {"polygon": [[[117.1, 39.1], [117.2, 39.2], [117.1, 39.2], [117.2, 39.1],
                                 [117.1, 39.1]]]}}, "place.polygon"),
    ]  # fmt: skip
    for body, field in cases_:
        got = blow(api, **body)
        assert got.status_code == 422, (body, got.text)
        fields = [e["field"] for e in got.json()["errors"]]
        assert any(f.startswith(field) or field in f for f in fields), (body, fields)
    with api["engine"].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM whistle")).scalar() == 0


def test_a_polygon_place_and_a_retry_with_the_same_key(api) -> None:  # type: ignore[no-untyped-def]
    x, y = api["x"], api["y"]
    d = 0.0004
    ring = [[x - d, y - d], [x + d, y - d], [x + d, y + d], [x - d, y + d], [x - d, y - d]]
    key = {"Idempotency-Key": "whistle-7"}
    body = {"level": "street", "situation_code": "ZF01", "title": "违建", "place":
            {"polygon": [ring], "crs": "cgcs2000"}}  # fmt: skip
    first = api["client"].post("/api/v1/whistles", json=body,
                               headers={**as_(api, "street_commander"), **key})  # fmt: skip
    again = api["client"].post("/api/v1/whistles", json=body,
                               headers={**as_(api, "street_commander"), **key})  # fmt: skip
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["place"]["type"] == "Polygon"
    assert first.json()["grid_code"] == GRID


def test_check_in_rules_close_rules_and_the_list(api) -> None:  # type: ignore[no-untyped-def]
    made = blow(api)
    assert made.status_code == 201, made.text
    w = made.json()["id"]
    # A department that is not addressed may see it (its service area holds the place) but not
    # check in; nothing changes.
    politics = act(api, "hq-politics", w, action="check_in", lon=api["x"], lat=api["y"],
                   crs="cgcs2000")  # fmt: skip
    assert politics.status_code == 403
    assert politics.json()["errors"][0]["field"] == "action"
    assert "addressed" in politics.json()["detail"]
    # Another street's station neither sees it nor acts on it.
    identity.add_user(api["engine"], "officer-p2", role="department_officer", region="120106",
                      department="hq-police-002")  # fmt: skip
    api["tokens"]["p2"] = identity.create_token(api["engine"], "officer-p2")
    assert api["client"].get(f"/api/v1/whistles/{w}", headers=as_(api, "p2")).status_code == 404
    gridworker = act(api, "gridworker", w, action="check_in", lon=api["x"], lat=api["y"],
                     crs="cgcs2000")  # fmt: skip
    assert gridworker.status_code == 403
    assert gridworker.json()["errors"][0]["field"] == "action"
    no_place = act(api, "department_officer", w, action="check_in")
    assert no_place.status_code == 422 and no_place.json()["errors"][0]["field"] == "lon"
    there = act(api, "department_officer", w, action="check_in", lon=api["x"], lat=api["y"],
                crs="cgcs2000")  # fmt: skip
    assert there.status_code == 200, there.text
    assert "resolve" in there.json()["allowed_actions"]
    # Closing before the lead has resolved: 409 naming what is missing.
    early = act(api, "street_commander", w, action="close")
    assert early.status_code == 409
    assert early.json()["missing"] == ["hq-police-001 (lead) has not resolved"]
    assert "hq-police-001 (lead) has not resolved" in early.json()["detail"]
    mine = api["client"].get(f"/api/v1/whistles/{w}", headers=as_(api, "street_commander"))
    assert mine.json()["allowed_actions"] == ["progress", "escalate", "cancel"]
    resolved = act(api, "department_officer", w, action="resolve", note="done")
    assert resolved.json()["status"] == "resolved"
    # A cancel after someone came is refused; closing now works (housing never came).
    assert act(api, "street_commander", w, action="cancel", note="x").status_code == 409
    bad_feedback = act(api, "street_commander", w, action="feedback", feedback="great")
    assert bad_feedback.status_code == 409  # not closed yet
    closed = act(api, "street_commander", w, action="close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    bad_feedback = act(api, "street_commander", w, action="feedback", feedback="great")
    assert bad_feedback.status_code == 422
    assert bad_feedback.json()["errors"][0]["field"] == "feedback"
    stars = act(api, "street_commander", w, action="feedback", feedback=4)
    assert stars.json()["feedback_score"] == 75.0
    unknown = act(api, "street_commander", w, action="dance")
    assert unknown.status_code == 422
    # The list, its filters and GeoJSON; the map data has the check-in line.
    other = blow(api, grade="red").json()["id"]
    listed = api["client"].get("/api/v1/whistles", headers=as_(api, "street_commander")).json()
    assert [i["id"] for i in listed["items"]] == [other, w]
    red = api["client"].get("/api/v1/whistles", params={"grade": "red"},
                            headers=as_(api, "street_commander")).json()  # fmt: skip
    assert [i["id"] for i in red["items"]] == [other]
    closed_only = api["client"].get("/api/v1/whistles", params={"status": "closed"},
                                    headers=as_(api, "screen")).json()  # fmt: skip
    assert [i["id"] for i in closed_only["items"]] == [w]
    geo = api["client"].get("/api/v1/whistles", params={"format": "geojson"},
                            headers=as_(api, "screen")).json()  # fmt: skip
    assert {f["properties"]["grade"] for f in geo["features"]} == {"red", "yellow"}
    shown = api["client"].get("/api/v1/whistles-map", headers=as_(api, "screen")).json()
    kinds = sorted(f["properties"]["kind"] for f in shown["features"])
    assert kinds == ["check_in", "whistle", "whistle"]
    line = next(f for f in shown["features"] if f["properties"]["kind"] == "check_in")
    assert line["geometry"]["type"] == "LineString"
    assert line["properties"]["department"] == "hq-police-001"
    one = api["client"].get(f"/api/v1/whistles/{w}", headers=as_(api, "department_officer"))
    assert [h["action"] for h in one.json()["history"]] == [
        "blow", "check_in", "resolve", "close", "feedback"]  # fmt: skip
    bad = api["client"].get("/api/v1/whistles", params={"grade": "purple"},
                            headers=as_(api, "screen"))  # fmt: skip
    assert bad.status_code == 422


def test_two_departments_acting_at_once_keep_the_state_whole(api) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        w = blow(api).json()["id"]
        barrier = threading.Barrier(2)
        answers: list[int] = []

        def check_in(
            who: str, w: int = w, barrier: threading.Barrier = barrier, answers: list[int] = answers
        ) -> None:
            barrier.wait()
            answers.append(act(api, who, w, action="check_in", lon=api["x"], lat=api["y"],
                               crs="cgcs2000").status_code)  # fmt: skip

        threads = [threading.Thread(target=check_in, args=(who,))
                   for who in ("department_officer", "hq-housing")]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert answers == [200, 200]
        got = api["client"].get(f"/api/v1/whistles/{w}", headers=as_(api, "screen")).json()
        assert got["status"] == "responding" and got["version"] == 3
        assert all(p["status"] == "on_site" for p in got["parties"])
        assert [h["action"] for h in got["history"]] == ["blow", "check_in", "check_in"]


def test_ratings_need_a_reason_for_every_deduction(api) -> None:  # type: ignore[no-untyped-def]
    url = f"/api/v1/evaluations/2026-10/ratings/{STREET}/hq-housing"
    headers = as_(api, "street_commander")
    blank = api["client"].put(url, json={"deductions": [{"points": 5, "reason": "  "}]},
                              headers=headers)  # fmt: skip
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "deductions[0].reason"
    missing = api["client"].put(url, json={"deductions": [{"points": 5}]}, headers=headers)
    assert missing.status_code == 422
    assert "reason" in missing.json()["errors"][0]["field"]
    ok = api["client"].put(url, json={"deductions": [{"points": 5, "reason": "迟到 late"}]},
                           headers=headers)  # fmt: skip
    assert ok.status_code == 200 and ok.json()["perceived"] == 95
    other = api["client"].put("/api/v1/evaluations/2026-10/ratings/120106002/hq-housing",
                              json={"deductions": []}, headers=headers)  # fmt: skip
    assert other.status_code == 404  # not the commander's street
    for period in ("2026-13", "0000", "2026-Q5", "26-10"):
        bad_period = api["client"].get(f"/api/v1/evaluations/{period}", headers=headers)
        assert bad_period.status_code == 422, period
        assert bad_period.json()["errors"][0]["field"] == "period"
    csv = api["client"].get("/api/v1/evaluations/2026-10", params={"format": "csv"},
                            headers=headers)  # fmt: skip
    assert csv.status_code == 200 and csv.text.startswith("\ufeffperiod,")


def test_the_scheduler_started_with_the_app_opens_supervision(api, client_for) -> None:  # type: ignore[no-untyped-def]
    principal, reach = who(api, "demo-street-commander")
    late, _ = service.blow(
        api["engine"], api["locator"], principal, reach,
        service.BlowRequest(level="street", situation_code="MD01", title="old",
                            place=service.Place(api["x"], api["y"], crs="cgcs2000"),
                            parties=[service.PartyIn("lead", department="hq-police-001")]),
        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),
    )  # fmt: skip
    client = client_for(api["url"], token=None, settings={"supervision_interval_s": 0.2})
    for _ in range(100):
        records = client.get("/api/v1/supervisions", headers=as_(api, "supervisor")).json()
        if records:
            break
        threading.Event().wait(0.1)
    assert [(r["whistle_id"], r["party"], r["step"]) for r in records] == [
        (late, "hq-police-001", "report")]  # fmt: skip
    told = api["client"].get("/api/v1/notifications", headers=as_(api, "supervisor")).json()
    assert told and told[0]["whistle_id"] == late
