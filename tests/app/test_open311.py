"""Open311 GeoReport v2 over the case loop: the catalogue as services, intake located onto the
grid, the requests list with its filters and paging, scope, and every bad input named."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import identity
from tests.conftest import bearer, point_inside

GRID = "120106001001001"  # inside every demo user's home region
OTHER_GRID = "120106002001001"  # another street
CLASS = "E0101"
OTHER_CLASS = "E0102"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
BASE = "/open311/v2"


@pytest.fixture
def world(demo_db: str, client_for, demo_users) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    with engine.connect() as conn:
        point, other = point_inside(conn, GRID), point_inside(conn, OTHER_GRID)
    yield {"engine": engine, "client": client_for(demo_db, token=None), "users": demo_users,
           "point": point, "other_point": other}  # fmt: skip
    engine.dispose()


def as_(world: dict[str, Any], role: str) -> dict[str, str]:
    return bearer(world["users"][role]["token"])


def post(world: dict[str, Any], role: str = "gridworker", *, json: bool = False, **fields: Any):  # type: ignore[no-untyped-def]
    x, y = world["point"]
    body = {"service_code": CLASS, "lat": y, "long": x, "description": "垃圾暴露", **fields}
    body = {k: v for k, v in body.items() if v is not None}
    client: TestClient = world["client"]
    if json:
        return client.post(f"{BASE}/requests.json", json=body, headers=as_(world, role))
    form = {k: str(v) for k, v in body.items()}
    return client.post(f"{BASE}/requests.json", data=form, headers=as_(world, role))


def made_id(response: Any) -> int:
    assert response.status_code == 201, response.text
    return int(response.json()[0]["service_request_id"])


def requests(world: dict[str, Any], role: str = "district_commander", **params: Any) -> Any:
    return world["client"].get(f"{BASE}/requests.json", params=params, headers=as_(world, role))


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [int(r["service_request_id"]) for r in response.json()]


def act(world: dict[str, Any], case: int, action: str, **body: Any) -> None:
    done = world["client"].post(
        f"/api/v1/incidents/{case}/actions", json={"action": action, **body},
        headers=as_(world, "admin"),
    )  # fmt: skip
    assert done.status_code == 200, done.text


def assert_named(response: Any, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert field in [e["field"] for e in body["errors"]], body
    listed = body["open311_errors"]
    assert listed and all(e["code"] == (400 if status == 422 else status) for e in listed)
    assert any(e["description"].startswith(f"{field}:") for e in listed), listed


# -- services -----------------------------------------------------------------------------------


def test_services_are_the_catalogue(shared_client: TestClient) -> None:
    services = shared_client.get(f"{BASE}/services.json")
    assert services.status_code == 200
    catalogue = {c["code"]: c for c in shared_client.get("/api/v1/incident-classes").json()}
    assert [s["service_code"] for s in services.json()] == sorted(catalogue)
    first = next(s for s in services.json() if s["service_code"] == CLASS)
    c = catalogue[CLASS]
    assert first == {
        "service_code": CLASS, "service_name": c["name_zh"], "description": c["filing_condition"],
        "metadata": False, "type": "realtime", "group": c["major_name_zh"],
        "keywords": f"{c['name_en']}, {c['kind']}, E01" + (", urgent" if c["urgent"] else ""),
    }  # fmt: skip
    english = shared_client.get(f"{BASE}/services.json", params={"lang": "en"}).json()
    first_en = next(s for s in english if s["service_code"] == CLASS)
    assert first_en["service_name"] == c["name_en"] and first_en["group"] == c["major_name_en"]
    assert c["name_zh"] in first_en["keywords"]
    assert_named(shared_client.get(f"{BASE}/services.json", params={"lang": "fr"}), 422, "lang")


# -- intake -------------------------------------------------------------------------------------


def test_a_posted_request_is_a_case_on_the_right_grid(world) -> None:  # type: ignore[no-untyped-def]
    made = post(world, address_string="红桥区某路 1 号", first_name="三", last_name="张",
                phone="13800000000", email="z@example.cn", media_url="https://x.example/a.jpg",
                api_key="ignored", jurisdiction_id="ignored")  # fmt: skip
    case = made_id(made)
    answer = made.json()
    assert answer == [{"service_request_id": str(case), "account_id": None,
                       "service_notice": f"已上报，所在网格 {GRID}，待立案"}]  # fmt: skip
    assert made.headers["location"] == f"{BASE}/requests/{case}.json"
    native = world["client"].get(f"/api/v1/incidents/{case}", headers=as_(world, "gridworker"))
    assert native.status_code == 200
    n = native.json()
    assert n["grid_code"] == GRID and n["street_code"] == GRID[:9] and not n["out_of_area"]
    assert n["source"] == "app" and n["class_code"] == CLASS and n["status"] == "reported"
    assert n["input"]["crs"] == "wgs84" and n["address"] == "红桥区某路 1 号"
    assert n["photos"] == []  # media_url is not fetched
    with world["engine"].connect() as conn:
        contact = conn.execute(text("SELECT reporter_contact FROM incident WHERE id = :i"),
                               {"i": case}).scalar_one()  # fmt: skip
    assert contact == "last_name: 张; first_name: 三; phone: 13800000000; email: z@example.cn"

    one = world["client"].get(f"{BASE}/requests/{case}.json", headers=as_(world, "gridworker"))
    assert one.status_code == 200
    [r] = one.json()
    x, y = world["point"]
    assert r["service_request_id"] == str(case) and r["status"] == "open"
    assert r["service_code"] == CLASS and r["service_name"] == n["class_name"]
    assert r["description"] == "垃圾暴露" and r["address"] == "红桥区某路 1 号"
    assert abs(r["lat"] - y) < 1e-9 and abs(r["long"] - x) < 1e-9
    assert r["service_notice"] == "上报" and r["status_notes"] is None
    assert r["agency_responsible"] is None and r["expected_datetime"] is None
    assert r["media_url"] is None and r["address_id"] is None and r["zipcode"] is None
    requested = dt.datetime.fromisoformat(r["requested_datetime"])
    assert requested.tzinfo is not None
    assert requested == dt.datetime.fromisoformat(r["updated_datetime"])

    # JSON is accepted too; English notice with ?lang=en.
    x2, y2 = world["point"]
    as_json = world["client"].post(
        f"{BASE}/requests.json", params={"lang": "en"}, headers=as_(world, "gridworker"),
        json={"service_code": CLASS, "lat": y2, "long": x2, "description": "json"},
    )  # fmt: skip
    assert made_id(as_json) != case
    assert as_json.json()[0]["service_notice"] == f"reported on grid {GRID}; awaiting filing"


def test_a_retry_with_the_same_key_makes_no_second_case(world) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    form = {"service_code": CLASS, "lat": str(y), "long": str(x), "description": "retry"}
    headers = {**as_(world, "gridworker"), "Idempotency-Key": "app-7"}
    first = world["client"].post(f"{BASE}/requests.json", data=form, headers=headers)
    again = world["client"].post(f"{BASE}/requests.json", data=form, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json() == first.json()
    other = world["client"].post(f"{BASE}/requests.json", data={**form, "description": "x"},
                                 headers=headers)  # fmt: skip
    assert_named(other, 409, "Idempotency-Key")


def test_a_point_outside_every_grid_is_kept_and_said_so(world) -> None:  # type: ignore[no-untyped-def]
    made = post(world, "district_commander", lat=39.30, long=117.30)
    made_id(made)
    assert "不在任何网格内" in made.json()[0]["service_notice"]


# -- reading ------------------------------------------------------------------------------------


def test_the_loop_shows_through_status_notes_agency_and_deadline(world) -> None:  # type: ignore[no-untyped-def]
    department = world["users"]["department_officer"]["department"]
    case = made_id(post(world))
    act(world, case, "file", note="立案")
    act(world, case, "dispatch", department=department, note="派城管")
    [r] = world["client"].get(f"{BASE}/requests/{case}.json",
                              headers=as_(world, "street_commander")).json()  # fmt: skip
    native = world["client"].get(f"/api/v1/incidents/{case}", headers=as_(world, "admin")).json()
    assert r["status"] == "open" and r["service_notice"] == "已派遣"
    assert r["status_notes"] == "派城管" and r["agency_responsible"] == department
    assert dt.datetime.fromisoformat(r["expected_datetime"]) == dt.datetime.fromisoformat(
        native["due_at"]
    )
    assert dt.datetime.fromisoformat(r["updated_datetime"]) == dt.datetime.fromisoformat(
        native["history"][-1]["at"]
    )
    # The department officer reaches it through its department, in English.
    [en] = world["client"].get(f"{BASE}/requests/{case}.json", params={"lang": "en"},
                               headers=as_(world, "department_officer")).json()  # fmt: skip
    with world["engine"].connect() as conn:
        name_en = conn.execute(text("SELECT name_en FROM incident_class WHERE code = :c"),
                               {"c": CLASS}).scalar_one()  # fmt: skip
    assert en["service_notice"] == "dispatched" and en["service_name"] == name_en
    assert r["service_name"] == native["class_name"]
    # Terminal states are closed; the last note is the one of the last row, even if empty.
    rejected = made_id(post(world))
    act(world, rejected, "reject", note="不属实")
    merged = made_id(post(world))
    act(world, merged, "merge", target=case)
    got = {
        int(x["service_request_id"]): x
        for x in requests(world, service_request_id=f"{case},{rejected},{merged}").json()
    }
    statuses = {k: v["status"] for k, v in got.items()}
    assert statuses == {case: "open", rejected: "closed", merged: "closed"}
    assert got[rejected]["status_notes"] == "不属实" and got[merged]["status_notes"] is None
    assert got[rejected]["service_notice"] == "不予立案"


def test_media_url_is_the_first_photo(world) -> None:  # type: ignore[no-untyped-def]
    x, y = world["point"]
    made = world["client"].post(
        "/api/v1/incidents", headers=as_(world, "gridworker"),
        data={"lon": str(x), "lat": str(y), "crs": "cgcs2000", "class_code": CLASS,
              "source": "patrol", "description": "有照片"},
        files=[("photos", ("a.jpg", JPEG, "image/jpeg"))],
    )  # fmt: skip
    assert made.status_code == 201, made.text
    photo = made.json()["photos"][0]
    [r] = world["client"].get(f"{BASE}/requests/{made.json()['id']}.json",
                              headers=as_(world, "gridworker")).json()  # fmt: skip
    assert r["media_url"] == f"http://testserver{photo['url']}"
    got = world["client"].get(r["media_url"], headers=as_(world, "gridworker"))
    assert got.status_code == 200 and got.content == JPEG


def test_filters_status_service_code_bbox_and_dates(world) -> None:  # type: ignore[no-untyped-def]
    a = made_id(post(world))
    b = made_id(post(world, service_code=OTHER_CLASS))
    ox, oy = world["other_point"]
    c = made_id(post(world, "district_commander", lat=oy, long=ox))
    d = made_id(post(world))
    act(world, d, "reject")
    old = made_id(post(world))
    with world["engine"].begin() as conn:
        conn.execute(text("UPDATE incident SET reported_at = now() - interval '100 days' "
                          "WHERE id = :i"), {"i": old})  # fmt: skip

    assert ids(requests(world)) == [d, c, b, a]  # newest first, the old one out of 90 days
    assert ids(requests(world, status="open")) == [c, b, a]
    assert ids(requests(world, status="closed")) == [d]
    assert ids(requests(world, status="open,closed")) == [d, c, b, a]
    assert ids(requests(world, service_code=OTHER_CLASS)) == [b]
    assert ids(requests(world, service_code=CLASS)) == [d, c, a]
    assert ids(requests(world, service_code=f"{CLASS},{OTHER_CLASS}")) == [d, c, b, a]
    x, y = world["point"]
    box = f"{x - 1e-4},{y - 1e-4},{x + 1e-4},{y + 1e-4}"
    assert ids(requests(world, bbox=box)) == [d, b, a]
    ox, oy = world["other_point"]
    assert ids(requests(world, bbox=f"{ox - 1e-4},{oy - 1e-4},{ox + 1e-4},{oy + 1e-4}")) == [c]

    now = dt.datetime.now(dt.UTC)
    long_ago = (now - dt.timedelta(days=200)).isoformat()
    assert ids(requests(world, start_date=long_ago)) == [old, d, c, b, a]
    week_ago = (now - dt.timedelta(days=7)).isoformat()
    assert ids(requests(world, start_date=long_ago, end_date=week_ago)) == [old]
    assert ids(requests(world, end_date=week_ago)) == [old]
    assert ids(requests(world, start_date=week_ago)) == [d, c, b, a]
    a_day = (now - dt.timedelta(days=100)).date().isoformat()  # a bare date: Beijing midnight
    assert old in ids(requests(world, start_date=a_day))
    # service_request_id overrides every other filter (GeoReport), but never the scope.
    assert ids(requests(world, service_request_id=f"{a},{old}", status="closed")) == [old, a]
    assert ids(requests(world, "street_commander", service_request_id=f"{a},{c}")) == [a]


def test_pages_by_number_and_by_cursor(world) -> None:  # type: ignore[no-untyped-def]
    made = [made_id(post(world)) for _ in range(5)]
    newest_first = made[::-1]
    seen: list[int] = []
    for page in (1, 2, 3):
        got = requests(world, page_size=2, page=page)
        seen += ids(got)
        if page < 3:
            nxt = parse_qs(urlsplit(got.headers["link"].split(">")[0][1:]).query)
            assert nxt["page"] == [str(page + 1)] and nxt["page_size"] == ["2"]
        else:
            assert "link" not in got.headers
    assert seen == newest_first
    assert ids(requests(world, page_size=2, page=4)) == []

    seen = []
    params: dict[str, Any] = {"page_size": 2, "status": "open"}
    while True:
        got = requests(world, **params)
        seen += ids(got)
        if "link" not in got.headers:
            break
        link = got.headers["link"]
        assert link.endswith('>; rel="next"')
        nxt = parse_qs(urlsplit(link[1 : link.index(">")]).query)
        assert nxt["status"] == ["open"] and "page" not in nxt
        params = {k: v[0] for k, v in nxt.items()}
    assert seen == newest_first
    assert len(ids(requests(world, page_size=1000))) == 5


def test_another_streets_commander_sees_nothing(world) -> None:  # type: ignore[no-untyped-def]
    engine = world["engine"]
    identity.add_user(engine, "cmd-b", role="street_commander", region="120106002")
    b = bearer(identity.create_token(engine, "cmd-b"))
    case = made_id(post(world))
    client: TestClient = world["client"]
    hidden = client.get(f"{BASE}/requests/{case}.json", headers=b)
    nobody = client.get(f"{BASE}/requests/{case + 1000}.json", headers=b)
    assert hidden.status_code == nobody.status_code == 404
    assert hidden.json()["type"] == nobody.json()["type"] == "urn:gridmap:problem:not-found"
    assert hidden.json()["open311_errors"] == [
        {"code": 404, "description": f"no service request {case}"}
    ]
    assert client.get(f"{BASE}/requests.json", headers=b).json() == []
    assert client.get(f"{BASE}/requests.json", headers=b,
                      params={"service_request_id": str(case)}).json() == []  # fmt: skip
    x, y = world["point"]
    form = {"service_code": CLASS, "lat": str(y), "long": str(x), "description": "not mine"}
    refused = client.post(f"{BASE}/requests.json", headers=b, data=form)
    assert_named(refused, 403, "long")
    assert refused.json()["type"] == "urn:gridmap:problem:outside-scope"
    # Street A's commander sees it.
    assert ids(requests(world, "street_commander")) == [case]


def test_roles_without_the_action_and_anonymous_callers_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = world["client"]
    anonymous = client.get(f"{BASE}/requests.json")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["open311_errors"][0]["code"] == 401
    screen = post(world, "screen")  # reads, never reports
    assert screen.status_code == 403 and screen.json()["open311_errors"][0]["code"] == 403
    assert requests(world, "screen").status_code == 200


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service_code": "E9999"}, "service_code"),
        ({"service_code": "e0101"}, "service_code"),  # codes are exact; the nearest is named
        ({"service_code": "E0101X99"}, "service_code"),
        ({"service_code": "E01010101"}, "service_code"),
        ({"service_code": ""}, "service_code"),
        ({"lat": "abc"}, "lat"),
        ({"lat": "91"}, "lat"),
        ({"lat": "nan"}, "lat"),
        ({"lat": ""}, "lat"),
        ({"long": "181"}, "long"),
        ({"long": "inf"}, "long"),
        ({"lat": "117.15", "long": "39.17"}, "lat"),  # swapped
        ({"lat": None}, "lat"),
        ({"long": None}, "long"),
        ({"description": None}, "description"),
        ({"description": ""}, "description"),
        ({"description": "   "}, "description"),
        ({"description": "x" * 4001}, "description"),
        ({"description": "a\x00b"}, "description"),
        ({"address_string": "x" * 501}, "address_string"),
        ({"phone": "1" * 41}, "phone"),
    ],
)
def test_bad_posts_are_refused_naming_the_field(world, change, field) -> None:  # type: ignore[no-untyped-def]
    response = post(world, **change)
    assert_named(response, 422, field)
    if change.get("service_code") == "e0101":
        assert "nearest: E0101" in response.json()["detail"]
        assert response.json()["nearest_codes"][0] == "E0101"
    with world["engine"].connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0


def test_bad_bodies_are_named_too(world) -> None:  # type: ignore[no-untyped-def]
    client: TestClient = world["client"]
    headers = as_(world, "gridworker")
    url = f"{BASE}/requests.json"
    assert_named(post(world, json=True, lat="north"), 422, "lat")
    assert_named(post(world, json=True, lat="39.1"), 422, "lat")  # JSON: a number, not text
    assert_named(post(world, json=True, long=True), 422, "long")
    assert_named(post(world, json=True, service_code=101), 422, "service_code")
    as_json = {**headers, "content-type": "application/json"}
    not_json = client.post(url, content=b"{", headers=as_json)
    assert_named(not_json, 422, "body")
    a_list = client.post(url, json=[1], headers=headers)
    assert_named(a_list, 422, "body")
    broken = client.post(url, content=b"description=%FF&lat=1", headers={
        **headers, "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert_named(broken, 422, "body")
    multipart = client.post(url, files=[("media", ("a.jpg", JPEG, "image/jpeg"))], headers=headers)
    assert multipart.status_code == 415
    assert multipart.json()["open311_errors"] == [
        {"code": 415, "description": multipart.json()["detail"]}
    ]
    too_big = client.post(url, data={"description": "x" * 70_000}, headers=headers)
    assert too_big.status_code == 413 and too_big.json()["open311_errors"][0]["code"] == 413


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "pending"}, "status"),
        ({"status": "open,"}, "status"),
        ({"service_code": "E9999"}, "service_code"),
        ({"service_code": "E01;"}, "service_code"),
        ({"service_request_id": "abc"}, "service_request_id"),
        ({"service_request_id": "9" * 19}, "service_request_id"),
        ({"service_request_id": ",".join(["1"] * 1001)}, "service_request_id"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-13-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "end_date"),
        ({"bbox": "1,2,3"}, "bbox"),
        ({"bbox": "117.2,39.1,117.1,39.2"}, "bbox"),
        ({"bbox": "117,39,200,40"}, "bbox"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "1001"}, "page_size"),
        ({"page": "0"}, "page"),
        ({"page": "1", "cursor": "MTA"}, "cursor"),
        ({"cursor": "bm90LWEtbnVtYmVy"}, "cursor"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"lang": "de"}, "lang"),
    ],
)
def test_bad_filters_are_named(shared_client: TestClient, params, field) -> None:  # type: ignore[no-untyped-def]
    assert_named(shared_client.get(f"{BASE}/requests.json", params=params), 422, field)


def test_a_bad_request_id_is_named(shared_client: TestClient) -> None:
    for bad in ("abc", "0", str(2**62 + 1)):
        response = shared_client.get(f"{BASE}/requests/{bad}.json")
        assert_named(response, 422, "service_request_id")
    assert shared_client.get(f"{BASE}/requests/12345.json").status_code == 404
