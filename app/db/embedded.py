"""A private PostgreSQL + PostGIS cluster in ``./var/pg``, run with the system's binaries.

``gridmap db up`` creates the cluster on first use (initdb), starts it (pg_ctl), and creates the
database with ``CREATE EXTENSION postgis``. It listens on a Unix socket in ``./var/run`` (a
private directory, mode 0700, trust authentication: only its owner and root can reach it) and,
when asked, on 127.0.0.1 with a generated password kept in ``./var/pg-password``.

Running as root: initdb and postgres refuse to run as root, so the cluster runs as an
unprivileged OS user: ``GRIDMAP_PG_OS_USER`` if set, else ``postgres`` (created by Debian's
packages), else a system user ``gridmap`` created on the spot. The data directory is owned by
that user. If that user cannot reach ``./var`` (a checkout under a private home directory), the
cluster's files live in ``/var/lib/gridmap/<hash>/`` and ``./var/pg`` is a symlink to them.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Install them with\n"
    "  Debian/Ubuntu: sudo apt-get install -y postgresql postgis\n"
    "  macOS:         brew install postgresql@15 postgis\n"
    "or point GRIDMAP_DATABASE_URL at an existing PostGIS."
)
POSTGIS_HINT = (
    "the PostGIS extension is not installed for this PostgreSQL. Install it with\n"
    "  Debian/Ubuntu: sudo apt-get install -y postgis postgresql-{major}-postgis-3\n"
    "  macOS:         brew install postgis"
)
_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class EmbeddedError(RuntimeError):
    """The embedded cluster could not be set up, started or reached."""


class PostgresNotFound(EmbeddedError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and postgres (``GRIDMAP_PG_BINDIR`` if set)."""
    tools = ("initdb", "pg_ctl", "postgres")
    if os.environ.get("GRIDMAP_PG_BINDIR"):
        chosen = Path(os.environ["GRIDMAP_PG_BINDIR"])
        if all((chosen / tool).exists() for tool in tools):
            return chosen
        raise PostgresNotFound(f"GRIDMAP_PG_BINDIR={chosen} lacks initdb/pg_ctl/postgres.\n"
                               + INSTALL_HINT)  # fmt: skip
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
            candidates.append(Path(out))
    versioned = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob(
        "/opt/homebrew/opt/postgresql@*/bin"
    )
    candidates += sorted(
        (Path(p) for p in versioned),
        key=lambda p: [int(x) for x in re.findall(r"\d+", str(p))],
        reverse=True,
    )
    candidates += [Path("/usr/local/pgsql/bin"), Path("/usr/local/bin"), Path("/usr/bin")]
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in tools):
            return bindir
    raise PostgresNotFound(INSTALL_HINT)


def _major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)", out)
    return int(match[1]) if match else 0


def postgis_installed(bindir: Path) -> bool:
    """Whether the PostGIS extension files exist for this server."""
    sharedirs = []
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            sharedirs.append(
                subprocess.run(
                    [str(pg_config), "--sharedir"], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
    sharedirs.append(f"/usr/share/postgresql/{_major(bindir)}")
    sharedirs.append(str(bindir.parent / "share" / "postgresql"))
    return any(Path(d, "extension", "postgis.control").exists() for d in sharedirs)


@dataclass
class EmbeddedPostgres:
    """One private cluster rooted at ``base`` (normally ``./var``)."""

    base: Path
    port: int = 5432
    tcp: bool = False
    os_user: str | None = None
    database: str = "gridmap"
    superuser: str = "gridmap"
    fast: bool = False  # fsync off: for throw-away test clusters only

    def __post_init__(self) -> None:
        self.base = Path(self.base).absolute()

    # ---- layout -----------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.base / "pg"

    @property
    def password_file(self) -> Path:
        return self.base / "pg-password"

    @property
    def socket_dir(self) -> Path:
        """``base/run``, or a short directory under /tmp when that path is too long."""
        preferred = self.base / "run"
        if len(str(preferred / f".s.PGSQL.{self.port}")) <= _SOCKET_MAX:
            return preferred
        digest = hashlib.sha1(str(self.base).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"gridmap-{digest}"

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL (psycopg 3) over the Unix socket."""
        return URL.create(
            "postgresql+psycopg",
            username=self.superuser,
            database=database or self.database,
            query={"host": str(self.socket_dir), "port": str(self.port)},
        ).render_as_string(hide_password=False)

    def tcp_url(self, database: str | None = None) -> str:
        return URL.create(
            "postgresql+psycopg",
            username=self.superuser,
            password=self.password_file.read_text().strip(),
            host="127.0.0.1",
            port=self.port,
            database=database or self.database,
        ).render_as_string(hide_password=False)

    def connect(self, database: str | None = None, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user=self.superuser,
            dbname=database or self.database,
            **kwargs,
        )

    # ---- state ------------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        result = self._run_as_owner(
            [str(find_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False
        )
        return result.returncode == 0

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "initialised": self.initialised(),
            "running": False,
            "url": self.url(),
            "os_user": self._owner_name(),
        }
        if info["initialised"]:
            info["version"] = (self.data_dir / "PG_VERSION").read_text().strip()
            info["running"] = self.running()
            pidfile = self.data_dir / "postmaster.pid"
            if info["running"] and pidfile.exists():
                info["pid"] = int(pidfile.read_text().split()[0])
        return info

    # ---- lifecycle --------------------------------------------------------------------------
    def up(self) -> None:
        """Initialise if needed, start if stopped, create the database and PostGIS."""
        bindir = find_bindir()
        if not postgis_installed(bindir):
            raise EmbeddedError(POSTGIS_HINT.format(major=_major(bindir)))
        self._prepare_dirs()
        if not self.initialised():
            self._initdb(bindir)
        self._write_conf()
        if not self.running():
            self._start(bindir)
        self.create_database(self.database, exist_ok=True)

    def down(self) -> bool:
        """Stop the cluster; False if it was not running."""
        if not self.running():
            return False
        self._run_as_owner(
            [str(find_bindir() / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast", "-w"]
        )
        return True

    def destroy(self) -> None:
        """Stop and delete the cluster's files (used for throw-away test clusters)."""
        with contextlib.suppress(EmbeddedError, subprocess.CalledProcessError):
            self.down()
        for path in (self.data_dir, self.socket_dir):
            shutil.rmtree(path.resolve(), ignore_errors=True)
            if path.is_symlink():
                path.unlink()
        home = self._relocated_home()
        if home.is_dir() and not any(home.iterdir()):
            home.rmdir()

    def create_database(
        self, name: str, *, template: str | None = None, exist_ok: bool = False
    ) -> None:
        """Create ``name`` (optionally as a copy of ``template``) with PostGIS enabled."""
        with self.connect("postgres", autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists and not exist_ok:
                raise EmbeddedError(f"database {name} already exists")
            if not exists:
                query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    query = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                conn.execute(query)
        if not template:
            with self.connect(name, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    def drop_database(self, name: str) -> None:
        with self.connect("postgres", autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # ---- internals --------------------------------------------------------------------------
    def _owner(self) -> pwd.struct_passwd | None:
        """The OS user the cluster runs as, or None to run as ourselves."""
        if os.geteuid() != 0:
            return None
        name = self.os_user
        if name is None:
            try:
                return pwd.getpwnam("postgres")
            except KeyError:
                name = "gridmap"
        try:
            return pwd.getpwnam(name)
        except KeyError:
            if name != "gridmap":
                raise EmbeddedError(
                    f"OS user {name!r} (GRIDMAP_PG_OS_USER) does not exist"
                ) from None
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", "gridmap"],
            check=True,
        )  # fmt: skip
        return pwd.getpwnam("gridmap")

    def _owner_name(self) -> str:
        owner = self._owner()
        return owner.pw_name if owner else pwd.getpwuid(os.geteuid()).pw_name

    def _run_as_owner(
        self, args: list[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        kwargs: dict[str, Any] = {}
        if owner is not None:
            kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "HOME": owner.pw_dir if owner else os.environ.get("HOME", "/"),
        }
        cwd = self.data_dir if self.data_dir.exists() else tempfile.gettempdir()
        try:
            result = subprocess.run(
                args, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, **kwargs
            )
        except PermissionError as exc:
            raise EmbeddedError(f"cannot run {args[0]}: {exc}") from exc
        if check and result.returncode != 0:
            raise EmbeddedError(
                f"{Path(args[0]).name} {args[1]} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def _reachable_by(self, owner: pwd.struct_passwd, path: Path) -> bool:
        result = subprocess.run(
            ["test", "-x", str(path)],
            user=owner.pw_uid,
            group=owner.pw_gid,
            extra_groups=[],
            check=False,
        )
        return result.returncode == 0

    def _relocated_home(self) -> Path:
        digest = hashlib.sha1(str(self.base).encode()).hexdigest()[:12]
        return Path("/var/lib/gridmap") / digest

    def _prepare_dirs(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        owner = self._owner()
        if (
            owner is not None
            and not self.data_dir.exists()
            and not self._reachable_by(owner, self.base)
        ):
            home = self._relocated_home()
            home.mkdir(parents=True, exist_ok=True)
            os.chmod(home.parent, 0o755)
            os.chmod(home, 0o755)
            for link in (self.data_dir, self.socket_dir):
                if link.parent == self.base and not link.exists():
                    (home / link.name).mkdir(exist_ok=True)
                    link.symlink_to(home / link.name, target_is_directory=True)
            print(
                f"note: {owner.pw_name} cannot reach {self.base}; the cluster lives in {home} "
                f"(linked from {self.data_dir})",
                file=sys.stderr,
            )
        for path in (self.data_dir, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if owner is not None:
                os.chown(path.resolve(), owner.pw_uid, owner.pw_gid)
            os.chmod(path.resolve(), 0o700)
        if owner is not None and not self._reachable_by(owner, self.socket_dir.resolve()):
            raise EmbeddedError(
                f"{owner.pw_name} cannot reach {self.socket_dir}; set GRIDMAP_VAR_DIR to a "
                "directory every user can traverse"
            )

    def _initdb(self, bindir: Path) -> None:
        if any(self.data_dir.resolve().iterdir()):
            raise EmbeddedError(
                f"{self.data_dir} is not empty but holds no cluster; move it away and retry"
            )
        password = secrets.token_urlsafe(24)
        self.password_file.write_text(password + "\n")
        os.chmod(self.password_file, 0o600)
        pwfile = self.socket_dir.resolve() / ".initdb-pw"
        pwfile.write_text(password + "\n")
        owner = self._owner()
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        try:
            self._run_as_owner(
                [str(bindir / "initdb"), "-D", str(self.data_dir.resolve()),
                 f"--username={self.superuser}", f"--pwfile={pwfile}",
                 "--auth-local=trust", "--auth-host=scram-sha-256",
                 "--encoding=UTF8", "--no-locale", "--no-instructions"],
                timeout=300,
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# gridmap: socket, port and listen address are set here on each start\n")
            fh.write("include_if_exists = 'gridmap.conf'\n")

    def _write_conf(self) -> None:
        lines = [
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir.resolve()}'",
            "unix_socket_permissions = 0700",
            f"listen_addresses = '{'127.0.0.1' if self.tcp else ''}'",
            "max_connections = 100",
            "logging_collector = off",
            # JIT compiling a year's aggregate (analytics, tiles) costs 1-3 s, more than it saves
            # on a district's few hundred thousand rows.
            "jit = off",
        ]
        if self.fast:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        target = self.data_dir / "gridmap.conf"
        target.write_text("\n".join(lines) + "\n")
        owner = self._owner()
        if owner is not None:
            os.chown(target, owner.pw_uid, owner.pw_gid)

    def _start(self, bindir: Path) -> None:
        stale = self.socket_dir / f".s.PGSQL.{self.port}"
        if stale.exists() and not (self.data_dir / "postmaster.pid").exists():
            stale.unlink()
        log = self.data_dir / "server.log"
        result = self._run_as_owner(
            [str(bindir / "pg_ctl"), "start", "-D", str(self.data_dir.resolve()),
             "-l", str(log.resolve()), "-w", "-t", "60"],
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = "\n".join(log.read_text().splitlines()[-15:])
            raise EmbeddedError(f"the cluster did not start:\n{result.stderr}\n{tail}")
