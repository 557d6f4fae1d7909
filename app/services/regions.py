"""Reading the hierarchy: which version and date a request sees, lists, chains and geometry.

A request sees one boundary version — the active one, or with ``as_of`` the one active at that
moment — and, within it, the regions valid on that day (``valid_from``/``valid_to`` are
inclusive dates from the source data). An ``as_of`` given as a bare date means the end of that
day in the city's time zone, so a version activated during that day is the one answered.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from app.services.boundaries import Version, active_version, version_at
from gis.codes import LEVELS

CITY_TZ = ZoneInfo("Asia/Shanghai")


class NoVersion(LookupError):
    """No boundary version is active (now, or at the requested moment)."""


@dataclass(frozen=True)
class Scope:
    version: Version
    on: dt.date  # regions valid on this day


def resolve_scope(conn: Connection, as_of: dt.datetime | dt.date | None) -> Scope:
    if as_of is None:
        version = active_version(conn)
        if version is None:
            raise NoVersion(
                "no boundary version is active; import one (gridmap boundaries import) "
                "and activate it (gridmap boundaries activate)"
            )
        return Scope(version, dt.datetime.now(CITY_TZ).date())
    moment = as_of_moment(as_of)
    version = version_at(conn, moment)
    if version is None:
        raise NoVersion(f"no boundary version was active at {moment.isoformat()}")
    return Scope(version, moment.astimezone(CITY_TZ).date())


def as_of_moment(as_of: dt.datetime | dt.date) -> dt.datetime:
    """A date → the end of that day in the city; a naive time → city time."""
    if isinstance(as_of, dt.datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=CITY_TZ)
    return dt.datetime.combine(as_of, dt.time.max, tzinfo=CITY_TZ)


_SUMMARY = """
    r.code, r.name, r.level, r.parent_code, r.area_m2, r.population, r.households,
    r.valid_from, r.valid_to,
    ST_XMin(r.geom) AS minx, ST_YMin(r.geom) AS miny, ST_XMax(r.geom) AS maxx,
    ST_YMax(r.geom) AS maxy,
    ST_X(lp.p) AS px, ST_Y(lp.p) AS py
"""
# Every query selecting _SUMMARY joins this once, so the label point is computed once per row.
_LABEL_POINT = "CROSS JOIN LATERAL (SELECT ST_PointOnSurface(r.geom) AS p) lp"
_VALID = (
    "(r.valid_from IS NULL OR r.valid_from <= :on) AND (r.valid_to IS NULL OR r.valid_to >= :on)"
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "level": row.level,
        "parent_code": row.parent_code,
        "area_m2": round(row.area_m2, 1),
        "population": row.population,
        "households": row.households,
        "valid_from": row.valid_from,
        "valid_to": row.valid_to,
        "bbox": [round(v, 7) for v in (row.minx, row.miny, row.maxx, row.maxy)],
        "label_point": [round(row.px, 7), round(row.py, 7)],
    }


def _params(scope: Scope, **extra: Any) -> dict[str, Any]:
    return {"v": scope.version.id, "on": scope.on, **extra}


def in_active_version(conn: Connection, code: str) -> bool:
    """Whether the active boundary version has a region ``code`` (any validity dates)."""
    found = conn.execute(
        text("SELECT 1 FROM region r JOIN boundary_version v ON v.id = r.version_id "
             "WHERE v.is_active AND r.code = :c"), {"c": code},
    ).first()  # fmt: skip
    return found is not None


def exists(conn: Connection, scope: Scope, code: str) -> bool:
    return (
        conn.execute(
            text(f"SELECT 1 FROM region r WHERE r.version_id = :v AND r.code = :code AND {_VALID}"),
            _params(scope, code=code),
        ).first()
        is not None
    )


def list_regions(
    conn: Connection,
    scope: Scope,
    *,
    level: str | None = None,
    parent: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int = 100,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page ordered by code; returns the items and the code to continue after (or None)."""
    where = ["r.version_id = :v", _VALID]
    params = _params(scope, limit=limit + 1)
    if level is not None:
        where.append("r.level = :level")
        params["level"] = level
    if parent is not None:
        where.append("r.parent_code = :parent")
        params["parent"] = parent
    if bbox is not None:
        where.append("r.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)")
        where.append("ST_Intersects(r.geom, ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490))")
        params.update(x0=bbox[0], y0=bbox[1], x1=bbox[2], y1=bbox[3])
    if after is not None:
        where.append("r.code > :after")
        params["after"] = after
    rows = conn.execute(
        text(
            f"SELECT {_SUMMARY} FROM region r {_LABEL_POINT} WHERE {' AND '.join(where)} "
            "ORDER BY r.code LIMIT :limit"
        ),
        params,
    ).all()
    items = [_summary(r) for r in rows[:limit]]
    return items, (items[-1]["code"] if len(rows) > limit else None)


def get_region(conn: Connection, scope: Scope, code: str) -> dict[str, Any] | None:
    row = conn.execute(
        text(
            f"SELECT {_SUMMARY}, r.properties, "
            "(SELECT count(*) FROM region c WHERE c.version_id = r.version_id "
            "  AND c.parent_code = r.code AND (c.valid_from IS NULL OR c.valid_from <= :on) "
            "  AND (c.valid_to IS NULL OR c.valid_to >= :on)) AS children_count "
            f"FROM region r {_LABEL_POINT} "
            f"WHERE r.version_id = :v AND r.code = :code AND {_VALID}"
        ),
        _params(scope, code=code),
    ).first()
    if row is None:
        return None
    detail = _summary(row)
    detail["properties"] = row.properties or {}
    detail["children_count"] = row.children_count
    return detail


def ancestors(conn: Connection, scope: Scope, code: str) -> list[dict[str, Any]]:
    """The chain above ``code``, district first (empty for a district)."""
    rows = conn.execute(
        text(
            f"""
            WITH RECURSIVE up AS (
                SELECT r.id, r.parent_id, 0 AS depth FROM region r
                WHERE r.version_id = :v AND r.code = :code
                UNION ALL
                SELECT p.id, p.parent_id, up.depth + 1 FROM region p JOIN up ON p.id = up.parent_id
            )
            SELECT {_SUMMARY} FROM up JOIN region r ON r.id = up.id {_LABEL_POINT}
            WHERE up.depth > 0 ORDER BY up.depth DESC
            """
        ),
        _params(scope, code=code),
    ).all()
    return [_summary(r) for r in rows]


def covering(conn: Connection, version_id: int, lon: float, lat: float) -> list[dict[str, Any]]:
    """Regions of every level whose area covers the point, district first (database-side lookup
    through the subdivided table; boundary points match, as with MapIt's ST_Covers)."""
    rows = conn.execute(
        text(
            f"""
            SELECT DISTINCT ON (r.level) {_SUMMARY}
            FROM region_subdivided s JOIN region r ON r.id = s.region_id {_LABEL_POINT}
            WHERE s.version_id = :v AND ST_Covers(s.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))
            ORDER BY r.level, r.code
            """
        ),
        {"v": version_id, "x": lon, "y": lat},
    ).all()
    found = {r.level: _summary(r) for r in rows}
    return [found[level] for level in LEVELS if level in found]


def nearest_grid(
    conn: Connection, version_id: int, lon: float, lat: float
) -> dict[str, Any] | None:
    """The basic grid nearest to the point and the distance to it in metres (geodesic)."""
    row = conn.execute(
        text(
            """
            WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:x, :y), 4490) AS g),
            near AS (  -- planar KNN in degrees picks candidates; metres decide among them
                SELECT r.code, r.name, r.geom FROM region r, p
                WHERE r.version_id = :v AND r.level = 'grid'
                ORDER BY r.geom <-> p.g LIMIT 16
            )
            SELECT near.code, near.name,
                   ST_Distance(near.geom::geography, p.g::geography) AS distance_m
            FROM near, p ORDER BY distance_m, near.code LIMIT 1
            """
        ),
        {"v": version_id, "x": lon, "y": lat},
    ).first()
    if row is None:
        return None
    return {"code": row.code, "name": row.name, "distance_m": float(row.distance_m)}


def feature(
    conn: Connection, scope: Scope, code: str, *, simplify_m: float = 0.0, metric_srid: int = 4548
) -> dict[str, Any] | None:
    """The region as an RFC 7946 GeoJSON Feature (lon/lat, 7 decimals ≈ 1 cm)."""
    features = features_where(
        conn, scope, "r.code = :code", {"code": code}, simplify_m=simplify_m,
        metric_srid=metric_srid,
    )  # fmt: skip
    return features[0] if features else None


def features_where(
    conn: Connection,
    scope: Scope,
    condition: str,
    params: dict[str, Any],
    *,
    simplify_m: float = 0.0,
    metric_srid: int = 4548,
) -> list[dict[str, Any]]:
    geom = "r.geom"
    if simplify_m > 0:
        geom = "ST_Transform(ST_SimplifyPreserveTopology(ST_Transform(r.geom, :srid), :tol), 4490)"
    rows = conn.execute(
        text(
            f"SELECT {_SUMMARY}, ST_AsGeoJSON({geom}, 7, 0) AS geojson "
            f"FROM region r {_LABEL_POINT} "
            f"WHERE r.version_id = :v AND {_VALID} AND {condition} ORDER BY r.code"
        ),
        _params(scope, tol=simplify_m, srid=metric_srid, **params),
    ).all()
    out = []
    for row in rows:
        props = _summary(row)
        props["valid_from"] = props["valid_from"].isoformat() if props["valid_from"] else None
        props["valid_to"] = props["valid_to"].isoformat() if props["valid_to"] else None
        props["boundary_version"] = scope.version.id
        out.append({"type": "Feature", "geometry": json.loads(row.geojson), "properties": props})
    return out
