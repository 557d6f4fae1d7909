"""Demo patrols: the demo gridworkers walking their own grids (``gis.patrol_synth``), stored
through the same path as a phone's fixes (located, flagged, COPY), and a live feed.

Who walks: every active gridworker with a primary grid (the demo's ``gw-<grid code>``, one per
grid). ``load`` fills the last days and today up to now, idempotently — a fix is stored once, so
loading again only adds what the clock has since reached. ``live`` keeps sending every worker's
next fix so that the wall moves.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely
from sqlalchemy import Engine, text

from app.services import patrols
from app.services.boundaries import active_version
from app.services.locate import LocateService
from gis.patrol_synth import LiveFeed, patrol_day

CHUNK = 250_000  # fixes per COPY: bounded memory, a few seconds each


def _walkers(engine: Engine) -> tuple[gpd.GeoDataFrame, dict[str, str], dict[str, int]]:
    with engine.connect() as conn:
        version = active_version(conn)
        if version is None:
            return gpd.GeoDataFrame(), {}, {}
        rows = conn.execute(
            text(
                "SELECT s.id, s.name, a.grid_code, ST_AsBinary(r.geom) AS wkb FROM staff s "
                "JOIN grid_assignment a ON a.staff_id = s.id AND a.kind = 'primary' "
                "JOIN region r ON r.code = a.grid_code AND r.version_id = :v "
                "WHERE s.active AND s.role = 'gridworker' ORDER BY s.name"
            ),
            {"v": version.id},
        ).all()  # fmt: skip
    codes = sorted({r.grid_code for r in rows})
    shapes = {r.grid_code: shapely.from_wkb(bytes(r.wkb)) for r in rows}
    grids = gpd.GeoDataFrame({"code": codes}, geometry=[shapes[c] for c in codes], crs=4490)
    return grids, {r.name: r.grid_code for r in rows}, {r.name: r.id for r in rows}


def _store(engine: Engine, locator: LocateService, fixes: pd.DataFrame, ids: dict[str, int],
           now: dt.datetime) -> int:  # fmt: skip
    snapshot = locator.current()
    if snapshot is None or not len(fixes):
        return 0
    frame = fixes.assign(worker_id=fixes["worker"].map(ids), crs="wgs84")
    stored = 0
    for start in range(0, len(frame), CHUNK):
        stored += patrols.store(engine, snapshot, frame.iloc[start : start + CHUNK], now=now)[0]
    return stored


def load(
    engine: Engine,
    locator: LocateService,
    *,
    days: int = 1,
    now: dt.datetime | None = None,
    seed: int = 20191216,
) -> int:
    """The last ``days`` full days and today up to ``now``; returns how many fixes were added."""
    now = now or dt.datetime.now(dt.UTC)
    grids, workers, ids = _walkers(engine)
    if not workers:
        return 0
    today = now.astimezone(patrols.ZONE).date()
    added = 0
    for back in range(days, -1, -1):
        day = today - dt.timedelta(days=back)
        start, end = patrols.day_bounds(day)
        with engine.connect() as conn:  # loaded before: only what the clock has reached since
            latest = conn.execute(
                text("SELECT max(fix_time) FROM patrol_fix WHERE fix_time >= :a "
                     "AND fix_time < :b AND client_id NOT LIKE '%:live:%'"),
                {"a": start, "b": end},
            ).scalar()  # fmt: skip
        fixes = patrol_day(grids, day, workers=workers, seed=seed, until=now)
        if latest is not None:
            fixes = fixes[fixes["time"] > pd.Timestamp(latest)]
        added += _store(engine, locator, fixes, ids, now)
    return added


def live(
    engine: Engine,
    locator: LocateService,
    *,
    steps: int | None = None,
    interval_s: float = 15.0,
    always_on: bool = False,
    seed: int = 20191216,
    on_step: Callable[[int, int], Any] | None = None,
) -> int:
    """Every ``interval_s``, each on-shift worker's next fix (all workers with ``always_on``),
    stored as a phone's would be; ``steps`` of them (None: until interrupted). Returns how many
    fixes were stored; ``on_step(step, stored)`` is told after each."""
    grids, workers, ids = _walkers(engine)
    if not workers:
        return 0
    feed = LiveFeed(grids, workers=workers, interval_s=interval_s, seed=seed,
                    always_on=always_on)  # fmt: skip
    total = step = 0
    while steps is None or step < steps:
        started = time.monotonic()
        now = dt.datetime.now(dt.UTC)
        stored = _store(engine, locator, feed.step(now), ids, now)
        total += stored
        step += 1
        if on_step is not None:
            on_step(step, stored)
        if steps is None or step < steps:
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return total
