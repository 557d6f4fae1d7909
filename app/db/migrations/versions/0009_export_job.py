"""Exports: the background jobs that write large planners' exports (GeoPackage, CSV, GeoJSON).

One row per export asked for over the row limit (``GRIDMAP_EXPORT_ROW_LIMIT``): who asked (the
job runs with their scope), what (kind, format and the resolved parameters), and how it went —
``queued`` → ``running`` → ``done`` or ``failed``, with the rows and bytes written, the reason
when the period held no data, the error when it failed, and the file under
``<var_dir>/exports``. Jobs and their files are removed after seven days.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()")),
        sa.Column(
            "owner_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("params", JSONB, nullable=False, server_default="{}"),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("rows", sa.BigInteger),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("path", sa.Text),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name="export_job_status_known"
        ),
    )
    op.create_index("export_job_owner", "export_job", ["owner_id", "created_at"])
    op.create_index("export_job_status", "export_job", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("export_job")
