"""Authentication and authorisation for every route, in one place.

``ROUTE_ACTIONS`` names the action each endpoint needs; ``identity.PERMISSIONS`` says which
roles may perform it. One app-wide dependency (:func:`authorize`) looks the request's route up
in that table, finds the principal — a bearer token, or a web session cookie — and refuses:

- no credentials, or a malformed, unknown, expired or revoked token → 401 with
  ``WWW-Authenticate: Bearer`` (an HTML page asked for by a browser redirects to /login instead);
- a role without the action → 403;
- a cookie-authenticated unsafe request (POST, PUT, PATCH, DELETE) whose Origin (or Referer) is
  not this app → 403 (CSRF; the cookie is also SameSite=Strict).

Records outside the principal's scope are filtered by ``app.services.scoping`` and answer 404.
``create_app`` refuses to start when a route has no entry here, so no endpoint can be added
without deciding who may use it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import fastapi.routing
from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy import text

from app.api.problems import MEDIA_TYPE, Problem, ProblemDetail
from app.services import identity
from app.services.identity import Principal
from app.services.scoping import ScopeFilter, scope_for

SESSION_COOKIE = "gridmap_session"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REALM = 'Bearer realm="gridmap"'

# Open to anyone: the health probe, and the login page with its pair, logout (which can only
# end the caller's own session). Static files (vendored libraries, no data) are a mount.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/health"),
        ("GET", "/login"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/favicon.ico"),
    }
)

# (method, route path) → the action it needs. The matrix test walks every pair of this table
# with every role.
ROUTE_ACTIONS: dict[tuple[str, str], str] = {
    ("GET", "/"): "regions:read",
    ("GET", "/docs"): "docs:read",
    ("GET", "/openapi.json"): "docs:read",
    ("GET", "/regions/{code}/map"): "regions:read",
    ("GET", "/api/v1/regions"): "regions:read",
    ("GET", "/api/v1/regions/{code}"): "regions:read",
    ("GET", "/api/v1/regions/{code}/children"): "regions:read",
    ("GET", "/api/v1/regions/{code}/ancestors"): "regions:read",
    ("GET", "/api/v1/regions/{code}/geometry"): "regions:read",
    ("GET", "/api/v1/boundary-versions"): "regions:read",
    ("GET", "/api/v1/locate"): "locate:read",
    ("POST", "/api/v1/locate"): "locate:read",
    ("GET", "/api/v1/me"): "me:read",
    ("GET", "/api/v1/departments"): "departments:read",
    ("GET", "/api/v1/staff"): "staff:read",
    ("GET", "/api/v1/staff/{name}"): "staff:read",
    ("PUT", "/api/v1/grids/{code}/members/{name}"): "staff:assign",
    ("DELETE", "/api/v1/grids/{code}/members/{name}"): "staff:assign",
    ("POST", "/api/v1/incidents"): "incidents:report",
    ("GET", "/api/v1/incidents"): "incidents:read",
    ("GET", "/api/v1/incidents/{incident_id}"): "incidents:read",
    ("POST", "/api/v1/incidents/{incident_id}/actions"): "incidents:act",
    ("GET", "/api/v1/incidents/{incident_id}/photos/{photo_id}"): "incidents:read",
    ("GET", "/api/v1/incident-classes"): "catalog:read",
    ("GET", "/api/v1/regions/{code}/figures"): "analytics:read",
    ("GET", "/open311/v2/services.json"): "incidents:read",
    ("GET", "/open311/v2/requests.json"): "incidents:read",
    ("GET", "/open311/v2/requests/{service_request_id}.json"): "incidents:read",
    ("POST", "/open311/v2/requests.json"): "incidents:report",
    ("GET", "/api/v1/whistle-situations"): "catalog:read",
    ("POST", "/api/v1/whistles"): "whistles:blow",
    ("GET", "/api/v1/whistles"): "whistles:read",
    ("GET", "/api/v1/whistles/proposal"): "whistles:blow",
    ("GET", "/api/v1/whistles/{whistle_id}"): "whistles:read",
    ("POST", "/api/v1/whistles/{whistle_id}/actions"): "whistles:act",
    ("GET", "/api/v1/whistles/{whistle_id}/photos/{photo_id}"): "whistles:read",
    ("GET", "/api/v1/whistles-map"): "whistles:read",
    ("GET", "/api/v1/supervisions"): "whistles:supervise",
    ("POST", "/api/v1/supervisions/run"): "whistles:supervise",
    ("GET", "/api/v1/notifications"): "me:read",
    ("GET", "/api/v1/evaluations/{period}"): "evaluations:read",
    ("PUT", "/api/v1/evaluations/{period}/ratings/{street}/{department}"): "evaluations:rate",
    ("POST", "/api/v1/patrols/fixes"): "patrols:ingest",
    ("GET", "/api/v1/patrols/live"): "patrols:read",
    ("GET", "/api/v1/patrols/tracks"): "patrols:read",
    ("GET", "/api/v1/patrols/coverage"): "patrols:read",
    ("GET", "/api/v1/patrols/unpatrolled"): "patrols:read",
    ("GET", "/api/v1/patrols/daily"): "patrols:read",
    # One action for every layer: the wall's roles (screen:view) all hold incidents:read and
    # patrols:read too, so no layer shows what the caller could not list (test_tiles checks).
    ("GET", "/tiles/{layer}/{z}/{x}/{y}.pbf"): "screen:view",
    ("GET", "/screen"): "screen:view",
    ("GET", "/screen/{region_code}"): "screen:view",
    ("GET", "/api/v1/screen/figures"): "screen:view",
    ("GET", "/api/v1/screen/grid-values"): "screen:view",
    ("GET", "/api/v1/analytics/hotspots"): "analytics:read",
    ("GET", "/api/v1/analytics/emerging"): "analytics:read",
    ("GET", "/api/v1/analytics/series"): "analytics:read",
    ("GET", "/api/v1/analytics/compare"): "analytics:read",
    ("GET", "/api/v1/analytics/density"): "analytics:read",
    ("GET", "/planner"): "analytics:read",
    ("GET", "/planner/{region_code}"): "analytics:read",
    ("POST", "/api/v1/exports"): "analytics:read",
    ("GET", "/api/v1/exports/{job_id}"): "analytics:read",
    ("GET", "/api/v1/exports/{job_id}/file"): "analytics:read",
}


def api_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every endpoint, included routers flattened (FastAPI
    ≥ 0.160 keeps them nested); mounts such as /static are not endpoints."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    if walk is None:
        return [(r.path, set(r.methods), r) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (rc.path, set(rc.methods), rc.original_route)
        for rc in walk(app.routes)
        if isinstance(rc.original_route, APIRoute)
    ]


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    """Every (method, path) the app routes to an endpoint."""
    return {(method, path) for path, methods, _ in api_routes(app) for method in methods}


def check_routes(app: FastAPI) -> None:
    """Refuse an app with an endpoint nobody decided on, or a rule for a missing endpoint."""
    routes = route_keys(app)
    declared = set(ROUTE_ACTIONS) | PUBLIC
    missing = sorted(routes - declared)
    stale = sorted(declared - routes)
    unknown = sorted({a for a in ROUTE_ACTIONS.values()} - {a for _, a in identity.PERMISSIONS})
    if missing or stale or unknown:
        raise RuntimeError(
            "app.api.auth.ROUTE_ACTIONS is out of step with the routes: "
            f"undeclared {missing}, without a route {stale}, actions no role has {unknown}"
        )


class LoginRequired(Exception):
    """A browser asked for a page without a session: send it to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def unauthenticated(detail: str, error: str | None = None) -> Problem:
    challenge = REALM + (f', error="{error}"' if error else "")
    return Problem(
        401,
        "unauthenticated",
        detail,
        title="Unauthenticated",
        headers={"WWW-Authenticate": challenge},
    )


def _token_refusal(conn: Any, token: str) -> str:
    """Why a token was refused, told only to its holder."""
    row = conn.execute(
        text(
            "SELECT t.revoked_at, t.expires_at, t.expires_at <= now() AS expired, s.active "
            "FROM access_token t JOIN staff s ON s.id = t.staff_id WHERE t.token_hash = :h"
        ),
        {"h": identity.token_hash(token)},
    ).first()
    if row is None:
        return "the token is not known"
    if row.revoked_at is not None:
        return "the token was revoked"
    if row.expired:
        return f"the token expired at {row.expires_at.isoformat()}"
    if not row.active:
        return "the token's user is deactivated"
    return "the token is not valid here"


def same_origin(request: Request) -> bool:
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def authorize(request: Request) -> None:
    """The app-wide dependency: authenticate, then check the route's action against the role."""
    route = request.scope.get("route")
    key = (request.method, getattr(route, "path", request.url.path))
    if key in PUBLIC:
        return
    action = ROUTE_ACTIONS.get(key)
    if action is None:  # unreachable while check_routes guards create_app; refuse, never allow
        raise Problem(403, "forbidden", f"no permission rule for {key[0]} {key[1]}")
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    engine = request.app.state.auth_engine
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise unauthenticated(
                "the Authorization header must be 'Bearer <token>'", "invalid_request"
            )
        with engine.connect() as conn:
            principal = identity.authenticate(conn, token)
            if principal is None:
                raise unauthenticated(_token_refusal(conn, token), "invalid_token")
    elif cookie is not None:
        with engine.connect() as conn:
            principal = identity.authenticate(conn, cookie, kind="session")
        if principal is None:
            _login_or_401(request, "the session has ended; log in again")
        if request.method in UNSAFE_METHODS and not same_origin(request):
            raise Problem(
                403,
                "cross-origin",
                "a request with the session cookie must come from this app's own pages "
                "(Origin or Referer); API clients send a bearer token instead",
            )
    else:
        _login_or_401(request, "log in, or send 'Authorization: Bearer <token>'")
    assert principal is not None
    if not principal.can(action):
        raise Problem(
            403,
            "forbidden",
            f"a {principal.role} may not {action} ({request.method} {key[1]})",
            title="Forbidden",
        )
    request.state.principal = principal


def _login_or_401(request: Request, detail: str) -> None:
    route = request.scope.get("route")
    response_class = getattr(route, "response_class", None)
    is_page = getattr(response_class, "value", response_class) is HTMLResponse
    if is_page and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    raise unauthenticated(detail)


def current_principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:
        raise unauthenticated("log in, or send 'Authorization: Bearer <token>'")
    return principal


CurrentUser = Annotated[Principal, Depends(current_principal)]


def get_reach(request: Request, principal: CurrentUser) -> ScopeFilter:
    """The principal's scope, for the one shared query filter. Only a department officer's needs
    the database (their department's subtree), so no connection is held for the others."""
    if principal.role != "department_officer":
        return ScopeFilter(principal.region_code)
    with request.app.state.auth_engine.connect() as conn:
        return scope_for(conn, principal)


Reach = Annotated[ScopeFilter, Depends(get_reach)]


def install(app: FastAPI) -> None:
    """Wire the login redirect and document security in the OpenAPI spec."""

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from `gridmap tokens create USER`.",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": SESSION_COOKIE,
                "description": "Set by the login page (/login).",
            },
        }
        problem = {MEDIA_TYPE: {"schema": ProblemDetail.model_json_schema()}}
        for path, operations in schema.get("paths", {}).items():
            for method, op in operations.items():
                key = (method.upper(), path)
                if key in PUBLIC:
                    op["security"] = []
                    continue
                action = ROUTE_ACTIONS.get(key)
                if action is None:
                    continue
                roles = sorted(r for r, a in identity.PERMISSIONS if a == action)
                op["security"] = [{"bearer": []}, {"session": []}]
                op["description"] = (
                    op.get("description", "")
                    + f"\n\n**Requires** `{action}` — roles: {', '.join(roles)}."
                ).strip()
                responses = op.setdefault("responses", {})
                responses.setdefault(
                    "401",
                    {
                        "description": "No valid token or session (problem+json)",
                        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                        "content": problem,
                    },
                )
                responses.setdefault(
                    "403", {"description": "The role may not (problem+json)", "content": problem}
                )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def permission_table_markdown() -> str:
    """The permission table as the README shows it (a test keeps the two equal): each action,
    the endpoints that need it and the roles that have it."""
    from app.services.identity import PERMISSIONS, ROLES

    actions = sorted({a for _, a in PERMISSIONS}, key=lambda a: (a.split(":")[0], a))
    head = "| action | endpoints | " + " | ".join(f"`{r}`" for r in ROLES) + " |"
    rule = "|---|---|" + "---|" * len(ROLES)
    rows = []
    for action in actions:
        routes = sorted(f"`{m} {p}`" for (m, p), a in ROUTE_ACTIONS.items() if a == action)
        marks = " | ".join("✓" if (r, action) in PERMISSIONS else "" for r in ROLES)
        rows.append(f"| `{action}` | {'<br>'.join(routes) or '—'} | {marks} |")
    return "\n".join([head, rule, *rows])
