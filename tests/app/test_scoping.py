"""The one scope filter: a region subtree by code prefix, or a department's subtree."""

from __future__ import annotations

from sqlalchemy import text

from app.db.engine import make_engine
from app.services.identity import Principal
from app.services.scoping import ScopeFilter, prefix_pattern, scope_for

RECORDS = [
    ("a", "120106001001001", "hq-police-001"),
    ("b", "120106001002", "hq-cityman-001"),
    ("c", "120106002001001", "hq-police-002"),
    ("d", "120106", "hq-police"),
    ("e", "120106010001001", None),  # street 010: shares "1201060", not the street's code
]


def _visible(conn, reach: ScopeFilter, department: bool = True) -> set[str]:  # type: ignore[no-untyped-def]
    rows = conn.execute(
        text(
            "SELECT id FROM (VALUES "
            + ", ".join(f"(:i{n}, :r{n}, CAST(:d{n} AS text))" for n in range(len(RECORDS)))
            + ") AS rec(id, region_code, department_code) WHERE "
            + reach.sql(region="region_code", department="department_code" if department else None)
        ),
        {
            **reach.params,
            **{f"i{n}": r[0] for n, r in enumerate(RECORDS)},
            **{f"r{n}": r[1] for n, r in enumerate(RECORDS)},
            **{f"d{n}": r[2] for n, r in enumerate(RECORDS)},
        },
    )
    return set(rows.scalars())


def test_a_region_subtree_is_a_code_prefix(shared_demo_db: str) -> None:
    engine = make_engine(shared_demo_db)
    with engine.connect() as conn:
        street = scope_for(conn, Principal(1, "s", "street_commander", "120106001", None))
        assert street == ScopeFilter("120106001")
        assert _visible(conn, street) == {"a", "b"}
        community = ScopeFilter("120106001001")
        assert _visible(conn, community) == {"a"}
        assert _visible(conn, ScopeFilter("120106")) == {"a", "b", "c", "d", "e"}
        # The SQL and the in-memory rule agree record by record.
        for reach in (street, community, ScopeFilter("120106002")):
            assert _visible(conn, reach) == {r[0] for r in RECORDS if reach.allows(r[1])}
    engine.dispose()
    assert prefix_pattern("12_%") == r"12\_\%%"


def test_a_department_officer_sees_their_department_and_those_below(shared_demo_db: str) -> None:
    engine = make_engine(shared_demo_db)
    with engine.connect() as conn:
        station = scope_for(
            conn, Principal(1, "p", "department_officer", "120106001", "hq-police-001")
        )
        assert station.departments == ("hq-police-001",)
        assert _visible(conn, station) == {"a"}
        bureau = scope_for(conn, Principal(2, "q", "department_officer", "120106", "hq-police"))
        assert bureau.departments is not None and "hq-police-010" in bureau.departments
        assert "hq-cityman-001" not in bureau.departments
        assert _visible(conn, bureau) == {"a", "c", "d"}
        # Records with no department dimension fall back to the officer's home region.
        assert _visible(conn, station, department=False) == {"a", "b"}
        assert station.allows("120106002001001", ["hq-police-001"])
        assert not station.allows("120106001001001", ["hq-police-002"])
        assert station.allows("120106001001001")  # no departments named: by region
    engine.dispose()
