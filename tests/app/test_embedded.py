"""`gridmap db up | down | status | url`: a private cluster in ./var/pg that survives restarts."""

from __future__ import annotations

import json
import os
import pwd
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.db.embedded import EmbeddedPostgres
from tests.conftest import Cli, free_port, private_tmpdir


@pytest.fixture
def var_dir() -> Iterator[Path]:
    base = private_tmpdir("gridmap-var-")
    yield base / "var"
    EmbeddedPostgres(base / "var").destroy()
    shutil.rmtree(base, ignore_errors=True)


def _cli(var: Path, **extra: str) -> Cli:
    return Cli({"GRIDMAP_VAR_DIR": str(var), "GRIDMAP_DATABASE_URL": None, **extra})  # type: ignore[dict-item]


def test_up_status_url_down_and_data_survives_a_restart(var_dir: Path) -> None:
    cli = _cli(var_dir)
    up = cli("db", "up")
    assert up.exit_code == 0, up.output
    status = json.loads(cli("db", "status", "--json").stdout)
    assert status["running"] is True and status["initialised"] is True
    assert Path(status["data_dir"]) == var_dir / "pg"
    assert Path(status["socket_dir"]) == var_dir / "run"
    assert status["revision"] is None  # nothing migrated yet
    if os.geteuid() == 0:
        # initdb refuses root: the cluster runs as an unprivileged user and owns its files.
        assert status["os_user"] != "root"
        assert (var_dir / "pg").stat().st_uid == pwd.getpwnam(status["os_user"]).pw_uid
    url = cli("db", "url").stdout.strip()
    assert url.startswith("postgresql+psycopg://") and "run" in url

    cluster = EmbeddedPostgres(var_dir)
    with cluster.connect() as conn:
        assert conn.execute("SELECT extname FROM pg_extension WHERE extname='postgis'").fetchone()
        conn.execute("CREATE TABLE kept (note text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
        conn.commit()
    assert cli("db", "down").exit_code == 0
    stopped = cli("db", "status")
    assert stopped.exit_code == 1 and "False" in stopped.output
    with pytest.raises(psycopg.OperationalError):
        cluster.connect(connect_timeout=2)
    assert cli("db", "up").exit_code == 0
    with cluster.connect() as conn:
        assert conn.execute("SELECT note FROM kept").fetchone() == ("still here",)
    assert "not running" not in cli("db", "down").output
    assert "not running" in cli("db", "down").output


def test_migrate_on_the_embedded_cluster(var_dir: Path) -> None:
    cli = _cli(var_dir)
    assert cli("db", "migrate").exit_code == 0  # starts the cluster on demand
    status = json.loads(cli("db", "status", "--json").stdout)
    assert status["revision"] == status["head"] is not None


def test_optional_tcp_listener_with_a_password(var_dir: Path) -> None:
    port = free_port()
    cli = _cli(var_dir, GRIDMAP_PG_TCP="true", GRIDMAP_PG_PORT=str(port))
    assert cli("db", "up").exit_code == 0
    password = (var_dir / "pg-password").read_text().strip()
    assert (var_dir / "pg-password").stat().st_mode & 0o077 == 0
    with psycopg.connect(
        host="127.0.0.1", port=port, user="gridmap", dbname="gridmap", password=password
    ) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host="127.0.0.1", port=port, user="gridmap", dbname="gridmap", password="wrong"
        )


def test_missing_binaries_say_what_to_install(var_dir: Path, tmp_path: Path) -> None:
    result = _cli(var_dir, GRIDMAP_PG_BINDIR=str(tmp_path))("db", "up")
    assert result.exit_code == 2
    assert "apt-get install -y postgresql postgis" in result.output
    assert "Traceback" not in result.output


def test_external_database_url_switches_everything(var_dir: Path) -> None:
    url = "postgresql+psycopg://someone@db.example/gridmap"
    cli = _cli(var_dir, GRIDMAP_DATABASE_URL=url)
    assert cli("db", "url").stdout.strip() == url
    assert "nothing to start" in cli("db", "up").output
    assert not (var_dir / "pg").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has to hand the cluster to another user")
def test_unreachable_var_dir_moves_the_cluster_out_of_reach_of_permissions(tmp_path: Path) -> None:
    # pytest's tmp_path sits under a 0700 directory: the cluster's OS user cannot reach it.
    var = tmp_path / "var"
    cluster = EmbeddedPostgres(var, fast=True)
    try:
        cluster.up()
        assert (var / "pg").is_symlink()
        assert str((var / "pg").resolve()).startswith("/var/lib/gridmap/")
        with cluster.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        target = (var / "pg").resolve()
        cluster.destroy()
        assert not target.exists()
