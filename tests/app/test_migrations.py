"""Schema only through Alembic: upgrade, downgrade, and the models match the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.db.engine import current_revision, downgrade, head_revision, make_engine, upgrade
from app.db.models import Base

OURS = {
    "boundary_version", "boundary_activation", "region", "region_subdivided",
    "department", "staff", "grid_assignment", "access_token", "login_attempt",
    "incident_class", "incident", "incident_history", "incident_photo", "incident_link",
    "whistle_situation", "whistle", "whistle_incident", "whistle_party", "whistle_history",
    "whistle_photo", "supervision", "notification", "street_rating", "patrol_fix",
}  # fmt: skip


def test_upgrade_downgrade_upgrade(empty_db: str) -> None:
    engine = make_engine(empty_db)
    assert current_revision(engine) == head_revision()
    assert set(inspect(engine).get_table_names()) >= OURS
    downgrade(engine, "base")
    assert current_revision(engine) is None
    assert not OURS & set(inspect(engine).get_table_names())
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_models_match_the_migrations(empty_db: str) -> None:
    engine = make_engine(empty_db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    ours = [d for d in diff if not (d[0] == "remove_table" and d[1].name not in OURS)]
    assert ours == []
