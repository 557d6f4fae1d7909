"""Mapbox vector tiles from PostGIS (``ST_AsMVT``), and each worker's cache of them.

Layers: the four boundary levels of the active version (``district`` … ``grid``), ``incidents``
and today's patrol ``tracks``. Stored geometry is CGCS2000 (EPSG:4490) lon/lat; tiles are Web
Mercator. Every query filters with the tile's envelope transformed to 4490 (``&&``, so the GiST
index answers) and transforms only the rows inside; polygons and lines are cut to the tile (plus
its buffer) in 4490 first, so a district-sized polygon costs a tile only the vertices near it.

Incidents below :data:`POINT_ZOOM` — and any tile holding more than :data:`MAX_POINTS` cases —
are aggregated into clusters, one per :data:`CLUSTER_PX`-unit cell of the tile (at most 1,024
per tile), so no tile grows with the number of cases.

The cache (:class:`TileCache`) is an LRU bounded in bytes, keyed by the normalised request and,
for scoped layers, the caller's scope. It is kept only while this process LISTENs on
``gridmap_data`` (:class:`TileService`): the triggers of migration 0008 notify a layer group on
every committed change, the listener drops that group's tiles, and a tile built from a snapshot
older than the change is not stored (the group's version moved while it was built). A dropped
listener connection empties the cache and tiles are not kept until it is back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, text

from app.services.listener import NotifyListener
from app.services.patrols import day_bounds
from app.services.scoping import ScopeFilter

log = logging.getLogger("gridmap.tiles")

CHANNEL = "gridmap_data"
BOUNDARY_LEVELS = ("district", "street", "community", "grid")
# Layer → the group whose changes invalidate it (the NOTIFY payload of migration 0008).
LAYERS: dict[str, str] = {
    **dict.fromkeys(BOUNDARY_LEVELS, "boundaries"),
    "incidents": "incidents",
    "tracks": "tracks",
}
GROUPS = ("boundaries", "incidents", "tracks")
MAX_ZOOM = 22

EXTENT = 4096  # tile units per side (the MVT default)
BUFFER = 64  # units kept around the tile so lines and symbols at its edge join up
POINT_ZOOM = 14  # incidents: single cases from this zoom on, clusters below
CLUSTER_PX = 128  # cluster cell, in tile units: 32 x 32 cells, at most 1,024 clusters a tile
MAX_POINTS = 5_000  # a tile at POINT_ZOOM or above with more cases than this is clustered too
# Below this zoom a district is a few hundred pixels wide and a day of tracks (two million fixes)
# a smudge of a megabyte or more per tile: the tracks layer is empty there (coverage answers
# that question: /api/v1/patrols/coverage).
TRACK_MIN_ZOOM = 12
# Simplification tolerance, in tile units (a 256-pixel tile shows 16 units a pixel): boundaries
# keep sub-pixel detail; tracks, scribbles of a fix every 15 s, are thinned to a quarter pixel.
BOUNDARY_SIMPLIFY = 1.0
TRACK_SIMPLIFY = 4.0

# Browser cache lifetime (Cache-Control max-age) and this cache's lifetime, per group, seconds.
# Incidents carry `overdue`, which turns with the clock and no write, so their cached tiles age
# out; boundaries and tracks change only by writes (notified) and the day in their key.
MAX_AGE = {"boundaries": 300, "incidents": 10, "tracks": 10}
CACHE_TTL: dict[str, float | None] = {"boundaries": None, "incidents": 30.0, "tracks": None}
MEDIA_TYPE = "application/vnd.mapbox-vector-tile"

_OVERDUE = "(i.due_at IS NOT NULL AND i.due_at < now())"  # as the list endpoint says it

# The tile's envelope in 3857 (e) and in 4490 widened by a share of its size (g). Mercator maps
# the 3857 rectangle onto a lon/lat rectangle, so transforming its corners is exact; widening
# after the transform keeps z0-z1 envelopes from crossing the antimeridian. Queries use it as
# `WITH box AS MATERIALIZED`: computed once, not inlined into a per-row filter.
_BOX = """
    SELECT e, ST_Expand(g, (ST_XMax(g) - ST_XMin(g)) * :tile_margin,
                        (ST_YMax(g) - ST_YMin(g)) * :tile_margin) AS g
    FROM (SELECT e, ST_Transform(e, 4490) AS g
          FROM (SELECT ST_TileEnvelope(:tile_z, :tile_x, :tile_y) AS e) t) t
"""


@dataclass(frozen=True)
class TileRef:
    z: int
    x: int
    y: int

    def params(self, margin: float) -> dict[str, Any]:
        return {"tile_z": self.z, "tile_x": self.x, "tile_y": self.y, "tile_margin": margin}

    @property
    def latitude(self) -> float:
        """The latitude of the tile's middle, degrees."""
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (self.y + 0.5) / 2**self.z))))

    def bounds(self, margin: float) -> tuple[float, float, float, float]:
        """The tile in lon/lat (what ``_BOX`` computes in SQL), widened by ``margin`` of its
        size on every side."""
        n = 2**self.z

        def lat(row: float) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

        x0, x1 = self.x / n * 360 - 180, (self.x + 1) / n * 360 - 180
        y0, y1 = lat(self.y + 1), lat(self.y)
        dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
        return x0 - dx, y0 - dy, x1 + dx, y1 + dy

    def unit_degrees(self) -> float:
        """One tile unit in degrees of latitude (the smaller of the two spans) at the tile's
        middle: the scale of a simplification tolerance done in 4490."""
        lon_span = 360.0 / (2**self.z * EXTENT)
        return lon_span * math.cos(math.radians(self.latitude))


def _mvt(conn: Connection, sql: str, params: dict[str, Any]) -> bytes:
    value = conn.execute(text(sql), params).scalar_one()
    return bytes(value or b"")


def boundary_tile(conn: Connection, level: str, tile: TileRef, day: dt.date) -> bytes:
    """The active version's regions of ``level`` valid on ``day``: code, name, level,
    parent_code. Simplified by :data:`BOUNDARY_SIMPLIFY` tile units; ``preserveCollapsed``
    keeps a small polygon rather than dropping it."""
    sql = f"""
    WITH box AS MATERIALIZED ({_BOX})
    SELECT ST_AsMVT(q, :tile_layer, {EXTENT}, 'geom') FROM (
        SELECT r.code, r.name, r.level, r.parent_code,
               ST_AsMVTGeom(ST_Transform(ST_Simplify(ST_ClipByBox2D(r.geom, box.g),
                                                     :tile_tol, true), 3857),
                            box.e, {EXTENT}, {BUFFER}, true) AS geom
        FROM region r JOIN boundary_version v ON v.id = r.version_id AND v.is_active, box
        WHERE r.level = :tile_level AND r.geom && box.g
          AND (r.valid_from IS NULL OR r.valid_from <= :tile_day)
          AND (r.valid_to IS NULL OR r.valid_to >= :tile_day)
        ORDER BY r.code
    ) q
    """
    params = {
        **tile.params(BUFFER / EXTENT),
        "tile_layer": level,
        "tile_level": level,
        "tile_day": day,
        "tile_tol": tile.unit_degrees() * BOUNDARY_SIMPLIFY,
    }
    return _mvt(conn, sql, params)


def incident_tile(
    conn: Connection, where: list[str], params: dict[str, Any], tile: TileRef
) -> bytes:
    """Cases matching ``where`` (conditions over ``incident i``, the caller's scope among them):
    single points with id, status, class_code, overdue, reported_at (epoch seconds) and
    grid_code from :data:`POINT_ZOOM` on, unless the tile holds more than :data:`MAX_POINTS`;
    else clusters."""
    condition = " AND ".join(where)
    if tile.z >= POINT_ZOOM:
        count = conn.execute(
            text(f"WITH box AS MATERIALIZED ({_BOX}) SELECT count(*) FROM (SELECT 1 "
                 f"FROM incident i, box WHERE {condition} AND i.geom && box.g LIMIT :tile_cap) s"),
            {**params, **tile.params(BUFFER / EXTENT), "tile_cap": MAX_POINTS + 1},
        ).scalar_one()  # fmt: skip
        if count <= MAX_POINTS:
            return _incident_points(conn, condition, params, tile)
    return _incident_clusters(conn, condition, params, tile)


def _incident_points(
    conn: Connection, condition: str, params: dict[str, Any], tile: TileRef
) -> bytes:
    # `fid` becomes the MVT feature id (not a property); `id` stays a property for popups.
    sql = f"""
    WITH box AS MATERIALIZED ({_BOX})
    SELECT ST_AsMVT(q, 'incidents', {EXTENT}, 'geom', 'fid') FROM (
        SELECT i.id AS fid, i.id, i.status, i.class_code, {_OVERDUE} AS overdue,
               extract(epoch FROM i.reported_at)::bigint AS reported_at, i.grid_code,
               ST_AsMVTGeom(ST_Transform(i.geom, 3857), box.e, {EXTENT}, {BUFFER}, true) AS geom
        FROM incident i, box
        WHERE {condition} AND i.geom && box.g
        ORDER BY i.id
    ) q
    """
    return _mvt(conn, sql, {**params, **tile.params(BUFFER / EXTENT)})


def _incident_clusters(
    conn: Connection, condition: str, params: dict[str, Any], tile: TileRef
) -> bytes:
    """One point per occupied cell of a 32 x 32 grid over the tile (aligned with the tile, so
    with every tile of the zoom), at the mean position of its cases, with `count` and
    `overdue_count`. Only the tile itself, no buffer: each case is counted in one tile only.

    The cell is worked out from lon/lat with the Web Mercator formulas (the tile's own
    arithmetic), so only the clusters are transformed, not every case: a year of a district's
    cases at zoom 10 is 290,000 of them."""
    cells = EXTENT // CLUSTER_PX
    sql = f"""
    WITH box AS MATERIALIZED ({_BOX}),
    hits AS (
        SELECT ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, {_OVERDUE} AS late
        FROM incident i, box WHERE {condition} AND i.geom && box.g
    ),
    cell AS (
        SELECT floor(((lon + 180) / 360 * :tile_n - :tile_x) * {cells})::int AS cx,
               floor(((1 - asinh(tan(radians(lat))) / pi()) / 2 * :tile_n - :tile_y)
                     * {cells})::int AS cy,
               count(*) AS n, count(*) FILTER (WHERE late) AS late,
               avg(lon) AS lon, avg(lat) AS lat
        FROM hits GROUP BY 1, 2
    )
    SELECT ST_AsMVT(q, 'incidents', {EXTENT}, 'geom') FROM (
        SELECT c.n AS count, c.late AS overdue_count,
               ST_AsMVTGeom(ST_Transform(ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4490), 3857),
                            box.e, {EXTENT}, 0, true) AS geom
        FROM cell c, box
        WHERE c.cx BETWEEN 0 AND {cells - 1} AND c.cy BETWEEN 0 AND {cells - 1}
        ORDER BY c.cx, c.cy
    ) q
    """
    return _mvt(conn, sql, {**params, **tile.params(0.0), "tile_n": 2**tile.z})


@dataclass(frozen=True)
class TrackExtents:
    """Each worker's bounding box of one day's plausible fixes (CGCS2000). A track lies inside
    its fixes' box, so the workers whose box meets a tile are all whose track may cross it."""

    workers: np.ndarray
    boxes: np.ndarray  # (n, 4): min lon, min lat, max lon, max lat

    def meeting(self, bounds: tuple[float, float, float, float]) -> list[int]:
        x0, y0, x1, y1 = bounds
        b = self.boxes
        hit = (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)
        return self.workers[hit].tolist()


def track_extents(conn: Connection, day: dt.date) -> TrackExtents:
    """One read of the day's partition (about 0.4 s for two million fixes), shared by every
    track tile until the next ingest: the fixes have no spatial index (ingest speed, migration
    0006), so a tile cannot find its workers by an index."""
    start, end = day_bounds(day)
    rows = conn.execute(
        text("SELECT worker_id, ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b) FROM ("
             "SELECT worker_id, ST_Extent(geom) AS b FROM patrol_fix WHERE fix_time >= :a "
             "AND fix_time < :b AND flags = 0 GROUP BY worker_id) s"),
        {"a": start, "b": end},
    ).all()  # fmt: skip
    workers = np.array([r[0] for r in rows], dtype=np.int64)
    boxes = np.array([r[1:] for r in rows], dtype=np.float64).reshape(-1, 4)
    return TrackExtents(workers, boxes)


def track_tile(
    conn: Connection, reach: ScopeFilter, tile: TileRef, day: dt.date, extents: TrackExtents
) -> bytes:
    """Each worker's plausible fixes of the Beijing ``day`` as one line in time order, cut to
    the tile: worker, fixes (the day's count). Workers are those homed in the caller's area
    (as the live layer) whose ``extents`` meet the tile; their day is read by the primary key
    (worker, time). Empty below :data:`TRACK_MIN_ZOOM`."""
    if tile.z < TRACK_MIN_ZOOM:
        return b""
    workers = extents.meeting(tile.bounds(BUFFER / EXTENT))
    if not workers:
        return b""
    start, end = day_bounds(day)
    sql = f"""
    WITH box AS MATERIALIZED ({_BOX}),
    lines AS (
        SELECT s.name AS worker, count(*) AS fixes,
               ST_MakeLine(f.geom ORDER BY f.fix_time) AS line
        FROM patrol_fix f JOIN staff s ON s.id = f.worker_id
        WHERE f.worker_id = ANY(:tile_workers) AND {reach.sql(region="s.region_code")}
          AND f.fix_time >= :tile_start AND f.fix_time < :tile_end AND f.flags = 0
        GROUP BY s.name HAVING count(*) > 1
    )
    SELECT ST_AsMVT(q, 'tracks', {EXTENT}, 'geom') FROM (
        SELECT l.worker, l.fixes,
               ST_AsMVTGeom(ST_Transform(ST_Simplify(ST_ClipByBox2D(l.line, box.g), :tile_tol),
                                         3857), box.e, {EXTENT}, {BUFFER}, true) AS geom
        FROM lines l, box ORDER BY l.worker
    ) q
    """
    params = {
        **reach.params,
        **tile.params(BUFFER / EXTENT),
        "tile_workers": workers,
        "tile_start": start,
        "tile_end": end,
        "tile_tol": tile.unit_degrees() * TRACK_SIMPLIFY,
    }
    return _mvt(conn, sql, params)


def etag(key: Hashable, body: bytes) -> str:
    """A strong validator from the request and the tile's bytes. From the bytes, not from a
    per-process version counter: those differ between workers, and a client whose requests
    land on another worker must never get a 304 for a tile that changed."""
    digest = hashlib.blake2b(repr(key).encode(), digest_size=16)
    digest.update(body)
    return f'"{digest.hexdigest()}"'


@dataclass(frozen=True)
class Tile:
    body: bytes
    etag: str


@dataclass
class _Entry:
    tile: Tile
    group: str
    size: int
    expires: float | None


class TileCache:
    """A least-recently-used cache of tiles, bounded in bytes, with a version per layer group.

    ``put`` refuses a tile built while its group changed (the version read before the query
    is no longer current), so a tile from a snapshot older than a committed change is never
    kept. Nothing is kept or served while ``live`` is false (the listener is not connected and
    would miss changes)."""

    OVERHEAD = 256  # bytes counted per entry besides the tile: key, entry, dictionary slot

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.live = False
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._size = 0
        self._versions = dict.fromkeys(GROUPS, 0)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def version(self, group: str) -> int:
        return self._versions[group]

    def get(self, key: Hashable) -> Tile | None:
        if not self.live:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires is not None and entry.expires < time.monotonic():
                self._drop(key)
                entry = None
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.tile

    def put(self, key: Hashable, group: str, version: int, tile: Tile) -> bool:
        """Keep ``tile`` if its group is still at ``version``; True if kept."""
        size = len(tile.body) + self.OVERHEAD
        if not self.live or size > self.max_bytes:
            return False
        ttl = CACHE_TTL[group]
        expires = None if ttl is None else time.monotonic() + ttl
        with self._lock:
            if self._versions[group] != version:
                return False
            if key in self._entries:
                self._drop(key)
            self._entries[key] = _Entry(tile, group, size, expires)
            self._size += size
            while self._size > self.max_bytes:
                self._drop(next(iter(self._entries)))
            return True

    def bump(self, group: str) -> None:
        """The group's data changed: forget its tiles; tiles being built now are not kept."""
        groups = (group,) if group in self._versions else GROUPS  # unknown: be safe, all
        with self._lock:
            for g in groups:
                self._versions[g] += 1
            for key in [k for k, e in self._entries.items() if e.group in groups]:
                self._drop(key)

    def clear(self) -> None:
        self.bump("*")

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._size -= entry.size


class TileService:
    """One per worker process (``app.state.tiles``): the cache and the thread that keeps it
    honest by LISTENing on :data:`CHANNEL` on a connection of its own."""

    def __init__(self, engine: Engine, *, cache_bytes: int, retry_s: float = 1.0) -> None:
        self.engine = engine
        self.cache = TileCache(cache_bytes)
        self.retry_s = retry_s
        self.connects = 0  # how many times the listener has (re)connected (tests, health)
        self._extents: OrderedDict[dt.date, tuple[int, TrackExtents]] = OrderedDict()
        self._extents_lock = threading.Lock()
        self._listener = NotifyListener(
            engine, (CHANNEL,), name="gridmap-tiles", on_notice=self.cache.bump,
            on_connect=self._connected, on_disconnect=self._disconnected, retry_s=retry_s,
        )  # fmt: skip

    def track_extents(self, conn: Connection, day: dt.date, version: int) -> TrackExtents:
        """The day's :class:`TrackExtents`, read once per version of the tracks group: every
        track tile until the next ingest shares one read of the day's fixes. ``version`` is
        the group's version read before ``conn``'s snapshot, as for tiles."""
        current = self.cache.live and version == self.cache.version("tracks")
        with self._extents_lock:
            known = self._extents.get(day)
        if current and known is not None and known[0] == version:
            return known[1]
        extents = track_extents(conn, day)
        with self._extents_lock:
            if self.cache.live and version == self.cache.version("tracks"):
                self._extents[day] = (version, extents)
                self._extents.move_to_end(day)
                while len(self._extents) > 3:  # today, yesterday, one looked up
                    self._extents.popitem(last=False)
        return extents

    def start(self) -> None:
        if self.cache.max_bytes > 0:
            self._listener.start()

    def stop(self) -> None:
        self._listener.stop()
        self.cache.live = False
        self.cache.clear()
        with self._extents_lock:
            self._extents.clear()

    def _connected(self) -> None:
        # Changes made while nobody listened are unknown: start from nothing.
        self.cache.clear()
        self.cache.live = True
        self.connects += 1

    def _disconnected(self, error: Exception | None) -> None:
        if error is not None:
            log.warning("tile listener: %s; tiles are not cached until it reconnects", error)
        self.cache.live = False
        self.cache.clear()
