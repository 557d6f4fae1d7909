"""The command wall's data: boundaries, per-grid figures, the heat of recent cases and the
headline figures — each bounded, whatever the district's size.

What the wall embeds in its page is bounded by the region's grid count (boundaries, the grid
figures) or by a cell size (the heat map's points are cases counted per ~100 m cell). Points
without such a bound (cases, whistles, workers, tracks) are fetched by the page from the API
or arrive as vector tiles.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from app.services import analytics, incidents, whistles
from app.services.identity import Principal
from app.services.scoping import ScopeFilter, prefix_pattern
from gis import hotspots

ZONE = ZoneInfo("Asia/Shanghai")
HEAT_DAYS = 7
HEAT_CELL_DEG = 0.001  # ~100 m: a district is a few thousand cells at most
ANOMALY_DAYS = 28
ON_DUTY = dt.timedelta(minutes=10)


def day_start(now: dt.datetime) -> dt.datetime:
    local = now.astimezone(ZONE)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def grid_values(
    conn: Connection, reach: ScopeFilter, region: str, *, now: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Per grid of ``region``: today's reports, open cases, the hot-spot z (Gi* of the last seven
    days, :func:`hotspot_z`) and today's anomaly — the z-score of today's reports against the
    grid's daily counts over the previous 28 days (how unusual today is for that grid; None when
    the grid had too few cases to say). Grids with nothing to show are left out."""
    now = now or dt.datetime.now(dt.UTC)
    today = day_start(now)
    rows = conn.execute(
        text(
            f"""
            WITH cases AS (
                SELECT i.grid_code, i.status, i.reported_at FROM incident i
                WHERE {incidents.scope_sql(reach)} AND i.grid_code LIKE :p
                  AND (i.reported_at >= :since OR NOT (i.status = ANY(:terminal)))
            ),
            daily AS (
                SELECT grid_code, date_trunc('day', reported_at AT TIME ZONE 'Asia/Shanghai') d,
                       count(*) n
                FROM cases WHERE reported_at >= :since AND reported_at < :today
                GROUP BY 1, 2
            ),
            history AS (  -- days without a case count as 0
                SELECT grid_code, sum(n)::float8 / :days AS mean,
                       sqrt(greatest(sum(n * n)::float8 / :days
                                     - (sum(n)::float8 / :days) ^ 2, 0)) AS sd
                FROM daily GROUP BY 1
            )
            SELECT c.grid_code,
                   count(*) FILTER (WHERE c.reported_at >= :today) AS reports_today,
                   count(*) FILTER (WHERE NOT (c.status = ANY(:terminal))) AS open_cases,
                   h.mean, h.sd
            FROM cases c LEFT JOIN history h USING (grid_code)
            WHERE c.grid_code IS NOT NULL
            GROUP BY c.grid_code, h.mean, h.sd
            """
        ),
        {**reach.params, "p": prefix_pattern(region), "today": today,
         "since": today - dt.timedelta(days=ANOMALY_DAYS), "days": ANOMALY_DAYS,
         "terminal": list(incidents.TERMINAL)},
    ).all()  # fmt: skip
    out: dict[str, dict[str, Any]] = {}
    hot = hotspot_z(conn, reach, region, now=now)
    for code, z in hot.items():  # grids without open or recent cases: only their hot-spot z
        if z != 0:
            out[code] = {"reports_today": 0, "open_cases": 0, "anomaly_z": None, "hotspot_z": z}
    for r in rows:
        z = None
        if r.sd is not None and r.sd > 0:
            z = round((r.reports_today - r.mean) / r.sd, 2)
        out[r.grid_code] = {"reports_today": r.reports_today, "open_cases": r.open_cases,
                            "anomaly_z": z, "hotspot_z": hot.get(r.grid_code)}  # fmt: skip
    return out


def hotspot_z(
    conn: Connection, reach: ScopeFilter, region: str, *, now: dt.datetime | None = None
) -> dict[str, float]:
    """Per grid of ``region``: the Gi* z-score of the last seven days' cases (queen contiguity;
    > 1.96 a hot spot at 95 %, < -1.96 a cold one)."""
    now = now or dt.datetime.now(dt.UTC)
    weights = analytics.weights(conn, region, "grid")
    if weights is None:
        return {}
    rows = conn.execute(
        text(
            f"SELECT i.grid_code, count(*) FROM incident i WHERE {incidents.scope_sql(reach)} "
            "AND i.grid_code LIKE :p AND i.reported_at >= :since GROUP BY 1"
        ),
        {**reach.params, "p": prefix_pattern(region), "since": now - dt.timedelta(days=HEAT_DAYS)},
    ).all()
    counts = {code: n for code, n in rows}
    values = [counts.get(code, 0) for code in weights.id_order]
    stats = hotspots.gi_star(values, weights)
    return {code: round(float(z), 2) for code, z in stats["z"].items()}


def heat(
    conn: Connection, reach: ScopeFilter, region: str, *, now: dt.datetime | None = None
) -> list[list[float]]:
    """Cases reported in the last seven days counted per ~100 m cell: [[lat, lon, count], …]."""
    now = now or dt.datetime.now(dt.UTC)
    rows = conn.execute(
        text(
            f"""
            SELECT ST_Y(c) AS lat, ST_X(c) AS lon, n FROM (
                SELECT ST_SnapToGrid(i.geom, :cell) AS c, count(*) AS n FROM incident i
                WHERE {incidents.scope_sql(reach)} AND i.region_code LIKE :p
                  AND i.reported_at >= :since
                GROUP BY 1
            ) cells ORDER BY n DESC
            """
        ),
        {**reach.params, "p": prefix_pattern(region), "cell": HEAT_CELL_DEG,
         "since": now - dt.timedelta(days=HEAT_DAYS)},
    ).all()  # fmt: skip
    return [[round(r.lat, 5), round(r.lon, 5), int(r.n)] for r in rows]


def figures(
    conn: Connection,
    reach: ScopeFilter,
    principal: Principal,
    region: str,
    *,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The headline panel: today's reports and filed cases; the closing and on-time rates of
    this month's cases (today's are mostly still in hand, so their rates say little); open and
    overdue cases, open and overdue whistles, gridworkers on duty."""
    now = now or dt.datetime.now(dt.UTC)
    today = day_start(now)
    loop = incidents.figures(conn, reach, region, today, now)
    month = incidents.figures(conn, reach, region, today.replace(day=1), now)
    open_cases = conn.execute(
        text(
            f"SELECT count(*) AS n, count(*) FILTER (WHERE i.due_at < now()) AS overdue "
            f"FROM incident i WHERE {incidents.scope_sql(reach)} AND i.region_code LIKE :p "
            f"AND NOT (i.status = ANY(:terminal))"
        ),
        {**reach.params, "p": prefix_pattern(region), "terminal": list(incidents.TERMINAL)},
    ).one()  # fmt: skip
    where, params = whistles.scope_sql(reach, principal)
    blown = conn.execute(
        text(
            f"SELECT count(*) AS n, count(*) FILTER (WHERE {whistles.OVERDUE_SQL}) AS overdue "
            f"FROM whistle w WHERE {where} AND {whistles.PLACE_CODE} LIKE :p "
            f"AND w.status IN ('blown', 'responding', 'resolved')"
        ),
        {**params, "p": prefix_pattern(region)},
    ).one()  # fmt: skip
    on_duty = conn.execute(
        text(
            "SELECT count(DISTINCT f.worker_id) FROM patrol_fix f JOIN staff s "
            "ON s.id = f.worker_id WHERE f.fix_time > :since AND f.fix_time <= :until "
            f"AND f.flags = 0 AND s.region_code LIKE :p AND {reach.sql(region='s.region_code')}"
        ),
        {**reach.params, "p": prefix_pattern(region), "since": now - ON_DUTY,
         "until": now + dt.timedelta(minutes=2)},
    ).scalar_one()  # fmt: skip
    return {
        "region": region,
        "at": now.isoformat(),
        "reports_today": loop["counts"]["reported"],
        "filed_today": loop["counts"]["filed"],
        "month_closing_rate": month["rates"]["closing_rate"],
        "month_on_time_rate": month["rates"]["on_time_rate"],
        "open_cases": open_cases.n,
        "overdue_cases": open_cases.overdue,
        "whistles_open": blown.n,
        "whistles_overdue": blown.overdue,
        "gridworkers_on_duty": on_duty,
    }
