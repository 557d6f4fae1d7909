"""Incidents: intake located onto the grid, the case loop's transition table with its roles,
history, concurrency, deadlines, scope, queries and duplicates."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import identity
from app.services import incidents as service
from gis.crs import wgs84_to_gcj02
from tests.conftest import bearer, point_inside

GRID = "120106001001001"  # inside every demo user's home region
CLASS = "E0101"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


@pytest.fixture
def world(demo_db: str, client_for, demo_users) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
        x2, y2 = point_inside(conn, "120106002001001")
    client = client_for(demo_db, token=None)
    yield {"engine": engine, "client": client, "users": dict(demo_users), "point": (x, y),
           "other_street_point": (x2, y2)}  # fmt: skip
    engine.dispose()


def as_(world: dict[str, Any], role: str) -> dict[str, str]:
    return bearer(world["users"][role]["token"])


def report(world: dict[str, Any], role: str = "gridworker", **body: Any) -> Any:
    x, y = world["point"]
    payload = {"lon": x, "lat": y, "crs": "cgcs2000", "class_code": CLASS, "source": "patrol",
               "description": "垃圾暴露", **body}  # fmt: skip
    return world["client"].post("/api/v1/incidents", json=payload, headers=as_(world, role))


def do(world: dict[str, Any], case: int, action: str, role: str, **body: Any) -> Any:
    return world["client"].post(
        f"/api/v1/incidents/{case}/actions", json={"action": action, **body},
        headers=as_(world, role),
    )  # fmt: skip


def test_a_report_is_located_and_keeps_its_codes_and_boundary_version(world) -> None:  # type: ignore[no-untyped-def]
    made = report(world)
    assert made.status_code == 201, made.text
    case = made.json()
    assert made.headers["location"] == f"/api/v1/incidents/{case['id']}"
    assert case["status"] == "reported" and case["grid_code"] == GRID
    assert case["community_code"] == GRID[:12] and case["street_code"] == GRID[:9]
    assert case["district_code"] == GRID[:6] and case["boundary_version"] == 1
    assert not case["out_of_area"]
    assert [h["action"] for h in case["history"]] == ["report"]
    assert case["history"][0]["actor"] == "demo-gridworker"
    assert case["allowed_actions"] == []  # a gridworker cannot file
    commander = world["client"].get(f"/api/v1/incidents/{case['id']}",
                                     headers=as_(world, "street_commander"))  # fmt: skip
    assert set(commander.json()["allowed_actions"]) == {"file", "reject", "merge"}


def test_a_gcj02_point_is_stored_on_the_grid_its_wgs84_position_lies_in(world) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    gx, gy = wgs84_to_gcj02(np.array([x]), np.array([y]))
    made = report(world, lon=float(gx[0]), lat=float(gy[0]), crs="gcj02")
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["grid_code"] == GRID
    assert case["input"] == {"lon": float(gx[0]), "lat": float(gy[0]), "crs": "gcj02"}
    assert abs(case["lon"] - x) < 1e-6 and abs(case["lat"] - y) < 1e-6
    # The same numbers taken as WGS84 lie ~560 m away: another grid, outside this gridworker's.
    wrong = report(world, lon=float(gx[0]), lat=float(gy[0]), crs="wgs84")
    assert wrong.status_code == 403 and wrong.json()["type"].endswith("outside-scope")
    admin = report(world, "admin", lon=float(gx[0]), lat=float(gy[0]), crs="wgs84").json()
    assert admin["grid_code"] != GRID


def test_a_point_outside_every_grid_is_kept_for_manual_assignment(world) -> None:  # type: ignore[no-untyped-def]
    made = report(world, "district_commander", lon=117.30, lat=39.30, crs="cgcs2000")
    assert made.status_code == 201, made.text
    case = made.json()
    assert case["out_of_area"] and case["grid_code"] is None and case["street_code"] is None
    listed = world["client"].get("/api/v1/incidents", params={"out_of_area": True},
                                 headers=as_(world, "district_commander")).json()  # fmt: skip
    assert [c["id"] for c in listed["items"]] == [case["id"]]
    street = world["client"].get(f"/api/v1/incidents/{case['id']}",
                                 headers=as_(world, "street_commander"))  # fmt: skip
    assert street.status_code == 404  # the district assigns it, not a street


def test_a_retry_with_the_same_key_makes_no_second_case(world) -> None:  # type: ignore[no-untyped-def]
    key = {"Idempotency-Key": "phone-42-report-7"}
    x, y = world["point"]
    body = {"lon": x, "lat": y, "crs": "cgcs2000", "class_code": CLASS, "source": "app",
            "description": "retry me"}  # fmt: skip
    headers = {**as_(world, "gridworker"), **key}
    first = world["client"].post("/api/v1/incidents", json=body, headers=headers)
    again = world["client"].post("/api/v1/incidents", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = world["client"].post("/api/v1/incidents", json={**body, "description": "changed"},
                                 headers=headers)  # fmt: skip
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    with world["engine"].connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    assert count == 1
    # The key is the reporter's own: another user's same key is another case.
    theirs = world["client"].post("/api/v1/incidents", json=body,
                                  headers={**as_(world, "community_officer"), **key})  # fmt: skip
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]


def test_retries_sent_at_once_make_one_case(world) -> None:  # type: ignore[no-untyped-def]
    # A phone on a flaky network resends before the first answer arrives.
    x, y = world["point"]
    body = {"lon": x, "lat": y, "crs": "cgcs2000", "class_code": CLASS, "source": "patrol",
            "description": "sent four times"}  # fmt: skip
    headers = {**as_(world, "gridworker"), "Idempotency-Key": "phone-9-burst"}
    barrier = threading.Barrier(4)
    answers: list[tuple[int, int]] = []

    def send() -> None:
        barrier.wait()
        got = world["client"].post("/api/v1/incidents", json=body, headers=headers)
        answers.append((got.status_code, got.json()["id"]))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [200, 200, 200, 201]
    assert len({case for _, case in answers}) == 1
    with world["engine"].connect() as conn:
        cases = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        rows = conn.execute(text("SELECT count(*) FROM incident_history")).scalar_one()
    assert (cases, rows) == (1, 1)


def test_photos_are_stored_with_their_checksum_and_served_in_scope(world, tmp_path) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    data = {"lon": str(x), "lat": str(y), "crs": "cgcs2000", "class_code": CLASS,
            "source": "patrol", "description": "有照片"}  # fmt: skip
    files = [("photos", ("a.jpg", JPEG, "image/jpeg")), ("photos", ("b.png", PNG, "image/png"))]
    made = world["client"].post("/api/v1/incidents", data=data, files=files,
                                headers=as_(world, "gridworker"))  # fmt: skip
    assert made.status_code == 201, made.text
    photos = made.json()["photos"]
    assert [p["sha256"] for p in photos] == [hashlib.sha256(JPEG).hexdigest(),
                                             hashlib.sha256(PNG).hexdigest()]  # fmt: skip
    assert [p["content_type"] for p in photos] == ["image/jpeg", "image/png"]
    got = world["client"].get(photos[1]["url"], headers=as_(world, "gridworker"))
    assert got.status_code == 200 and got.content == PNG
    assert got.headers["content-type"] == "image/png"
    stored = list((tmp_path / "var" / "photos").rglob("*.*"))
    assert sorted(p.name for p in stored) == sorted(
        [hashlib.sha256(JPEG).hexdigest() + ".jpg", hashlib.sha256(PNG).hexdigest() + ".png"]
    )
    other = world["client"].get(photos[1]["url"], headers=bearer(_street_b_token(world)))
    assert other.status_code == 404


def _street_b_token(world: dict[str, Any]) -> str:
    engine = world["engine"]
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT 1 FROM staff WHERE name = 'cmd-b'")).first()
    if not exists:
        identity.add_user(engine, "cmd-b", role="street_commander", region="120106002")
    return identity.create_token(engine, "cmd-b")


@pytest.mark.parametrize(
    ("files", "status", "kind"),
    [
        ([("photos", ("big.jpg", b"\xff\xd8\xff" + b"\x00" * (64 * 1024), "image/jpeg"))], 413,
         "photo-too-large"),
        ([("photos", ("x.jpg", b"GIF89a" + b"\x00" * 50, "image/jpeg"))], 415, "photo-type"),
        ([("photos", (f"{i}.jpg", JPEG, "image/jpeg")) for i in range(4)], 422,
         "invalid-parameter"),
    ],
)  # fmt: skip
def test_bad_photos_are_refused_and_nothing_is_kept(  # type: ignore[no-untyped-def]
    demo_db, client_for, demo_users, files, status, kind
) -> None:
    client = client_for(demo_db, token=None,
                        settings={"photo_max_bytes": 32 * 1024, "photo_max_count": 3})  # fmt: skip
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
    data = {"lon": str(x), "lat": str(y), "crs": "cgcs2000", "class_code": CLASS,
            "source": "patrol", "description": "x"}  # fmt: skip
    refused = client.post("/api/v1/incidents", data=data, files=files,
                          headers=bearer(demo_users["gridworker"]["token"]))  # fmt: skip
    assert refused.status_code == status, refused.text
    assert refused.json()["type"].endswith(kind)
    assert refused.json()["errors"][0]["field"].startswith("photos")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"class_code": "E0199"}, "class_code", "E01"),
        ({"source": "pigeon"}, "source", "patrol"),
        ({"crs": "mars"}, "crs", "gcj02"),
        ({"lon": 39.17, "lat": 117.16, "crs": "wgs84"}, "lat", "swapped"),
        ({"lon": float("nan")}, "lon", ""),
        ({"description": ""}, "description", ""),
        ({"lon": None}, "lon", ""),
        ({"class_code": "E01\x0001"}, "class_code", "NUL"),
        ({"description": "a\udbebb"}, "description", "description"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(world, change, field, words) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    body = {"lon": x, "lat": y, "crs": "cgcs2000", "class_code": CLASS, "source": "patrol",
            "description": "x", **change}  # fmt: skip
    headers = {**as_(world, "gridworker"), "content-type": "application/json"}
    # json.dumps writes NaN as NaN, as a careless client would.
    refused = world["client"].post("/api/v1/incidents", content=json.dumps(body), headers=headers)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["errors"][0]["field"] == field
    assert words in problem["detail"]
    if words == "E01":
        assert problem["nearest_codes"] and all(
            c.startswith("E01") for c in problem["nearest_codes"][:1]
        )


def test_other_content_types_are_415(world) -> None:  # type: ignore[no-untyped-def]
    refused = world["client"].post("/api/v1/incidents", content="lon=1",
                                   headers={**as_(world, "gridworker"),
                                            "content-type": "text/plain"})  # fmt: skip
    assert refused.status_code == 415


# -- the transition table ----------------------------------------------------------------------

# The path to reach each state from a fresh report, with a role allowed for each step.
PATHS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "reported": [],
    "filed": [("file", "street_commander", {})],
    "dispatched": [("file", "street_commander", {}), ("dispatch", "street_commander", {})],
    "handling": [("file", "street_commander", {}), ("dispatch", "street_commander", {}),
                 ("accept", "department_officer", {})],
    "handled": [("file", "street_commander", {}), ("dispatch", "street_commander", {}),
                ("accept", "department_officer", {}), ("complete", "department_officer", {})],
    "verified": [("file", "street_commander", {}), ("dispatch", "street_commander", {}),
                 ("accept", "department_officer", {}), ("complete", "department_officer", {}),
                 ("verify", "gridworker", {})],
    "parked": [("file", "street_commander", {}), ("park", "district_commander", {})],
}  # fmt: skip


DISPATCHED = ("dispatched", "handling", "handled", "verified")


def case_in(world: dict[str, Any], state: str) -> int:
    """A fresh case in ``state``; once dispatched, it is the demo department officer's."""
    case = report(world).json()["id"]
    department = world["users"]["department_officer"]["department"]
    for action, role, body in PATHS[state]:
        if action == "dispatch":
            body = {"department": department, **body}
        done = do(world, case, action, role, **body)
        assert done.status_code == 200, (state, action, done.text)
    return case


def body_for(world: dict[str, Any], action: str, state: str) -> dict[str, Any]:
    if action == "merge":
        return {"target": report(world).json()["id"]}
    if action == "request_extension":
        return {"amount": 2}
    return {}


def test_every_action_from_every_state_with_every_role(world) -> None:  # type: ignore[no-untyped-def]
    """The whole table: each allowed (state, action, role) succeeds and lands where the table
    says; a role without the permission gets 403, a state the action does not apply in gets 409
    — both naming the actions allowed."""
    checked = 0
    for state in PATHS:
        for action, t in service.TRANSITIONS.items():
            if action in ("approve_extension", "deny_extension"):
                continue  # need a pending request: test_extensions
            for role in identity.ROLES:
                case = case_in(world, state)
                answer = do(world, case, action, role, **body_for(world, action, state))
                may = identity.allowed(role, t.permission)
                if role == "department_officer" and state not in DISPATCHED:
                    # Not addressed to their department: out of scope, as if it did not exist.
                    assert answer.status_code == 404, (state, action, answer.text)
                elif not may:
                    assert answer.status_code == 403, (state, action, role, answer.text)
                    problem = answer.json()
                    if identity.allowed(role, "incidents:act"):  # else refused at the route
                        assert problem["allowed_actions"] == service.allowed_actions(state, role)
                elif state not in t.sources:
                    assert answer.status_code == 409, (state, action, role, answer.text)
                    assert answer.json()["allowed_actions"] == service.allowed_actions(state, role)
                else:
                    assert answer.status_code == 200, (state, action, role, answer.text)
                    after = answer.json()
                    want = t.target or (state if action != "unpark" else "filed")
                    assert after["status"] == want, (state, action, role)
                    assert after["history"][-1]["action"] == action
                    assert after["history"][-1]["from_status"] == state
                    assert after["history"][-1]["actor"] == world["users"][role]["name"]
                checked += 1
    assert checked == len(PATHS) * (len(service.TRANSITIONS) - 2) * len(identity.ROLES)


def test_one_case_through_the_whole_loop_with_rework_return_and_extension(world) -> None:  # type: ignore[no-untyped-def]
    police = world["users"]["department_officer"]["department"]
    case = report(world).json()["id"]
    filed = do(world, case, "file", "street_commander").json()
    assert filed["status"] == "filed"
    # Dispatched to the police by mistake, returned (回退), then routed by class: exposed
    # garbage goes to the city-management station serving the point.
    assert do(world, case, "dispatch", "street_commander", department=police).status_code == 200
    back = do(world, case, "return", "department_officer", note="不是公安的").json()
    assert back["status"] == "filed" and back["department_code"] is None
    routed = do(world, case, "dispatch", "street_commander").json()
    assert routed["department_code"] == "hq-cityman-001"
    identity.add_user(world["engine"], "cm-1", role="department_officer", region="120106001",
                      department="hq-cityman-001")  # fmt: skip
    world["users"]["cityman"] = {"token": identity.create_token(world["engine"], "cm-1"),
                                 "name": "cm-1"}  # fmt: skip
    steps = [
        ("accept", "cityman", {}, "handling"),
        ("request_extension", "cityman", {"amount": 4, "note": "等材料"}, "handling"),
        ("approve_extension", "supervisor", {}, "handling"),
        ("complete", "cityman", {"note": "已清理"}, "handled"),
        ("rework", "gridworker", {"note": "仍有垃圾"}, "handling"),
        ("complete", "cityman", {}, "handled"),
        ("verify", "gridworker", {"lon": world["point"][0], "lat": world["point"][1],
                                  "crs": "cgcs2000"}, "verified"),
        ("close", "street_commander", {}, "closed"),
    ]  # fmt: skip
    for action, role, body, state in steps:
        before = world["client"].get(f"/api/v1/incidents/{case}", headers=as_(world, "admin"))
        answer = do(world, case, action, role, **body)
        assert answer.status_code == 200, (action, answer.text)
        assert answer.json()["status"] == state, action
        if action == "approve_extension":  # the deadline moves 4 urgent working hours on
            cal = service.calendar()
            old_due = dt.datetime.fromisoformat(before.json()["due_at"])
            new_due = dt.datetime.fromisoformat(answer.json()["due_at"])
            assert cal.elapsed(old_due, new_due, "urgent_work_hours") == pytest.approx(4)
    final = answer.json()
    assert final["rework_count"] == 1 and final["extension_count"] == 1
    assert final["closed_at"] is not None and final["closed_on_time"] is True
    assert final["history"][-2]["lon"] == pytest.approx(world["point"][0])
    actions = [h["action"] for h in final["history"]]
    assert actions == ["report", "file", "dispatch", "return", "dispatch"] + [s[0] for s in steps]
    assert [h["to_status"] for h in final["history"][-len(steps) :]] == [s[3] for s in steps]
    assert final["history"][3]["data"] == {"department": police}
    for refused_action in ("file", "close", "verify"):  # a closed case takes nothing more
        refused = do(world, case, refused_action, "admin")
        assert refused.status_code == 409 and refused.json()["allowed_actions"] == []


def test_extensions_need_a_request_and_a_denial_changes_nothing(world) -> None:  # type: ignore[no-untyped-def]
    case = case_in(world, "handling")
    none_pending = do(world, case, "approve_extension", "supervisor")
    assert (
        none_pending.status_code == 409
        and "no extension is pending" in none_pending.json()["detail"]
    )
    bad = do(world, case, "request_extension", "department_officer", amount=-1)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "amount"
    asked = do(world, case, "request_extension", "department_officer", amount=8).json()
    assert asked["extension_request"]["amount"] == 8
    assert do(world, case, "request_extension", "department_officer", amount=8).status_code == 409
    denied = do(world, case, "deny_extension", "district_commander").json()
    assert denied["extension_request"] is None and denied["due_at"] == asked["due_at"]
    assert denied["extension_count"] == 0


def test_merge_links_both_cases_and_refuses_a_closed_target(world) -> None:  # type: ignore[no-untyped-def]
    keep = report(world).json()["id"]
    dup = report(world).json()
    assert keep in [d["id"] for d in dup["possible_duplicates"]]
    assert do(world, dup["id"], "merge", "street_commander").status_code == 422  # no target
    merged = do(world, dup["id"], "merge", "street_commander", target=keep).json()
    assert merged["status"] == "merged" and merged["merged_into"] == keep
    with world["engine"].connect() as conn:
        links = conn.execute(text("SELECT incident_id, other_id, kind FROM incident_link "
                                  "ORDER BY kind")).all()  # fmt: skip
    assert [tuple(r) for r in links] == [(keep, dup["id"], "duplicate"),
                                         (dup["id"], keep, "duplicate_of")]  # fmt: skip
    third = report(world).json()["id"]
    refused = do(world, third, "merge", "street_commander", target=dup["id"])
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "target"


def test_history_is_append_only(world) -> None:  # type: ignore[no-untyped-def]
    case_in(world, "filed")
    with world["engine"].begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("UPDATE incident_history SET note = 'rewritten'"))
    with world["engine"].begin() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(text("DELETE FROM incident_history"))


def test_two_officers_acting_at_once_cannot_both_succeed(world) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        case = case_in(world, "dispatched")
        barrier = threading.Barrier(2)
        results: list[int] = []

        def accept(
            role: str, case: int = case, barrier: threading.Barrier = barrier,
            results: list[int] = results,
        ) -> None:  # fmt: skip
            barrier.wait()
            results.append(do(world, case, "accept", role).status_code)

        threads = [threading.Thread(target=accept, args=(r,))
                   for r in ("department_officer", "gridworker")]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [200, 409]
        with world["engine"].connect() as conn:
            rows = conn.execute(text("SELECT count(*) FROM incident_history "
                                     "WHERE incident_id = :i AND action = 'accept'"),
                                {"i": case}).scalar_one()  # fmt: skip
        assert rows == 1
    stale = do(world, case, "complete", "department_officer", expected_version=1)
    assert stale.status_code == 409 and stale.json()["errors"][0]["field"] == "expected_version"


def test_deadlines_follow_the_class_and_the_calendar(world) -> None:  # type: ignore[no-untyped-def]
    case = case_in(world, "filed")
    got = world["client"].get(f"/api/v1/incidents/{case}", headers=as_(world, "admin")).json()
    with world["engine"].connect() as conn:
        limits = conn.execute(text("SELECT limits FROM incident_class WHERE code = :c"),
                              {"c": CLASS}).scalar_one()  # fmt: skip
    filed = dt.datetime.fromisoformat(got["filed_at"])
    want = service.calendar().deadline(filed, float(limits["dispatch"]["amount"]),
                                       limits["dispatch"]["time_type"])  # fmt: skip
    assert got["step"] == "dispatch"
    assert dt.datetime.fromisoformat(got["due_at"]) == want
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE incident SET due_at = now() - interval '1 minute' WHERE id = :i"),
                     {"i": case})  # fmt: skip
    overdue = world["client"].get("/api/v1/incidents", params={"overdue": True},
                                  headers=as_(world, "admin")).json()["items"]  # fmt: skip
    assert [c["id"] for c in overdue] == [case] and overdue[0]["overdue"]
    department = world["users"]["department_officer"]["department"]
    late = do(world, case, "dispatch", "street_commander", department=department).json()
    assert late["history"][-1]["data"]["late_step"] == "dispatch"
    for action, role in (("accept", "department_officer"), ("complete", "department_officer"),
                         ("verify", "gridworker"), ("close", "street_commander")):  # fmt: skip
        last = do(world, case, action, role)
        assert last.status_code == 200, (action, last.text)
    assert last.json()["closed_on_time"] is False


def test_scope_a_street_commander_cannot_see_or_act_on_another_streets_cases(world) -> None:  # type: ignore[no-untyped-def]
    case = case_in(world, "reported")
    b = bearer(_street_b_token(world))
    assert world["client"].get(f"/api/v1/incidents/{case}", headers=b).status_code == 404
    refused = world["client"].post(f"/api/v1/incidents/{case}/actions", json={"action": "file"},
                                   headers=b)  # fmt: skip
    assert refused.status_code == 404
    listed = world["client"].get("/api/v1/incidents", headers=b).json()
    assert listed["items"] == []
    x, y = world["other_street_point"]
    theirs = world["client"].post(
        "/api/v1/incidents", headers=b,
        json={"lon": x, "lat": y, "crs": "cgcs2000", "class_code": CLASS, "source": "hotline",
              "description": "b"},
    )  # fmt: skip
    assert theirs.status_code == 201
    mine = world["client"].get("/api/v1/incidents", headers=as_(world, "street_commander")).json()
    assert theirs.json()["id"] not in [c["id"] for c in mine["items"]]
    # A department officer sees what was dispatched to their department, nothing else.
    officer = as_(world, "department_officer")
    assert world["client"].get(f"/api/v1/incidents/{case}", headers=officer).status_code == 404
    sent = case_in(world, "dispatched")
    seen = world["client"].get("/api/v1/incidents", headers=officer).json()["items"]
    assert [c["id"] for c in seen] == [sent]


def test_listing_filters_pages_and_geojson(world) -> None:  # type: ignore[no-untyped-def]
    ids = [report(world, source=s).json()["id"] for s in ("patrol", "hotline", "app", "patrol")]
    admin = as_(world, "admin")
    client = world["client"]
    pages, params = [], {"limit": 3}
    while True:
        page = client.get("/api/v1/incidents", params=params, headers=admin).json()
        pages.append([c["id"] for c in page["items"]])
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == [sorted(ids, reverse=True)[:3], sorted(ids, reverse=True)[3:]]
    patrol = client.get("/api/v1/incidents", params={"source": "patrol"}, headers=admin).json()
    assert {c["id"] for c in patrol["items"]} == {ids[0], ids[3]}
    by_region = client.get("/api/v1/incidents", params={"region": "120106002"}, headers=admin)
    assert by_region.json()["items"] == []
    assert len(client.get("/api/v1/incidents", params={"region": GRID[:12], "class": "E01"},
                          headers=admin).json()["items"]) == 4  # fmt: skip
    x, y = world["point"]
    box = f"{x - 0.001},{y - 0.001},{x + 0.001},{y + 0.001}"
    geo = client.get("/api/v1/incidents", params={"format": "geojson", "bbox": box, "limit": 2},
                     headers=admin)  # fmt: skip
    assert geo.headers["content-type"].startswith("application/geo+json")
    fc = geo.json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2 and fc["next_cursor"]
    feature = fc["features"][0]
    assert feature["geometry"]["coordinates"] == pytest.approx([x, y])
    assert feature["properties"]["grid_code"] == GRID
    # Every feature says what the JSON listing says of that case (PostgreSQL writes the text),
    # also of a dispatched one (its department and deadline).
    case_in(world, "dispatched")
    whole = client.get("/api/v1/incidents", params={"format": "geojson"}, headers=admin).json()
    items = client.get("/api/v1/incidents", headers=admin).json()["items"]
    stamps = ("reported_at", "due_at")

    def same(case: dict) -> dict:  # type: ignore[type-arg]
        return {k: (dt.datetime.fromisoformat(v) if k in stamps and v else v)
                for k, v in case.items() if k not in ("lon", "lat")}  # fmt: skip

    assert [same(f["properties"]) for f in whole["features"]] == [same(i) for i in items]
    assert [f["geometry"]["coordinates"] for f in whole["features"]] == [
        [i["lon"], i["lat"]] for i in items
    ]
    far = f"{x + 0.01},{y + 0.01},{x + 0.02},{y + 0.02}"
    empty = client.get("/api/v1/incidents", params={"format": "geojson", "bbox": far},
                       headers=admin).json()  # fmt: skip
    assert empty == {"type": "FeatureCollection", "next_cursor": None, "features": []}
    bad = client.get("/api/v1/incidents", params={"cursor": "bm9wZQ"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"


def test_the_catalogue_is_served(shared_client: TestClient) -> None:
    classes = shared_client.get("/api/v1/incident-classes").json()
    codes = {c["code"] for c in classes}
    assert CLASS in codes and len([c for c in codes if c[0] in "PE"]) >= 40
    assert {c["code"][0] for c in classes} == {"P", "E", "S"}
    assert all(set(c["limits"]) == {"dispatch", "handle", "verify"} for c in classes)


def test_region_figures_count_the_loop_and_its_rates(world) -> None:  # type: ignore[no-untyped-def]
    closed = case_in(world, "verified")
    assert do(world, closed, "close", "street_commander").status_code == 200
    case_in(world, "reported")
    rejected = case_in(world, "reported")
    do(world, rejected, "reject", "street_commander")
    reworked = case_in(world, "handled")
    do(world, reworked, "rework", "gridworker")
    late = case_in(world, "filed")
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE incident SET due_at = now() - interval '1 hour' WHERE id = :i"),
                     {"i": late})  # fmt: skip
    client, street = world["client"], GRID[:9]
    got = client.get(f"/api/v1/regions/{street}/figures",
                     headers=as_(world, "street_commander")).json()  # fmt: skip
    counts, rates = got["counts"], got["rates"]
    assert counts["reported"] == 5 and counts["filed"] == 3 and counts["not_filed"] == 1
    assert counts["closed"] == 1 and counts["closed_on_time"] == 1 and counts["rework"] == 1
    assert counts["handled"] == 2 and counts["overdue"] == 1 and counts["open"] == 3
    assert rates == {"filing_rate": 0.6, "closing_rate": round(1 / 3, 4), "on_time_rate": 1.0,
                     "rework_rate": 0.5}  # fmt: skip
    district = client.get("/api/v1/regions/120106/figures", headers=as_(world, "planner")).json()
    assert district["counts"] == counts
    other = client.get("/api/v1/regions/120106002/figures", headers=as_(world, "admin")).json()
    assert other["counts"]["reported"] == 0 and other["rates"]["filing_rate"] is None
    yesterday = client.get(f"/api/v1/regions/{street}/figures", headers=as_(world, "admin"),
                           params={"from": "2020-01-01", "to": "2020-01-02"}).json()  # fmt: skip
    assert yesterday["counts"]["reported"] == 0
    # Outside the caller's area, unknown, or a bad period: refused, naming the field.
    hidden = client.get("/api/v1/regions/120106/figures", headers=as_(world, "street_commander"))
    assert hidden.status_code == 404
    assert client.get("/api/v1/regions/999/figures", headers=as_(world, "admin")).status_code == 404
    for params, field in (({"from": "yesterday"}, "from"),
                          ({"from": "2026-02-02", "to": "2026-02-01"}, "to")):  # fmt: skip
        bad = client.get(f"/api/v1/regions/{street}/figures", headers=as_(world, "admin"),
                         params=params)  # fmt: skip
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == field
