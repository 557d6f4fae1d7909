"""Boundary versions: import (one transaction, validated first), activation, and lookup by time.

Every import creates a new, inactive version holding a complete hierarchy; activating it makes it
current; old versions stay queryable (MapIt's generations). Activations are logged so that
``as_of`` answers from the version that was active at that moment, even after a roll-back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine, text

from gis.codes import LEVELS
from gis.crs import metric_area
from gis.hierarchy import Report, ValidationOptions, validate
from gis.io import BoundaryFile

Progress = Callable[[str, int, int], None]
NOTIFY_CHANNEL = "gridmap_boundaries"
_COPY_CHUNK = 2000


class BoundaryRejected(Exception):
    """The boundary set has errors; nothing was written."""

    def __init__(self, report: Report) -> None:
        super().__init__(f"{len(report.errors)} error(s) in the boundary set")
        self.report = report


class VersionNotFound(LookupError):
    pass


class LabelTaken(ValueError):
    pass


@dataclass(frozen=True)
class Version:
    id: int
    label: str
    source_file: str
    loaded_at: dt.datetime
    activated_at: dt.datetime | None
    is_active: bool
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "source_file": self.source_file,
            "loaded_at": self.loaded_at.isoformat(),
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "active": self.is_active,
            "counts": {level: self.counts.get(level, 0) for level in LEVELS},
        }


_VERSION_COLUMNS = "id, label, source_file, loaded_at, activated_at, is_active, counts"


def _version(row: Any) -> Version:
    return Version(
        id=row.id,
        label=row.label,
        source_file=row.source_file,
        loaded_at=row.loaded_at,
        activated_at=row.activated_at,
        is_active=row.is_active,
        counts=dict(row.counts or {}),
    )


def file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path.is_file():
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def check(boundaries: BoundaryFile, options: ValidationOptions) -> Report:
    """Validate a read boundary set: the reader's findings plus :func:`gis.hierarchy.validate`."""
    report = validate(boundaries.frame, options)
    report.issues[:0] = boundaries.issues
    return report


def import_boundaries(
    engine: Engine,
    boundaries: BoundaryFile,
    options: ValidationOptions,
    *,
    label: str | None = None,
    source_paths: Sequence[Path] = (),
    progress: Progress | None = None,
) -> tuple[Version, Report]:
    """Validate, then write a new inactive version in one transaction.

    Raises :class:`BoundaryRejected` (nothing written) when the set has errors and
    :class:`LabelTaken` when the label is in use.
    """
    report = check(boundaries, options)
    if not report.ok:
        raise BoundaryRejected(report)
    frame = boundaries.frame
    counts = {level: int((frame["level"] == level).sum()) for level in LEVELS}
    label = label or (
        f"{Path(boundaries.sources[0].split(':')[0]).stem} "
        f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M:%S}"
    )
    source = ", ".join(boundaries.sources)
    areas = metric_area(frame.geometry.to_numpy(), options.metric_crs)
    geoms = shapely.set_srid(np.array([_multi(g) for g in frame.geometry], dtype=object), 4490)
    wkb = shapely.to_wkb(geoms, hex=True, include_srid=True)

    with engine.begin() as conn:
        taken = conn.execute(
            text("SELECT 1 FROM boundary_version WHERE label = :label"), {"label": label}
        ).first()
        if taken:
            raise LabelTaken(f"a boundary version labelled {label!r} already exists")
        version_id = conn.execute(
            text(
                "INSERT INTO boundary_version (label, source_file, source_sha256, counts) "
                "VALUES (:label, :source, :sha, CAST(:counts AS jsonb)) RETURNING id"
            ),
            {
                "label": label,
                "source": source,
                "sha": file_digest(list(source_paths)) if source_paths else None,
                "counts": _json(counts),
            },
        ).scalar_one()
        _copy_regions(conn, version_id, frame, wkb, areas, progress)
        if progress:
            progress("subdividing for lookups", 0, 1)
        conn.execute(
            text(
                "INSERT INTO region_subdivided (region_id, version_id, level, geom) "
                "SELECT id, version_id, level, ST_Subdivide(geom, 64) "
                "FROM region WHERE version_id = :v"
            ),
            {"v": version_id},
        )
        if progress:
            progress("subdividing for lookups", 1, 1)
        row = conn.execute(
            text(f"SELECT {_VERSION_COLUMNS} FROM boundary_version WHERE id = :v"),
            {"v": version_id},
        ).one()
    return _version(row), report


def _multi(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.MultiPolygon([geom]) if geom.geom_type == "Polygon" else geom


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _copy_regions(
    conn: Connection,
    version_id: int,
    frame: gpd.GeoDataFrame,
    wkb: np.ndarray,
    areas: np.ndarray,
    progress: Progress | None,
) -> None:
    """Bulk-write the regions through COPY on the transaction's own connection.

    Ids are drawn from the sequence first, so each row's parent_id is known before it is
    written: no second pass over the table to link parents.
    """
    total = len(frame)
    ids = (
        conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence('region', 'id')) FROM generate_series(1, :n)"
            ),
            {"n": total},
        )
        .scalars()
        .all()
    )
    codes = list(frame["code"])
    id_of = dict(zip(codes, ids, strict=True))
    parents = [_value(p) for p in frame["parent_code"]]
    columns = [
        ids,
        [version_id] * total,
        codes,
        [_value(v) for v in frame["name"]],
        list(frame["level"]),
        parents,
        [id_of.get(p) if p is not None else None for p in parents],
        wkb,
        areas.tolist(),
        [_int(v) for v in frame["population"]],
        [_int(v) for v in frame["households"]],
        [_json(p if isinstance(p, dict) else {}) for p in frame["properties"]],
        [_value(v) for v in frame["valid_from"]],
        [_value(v) for v in frame["valid_to"]],
    ]
    names = (
        "id, version_id, code, name, level, parent_code, parent_id, geom, area_m2, population, "
        "households, properties, valid_from, valid_to"
    )
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(f"COPY region ({names}) FROM STDIN") as copy:
        for i, row in enumerate(zip(*columns, strict=True), start=1):
            copy.write_row(row)
            if progress and (i % _COPY_CHUNK == 0 or i == total):
                progress("writing regions", i, total)


def _value(value: Any) -> Any:
    """None for every pandas spelling of missing (None, NaN, NA, NaT)."""
    if value is None or (not isinstance(value, (dict, list)) and pd.isna(value)):
        return None
    return value or None if isinstance(value, str) else value


def _int(value: Any) -> int | None:
    value = _value(value)
    return None if value is None else int(value)


def list_versions(conn: Connection) -> list[Version]:
    rows = conn.execute(text(f"SELECT {_VERSION_COLUMNS} FROM boundary_version ORDER BY id")).all()
    return [_version(r) for r in rows]


def get_version(conn: Connection, ref: str | int) -> Version:
    """A version by id or label."""
    ref_text = str(ref).strip()
    row = None
    if ref_text.isdigit():
        row = conn.execute(
            text(f"SELECT {_VERSION_COLUMNS} FROM boundary_version WHERE id = :id"),
            {"id": int(ref_text)},
        ).first()
    if row is None:
        row = conn.execute(
            text(f"SELECT {_VERSION_COLUMNS} FROM boundary_version WHERE label = :label"),
            {"label": ref_text},
        ).first()
    if row is None:
        raise VersionNotFound(f"no boundary version {ref_text!r}")
    return _version(row)


def activate(engine: Engine, ref: str | int) -> Version:
    """Make a version current; every running worker is told through NOTIFY."""
    with engine.begin() as conn:
        # One activation at a time: concurrent activations serialise on this lock.
        conn.execute(text("LOCK TABLE boundary_version IN SHARE ROW EXCLUSIVE MODE"))
        version = get_version(conn, ref)
        conn.execute(text("UPDATE boundary_version SET is_active = false WHERE is_active"))
        conn.execute(
            text(
                "UPDATE boundary_version SET is_active = true, activated_at = clock_timestamp() "
                "WHERE id = :v"
            ),
            {"v": version.id},
        )
        conn.execute(
            text(
                "INSERT INTO boundary_activation (version_id, activated_at) "
                "SELECT id, activated_at FROM boundary_version WHERE id = :v"
            ),
            {"v": version.id},
        )
        conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                     {"channel": NOTIFY_CHANNEL, "payload": str(version.id)})  # fmt: skip
        return get_version(conn, version.id)


def active_version(conn: Connection) -> Version | None:
    row = conn.execute(
        text(f"SELECT {_VERSION_COLUMNS} FROM boundary_version WHERE is_active")
    ).first()
    return _version(row) if row else None


def version_at(conn: Connection, moment: dt.datetime) -> Version | None:
    """The version that was active at ``moment`` (from the activation log)."""
    row = conn.execute(
        text(
            "SELECT version_id FROM boundary_activation WHERE activated_at <= :t "
            "ORDER BY activated_at DESC, id DESC LIMIT 1"
        ),
        {"t": moment},
    ).first()
    return get_version(conn, row.version_id) if row else None


def is_empty(conn: Connection) -> bool:
    return conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM boundary_version)")).scalar_one()
