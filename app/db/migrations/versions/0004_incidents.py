"""Incidents: the class catalogue, cases on their grids, their history and photos.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incident_class",
        sa.Column("code", sa.String(8), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("major_code", sa.String(2), nullable=False),
        sa.Column("major_name_zh", sa.Text, nullable=False),
        sa.Column("major_name_en", sa.Text, nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("filing_condition", sa.Text, nullable=False),
        sa.Column("closing_condition", sa.Text, nullable=False),
        sa.Column("limits", JSONB, nullable=False),
        sa.Column("department_kind", sa.String(32), nullable=False),
        sa.Column("duplicate_radius_m", sa.Float, nullable=False, server_default="100"),
        sa.Column("duplicate_window_h", sa.Float, nullable=False, server_default="72"),
        sa.Column("urgent", sa.Boolean, nullable=False, server_default="false"),
    )
    op.create_table(
        "incident",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("class_code", sa.String(8), sa.ForeignKey("incident_class.code"), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("geom", Geometry("POINT", srid=4490, spatial_index=False), nullable=False),
        sa.Column("input_lon", sa.Float, nullable=False),
        sa.Column("input_lat", sa.Float, nullable=False),
        sa.Column("input_crs", sa.String(16), nullable=False),
        sa.Column("grid_code", sa.String(32)),
        sa.Column("community_code", sa.String(32)),
        sa.Column("street_code", sa.String(32)),
        sa.Column("district_code", sa.String(32)),
        # What scoping filters on: the grid's code, or for a point outside every grid the
        # district of the nearest grid (its commanders assign it by hand).
        sa.Column("region_code", sa.String(32), nullable=False),
        sa.Column(
            "boundary_version_id", sa.Integer, sa.ForeignKey("boundary_version.id"), nullable=False
        ),
        sa.Column("out_of_area", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("reporter_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("reporter_contact", sa.Text),
        sa.Column("department_code", sa.String(64)),
        sa.Column("step", sa.String(16)),
        sa.Column("due_at", TS),
        sa.Column("reported_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("filed_at", TS),
        sa.Column("dispatched_at", TS),
        sa.Column("handled_at", TS),
        sa.Column("verified_at", TS),
        sa.Column("closed_at", TS),
        sa.Column("closed_on_time", sa.Boolean),
        sa.Column("overdue_steps", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rework_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("extension_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("extension_request", JSONB),
        sa.Column("parked_from", sa.String(16)),
        sa.Column("merged_into", sa.BigInteger, sa.ForeignKey("incident.id")),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )
    op.create_index("incident_geom", "incident", ["geom"], postgresql_using="gist")
    op.create_index("incident_region", "incident", ["region_code", "id"])
    op.create_index("incident_street", "incident", ["street_code", "id"])
    op.create_index("incident_grid", "incident", ["grid_code"])
    op.create_index("incident_status", "incident", ["status"])
    op.create_index("incident_reported_at", "incident", ["reported_at"])
    op.create_index("incident_class_status", "incident", ["class_code", "status"])
    op.create_index("incident_due", "incident", ["due_at"])
    op.create_index(
        "incident_idempotency",
        "incident",
        ["reporter_id", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "incident_history",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "incident_id",
            sa.BigInteger,
            sa.ForeignKey("incident.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("actor_name", sa.Text, nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("geom", Geometry("POINT", srid=4490, spatial_index=False)),
        sa.Column("data", JSONB),
    )
    op.create_index("incident_history_incident", "incident_history", ["incident_id", "id"])
    # Append-only: history rows are evidence (who did what, when, where).
    op.execute(
        """
        CREATE FUNCTION incident_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'incident_history is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER incident_history_append_only BEFORE UPDATE OR DELETE ON incident_history "
        "FOR EACH ROW EXECUTE FUNCTION incident_history_append_only()"
    )
    op.create_table(
        "incident_photo",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "incident_id",
            sa.BigInteger,
            sa.ForeignKey("incident.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("uploaded_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
    )
    op.create_index("incident_photo_incident", "incident_photo", ["incident_id"])
    op.create_table(
        "incident_link",
        sa.Column("incident_id", sa.BigInteger, sa.ForeignKey("incident.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("other_id", sa.BigInteger, sa.ForeignKey("incident.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_table("incident_link")
    op.drop_table("incident_photo")
    op.drop_table("incident_history")
    op.execute("DROP FUNCTION incident_history_append_only()")
    op.drop_table("incident")
    op.drop_table("incident_class")
