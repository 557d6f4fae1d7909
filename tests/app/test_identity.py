"""Identity: departments, users, passwords, bearer tokens, grid members, demo users and the
permission table (its enforcement on every endpoint: test_auth.py and test_login.py)."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import identity
from tests.conftest import point_inside


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM staff), (SELECT count(*) FROM department), "
                "(SELECT count(*) FROM access_token)"
            )
        ).one()
    engine.dispose()
    return tuple(row)  # type: ignore[return-value]


def test_permission_table_names_every_role_and_only_commanders_blow_whistles() -> None:
    roles = {role for role, _ in identity.PERMISSIONS}
    assert roles == set(identity.ROLES)
    street = {r for r, a in identity.PERMISSIONS if a == "whistles:blow_street"}
    community = {r for r, a in identity.PERMISSIONS if a == "whistles:blow_community"}
    assert street == {"street_commander", "admin"}
    assert community == {"community_officer", "admin"}
    assert not identity.allowed("screen", "incidents:report")
    assert identity.allowed("gridworker", "patrols:ingest")


def test_users_and_departments_from_the_cli(cli_for, demo_db) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    added = cli("departments", "add", "t-police", "红桥公安分局", "--kind", "police")
    assert added.exit_code == 0, added.output
    station = cli("departments", "add", "t-police-xigu", "西沽派出所", "--kind", "police",
                  "--parent", "t-police")  # fmt: skip
    assert station.exit_code == 0, station.output
    ok = [
        ("zhang", "--role", "street_commander", "--region", "120106002"),
        ("li", "--role", "gridworker", "--region", "120106002001001"),
        ("wang", "--role", "department_officer", "--region", "120106",
         "--department", "t-police-xigu"),
        ("wall", "--role", "screen", "--region", "120106"),
    ]  # fmt: skip
    for args in ok:
        result = cli("users", "add", *args)
        assert result.exit_code == 0, result.output
    listed = cli("users", "list", "--json")
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert users["wang"]["department"] == "t-police-xigu"
    assert users["zhang"]["region_code"] == "120106002"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("x", "--role", "mayor", "--region", "120106"), "unknown role"),
        (("x", "--role", "street_commander", "--region", "999999999"), "unknown region"),
        (("x", "--role", "street_commander", "--region", "120106"), "street level"),
        (("x", "--role", "department_officer", "--region", "120106"), "needs --department"),
        (("x", "--role", "department_officer", "--region", "120106", "--department", "nope"),
         "unknown department"),
        (("", "--role", "screen", "--region", "120106"), "empty"),
    ],
)  # fmt: skip
def test_bad_users_are_refused_and_nothing_is_created(cli_for, demo_db, args, words) -> None:  # type: ignore[no-untyped-def]
    before = counts(demo_db)
    result = cli_for(demo_db)("users", "add", *args)
    assert result.exit_code == 1
    assert words in result.output
    assert counts(demo_db) == before


def test_duplicate_user_and_department_are_refused(cli_for, demo_db) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    assert cli("users", "add", "a", "--role", "planner", "--region", "120106").exit_code == 0
    again = cli("users", "add", "a", "--role", "planner", "--region", "120106")
    assert again.exit_code == 1 and "already exists" in again.output
    assert cli("departments", "add", "d", "D", "--kind", "fire").exit_code == 0
    dup = cli("departments", "add", "d", "D", "--kind", "fire")
    assert dup.exit_code == 1 and "already exists" in dup.output
    kind = cli("departments", "add", "e", "E", "--kind", "army")
    assert kind.exit_code == 1 and "unknown department kind" in kind.output


def test_tokens_are_shown_once_stored_hashed_expire_and_revoke(cli_for, demo_db) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    assert cli("users", "add", "li", "--role", "gridworker", "--region",
               "120106002001001").exit_code == 0  # fmt: skip
    made = cli("tokens", "create", "li")
    assert made.exit_code == 0
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("gm_") and len(token) > 40
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT token_hash FROM access_token t JOIN staff s ON s.id = t.staff_id "
            "WHERE s.name = 'li'"
        )).scalars().all()  # fmt: skip
        assert stored == [hashlib.sha256(token.encode()).hexdigest()]
        assert token not in str(stored)
        who = identity.authenticate(conn, token)
        assert who is not None and who.name == "li" and who.role == "gridworker"
        assert who.region_code == "120106002001001" and who.can("patrols:ingest")
        assert identity.authenticate(conn, token + "x") is None
        assert identity.authenticate(conn, "Bearer " + token) is None
    second = cli("tokens", "create", "li", "--days", "1").stdout.strip()
    revoked = cli("tokens", "revoke", "li", "--token", token)
    assert revoked.exit_code == 0 and "1 token(s)" in revoked.output
    with engine.connect() as conn:
        assert identity.authenticate(conn, token) is None
        assert identity.authenticate(conn, second) is not None
        conn.execute(text("UPDATE access_token SET expires_at = now() - interval '1 second'"))
        assert identity.authenticate(conn, second) is None  # expired
        conn.rollback()
    assert cli("tokens", "revoke", "li").exit_code == 0  # all of them
    with engine.connect() as conn:
        assert identity.authenticate(conn, second) is None
    engine.dispose()
    assert cli("tokens", "create", "nobody").exit_code == 1
    assert cli("tokens", "create", "li", "--days", "0").exit_code == 1


def test_grid_members_and_the_duty_gridworker_in_locate_and_regions(  # type: ignore[no-untyped-def]
    cli_for, client_for, demo_db
) -> None:
    cli = cli_for(demo_db)
    grid = "120106002001001"
    for name, role, region in (("li", "gridworker", grid), ("zhou", "gridworker", grid),
                               ("chen", "community_officer", "120106002001")):  # fmt: skip
        assert cli("users", "add", name, "--role", role, "--region", region).exit_code == 0
    assert cli("grids", "assign", grid, "li").exit_code == 0
    assert cli("grids", "assign", grid, "chen", "--kind", "leader").exit_code == 0
    second = cli("grids", "assign", grid, "zhou")
    assert second.exit_code == 1 and "already has li" in second.output
    assert cli("grids", "assign", "120106002001", "zhou").exit_code == 1  # a community
    bad_kind = cli("grids", "assign", grid, "zhou", "--kind", "boss")
    assert bad_kind.exit_code == 1 and "unknown member kind" in bad_kind.output
    assert cli("grids", "assign", grid, "nobody").exit_code == 1

    client = client_for(demo_db)
    region = client.get(f"/api/v1/regions/{grid}").json()
    assert [(w["name"], w["kind"]) for w in region["duty_gridworkers"]] == [
        ("li", "primary"), ("chen", "leader")
    ]  # fmt: skip
    label = region["label_point"]
    here = client.get("/api/v1/locate", params={"lon": label[0], "lat": label[1]}).json()
    assert here["grid"]["code"] == grid
    assert [w["name"] for w in here["duty_gridworkers"]] == ["li", "chen"]
    community = client.get("/api/v1/regions/120106002001").json()
    assert community["duty_gridworkers"] == []
    # A new member shows in the running server's answers (its roster follows NOTIFY).
    assert cli("grids", "assign", grid, "zhou", "--kind", "police").exit_code == 0
    deadline = time.monotonic() + 10
    while True:
        here = client.get("/api/v1/locate", params={"lon": label[0], "lat": label[1]}).json()
        if [w["name"] for w in here["duty_gridworkers"]] == ["li", "chen", "zhou"]:
            break
        assert time.monotonic() < deadline, here["duty_gridworkers"]
        time.sleep(0.1)


def test_demo_gridworkers_one_per_grid(cli_for, demo_db) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    first = cli("demo", "gridworkers")
    assert first.exit_code == 0 and "992 gridworker(s)" in first.output
    assert "0 gridworker(s)" in cli("demo", "gridworkers").output  # idempotent
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        primaries = conn.execute(
            text("SELECT count(DISTINCT grid_code) FROM grid_assignment WHERE kind = 'primary'")
        ).scalar_one()
        roster = identity.duty(conn, ["120106001001001"])["120106001001001"]
    engine.dispose()
    assert primaries == 992
    assert len(roster) == 1 and roster[0]["kind"] == "primary" and roster[0]["display_name"]


def test_demo_departments_and_who_serves_a_point(cli_for, demo_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    loaded = cli("departments", "load")
    assert loaded.exit_code == 0, loaded.output
    assert cli("departments", "load").exit_code == 0  # idempotent, by code
    rows = {d["code"]: d for d in json.loads(cli("departments", "list", "--json").stdout)}
    assert len(rows) == 43 and rows["hq-police-004"]["parent"] == "hq-police"
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        # A point inside a grid of street 120106004 (西沽): its police station first.
        x, y = point_inside(conn, "120106004002001")
        police = identity.departments_covering(conn, x, y, kind="police")
        everyone = identity.departments_covering(conn, x, y)
    engine.dispose()
    assert [d["code"] for d in police] == ["hq-police-004", "hq-police"]
    assert {"hq-cityman-004", "hq-fire", "hq-housing"} <= {d["code"] for d in everyone}
    assert "hq-police-005" not in {d["code"] for d in everyone}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("departments:\n  - {code: a, name: A, kind: navy}\n", "unknown kind"),
        ("departments:\n  - {code: a, name: A, kind: fire, parent: zz}\n", "unknown parent"),
        ("departments:\n  - {code: a, name: A, kind: fire, service_area: ['999']}\n",
         "unknown region"),
        ("departments:\n  - {code: a, name: A, kind: fire}\n  - {code: a, name: B, kind: fire}\n",
         "appears twice"),
        ("departments:\n  - {name: A, kind: fire}\n", "needs a code"),
        ("nothing: here\n", "'departments' list"),
        ("departments: [unclosed\n", "departments.yaml"),
    ],
)  # fmt: skip
def test_a_bad_department_catalogue_loads_nothing(cli_for, demo_db, tmp_path, body, words):  # type: ignore[no-untyped-def]
    path = tmp_path / "departments.yaml"
    path.write_text(body + "  - {code: ok, name: OK, kind: fire}\n" if "departments:\n" in body
                    else body, encoding="utf-8")  # fmt: skip
    before = counts(demo_db)
    result = cli_for(demo_db)("departments", "load", path)
    assert result.exit_code == 1, result.output
    assert words in result.output
    assert counts(demo_db) == before


def test_passwords_from_the_cli_are_stored_as_scrypt_only(cli_for, demo_db) -> None:  # type: ignore[no-untyped-def]
    cli = cli_for(demo_db)
    assert cli("users", "add", "zhao", "--role", "planner", "--region", "120106").exit_code == 0
    done = cli("users", "passwd", "zhao", "--password-stdin", input="correct horse\n")
    assert done.exit_code == 0, done.output
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM staff WHERE name = 'zhao'")).scalar()
    engine.dispose()
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    assert identity.verify_password("correct horse", stored)
    assert not identity.verify_password("correct horsE", stored)
    assert not identity.verify_password("anything", None)
    short = cli("users", "passwd", "zhao", "--password-stdin", input="short\n")
    assert short.exit_code == 1 and "at least 8" in short.output
    nobody = cli("users", "passwd", "nobody", "--password-stdin", input="long enough\n")
    assert nobody.exit_code == 1 and "no user named 'nobody'" in nobody.output
    prompted = cli("users", "passwd", "zhao", input="another one\nanother one\n")
    assert prompted.exit_code == 0, prompted.output


def test_demo_users_one_per_role_made_once_and_their_passwords_kept_private(  # type: ignore[no-untyped-def]
    cli_for, demo_db, tmp_path
) -> None:
    engine = make_engine(demo_db)
    with engine.begin() as conn:  # the template already has them: start over for two roles
        conn.execute(text("DELETE FROM staff WHERE name IN ('demo-planner', 'demo-screen')"))
    engine.dispose()
    cli = cli_for(demo_db)
    made = cli("demo", "users")
    assert made.exit_code == 0, made.output
    assert "2 demo user(s) created" in made.output
    kept = tmp_path / "var" / "demo-users.txt"
    assert kept.stat().st_mode & 0o777 == 0o600
    rows = [line.split("\t") for line in kept.read_text().splitlines()]
    assert {r[0] for r in rows} == {"demo-planner", "demo-screen"}
    assert all(r[0] in made.output and r[3] in made.output for r in rows)  # printed: how to log in
    assert "/login" in made.output
    again = cli("demo", "users")
    assert "0 demo user(s) created" in again.output
    users = {u["name"]: u for u in json.loads(cli("users", "list", "--json").stdout)}
    roles = {u["role"] for n, u in users.items() if n.startswith("demo-")}
    assert roles == set(identity.ROLES)
    officer = users["demo-department-officer"]
    assert officer["department"] == "hq-police-001" and officer["region_code"] == "120106001"
