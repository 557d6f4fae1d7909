"""Who am I, the departments, staff in scope, and who serves a grid (一格一员, 1+8+X)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from app.api.auth import CurrentUser, Reach
from app.api.deps import Conn, ScopeDep, decode_cursor, encode_cursor
from app.api.problems import Problem, invalid, not_found, problem_responses
from app.api.regions import DutyWorker
from app.services import identity
from app.services import staff as service

router = APIRouter(prefix="/api/v1", tags=["identity"], responses=problem_responses(404, 422))

Role = Literal[
    "district_commander", "supervisor", "street_commander", "community_officer", "gridworker",
    "department_officer", "planner", "screen", "admin",
]  # fmt: skip  # identity.ROLES
MemberKind = Literal[
    "primary", "leader", "supervisor", "enforcer", "community_officer", "sanitation", "police",
    "liaison", "discipline", "street_staff", "other",
]  # fmt: skip  # identity.MEMBER_KINDS
UserName = Annotated[str, Path(min_length=1, max_length=100, examples=["gw-120106001001001"])]
KindQuery = Annotated[MemberKind, Query(description="primary (一格一员) or a 1+8+X kind")]
GridCode = Annotated[str, Path(max_length=32, examples=["120106001001001"])]


class Me(BaseModel):
    name: str
    display_name: str
    role: Role
    region_code: str = Field(description="Everything in this region's subtree is in scope")
    department: str | None
    actions: list[str] = Field(description="What this role may do (the permission table)")


class Department(BaseModel):
    code: str
    name: str
    kind: str
    parent: str | None
    has_area: bool = Field(description="Has a service area (e.g. a police station's)")


class GridRef(BaseModel):
    grid_code: str
    kind: MemberKind


class StaffOut(BaseModel):
    name: str
    display_name: str
    phone: str | None
    role: Role
    region_code: str
    department: str | None
    active: bool
    grids: list[GridRef]


class StaffPage(BaseModel):
    items: list[StaffOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null at end")


class GridMembers(BaseModel):
    grid_code: str
    members: list[DutyWorker] = Field(description="The primary gridworker first, then members")


@router.get("/me", response_model=Me)
def me(principal: CurrentUser) -> Me:
    """The caller: role, home region (the scope) and what the role may do."""
    return Me(
        name=principal.name,
        display_name=principal.display_name or principal.name,
        role=principal.role,  # type: ignore[arg-type]
        region_code=principal.region_code,
        department=principal.department_code,
        actions=principal.actions,
    )


@router.get("/departments", response_model=list[Department])
def departments(conn: Conn) -> list[Department]:
    """Every department (police, housing, city management, …) with its parent."""
    return [Department(**d) for d in identity.list_departments(conn)]


@router.get("/staff", response_model=StaffPage)
def list_staff(
    conn: Conn,
    reach: Reach,
    role: Annotated[Role | None, Query(description="Only this role")] = None,
    region: Annotated[
        str | None,
        Query(max_length=32, pattern=r"^\d+$", description="Only this region's subtree"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")] = None,
) -> StaffPage:
    """Staff in the caller's scope (their region's subtree, or a department officer's
    department), with the grids each serves."""
    after = decode_cursor(cursor)
    if after is not None and not after.isdigit():
        raise invalid("cursor", "not a cursor returned by this endpoint")
    rows, last = service.page(
        conn, reach, limit=limit, after_id=int(after) if after else None, role=role, region=region
    )
    return StaffPage(
        items=[StaffOut(**r) for r in rows],
        next_cursor=encode_cursor(str(last)) if last is not None else None,
    )


@router.get("/staff/{name}", response_model=StaffOut)
def get_staff(name: UserName, conn: Conn, reach: Reach) -> StaffOut:
    """One staff member; outside the caller's scope it does not exist (404)."""
    row = service.get(conn, reach, name)
    if row is None:
        raise not_found(f"no user {name!r}")
    return StaffOut(**row)


def membership(
    code: GridCode, name: UserName, conn: Conn, scope: ScopeDep, reach: Reach
) -> tuple[str, str]:
    """The grid and the person of a membership change, both checked against the caller's scope
    (outside it they do not exist: 404)."""
    level = conn.execute(
        text("SELECT level FROM region WHERE version_id = :v AND code = :c"),
        {"v": scope.version.id, "c": code},
    ).scalar_one_or_none()
    if level is None or not reach.allows(code):
        raise not_found(f"no region {code} in boundary version {scope.version.id}")
    if level != "grid":
        raise invalid("code", f"{code} is a {level}, not a basic grid")
    if service.get(conn, reach, name) is None:
        raise not_found(f"no user {name!r}")
    return code, name


Membership = Annotated[tuple[str, str], Depends(membership)]


def _members(request: Request, code: str) -> GridMembers:
    # A fresh connection: the change was committed after the request's snapshot was taken.
    with request.app.state.engine.connect() as conn:
        duty = identity.duty(conn, [code])
    return GridMembers(grid_code=code, members=[DutyWorker(**w) for w in duty.get(code, [])])


@router.put(
    "/grids/{code}/members/{name}", response_model=GridMembers, responses=problem_responses(409)
)
def add_member(target: Membership, request: Request, kind: KindQuery = "primary") -> GridMembers:
    """Put a staff member on a basic grid: as its one primary gridworker, or as a 1+8+X member.
    Both the grid and the person must be in the caller's scope. Repeating it changes nothing."""
    code, name = target
    try:
        identity.assign(request.app.state.engine, code, name, kind=kind)
    except identity.IdentityError as exc:
        raise Problem(409, "conflict", str(exc), field="name") from None
    return _members(request, code)


@router.delete("/grids/{code}/members/{name}", response_model=GridMembers)
def remove_member(target: Membership, request: Request, kind: KindQuery = "primary") -> GridMembers:
    """Take a staff member off a basic grid."""
    code, name = target
    try:
        identity.unassign(request.app.state.engine, code, name, kind=kind)
    except identity.IdentityError as exc:
        raise not_found(str(exc)) from None
    return _members(request, code)
