"""ORM models (GeoAlchemy2). The schema itself is made by the Alembic migrations only."""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from gis.codes import LEVELS

SRID = 4490


class Base(DeclarativeBase):
    pass


class BoundaryVersion(Base):
    """One imported boundary set (a MapIt-style generation). At most one is active."""

    __tablename__ = "boundary_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(200), unique=True)
    source_file: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    activated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="false")
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")

    __table_args__ = (
        Index("boundary_version_one_active", "is_active", unique=True,
              postgresql_where="is_active"),
    )  # fmt: skip


class BoundaryActivation(Base):
    """Every activation, so that ``as_of`` finds the version current at any past moment."""

    __tablename__ = "boundary_activation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("boundary_version.id", ondelete="CASCADE"), index=True
    )
    activated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )


class Region(Base):
    """A district, street, community or basic grid of one boundary version."""

    __tablename__ = "region"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("boundary_version.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(Text)
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("region.id", ondelete="CASCADE"))
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False))
    area_m2: Mapped[float] = mapped_column(Float)
    population: Mapped[int | None] = mapped_column(Integer)
    households: Mapped[int | None] = mapped_column(Integer)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)

    __table_args__ = (
        UniqueConstraint("version_id", "code", name="region_version_code"),
        CheckConstraint(
            "level IN (" + ", ".join(f"'{lv}'" for lv in LEVELS) + ")", name="region_level"
        ),
        Index("region_version_level_code", "version_id", "level", "code"),
        Index("region_version_parent", "version_id", "parent_code"),
        Index("region_geom", "geom", postgresql_using="gist"),
    )


class RegionPart(Base):
    """Regions cut by ST_Subdivide into small pieces, so point lookups touch few vertices."""

    __tablename__ = "region_subdivided"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    geom: Mapped[Any] = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False))

    __table_args__ = (
        Index("region_subdivided_geom", "geom", postgresql_using="gist"),
        Index("region_subdivided_version_level", "version_id", "level"),
    )


class Department(Base):
    """A functional department (police, housing, city management, …) or one of its stations."""

    __tablename__ = "department"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("department.id", ondelete="SET NULL"))
    service_area: Mapped[Any] = mapped_column(
        Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (Index("department_service_area", "service_area", postgresql_using="gist"),)


class Staff(Base):
    """A user: a role, a home region (its code; everything below is in scope), a department."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(32))
    region_code: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int | None] = mapped_column(
        ForeignKey("department.id", ondelete="RESTRICT")
    )
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # scrypt, for the web login only (API clients use bearer tokens); NULL: no web login.
    password_hash: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("staff_region_code", "region_code"),)


class GridAssignment(Base):
    """Who serves a basic grid: its one primary gridworker (一格一员) and its 1+8+X members.
    By grid code, so assignments carry over to a new boundary version that keeps the code."""

    __tablename__ = "grid_assignment"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_code: Mapped[str] = mapped_column(String(32))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        Index("grid_assignment_staff", "staff_id"),
        UniqueConstraint("grid_code", "staff_id", "kind", name="grid_assignment_once"),
        Index("grid_assignment_one_primary", "grid_code", unique=True,
              postgresql_where="kind = 'primary'"),
    )  # fmt: skip


class AccessToken(Base):
    """A bearer token, stored as its SHA-256 only; shown once when made."""

    __tablename__ = "access_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(Text, server_default="")
    # "api" (made by `gridmap tokens create`) or "session" (a web login's cookie)
    kind: Mapped[str] = mapped_column(String(16), server_default="api")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("access_token_staff", "staff_id"),)


class LoginAttempt(Base):
    """One web login attempt; failures in a recent window are what the rate limit counts."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("login_attempt_username_at", "username", "at"),
        Index("login_attempt_client_at", "client", "at"),
    )


_TS = DateTime(timezone=True)


class IncidentClass(Base):
    """A minor class of the catalogue (data/catalogs/incident_classes.yaml): part, event or
    social-governance class, with its time limits per step and responsible department kind."""

    __tablename__ = "incident_class"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    major_code: Mapped[str] = mapped_column(String(2))
    major_name_zh: Mapped[str] = mapped_column(Text)
    major_name_en: Mapped[str] = mapped_column(Text)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    filing_condition: Mapped[str] = mapped_column(Text)
    closing_condition: Mapped[str] = mapped_column(Text)
    limits: Mapped[dict[str, Any]] = mapped_column(JSONB)
    department_kind: Mapped[str] = mapped_column(String(32))
    duplicate_radius_m: Mapped[float] = mapped_column(Float, server_default="100")
    duplicate_window_h: Mapped[float] = mapped_column(Float, server_default="72")
    urgent: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Incident(Base):
    """A case (案卷) on its grid: where, what, its state in the loop and the current deadline."""

    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    class_code: Mapped[str] = mapped_column(ForeignKey("incident_class.code"))
    source: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    input_lon: Mapped[float] = mapped_column(Float)
    input_lat: Mapped[float] = mapped_column(Float)
    input_crs: Mapped[str] = mapped_column(String(16))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32))
    district_code: Mapped[str | None] = mapped_column(String(32))
    region_code: Mapped[str] = mapped_column(String(32))
    boundary_version_id: Mapped[int] = mapped_column(ForeignKey("boundary_version.id"))
    out_of_area: Mapped[bool] = mapped_column(Boolean, server_default="false")
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    reporter_contact: Mapped[str | None] = mapped_column(Text)
    department_code: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    reported_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())
    filed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    dispatched_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    handled_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    verified_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    closed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    closed_on_time: Mapped[bool | None] = mapped_column(Boolean)
    overdue_steps: Mapped[int] = mapped_column(Integer, server_default="0")
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    extension_count: Mapped[int] = mapped_column(Integer, server_default="0")
    extension_request: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    parked_from: Mapped[str | None] = mapped_column(String(16))
    merged_into: Mapped[int | None] = mapped_column(ForeignKey("incident.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        Index("incident_geom", "geom", postgresql_using="gist"),
        Index("incident_region", "region_code", "id"),
        Index("incident_street", "street_code", "id"),
        Index("incident_grid", "grid_code"),
        Index("incident_status", "status"),
        Index("incident_reported_at", "reported_at"),
        Index("incident_class_status", "class_code", "status"),
        Index("incident_due", "due_at"),
        Index("incident_idempotency", "reporter_id", "idempotency_key", unique=True,
              postgresql_where="idempotency_key IS NOT NULL"),
    )  # fmt: skip


class IncidentHistory(Base):
    """One transition of a case (append-only: a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "incident_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(Text)
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, server_default="")
    geom: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=False), nullable=True
    )
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("incident_history_incident", "incident_id", "id"),)


class IncidentPhoto(Base):
    """A photo of a case, stored on disk under GRIDMAP_PHOTO_DIR by its SHA-256."""

    __tablename__ = "incident_photo"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))

    __table_args__ = (Index("incident_photo_incident", "incident_id"),)


class IncidentLink(Base):
    """Cases linked to each other: a duplicate merged into the case that goes on."""

    __tablename__ = "incident_link"

    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    other_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))


class WhistleSituation(Base):
    """A call situation (吹哨情形): its class, default grade and the departments it calls."""

    __tablename__ = "whistle_situation"

    code: Mapped[str] = mapped_column(String(8), primary_key=True)
    class_key: Mapped[str] = mapped_column(String(16))
    class_code: Mapped[str] = mapped_column(String(2))
    class_name_zh: Mapped[str] = mapped_column(Text)
    class_name_en: Mapped[str] = mapped_column(Text)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    grade: Mapped[str] = mapped_column(String(8))
    lead: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    co: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    members: Mapped[list[str]] = mapped_column(ARRAY(String(32)))


class Whistle(Base):
    """A whistle (吹哨): a street, community or the district summoning who owns a problem."""

    __tablename__ = "whistle"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    situation_code: Mapped[str] = mapped_column(ForeignKey("whistle_situation.code"))
    grade: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default="")
    region_code: Mapped[str] = mapped_column(String(32))
    place: Mapped[Any] = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False))
    place_point: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    grid_code: Mapped[str | None] = mapped_column(String(32))
    community_code: Mapped[str | None] = mapped_column(String(32))
    street_code: Mapped[str | None] = mapped_column(String(32))
    district_code: Mapped[str | None] = mapped_column(String(32))
    boundary_version_id: Mapped[int | None] = mapped_column(ForeignKey("boundary_version.id"))
    blown_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    blown_at: Mapped[dt.datetime] = mapped_column(_TS)
    report_due_at: Mapped[dt.datetime] = mapped_column(_TS)
    resolve_due_at: Mapped[dt.datetime] = mapped_column(_TS)
    resolved_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    closed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    ended_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("whistle.id"))
    feedback: Mapped[str | None] = mapped_column(String(24))
    feedback_score: Mapped[float | None] = mapped_column(Float)
    feedback_note: Mapped[str | None] = mapped_column(Text)
    report_overdue: Mapped[bool] = mapped_column(Boolean, server_default="false")
    resolve_overdue: Mapped[bool] = mapped_column(Boolean, server_default="false")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __table_args__ = (
        Index("whistle_place", "place_point", postgresql_using="gist"),
        Index("whistle_region", "region_code", "id"),
        Index("whistle_street", "street_code", "id"),
        Index("whistle_status", "status"),
        Index("whistle_blown_at", "blown_at"),
        Index("whistle_parent", "parent_id"),
        Index("whistle_idempotency", "blown_by", "idempotency_key", unique=True,
              postgresql_where="idempotency_key IS NOT NULL"),
    )  # fmt: skip


class WhistleIncident(Base):
    """The cases a whistle was blown for."""

    __tablename__ = "whistle_incident"

    whistle_id: Mapped[int] = mapped_column(
        ForeignKey("whistle.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (Index("whistle_incident_incident", "incident_id"),)


class WhistleParty(Base):
    """An addressee of a whistle — a department, or for a community whistle a grid member —
    as lead (主办), co-handler (协办) or notified (知会), with its report (报到) record."""

    __tablename__ = "whistle_party"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    whistle_id: Mapped[int] = mapped_column(ForeignKey("whistle.id", ondelete="CASCADE"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    role: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), server_default="addressed")
    addressed_at: Mapped[dt.datetime] = mapped_column(_TS)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    arrived_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    checkin: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=False), nullable=True
    )
    checkin_distance_m: Mapped[float | None] = mapped_column(Float)
    checkin_far: Mapped[bool | None] = mapped_column(Boolean)
    done_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    report_overdue: Mapped[bool] = mapped_column(Boolean, server_default="false")
    resolve_overdue: Mapped[bool] = mapped_column(Boolean, server_default="false")

    __table_args__ = (
        CheckConstraint("num_nonnulls(department_id, staff_id) = 1", name="one_addressee"),
        UniqueConstraint("whistle_id", "department_id"),
        UniqueConstraint("whistle_id", "staff_id"),
        Index("whistle_party_department", "department_id"),
        Index("whistle_party_staff", "staff_id"),
    )


class WhistleHistory(Base):
    """One step of a whistle (append-only: a trigger refuses UPDATE and DELETE)."""

    __tablename__ = "whistle_history"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    whistle_id: Mapped[int] = mapped_column(ForeignKey("whistle.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(_TS)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    actor_name: Mapped[str] = mapped_column(Text)
    actor_role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("whistle_party.id"))
    note: Mapped[str] = mapped_column(Text, server_default="")
    geom: Mapped[Any | None] = mapped_column(
        Geometry("POINT", srid=SRID, spatial_index=False), nullable=True
    )
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("whistle_history_whistle", "whistle_id", "id"),)


class WhistlePhoto(Base):
    """A photo of a whistle's progress, stored on disk by its SHA-256 like case photos."""

    __tablename__ = "whistle_photo"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    whistle_id: Mapped[int] = mapped_column(ForeignKey("whistle.id", ondelete="CASCADE"))
    history_id: Mapped[int | None] = mapped_column(ForeignKey("whistle_history.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))

    __table_args__ = (Index("whistle_photo_whistle", "whistle_id"),)


class Supervision(Base):
    """A supervision record (督办) of the district supervision office: one per overdue step."""

    __tablename__ = "supervision"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    whistle_id: Mapped[int] = mapped_column(ForeignKey("whistle.id", ondelete="CASCADE"))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("whistle_party.id"))
    step: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[dt.datetime] = mapped_column(_TS)
    opened_at: Mapped[dt.datetime] = mapped_column(_TS)
    closed_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    note: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (
        Index("supervision_once", "whistle_id", "party_id", "step", unique=True,
              postgresql_nulls_not_distinct=True),
    )  # fmt: skip


class Notification(Base):
    """A message to a role within a region's subtree, or to a department's officers."""

    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(_TS)
    whistle_id: Mapped[int | None] = mapped_column(ForeignKey("whistle.id", ondelete="CASCADE"))
    supervision_id: Mapped[int | None] = mapped_column(ForeignKey("supervision.id"))
    recipient_role: Mapped[str | None] = mapped_column(String(32))
    recipient_region: Mapped[str | None] = mapped_column(String(32))
    recipient_department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text, server_default="")

    __table_args__ = (
        Index("notification_region", "recipient_region", "id"),
        Index("notification_department", "recipient_department_id", "id"),
    )


class StreetRating(Base):
    """A street's perceived-service rating of a department for a period: its deductions."""

    __tablename__ = "street_rating"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    period: Mapped[str] = mapped_column(String(16))
    street_code: Mapped[str] = mapped_column(String(32))
    department_id: Mapped[int] = mapped_column(ForeignKey("department.id"))
    deductions: Mapped[list[Any]] = mapped_column(JSONB, server_default="[]")
    rated_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    rated_at: Mapped[dt.datetime] = mapped_column(_TS)

    __table_args__ = (UniqueConstraint("period", "street_code", "department_id"),)


class PatrolFix(Base):
    """A gridworker's GPS fix, located onto its grid; ``flags`` marks implausible ones (kept but
    left out of analytics): 1 a jump faster than 150 km/h, 2 accuracy worse than 100 m, 4 a
    time in the future. Partitioned by day (PARTITION BY RANGE (fix_time), migration 0006).
    ``worker_id`` is a staff id without a foreign key (its per-row check cost 40 % of an
    ingest); a trigger refuses deleting staff who have fixes (migration 0007)."""

    __tablename__ = "patrol_fix"

    worker_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fix_time: Mapped[dt.datetime] = mapped_column(_TS, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    geom: Mapped[Any] = mapped_column(Geometry("POINT", srid=SRID, spatial_index=False))
    input_crs: Mapped[str] = mapped_column(String(16))
    accuracy_m: Mapped[float | None] = mapped_column(REAL)
    speed_mps: Mapped[float | None] = mapped_column(REAL)
    grid_code: Mapped[str | None] = mapped_column(String(32))
    boundary_version_id: Mapped[int | None] = mapped_column(Integer)
    flags: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    received_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())

    __table_args__ = (
        Index("patrol_fix_time", "fix_time"),
        {"postgresql_partition_by": "RANGE (fix_time)"},
    )


class ExportJob(Base):
    """A large export written in the background (``app.services.exports``): queued, running,
    done or failed; the file lives under ``<var_dir>/exports`` for seven days."""

    __tablename__ = "export_job"

    id: Mapped[Any] = mapped_column(Uuid, primary_key=True, server_default=func.gen_random_uuid())
    owner_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    rows: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(_TS, server_default=func.now())
    started_at: Mapped[dt.datetime | None] = mapped_column(_TS)
    finished_at: Mapped[dt.datetime | None] = mapped_column(_TS)

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                        name="export_job_status_known"),
        Index("export_job_owner", "owner_id", "created_at"),
        Index("export_job_status", "status", "created_at"),
    )  # fmt: skip
