"""The demo activity: a realistic stream of cases loaded in bulk, consistent with the live
service's own rules (grid chain, routing, deadlines, history), and loaded once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from app.db.engine import make_engine
from app.services import demo_activity, incidents
from tests.conftest import bearer


def test_a_week_of_demo_cases_is_consistent_and_loaded_once(  # type: ignore[no-untyped-def]
    demo_db, client_for, demo_users
) -> None:
    engine = make_engine(demo_db)
    end = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)
    made = demo_activity.load(engine, days=7, per_day=300, seed=7, end=end)
    assert 0.85 * 2100 < made < 1.15 * 2100
    assert demo_activity.load(engine, days=7, per_day=300, seed=7, end=end) == 0  # once
    with engine.connect() as conn:
        # Every case lies in the grid it names, in the active version, with its chain.
        wrong = conn.execute(text(
            "SELECT count(*) FROM incident i JOIN region r ON r.code = i.grid_code "
            "AND r.version_id = i.boundary_version_id "
            "WHERE NOT ST_Covers(r.geom, i.geom) OR i.street_code <> substr(i.grid_code, 1, 9) "
            "OR i.community_code <> substr(i.grid_code, 1, 12) OR i.region_code <> i.grid_code"
        )).scalar_one()  # fmt: skip
        assert wrong == 0
        by_status = dict(conn.execute(text(
            "SELECT status, count(*) FROM incident GROUP BY status")).all())  # fmt: skip
        assert set(by_status) <= set(incidents.STATES)
        assert by_status["closed"] > 0.5 * made
        # Open cases carry the step that runs and its deadline; closed ones know if on time.
        assert conn.execute(text(
            "SELECT count(*) FROM incident WHERE status IN ('filed', 'dispatched', 'handling', "
            "'handled') AND (step IS NULL OR due_at IS NULL)")).scalar_one() == 0  # fmt: skip
        assert conn.execute(text(
            "SELECT count(*) FROM incident WHERE status = 'closed' AND (closed_on_time IS NULL "
            "OR closed_on_time <> (overdue_steps = 0))")).scalar_one() == 0  # fmt: skip
        # Like a district that closes 99 %: most cases keep their limits, some run over.
        on_time = conn.execute(
            text("SELECT avg(closed_on_time::int) FROM incident WHERE status = 'closed'")
        ).scalar_one()
        assert 0.8 < on_time < 0.99
        # The lifecycle stays in order after steps were fitted to their limits.
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM incident WHERE filed_at < reported_at "
                    "OR dispatched_at < filed_at OR handled_at < dispatched_at "
                    "OR verified_at < handled_at OR closed_at < verified_at"
                )
            ).scalar_one()
            == 0
        )
        assert conn.execute(text(
            "SELECT count(*) FROM incident_history h JOIN incident i ON i.id = h.incident_id "
            "WHERE h.action = 'accept' AND (h.at < i.dispatched_at OR h.at > i.handled_at)"
        )).scalar_one() == 0  # fmt: skip
        # Routed as the live service routes: the class's kind, the station serving the street.
        routed = conn.execute(text(
            "SELECT i.department_code, d.kind, c.department_kind FROM incident i "
            "JOIN incident_class c ON c.code = i.class_code "
            "JOIN department d ON d.code = i.department_code "
            "WHERE i.department_code IS NOT NULL")).all()  # fmt: skip
        assert routed and all(r.kind in (r.department_kind, "city_management") for r in routed)
        # One history row per transition, ending in the case's status, in time order.
        last = conn.execute(text(
            "SELECT count(*) FROM incident i JOIN LATERAL (SELECT to_status FROM "
            "incident_history h WHERE h.incident_id = i.id ORDER BY h.at DESC, h.id DESC "
            "LIMIT 1) h ON true WHERE h.to_status <> i.status")).scalar_one()  # fmt: skip
        assert last == 0
        unknown = conn.execute(text(
            "SELECT DISTINCT action FROM incident_history")).scalars().all()  # fmt: skip
        assert set(unknown) <= {"report", *incidents.TRANSITIONS}
        # A live case from the demo can go on through the live service's table.
        handling = conn.execute(text(
            "SELECT id, department_code FROM incident WHERE status = 'handling' "
            "AND street_code = '120106001' LIMIT 1")).first()  # fmt: skip
    engine.dispose()
    client = client_for(demo_db, token=None)
    commander = bearer(demo_users["street_commander"]["token"])
    figures = client.get("/api/v1/regions/120106001/figures", headers=commander,
                         params={"from": "2026-11-13", "to": "2026-11-21"}).json()  # fmt: skip
    assert figures["counts"]["reported"] > 0 and figures["rates"]["filing_rate"] > 0.9
    if handling is not None:
        done = client.post(f"/api/v1/incidents/{handling.id}/actions", headers=commander,
                           json={"action": "park"})  # fmt: skip
        assert done.status_code == 200 and done.json()["status"] == "parked"
