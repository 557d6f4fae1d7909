"""Configuration: every setting is a ``GRIDMAP_*`` environment variable (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gis.codes import CodeScheme
from gis.crs import UnknownCRSError, normalise_crs
from gis.hierarchy import ValidationOptions


def project_root() -> Path:
    """The checkout holding this package when run from source, else the working directory."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDMAP_", extra="ignore")

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of an external PostGIS; unset: the embedded cluster in var/pg.",
    )
    var_dir: Path = Field(
        default_factory=lambda: project_root() / "var",
        description="Where the embedded cluster, its socket and other run-time state live.",
    )
    pg_port: int = Field(5432, ge=1, le=65535, description="Embedded cluster's port number.")
    pg_tcp: bool = Field(
        False, description="Also listen on 127.0.0.1:pg_port (password in var/pg-password)."
    )
    pg_os_user: str | None = Field(
        None,
        description="When run as root: the unprivileged OS user that runs the embedded cluster "
        "(default: 'postgres' if it exists, else a system user 'gridmap' is created).",
    )
    metric_crs: str = Field("EPSG:4548", description="Projected CRS for areas and distances.")
    code_widths: str = Field("6,3,3,3", description="Digits per level: district,street,…,grid.")
    containment: float = Field(0.995, gt=0, le=1, description="Share of a child inside parent.")
    gap_tolerance_m2: float = Field(1.0, ge=0, description="Gaps/overlaps below this are ignored.")
    demo_boundaries: Path = Field(
        default_factory=lambda: project_root() / "data" / "boundaries" / "hongqiao_demo.gpkg",
        description="Boundary file loaded by `gridmap setup` into an empty database.",
    )
    locate_poll_s: float = Field(
        30.0,
        gt=0,
        description="Besides LISTEN/NOTIFY, how often each worker checks which "
        "boundary version is active (seconds).",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    tile_url: str | None = Field(
        None,
        description="Basemap tile URL template, e.g. an intranet Tianditu proxy; "
        "unset: boundaries on a dark background.",
    )
    tile_attribution: str = ""
    tile_cache_mb: float = Field(
        64.0,
        ge=0,
        description="Each worker's in-process cache of vector tiles (/tiles), in MiB; 0: no cache.",
    )
    demo_users: bool = Field(
        True,
        description="`gridmap setup` creates one demo user per role with a random password "
        "(kept in var/demo-users.txt). Set false for a real district.",
    )
    photo_dir: Path | None = Field(
        None, description="Where incident photos are stored (default: <var_dir>/photos)."
    )
    photo_max_bytes: int = Field(10 * 2**20, gt=0, description="Largest photo accepted.")
    photo_max_count: int = Field(9, ge=0, description="Most photos on one report.")
    demo_days: int = Field(
        365,
        ge=0,
        le=3660,
        description="Days of demo cases `gridmap setup` loads into a database without cases "
        "(with GRIDMAP_DEMO_USERS); 0: none.",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="How long a web login's session cookie lasts."
    )
    secure_cookies: bool = Field(
        False,
        description="Mark the session cookie Secure (set when served over HTTPS; a request "
        "that arrives over HTTPS gets it anyway).",
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins per user name allowed within login_window_s."
    )
    login_max_failures_client: int = Field(
        20, ge=1, description="Failed logins per client address allowed within login_window_s."
    )
    login_window_s: float = Field(
        900.0, gt=0, description="The rate limit's window for failed logins (seconds)."
    )
    demo_patrols: bool = Field(
        True, description="`gridmap setup` loads demo patrols when there are none."
    )
    demo_patrol_days: int = Field(
        1,
        ge=0,
        le=30,
        description="Full days of demo patrols `gridmap setup` loads before "
        "today's (so far), when there are none.",
    )
    whistle_limits: dict[str, tuple[int, int]] = Field(
        default_factory=dict,
        description="Whistle time limits per grade as JSON, overriding the catalogue: "
        '{"red": [report_minutes, resolve_hours], ...} (default red 30 min / 24 h, yellow '
        "2 h / 72 h, blue 1 day / 168 h; natural time: emergencies keep no office hours).",
    )
    checkin_radius_m: float = Field(
        300.0, gt=0, description="A department's on-site check-in farther than this is flagged."
    )
    supervision_interval_s: float = Field(
        30.0,
        ge=0,
        description="How often the supervision scheduler looks for overdue steps "
        "(0: not started with the app; `gridmap whistles supervise` runs one pass).",
    )
    eval_weights: tuple[float, float, float] = Field(
        (50, 20, 30), description="Evaluation weights: completion, satisfaction, perceived."
    )
    eval_quotas: tuple[float, float, float] = Field(
        (60, 30, 10), description="Tier quotas in %: excellent, good, average."
    )
    eval_street_share_agency: float = Field(
        0.5, ge=0, le=1, description="Street rating's share of a dispatched agency's annual score."
    )
    eval_street_share_department: float = Field(
        0.5, ge=0, le=1, description="Street rating's share of a department's annual score."
    )
    export_row_limit: int = Field(
        50_000,
        ge=0,
        description="An export (POST /api/v1/exports) estimated above this many rows runs as a "
        "background job (202 and a status to poll) instead of answering the file at once.",
    )

    @field_validator("metric_crs")
    @classmethod
    def _metric(cls, value: str) -> str:
        try:
            crs = normalise_crs(value)
        except UnknownCRSError as exc:
            raise ValueError(str(exc)) from exc
        if not crs.startswith("EPSG:"):
            raise ValueError(f"{value!r} must be a projected EPSG code, e.g. EPSG:4548")
        return crs

    @field_validator("code_widths")
    @classmethod
    def _widths(cls, value: str) -> str:
        CodeScheme.parse(value)
        return value

    @property
    def code_scheme(self) -> CodeScheme:
        return CodeScheme.parse(self.code_widths)

    @property
    def metric_srid(self) -> int:
        """The metric CRS as an SRID PostGIS knows (it must be an EPSG code)."""
        return int(self.metric_crs.split(":", 1)[1])

    @property
    def photos(self) -> Path:
        return self.photo_dir or self.var_dir / "photos"

    @property
    def validation(self) -> ValidationOptions:
        return ValidationOptions(
            scheme=self.code_scheme,
            metric_crs=self.metric_crs,
            containment=self.containment,
            tolerance_m2=self.gap_tolerance_m2,
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
