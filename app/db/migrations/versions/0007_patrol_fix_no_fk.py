"""Patrol fixes: no foreign key from each fix to its worker; a guard on deleting staff instead.

The foreign key's per-row check (``SELECT … FOR KEY SHARE`` on staff for every fix) cost 40 % of
a 10,000-fix batch's INSERT (51 of 130 ms). The ingest checks every batch's workers against
active staff, and staff are deactivated, not deleted; the trigger below refuses deleting a
worker who has fixes, so the fixes keep their worker as the foreign key promised.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE patrol_fix DROP CONSTRAINT IF EXISTS patrol_fix_worker_id_fkey")
    op.execute(
        """
        CREATE FUNCTION staff_keep_patrol_fixes() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM patrol_fix WHERE worker_id = OLD.id) THEN
                RAISE EXCEPTION 'staff % has patrol fixes: deactivate, do not delete', OLD.name
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN OLD;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER staff_keep_patrol_fixes BEFORE DELETE ON staff "
        "FOR EACH ROW EXECUTE FUNCTION staff_keep_patrol_fixes()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER staff_keep_patrol_fixes ON staff")
    op.execute("DROP FUNCTION staff_keep_patrol_fixes()")
    op.execute(
        "ALTER TABLE patrol_fix ADD CONSTRAINT patrol_fix_worker_id_fkey "
        "FOREIGN KEY (worker_id) REFERENCES staff (id)"
    )
