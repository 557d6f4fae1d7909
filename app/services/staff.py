"""Reading staff and their grids through the shared scope filter."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from app.services.scoping import ScopeFilter, prefix_pattern

_SELECT = """
SELECT s.id, s.name, s.display_name, s.phone, s.role, s.region_code, d.code AS department,
       s.active,
       COALESCE((SELECT json_agg(json_build_object('grid_code', a.grid_code, 'kind', a.kind)
                                 ORDER BY a.grid_code, a.kind)
                 FROM grid_assignment a WHERE a.staff_id = s.id), '[]') AS grids
FROM staff s LEFT JOIN department d ON d.id = s.department_id
"""


def page(
    conn: Connection,
    reach: ScopeFilter,
    *,
    limit: int,
    after_id: int | None = None,
    role: str | None = None,
    region: str | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Staff in the principal's scope, by id; ``region`` narrows to a subtree. Returns the page
    and the id to continue after (None at the end)."""
    params: dict[str, Any] = {**reach.params, "after": after_id or 0, "n": limit + 1}
    where = [reach.sql(region="s.region_code", department="d.code"), "s.id > :after"]
    if role is not None:
        where.append("s.role = :role")
        params["role"] = role
    if region is not None:
        where.append("s.region_code LIKE :sub")
        params["sub"] = prefix_pattern(region)
    rows = [
        dict(r)
        for r in conn.execute(
            text(f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY s.id LIMIT :n"), params
        ).mappings()
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1]["id"] if more else None)


def get(conn: Connection, reach: ScopeFilter, name: str) -> dict[str, Any] | None:
    """One staff member by user name, or None when unknown or out of scope (the same answer)."""
    row = (
        conn.execute(
            text(
                f"{_SELECT} WHERE s.name = :n AND "
                f"{reach.sql(region='s.region_code', department='d.code')}"
            ),
            {**reach.params, "n": name},
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
