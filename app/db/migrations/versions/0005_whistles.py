"""Whistles: call situations, whistles and their addressees, history, photos, supervision,
notifications, and the streets' ratings of departments.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _whistle_fk(**kw: object) -> sa.Column:
    return sa.Column(
        "whistle_id", sa.BigInteger, sa.ForeignKey("whistle.id", ondelete="CASCADE"), **kw
    )


def upgrade() -> None:
    op.create_table(
        "whistle_situation",
        sa.Column("code", sa.String(8), primary_key=True),
        sa.Column("class_key", sa.String(16), nullable=False),
        sa.Column("class_code", sa.String(2), nullable=False),
        sa.Column("class_name_zh", sa.Text, nullable=False),
        sa.Column("class_name_en", sa.Text, nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False),
        sa.Column("name_en", sa.Text, nullable=False),
        sa.Column("grade", sa.String(8), nullable=False),
        sa.Column("lead", ARRAY(sa.String(32)), nullable=False),
        sa.Column("co", ARRAY(sa.String(32)), nullable=False),
        sa.Column("members", ARRAY(sa.String(32)), nullable=False),
    )
    op.create_table(
        "whistle",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "situation_code",
            sa.String(8),
            sa.ForeignKey("whistle_situation.code"),
            nullable=False,
        ),
        sa.Column("grade", sa.String(8), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        # The blowing unit's region (a community, street or district code): the scope.
        sa.Column("region_code", sa.String(32), nullable=False),
        sa.Column("place", Geometry("GEOMETRY", srid=4490, spatial_index=False), nullable=False),
        sa.Column("place_point", Geometry("POINT", srid=4490, spatial_index=False),
                  nullable=False),
        sa.Column("grid_code", sa.String(32)),
        sa.Column("community_code", sa.String(32)),
        sa.Column("street_code", sa.String(32)),
        sa.Column("district_code", sa.String(32)),
        sa.Column("boundary_version_id", sa.Integer, sa.ForeignKey("boundary_version.id")),
        sa.Column("blown_by", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("blown_at", TS, nullable=False),
        sa.Column("report_due_at", TS, nullable=False),
        sa.Column("resolve_due_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
        sa.Column("closed_at", TS),
        sa.Column("ended_at", TS),
        sa.Column("parent_id", sa.BigInteger, sa.ForeignKey("whistle.id")),
        sa.Column("feedback", sa.String(24)),
        sa.Column("feedback_score", sa.Float),
        sa.Column("feedback_note", sa.Text),
        sa.Column("report_overdue", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("resolve_overdue", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("idempotency_key", sa.String(200)),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    )  # fmt: skip
    op.create_index("whistle_place", "whistle", ["place_point"], postgresql_using="gist")
    op.create_index("whistle_region", "whistle", ["region_code", "id"])
    op.create_index("whistle_street", "whistle", ["street_code", "id"])
    op.create_index("whistle_status", "whistle", ["status"])
    op.create_index("whistle_blown_at", "whistle", ["blown_at"])
    op.create_index("whistle_parent", "whistle", ["parent_id"])
    op.create_index(
        "whistle_idempotency",
        "whistle",
        ["blown_by", "idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_table(
        "whistle_incident",
        _whistle_fk(primary_key=True),
        sa.Column("incident_id", sa.BigInteger, sa.ForeignKey("incident.id", ondelete="CASCADE"),
                  primary_key=True),
    )  # fmt: skip
    op.create_index("whistle_incident_incident", "whistle_incident", ["incident_id"])
    op.create_table(
        "whistle_party",
        sa.Column("id", sa.BigInteger, primary_key=True),
        _whistle_fk(nullable=False),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("staff_id", sa.Integer, sa.ForeignKey("staff.id")),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="addressed"),
        sa.Column("addressed_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS),
        sa.Column("arrived_at", TS),
        sa.Column("checkin", Geometry("POINT", srid=4490, spatial_index=False)),
        sa.Column("checkin_distance_m", sa.Float),
        sa.Column("checkin_far", sa.Boolean),
        sa.Column("done_at", TS),
        sa.Column("report_overdue", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("resolve_overdue", sa.Boolean, nullable=False, server_default="false"),
        sa.CheckConstraint("num_nonnulls(department_id, staff_id) = 1", name="one_addressee"),
        sa.UniqueConstraint("whistle_id", "department_id"),
        sa.UniqueConstraint("whistle_id", "staff_id"),
    )
    op.create_index("whistle_party_department", "whistle_party", ["department_id"])
    op.create_index("whistle_party_staff", "whistle_party", ["staff_id"])
    op.create_table(
        "whistle_history",
        sa.Column("id", sa.BigInteger, primary_key=True),
        _whistle_fk(nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("actor_name", sa.Text, nullable=False),
        sa.Column("actor_role", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("party_id", sa.BigInteger, sa.ForeignKey("whistle_party.id")),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("geom", Geometry("POINT", srid=4490, spatial_index=False)),
        sa.Column("data", JSONB),
    )
    op.create_index("whistle_history_whistle", "whistle_history", ["whistle_id", "id"])
    op.execute(
        """
        CREATE FUNCTION whistle_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'whistle_history is append-only';
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER whistle_history_append_only BEFORE UPDATE OR DELETE ON whistle_history "
        "FOR EACH ROW EXECUTE FUNCTION whistle_history_append_only()"
    )
    op.create_table(
        "whistle_photo",
        sa.Column("id", sa.BigInteger, primary_key=True),
        _whistle_fk(nullable=False),
        sa.Column("history_id", sa.BigInteger, sa.ForeignKey("whistle_history.id")),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("bytes", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("uploaded_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("uploaded_by", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
    )
    op.create_index("whistle_photo_whistle", "whistle_photo", ["whistle_id"])
    op.create_table(
        "supervision",
        sa.Column("id", sa.BigInteger, primary_key=True),
        _whistle_fk(nullable=False),
        sa.Column("party_id", sa.BigInteger, sa.ForeignKey("whistle_party.id")),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("closed_at", TS),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
    )
    # One record per overdue step, however many scheduler ticks or workers see it.
    op.execute(
        "CREATE UNIQUE INDEX supervision_once ON supervision (whistle_id, party_id, step) "
        "NULLS NOT DISTINCT"
    )
    op.create_table(
        "notification",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("whistle_id", sa.BigInteger, sa.ForeignKey("whistle.id", ondelete="CASCADE")),
        sa.Column("supervision_id", sa.BigInteger, sa.ForeignKey("supervision.id")),
        # Who sees it: a role within a region's subtree, or a department's officers.
        sa.Column("recipient_role", sa.String(32)),
        sa.Column("recipient_region", sa.String(32)),
        sa.Column("recipient_department_id", sa.Integer, sa.ForeignKey("department.id")),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("notification_region", "notification", ["recipient_region", "id"])
    op.create_index("notification_department", "notification", ["recipient_department_id", "id"])
    op.create_table(
        "street_rating",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("street_code", sa.String(32), nullable=False),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("department.id"), nullable=False),
        sa.Column("deductions", JSONB, nullable=False, server_default="[]"),
        sa.Column("rated_by", sa.Integer, sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("rated_at", TS, nullable=False),
        sa.UniqueConstraint("period", "street_code", "department_id"),
    )


def downgrade() -> None:
    op.drop_table("street_rating")
    op.drop_table("notification")
    op.drop_table("supervision")
    op.drop_table("whistle_photo")
    op.drop_table("whistle_history")
    op.execute("DROP FUNCTION whistle_history_append_only()")
    op.drop_table("whistle_party")
    op.drop_table("whistle_incident")
    op.drop_table("whistle")
    op.drop_table("whistle_situation")
