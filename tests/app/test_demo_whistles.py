"""Demo whistles: about 90 whistles over a year, played through the whistle service on a
simulated clock — every state in the last days, overdue ones under supervision, second whistles,
feedback, the previous month's ratings — and loaded once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import text

from app.api.whistles import evaluate_period
from app.db.engine import make_engine
from app.services import demo_activity, demo_whistles, identity, whistles
from app.services.evaluation import Deduction, check_deductions
from app.services.locate import LocateService
from app.settings import Settings

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_a_year_of_demo_whistles_runs_the_whole_loop_and_loads_once(demo_db, client_for) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(demo_db)
    identity.demo_gridworkers(engine)  # as setup does: grid members for community whistles
    demo_activity.load(engine, days=4, per_day=60, seed=3)  # open cases to blow for
    locator = LocateService(engine, metric_crs="EPSG:4548")
    locator.refresh()
    try:
        made = demo_whistles.load(engine, locator)
        assert 85 <= made <= 100, made  # 90 blown, plus the second whistles
        assert demo_whistles.load(engine, locator) == 0  # once
        with engine.connect() as conn:

            def one(sql: str, **params: object) -> int:
                return conn.execute(text(sql), params).scalar_one()

            assert one("SELECT count(*) FROM whistle") == made
            states = set(conn.execute(text("SELECT DISTINCT status FROM whistle")).scalars())
            assert states == set(whistles.STATES)
            recent = set(conn.execute(text(
                "SELECT DISTINCT status FROM whistle WHERE blown_at > now() - interval '4 days'"
            )).scalars())  # fmt: skip
            assert recent == set(whistles.STATES)  # the last days hold every state
            # Overdue right now: one nobody has come to, one not resolved in time.
            assert one(f"SELECT count(*) FROM whistle w WHERE {whistles.OVERDUE_SQL}") >= 2
            assert one(
                "SELECT count(*) FROM whistle w WHERE w.status IN ('blown', 'responding') "
                "AND w.report_due_at < now() AND NOT EXISTS (SELECT 1 FROM whistle_party p "
                "WHERE p.whistle_id = w.id AND p.arrived_at IS NOT NULL)"
            ) >= 1  # fmt: skip
            assert one(
                "SELECT count(*) FROM whistle w WHERE w.status = 'responding' "
                "AND w.resolved_at IS NULL AND w.resolve_due_at < now()"
            ) >= 1  # fmt: skip
            # Supervision: both steps recorded, the still-overdue ones still open.
            steps = dict(conn.execute(text(
                "SELECT step, count(*) FROM supervision GROUP BY step")).all())  # fmt: skip
            assert steps.get("report", 0) > 0 and steps.get("resolve", 0) > 0
            assert one("SELECT count(*) FROM supervision WHERE closed_at IS NULL") > 0
            assert one(
                "SELECT count(*) FROM supervision v JOIN whistle w ON w.id = v.whistle_id "
                "WHERE v.closed_at IS NULL AND w.status IN ('closed', 'escalated', 'cancelled')"
            ) == 0  # fmt: skip
            # Second whistles: district ones for escalated street whistles, run to closing by
            # the district.
            seconds = conn.execute(text(
                "SELECT w.status, h.actor_role FROM whistle w "
                "JOIN whistle f ON f.id = w.parent_id AND f.status = 'escalated' "
                "LEFT JOIN whistle_history h ON h.whistle_id = w.id AND h.action = 'close' "
                "WHERE w.level = 'district'")).all()  # fmt: skip
            assert len(seconds) >= 4
            assert ("closed", "district_commander") in seconds
            # Every whistle has its blow row; closed ones their feedback and every lead done.
            assert one(
                "SELECT count(*) FROM whistle w WHERE NOT EXISTS (SELECT 1 FROM "
                "whistle_history h WHERE h.whistle_id = w.id AND h.action = 'blow')"
            ) == 0  # fmt: skip
            assert one(
                "SELECT count(*) FROM whistle WHERE status = 'closed' AND feedback IS NULL"
            ) == 0  # fmt: skip
            assert one(
                "SELECT count(*) FROM whistle w JOIN whistle_party p ON p.whistle_id = w.id "
                "WHERE w.status = 'closed' AND p.role IN ('lead', 'co') AND p.status <> 'done'"
            ) == 0  # fmt: skip
            # Check-ins: most near the place, the far ones flagged.
            near, far = conn.execute(text(
                "SELECT count(*) FILTER (WHERE NOT checkin_far), count(*) FILTER (WHERE "
                "checkin_far) FROM whistle_party WHERE arrived_at IS NOT NULL")).one()  # fmt: skip
            assert far > 0 and near > 10 * far
            assert one(
                "SELECT count(*) FROM whistle_party WHERE checkin_far <> "
                "(checkin_distance_m > 300)"
            ) == 0  # fmt: skip
            # Spread over every street, each blown by its own street's commander.
            assert one("SELECT count(DISTINCT street_code) FROM whistle") == 10
            assert one(
                "SELECT count(*) FROM whistle w JOIN staff s ON s.id = w.blown_by "
                "WHERE w.parent_id IS NULL AND s.region_code <> w.region_code"
            ) == 0  # fmt: skip
            # Cases a whistle covers lie in its street.
            assert one(
                "SELECT count(*) FROM whistle_incident wi JOIN whistle w ON w.id = wi.whistle_id "
                "JOIN incident i ON i.id = wi.incident_id WHERE i.street_code <> w.street_code"
            ) == 0  # fmt: skip
            # The previous calendar month: closed street whistles with several departments,
            # and the streets' ratings, every deduction with its reason.
            first = dt.datetime.now(SHANGHAI).replace(day=1, hour=0, minute=0, second=0,
                                                       microsecond=0)  # fmt: skip
            previous = (first - dt.timedelta(days=1)).replace(day=1)
            period = previous.strftime("%Y-%m")
            closed, departments = conn.execute(
                text(
                    "SELECT count(DISTINCT w.id), count(DISTINCT p.department_id) FROM whistle w "
                    "JOIN whistle_party p ON p.whistle_id = w.id WHERE w.level = 'street' "
                    "AND w.status = 'closed' AND w.blown_at >= :a AND w.blown_at < :b"
                ),
                {"a": previous, "b": first},
            ).one()
            assert closed >= 3 and departments >= 3
            ratings = conn.execute(
                text("SELECT deductions FROM street_rating WHERE period = :p"), {"p": period}
            ).scalars().all()  # fmt: skip
            assert ratings and any(ratings)
            for cuts in ratings:
                check_deductions([Deduction(c["points"], c["reason"]) for c in cuts])
            # ... which the evaluation scores: every rating is of a pair it knows.
            scored = evaluate_period(conn, period, Settings())
            assert len(scored.departments) >= 3
            assert any(d.perceived < 100 for d in scored.departments)
            assert len(scored.pairs) == len(ratings)
    finally:
        locator.stop()
        engine.dispose()
    # The wall's map data shows whistles in every state, the overdue ones flagged, and the
    # departments' check-ins as lines to their places.
    shown = client_for(demo_db).get("/api/v1/whistles-map").json()["features"]
    places = [f["properties"] for f in shown if f["properties"]["kind"] == "whistle"]
    assert {p["status"] for p in places} == set(whistles.STATES)
    assert any(p["overdue"] for p in places)
    lines = [f for f in shown if f["properties"]["kind"] == "check_in"]
    assert lines and all(f["geometry"]["type"] == "LineString" for f in lines)
