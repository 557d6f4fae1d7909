"""Liveness and database reachability."""

from __future__ import annotations

import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.api.problems import problem_responses

router = APIRouter(tags=["health"])


@router.get("/health", responses=problem_responses(503))
def health(request: Request) -> JSONResponse:
    """200 when the database answers (with the boundary version this worker's locate index
    answers from); 503 (problem+json) when it does not."""
    try:
        with request.app.state.engine.connect() as conn:
            postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            active = conn.execute(
                text("SELECT id FROM boundary_version WHERE is_active")
            ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        return JSONResponse(
            {
                "type": "urn:gridmap:problem:database-unavailable",
                "title": "Service unavailable",
                "status": 503,
                "detail": f"the database cannot be reached: {type(exc).__name__}",
            },
            status_code=503,
            media_type="application/problem+json",
        )
    snapshot = request.app.state.locate._snapshot
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "postgis": postgis,
            "active_boundary_version": active,
            # This worker's locate index: equal to the active version once it has caught up.
            "locate_index_version": snapshot.version.id if snapshot else None,
            "worker_pid": os.getpid(),
        }
    )
