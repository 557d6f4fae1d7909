"""Shared fixtures: one throw-away PostGIS cluster per test run, template databases, and a fresh
database per test cloned from a template (CREATE DATABASE … TEMPLATE), so tests are isolated and
run on the real thing."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from app.db.embedded import EmbeddedPostgres
from app.db.engine import make_engine, upgrade
from app.services import boundaries as boundary_service
from app.services import identity, incidents, whistles
from app.services.catalog import DEFAULT_CATALOG
from app.settings import Settings, get_settings
from gis.io import read_boundaries

ROOT = Path(__file__).resolve().parents[1]
DEMO_FILE = ROOT / "data" / "boundaries" / "hongqiao_demo.gpkg"
FIXTURES = Path(__file__).parent / "fixtures"
DEMO_DEPARTMENTS = ROOT / "data" / "catalogs" / "departments.yaml"

# Made once per run in the templates, so every database cloned from them shares them: an admin
# (in both templates), and in the demo template one demo user per role with a password and a
# token (only hashes are stored, so a clone accepts the same tokens).
ADMIN = "test-admin"
# Apps made by tests run no supervision scheduler on the wall clock: tests that need supervision
# run a pass with their own clock (or ask for a scheduler explicitly).
os.environ.setdefault("GRIDMAP_SUPERVISION_INTERVAL_S", "0")
# Nor does `gridmap setup` walk a whole district's patrols for a day in every CLI test (two
# million fixes); the patrol tests load what they need.
os.environ.setdefault("GRIDMAP_DEMO_PATROLS", "false")
CREDENTIALS: dict[str, dict[str, str]] = {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def point_inside(conn: Any, code: str) -> tuple[float, float]:
    """A CGCS2000 point well inside a region of the active boundary version."""
    row = conn.execute(
        text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM region r "
             "JOIN boundary_version v ON v.id = r.version_id AND v.is_active "
             "WHERE r.code = :c) s"), {"c": code},
    ).one()  # fmt: skip
    return float(row[0]), float(row[1])


def private_tmpdir(prefix: str) -> Path:
    """A temporary directory the cluster's unprivileged OS user can reach (pytest's own
    tmp_path lives under a 0700 directory when run as root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def pg() -> Iterator[EmbeddedPostgres]:
    base = private_tmpdir("gridmap-test-")
    cluster = EmbeddedPostgres(base, fast=True, database="postgres")
    cluster.up()
    yield cluster
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def empty_template(pg: EmbeddedPostgres) -> str:
    """Migrated, no boundaries."""
    name = "tpl_empty"
    pg.create_database(name)
    engine = make_engine(pg.url(name))
    upgrade(engine)
    incidents.load_classes(engine, DEFAULT_CATALOG)
    whistles.load_into(engine)
    with engine.begin() as conn:  # no boundaries here to check a home region against
        conn.execute(
            text(
                "INSERT INTO staff (name, display_name, role, region_code) "
                "VALUES (:n, 'test admin', 'admin', '120106')"
            ),
            {"n": ADMIN},
        )
    CREDENTIALS[ADMIN] = {"role": "admin", "token": identity.create_token(engine, ADMIN)}
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def demo_template(pg: EmbeddedPostgres, empty_template: str) -> str:
    """Migrated, with the shipped demo district imported and active (version 1)."""
    name = "tpl_demo"
    pg.create_database(name, template=empty_template)
    engine = make_engine(pg.url(name))
    settings = Settings(database_url=pg.url(name))
    data = read_boundaries([DEMO_FILE], scheme=settings.code_scheme)
    version, _ = boundary_service.import_boundaries(
        engine, data, settings.validation, label="demo", source_paths=[DEMO_FILE]
    )
    boundary_service.activate(engine, version.id)
    identity.load_departments(engine, DEMO_DEPARTMENTS)
    for user in identity.demo_users(engine):
        CREDENTIALS[user["role"]] = {
            **user,
            "token": identity.create_token(engine, user["name"]),
        }
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def activity_template(pg: EmbeddedPostgres, demo_template: str) -> str:
    """The demo district with 120 days of demo cases up to now (~36,000, the demo's planted hot
    spots among them): the planners' analyses, notebooks and pages read it (clone it first)."""
    from app.services import demo_activity

    name = "tpl_activity"
    pg.create_database(name, template=demo_template)
    engine = make_engine(pg.url(name))
    demo_activity.load(engine, days=ACTIVITY_DAYS, per_day=300)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def admin_token(empty_template: str) -> str:
    """A bearer token of an admin, valid in every test database."""
    return CREDENTIALS[ADMIN]["token"]


@pytest.fixture(scope="session")
def demo_users(demo_template: str) -> dict[str, dict[str, str]]:
    """role → {name, role, region, department, password, token} of the demo database's users."""
    return {role: CREDENTIALS[role] for role in identity.ROLES}


ACTIVITY_DAYS = 120


def _clone(pg: EmbeddedPostgres, template: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    pg.create_database(name, template=template)
    yield pg.url(name)
    pg.drop_database(name)


@pytest.fixture
def empty_db(pg: EmbeddedPostgres, empty_template: str) -> Iterator[str]:
    """URL of a fresh migrated database with no boundaries (one per test)."""
    yield from _clone(pg, empty_template)


@pytest.fixture
def demo_db(pg: EmbeddedPostgres, demo_template: str) -> Iterator[str]:
    """URL of a fresh database holding the active demo district (one per test)."""
    yield from _clone(pg, demo_template)


@pytest.fixture(scope="session")
def shared_demo_db(pg: EmbeddedPostgres, demo_template: str) -> Iterator[str]:
    """A demo database shared by read-only tests (never write to it)."""
    yield from _clone(pg, demo_template)


def make_settings(url: str, tmp: Path) -> Settings:
    return Settings(database_url=url, var_dir=tmp / "var")


@pytest.fixture
def client_for(tmp_path: Path, admin_token: str) -> Iterator[Callable[..., TestClient]]:
    """Build a TestClient on the app for a database URL, sending an admin's bearer token
    (``token=None``: anonymous)."""
    from app.main import create_app

    clients: list[TestClient] = []

    def build(
        url: str,
        token: str | None = admin_token,
        settings: dict[str, Any] | None = None,
        **client_options: Any,
    ) -> TestClient:
        headers = bearer(token) if token else {}
        app = create_app(make_settings(url, tmp_path).model_copy(update=settings or {}))
        client = TestClient(app, headers=headers, **client_options)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def shared_app(shared_demo_db: str):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(Settings(database_url=shared_demo_db))


@pytest.fixture(scope="session")
def shared_client(shared_app, admin_token: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """The app on the shared demo database (read-only tests), as an admin."""
    with TestClient(shared_app, headers=bearer(admin_token)) as client:
        yield client


@pytest.fixture(scope="session")
def anonymous(shared_app, shared_client: TestClient) -> TestClient:  # type: ignore[no-untyped-def]
    """The same app with no credentials (its lifespan is run by ``shared_client``)."""
    return TestClient(shared_app)


class Cli:
    """Runs ``gridmap`` in-process with GRIDMAP_* variables for one database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.runner = CliRunner()

    def __call__(self, *args: str, env: dict[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
        from app.cli import app

        # CliRunner sets and restores the environment; settings are cached per process.
        get_settings.cache_clear()
        try:
            return self.runner.invoke(
                app, [str(a) for a in args], env={**self.env, **(env or {})}, input=input
            )
        finally:
            get_settings.cache_clear()


@pytest.fixture
def cli_for(tmp_path: Path) -> Callable[[str], Cli]:
    def build(url: str) -> Cli:
        return Cli({"GRIDMAP_DATABASE_URL": url, "GRIDMAP_VAR_DIR": str(tmp_path / "var")})

    return build


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(shared_demo_db: str) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port (for the browser tests)."""
    with serve_app(Settings(database_url=shared_demo_db)) as base:
        yield base


@contextmanager
def serve_app(settings: Settings) -> Iterator[str]:
    """The app for ``settings`` served by uvicorn in a thread on a free loopback port; yields
    its base URL once it is listening."""
    import uvicorn

    from app.main import create_app

    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=free_port(), log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
