"""Departments, staff, grid assignments (一格一员, 1+8+X) and access tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "department",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("department.id", ondelete="SET NULL")),
        sa.Column("service_area", Geometry("MULTIPOLYGON", srid=4490, spatial_index=False)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "department_service_area", "department", ["service_area"], postgresql_using="gist"
    )
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("phone", sa.String(32)),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("region_code", sa.String(32), nullable=False),
        sa.Column("department_id", sa.Integer, sa.ForeignKey("department.id", ondelete="RESTRICT")),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("staff_region_code", "staff", ["region_code"])
    op.create_table(
        "grid_assignment",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("grid_code", sa.String(32), nullable=False),
        sa.Column(
            "staff_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.UniqueConstraint("grid_code", "staff_id", "kind", name="grid_assignment_once"),
    )
    op.create_index(
        "grid_assignment_one_primary",
        "grid_assignment",
        ["grid_code"],
        unique=True,
        postgresql_where=sa.text("kind = 'primary'"),
    )
    op.create_index("grid_assignment_staff", "grid_assignment", ["staff_id"])
    op.create_table(
        "access_token",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "staff_id", sa.Integer, sa.ForeignKey("staff.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("access_token_staff", "access_token", ["staff_id"])


def downgrade() -> None:
    op.drop_table("access_token")
    op.drop_table("grid_assignment")
    op.drop_table("staff")
    op.drop_index("department_service_area", table_name="department")
    op.drop_table("department")
