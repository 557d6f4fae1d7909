"""Engine, sessions and migrations against the embedded cluster or ``GRIDMAP_DATABASE_URL``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from app.db.embedded import EmbeddedPostgres
from app.settings import Settings

MIGRATIONS = Path(__file__).with_name("migrations")


def embedded(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(
        settings.var_dir, port=settings.pg_port, tcp=settings.pg_tcp, os_user=settings.pg_os_user
    )


def database_url(settings: Settings) -> str:
    """The configured external URL, else the embedded cluster's."""
    return settings.database_url or embedded(settings).url()


def make_engine(url: str) -> Engine:
    # A request may hold two connections (its read snapshot and a write), so the pool keeps
    # room for ~10 concurrent requests without opening and closing overflow connections.
    return create_engine(url, pool_pre_ping=True, pool_size=20, max_overflow=20)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations (idempotent)."""
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    config = _alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()
