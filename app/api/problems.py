"""RFC 9457 problem details: every error the API returns, with a stable ``type``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("gridmap.api")
MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:gridmap:problem:"

_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class FieldError(BaseModel):
    field: str = Field(description="The offending parameter or body field, e.g. 'bbox'")
    message: str


class ProblemDetail(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="Stable identifier, urn:gridmap:problem:<kind>")
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = Field(None, description="Invalid input, field by field")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting problem+json answers."""
    descriptions = {
        404: "Not found (problem+json)",
        413: "Too large (problem+json)",
        415: "Unsupported content type (problem+json)",
        422: "Invalid input, the field named in errors[].field (problem+json)",
        503: "Service unavailable (problem+json)",
    }
    return {
        status: {
            "description": descriptions.get(status, _TITLES.get(status, "Error")),
            "content": {MEDIA_TYPE: {"schema": ProblemDetail.model_json_schema()}},
        }
        for status in statuses
    }


class Problem(Exception):
    """Raise from a router or service to answer with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.headers = headers or {}
        self.status = status
        self.kind = kind
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.extra = extra
        if field is not None:
            self.extra["errors"] = [{"field": field, "message": detail}]


def invalid(field: str, message: str) -> Problem:
    """422 naming the offending field."""
    return Problem(422, "invalid-parameter", f"{field}: {message}", field=field)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", what)


def problem_response(problem: Problem, request: Request) -> JSONResponse:
    body = {
        "type": TYPE_PREFIX + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extra,
    }
    return JSONResponse(
        body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers
    )


def _field(loc: tuple[Any, ...], whole: str = "request") -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header", "cookie")]
    return ".".join(parts) or whole


def validation_problem(errors: Any, whole: str = "request") -> Problem:
    """422 naming every invalid field, from pydantic's or FastAPI's error list (``whole``: the
    name for an error about the input as a whole)."""
    fields = [{"field": _field(tuple(e["loc"]), whole), "message": e["msg"]} for e in errors]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in fields)
    return Problem(422, "invalid-parameter", detail, errors=fields)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(exc.errors()), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"nothing at {request.url.path}"
        response = problem_response(Problem(exc.status_code, kind, detail), request)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            Problem(500, "internal-error", "an internal error occurred; it has been logged"),
            request,
        )
