"""Passwords for the web login, and the login attempts the rate limit counts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("staff", sa.Column("password_hash", sa.Text))
    op.add_column(
        "access_token",
        sa.Column("kind", sa.String(16), nullable=False, server_default="api"),
    )
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.BigInteger, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("login_attempt_username_at", "login_attempt", ["username", "at"])
    op.create_index("login_attempt_client_at", "login_attempt", ["client", "at"])


def downgrade() -> None:
    op.drop_table("login_attempt")
    op.drop_column("access_token", "kind")
    op.drop_column("staff", "password_hash")
