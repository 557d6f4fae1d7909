"""The locate index of the active boundary version, kept fresh in every worker process.

Each worker holds one :class:`Snapshot` — a boundary version and the :class:`gis.locate.GridIndex`
built from its grids — behind a single reference. A new snapshot is built completely before the
reference is swapped, so a request reads either the old snapshot or the new one, never a
half-built index, and the version a request reports is the version its answer came from.

Freshness: activating a version sends ``NOTIFY gridmap_boundaries`` (see
``app.services.boundaries.activate``). Each worker's listener thread LISTENs on that channel and
rebuilds when told; it also compares the active version id every ``locate_poll_s`` seconds, so a
notification lost with a dropped connection only delays the switch.

Older versions (``as_of``) are answered from the database (single points) or from an index built
on demand and kept for the last few versions asked (batches): versions never change once
imported, so those indexes never go stale.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from sqlalchemy import Engine, text

from app.services import identity
from app.services.boundaries import NOTIFY_CHANNEL, Version, active_version, get_version
from app.services.listener import NotifyListener
from gis.crs import out_of_china
from gis.locate import GridIndex, grids_with_chain

log = logging.getLogger("gridmap.locate")


def coordinate_problems(lon: np.ndarray, lat: np.ndarray) -> list[tuple[str, str] | None]:
    """Per point: None, or (field, message) for NaN/infinite, out-of-range or swapped-looking
    coordinates. Swapped: a latitude beyond ±90 where the longitude would fit, or a point outside
    China whose swap falls inside it (this service's users are all in China)."""
    x = np.asarray(lon, dtype=np.float64)
    y = np.asarray(lat, dtype=np.float64)
    out: list[tuple[str, str] | None] = [None] * len(x)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | ~np.isfinite(y) | (np.abs(x) > 180) | (np.abs(y) > 90)
        bad |= out_of_china(x, y) & ~out_of_china(y, x)
    for i in np.flatnonzero(bad).tolist():
        xi, yi = float(x[i]), float(y[i])
        if not math.isfinite(xi):
            out[i] = ("lon", f"{xi} is not a finite number")
        elif not math.isfinite(yi):
            out[i] = ("lat", f"{yi} is not a finite number")
        elif not -180 <= xi <= 180:
            out[i] = ("lon", f"{xi} is out of range (-180 … 180)")
        elif not -90 <= yi <= 90:
            hint = "; lon and lat look swapped" if -90 <= xi <= 90 and abs(yi) <= 180 else ""
            out[i] = ("lat", f"{yi} is out of range (-90 … 90){hint}")
        else:
            out[i] = ("lat", f"lon {xi}, lat {yi} is outside China but swapped is inside: swapped?")
    return out


@dataclass(frozen=True)
class Snapshot:
    version: Version
    index: GridIndex


def load_index(engine: Engine, version_id: int, metric_crs: str) -> GridIndex:
    """Build the index of one version from the database."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT code, name, level, parent_code, "
                "CASE WHEN level = 'grid' THEN ST_AsBinary(geom) END AS wkb "
                "FROM region WHERE version_id = :v"
            ),
            {"v": version_id},
        ).all()
    frame = gpd.GeoDataFrame(
        {
            "code": [r.code for r in rows],
            "name": [r.name for r in rows],
            "level": [r.level for r in rows],
            "parent_code": [r.parent_code for r in rows],
        },
        geometry=shapely.from_wkb([bytes(r.wkb) if r.wkb is not None else None for r in rows]),
        crs=4490,
    )
    return GridIndex(grids_with_chain(frame), metric_crs=metric_crs)


class LocateService:
    """One per worker process (``app.state.locate``)."""

    def __init__(self, engine: Engine, *, metric_crs: str, poll_s: float = 30.0) -> None:
        self.engine = engine
        self.metric_crs = metric_crs
        self.poll_s = poll_s
        self._snapshot: Snapshot | None = None
        self._loaded = False
        self._build_lock = threading.Lock()
        self._old: OrderedDict[int, GridIndex] = OrderedDict()
        self._old_lock = threading.Lock()
        # Refreshes on activation and staff changes (and anything activated before LISTEN took
        # effect), and every poll_s seconds in case a notification was lost.
        self._listener = NotifyListener(
            engine, (NOTIFY_CHANNEL, identity.STAFF_CHANNEL), name="gridmap-locate",
            on_notice=lambda _payload: self._safe_refresh(), on_connect=self._safe_refresh,
            on_idle=self._safe_refresh, idle_s=poll_s,
        )  # fmt: skip
        self._roster: dict[str, list[dict[str, Any]]] | None = None
        self.refreshes = 0  # how many snapshots this worker has built (for /health and tests)

    def current(self) -> Snapshot | None:
        """The snapshot to answer from (built on first use if the listener has not run)."""
        if not self._loaded:
            self.refresh()
        return self._snapshot

    def warm(self) -> None:
        """Build the first snapshot; a database that is not up yet is retried by the listener."""
        self._safe_refresh()

    def refresh(self) -> bool:
        """Rebuild if the active version changed; True if the snapshot was replaced."""
        with self._build_lock:
            with self.engine.connect() as conn:
                version = active_version(conn)
            current = self._snapshot
            self._loaded = True
            if version is None:
                changed = current is not None
                self._snapshot = None
                return changed
            if current is not None and current.version.id == version.id:
                return False
            index = load_index(self.engine, version.id, self.metric_crs)
            self._snapshot = Snapshot(version, index)  # the swap: one reference assignment
            self.refreshes += 1
            log.info("locate index: version %s (%s grids)", version.id, len(index))
            return True

    def roster(self, grid_code: str) -> list[dict[str, Any]]:
        """Who serves a grid (gridworker first, then members), from memory; reloaded when
        assignments change (NOTIFY gridmap_staff) and at every poll."""
        roster = self._roster
        if roster is None:
            roster = self.reload_roster()
        return roster.get(grid_code, [])

    def reload_roster(self) -> dict[str, list[dict[str, Any]]]:
        with self.engine.connect() as conn:
            roster = identity.duty(conn)
        self._roster = roster  # one reference swap, as for the index
        return roster

    def index_for(self, version_id: int) -> GridIndex:
        """The index of any version: the current one, or one built for an ``as_of``."""
        snapshot = self._snapshot
        if snapshot is not None and snapshot.version.id == version_id:
            return snapshot.index
        with self._old_lock:
            if version_id in self._old:
                self._old.move_to_end(version_id)
                return self._old[version_id]
        index = load_index(self.engine, version_id, self.metric_crs)
        with self._old_lock:
            self._old[version_id] = index
            while len(self._old) > 2:
                self._old.popitem(last=False)
        return index

    def version(self, ref: int) -> Version:
        with self.engine.connect() as conn:
            return get_version(conn, ref)

    # -- the listener --------------------------------------------------------------------------

    def start(self) -> None:
        self._listener.start()

    def stop(self) -> None:
        self._listener.stop()

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
            self.reload_roster()
        except Exception:  # keep serving the last good snapshot
            log.exception("locate index refresh failed; still answering from the last one")
