"""Who may do what, where — enforced on every endpoint.

- every endpoint but health and login refuses a request without a valid token (walking the
  OpenAPI spec and the app's routes);
- the matrix: every (role × endpoint) pair of the permission table — allowed ones succeed,
  the rest are refused with 403 — and a route without a declared rule fails here;
- scope: a street commander cannot read or act on another street's records (404, no leak).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.api.auth import PUBLIC, ROUTE_ACTIONS, route_keys
from app.db.engine import make_engine
from app.services import identity
from tests.conftest import bearer, point_inside

GRID = "120106001001001"  # the demo users' first grid: inside every demo user's home region
POINT = {"lon": 117.15, "lat": 39.17}

# One request per declared endpoint that an allowed role must see succeed. A new endpoint
# without an entry here (or in ROUTE_ACTIONS) fails test_the_rules_cover_every_route.
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("GET", "/"): {"url": "/"},
    ("GET", "/docs"): {"url": "/docs"},
    ("GET", "/openapi.json"): {"url": "/openapi.json"},
    ("GET", "/regions/{code}/map"): {"url": "/regions/120106001/map"},
    ("GET", "/api/v1/regions"): {"url": "/api/v1/regions", "params": {"level": "street"}},
    ("GET", "/api/v1/regions/{code}"): {"url": f"/api/v1/regions/{GRID}"},
    ("GET", "/api/v1/regions/{code}/children"): {"url": "/api/v1/regions/120106001/children"},
    ("GET", "/api/v1/regions/{code}/ancestors"): {"url": f"/api/v1/regions/{GRID}/ancestors"},
    ("GET", "/api/v1/regions/{code}/geometry"): {"url": f"/api/v1/regions/{GRID}/geometry"},
    ("GET", "/api/v1/boundary-versions"): {"url": "/api/v1/boundary-versions"},
    ("GET", "/api/v1/locate"): {"url": "/api/v1/locate", "params": POINT},
    ("POST", "/api/v1/locate"): {"url": "/api/v1/locate", "json": [POINT]},
    ("GET", "/api/v1/me"): {"url": "/api/v1/me"},
    ("GET", "/api/v1/departments"): {"url": "/api/v1/departments"},
    ("GET", "/api/v1/staff"): {"url": "/api/v1/staff"},
    ("GET", "/api/v1/staff/{name}"): {"url": "/api/v1/staff/demo-gridworker"},
    ("PUT", "/api/v1/grids/{code}/members/{name}"): {
        "url": f"/api/v1/grids/{GRID}/members/demo-gridworker", "params": {"kind": "other"}
    },
    ("DELETE", "/api/v1/grids/{code}/members/{name}"): {
        "url": f"/api/v1/grids/{GRID}/members/demo-gridworker", "params": {"kind": "other"}
    },
    ("POST", "/api/v1/incidents"): lambda ctx, role: {
        "url": "/api/v1/incidents",
        "json": {"lon": ctx["x"], "lat": ctx["y"], "crs": "cgcs2000", "class_code": "E0101",
                 "source": "patrol", "description": "matrix"},
    },
    ("GET", "/api/v1/incidents"): {"url": "/api/v1/incidents"},
    ("GET", "/api/v1/incidents/{incident_id}"): lambda ctx, role: {
        "url": f"/api/v1/incidents/{ctx['case']}"
    },
    ("POST", "/api/v1/incidents/{incident_id}/actions"): lambda ctx, role: ctx["act"](role),
    ("GET", "/api/v1/incidents/{incident_id}/photos/{photo_id}"): lambda ctx, role: {
        "url": f"/api/v1/incidents/{ctx['case']}/photos/{ctx['photo']}"
    },
    ("GET", "/api/v1/incident-classes"): {"url": "/api/v1/incident-classes"},
    ("GET", "/api/v1/regions/{code}/figures"): {"url": f"/api/v1/regions/{GRID}/figures"},
    ("GET", "/open311/v2/services.json"): {"url": "/open311/v2/services.json"},
    ("GET", "/open311/v2/requests.json"): {"url": "/open311/v2/requests.json"},
    ("GET", "/open311/v2/requests/{service_request_id}.json"): lambda ctx, role: {
        "url": f"/open311/v2/requests/{ctx['case']}.json"
    },
    ("GET", "/api/v1/whistle-situations"): {"url": "/api/v1/whistle-situations"},
    ("POST", "/api/v1/whistles"): lambda ctx, role: {
        "url": "/api/v1/whistles", "json": ctx["blow_body"](role),
    },
    ("GET", "/api/v1/whistles"): {"url": "/api/v1/whistles"},
    ("GET", "/api/v1/whistles/proposal"): lambda ctx, role: {
        "url": "/api/v1/whistles/proposal",
        "params": {"situation": "MD01", "lon": ctx["x"], "lat": ctx["y"], "crs": "cgcs2000"},
    },
    ("GET", "/api/v1/whistles/{whistle_id}"): lambda ctx, role: {
        "url": f"/api/v1/whistles/{ctx['whistle']}"
    },
    ("POST", "/api/v1/whistles/{whistle_id}/actions"): lambda ctx, role: ctx["whistle_act"](role),
    ("GET", "/api/v1/whistles/{whistle_id}/photos/{photo_id}"): lambda ctx, role: {
        "url": f"/api/v1/whistles/{ctx['whistle']}/photos/{ctx['whistle_photo']}"
    },
    ("GET", "/api/v1/whistles-map"): {"url": "/api/v1/whistles-map"},
    ("GET", "/api/v1/supervisions"): {"url": "/api/v1/supervisions"},
    ("POST", "/api/v1/supervisions/run"): {"url": "/api/v1/supervisions/run"},
    ("GET", "/api/v1/notifications"): {"url": "/api/v1/notifications"},
    ("GET", "/api/v1/evaluations/{period}"): {"url": "/api/v1/evaluations/2026-10"},
    ("PUT", "/api/v1/evaluations/{period}/ratings/{street}/{department}"): {
        "url": "/api/v1/evaluations/2026-10/ratings/120106001/hq-housing",
        "json": {"deductions": [{"points": 2, "reason": "matrix"}]},
    },
    ("POST", "/api/v1/patrols/fixes"): lambda ctx, role: {
        "url": "/api/v1/patrols/fixes", "json": {"fixes": [ctx["fix"]]},
    },
    ("GET", "/api/v1/patrols/live"): {"url": "/api/v1/patrols/live"},
    ("GET", "/api/v1/patrols/tracks"): lambda ctx, role: {
        "url": "/api/v1/patrols/tracks", "params": {"worker": ctx["fix"]["worker"]},
    },
    ("GET", "/api/v1/patrols/coverage"): {
        "url": "/api/v1/patrols/coverage", "params": {"region": GRID},
    },
    ("GET", "/api/v1/patrols/unpatrolled"): {
        "url": "/api/v1/patrols/unpatrolled", "params": {"region": GRID},
    },
    ("GET", "/api/v1/patrols/daily"): {
        "url": "/api/v1/patrols/daily", "params": {"region": GRID},
    },
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.pbf"): {"url": "/tiles/grid/15/27048/12503.pbf"},
    ("GET", "/screen"): {"url": "/screen"},
    ("GET", "/screen/{region_code}"): {"url": f"/screen/{GRID}"},
    ("GET", "/api/v1/screen/figures"): {
        "url": "/api/v1/screen/figures", "params": {"region": GRID},
    },
    ("GET", "/api/v1/screen/grid-values"): {
        "url": "/api/v1/screen/grid-values", "params": {"region": GRID},
    },
    ("GET", "/api/v1/analytics/hotspots"): {
        "url": "/api/v1/analytics/hotspots", "params": {"region": GRID},
    },
    ("GET", "/api/v1/analytics/emerging"): {
        "url": "/api/v1/analytics/emerging", "params": {"region": GRID, "weeks": 4},
    },
    ("GET", "/api/v1/analytics/series"): {
        "url": "/api/v1/analytics/series", "params": {"region": GRID},
    },
    ("GET", "/api/v1/analytics/compare"): {
        "url": "/api/v1/analytics/compare", "params": {"region": GRID},
    },
    ("GET", "/api/v1/analytics/density"): {
        "url": "/api/v1/analytics/density", "params": {"region": GRID},
    },
    ("GET", "/planner"): {"url": "/planner"},
    ("GET", "/planner/{region_code}"): {"url": f"/planner/{GRID}"},
    ("POST", "/api/v1/exports"): {
        "url": "/api/v1/exports",
        "json": {"kind": "compare", "format": "csv", "region": GRID},
    },
    ("GET", "/api/v1/exports/{job_id}"): lambda ctx, role: {
        "url": f"/api/v1/exports/{ctx['export_job'](role)}",
    },
    ("GET", "/api/v1/exports/{job_id}/file"): lambda ctx, role: {
        "url": f"/api/v1/exports/{ctx['export_job'](role)}/file",
    },
    ("POST", "/open311/v2/requests.json"): lambda ctx, role: {
        "url": "/open311/v2/requests.json",
        "data": {"service_code": "E0101", "lat": str(ctx["y"]), "long": str(ctx["x"]),
                 "description": "matrix"},
    },
}  # fmt: skip


def _call(client: TestClient, method: str, sample: dict[str, Any], **extra: Any) -> Any:
    kwargs = {k: v for k, v in sample.items() if k != "url"}
    return client.request(method, sample["url"], **kwargs, **extra)


def _example_url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "120106", path)


def _assert_401(response: Any, where: str) -> None:
    assert response.status_code == 401, (where, response.status_code, response.text[:200])
    assert response.headers["www-authenticate"].startswith('Bearer realm="gridmap"'), where
    assert response.headers["content-type"].startswith("application/problem+json"), where
    assert response.json()["type"] == "urn:gridmap:problem:unauthenticated", where


def test_the_rules_cover_every_route(shared_client: TestClient) -> None:
    routes = route_keys(shared_client.app)  # type: ignore[arg-type]
    assert routes == set(ROUTE_ACTIONS) | PUBLIC, "every route needs a rule in ROUTE_ACTIONS"
    assert set(SAMPLES) == set(ROUTE_ACTIONS), "every rule needs a sample request here"
    actions = {a for _, a in identity.PERMISSIONS}
    assert set(ROUTE_ACTIONS.values()) <= actions


def test_an_app_with_an_undeclared_route_does_not_start(shared_demo_db: str) -> None:
    from app.main import create_app
    from app.settings import Settings

    app = create_app(Settings(database_url=shared_demo_db))
    app.add_api_route("/api/v1/secret", lambda: {"secret": 1})
    from app.api.auth import check_routes

    with pytest.raises(RuntimeError, match="/api/v1/secret"):
        check_routes(app)


def test_no_endpoint_but_health_and_login_answers_without_a_token(
    shared_client: TestClient, anonymous: TestClient
) -> None:
    spec = shared_client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    walked: set[tuple[str, str]] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), path)
            walked.add(key)
            response = anonymous.request(key[0], _example_url(path), json=[POINT])
            if key in PUBLIC:
                assert operation["security"] == []
                assert response.status_code != 401, key
                continue
            assert operation["security"] == [{"bearer": []}, {"session": []}], key
            assert "401" in operation["responses"] and "403" in operation["responses"], key
            _assert_401(response, f"{key}")
    # The routes the spec leaves out (pages, the docs, the spec itself) are refused too.
    hidden = route_keys(shared_client.app) - walked  # type: ignore[arg-type]
    assert {("GET", "/"), ("GET", "/docs"), ("GET", "/openapi.json")} <= hidden
    for method, path in hidden - PUBLIC:
        _assert_401(anonymous.request(method, _example_url(path)), f"{method} {path}")
    assert anonymous.get("/health").status_code == 200
    assert anonymous.get("/login").status_code == 200


@pytest.mark.parametrize(
    ("header", "words"),
    [
        ("Bearer", "must be 'Bearer <token>'"),
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <token>'"),
        ("Bearer a b", "must be 'Bearer <token>'"),
        ("Bearer gm_not-a-real-token", "not known"),
        ("Bearer nonsense", "not known"),
    ],
)
def test_malformed_or_unknown_tokens_are_401(anonymous: TestClient, header, words) -> None:  # type: ignore[no-untyped-def]
    response = anonymous.get("/api/v1/regions", headers={"Authorization": header})
    _assert_401(response, header)
    assert words in response.json()["detail"]
    error = "invalid_request" if "must be" in words else "invalid_token"
    assert f'error="{error}"' in response.headers["www-authenticate"]


def test_expired_revoked_and_deactivated_tokens_are_401(demo_db: str, client_for) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    identity.add_user(engine, "li", role="gridworker", region=GRID)
    expired, revoked, deactivated, good = (identity.create_token(engine, "li") for _ in range(4))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE access_token SET expires_at = now() - interval '1 minute' "
                 "WHERE token_hash = :h"), {"h": identity.token_hash(expired)},
        )  # fmt: skip
    identity.revoke_tokens(engine, "li", token=revoked)
    client = client_for(demo_db, token=None)
    assert client.get("/api/v1/me", headers=bearer(good)).json()["name"] == "li"
    for token, words in ((expired, "expired at"), (revoked, "revoked")):
        response = client.get("/api/v1/me", headers=bearer(token))
        _assert_401(response, words)
        assert words in response.json()["detail"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE staff SET active = false WHERE name = 'li'"))
    response = client.get("/api/v1/me", headers=bearer(deactivated))
    _assert_401(response, "deactivated")
    assert "deactivated" in response.json()["detail"]
    engine.dispose()


def _matrix_context(client: TestClient, demo_db: str, demo_users: dict[str, Any]) -> dict:  # type: ignore[type-arg]
    """A point inside GRID, and a case there (with a photo) that every role can read: it is
    dispatched to the demo department officer's department."""
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        x, y = point_inside(conn, GRID)
    engine.dispose()
    admin = bearer(demo_users["admin"]["token"])
    department = demo_users["department_officer"]["department"]

    def new_case(*steps: tuple[str, dict[str, Any]]) -> int:
        made = client.post(
            "/api/v1/incidents", headers=admin,
            data={"lon": str(x), "lat": str(y), "crs": "cgcs2000", "class_code": "E0101",
                  "source": "patrol", "description": "matrix"},
            files=[("photos", ("p.jpg", b"\xff\xd8\xff" + b"\x00" * 64, "image/jpeg"))],
        )  # fmt: skip
        assert made.status_code == 201, made.text
        case = made.json()["id"]
        for action, body in steps:
            done = client.post(f"/api/v1/incidents/{case}/actions", headers=admin,
                               json={"action": action, **body})  # fmt: skip
            assert done.status_code == 200, done.text
        return case

    dispatched = (("file", {}), ("dispatch", {"department": department}))
    case = new_case(*dispatched)
    photo = client.get(f"/api/v1/incidents/{case}", headers=admin).json()["photos"][0]["id"]

    def act(role: str) -> dict[str, Any]:
        """An action the role may take, on a fresh case in the state it applies to."""
        if identity.allowed(role, "incidents:dispatch"):
            return {"url": f"/api/v1/incidents/{new_case()}/actions", "json": {"action": "file"}}
        return {"url": f"/api/v1/incidents/{new_case(*dispatched)}/actions",
                "json": {"action": "accept"}}  # fmt: skip

    police = demo_users["department_officer"]["department"]
    gridworker = demo_users["gridworker"]["name"]

    def blow_body(role: str) -> dict[str, Any]:
        level = {"community_officer": "community", "district_commander": "district"}.get(
            role, "street")  # fmt: skip
        lead = {"staff": gridworker} if level == "community" else {"department": police}
        return {"level": level, "situation_code": "MD01", "title": "matrix",
                "place": {"lon": x, "lat": y, "crs": "cgcs2000"},
                "parties": [{"role": "lead", **lead}]}  # fmt: skip

    def new_whistle(level: str) -> int:
        blower = {"community": "community_officer", "district": "district_commander"}
        made = client.post("/api/v1/whistles", headers=admin,
                           json=blow_body(blower.get(level, "")))  # fmt: skip
        assert made.status_code == 201, made.text
        return made.json()["id"]

    whistle = new_whistle("street")
    noted = client.post(f"/api/v1/whistles/{whistle}/actions", headers=admin,
                        data={"action": "progress", "note": "photo"},
                        files=[("photos", ("p.jpg", b"\xff\xd8\xff" + b"\x00" * 64,
                                           "image/jpeg"))])  # fmt: skip
    assert noted.status_code == 200, noted.text
    whistle_photo = noted.json()["photos"][0]["id"]

    def whistle_act(role: str) -> dict[str, Any]:
        """An action on a fresh whistle the role takes part in."""
        level = {"gridworker": "community", "community_officer": "community",
                 "district_commander": "district"}.get(role, "street")  # fmt: skip
        action = "acknowledge" if role in ("gridworker", "department_officer") else "progress"
        return {"url": f"/api/v1/whistles/{new_whistle(level)}/actions",
                "json": {"action": action, "note": "matrix"}}  # fmt: skip

    fix = {"worker": gridworker, "time": dt.datetime.now(dt.UTC).isoformat(), "lon": x,
           "lat": y, "crs": "cgcs2000", "client_id": "matrix"}  # fmt: skip

    def export_job(role: str) -> str:
        """A finished export of the role's own (another user's would be a 404)."""
        engine = make_engine(demo_db)
        target = Path(tempfile.mkdtemp(prefix="gridmap-export-")) / "compare.csv"
        target.write_text("code,count\n")
        params = {"kind": "compare", "format": "csv", "region": GRID, "level": "grid",
                  "class": None, "from": "2026-01-01", "to": "2026-01-28"}  # fmt: skip
        with engine.begin() as conn:
            job = conn.execute(
                text("INSERT INTO export_job (owner_id, kind, format, params, status, rows, bytes, "
                     "path, finished_at) SELECT id, 'compare', 'csv', CAST(:p AS jsonb), 'done', "
                     "0, 11, :path, now() FROM staff WHERE name = :n RETURNING id"),
                {"p": json.dumps(params), "path": str(target), "n": demo_users[role]["name"]},
            ).scalar_one()  # fmt: skip
        engine.dispose()
        return str(job)

    return {"x": x, "y": y, "case": case, "photo": photo, "act": act, "whistle": whistle,
            "fix": fix, "whistle_photo": whistle_photo, "blow_body": blow_body,
            "whistle_act": whistle_act, "export_job": export_job}  # fmt: skip


def test_every_role_on_every_endpoint(demo_db: str, client_for, demo_users) -> None:  # type: ignore[no-untyped-def]
    """The matrix: allowed pairs succeed (2xx), the others are refused with 403."""
    client = client_for(demo_db, token=None)
    assert set(demo_users) == set(identity.ROLES)
    ctx = _matrix_context(client, demo_db, demo_users)
    seen: dict[tuple[str, str, str], int] = {}
    for role, user in demo_users.items():
        for key, sample in SAMPLES.items():
            method, path = key
            if callable(sample):
                sample = sample(ctx, role)
            response = _call(client, method, sample, headers=bearer(user["token"]))
            seen[(role, method, path)] = response.status_code
            action = ROUTE_ACTIONS[key]
            if identity.allowed(role, action):
                assert 200 <= response.status_code < 300, (role, key, response.text[:300])
            else:
                assert response.status_code == 403, (role, key, response.status_code)
                body = response.json()
                assert body["type"] == "urn:gridmap:problem:forbidden"
                assert role in body["detail"] and action in body["detail"]
    assert len(seen) == len(identity.ROLES) * len(SAMPLES)
    # The table is neither open nor closed: only commanders and the admin assign grid members.
    assign = {r for (r, m, p), status in seen.items() if m == "PUT" and status == 200}
    assert assign == {"district_commander", "street_commander", "community_officer", "admin"}
    assert all(200 <= status < 300 for (r, m, p), status in seen.items() if r == "admin")


def test_me_tells_the_role_scope_and_what_it_may_do(demo_db, client_for, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = client_for(demo_db, token=None)
    user = demo_users["street_commander"]
    me = client.get("/api/v1/me", headers=bearer(user["token"])).json()
    assert me["name"] == user["name"] and me["role"] == "street_commander"
    assert me["region_code"] == "120106001"
    assert (
        "whistles:blow_street" in me["actions"] and "whistles:blow_community" not in me["actions"]
    )
    officer = client.get("/api/v1/me", headers=bearer(demo_users["department_officer"]["token"]))
    assert officer.json()["department"] == demo_users["department_officer"]["department"]


def _street_b(engine: Any) -> None:
    identity.add_user(engine, "cmd-b", role="street_commander", region="120106002")
    identity.add_user(engine, "gw-b", role="gridworker", region="120106002001001")
    identity.add_user(engine, "gw-a2", role="gridworker", region="120106001002001")


def test_a_street_commander_cannot_read_or_act_on_another_streets_records(  # type: ignore[no-untyped-def]
    demo_db: str, client_for, demo_users
) -> None:
    engine = make_engine(demo_db)
    _street_b(engine)
    b_token = identity.create_token(engine, "cmd-b")
    client = client_for(demo_db, token=None)
    a = bearer(demo_users["street_commander"]["token"])
    b = bearer(b_token)

    # Reads: the other street's gridworker does not exist for A — the same answer as nobody.
    hidden = client.get("/api/v1/staff/gw-b", headers=a)
    nobody = client.get("/api/v1/staff/no-such-user", headers=a)
    assert hidden.status_code == nobody.status_code == 404
    assert hidden.json()["type"] == nobody.json()["type"] == "urn:gridmap:problem:not-found"
    assert client.get("/api/v1/staff/gw-b", headers=b).status_code == 200
    listed = {u["name"] for u in client.get("/api/v1/staff", headers=a).json()["items"]}
    assert {"demo-gridworker", "demo-street-commander", "demo-community-officer", "gw-a2"} <= listed
    assert not listed & {"gw-b", "cmd-b", "demo-district-commander", "demo-admin"}
    assert all(
        u["region_code"].startswith("120106001")
        for u in client.get("/api/v1/staff", headers=a, params={"limit": 1000}).json()["items"]
    )
    other = client.get("/api/v1/staff", headers=a, params={"region": "120106002"}).json()
    assert other["items"] == []
    listed_b = {u["name"] for u in client.get("/api/v1/staff", headers=b).json()["items"]}
    assert listed_b == {"cmd-b", "gw-b"}

    # Acts: A cannot put anyone on B's grid, nor B's gridworker on A's grid; nothing changes.
    def duty(code: str) -> list[dict[str, Any]]:
        with engine.connect() as conn:
            return identity.duty(conn, [code])[code]

    before_b, before_a = duty("120106002001001"), duty(GRID)
    for url in (
        "/api/v1/grids/120106002001001/members/demo-gridworker",
        f"/api/v1/grids/{GRID}/members/gw-b",
        "/api/v1/grids/120106002001001/members/gw-b",
    ):
        for method in ("PUT", "DELETE"):
            response = client.request(method, url, headers=a, params={"kind": "other"})
            assert response.status_code == 404, (method, url, response.text)
    assert duty("120106002001001") == before_b and duty(GRID) == before_a
    # B may, on its own street.
    put = client.put(
        "/api/v1/grids/120106002001001/members/gw-b", headers=b, params={"kind": "primary"}
    )
    assert put.status_code == 200, put.text
    assert put.json()["members"][0]["name"] == "gw-b"
    # A's own street: fine for A.
    ok = client.put(f"/api/v1/grids/{GRID}/members/gw-a2", headers=a, params={"kind": "leader"})
    assert ok.status_code == 200 and "gw-a2" in {m["name"] for m in ok.json()["members"]}
    engine.dispose()


def test_a_community_officer_sees_only_their_community(demo_db, client_for, demo_users) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    _street_b(engine)
    client = client_for(demo_db, token=None)
    c = bearer(demo_users["community_officer"]["token"])
    listed = {u["name"] for u in client.get("/api/v1/staff", headers=c).json()["items"]}
    assert "demo-gridworker" in listed and "gw-a2" not in listed  # gw-a2: the next community
    assert client.get("/api/v1/staff/demo-street-commander", headers=c).status_code == 404
    everyone = bearer(demo_users["district_commander"]["token"])
    names = {u["name"] for u in client.get("/api/v1/staff", headers=everyone,
                                           params={"limit": 1000}).json()["items"]}  # fmt: skip
    assert {"gw-a2", "gw-b", "cmd-b", "demo-gridworker"} <= names
    engine.dispose()


def test_grid_membership_bad_input(demo_db: str, client_for) -> None:  # type: ignore[no-untyped-def]
    client = client_for(demo_db)  # admin
    engine = make_engine(demo_db)
    identity.add_user(engine, "gw-x", role="gridworker", region=GRID)
    identity.add_user(engine, "gw-y", role="gridworker", region=GRID)
    bad_kind = client.put(f"/api/v1/grids/{GRID}/members/gw-x", params={"kind": "boss"})
    assert bad_kind.status_code == 422 and bad_kind.json()["errors"][0]["field"] == "kind"
    not_grid = client.put("/api/v1/grids/120106001/members/gw-x")
    assert not_grid.status_code == 422 and not_grid.json()["errors"][0]["field"] == "code"
    assert client.put("/api/v1/grids/999/members/gw-x").status_code == 404
    assert client.put(f"/api/v1/grids/{GRID}/members/nobody").status_code == 404
    assert client.put(f"/api/v1/grids/{GRID}/members/gw-x").status_code == 200
    assert client.put(f"/api/v1/grids/{GRID}/members/gw-x").status_code == 200  # idempotent
    taken = client.put(f"/api/v1/grids/{GRID}/members/gw-y")
    assert taken.status_code == 409 and "already has gw-x" in taken.json()["detail"]
    gone = client.delete(f"/api/v1/grids/{GRID}/members/gw-y")
    assert gone.status_code == 404
    assert client.delete(f"/api/v1/grids/{GRID}/members/gw-x").json()["members"] == []
    bad_cursor = client.get("/api/v1/staff", params={"cursor": "bm90LWEtbnVtYmVy"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["errors"][0]["field"] == "cursor"
    engine.dispose()


def test_staff_pages_follow_the_cursor(shared_client: TestClient) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 3}
    while True:
        page = shared_client.get("/api/v1/staff", params=params).json()
        seen += [u["name"] for u in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert len(seen) == len(set(seen)) >= 10
    assert "demo-admin" in seen and "test-admin" in seen


def test_the_readme_shows_the_permission_table_of_the_code() -> None:
    from app.api.auth import permission_table_markdown
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- permissions -->\n", 1)[1].split("\n<!-- /permissions -->", 1)[0]
    assert shown == permission_table_markdown(), (
        "regenerate it: .venv/bin/python scripts/readme-permissions.py"
    )
