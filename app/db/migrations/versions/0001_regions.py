"""Regions of the four grid levels, boundary versions and the subdivided lookup table.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "boundary_version",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("label", sa.String(200), nullable=False, unique=True),
        sa.Column("source_file", sa.Text, nullable=False),
        sa.Column("source_sha256", sa.String(64)),
        sa.Column(
            "loaded_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True)),
        sa.Column("is_active", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("counts", JSONB, nullable=False, server_default="{}"),
    )
    op.create_index(
        "boundary_version_one_active",
        "boundary_version",
        ["is_active"],
        unique=True,
        postgresql_where=sa.text("is_active"),
    )
    op.create_table(
        "boundary_activation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("boundary_version.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "activated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_boundary_activation_version_id", "boundary_activation", ["version_id"])
    op.create_index("ix_boundary_activation_activated_at", "boundary_activation", ["activated_at"])
    op.create_table(
        "region",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("boundary_version.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("parent_code", sa.String(32)),
        sa.Column("parent_id", sa.BigInteger, sa.ForeignKey("region.id", ondelete="CASCADE")),
        sa.Column("geom", Geometry("MULTIPOLYGON", srid=4490, spatial_index=False), nullable=False),
        sa.Column("area_m2", sa.Float, nullable=False),
        sa.Column("population", sa.Integer),
        sa.Column("households", sa.Integer),
        sa.Column("properties", JSONB, nullable=False, server_default="{}"),
        sa.Column("valid_from", sa.Date),
        sa.Column("valid_to", sa.Date),
        sa.UniqueConstraint("version_id", "code", name="region_version_code"),
        sa.CheckConstraint(
            "level IN ('district', 'street', 'community', 'grid')", name="region_level"
        ),
    )
    op.create_index("region_version_level_code", "region", ["version_id", "level", "code"])
    op.create_index("region_version_parent", "region", ["version_id", "parent_code"])
    op.create_index("region_geom", "region", ["geom"], postgresql_using="gist")
    op.create_table(
        "region_subdivided",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column(
            "region_id",
            sa.BigInteger,
            sa.ForeignKey("region.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("geom", Geometry("POLYGON", srid=4490, spatial_index=False), nullable=False),
    )
    op.create_index("ix_region_subdivided_region_id", "region_subdivided", ["region_id"])
    op.create_index(
        "region_subdivided_geom", "region_subdivided", ["geom"], postgresql_using="gist"
    )
    op.create_index("region_subdivided_version_level", "region_subdivided", ["version_id", "level"])


def downgrade() -> None:
    op.drop_table("region_subdivided")
    op.drop_table("region")
    op.drop_table("boundary_activation")
    op.drop_table("boundary_version")
