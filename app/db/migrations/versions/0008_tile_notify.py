"""Vector tiles: tell every worker when the data behind a tile layer changes.

Statement-level AFTER triggers ``pg_notify('gridmap_data', '<layer group>')``: one notification
per statement (and PostgreSQL folds identical ones within a transaction), so a 10,000-fix ingest
costs one call, not 10,000. NOTIFY is delivered only when the transaction commits, so a worker
never drops its cached tiles before the change is visible, and a rolled-back change sends
nothing. Each app process LISTENs (``app.services.tiles``) and drops that group's tiles.

Groups: ``boundaries`` (region, boundary_version: imports, activations), ``incidents``
(incident), ``tracks`` (patrol_fix, and staff: a worker's name and home region decide a track's
label and who may see it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (table, layer group, events)
TRIGGERS = (
    ("incident", "incidents", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("patrol_fix", "tracks", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("staff", "tracks", "INSERT OR UPDATE OR DELETE"),
    ("region", "boundaries", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("boundary_version", "boundaries", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION gridmap_tile_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('gridmap_data', TG_ARGV[0]);
            RETURN NULL;
        END $$
        """
    )
    for table, group, events in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {table}_tile_notify AFTER {events} ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION gridmap_tile_notify('{group}')"
        )


def downgrade() -> None:
    for table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_tile_notify ON {table}")
    op.execute("DROP FUNCTION gridmap_tile_notify()")
