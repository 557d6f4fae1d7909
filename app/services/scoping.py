"""Scoping in one place: which records a principal may see.

Every read of incidents, whistles, patrols, staff and analytics goes through :func:`scope_for`:
a record is in scope when its region code lies in the principal's region subtree (region codes
are hierarchical — a child's code starts with its parent's, which boundary validation enforces,
so the subtree is a code prefix), or — for department officers, where the record names
departments — when it is addressed to the officer's department or one below it.

Out-of-scope records are answered as if they did not exist (404), so scope never leaks
existence; acting on them is refused the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, text

from app.services.identity import Principal


def prefix_pattern(code: str) -> str:
    """A LIKE pattern for every code starting with ``code`` (wildcards escaped)."""
    return code.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"


@dataclass(frozen=True)
class ScopeFilter:
    """The principal's reach: a region code prefix and, for department officers, the codes of
    their department and the departments below it."""

    region_code: str
    departments: tuple[str, ...] | None = None

    @property
    def params(self) -> dict[str, object]:
        """Bind parameters for :meth:`sql`; merge them into the query's own."""
        return {
            "scope_region": prefix_pattern(self.region_code),
            "scope_departments": list(self.departments or ()),
        }

    def sql(self, *, region: str, department: str | None = None) -> str:
        """A boolean SQL condition over a record's region-code column and, when the record is
        addressed to departments, its department-code column (e.g. a joined addressee table).

        Department officers see by department where the record has one, else by region."""
        if self.departments is not None and department is not None:
            return f"({department} = ANY(:scope_departments))"
        return f"({region} LIKE :scope_region)"

    def allows(self, region_code: str | None, departments: Iterable[str] = ()) -> bool:
        """The same rule for one record already in memory."""
        if self.departments is not None:
            named = set(departments)
            if named:
                return bool(named & set(self.departments))
        return region_code is not None and region_code.startswith(self.region_code)


def scope_for(conn: Connection, principal: Principal) -> ScopeFilter:
    """The filter for ``principal``. Department officers reach their department's subtree."""
    if principal.role != "department_officer" or principal.department_code is None:
        return ScopeFilter(principal.region_code)
    codes = conn.execute(
        text(
            """
            WITH RECURSIVE tree AS (
                SELECT id, code FROM department WHERE code = :c
                UNION
                SELECT d.id, d.code FROM department d JOIN tree t ON d.parent_id = t.id
            )
            SELECT code FROM tree ORDER BY code
            """
        ),
        {"c": principal.department_code},
    ).scalars()
    return ScopeFilter(principal.region_code, tuple(codes))
