"""Patrols: gridworkers' GPS fixes, partitioned by day (declarative range partitioning).

Partitions are made ahead by ``app.services.patrols.ensure_partitions`` (at ingest, at start-up
and by the app's housekeeping); old ones can be detached (``gridmap patrols detach``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Raw SQL: Alembic's create_table has no PARTITION BY. The partition key (fix_time) must be
    # in the primary key; (worker, time, client id) is also what makes a resent fix a duplicate.
    op.execute(
        """
        CREATE TABLE patrol_fix (
            worker_id integer NOT NULL REFERENCES staff (id),
            fix_time timestamptz NOT NULL,
            client_id varchar(64) NOT NULL,
            geom geometry(Point, 4490) NOT NULL,
            input_crs varchar(16) NOT NULL,
            accuracy_m real,
            speed_mps real,
            grid_code varchar(32),
            boundary_version_id integer,
            flags smallint NOT NULL DEFAULT 0,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (worker_id, fix_time, client_id)
        ) PARTITION BY RANGE (fix_time)
        """
    )
    # Live positions read the last minutes across workers; a day's tracks and coverage read
    # by worker (the key) or the whole day's partition, so no more indexes to feed at ingest.
    op.execute("CREATE INDEX patrol_fix_time ON patrol_fix (fix_time)")


def downgrade() -> None:
    op.execute("DROP TABLE patrol_fix CASCADE")
