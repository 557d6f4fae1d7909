"""The ``gridmap`` command line (Typer)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from app.db.embedded import EmbeddedError
from app.db.engine import current_revision, database_url, embedded, head_revision, make_engine
from app.db.engine import upgrade as run_migrations
from app.services import boundaries as boundary_service
from app.services.identity import ROLES
from app.settings import Settings, get_settings
from gis.codes import LEVELS
from gis.hierarchy import Report
from gis.io import (
    BoundaryFile,
    BoundaryFileError,
    BoundarySource,
    read_boundaries,
    write_boundaries,
)

DEMO_DEPARTMENTS = Path(__file__).resolve().parents[1] / "data" / "catalogs" / "departments.yaml"

app = typer.Typer(
    help="gridmap: four-level grid management and command-wall maps.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: embedded PostGIS in ./var/pg, or GRIDMAP_DATABASE_URL.")
boundaries_app = typer.Typer(help="Boundary files: validate, import as a version, activate.")
demo_app = typer.Typer(help="Synthetic demo data (deterministic from a seed).")
users_app = typer.Typer(help="Staff: who may do what, where (roles, home region, department).")
tokens_app = typer.Typer(help="Bearer tokens: shown once, stored hashed, expiring, revocable.")
departments_app = typer.Typer(help="Functional departments (police, housing, …) and stations.")
grids_app = typer.Typer(help="Who serves each basic grid: its gridworker (一格一员) and members.")
app.add_typer(db_app, name="db")
app.add_typer(boundaries_app, name="boundaries")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(departments_app, name="departments")
app.add_typer(grids_app, name="grids")
catalog_app = typer.Typer(
    help="The catalogues: incident classes (parts, events, social governance) and the whistles' "
    "call situations."
)
app.add_typer(catalog_app, name="catalog")
whistles_app = typer.Typer(help="Whistles (街道吹哨、部门报到): supervision passes.")
app.add_typer(whistles_app, name="whistles")
patrols_app = typer.Typer(help="Patrol fixes: the day partitions of the fix table.")
app.add_typer(patrols_app, name="patrols")

out = Console()
err = Console(stderr=True)


def main() -> None:
    app()


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# ---- database -------------------------------------------------------------------------------
@db_app.command("up")
def db_up() -> None:
    """Create (first time) and start the embedded cluster; create the database and PostGIS."""
    settings = get_settings()
    if settings.database_url:
        out.print("GRIDMAP_DATABASE_URL is set: using that database, nothing to start.")
        return
    pg = embedded(settings)
    try:
        pg.up()
    except EmbeddedError as exc:
        raise _fail(str(exc)) from None
    status = pg.status()
    out.print(
        f"PostGIS is up: data {status['data_dir']}, socket {status['socket_dir']}, "
        f"running as OS user {status['os_user']}"
    )


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded cluster (its data stays in ./var/pg)."""
    settings = get_settings()
    if settings.database_url:
        out.print("GRIDMAP_DATABASE_URL is set: the external database is not ours to stop.")
        return
    try:
        stopped = embedded(settings).down()
    except EmbeddedError as exc:
        raise _fail(str(exc)) from None
    out.print("stopped" if stopped else "not running")


@db_app.command("status")
def db_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Whether the database is initialised, running and migrated."""
    settings = get_settings()
    if settings.database_url:
        info: dict[str, object] = {"external": True, "url": _hide_password(settings.database_url)}
    else:
        try:
            info = {"external": False, **embedded(settings).status()}
        except EmbeddedError as exc:
            raise _fail(str(exc)) from None
    if info.get("external") or info.get("running"):
        try:
            engine = make_engine(database_url(settings))
            info["revision"] = current_revision(engine)
            info["head"] = head_revision()
            engine.dispose()
        except OperationalError as exc:
            info["error"] = str(exc.orig)
    if as_json:
        out.print_json(json.dumps(info, default=str))
        return
    for key, value in info.items():
        out.print(f"{key:>12}: {value}", highlight=False)
    if not info.get("external") and not info.get("running"):
        raise typer.Exit(1)


@db_app.command("url")
def db_url() -> None:
    """Print the SQLAlchemy URL of the database in use."""
    typer.echo(database_url(get_settings()))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the Alembic migrations (idempotent)."""
    engine = _engine(get_settings(), migrate=False)
    run_migrations(engine)
    out.print(f"schema at revision {current_revision(engine)}")


def _hide_password(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """An engine on a reachable database; the embedded one is started and migrated on demand."""
    if not settings.database_url:
        try:
            embedded(settings).up()
        except EmbeddedError as exc:
            raise _fail(str(exc)) from None
    engine = make_engine(database_url(settings))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        raise _fail(f"cannot reach the database: {exc.orig}") from None
    if migrate:
        if settings.database_url:
            if current_revision(engine) != head_revision():
                raise _fail("the database schema is not up to date: run `gridmap db migrate`")
        else:
            run_migrations(engine)
    return engine


# ---- boundaries -----------------------------------------------------------------------------
FilesArg = Annotated[
    list[Path], typer.Argument(help="GeoPackage, GeoJSON or Shapefile; several for one per level")
]
LevelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--level",
        help="The level a file holds (district|street|community|grid); once for all files or "
        "once per file, in order. Without it a 'level' column or level-named layers are used.",
    ),
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--field",
        help="Map a field to a column, e.g. --field code=GRID_ID (fields: code, name, level, "
        "parent_code, population, households, valid_from, valid_to)",
    ),
]
CrsOpt = Annotated[
    str | None,
    typer.Option(
        "--crs",
        help="Coordinate system of the file: wgs84|cgcs2000|gcj02|bd09|EPSG:n "
        "(default: the file's own; GCJ-02/BD-09 files must say so here)",
    ),
]
LayerOpt = Annotated[str | None, typer.Option("--layer", help="Read only this layer")]


def _sources(
    files: list[Path], levels: list[str] | None, layer: str | None
) -> list[BoundarySource]:
    levels = levels or []
    if len(levels) not in (0, 1, len(files)):
        raise _fail(f"--level given {len(levels)} times for {len(files)} files")
    if len(levels) == 1:
        levels = levels * len(files)
    return [
        BoundarySource(path, level=levels[i] if levels else None, layer=layer)
        for i, path in enumerate(files)
    ]


def _fields(pairs: list[str] | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise _fail(f"--field {pair!r}: expected NAME=COLUMN")
        fields[key.strip()] = value.strip()
    return fields


def _read(
    files: list[Path], levels: list[str] | None, fields: list[str] | None, crs: str | None,
    layer: str | None, settings: Settings,
) -> BoundaryFile:  # fmt: skip
    try:
        with err.status("reading boundaries…"):
            return read_boundaries(
                _sources(files, levels, layer),
                fields=_fields(fields),
                crs=crs,
                scheme=settings.code_scheme,
            )
    except BoundaryFileError as exc:
        raise _fail(str(exc)) from None


def _print_report(report: Report, console: Console, limit: int | None = None) -> None:
    console.print(report.summary(), highlight=False)
    shown = report.issues if limit is None else report.issues[:limit]
    for issue in shown:
        colour = "red" if issue.severity == "error" else "yellow"
        # One line per issue, never wrapped, so that it can be grepped.
        console.print(
            f"[{colour}]{issue.severity}[/] {escape(str(issue))}", highlight=False, soft_wrap=True
        )
    if limit is not None and len(report.issues) > limit:
        console.print(f"… and {len(report.issues) - limit} more (use --json for all)")


@boundaries_app.command("validate")
def boundaries_validate(
    files: FilesArg,
    level: LevelOpt = None,
    field: FieldOpt = None,
    crs: CrsOpt = None,
    layer: LayerOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Check a boundary set without touching the database. Exit 1 when it has errors."""
    settings = get_settings()
    data = _read(files, level, field, crs, layer, settings)
    with err.status("validating…"):
        report = boundary_service.check(data, settings.validation)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_report(report, out)
    if not report.ok:
        raise typer.Exit(1)


@contextmanager
def _progress() -> Iterator[boundary_service.Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@boundaries_app.command("import")
def boundaries_import(
    files: FilesArg,
    level: LevelOpt = None,
    field: FieldOpt = None,
    crs: CrsOpt = None,
    layer: LayerOpt = None,
    label: Annotated[
        str | None, typer.Option("--label", help="Version label (default: file name and time)")
    ] = None,
    activate: Annotated[
        bool, typer.Option("--activate", help="Activate the new version right away")
    ] = False,
) -> None:
    """Validate and import a boundary set as a new inactive version, in one transaction.

    A set with any error is refused and nothing is written.
    """
    settings = get_settings()
    data = _read(files, level, field, crs, layer, settings)
    engine = _engine(settings)
    try:
        with _progress() as progress:
            progress("validating", 0, 1)
            version, report = boundary_service.import_boundaries(
                engine, data, settings.validation, label=label, source_paths=files,
                progress=progress,
            )  # fmt: skip
    except boundary_service.BoundaryRejected as exc:
        _print_report(exc.report, err, limit=200)
        raise _fail("the boundary set was refused; nothing was written", 1) from None
    except boundary_service.LabelTaken as exc:
        raise _fail(str(exc)) from None
    counts = " / ".join(str(version.counts.get(lv, 0)) for lv in LEVELS)
    out.print(f"imported version {version.id} '{version.label}': {counts} regions (inactive)")
    for issue in report.warnings:
        out.print(f"[yellow]warning[/] {escape(str(issue))}", highlight=False, soft_wrap=True)
    if activate:
        version = boundary_service.activate(engine, version.id)
        out.print(f"activated version {version.id}")
    else:
        out.print(f"activate it with: gridmap boundaries activate {version.id}")


@boundaries_app.command("activate")
def boundaries_activate(
    version: Annotated[str, typer.Argument(help="Version id or label")],
) -> None:
    """Make a boundary version the current one (the previous one stays queryable)."""
    engine = _engine(get_settings())
    try:
        activated = boundary_service.activate(engine, version)
    except boundary_service.VersionNotFound as exc:
        raise _fail(str(exc)) from None
    out.print(f"activated version {activated.id} '{activated.label}'")


@boundaries_app.command("list")
def boundaries_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The boundary versions, oldest first."""
    engine = _engine(get_settings())
    with engine.connect() as conn:
        versions = boundary_service.list_versions(conn)
    if as_json:
        typer.echo(json.dumps([v.to_dict() for v in versions], ensure_ascii=False, indent=2))
        return
    table = Table("id", "label", "regions (d/s/c/g)", "loaded", "activated", "active")
    for v in versions:
        table.add_row(
            str(v.id),
            v.label,
            " / ".join(str(v.counts.get(lv, 0)) for lv in LEVELS),
            f"{v.loaded_at:%Y-%m-%d %H:%M}",
            f"{v.activated_at:%Y-%m-%d %H:%M}" if v.activated_at else "",
            "●" if v.is_active else "",
        )
    out.print(table)


# ---- demo -----------------------------------------------------------------------------------
OutputOpt = Annotated[Path, typer.Option("-o", "--output", help="File to write (.gpkg, .geojson)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed; same seed, same geometry")]


@demo_app.command("district")
def demo_district(output: OutputOpt, seed: SeedOpt = 20191216) -> None:
    """The demo district: Hongqiao-like, 1 / 10 / 123 / 992, about 320,000 residents."""
    from gis.synth import generate, hongqiao_spec

    with err.status("generating…"):
        frame = generate(hongqiao_spec(seed))
    write_boundaries(frame, output)
    out.print(f"wrote {len(frame)} regions to {output}")


@demo_app.command("city")
def demo_city(
    output: OutputOpt,
    grids: Annotated[int, typer.Option("--grids", min=1, help="Number of basic grids")] = 100_000,
    seed: SeedOpt = 20191216,
) -> None:
    """A bigger synthetic city with Hongqiao's proportions, for benchmarks."""
    from gis.synth import city_spec, generate

    with err.status(f"generating {grids:,} grids…"):
        frame = generate(city_spec(grids, seed))
    write_boundaries(frame, output)
    counts = " / ".join(str(int((frame["level"] == lv).sum())) for lv in LEVELS)
    out.print(f"wrote {counts} regions to {output}")


# ---- run ------------------------------------------------------------------------------------
# ---- identity ---------------------------------------------------------------------------------
@contextmanager
def _identity_engine() -> Iterator[Engine]:
    """An engine for one identity command; a refusal (IdentityError) exits 1 with its reason."""
    from app.services import identity

    engine = _engine(get_settings())
    try:
        yield engine
    except identity.IdentityError as exc:
        raise _fail(str(exc), 1) from None
    finally:
        engine.dispose()


def _print_rows(rows: list[dict[str, Any]], columns: dict[str, str], as_json: bool) -> None:
    """Rows as JSON, or as a table of the given columns (key → heading)."""
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False, default=str))
        return
    table = Table(*columns.values())
    for row in rows:
        table.add_row(*("" if row[k] is None else str(row[k]) for k in columns))
    out.print(table)


@departments_app.command("add")
def departments_add(
    code: Annotated[str, typer.Argument(help="Department code, e.g. hq-police-xigu")],
    name: Annotated[str, typer.Argument(help="Name, e.g. 西沽派出所")],
    kind: Annotated[str, typer.Option(help="police, housing, city_management, emergency, …")],
    parent: Annotated[str | None, typer.Option(help="Parent department code")] = None,
) -> None:
    """Add a department (a station under its parent with --parent)."""
    from app.services import identity

    with _identity_engine() as engine:
        identity.add_department(engine, code, name, kind=kind, parent=parent)
    out.print(f"department {escape(code)} added")


@departments_app.command("load")
def departments_load(
    file: Annotated[Path | None, typer.Argument(help="YAML catalogue")] = None,
) -> None:
    """Load departments from a YAML catalogue (default: the demo one); by code, idempotent."""
    from app.services import identity

    path = file or DEMO_DEPARTMENTS
    with _identity_engine() as engine:
        count = identity.load_departments(engine, path)
    out.print(f"{count} department(s) loaded from {escape(str(path))}")


@departments_app.command("list")
def departments_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every department with its kind, parent and whether it has a service area."""
    from app.services import identity

    with _identity_engine() as engine, engine.connect() as conn:
        rows = identity.list_departments(conn)
    _print_rows(rows, {"code": "code", "name": "name", "kind": "kind", "parent": "parent",
                       "has_area": "service area"}, as_json)  # fmt: skip


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help="One of: " + ", ".join(ROLES))],
    region: Annotated[str, typer.Option(help="Home region code: everything below is in scope")],
    department: Annotated[str | None, typer.Option(help="Department code")] = None,
    phone: Annotated[str | None, typer.Option(help="Phone number")] = None,
    display_name: Annotated[str | None, typer.Option(help="Full name shown in the UI")] = None,
) -> None:
    """Add a user; an unknown role, region or department is refused and nothing is created."""
    from app.services import identity

    with _identity_engine() as engine:
        user = identity.add_user(engine, name, role=role, region=region, department=department,
                                 phone=phone, display_name=display_name)  # fmt: skip
    out.print(
        f"user {escape(user.name)} ({user.role}, {user.region_code}) added; "
        f"give them a token: gridmap tokens create {escape(user.name)}",
        highlight=False,
    )


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="Login name")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Set a user's web-login password (at least 8 characters); ends their web sessions.
    API clients use tokens instead (gridmap tokens create)."""
    from app.services import identity

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with _identity_engine() as engine:
        identity.set_password(engine, name, password)
    out.print(f"password of {escape(name)} set; log in at /login", highlight=False)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every user with role, home region and department."""
    from app.services import identity

    with _identity_engine() as engine, engine.connect() as conn:
        users = identity.list_users(conn)
    _print_rows(users, {"name": "name", "role": "role", "region_code": "region",
                        "department": "department", "active": "active"}, as_json)  # fmt: skip


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Argument(help="Login name")],
    days: Annotated[float, typer.Option(help="Valid for this many days")] = 90.0,
    label: Annotated[str, typer.Option(help="What it is for, e.g. the phone's name")] = "",
) -> None:
    """Make a bearer token and print only it (capture it: it is not shown again)."""
    from app.services import identity

    with _identity_engine() as engine:
        token = identity.create_token(engine, user, days=days, label=label)
    sys.stdout.write(token + "\n")


@tokens_app.command("revoke")
def tokens_revoke(
    user: Annotated[str, typer.Argument(help="Login name")],
    token: Annotated[str | None, typer.Option(help="The token to revoke (default: all)")] = None,
) -> None:
    """Revoke one of a user's tokens, or all of them."""
    from app.services import identity

    with _identity_engine() as engine:
        count = identity.revoke_tokens(engine, user, token=token)
    out.print(f"{count} token(s) of {escape(user)} revoked")


@grids_app.command("assign")
def grids_assign(
    grid: Annotated[str, typer.Argument(help="Basic grid code")],
    user: Annotated[str, typer.Argument(help="Login name")],
    kind: Annotated[
        str,
        typer.Option(
            help="primary (the grid's gridworker) or a 1+8+X member kind: leader, "
            "supervisor, enforcer, community_officer, sanitation, police, liaison, "
            "discipline, street_staff, other"
        ),
    ] = "primary",
) -> None:
    """Put a user on a grid; a grid has one primary gridworker."""
    from app.services import identity

    with _identity_engine() as engine:
        identity.assign(engine, grid, user, kind=kind)
    out.print(f"{escape(user)} serves grid {escape(grid)} as {kind}")


@demo_app.command("gridworkers")
def demo_gridworkers() -> None:
    """One demo gridworker for every basic grid that has none (deterministic names)."""
    from app.services import identity

    engine = _engine(get_settings())
    made = identity.demo_gridworkers(engine)
    engine.dispose()
    out.print(f"{made} gridworker(s) created and assigned")


@catalog_app.command("load")
def catalog_load(
    file: Annotated[Path | None, typer.Argument(help="YAML catalogue")] = None,
    situations: Annotated[
        Path | None, typer.Option(help="YAML call-situation catalogue for whistles")
    ] = None,
) -> None:
    """Load incident classes from a YAML catalogue (default: data/catalogs/incident_classes.yaml)
    and the whistles' call situations (default: data/catalogs/whistle_situations.yaml), by
    code; a file with any bad entry loads nothing and names every problem."""
    from app.services import incidents, whistles
    from app.services.catalog import DEFAULT_CATALOG, CatalogError
    from app.services.situations import DEFAULT_SITUATIONS, SituationError

    path = file or DEFAULT_CATALOG
    situation_path = situations or DEFAULT_SITUATIONS
    engine = _engine(get_settings())
    try:
        count = incidents.load_classes(engine, path)
        calls = whistles.load_into(engine, situation_path)
    except (CatalogError, SituationError) as exc:
        raise _fail(str(exc), 1) from None
    finally:
        engine.dispose()
    out.print(f"{count} incident class(es) loaded from {escape(str(path))}")
    out.print(f"{calls} call situation(s) loaded from {escape(str(situation_path))}")


@patrols_app.command("partitions")
def patrols_partitions(
    days: Annotated[int, typer.Option(min=0, max=366, help="Days ahead to make")] = 7,
) -> None:
    """Make the day partitions of the patrol fix table from yesterday to DAYS ahead (the app
    does this at start and in its housekeeping; ingest makes any day it needs)."""
    from app.services import patrols

    engine = _engine(get_settings())
    made = patrols.ensure_ahead(engine, days=days)
    engine.dispose()
    out.print(f"{made} day partition(s) made")


@patrols_app.command("detach")
def patrols_detach(
    before: Annotated[str, typer.Option(help="Detach the days before this date (YYYY-MM-DD)")],
) -> None:
    """Detach the day partitions before a date: their fixes leave the live table and stay as
    plain tables (patrol_fix_YYYYMMDD) to archive or drop."""
    import datetime as dt

    from app.services import patrols

    try:
        day = dt.date.fromisoformat(before)
    except ValueError:
        raise _fail(f"--before: {before!r} is not a date (YYYY-MM-DD)", 2) from None
    engine = _engine(get_settings())
    names = patrols.detach_before(engine, day)
    engine.dispose()
    out.print(f"{len(names)} partition(s) detached" + (f": {', '.join(names)}" if names else ""))


@whistles_app.command("supervise")
def whistles_supervise() -> None:
    """One supervision pass (the app's scheduler runs one every GRIDMAP_SUPERVISION_INTERVAL_S):
    mark steps past their deadline overdue, open a supervision record (督办) per step and notify;
    close the records of steps done since."""
    from app.services import whistles

    engine = _engine(get_settings())
    done = whistles.supervise(engine)
    engine.dispose()
    out.print(f"supervision: {done['opened']} record(s) opened, {done['closed']} closed"
              + (" (another pass was running)" if done["skipped"] else ""))  # fmt: skip


@catalog_app.command("list")
def catalog_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every incident class with its time limits and department kind."""
    engine = _engine(get_settings())
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                text("SELECT code, name_zh, name_en, department_kind, limits FROM incident_class "
                     "ORDER BY code")
            ).mappings()
        ]  # fmt: skip
    engine.dispose()
    _print_rows(rows, {"code": "code", "name_zh": "名称", "name_en": "name",
                       "department_kind": "department"}, as_json)  # fmt: skip


@demo_app.command("users")
def demo_users_cmd() -> None:
    """One demo user per role (demo-street-commander, …), each with a random password, for
    users that do not exist yet; prints them and keeps them in var/demo-users.txt."""
    from app.services import identity

    settings = get_settings()
    engine = _engine(settings)
    made = identity.demo_users(engine)
    engine.dispose()
    _remember_demo_users(settings.var_dir, made)
    out.print(f"{len(made)} demo user(s) created")
    _print_demo_logins(settings.var_dir, None)


@demo_app.command("incidents")
def demo_incidents(
    days: Annotated[int, typer.Option(min=1, max=3660, help="Days back from now")] = 365,
    per_day: Annotated[float, typer.Option(min=1, help="Mean reports a day, district-wide")] = 800,
    seed: Annotated[
        int, typer.Option(help="Random seed (the same seed, the same cases)")
    ] = 20191216,
) -> None:
    """A realistic stream of cases for the demo district — hot spots, every source, ~99 %
    closed — loaded in bulk. Idempotent: days already loaded with this seed are skipped."""
    from app.services import demo_activity

    engine = _engine(get_settings())
    started = time.perf_counter()
    made = demo_activity.load(engine, days=days, per_day=per_day, seed=seed)
    took = time.perf_counter() - started
    info = demo_activity.summary(engine)
    engine.dispose()
    out.print(f"{made:,} demo case(s) added in {took:.1f} s; {info['n']:,} cases from "
              f"{info['first']} to {info['last']}", highlight=False, soft_wrap=True)  # fmt: skip


def _demo_whistles(engine: Any, settings: Any, *, days: int, count: int = 90) -> int:
    from app.services import demo_whistles
    from app.services.locate import LocateService

    locator = LocateService(engine, metric_crs=settings.metric_crs)
    locator.refresh()
    try:
        return demo_whistles.load(engine, locator, count=count, days=days)
    finally:
        locator.stop()


def _demo_patrols(engine: Any, settings: Any, *, days: int) -> int:
    from app.services import demo_patrols
    from app.services.locate import LocateService

    locator = LocateService(engine, metric_crs=settings.metric_crs)
    locator.refresh()
    try:
        return demo_patrols.load(engine, locator, days=days)
    finally:
        locator.stop()


@demo_app.command("patrols")
def demo_patrols_cmd(
    days: Annotated[int, typer.Option(min=0, max=30, help="Full days before today")] = 1,
) -> None:
    """The demo gridworkers walking their own grids during shifts (a fix every 15 s), for DAYS
    days and today up to now, stored as phones' fixes are. Idempotent: only adds what is new."""
    settings = get_settings()
    engine = _engine(settings)
    started = time.perf_counter()
    made = _demo_patrols(engine, settings, days=days)
    engine.dispose()
    out.print(f"{made:,} demo fix(es) added in {time.perf_counter() - started:.1f} s")


@demo_app.command("live")
def demo_live_cmd(
    interval: Annotated[float, typer.Option(min=1, help="Seconds between fixes")] = 15.0,
    steps: Annotated[int | None, typer.Option(min=1, help="Stop after N rounds")] = None,
    always_on: Annotated[
        bool, typer.Option(help="Every worker walks, on shift or not (a demo at night)")
    ] = False,
) -> None:
    """A live feed: every INTERVAL seconds each demo gridworker on shift sends the next fix of
    their walk, so /api/v1/patrols/live and the wall move. Runs until Ctrl-C (or --steps)."""
    from app.services import demo_patrols
    from app.services.locate import LocateService

    settings = get_settings()
    engine = _engine(settings)
    locator = LocateService(engine, metric_crs=settings.metric_crs)
    locator.refresh()

    def told(step: int, stored: int) -> None:
        out.print(f"round {step}: {stored} fix(es) sent", highlight=False)

    try:
        total = demo_patrols.live(engine, locator, steps=steps, interval_s=interval,
                                  always_on=always_on, on_step=told)  # fmt: skip
        out.print(f"{total:,} fix(es) sent")
    except KeyboardInterrupt:
        out.print("stopped")
    finally:
        locator.stop()
        engine.dispose()


@demo_app.command("whistles")
def demo_whistles_cmd(
    count: Annotated[int, typer.Option(min=0, max=10_000, help="First whistles to blow")] = 90,
    days: Annotated[int, typer.Option(min=5, max=3660, help="Days back from now")] = 365,
) -> None:
    """About COUNT whistles over the last DAYS (Hongqiao blew 88 in a year), played through the
    whistle service on a simulated clock: every state, late steps with supervision, second
    whistles, feedback, and the streets' ratings of last month. Idempotent."""
    settings = get_settings()
    engine = _engine(settings)
    started = time.perf_counter()
    made = _demo_whistles(engine, settings, days=days, count=count)
    engine.dispose()
    out.print(f"{made} demo whistle(s) added in {time.perf_counter() - started:.1f} s")


DEMO_USERS_FILE = "demo-users.txt"


def _remember_demo_users(var_dir: Path, made: list[dict[str, Any]]) -> None:
    """Keep the demo passwords (only shown at creation) in var/, readable by the owner only."""
    if not made:
        return
    path = var_dir / DEMO_USERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    known = _read_demo_users(var_dir)
    known.update({u["name"]: u for u in made})
    lines = [f"{u['name']}\t{u['role']}\t{u['region']}\t{u['password']}" for u in known.values()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)


def _read_demo_users(var_dir: Path) -> dict[str, dict[str, str]]:
    path = var_dir / DEMO_USERS_FILE
    if not path.exists():
        return {}
    users = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 4:
            users[parts[0]] = dict(zip(("name", "role", "region", "password"), parts, strict=True))
    return users


def _print_demo_logins(var_dir: Path, base: str | None) -> None:
    users = _read_demo_users(var_dir)
    if not users:
        return
    where = f"{base}/login" if base else "/login"
    kept = escape(str(var_dir / DEMO_USERS_FILE))
    out.print(
        f"[bold]Log in[/] at {where} as any demo user (one per role; passwords kept in {kept}):",
        highlight=False,
        soft_wrap=True,
    )
    width = max(len(u["name"]) for u in users.values())
    for u in users.values():
        out.print(f"  {u['name']:<{width}}  {u['password']}  {u['role']} @ {u['region']}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    out.print(
        "API clients send a bearer token: TOKEN=$(.venv/bin/gridmap tokens create demo-admin); "
        'curl -H "Authorization: Bearer $TOKEN" …',
        highlight=False,
        soft_wrap=True,
    )


# ---- export ---------------------------------------------------------------------------------
@app.command("export")
def export_cmd(
    kind: Annotated[
        str, typer.Argument(help="hotspots, emerging, series, compare, density or cases")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The file to write (replaced if it exists)")
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="gpkg, csv or geojson (default: from the file's suffix)"),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="A region code (default: the whole district)")
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(help="district|street|community|grid (default grid; series, compare: street)"),
    ] = None,
    class_code: Annotated[
        str | None, typer.Option("--class", help="A minor class (E0101) or a major (E01)")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First Beijing day, YYYY-MM-DD (default: 28 days before --to)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last Beijing day, YYYY-MM-DD (default: today)")
    ] = None,
    method: Annotated[str | None, typer.Option(help="hotspots: gi or moran")] = None,
    measure: Annotated[
        str | None, typer.Option(help="hotspots: count, per_1000 or per_km2")
    ] = None,
    distance_m: Annotated[
        float | None, typer.Option(help="hotspots: a distance band in metres")
    ] = None,
    permutations: Annotated[
        int | None, typer.Option(help="hotspots: conditional permutations for p")
    ] = None,
    weeks: Annotated[int | None, typer.Option(help="emerging: weekly bins (default 52)")] = None,
    time_window: Annotated[
        int | None, typer.Option(help="emerging: preceding weeks that count as neighbours")
    ] = None,
    period: Annotated[str | None, typer.Option(help="series: day, week or month")] = None,
    by_class: Annotated[
        bool | None, typer.Option("--by-class", help="series: one series per class as well")
    ] = None,
    cell_m: Annotated[float | None, typer.Option(help="density: cell size, m")] = None,
    bandwidth_m: Annotated[float | None, typer.Option(help="density: kernel radius, m")] = None,
) -> None:
    """Export an analysis or the raw cases of a period as GeoPackage, CSV or GeoJSON.

    The operator's tool: it runs at once, however large, over the whole district's cases
    (no user's scope applies; the API's exports run with the caller's). Parameters are those
    of the API (POST /api/v1/exports). Example: `gridmap export hotspots -o hot.gpkg --from
    2026-03-01 --to 2026-03-31 --class E01`. A period without data writes an empty file and
    says why. CSV is UTF-8 with a BOM for Excel, without region polygons.
    """
    from pydantic import ValidationError

    from app.services import exports
    from app.services.analytics import AnalyticsError
    from app.services.scoping import ScopeFilter

    given = {
        "kind": kind, "format": fmt or exports.FORMAT_OF_SUFFIX.get(output.suffix.lower()),
        "region": region, "level": level, "class": class_code, "from": start, "to": end,
        "method": method, "measure": measure, "distance_m": distance_m,
        "permutations": permutations, "weeks": weeks, "time_window": time_window,
        "period": period, "by_class": by_class, "cell_m": cell_m, "bandwidth_m": bandwidth_m,
    }  # fmt: skip
    if given["format"] is None:
        raise _fail(f"format: cannot tell it from {output.name!r}; give --format gpkg|csv|geojson")
    try:
        request = exports.ExportRequest.model_validate(
            {k: v for k, v in given.items() if v is not None}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "request"
        raise _fail(f"{field}: {first['msg']}") from None
    settings = get_settings()
    engine = _engine(settings)
    reach = ScopeFilter("")  # the whole database: the operator's own tool
    part = output.with_name(f"{output.stem}.part{output.suffix}")  # GDAL wants the suffix
    try:
        with engine.connect() as conn, conn.begin():
            try:
                plan = exports.plan(conn, reach, request, metric_srid=settings.metric_srid)
            except AnalyticsError as exc:
                raise _fail(f"{exc.field}: {exc.message}") from None
            written = exports.export(conn, reach, plan, part, metric_srid=settings.metric_srid)
        part.replace(output)
    finally:
        part.unlink(missing_ok=True)
        engine.dispose()
    out.print(f"{written.rows:,} row(s) written to {output}", highlight=False, soft_wrap=True)
    if written.reason:
        out.print(f"empty: {written.reason}", highlight=False, soft_wrap=True)


# ---- locate ---------------------------------------------------------------------------------
LOCATE_CHUNK = 100_000


@app.command("locate")
def locate_cmd(
    lon: Annotated[float | None, typer.Argument(help="Longitude of one point")] = None,
    lat: Annotated[float | None, typer.Argument(help="Latitude of one point")] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            help="wgs84, cgcs2000, gcj02 or bd09 (files: default the file's own CRS, CSV wgs84)"
        ),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="CSV, GeoPackage, GeoJSON or Parquet")
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV, GeoPackage, GeoJSON or Parquet")
    ] = None,
    lon_field: Annotated[
        str | None, typer.Option(help="Longitude column (default: lon, …)")
    ] = None,
    lat_field: Annotated[str | None, typer.Option(help="Latitude column (default: lat, …)")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer of a GeoPackage")] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Answer from the version active then (ISO date/time)")
    ] = None,
    nearest: Annotated[
        bool, typer.Option(help="Files: add the nearest grid and distance for points outside")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One point: print JSON")] = False,
) -> None:
    """Which district, street, community and grid cover a point — or every point of a file.

    One point: `gridmap locate 117.163 39.17 --crs gcj02`. A file: `gridmap locate --input
    cases.csv --output located.gpkg`; the output keeps every input row and column and adds
    grid_code, grid_name, community_code, …, district_name and error (rows whose coordinates
    are unreadable, out of range or look swapped). A point on an edge shared by several grids
    belongs to the grid with the lowest code.
    """
    from app.api.deps import parse_as_of
    from app.api.problems import Problem

    settings = get_settings()
    try:
        moment = parse_as_of(as_of)
    except Problem as exc:
        raise _fail(exc.detail) from None
    if input_file is None:
        if lon is None or lat is None:
            raise _fail("give LON LAT, or --input FILE --output FILE")
        _locate_one(settings, lon, lat, _crs_option(crs or "wgs84"), moment, as_json)
        return
    if output_file is None:
        raise _fail("--input needs --output")
    if lon is not None:
        raise _fail("give either LON LAT or --input FILE, not both")
    _locate_file(settings, input_file, output_file, crs, lon_field, lat_field, layer, moment,
                 nearest)  # fmt: skip


def _crs_option(value: str) -> str:
    from gis.crs import UnknownCRSError, point_crs

    try:
        return point_crs(value)
    except UnknownCRSError as exc:
        raise _fail(str(exc)) from None


def _version_for(conn, moment):  # type: ignore[no-untyped-def]
    from app.services.regions import NoVersion, resolve_scope

    try:
        return resolve_scope(conn, moment).version
    except NoVersion as exc:
        raise _fail(str(exc), 1) from None


def _locate_one(settings: Settings, lon: float, lat: float, crs: str, moment, as_json: bool):  # type: ignore[no-untyped-def]
    import numpy as np

    from app.services import regions as region_service
    from app.services.locate import coordinate_problems
    from gis.crs import to_cgcs2000

    problem = coordinate_problems(np.array([lon]), np.array([lat]))[0]
    if problem:
        raise _fail(f"{problem[0]}: {problem[1]}", 1)
    x, y = (float(v[0]) for v in to_cgcs2000(np.array([lon]), np.array([lat]), crs))
    engine = _engine(settings)
    with engine.connect() as conn:
        version = _version_for(conn, moment)
        chain = region_service.covering(conn, version.id, x, y)
        near = None
        if not any(r["level"] == "grid" for r in chain):
            near = region_service.nearest_grid(conn, version.id, x, y)
    engine.dispose()
    result = {
        "lon": lon, "lat": lat, "crs": crs, "cgcs2000": [x, y],
        "boundary_version": {"id": version.id, "label": version.label},
        **{r["level"]: {"code": r["code"], "name": r["name"]} for r in chain},
        "nearest": near,
    }  # fmt: skip
    if as_json:
        out.print_json(json.dumps(result, ensure_ascii=False, default=str))
        return
    for r in chain:
        out.print(f"{r['level']:<10} {r['code']:<16} {escape(r['name'] or '')}", highlight=False)
    if near:
        out.print(
            f"outside every grid; nearest: {near['code']} {escape(near['name'] or '')}, "
            f"{near['distance_m']:,.0f} m", highlight=False,
        )  # fmt: skip
    out.print(f"[dim]boundary version {version.id} '{escape(version.label)}'[/]")


def _locate_file(  # type: ignore[no-untyped-def]
    settings: Settings, src: Path, dst: Path, crs, lon_field, lat_field, layer, moment, nearest
) -> None:
    import numpy as np
    import pandas as pd

    from app.services.locate import coordinate_problems, load_index
    from gis.crs import NAMED_CRS, to_cgcs2000
    from gis.points import WRITABLE, PointFileError, read_points, write_points

    if dst.suffix.lower() not in WRITABLE:
        raise _fail(f"--output must end in one of {', '.join(WRITABLE)}")
    try:
        points = read_points(src, lon_field=lon_field, lat_field=lat_field, layer=layer)
    except PointFileError as exc:
        raise _fail(str(exc), 1) from None
    source_crs = _crs_option(crs) if crs else (points.crs or "wgs84")
    engine = _engine(settings)
    with engine.connect() as conn:
        version = _version_for(conn, moment)
    n = len(points.lon)
    errors = dict(points.errors)
    check_lon, check_lat = points.lon, points.lat
    if source_crs not in NAMED_CRS:  # projected: check the lon/lat the coordinates stand for
        with np.errstate(invalid="ignore"):
            check_lon, check_lat = to_cgcs2000(points.lon, points.lat, source_crs)
    for i, problem in enumerate(coordinate_problems(check_lon, check_lat)):
        if problem and i not in errors:
            errors[i] = f"{problem[0]} {problem[1]}"
    ok = np.ones(n, dtype=bool)
    ok[list(errors)] = False
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    parts = []
    with _progress() as progress:
        progress("loading the grid index", 0, 1)
        index = load_index(engine, version.id, settings.metric_crs)
        for start in range(0, max(n, 1), LOCATE_CHUNK):
            stop = min(start + LOCATE_CHUNK, n)
            sel = np.arange(start, stop)[ok[start:stop]]
            if sel.size:
                x[sel], y[sel] = to_cgcs2000(points.lon[sel], points.lat[sel], source_crs)
            parts.append(index.chain(x[start:stop], y[start:stop], nearest=nearest))
            progress("locating", stop, n)
    engine.dispose()
    chain = pd.concat(parts, ignore_index=True) if parts else index.chain([], [])
    chain["error"] = [errors.get(i, "") for i in range(n)]
    frame = points.frame.reset_index(drop=True).drop(columns=list(chain.columns), errors="ignore")
    result = pd.concat([frame, chain.iloc[:n]], axis=1)
    result["boundary_version"] = version.id
    try:
        write_points(result, x, y, dst)
    except (PointFileError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    covered = int((chain["grid_code"].iloc[:n] != "").sum())
    out.print(
        f"{n:,} point(s): {covered:,} in a grid, {n - covered - len(errors):,} outside every "
        f"grid, {len(errors):,} unreadable → {escape(str(dst))} "
        f"(boundary version {version.id}, from {source_crs})", highlight=False, soft_wrap=True,
    )  # fmt: skip


@app.command("setup")
def setup() -> None:
    """Start the database, apply migrations, load the demo district if the database is empty,
    give every demo grid a gridworker if there are no staff yet, and (GRIDMAP_DEMO_USERS)
    create one demo user per role that can log in."""
    settings = get_settings()
    engine = _engine(settings)
    with engine.connect() as conn:
        empty = boundary_service.is_empty(conn)
    if empty:
        demo = settings.demo_boundaries
        if not demo.exists():
            raise _fail(f"demo boundaries {demo} not found (GRIDMAP_DEMO_BOUNDARIES)")
        data = _read([demo], None, None, None, None, settings)
        try:
            with _progress() as progress:
                version, _ = boundary_service.import_boundaries(
                    engine, data, settings.validation, label="demo", source_paths=[demo],
                    progress=progress,
                )  # fmt: skip
        except boundary_service.BoundaryRejected as exc:
            _print_report(exc.report, err, limit=50)
            raise _fail(f"the demo file {demo} does not validate") from None
        boundary_service.activate(engine, version.id)
        out.print(f"loaded the demo district from {demo.name} as version {version.id}")
    with engine.connect() as conn:
        active = boundary_service.active_version(conn)
        no_staff = conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM staff)")).scalar_one()
        no_departments = conn.execute(
            text("SELECT NOT EXISTS (SELECT 1 FROM department)")
        ).scalar_one()
    if active:
        counts = " / ".join(str(active.counts.get(lv, 0)) for lv in LEVELS)
        out.print(f"active boundary version {active.id} '{active.label}': {counts} regions")
    if active and no_staff:
        from app.services import identity

        made = identity.demo_gridworkers(engine)
        out.print(f"created {made} demo gridworkers, one per grid (一格一员)")
    if active and no_departments:
        from app.services import identity

        try:
            loaded = identity.load_departments(engine, DEMO_DEPARTMENTS)
            out.print(f"loaded {loaded} demo departments ({DEMO_DEPARTMENTS.name})")
        except identity.IdentityError as exc:  # not the demo district's boundaries
            out.print(f"demo departments not loaded: {escape(str(exc))[:200]}", highlight=False)
    with engine.connect() as conn:
        no_classes = conn.execute(
            text("SELECT NOT EXISTS (SELECT 1 FROM incident_class)")
        ).scalar_one()
    if no_classes:
        from app.services import incidents
        from app.services.catalog import DEFAULT_CATALOG

        loaded = incidents.load_classes(engine, DEFAULT_CATALOG)
        out.print(f"loaded {loaded} incident classes ({DEFAULT_CATALOG.name})")
    with engine.connect() as conn:
        no_situations = conn.execute(
            text("SELECT NOT EXISTS (SELECT 1 FROM whistle_situation)")
        ).scalar_one()
    if no_situations:
        from app.services import whistles
        from app.services.situations import DEFAULT_SITUATIONS

        loaded = whistles.load_into(engine, DEFAULT_SITUATIONS)
        out.print(f"loaded {loaded} call situations ({DEFAULT_SITUATIONS.name})")
    if active and settings.demo_users:
        from app.services import demo_activity, identity

        made = identity.demo_users(engine)
        _remember_demo_users(settings.var_dir, made)
        if made:
            out.print(f"created {len(made)} demo users, one per role (GRIDMAP_DEMO_USERS)")
        with engine.connect() as conn:
            no_cases = conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM incident)")).scalar()
        if no_cases and settings.demo_days:
            started = time.perf_counter()
            cases = demo_activity.load(engine, days=settings.demo_days)
            took = time.perf_counter() - started
            out.print(f"loaded {settings.demo_days} days of demo cases: {cases:,} in {took:.0f} s "
                      "(GRIDMAP_DEMO_DAYS)")  # fmt: skip
        with engine.connect() as conn:
            no_whistles = conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM whistle)")).scalar()
        with engine.connect() as conn:
            no_fixes = conn.execute(text("SELECT NOT EXISTS (SELECT 1 FROM patrol_fix)")).scalar()
        if no_fixes and settings.demo_patrols:
            started = time.perf_counter()
            fixes = _demo_patrols(engine, settings, days=settings.demo_patrol_days)
            took = time.perf_counter() - started
            out.print(f"loaded demo patrols: {fixes:,} fixes in {took:.0f} s "
                      "(GRIDMAP_DEMO_PATROL_DAYS)")  # fmt: skip
        if no_whistles and settings.demo_days:
            started = time.perf_counter()
            blown = _demo_whistles(engine, settings, days=365)  # ~90 a year, cases or not
            out.print(f"loaded demo whistles: {blown} in {time.perf_counter() - started:.0f} s")
    engine.dispose()


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (GRIDMAP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (GRIDMAP_PORT)")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes; each keeps its own locate index fresh")
    ] = 1,
) -> None:
    """Serve the API and pages with uvicorn against the embedded or configured database."""
    import uvicorn

    settings = get_settings()
    engine = _engine(settings)
    with engine.connect() as conn:
        first = conn.execute(
            text(
                "SELECT r.code FROM region r JOIN boundary_version v ON v.id = r.version_id "
                "WHERE v.is_active AND r.level = 'district' ORDER BY r.code LIMIT 1"
            )
        ).scalar_one_or_none()
        spot = conn.execute(
            text(
                "SELECT ST_X(p) AS x, ST_Y(p) AS y FROM (SELECT ST_PointOnSurface(r.geom) AS p "
                "FROM region r JOIN boundary_version v ON v.id = r.version_id "
                "WHERE v.is_active AND r.level = 'grid' ORDER BY r.code LIMIT 1) s"
            )
        ).first()
    engine.dispose()
    host = host or settings.host
    port = port or settings.port
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    pages = [(f"{base}/", "home"), (f"{base}/screen", "the command wall (log in as demo-screen)")]
    if first:
        pages.append((f"{base}/regions/{first}/map", "district map"))
    pages += [
        (f"{base}/docs", "API (OpenAPI)"),
        (f"{base}/api/v1/regions?level=street", "streets as JSON"),
    ]
    if spot:
        pages.append(
            (f"{base}/api/v1/locate?lon={spot.x:.6f}&lat={spot.y:.6f}", "which grid covers a point")
        )
    pages += [
        (f"{base}/login", "log in (every page and endpoint but /health needs a user)"),
        (f"{base}/health", "health"),
    ]
    width = max(len(url) for url, _ in pages)
    out.print("\n[bold]gridmap is serving[/] — open:", highlight=False)
    for url, what in pages:
        out.print(f"  {url:<{width}}  {what}", highlight=False, soft_wrap=True)
    out.print()
    _print_demo_logins(settings.var_dir, base)
    out.print()
    sys.stdout.flush()
    uvicorn.run("app.main:create_app", factory=True, host=host, port=port, log_level="info",
                workers=workers)  # fmt: skip


if __name__ == "__main__":
    main()
