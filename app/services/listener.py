"""One daemon thread LISTENing for PostgreSQL notifications on a connection of its own.

In-memory caches (the locate index, the tile cache) hear of committed changes this way: NOTIFY is
delivered after commit, to every process that listens, so several workers stay consistent. The
thread reconnects after an error; ``on_connect`` runs on every (re)connection, because changes
made while nobody listened are unknown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import psycopg
from sqlalchemy import Engine

log = logging.getLogger(__name__)


class NotifyListener:
    """LISTEN on ``channels``; ``on_notice(payload)`` per notification, ``on_idle()`` after
    ``idle_s`` seconds without one, ``on_disconnect(error)`` when the connection is lost."""

    def __init__(
        self,
        engine: Engine,
        channels: Sequence[str],
        *,
        name: str,
        on_notice: Callable[[str], None],
        on_connect: Callable[[], None] = lambda: None,
        on_idle: Callable[[], None] | None = None,
        idle_s: float = 30.0,
        on_disconnect: Callable[[Exception | None], None] = lambda _exc: None,
        retry_s: float = 2.0,
    ) -> None:
        self.engine = engine
        self.channels = tuple(channels)
        self.name = name
        self.on_notice, self.on_connect, self.on_idle = on_notice, on_connect, on_idle
        self.on_disconnect = on_disconnect
        self.idle_s, self.retry_s = idle_s, retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _conninfo(self) -> str:
        url = self.engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def _run(self) -> None:
        while not self._stop.is_set():
            error: Exception | None = None
            try:
                with psycopg.connect(
                    self._conninfo(), autocommit=True, application_name=self.name
                ) as conn:
                    for channel in self.channels:
                        conn.execute(f"LISTEN {channel}")
                    self.on_connect()
                    waited = 0.0
                    while not self._stop.is_set():
                        got = False
                        for notice in conn.notifies(timeout=1.0):
                            got = True
                            self.on_notice(notice.payload)
                        waited = 0.0 if got else waited + 1.0
                        if self.on_idle is not None and waited >= self.idle_s:
                            waited = 0.0
                            self.on_idle()
            except psycopg.Error as exc:
                log.warning("%s: %s; reconnecting", self.name, exc)
                error = exc
            finally:
                self.on_disconnect(error)
            self._stop.wait(self.retry_s)
