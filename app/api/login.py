"""The web login: a page with a form, a session cookie, and a limit on failed attempts.

API clients do not log in: they send ``Authorization: Bearer <token>`` from ``gridmap tokens
create``. The session cookie is HttpOnly and SameSite=Strict, and cookie-authenticated unsafe
requests must come from this origin (app.api.auth), so another site cannot act with it.
"""

from __future__ import annotations

import html
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.auth import REALM, SESSION_COOKIE, same_origin
from app.api.problems import Problem, problem_response, problem_responses
from app.services import identity
from app.web.i18n import labels

router = APIRouter(tags=["login"])
Lang = Annotated[Literal["zh", "en"], Query(description="Label language")]


def safe_next(target: str | None) -> str:
    """Only a path on this app (no open redirect to another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _page(lang: str, next_path: str, message: str = "", status: int = 200) -> HTMLResponse:
    t = labels(lang)
    note = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<title>gridmap · {t["login"]}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico">
<style>body{{background:#0b1320;color:#e0e6ea;font:18px/1.6 system-ui,sans-serif;margin:0;
display:flex;min-height:100vh;align-items:center;justify-content:center}}
form{{background:#13213a;padding:2em 2.5em;border-radius:8px;border:1px solid #4fc3f7;width:20em}}
label{{display:block;margin-top:1em}} input{{width:100%;box-sizing:border-box;font-size:18px;
padding:.4em;background:#0b1320;color:#e0e6ea;border:1px solid #4a6072;border-radius:4px}}
button{{margin-top:1.5em;width:100%;font-size:18px;padding:.5em;background:#4fc3f7;
border:0;border-radius:4px;color:#0b1320;font-weight:600}} .error{{color:#ff8a80}}
a{{color:#4fc3f7}}</style></head><body>
<form method="post" action="/login"><h1>gridmap · {t["login"]}</h1>{note}
<input type="hidden" name="next" value="{html.escape(next_path)}">
<input type="hidden" name="lang" value="{lang}">
<label for="username">{t["username"]}</label>
<input id="username" name="username" autocomplete="username" maxlength="100" required autofocus>
<label for="password">{t["password"]}</label>
<input id="password" name="password" type="password" autocomplete="current-password"
 maxlength="1000" required>
<button type="submit">{t["login"]}</button>
<p><a href="/login?lang={"en" if lang == "zh" else "zh"}&amp;next={html.escape(next_path)}">
{"English" if lang == "zh" else "中文"}</a></p></form></body></html>"""
    return HTMLResponse(body, status_code=status)


def _refuse(request: Request, lang: str, next_path: str, problem: Problem) -> Response:
    """A browser gets the form again with the message; other clients get problem+json."""
    if "text/html" in request.headers.get("accept", ""):
        t = labels(lang)
        message = {
            401: t["login_failed"],
            422: t["login_missing"],
            429: t["login_limited"].format(seconds=problem.headers.get("Retry-After", "")),
        }.get(problem.status, problem.detail)
        response: Response = _page(lang, next_path, message, problem.status)
        response.headers.update(problem.headers)
        return response
    return problem_response(problem, request)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    lang: Lang = "zh",
    next: Annotated[str | None, Query(max_length=2000, description="Where to go after")] = None,
) -> HTMLResponse:
    """The login form for the web pages (the command wall, maps, the planner page)."""
    return _page(lang, safe_next(next))


@router.post(
    "/login",
    status_code=303,
    response_class=RedirectResponse,
    responses={
        303: {"description": "Logged in: the session cookie is set; on to `next`"},
        **problem_responses(401, 403, 422, 429),
    },
)
def login(
    request: Request,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    lang: Annotated[Literal["zh", "en"], Form()] = "zh",
) -> Response:
    """Check a user name and password (set with `gridmap users passwd`) and open a session.

    Failed attempts are limited per user name and per client address
    (GRIDMAP_LOGIN_MAX_FAILURES, GRIDMAP_LOGIN_MAX_FAILURES_CLIENT within GRIDMAP_LOGIN_WINDOW_S):
    past the limit the answer is 429 with Retry-After, even for the right password."""
    next_path = safe_next(next)
    if request.headers.get("origin") is not None and not same_origin(request):
        problem = Problem(403, "cross-origin", "a login must come from this app's login page")
        return _refuse(request, lang, next_path, problem)
    for name, value in (("username", username), ("password", password)):
        if "\x00" in value:  # PostgreSQL text cannot hold it
            problem = Problem(422, "invalid-parameter", f"{name}: contains a NUL character",
                              field=name)  # fmt: skip
            return _refuse(request, lang, next_path, problem)
    missing = [f for f, v in (("username", username), ("password", password)) if not v.strip()]
    if missing:
        problem = Problem(
            422,
            "invalid-parameter",
            f"{' and '.join(missing)} required",
            errors=[{"field": f, "message": "required"} for f in missing],
        )
        return _refuse(request, lang, next_path, problem)
    settings = request.app.state.settings
    limits = identity.LoginLimits(
        settings.login_max_failures, settings.login_max_failures_client, settings.login_window_s
    )
    client = request.client.host if request.client else "unknown"
    try:
        opened = identity.login(
            request.app.state.engine,
            username,
            password,
            client=client,
            hours=settings.session_hours,
            limits=limits,
        )
    except identity.RateLimited as exc:
        retry = {"Retry-After": str(exc.retry_after)}
        problem = Problem(429, "too-many-logins", str(exc), headers=retry)
        return _refuse(request, lang, next_path, problem)
    if opened is None:
        problem = Problem(
            401,
            "login-failed",
            "wrong user name or password",
            field="password",
            headers={"WWW-Authenticate": REALM},
        )
        return _refuse(request, lang, next_path, problem)
    token, _ = opened
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies or request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout", status_code=303, response_class=RedirectResponse)
def logout(request: Request) -> Response:
    """End the caller's web session and go back to the login page."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        identity.logout(request.app.state.engine, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
