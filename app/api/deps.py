"""Request-scoped dependencies shared by the routers."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.problems import Problem, invalid, validation_problem
from app.services.incidents import Photo
from app.services.regions import NoVersion, Scope, resolve_scope
from app.settings import Settings

Model = TypeVar("Model", bound=BaseModel)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_conn(request: Request) -> Iterator[Connection]:
    """A read connection in one transaction (a consistent snapshot for the request)."""
    with request.app.state.engine.connect() as conn, conn.begin():
        yield conn


Conn = Annotated[Connection, Depends(get_conn)]

AS_OF_DOC = (
    "Answer from the boundary version that was active at this moment (ISO 8601 date or date-time;"
    " a bare date means the end of that day, a time without offset is Asia/Shanghai). Default: now."
)


def parse_as_of(value: str | None) -> dt.datetime | dt.date | None:
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text)
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise invalid("as_of", f"{value!r} is not an ISO 8601 date or date-time") from None


def get_scope(
    conn: Conn,
    as_of: Annotated[
        str | None,
        Query(description=AS_OF_DOC, examples=["2026-01-01"], pattern=r"^\d{4}-\d{2}-\d{2}"),
    ] = None,
) -> Scope:
    moment = parse_as_of(as_of)
    try:
        return resolve_scope(conn, moment)
    except NoVersion as exc:
        if moment is None:
            raise Problem(404, "no-boundary-version", str(exc)) from None
        raise Problem(422, "invalid-parameter", f"as_of: {exc}", field="as_of") from None


ScopeDep = Annotated[Scope, Depends(get_scope)]


def encode_cursor(code: str | None) -> str | None:
    """An opaque keyset cursor: the last key of a page."""
    return base64.urlsafe_b64encode(code.encode()).decode().rstrip("=") if code else None


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        code = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid("cursor", "not a cursor returned by this endpoint") from None
    if not code or len(code) > 100 or not code.isascii() or not code.isprintable():
        raise invalid("cursor", "not a cursor returned by this endpoint")
    return code


_NUMBER = r"-?\d+(?:\.\d+)?"
BBOX_PATTERN = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"


def parse_bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    parts = value.split(",")
    if len(parts) != 4:
        raise invalid("bbox", "expected min_lon,min_lat,max_lon,max_lat")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise invalid("bbox", "the four values must be numbers") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise invalid("bbox", "the four values must be finite numbers")
    if not (-180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90):
        raise invalid("bbox", "longitudes must lie in [-180, 180] and latitudes in [-90, 90]")
    if x0 >= x1 or y0 >= y1:
        raise invalid("bbox", "min_lon must be below max_lon and min_lat below max_lat")
    return (x0, y0, x1, y1)


SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def parse_moment(value: str | None, field: str) -> dt.datetime | None:
    """ISO 8601; a bare date is that day's midnight and a time without offset is Beijing time."""
    if value is None:
        return None
    try:
        moment = (
            dt.datetime.combine(dt.date.fromisoformat(value), dt.time())
            if len(value) == 10
            else dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        )
    except ValueError:
        raise invalid(field, f"{value!r} is not an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def printable(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded: refuse them here
    # (422 naming the field) rather than let the database fail.
    if isinstance(value, str) and ("\x00" in value or not _encodable(value)):
        raise ValueError("contains a NUL character or an invalid code point")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def json_or_multipart(
    request: Request, model: type[Model], max_count: int, max_fields: int = 50
) -> tuple[Model, list[Photo]]:
    """A body as JSON, or as multipart/form-data with up to ``max_count`` ``photos``; 415 for
    anything else, 422 naming the field for a bad one."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    photos: list[Photo] = []
    if kind == "application/json":
        try:
            raw: Any = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise invalid("body", "not valid JSON") from None
    elif kind == "multipart/form-data":
        try:
            form = await request.form(max_files=max_count + 1, max_fields=max_fields)
        except StarletteHTTPException as exc:  # too many files or fields, a broken body
            field = "photos" if "files" in str(exc.detail) else "body"
            raise invalid(field, str(exc.detail)) from None
        raw = {k: v for k, v in form.items() if isinstance(v, str)}
        files = [v for v in form.getlist("photos") if not isinstance(v, str)]
        if len(files) > max_count:
            raise invalid("photos", f"at most {max_count} photos")
        photos = [Photo(await f.read(), f.content_type or "") for f in files]
    else:
        raise Problem(
            415, "unsupported-media-type",
            f"send application/json, or multipart/form-data with photos; got {kind or 'nothing'}",
        )  # fmt: skip
    try:
        return model.model_validate(raw), photos
    except ValidationError as exc:
        raise validation_problem(exc.errors(), whole="body") from None
