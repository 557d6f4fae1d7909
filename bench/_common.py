"""What the benchmarks share: running one with a timed log that stops cleanly on SIGTERM, and a
private embedded PostGIS cluster holding the active demo district."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_FILE = ROOT / "data" / "boundaries" / "hongqiao_demo.gpkg"
Log = Callable[[str], None]


# uvicorn as `gridmap serve` runs it (gridmap's benchmarks and the peers they start alike).
UVICORN_FLAGS = ("--workers", "1", "--http", "httptools", "--loop", "uvloop", "--log-level",
                 "warning", "--no-access-log", "--timeout-keep-alive", "60")  # fmt: skip


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def uvicorn_process(
    app: Sequence[str],
    *,
    env: dict[str, str],
    log_file: Path,
    ready_path: str,
    python: str = sys.executable,
    cwd: Path = ROOT,
    flags: Sequence[str] = UVICORN_FLAGS,
    timeout: float = 90,
) -> Iterator[tuple[str, int]]:
    """``python -m uvicorn <app> <flags>`` on a free loopback port in a process of its own;
    yields its base URL and process id once ``ready_path`` answers below 500. Stopped on the
    way out."""
    import httpx2 as httpx

    port = free_port()
    cmd = [python, "-m", "uvicorn", *app, "--host", "127.0.0.1", "--port", str(port), *flags]
    base = f"http://127.0.0.1:{port}"
    name = " ".join(app)
    with log_file.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"uvicorn {name} exited with {proc.returncode}:\n{log_file.read_text()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + ready_path, timeout=2).status_code < 500:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn {name} did not answer {ready_path} in {timeout:.0f} s")
            time.sleep(0.1)
        yield base, proc.pid
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Terminate a child server (SIGTERM, then SIGKILL after ``timeout`` s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _on_sigterm(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # run the finally blocks: stop the servers and the cluster


def run_logged(run: Callable[[Log], int]) -> int:
    """``run(log)`` with a log on stderr that stamps each line with the seconds since start;
    SIGTERM stops it through its finally blocks. Returns its exit code."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    code = run(log)
    log(f"done in {time.perf_counter() - started:.1f} s")
    return code


@dataclass
class DemoCluster:
    cluster: Any  # app.db.embedded.EmbeddedPostgres
    url: str
    engine: Any  # sqlalchemy.Engine, disposed on the way out
    version: Any  # the demo district's boundary version, active

    @property
    def postmaster(self) -> int:
        return int((self.cluster.data_dir / "postmaster.pid").read_text().split()[0])

    def versions(self) -> dict[str, str]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return {
                "postgres": conn.execute(text("SHOW server_version")).scalar_one(),
                "postgis": conn.execute(text("SELECT postgis_lib_version()")).scalar_one(),
            }


@contextlib.contextmanager
def demo_cluster(pg_dir: Path, log: Log) -> Iterator[DemoCluster]:
    """A private embedded cluster in ``pg_dir`` (fsync off), migrated, with the demo district
    imported and activated. A directory left by an interrupted run is removed first; the
    cluster and its directory are removed on the way out."""
    from app.db.embedded import EmbeddedPostgres
    from app.db.engine import make_engine, upgrade
    from app.services import boundaries
    from app.settings import Settings
    from gis.io import read_boundaries

    cluster = EmbeddedPostgres(pg_dir, fast=True, database="gridmap_bench")
    if pg_dir.exists():
        cluster.destroy()
        shutil.rmtree(pg_dir, ignore_errors=True)
    pg_dir.mkdir(parents=True)
    pg_dir.chmod(0o755)
    try:
        log(f"starting a private PostGIS cluster in {pg_dir.relative_to(ROOT)}, importing the "
            "demo …")  # fmt: skip
        cluster.up()
        url = cluster.url()
        engine = make_engine(url)
        try:
            upgrade(engine)
            settings = Settings(database_url=url)
            data = read_boundaries([DEMO_FILE], scheme=settings.code_scheme)
            version, _ = boundaries.import_boundaries(
                engine, data, settings.validation, label="bench", source_paths=[DEMO_FILE]
            )
            boundaries.activate(engine, version.id)
            yield DemoCluster(cluster, url, engine, version)
        finally:
            engine.dispose()
    finally:
        cluster.destroy()
        shutil.rmtree(pg_dir, ignore_errors=True)
