"""Who may do what, where: roles, the permission table, staff, departments and access tokens.

The permission table is written down once, here, as (role, action) pairs; the README prints the
same table. A principal is a staff member with a role, a home region (a region code: everything
below it is in scope) and, for department officers, a department.

Tokens are random (``secrets.token_urlsafe``), shown once, and stored only as their SHA-256: a
token carries 256 bits of entropy, so a fast hash is enough (a password would need a slow one).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection, Engine, text

from app.services.boundaries import active_version

# -- roles and what they may do ---------------------------------------------------------------

ROLES: dict[str, str] = {
    "district_commander": "区指挥中心 district commander",
    "supervisor": "督办 district supervision office",
    "street_commander": "街道指挥 street commander (blows street whistles)",
    "community_officer": "社区 community officer (blows community whistles)",
    "gridworker": "网格员 gridworker",
    "department_officer": "职能部门 department officer",
    "planner": "分析 planner (analytics)",
    "screen": "大屏 read-only command wall",
    "admin": "系统管理 administrator",
}

# The level a role's home region must be at (None: any level).
ROLE_LEVEL: dict[str, tuple[str, ...] | None] = {
    "district_commander": ("district",),
    "supervisor": ("district",),
    "street_commander": ("street",),
    "community_officer": ("community",),
    "gridworker": ("grid", "community"),
    "department_officer": None,
    "planner": None,
    "screen": None,
    "admin": None,
}

_ALL_READERS = tuple(ROLES)
_COMMAND = ("district_commander", "supervisor", "street_commander", "community_officer", "admin")
_BLOWERS = ("district_commander", "street_commander", "community_officer", "admin")

# (role, action) pairs: the one permission table. Reads are further narrowed to the
# principal's region subtree or department (scoping), actions by role only here.
PERMISSIONS: frozenset[tuple[str, str]] = frozenset(
    [(role, "regions:read") for role in _ALL_READERS]
    + [(role, "locate:read") for role in _ALL_READERS]
    + [(role, "screen:view") for role in (*_COMMAND, "screen", "planner")]
    + [(role, "incidents:read") for role in (*_COMMAND, "gridworker", "department_officer",
                                             "screen", "planner")]
    + [(role, "incidents:report") for role in (*_COMMAND, "gridworker")]
    + [(role, "incidents:dispatch") for role in _COMMAND]
    + [(role, "incidents:handle") for role in ("department_officer", "gridworker")]
    + [(role, "incidents:verify") for role in (*_COMMAND, "gridworker")]
    + [(role, "incidents:act") for role in (*_COMMAND, "gridworker", "department_officer")]
    + [(role, "catalog:read") for role in _ALL_READERS]
    + [("street_commander", "whistles:blow_street"), ("admin", "whistles:blow_street")]
    + [("community_officer", "whistles:blow_community"), ("admin", "whistles:blow_community")]
    + [("district_commander", "whistles:blow_district"), ("admin", "whistles:blow_district")]
    + [(role, "whistles:blow") for role in _BLOWERS]
    + [(role, "whistles:read") for role in (*_COMMAND, "department_officer", "gridworker",
                                            "screen")]
    + [(role, "whistles:report") for role in ("department_officer", "gridworker")]
    + [(role, "whistles:act") for role in (*_BLOWERS, "department_officer", "gridworker")]
    + [(role, "evaluations:read") for role in (*_COMMAND, "department_officer", "planner")]
    + [(role, "evaluations:rate") for role in ("street_commander", "admin")]
    + [(role, "whistles:supervise") for role in ("supervisor", "district_commander", "admin")]
    + [(role, "patrols:ingest") for role in ("gridworker", "admin")]
    + [(role, "patrols:read") for role in (*_COMMAND, "screen", "planner", "gridworker")]
    + [(role, "analytics:read") for role in ("planner", *_COMMAND, "screen")]
    + [(role, "me:read") for role in _ALL_READERS]
    + [(role, "docs:read") for role in _ALL_READERS]
    + [(role, "departments:read") for role in _ALL_READERS]
    + [(role, "staff:read") for role in _COMMAND]
    + [(role, "staff:assign") for role in ("district_commander", "street_commander",
                                           "community_officer", "admin")]
    + [("admin", "users:manage"), ("admin", "boundaries:manage")]
)  # fmt: skip


def allowed(role: str, action: str) -> bool:
    return (role, action) in PERMISSIONS


# -- departments and grid members ---------------------------------------------------------------

DEPARTMENT_KINDS: dict[str, str] = {
    "police": "公安 police",
    "housing": "住建 housing and construction",
    "city_management": "城管 city management and enforcement",
    "emergency": "应急 emergency management",
    "fire": "消防 fire and rescue",
    "market_supervision": "市场监管 market supervision",
    "ecology": "生态环境 ecology and environment",
    "water": "水务 water",
    "transport": "交通 transport",
    "health": "卫健 health",
    "civil_affairs": "民政 civil affairs",
    "political_legal": "政法委 political-legal committee",
    "utility": "公用事业 utilities (power, gas, heating)",
    "other": "其他 other",
}

# 一格一员 plus the 1+8+X grid members (DOMAIN.md): the leader, eight kinds, and X (others).
MEMBER_KINDS: dict[str, str] = {
    "primary": "专职网格员 the grid's own gridworker (one per grid)",
    "leader": "网格长 grid leader",
    "supervisor": "督导员 supervisor",
    "enforcer": "城管执法队员 city-management enforcer",
    "community_officer": "社区干部 community officer",
    "sanitation": "环卫 sanitation",
    "police": "社区民警 community police",
    "liaison": "机关联络员 agency liaison",
    "discipline": "纪检监督员 discipline supervisor",
    "street_staff": "街道干部 street staff",
    "other": "X: other members (volunteers, property managers, …)",
}


def _department_id(conn: Connection, code: str, refusal: str) -> int:
    found = conn.execute(
        text("SELECT id FROM department WHERE code = :c"), {"c": code}
    ).scalar_one_or_none()
    if found is None:
        raise IdentityError(f"{refusal} {code!r}")
    return found


def add_department(
    engine: Engine, code: str, name: str, *, kind: str, parent: str | None = None
) -> int:
    if kind not in DEPARTMENT_KINDS:
        raise IdentityError(
            f"unknown department kind {kind!r}; kinds: {', '.join(DEPARTMENT_KINDS)}"
        )
    with engine.begin() as conn:
        parent_id = _department_id(conn, parent, "unknown parent department") if parent else None
        if conn.execute(text("SELECT 1 FROM department WHERE code = :c"), {"c": code}).first():
            raise IdentityError(f"a department {code!r} already exists")
        return conn.execute(
            text(
                "INSERT INTO department (code, name, kind, parent_id) "
                "VALUES (:c, :n, :k, :p) RETURNING id"
            ),
            {"c": code, "n": name, "k": kind, "p": parent_id},
        ).scalar_one()


def load_departments(engine: Engine, path: Path) -> int:
    """Load (insert or update, by code) the departments of a YAML catalogue — see
    data/catalogs/departments.yaml — in one transaction; any bad entry refuses the whole file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise IdentityError(f"{path}: {exc}") from None
    entries = data.get("departments") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise IdentityError(f"{path}: expected a top-level 'departments' list")
    problems: list[str] = []
    codes: set[str] = set()
    for i, e in enumerate(entries):
        where = f"{path.name}: departments[{i}]"
        if not isinstance(e, dict) or not e.get("code") or not e.get("name"):
            problems.append(f"{where}: needs a code and a name")
            continue
        if e["code"] in codes:
            problems.append(f"{where}: code {e['code']!r} appears twice")
        codes.add(e["code"])
        if e.get("kind") not in DEPARTMENT_KINDS:
            problems.append(f"{where} ({e['code']}): unknown kind {e.get('kind')!r}")
        area = e.get("service_area", [])
        if not isinstance(area, list) or not all(isinstance(c, str) for c in area):
            problems.append(f"{where} ({e['code']}): service_area must be a list of region codes")
    with engine.begin() as conn:
        version = active_version(conn)
        known = set(conn.execute(text("SELECT code FROM department")).scalars())
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                continue
            parent = e.get("parent")
            if parent and parent not in codes and parent not in known:
                problems.append(f"{path.name}: departments[{i}] ({e.get('code')}): "
                                f"unknown parent {parent!r}")  # fmt: skip
            area = e.get("service_area") or []
            if area and isinstance(area, list):
                if version is None:
                    problems.append("no boundary version is active to draw service areas from")
                    break
                found = set(conn.execute(
                    text("SELECT code FROM region WHERE version_id = :v AND code = ANY(:c)"),
                    {"v": version.id, "c": [str(c) for c in area]},
                ).scalars())  # fmt: skip
                missing = [c for c in area if c not in found]
                if missing:
                    problems.append(f"{path.name}: departments[{i}] ({e.get('code')}): unknown "
                                    f"region(s) {', '.join(map(str, missing))}")  # fmt: skip
        if problems:
            raise IdentityError("; ".join(problems))
        for e in entries:  # parents first: a file lists them before their stations
            conn.execute(
                text(
                    """
                    INSERT INTO department (code, name, kind, parent_id, service_area)
                    VALUES (:code, :name, :kind,
                            (SELECT id FROM department WHERE code = :parent),
                            (SELECT ST_Multi(ST_Union(geom)) FROM region
                             WHERE version_id = :v AND code = ANY(:area)))
                    ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name,
                        kind = EXCLUDED.kind, parent_id = EXCLUDED.parent_id,
                        service_area = EXCLUDED.service_area
                    """
                ),
                {"code": e["code"], "name": e["name"], "kind": e["kind"],
                 "parent": e.get("parent"), "v": version.id if version else None,
                 "area": [str(c) for c in e.get("service_area") or []]},
            )  # fmt: skip
    return len(entries)


def departments_covering(
    conn: Connection, lon: float, lat: float, *, kind: str | None = None
) -> list[dict[str, Any]]:
    """Departments whose service area covers a CGCS2000 point, the smallest area first (the
    local station before its sub-bureau)."""
    rows = conn.execute(
        text(
            "SELECT code, name, kind FROM department "
            "WHERE ST_Covers(service_area, ST_SetSRID(ST_MakePoint(:x, :y), 4490)) "
            "AND (CAST(:k AS text) IS NULL OR kind = :k) "
            "ORDER BY ST_Area(service_area), code"
        ),
        {"x": lon, "y": lat, "k": kind},
    ).mappings()
    return [dict(r) for r in rows]


def list_departments(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT d.code, d.name, d.kind, p.code AS parent, "
            "d.service_area IS NOT NULL AS has_area "
            "FROM department d LEFT JOIN department p ON p.id = d.parent_id ORDER BY d.code"
        )
    ).mappings()
    return [dict(r) for r in rows]


# -- staff --------------------------------------------------------------------------------------


class IdentityError(ValueError):
    """Refused: unknown role, region, department, user or token (nothing was written)."""


@dataclass(frozen=True)
class Principal:
    id: int
    name: str
    role: str
    region_code: str
    department_code: str | None
    display_name: str = ""

    def can(self, action: str) -> bool:
        return allowed(self.role, action)

    @property
    def actions(self) -> list[str]:
        return sorted(action for role, action in PERMISSIONS if role == self.role)


def _region_level(conn: Connection, code: str) -> str | None:
    version = active_version(conn)
    if version is None:
        raise IdentityError("no boundary version is active: import and activate boundaries first")
    return conn.execute(
        text("SELECT level FROM region WHERE version_id = :v AND code = :c"),
        {"v": version.id, "c": code},
    ).scalar_one_or_none()


def add_user(
    engine: Engine,
    name: str,
    *,
    role: str,
    region: str,
    department: str | None = None,
    phone: str | None = None,
    display_name: str | None = None,
) -> Principal:
    """Create a staff member, validating everything before writing anything."""
    name = name.strip()
    if not name:
        raise IdentityError("the user name is empty")
    if role not in ROLES:
        raise IdentityError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if role == "department_officer" and not department:
        raise IdentityError("a department officer needs --department")
    with engine.begin() as conn:
        level = _region_level(conn, region)
        if level is None:
            raise IdentityError(f"unknown region {region!r} in the active boundary version")
        wanted = ROLE_LEVEL[role]
        if wanted is not None and level not in wanted:
            raise IdentityError(
                f"a {role} works at {' or '.join(wanted)} level; {region} is a {level}"
            )
        department_id = (
            _department_id(conn, department, "unknown department") if department else None
        )
        if conn.execute(text("SELECT 1 FROM staff WHERE name = :n"), {"n": name}).first():
            raise IdentityError(f"a user named {name!r} already exists")
        staff_id = conn.execute(
            text(
                "INSERT INTO staff (name, display_name, phone, role, region_code, department_id) "
                "VALUES (:n, :d, :p, :r, :g, :dep) RETURNING id"
            ),
            {"n": name, "d": display_name or name, "p": phone, "r": role, "g": region,
             "dep": department_id},
        ).scalar_one()  # fmt: skip
    return Principal(staff_id, name, role, region, department)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        text(
            "SELECT s.id, s.name, s.display_name, s.role, s.region_code, d.code AS department, "
            "s.active, s.created_at FROM staff s LEFT JOIN department d ON d.id = s.department_id "
            "ORDER BY s.id"
        )
    ).mappings()
    return [dict(r) for r in rows]


def _staff(conn: Connection, name: str) -> Any:
    row = conn.execute(
        text("SELECT id, name, active FROM staff WHERE name = :n"), {"n": name}
    ).first()
    if row is None:
        raise IdentityError(f"no user named {name!r}")
    return row


# -- tokens -------------------------------------------------------------------------------------

TOKEN_PREFIX = "gm_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, user: str, *, days: float = 90.0, label: str = "") -> str:
    """A new bearer token for ``user``, valid ``days``; only its hash is kept."""
    if not days > 0:
        raise IdentityError("a token must be valid for a positive number of days")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        staff = _staff(conn, user)
        if not staff.active:
            raise IdentityError(f"user {user!r} is deactivated")
        conn.execute(
            text(
                "INSERT INTO access_token (staff_id, token_hash, label, expires_at) "
                "VALUES (:s, :h, :l, now() + make_interval(secs => :secs))"
            ),
            {"s": staff.id, "h": token_hash(token), "l": label, "secs": days * 86400},
        )
    return token


def revoke_tokens(engine: Engine, user: str, *, token: str | None = None) -> int:
    """Revoke one token of ``user`` (given in full) or all of them; returns how many."""
    with engine.begin() as conn:
        staff = _staff(conn, user)
        if token is not None:
            count = conn.execute(
                text(
                    "UPDATE access_token SET revoked_at = now() WHERE staff_id = :s "
                    "AND token_hash = :h AND revoked_at IS NULL"
                ),
                {"s": staff.id, "h": token_hash(token)},
            ).rowcount
            if not count:
                raise IdentityError(f"no live token of {user!r} matches")
            return count
        return conn.execute(
            text(
                "UPDATE access_token SET revoked_at = now() "
                "WHERE staff_id = :s AND revoked_at IS NULL"
            ),
            {"s": staff.id},
        ).rowcount


def authenticate(conn: Connection, token: str, *, kind: str | None = None) -> Principal | None:
    """The principal a live token belongs to, or None (unknown, expired, revoked, inactive).
    ``kind`` narrows to "api" tokens or "session" cookies."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = conn.execute(
        text(
            "SELECT s.id, s.name, s.display_name, s.role, s.region_code, d.code AS department "
            "FROM access_token t JOIN staff s ON s.id = t.staff_id "
            "LEFT JOIN department d ON d.id = s.department_id "
            "WHERE t.token_hash = :h AND t.revoked_at IS NULL AND t.expires_at > now() "
            "AND s.active AND (CAST(:k AS text) IS NULL OR t.kind = :k)"
        ),
        {"h": token_hash(token), "k": kind},
    ).first()
    if row is None:
        return None
    return Principal(row.id, row.name, row.role, row.region_code, row.department, row.display_name)


def token_expiry(conn: Connection, token: str) -> dt.datetime | None:
    return conn.execute(
        text("SELECT expires_at FROM access_token WHERE token_hash = :h"),
        {"h": token_hash(token)},
    ).scalar_one_or_none()


# -- passwords and web sessions ---------------------------------------------------------------

MIN_PASSWORD = 8
# scrypt at n=2**14, r=8 (RFC 7914's interactive-login parameters): ~50 ms and 16 MiB a try.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Constant work whether or not the user has a password, so timing does not tell."""
    try:
        _, n, r, p, salt, digest = (stored or "").split("$")
        params = {"n": int(n), "r": int(r), "p": int(p), "dklen": len(digest) // 2}
        salt_b, want = bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        params, salt_b, want = _SCRYPT, b"\0" * 16, b""
    got = hashlib.scrypt(password.encode(), salt=salt_b, **params)
    return bool(want) and secrets.compare_digest(got, want)


def set_password(engine: Engine, user: str, password: str) -> None:
    """Give ``user`` a web-login password (stored as scrypt); ends their open web sessions."""
    if len(password) < MIN_PASSWORD:
        raise IdentityError(f"a password needs at least {MIN_PASSWORD} characters")
    with engine.begin() as conn:
        staff = _staff(conn, user)
        conn.execute(
            text("UPDATE staff SET password_hash = :h WHERE id = :s"),
            {"h": hash_password(password), "s": staff.id},
        )
        conn.execute(
            text(
                "UPDATE access_token SET revoked_at = now() "
                "WHERE staff_id = :s AND kind = 'session' AND revoked_at IS NULL"
            ),
            {"s": staff.id},
        )


class RateLimited(Exception):
    """Too many failed logins; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginLimits:
    per_user: int = 5
    per_client: int = 20
    window_s: float = 900.0


def login(
    engine: Engine,
    username: str,
    password: str,
    *,
    client: str,
    hours: float = 12.0,
    limits: LoginLimits = LoginLimits(),
) -> tuple[str, Principal] | None:
    """Check a web login and open a session (a token of kind "session", valid ``hours``).

    None for a wrong name or password. Failed attempts are counted in the database, so the
    limit holds across workers: past ``limits`` within the window, even a right password is
    refused with RateLimited until the oldest failure leaves the window."""
    username = username.strip()[:100]
    client = client[:64]
    with engine.begin() as conn:
        # One attempt at a time per user name, so parallel guesses cannot all slip under the limit.
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:u))"), {"u": username})
        for column, value, limit in (
            ("username", username, limits.per_user),
            ("client", client, limits.per_client),
        ):
            # The latest ``limit`` failures in the window; when there are that many, the caller
            # waits until the oldest of them leaves it.
            wait = conn.execute(
                text(
                    "SELECT ceil(extract(epoch FROM min(at) + make_interval(secs => :w) - now())) "
                    "FROM (SELECT at FROM login_attempt WHERE NOT ok "
                    f"AND at > now() - make_interval(secs => :w) AND {column} = :v "
                    "ORDER BY at DESC LIMIT :n) recent HAVING count(*) >= :n"
                ),
                {"w": limits.window_s, "v": value, "n": limit},
            ).scalar_one_or_none()
            if wait is not None:
                raise RateLimited(max(1, int(wait)))
        row = conn.execute(
            text("SELECT id, password_hash, active FROM staff WHERE name = :n"), {"n": username}
        ).first()
        ok = verify_password(password, row.password_hash if row else None) and bool(
            row and row.active
        )
        conn.execute(
            text("INSERT INTO login_attempt (username, client, ok) VALUES (:u, :c, :ok)"),
            {"u": username, "c": client, "ok": ok},
        )
        if not ok:
            return None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        conn.execute(
            text(
                "INSERT INTO access_token (staff_id, token_hash, label, kind, expires_at) "
                "VALUES (:s, :h, :l, 'session', now() + make_interval(secs => :secs))"
            ),
            {"s": row.id, "h": token_hash(token), "l": f"web login from {client}",
             "secs": hours * 3600},
        )  # fmt: skip
        principal = authenticate(conn, token)
    assert principal is not None
    return token, principal


def logout(engine: Engine, token: str) -> bool:
    """End a web session (revoke its token); False when there was no live session."""
    with engine.begin() as conn:
        return bool(
            conn.execute(
                text(
                    "UPDATE access_token SET revoked_at = now() WHERE token_hash = :h "
                    "AND kind = 'session' AND revoked_at IS NULL"
                ),
                {"h": token_hash(token)},
            ).rowcount
        )


# -- grid assignments ---------------------------------------------------------------------------


def assign(engine: Engine, grid_code: str, user: str, *, kind: str = "primary") -> None:
    """Put ``user`` on a basic grid of the active version as its primary gridworker or as one of
    its 1+8+X members. A grid has at most one primary gridworker."""
    if kind not in MEMBER_KINDS:
        raise IdentityError(f"unknown member kind {kind!r}; kinds: {', '.join(MEMBER_KINDS)}")
    with engine.begin() as conn:
        if _region_level(conn, grid_code) != "grid":
            raise IdentityError(f"{grid_code!r} is not a basic grid of the active version")
        staff = _staff(conn, user)
        if kind == "primary":
            holder = conn.execute(
                text(
                    "SELECT s.name FROM grid_assignment a JOIN staff s ON s.id = a.staff_id "
                    "WHERE a.grid_code = :g AND a.kind = 'primary'"
                ),
                {"g": grid_code},
            ).scalar_one_or_none()
            if holder is not None and holder != user:
                raise IdentityError(f"grid {grid_code} already has {holder} as its gridworker")
        conn.execute(
            text(
                "INSERT INTO grid_assignment (grid_code, staff_id, kind) VALUES (:g, :s, :k) "
                "ON CONFLICT DO NOTHING"
            ),
            {"g": grid_code, "s": staff.id, "k": kind},
        )
        _notify_staff(conn)


def unassign(engine: Engine, grid_code: str, user: str, *, kind: str) -> None:
    """Take ``user`` off a grid (as ``kind``)."""
    with engine.begin() as conn:
        staff = _staff(conn, user)
        gone = conn.execute(
            text(
                "DELETE FROM grid_assignment WHERE grid_code = :g AND staff_id = :s AND kind = :k"
            ),
            {"g": grid_code, "s": staff.id, "k": kind},
        ).rowcount
        if not gone:
            raise IdentityError(f"{user} is not on grid {grid_code} as {kind}")
        _notify_staff(conn)


STAFF_CHANNEL = "gridmap_staff"  # NOTIFYed when grid assignments change


def duty(conn: Connection, grid_codes: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """The people on duty for each grid (all grids with anyone when ``grid_codes`` is None):
    its primary gridworker first, then its members."""
    where = "s.active" if grid_codes is None else "s.active AND a.grid_code = ANY(:g)"
    rows = conn.execute(
        text(
            "SELECT a.grid_code, a.kind, s.name, s.display_name, s.phone "
            "FROM grid_assignment a JOIN staff s ON s.id = a.staff_id "
            f"WHERE {where} ORDER BY a.grid_code, a.kind <> 'primary', a.kind, s.name"
        ),
        {"g": list(grid_codes or [])},
    ).mappings()
    out: dict[str, list[dict[str, Any]]] = {code: [] for code in grid_codes or []}
    for r in rows:
        out.setdefault(r["grid_code"], []).append(
            {"name": r["name"], "display_name": r["display_name"], "phone": r["phone"],
             "kind": r["kind"]}
        )  # fmt: skip
    return out


def _notify_staff(conn: Connection) -> None:
    conn.execute(text("SELECT pg_notify(:c, '')"), {"c": STAFF_CHANNEL})


_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂英华玉萍红"


def demo_gridworkers(engine: Engine) -> int:
    """One gridworker per basic grid of the active version (一格一员), deterministic names,
    for grids that have none; returns how many were created."""
    with engine.begin() as conn:
        version = active_version(conn)
        if version is None:
            return 0
        codes = (
            conn.execute(
                text(
                    "SELECT r.code FROM region r WHERE r.version_id = :v AND r.level = 'grid' "
                    "AND NOT EXISTS (SELECT 1 FROM grid_assignment a "
                    "                WHERE a.grid_code = r.code AND a.kind = 'primary') "
                    "ORDER BY r.code"
                ),
                {"v": version.id},
            )
            .scalars()
            .all()
        )
        for i, code in enumerate(codes):
            display = _SURNAMES[i % len(_SURNAMES)] + _GIVEN[(i * 7) % len(_GIVEN)]
            display += _GIVEN[(i * 13 + 5) % len(_GIVEN)] if i % 3 else ""
            staff_id = conn.execute(
                text(
                    "INSERT INTO staff (name, display_name, phone, role, region_code) "
                    "VALUES (:n, :d, :p, 'gridworker', :g) "
                    "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
                ),
                {"n": f"gw-{code}", "d": display, "p": f"1380022{i % 10000:04d}", "g": code},
            ).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO grid_assignment (grid_code, staff_id, kind) "
                    "VALUES (:g, :s, 'primary') ON CONFLICT DO NOTHING"
                ),
                {"g": code, "s": staff_id},
            )
        _notify_staff(conn)
    return len(codes)


DEMO_ROLE_LEVEL: dict[str, str] = {
    "district_commander": "district",
    "supervisor": "district",
    "street_commander": "street",
    "community_officer": "community",
    "gridworker": "grid",
    "department_officer": "street",
    "planner": "district",
    "screen": "district",
    "admin": "district",
}


def demo_users(engine: Engine) -> list[dict[str, Any]]:
    """One demo user per role, ``demo-<role>``, homed on the first street, community and grid of
    the active version (the department officer at the police station serving that street).

    Only users that do not exist yet are made; each gets a fresh random password, returned here
    and nowhere else stored in clear (the demo mode pre-creates users, it never bypasses login)."""
    made: list[dict[str, Any]] = []
    with engine.connect() as conn:
        version = active_version(conn)
        if version is None:
            return made
        home: dict[str, str] = {}
        parent: str | None = None
        for level in ("district", "street", "community", "grid"):
            code = conn.execute(
                text(
                    "SELECT code FROM region WHERE version_id = :v AND level = :l "
                    "AND (CAST(:p AS text) IS NULL OR parent_code = :p) ORDER BY code LIMIT 1"
                ),
                {"v": version.id, "l": level, "p": parent},
            ).scalar_one_or_none()
            if code is None:
                return made
            home[level] = parent = code
        station = conn.execute(
            text(
                "SELECT d.code FROM department d JOIN region r ON r.version_id = :v "
                "AND r.code = :street WHERE ST_Covers(d.service_area, ST_PointOnSurface(r.geom)) "
                "ORDER BY d.kind <> 'police', ST_Area(d.service_area), d.code LIMIT 1"
            ),
            {"v": version.id, "street": home["street"]},
        ).scalar_one_or_none()
        existing = set(conn.execute(text("SELECT name FROM staff")).scalars())
    for role, level in DEMO_ROLE_LEVEL.items():
        name = f"demo-{role.replace('_', '-')}"
        if name in existing or (role == "department_officer" and station is None):
            continue
        department = station if role == "department_officer" else None
        add_user(
            engine, name, role=role, region=home[level], department=department,
            display_name=f"演示 {ROLES[role].split()[0]} demo",
        )  # fmt: skip
        password = secrets.token_urlsafe(9)
        set_password(engine, name, password)
        made.append(
            {"name": name, "role": role, "region": home[level], "department": department,
             "password": password}
        )  # fmt: skip
    return made
