"""The web login: a session cookie that is HttpOnly and SameSite=Strict, an Origin check on
cookie-authenticated changes, a limit on failed logins, and logout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import identity

HTML = {"Accept": "text/html,application/xhtml+xml"}
GRID = "120106001001001"


@pytest.fixture
def web(demo_db: str, client_for) -> Callable[..., TestClient]:  # type: ignore[no-untyped-def]
    """An anonymous client (a browser before logging in) on a database of its own."""

    def build(**settings: Any) -> TestClient:
        return client_for(
            demo_db, token=None, settings=settings, base_url="http://gridmap.test",
            follow_redirects=False,
        )  # fmt: skip

    return build


def _login(client: TestClient, user: str, password: str, **extra: Any) -> Any:
    data = {"username": user, "password": password, **extra}
    return client.post("/login", data=data, headers={"Origin": "http://gridmap.test", **HTML})


def test_login_sets_a_strict_http_only_session_cookie_that_opens_pages(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = web()
    page = client.get("/login", params={"next": f"/regions/{GRID}/map"})
    assert page.status_code == 200 and 'name="password"' in page.text and "登录" in page.text
    assert "Log in" in client.get("/login", params={"lang": "en"}).text
    user = demo_users["street_commander"]
    done = _login(client, user["name"], user["password"], next=f"/regions/{GRID}/map")
    assert done.status_code == 303 and done.headers["location"] == f"/regions/{GRID}/map"
    cookie = done.headers["set-cookie"].lower()
    assert "gridmap_session=gm_" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert "max-age=43200" in cookie  # GRIDMAP_SESSION_HOURS, 12 by default
    me = client.get("/api/v1/me")
    assert me.status_code == 200 and me.json()["name"] == user["name"]
    assert client.get(f"/regions/{GRID}/map", headers=HTML).status_code == 200
    engine = make_engine(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT t.kind FROM access_token t JOIN staff s ON s.id = t.staff_id "
                 "WHERE s.name = :n ORDER BY t.id"), {"n": user["name"]},
        ).scalars().all()  # fmt: skip
    engine.dispose()
    assert kinds == ["api", "session"]


def test_a_page_without_a_session_goes_to_the_login_page_an_api_call_gets_401(web) -> None:  # type: ignore[no-untyped-def]
    client = web()
    page = client.get(f"/regions/{GRID}/map", params={"lang": "en"}, headers=HTML)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fregions%2F120106001001001%2Fmap%3Flang%3Den"
    assert client.get("/", headers=HTML).headers["location"] == "/login?next=%2F"
    api = client.get("/api/v1/regions", headers=HTML)  # JSON endpoints never redirect
    assert api.status_code == 401 and api.headers["www-authenticate"].startswith("Bearer")
    assert client.get(f"/regions/{GRID}/map").status_code == 401  # not a browser: no redirect


def test_a_cookie_cannot_change_anything_from_another_origin(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = web()
    user = demo_users["street_commander"]
    assert _login(client, user["name"], user["password"]).status_code == 303
    url = f"/api/v1/grids/{GRID}/members/demo-gridworker"
    for headers in ({}, {"Origin": "http://evil.test"}, {"Referer": "http://evil.test/x"}):
        refused = client.put(url, params={"kind": "other"}, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["type"] == "urn:gridmap:problem:cross-origin"
    same = client.put(url, params={"kind": "other"}, headers={"Origin": "http://gridmap.test"})
    assert same.status_code == 200, same.text
    referer = client.delete(
        url, params={"kind": "other"}, headers={"Referer": "http://gridmap.test/screen"}
    )
    assert referer.status_code == 200
    # A bearer token needs no Origin: it is not sent by a browser on its own.
    api = client.put(
        url, params={"kind": "other"}, headers={"Authorization": f"Bearer {user['token']}"}
    )
    assert api.status_code == 200
    # Nor can another site log someone in.
    other = client.post(
        "/login",
        data={"username": user["name"], "password": user["password"]},
        headers={"Origin": "http://evil.test"},
    )
    assert other.status_code == 403


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        ({"username": "", "password": "x"}, ["username"]),
        ({"username": "demo-admin"}, ["password"]),
        ({}, ["username", "password"]),
        ({"username": "demo\x00admin", "password": "whatever1"}, ["username"]),
    ],
)
def test_missing_fields_are_named(web, data, fields) -> None:  # type: ignore[no-untyped-def]
    response = web().post("/login", data=data)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == fields


def test_wrong_passwords_are_refused_then_limited(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = web(login_max_failures=3, login_max_failures_client=50)
    user = demo_users["planner"]
    for attempt in range(3):
        wrong = client.post("/login", data={"username": user["name"], "password": f"nope{attempt}"})
        assert wrong.status_code == 401
        assert wrong.json()["errors"][0]["field"] == "password"
        assert "set-cookie" not in wrong.headers
    page = _login(client, user["name"], "nope-again")  # a browser gets the form back
    assert page.status_code == 429 and "请" in page.text and int(page.headers["retry-after"]) > 0
    right = client.post("/login", data={"username": user["name"], "password": user["password"]})
    assert right.status_code == 429, "even the right password waits"
    assert right.json()["type"] == "urn:gridmap:problem:too-many-logins"
    assert 0 < int(right.headers["retry-after"]) <= 900
    other = demo_users["screen"]  # another user from the same client is not locked out
    assert _login(client, other["name"], other["password"]).status_code == 303
    unknown = client.post("/login", data={"username": "nobody", "password": "whatever1"})
    assert unknown.status_code == 401  # the same answer as a wrong password
    engine = make_engine(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    with engine.begin() as conn:  # the window passes
        conn.execute(text("UPDATE login_attempt SET at = at - interval '16 minutes'"))
    engine.dispose()
    assert _login(client, user["name"], user["password"]).status_code == 303


def test_failures_from_one_client_are_limited_across_user_names(web) -> None:  # type: ignore[no-untyped-def]
    client = web(login_max_failures_client=4)
    codes = [
        client.post("/login", data={"username": f"u{i}", "password": "wrong-one"}).status_code
        for i in range(6)
    ]
    assert codes == [401, 401, 401, 401, 429, 429]


def test_next_never_leaves_the_app(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    user = demo_users["screen"]
    for target in ("//evil.test/x", "https://evil.test", "/\\evil.test", "javascript:alert(1)"):
        done = _login(web(), user["name"], user["password"], next=target)
        assert done.headers["location"] == "/", target


def test_logout_ends_the_session(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = web()
    user = demo_users["supervisor"]
    done = _login(client, user["name"], user["password"])
    session = done.cookies["gridmap_session"]
    out = client.post("/logout", headers={"Origin": "http://gridmap.test"})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (
        'gridmap_session=""' in out.headers["set-cookie"]
        or "Max-Age=0" in out.headers["set-cookie"]
    )
    client.cookies.clear()
    client.cookies.set("gridmap_session", session)
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/", headers=HTML).status_code == 303
    # A session cookie is not an API token, and an API token is not a session cookie.
    client.cookies.clear()
    fresh = _login(client, user["name"], user["password"]).cookies["gridmap_session"]
    client.cookies.clear()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    client.cookies.set("gridmap_session", user["token"])
    assert client.get("/api/v1/me").status_code == 401


def test_a_new_password_ends_open_sessions(web, demo_users) -> None:  # type: ignore[no-untyped-def]
    client = web()
    user = demo_users["gridworker"]
    assert _login(client, user["name"], user["password"]).status_code == 303
    assert client.get("/api/v1/me").status_code == 200
    engine = make_engine(client.app.state.settings.database_url)  # type: ignore[attr-defined]
    identity.set_password(engine, user["name"], "a-new-password")
    engine.dispose()
    assert client.get("/api/v1/me").status_code == 401
    assert _login(client, user["name"], user["password"]).status_code == 401
    assert _login(client, user["name"], "a-new-password").status_code == 303
