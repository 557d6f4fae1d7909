"""Boundary versions on a real PostGIS: import → activate → query → as_of an older version."""

from __future__ import annotations

import datetime as dt
import threading
import time

import psycopg
import pytest
import shapely
from sqlalchemy import text

from app.db.engine import make_engine
from app.services import boundaries as service
from app.services.regions import covering
from app.settings import Settings
from gis.crs import metric_area
from gis.io import read_boundaries
from tests.fixtures.tiny import X0, Y0, U, box, frame, replace, tiny_rows

TABLES = ("boundary_version", "boundary_activation", "region", "region_subdivided")


def _boundaries(rows: list[dict]):  # type: ignore[no-untyped-def]
    from gis.io import BoundaryFile

    return BoundaryFile(frame=frame(rows), sources=["tiny.geojson"])


def _counts(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


@pytest.fixture
def engine(empty_db: str):  # type: ignore[no-untyped-def]
    engine = make_engine(empty_db)
    yield engine
    engine.dispose()


OPTIONS = Settings().validation


def test_import_creates_an_inactive_version_with_linked_subdivided_regions(engine) -> None:
    version, report = service.import_boundaries(
        engine, _boundaries(tiny_rows()), OPTIONS, label="v1"
    )
    assert report.ok
    assert not version.is_active
    assert version.counts == {"district": 1, "street": 2, "community": 2, "grid": 8}
    with engine.connect() as conn:
        assert service.active_version(conn) is None
        rows = conn.execute(
            text(
                "SELECT c.code, p.code AS parent, ST_SRID(c.geom) AS srid, "
                "GeometryType(c.geom) AS type, c.area_m2, ST_AsBinary(c.geom) AS wkb "
                "FROM region c LEFT JOIN region p ON p.id = c.parent_id WHERE c.version_id = :v"
            ),
            {"v": version.id},
        ).all()
        parts = conn.execute(
            text("SELECT count(DISTINCT region_id) FROM region_subdivided WHERE version_id = :v"),
            {"v": version.id},
        ).scalar_one()
    by_code = {r.code: r for r in rows}
    assert len(rows) == 13
    assert parts == 13  # every region has its subdivided pieces
    assert by_code["120106001001003"].parent == "120106001001"
    assert by_code["120106"].parent is None
    assert {r.srid for r in rows} == {4490}
    assert {r.type for r in rows} == {"MULTIPOLYGON"}
    grid = by_code["120106001001001"]
    expected = metric_area([shapely.from_wkb(grid.wkb)], "EPSG:4548")[0]
    assert grid.area_m2 == pytest.approx(expected, rel=1e-9)
    # A unit square of 0.004° at 39.16° N is about 345 m × 444 m.
    assert 140_000 < grid.area_m2 < 165_000


def test_broken_file_is_refused_with_all_three_defects_and_nothing_is_written(engine) -> None:
    service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="good")
    before = _counts(engine)
    from tests.conftest import FIXTURES

    data = read_boundaries([FIXTURES / "broken_hierarchy.geojson"])
    with pytest.raises(service.BoundaryRejected) as refused:
        service.import_boundaries(engine, data, OPTIONS, label="broken")
    issues = refused.value.report.errors
    kinds = {(i.kind, i.code) for i in issues}
    assert ("invalid-geometry", "120106001001001") in kinds
    overlap = [i for i in issues if i.kind == "overlap"]
    assert overlap and {overlap[0].code, *overlap[0].message.split()} >= {
        "120106002001001",
        "120106002001002",
    }
    missing = [i for i in issues if i.kind == "missing-parent"]
    assert [i.code for i in missing] == ["120106002009004"]
    assert "120106002009" in missing[0].message
    assert _counts(engine) == before


def test_label_must_be_unique(engine) -> None:
    service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="same")
    before = _counts(engine)
    with pytest.raises(service.LabelTaken):
        service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="same")
    assert _counts(engine) == before


def _moved_rows() -> list[dict]:
    """Version 2: the boundary between grids 1 and 2 of community 1 moves east by a quarter."""
    rows = replace(tiny_rows(), "120106001001001", geometry=box(0, 1, 1.25, 2), name="新一")
    return replace(rows, "120106001001002", geometry=box(1.25, 1, 2, 2))


def test_activation_switches_and_as_of_answers_from_the_version_then_active(engine) -> None:
    v1, _ = service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="v1")
    service.activate(engine, "v1")
    time.sleep(0.01)
    v2, _ = service.import_boundaries(engine, _boundaries(_moved_rows()), OPTIONS, label="v2")
    service.activate(engine, v2.id)

    # A point in the strip that moved from grid 2 to grid 1.
    lon, lat = X0 + 1.1 * U, Y0 + 1.5 * U
    with engine.connect() as conn:
        active = service.active_version(conn)
        assert active is not None and active.id == v2.id
        versions = service.list_versions(conn)
        assert [v.is_active for v in versions] == [False, True]
        between = versions[1].activated_at - dt.timedelta(microseconds=1)
        assert service.version_at(conn, between).id == v1.id
        assert service.version_at(conn, versions[0].activated_at - dt.timedelta(seconds=1)) is None
        grid_now = covering(conn, v2.id, lon, lat)[-1]
        grid_then = covering(conn, v1.id, lon, lat)[-1]
    assert grid_now["code"] == "120106001001001"
    assert grid_then["code"] == "120106001001002"

    # Rolling back re-activates v1; the log still knows v2 was active in between.
    service.activate(engine, v1.id)
    with engine.connect() as conn:
        log = conn.execute(
            text("SELECT version_id, activated_at FROM boundary_activation ORDER BY id")
        ).all()
        assert [r.version_id for r in log] == [v1.id, v2.id, v1.id]
        assert service.version_at(conn, log[2].activated_at).id == v1.id
        assert service.version_at(conn, log[2].activated_at - dt.timedelta(microseconds=1)).id == (
            v2.id
        )


def test_activating_an_unknown_version_fails_cleanly(engine) -> None:
    with pytest.raises(service.VersionNotFound):
        service.activate(engine, "no-such-version")


def test_concurrent_activations_leave_exactly_one_active(engine) -> None:
    ids = [
        service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label=f"c{i}")[0].id
        for i in range(3)
    ]
    errors: list[BaseException] = []

    def run(version_id: int) -> None:
        try:
            for _ in range(5):
                service.activate(engine, version_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine.connect() as conn:
        active = conn.execute(text("SELECT count(*) FROM boundary_version WHERE is_active"))
        assert active.scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM boundary_activation")).scalar_one() == 15


def test_activation_notifies_listeners(engine, empty_db: str) -> None:
    version, _ = service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="n")
    conninfo = engine.url.render_as_string(hide_password=False).replace(
        "postgresql+psycopg://", "postgresql://"
    )
    with psycopg.connect(conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {service.NOTIFY_CHANNEL}")
        service.activate(engine, version.id)
        received = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert received == [str(version.id)]


def test_database_lookup_covers_shared_edges_deterministically(engine) -> None:
    version, _ = service.import_boundaries(engine, _boundaries(tiny_rows()), OPTIONS, label="e")
    with engine.connect() as conn:
        inside = covering(conn, version.id, X0 + 0.5 * U, Y0 + 1.5 * U)
        edge = covering(conn, version.id, X0 + 1.0 * U, Y0 + 1.5 * U)  # grids 1 | 2
        outside = covering(conn, version.id, X0 - 1.0 * U, Y0)
    assert [r["level"] for r in inside] == ["district", "street", "community", "grid"]
    assert inside[-1]["code"] == "120106001001001"
    # On the shared edge both grids cover the point; the lower code is answered.
    assert edge[-1]["code"] == "120106001001001"
    assert outside == []
