"""The application factory: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app.api import (
    analytics,
    auth,
    exports,
    health,
    incidents,
    locate,
    login,
    open311,
    pages,
    patrols,
    planner,
    problems,
    regions,
    screen,
    staff,
    tiles,
    whistles,
)
from app.db.engine import database_url, make_engine
from app.services import exports as export_service
from app.services import patrols as patrol_service
from app.services import tiles as tile_service
from app.services import whistles as whistles_service
from app.services.locate import LocateService
from app.settings import Settings, get_settings

STATIC_DIR = Path(__file__).parent / "web" / "static"
log = logging.getLogger("gridmap")

DESCRIPTION = """
GIS grid management for district command centres: the four-level grid (district → street →
community → basic grid) in PostGIS, with boundary versions. Errors are RFC 9457 problem+json
with a stable `type` (`urn:gridmap:problem:…`) and, for invalid input, the field named in
`errors[].field`. Coordinates are CGCS2000 (EPSG:4490) lon/lat; GeoJSON follows RFC 7946.
"""


async def _supervision(engine: Engine, interval_s: float) -> None:
    """The housekeeping scheduler: a supervision pass every ``interval_s``, and the patrol
    partitions of the coming week. Every worker runs one; the pass's advisory lock, unique
    records and per-day partition locks make that safe."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(whistles_service.supervise, engine)
            await run_in_threadpool(patrol_service.ensure_ahead, engine)
        except Exception:  # a failed pass (database restarting) must not end the scheduler
            log.exception("housekeeping pass failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(database_url(settings))
    locator = LocateService(engine, metric_crs=settings.metric_crs, poll_s=settings.locate_poll_s)
    tile_cache = tile_service.TileService(engine, cache_bytes=int(settings.tile_cache_mb * 2**20))
    export_runner = export_service.ExportRunner(engine, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The index is built before the first request, then kept fresh by a listener thread.
        await run_in_threadpool(locator.warm)
        locator.start()
        tile_cache.start()  # LISTENs for data changes; tiles are cached only while it does
        export_runner.start()  # background exports; fails jobs a dead process left running
        with contextlib.suppress(Exception):  # no schema yet: `gridmap db migrate` comes first
            await run_in_threadpool(patrol_service.ensure_ahead, engine)
        scheduler = None
        if settings.supervision_interval_s > 0:
            scheduler = asyncio.create_task(_supervision(engine, settings.supervision_interval_s))
        yield
        if scheduler is not None:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
        locator.stop()
        tile_cache.stop()
        await run_in_threadpool(export_runner.stop)  # after the job in hand, ≤ 10 s
        engine.dispose()

    app = FastAPI(
        title="gridmap",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from vendored Swagger UI, not its CDN
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication like every other route
        dependencies=[Depends(auth.authorize)],
    )
    app.state.settings = settings
    app.state.engine = engine
    # Token lookups: one read each, in autocommit, so no transaction is rolled back afterwards.
    app.state.auth_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.state.locate = locator
    app.state.tiles = tile_cache
    app.state.exports = export_runner
    problems.install(app)
    auth.install(app)
    app.include_router(health.router)
    app.include_router(login.router)
    app.include_router(regions.router)
    app.include_router(locate.router)
    app.include_router(staff.router)
    app.include_router(incidents.router)
    app.include_router(open311.router)
    app.include_router(whistles.router)
    app.include_router(patrols.router)
    app.include_router(tiles.router)
    app.include_router(analytics.router)
    app.include_router(exports.router)
    app.include_router(pages.router)
    app.include_router(screen.router)
    app.include_router(planner.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_json() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="gridmap API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
        )

    auth.check_routes(app)
    return app
