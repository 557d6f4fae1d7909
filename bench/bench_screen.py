"""The command wall: /screen's payload and its time to full render, beside a naive folium page.

The wall issue's page figures, measured in one run against one private PostGIS cluster in
var/bench/screen-pg (``fast=True``): migrated, the class catalogue, the call situations and the
demo departments loaded, the demo district imported and activated, one gridworker per grid
(``identity.demo_gridworkers``), one demo user per role (``identity.demo_users``), then
``--days`` of demo activity (default 365: about 290,000 cases, ``demo_activity.load``), the demo
whistles over the same days (``demo_whistles.load``) and one round of every gridworker's live
fix (``demo_patrols.live``, refreshed before each of gridmap's runs: the wall shows positions of
the last 10 minutes). The database is then VACUUM ANALYZEd, as autovacuum would do in the
minutes after the load (before that, the grid figures' query takes seconds, not milliseconds).

* gridmap: ``GET /screen`` with the district commander's bearer token, served by
  ``app.main:create_app`` under uvicorn (as bench_incidents starts it; supervision off, no demo
  patrols, no basemap). The HTML's bytes (and gzip's) and the server's time to make it.
* peer: what a GIS developer would write first. The same district boundaries
  (``geopandas.read_postgis`` of the active version, one ``folium.GeoJson`` per level) and every
  case in the database (``--peer-cases`` caps them) as ``folium.Marker`` with a popup each
  (id, class, status, reported, grid) in one ``folium.plugins.MarkerCluster``. Built in a child
  process; its assets are pointed at the app's vendored copies with ``app.web.assets.localize``
  and the page is served with those files by ``python -m http.server`` on loopback, so neither
  page needs the internet. Its ready flag: a script after folium's sets
  ``window.gridmapReady = true`` on the load event, in the next animation frame — folium adds
  every marker synchronously in the page's inline script, before the load event.
* Render: Playwright for Python driving the system Chromium (headless, 1920×1080, a fresh
  context per run, never ``playwright install``). Time from ``page.goto`` to
  ``window.gridmapReady === true``, which wall.js sets once every layer has its first data: an
  init script records ``performance.now()`` (from the navigation's start) when the flag is set.
  ``--repeat`` runs of each, interleaved; median, min and max. At ready: every response by kind
  (Resource Timing: html, js, css, json from /api, pbf tiles, other), the JS heap after a
  garbage collection and the DOM nodes (CDP ``Performance.getMetrics``), and the elements in
  the document. A peer run that is not ready within ``--peer-timeout`` is reported as such and
  the peer is not run again.

Checks (exit non-zero when one fails): the /screen HTML under 2 MB (2,000,000 bytes) — the
issue's target with a year of demo activity; no request to any host but the page's own server;
no console error and no answer >= 400; the wall shows cases, whistles and gridworkers and the
peer's cluster holds every case it was given. Stops by itself; the servers, the child process,
the temporary directory and the cluster are removed on the way out (also on Ctrl-C or SIGTERM).

    .venv/bin/python bench/bench_screen.py                  # a year, about 10 minutes (5 of them
                                                            # folium building the peer's page)
    .venv/bin/python bench/bench_screen.py --quick          # 30 days, 3 runs, about 1.5 minutes
    .venv/bin/python bench/bench_screen.py --peer-cases 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gzip
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _common import demo_cluster, free_port, run_logged, stop_process  # noqa: E402
from bench_boundaries import nproc  # noqa: E402
from bench_incidents import (  # noqa: E402
    _TICK,
    UVICORN_OPTIONS,
    _commit,
    _stat,
    finish,
    machine_busy_seconds,
    uvicorn_server,
)
from sqlalchemy import text  # noqa: E402

DEPARTMENTS = ROOT / "data" / "catalogs" / "departments.yaml"
STATIC_DIR = ROOT / "app" / "web" / "static"
CACHE_DIR = ROOT / "var" / "bench"
PG_DIR = CACHE_DIR / "screen-pg"  # its own cluster: it may run beside the other benchmarks
WORK = CACHE_DIR / "screen"
RESULTS = ROOT / "bench" / "results" / "screen.json"
COMMANDER = "demo-district-commander"
CHROMIUM = os.environ.get("GRIDMAP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
VIEWPORT = {"width": 1920, "height": 1080}
TARGET_HTML_BYTES = 2_000_000  # "the /screen HTML stays under 2 MB"
WALL_TIMEOUT_S = 60.0
KINDS = ("html", "js", "css", "json", "pbf", "other")
KIND_NAMES = {"html": "html", "js": "js", "css": "css", "json": "json (/api)",
              "pbf": "pbf tiles", "other": "other"}  # fmt: skip

# Runs in every page before its own scripts: a bigger Resource Timing buffer, and the moment the
# ready flag is set (ms from the navigation's start), whoever sets it.
INIT_SCRIPT = """
(() => {
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  let ready;
  Object.defineProperty(window, "gridmapReady", {
    configurable: true,
    get() { return ready; },
    set(value) {
      ready = value;
      if (value === true && window.__benchReadyAt === undefined) {
        window.__benchReadyAt = performance.now();
      }
    },
  });
})();
"""
# The peer's ready flag: folium's inline script has added every marker before the load event.
PEER_READY = (
    "<script>window.addEventListener('load', () => requestAnimationFrame(() => "
    "{ window.gridmapReady = true; }));</script>"
)
TIMING_JS = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {
    ready_ms: window.__benchReadyAt,
    nav: { url: nav.name, response_end: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
           load: nav.loadEventEnd, transfer: nav.transferSize, decoded: nav.decodedBodySize },
    resources: performance.getEntriesByType("resource").map((e) => [
      e.name, e.initiatorType, e.transferSize, e.decodedBodySize, e.startTime, e.responseEnd]),
    elements: document.getElementsByTagName("*").length,
  };
}
"""
WALL_PROBE = """
() => ({
  cases: gridmapWall.featureCount("cases"),
  whistles: gridmapWall.featureCount("whistles"),
  workers: gridmapWall.featureCount("workers"),
  clusters: document.querySelectorAll(".marker-cluster").length,
})
"""
PEER_PROBE = """
(cluster) => ({
  markers: window[cluster].getLayers().length,
  clusters: document.querySelectorAll(".marker-cluster").length,
})
"""


# ---- the database ---------------------------------------------------------------------------
@contextlib.contextmanager
def screen_database(
    args: argparse.Namespace, log: Callable[[str], None]
) -> Iterator[dict[str, Any]]:
    """A private embedded cluster in var/bench/screen-pg with the demo district and ``days`` of
    demo activity (see the module docstring). Yields its URL, versions, the district
    commander's token and what was loaded. Destroyed on the way out."""
    from app.db.engine import make_engine
    from app.services import demo_activity, demo_patrols, demo_whistles, identity, incidents
    from app.services import whistles as whistle_service
    from app.services.catalog import DEFAULT_CATALOG
    from app.services.locate import LocateService

    with demo_cluster(PG_DIR, log) as demo:
        engine, version, url = demo.engine, demo.version, demo.url
        took: dict[str, float] = {}
        incidents.load_classes(engine, DEFAULT_CATALOG)
        whistle_service.load_into(engine)
        gridworkers = identity.demo_gridworkers(engine)
        identity.load_departments(engine, DEPARTMENTS)
        identity.demo_users(engine)
        token = identity.create_token(engine, COMMANDER)
        locator = LocateService(engine, metric_crs="EPSG:4548")
        locator.refresh()
        try:
            log(f"loading {args.days} days of demo cases (demo_activity.load) …")
            started = time.perf_counter()
            cases = demo_activity.load(engine, days=args.days)
            took["cases_s"] = time.perf_counter() - started
            log(f"{cases:,} cases in {took['cases_s']:.0f} s; demo whistles "
                f"(demo_whistles.load, count {args.whistles}) …")  # fmt: skip
            started = time.perf_counter()
            blown = demo_whistles.load(engine, locator, count=args.whistles, days=args.days)
            took["whistles_s"] = time.perf_counter() - started
            log(f"{blown} whistles in {took['whistles_s']:.0f} s")
        finally:
            locator.stop()
        log("VACUUM ANALYZE …")
        started = time.perf_counter()
        # What autovacuum does in the minutes after a bulk load, done now so that it neither
        # runs beside the timed renders nor leaves the planner without statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        took["vacuum_analyze_s"] = time.perf_counter() - started
        info = demo.versions()
        with engine.connect() as conn:
            counts = conn.execute(
                text("SELECT count(*) AS cases, count(*) FILTER (WHERE status = ANY(:open)) "
                     "AS open, min(reported_at) AS first, max(reported_at) AS last, "
                     "(SELECT count(*) FROM whistle) AS whistles, (SELECT count(*) FROM "
                     "region WHERE version_id = :v AND level = 'grid') AS grids "
                     "FROM incident"), {"open": list(incidents.OPEN), "v": version.id},
            ).one()._asdict()  # fmt: skip
        engine.dispose()  # the benchmark opens its own connections

        def live() -> int:
            """One round of every gridworker's fix, now (the wall shows the last 10 minutes)."""
            engine = make_engine(url)
            locator = LocateService(engine, metric_crs="EPSG:4548")
            try:
                locator.refresh()
                return demo_patrols.live(engine, locator, steps=1, interval_s=1, always_on=True)
            finally:
                locator.stop()
                engine.dispose()

        yield {
            "url": url,
            "postmaster": demo.postmaster,
            "versions": info,
            "token": token,
            "gridworkers": gridworkers,
            "counts": counts,
            "load_s": took,
            "live": live,
        }


# ---- the peer: a naive folium page ----------------------------------------------------------
def build_peer(url: str, out: str, limit: int | None, meta: str) -> None:
    """Child process: the naive page — boundaries and every case as a clustered marker with a
    popup — written to ``out``; its phases' times and sizes to ``meta`` (JSON)."""
    import folium
    import geopandas as gpd
    from folium.plugins import MarkerCluster
    from sqlalchemy import create_engine

    from app.web.assets import localize

    phases: dict[str, float] = {}
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.connect() as conn:
        regions = gpd.read_postgis(
            "SELECT r.code, r.name, r.level, r.geom FROM region r JOIN boundary_version v "
            "ON v.id = r.version_id AND v.is_active ORDER BY r.code", conn, geom_col="geom",
        )  # fmt: skip
        cases = gpd.read_postgis(
            "SELECT id, class_code, status, reported_at, grid_code, geom FROM incident "
            "ORDER BY id" + (f" LIMIT {int(limit)}" if limit else ""), conn, geom_col="geom",
        )  # fmt: skip
    engine.dispose()
    phases["read_postgis_s"] = time.perf_counter() - started

    started = time.perf_counter()
    m = folium.Map(tiles=None, control_scale=True, maxZoom=19)  # MarkerCluster needs a maxZoom
    for level in ("district", "street", "community", "grid"):
        layer = regions[regions.level == level]
        if len(layer):
            folium.GeoJson(
                layer, name=level, tooltip=folium.GeoJsonTooltip(["code", "name"]),
                style_function=lambda _f: {"color": "#3388ff", "weight": 1, "fillOpacity": 0.05},
            ).add_to(m)  # fmt: skip
    cluster = MarkerCluster(name="cases").add_to(m)
    for row in cases.itertuples(index=False):
        popup = (
            f"<b>Case #{row.id}</b><br>class {row.class_code}<br>status {row.status}<br>"
            f"reported {row.reported_at:%Y-%m-%d %H:%M}<br>grid {row.grid_code}"
        )
        folium.Marker([row.geom.y, row.geom.x], popup=popup).add_to(cluster)
    folium.LayerControl().add_to(m)
    xmin, ymin, xmax, ymax = regions.total_bounds
    m.fit_bounds([[ymin, xmin], [ymax, xmax]])
    phases["folium_objects_s"] = time.perf_counter() - started

    started = time.perf_counter()
    localize(m.get_root())
    html = m.get_root().render()
    head, sep, tail = html.rpartition("</html>")
    html = head + PEER_READY + sep + tail
    phases["render_s"] = time.perf_counter() - started
    started = time.perf_counter()
    Path(out).write_text(html, encoding="utf-8")
    phases["write_s"] = time.perf_counter() - started
    Path(meta).write_text(json.dumps({
        "phases": phases, "cases": len(cases), "regions": len(regions),
        "cluster": cluster.get_name(), "folium": folium.__version__,
    }))  # fmt: skip


def peer_page(db: dict[str, Any], www: Path, limit: int | None) -> dict[str, Any]:
    """Build the peer's page in a child process (its ~17 KB of Python objects per marker are
    freed with it) and return what it reports."""
    meta = www / "peer-meta.json"
    context = multiprocessing.get_context("spawn")
    proc = context.Process(target=build_peer, name="bench-screen-peer",
                           args=(db["url"], str(www / "peer.html"), limit, str(meta)))  # fmt: skip
    started = time.perf_counter()
    proc.start()
    try:
        proc.join()
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if proc.exitcode != 0 or not meta.exists():
        raise RuntimeError(f"building the peer's page failed (exit code {proc.exitcode})")
    out = json.loads(meta.read_text())
    out["wall_s"] = time.perf_counter() - started
    return out


@contextlib.contextmanager
def static_server(directory: Path, log_file: Path) -> Iterator[str]:
    """``python -m http.server`` on a free loopback port serving ``directory``; its base URL."""
    import httpx2 as httpx

    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
           "--directory", str(directory)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with log_file.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"http.server exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/static/wall.css", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("http.server did not answer in 30 s")
            time.sleep(0.1)
        yield base
    finally:
        stop_process(proc)


# ---- the pages ------------------------------------------------------------------------------
def fetch_screen(base: str, token: str, times: int) -> dict[str, Any]:
    """GET /screen ``times`` + 1 times (the first cold); the body and the server's times."""
    import httpx2 as httpx

    took: list[float] = []
    with httpx.Client(base_url=base, timeout=120,
                      headers={"Authorization": f"Bearer {token}"}) as client:  # fmt: skip
        for _ in range(times + 1):
            started = time.perf_counter()
            response = client.get("/screen")
            took.append(time.perf_counter() - started)
            if response.status_code != 200:
                raise RuntimeError(f"/screen answered {response.status_code}: "
                                   f"{response.text[:300]}")  # fmt: skip
            body = response.content
    return {"html": body, "cold_s": took[0], "warm_s": statistics.median(took[1:]),
            "warm_runs_s": took[1:]}  # fmt: skip


def _kind(url: str, initiator: str) -> str:
    path = urlsplit(url).path
    if path.startswith("/tiles/") or path.endswith(".pbf"):
        return "pbf"
    if path.startswith("/api/"):
        return "json"
    if path.endswith(".js"):
        return "js"
    if path.endswith(".css"):
        return "css"
    if initiator == "navigation" or path.endswith(".html"):
        return "html"
    return "other"


def render_once(
    browser: Any,
    url: str,
    *,
    headers: dict[str, str],
    timeout_s: float,
    probe: str,
    probe_arg: Any = None,
    shot: Path | None = None,
) -> dict[str, Any]:
    """One fresh context: goto, wait for the ready flag, then what the page loaded and holds."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    own = urlsplit(url).netloc
    context = browser.new_context(viewport=VIEWPORT, extra_http_headers=headers)
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    seen: list[str] = []
    errors: list[str] = []
    bad: list[str] = []
    crashed: list[bool] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: bad.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: bad.append(f"failed ({r.failure}) {r.url}"))
    page.on("crash", lambda _p: crashed.append(True))
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    out: dict[str, Any] = {"outcome": "ready", "timeout_s": timeout_s}
    started = time.perf_counter()
    try:
        page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
        left = max(1.0, timeout_s - (time.perf_counter() - started))
        page.wait_for_function("window.gridmapReady === true", polling=50, timeout=left * 1000)
        out["seen_s"] = time.perf_counter() - started
        timing = page.evaluate(TIMING_JS)
        out["probe"] = page.evaluate(probe, probe_arg)
        cdp.send("HeapProfiler.collectGarbage")
        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        if shot is not None:
            page.screenshot(path=str(shot))
        kinds: dict[str, list[int]] = {k: [0, 0] for k in KINDS}
        nav = timing["nav"]
        kinds["html"] = [1, int(nav["decoded"])]
        api: list[list[Any]] = []
        for name, initiator, _transfer, decoded, start, end in timing["resources"]:
            kind = _kind(name, initiator)
            kinds[kind][0] += 1
            kinds[kind][1] += int(decoded)
            if kind == "json":
                api.append([urlsplit(name).path, round(start / 1000, 3), round(end / 1000, 3)])
        first: dict[str, float] = {}
        for path, _start, end in sorted(api, key=lambda a: a[1]):
            first.setdefault(path, end)
        out.update(
            ready_s=timing["ready_ms"] / 1000, html_s=nav["response_end"] / 1000,
            dcl_s=nav["dcl"] / 1000, load_s=nav["load"] / 1000, kinds=kinds, api=api,
            data_s=max(first.values()) if first else None,
            elements=timing["elements"], heap_bytes=metrics.get("JSHeapUsedSize"),
            heap_total_bytes=metrics.get("JSHeapTotalSize"), nodes=metrics.get("Nodes"),
            layouts=metrics.get("LayoutCount"), script_s=metrics.get("ScriptDuration"),
        )  # fmt: skip
    except PlaywrightTimeout:
        out["outcome"] = "timeout"
        out["after_s"] = time.perf_counter() - started
    except PlaywrightError as exc:
        out["outcome"] = "crashed" if crashed else "error"
        out["error"] = str(exc).splitlines()[0][:300]
        out["after_s"] = time.perf_counter() - started
    finally:
        with contextlib.suppress(PlaywrightError):
            context.close()
    out["requests"] = len(seen)
    out["foreign"] = [u for u in seen if urlsplit(u).scheme not in ("data", "blob", "about")
                      and urlsplit(u).netloc != own]  # fmt: skip
    out["console_errors"] = errors
    out["bad_responses"] = bad
    return out


def render_runs(
    args: argparse.Namespace,
    db: dict[str, Any],
    wall_url: str,
    peer_url: str,
    peer: dict[str, Any],
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """``--repeat`` runs of each page, interleaved (the peer stops after one that fails)."""
    from playwright.sync_api import sync_playwright

    walls: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    roots = [os.getpid(), db["postmaster"]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        version = browser.version
        try:
            for k in range(args.repeat):
                fixes = db["live"]()  # positions of the last 10 minutes, outside the timing
                log(f"run {k + 1}/{args.repeat}: gridmap /screen ({fixes:,} live fixes stored "
                    "just before) …")  # fmt: skip
                walls.append(measured(roots, lambda k=k: render_once(
                    browser, wall_url, headers={"Authorization": f"Bearer {db['token']}"},
                    timeout_s=WALL_TIMEOUT_S, probe=WALL_PROBE,
                    shot=WORK / "gridmap.png" if k == 0 else None,
                )))  # fmt: skip
                log(f"  {_outcome(walls[-1])}")
                if peers and peers[-1]["outcome"] != "ready":
                    continue
                log(f"run {k + 1}/{args.repeat}: peer folium page ({peer['cases']:,} markers, "
                    f"timeout {args.peer_timeout:g} s) …")  # fmt: skip
                peers.append(measured(roots, lambda k=k: render_once(
                    browser, peer_url, headers={}, timeout_s=args.peer_timeout,
                    probe=PEER_PROBE, probe_arg=peer["cluster"],
                    shot=WORK / "peer.png" if k == 0 else None,
                )))  # fmt: skip
                log(f"  {_outcome(peers[-1])}")
        finally:
            browser.close()
    return walls, peers, version


def tree_cpu_seconds(roots: list[int]) -> float:
    """User + system CPU time of the processes under ``roots`` (them included), with the time of
    the children they have waited for: this benchmark's own share of the machine (itself, the
    servers, Playwright's driver and Chromium, PostgreSQL)."""
    stats = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        fields = stats.get(pid)
        if pid in seen or fields is None:
            continue
        seen.add(pid)
        total += sum(int(v) for v in fields[11:15])
        todo += children.get(pid, [])
    return total / _TICK


def measured(roots: list[int], fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``'s result with how busy the machine's CPUs were meanwhile, and how much of that
    was other processes than this benchmark's."""
    before = (time.perf_counter(), machine_busy_seconds(), tree_cpu_seconds(roots))
    out = fn()
    wall = time.perf_counter() - before[0]
    busy = machine_busy_seconds() - before[1]
    mine = tree_cpu_seconds(roots) - before[2]
    out.update(wall_s=wall, busy_share=busy / (wall * nproc()),
               other_share=max(0.0, busy - mine) / (wall * nproc()))  # fmt: skip
    return out


def _outcome(r: dict[str, Any]) -> str:
    busy = (f"; the machine's CPUs busy {r['busy_share']:.0%}, other processes "
            f"{r['other_share']:.0%}")  # fmt: skip
    if r["outcome"] == "ready":
        return (f"ready after {r['ready_s']:.2f} s (seen by the driver after {r['seen_s']:.2f} s)"
                + busy)  # fmt: skip
    return f"{r['outcome']} after {r['after_s']:.1f} s {r.get('error', '')}".rstrip() + busy


# ---- the table ------------------------------------------------------------------------------
def _b(n: float) -> str:
    return f"{n:,.0f} B"


def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:,.1f}x" if a and b else "n/a"


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the runs that got ready (and the first such run's bytes by kind)."""
    ok = [r for r in runs if r["outcome"] == "ready"]
    if not ok:
        return {"ready_runs": 0, "runs": len(runs)}
    keys = ("ready_s", "seen_s", "html_s", "dcl_s", "load_s", "heap_bytes", "nodes", "elements")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in ok) for k in keys}
    data = [r["data_s"] for r in ok if r.get("data_s") is not None]
    out["data_s"] = statistics.median(data) if data else None
    out["other_share"] = [round(r["other_share"], 3) for r in runs]
    out.update(ready_runs=len(ok), runs=len(runs), min_s=min(r["ready_s"] for r in ok),
               max_s=max(r["ready_s"] for r in ok), kinds=ok[0]["kinds"],
               total_bytes=sum(v[1] for v in ok[0]["kinds"].values()),
               total_requests=sum(v[0] for v in ok[0]["kinds"].values()),
               probe=ok[0]["probe"])  # fmt: skip
    return out


def _kinds_line(label: str, s: dict[str, Any]) -> str:
    if not s.get("ready_runs"):
        return f"  {label}  (never ready: nothing counted)"
    parts = [f"{KIND_NAMES[k]} {n} / {_mb(b)}" for k, (n, b) in s["kinds"].items()]
    return (f"  {label}  {', '.join(parts)}; total {s['total_requests']} requests, "
            f"{_mb(s['total_bytes'])} ({_b(s['total_bytes'])})")  # fmt: skip


def _render_line(label: str, s: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    if not s.get("ready_runs"):
        r = runs[0]
        what = {"timeout": f"did not finish within the timeout ({r['timeout_s']:g} s)",
                "crashed": "the page crashed",
                "error": f"failed ({r.get('error')})"}[r["outcome"]]  # fmt: skip
        return (f"  {label}  {what}: not ready after {r['after_s']:.1f} s (run 1 of "
                f"{len(runs)}; not run again)")  # fmt: skip
    times = " ".join(f"{r['ready_s']:.2f}" if r["outcome"] == "ready" else r["outcome"]
                     for r in runs)  # fmt: skip
    data = "" if s["data_s"] is None else f", the last API's first answer {s['data_s']:.2f} s"
    return (
        f"  {label}  median {s['ready_s']:7.2f} s (min {s['min_s']:.2f}, max {s['max_s']:.2f}, "
        f"{s['ready_runs']} of {s['runs']} ready)   HTML received {s['html_s']:.2f} s, "
        f"DOMContentLoaded {s['dcl_s']:.2f} s, load {s['load_s']:.2f} s{data}   JS heap after GC "
        f"{s['heap_bytes'] / 2**20:,.1f} MiB, {s['elements']:,.0f} elements in the document, "
        f"{s['nodes']:,.0f} DOM nodes (CDP, detached included)   runs (s) {times}, other "
        f"processes' share of the CPUs {' '.join(f'{v:.0%}' for v in s['other_share'])}"
    )


def lines_for(figures: dict[str, Any]) -> tuple[list[str], list[str]]:
    out: list[str] = []
    failures: list[str] = []
    page, peer = figures["page"], figures["peer"]
    wall_s, peer_s = figures["render"]["gridmap"], figures["render"]["peer"]
    walls, peers = figures["render"]["gridmap_runs"], figures["render"]["peer_runs"]
    ph = peer["phases"]
    out.append("page — the HTML as served (no compression on the wire; gzip -6 for reference)")
    out.append(
        f"  gridmap  GET /screen                  {_b(page['html_bytes']):>15}   gzip "
        f"{_b(page['gzip_bytes']):>12}   made by the server in {page['warm_s'] * 1000:,.0f} ms "
        f"(median of {len(page['warm_runs_s'])}; first, cold {page['cold_s'] * 1000:,.0f} ms)"
    )
    out.append(
        f"  peer     folium MarkerCluster page    {_b(peer['html_bytes']):>15}   gzip "
        f"{_b(peer['gzip_bytes']):>12}   built in {sum(ph.values()):,.1f} s (read_postgis "
        f"{ph['read_postgis_s']:.1f} s, folium objects {ph['folium_objects_s']:.1f} s, "
        f"localize + render {ph['render_s']:.1f} s, write {ph['write_s']:.1f} s), "
        f"{peer['cases']:,} markers"
    )
    out.append(
        f"  ratio peer / gridmap: HTML {_ratio(peer['html_bytes'], page['html_bytes'])}, gzip "
        f"{_ratio(peer['gzip_bytes'], page['gzip_bytes'])}, time to make it "
        f"{_ratio(sum(ph.values()), page['warm_s'])}"
    )
    out.append("loaded until ready (Resource Timing, decoded bytes; requests / bytes by kind)")
    out.append(_kinds_line("gridmap", wall_s))
    out.append(_kinds_line("peer   ", peer_s))
    if wall_s.get("ready_runs") and peer_s.get("ready_runs"):
        out.append(f"  ratio peer / gridmap: bytes loaded "
                   f"{_ratio(peer_s['total_bytes'], wall_s['total_bytes'])}")  # fmt: skip
    out.append(
        "render — headless Chromium, page.goto → window.gridmapReady === true (performance.now() "
        "when the flag is set, from the navigation's start); a fresh context per run, the two "
        f"pages interleaved; load average {figures['render']['load_before']:.2f} before the first"
    )
    out.append(_render_line("gridmap", wall_s, walls))
    out.append(_render_line("peer   ", peer_s, peers))
    if wall_s.get("ready_runs") and peer_s.get("ready_runs"):
        out.append(
            f"  ratio peer / gridmap: render {_ratio(peer_s['ready_s'], wall_s['ready_s'])}, JS "
            f"heap {_ratio(peer_s['heap_bytes'], wall_s['heap_bytes'])}, elements "
            f"{_ratio(peer_s['elements'], wall_s['elements'])}, DOM nodes "
            f"{_ratio(peer_s['nodes'], wall_s['nodes'])}"
        )
    elif wall_s.get("ready_runs") and peers:
        after = peers[0].get("after_s", 0)
        out.append(f"  ratio peer / gridmap: render > {after / wall_s['ready_s']:,.0f}x (the peer "
                   f"was not ready after {after:.0f} s)")  # fmt: skip
    # checks
    counts = figures["data"]
    size_ok = page["html_bytes"] < TARGET_HTML_BYTES
    out.append(
        f"check: /screen HTML {_b(page['html_bytes'])} with {counts['cases']:,} cases in the "
        f"database — target < 2 MB ({TARGET_HTML_BYTES:,} B): {'met' if size_ok else 'MISSED'}"
        + ("" if figures["options"]["days"] == "365" else " (the issue's figure is for a year)")
    )
    if not size_ok:
        failures.append(f"/screen HTML {page['html_bytes']:,} B >= {TARGET_HTML_BYTES:,} B")
    for label, runs in (("gridmap", walls), ("peer", peers)):
        foreign = sum(len(r["foreign"]) for r in runs)
        errors = sum(len(r["console_errors"]) for r in runs)
        bad = sum(len(r["bad_responses"]) for r in runs)
        out.append(
            f"check: {label}: requests to any host but its own server {foreign} (of "
            f"{sum(r['requests'] for r in runs):,} in {len(runs)} runs), console errors "
            f"{errors}, answers >= 400 or failed {bad}"
        )
        shown = {u for r in runs for u in r["foreign"] + r["console_errors"] + r["bad_responses"]}
        out += [f"    {u[:200]}" for u in sorted(shown)[:8]]
        if foreign:
            failures.append(f"{label}: {foreign} requests to another host")
        if errors or bad:
            failures.append(f"{label}: {errors} console errors, {bad} bad answers")
    if wall_s.get("ready_runs"):
        pr = wall_s["probe"]
        shown_ok = pr["cases"] > 0 and pr["whistles"] > 0 and pr["workers"] >= 0.9 * counts[
            "gridworkers"]  # fmt: skip
        out.append(
            f"check: gridmap at ready: {pr['cases']:,} cases on the live layer (the newest open "
            f"ones; {counts['open']:,} open in the database), {pr['whistles']:,} whistle "
            f"features, {pr['workers']:,} gridworkers of {counts['gridworkers']:,}, "
            f"{pr['clusters']:,} clusters drawn: {'ok' if shown_ok else 'MISSING LAYERS'}"
        )
        if not shown_ok:
            failures.append("gridmap: a layer is empty at ready")
    if len(walls) > wall_s.get("ready_runs", 0):
        failures.append(f"gridmap: {len(walls) - wall_s.get('ready_runs', 0)} runs not ready "
                        f"within {WALL_TIMEOUT_S:.0f} s")  # fmt: skip
    if peer_s.get("ready_runs"):
        pr = peer_s["probe"]
        ok = pr["markers"] == peer["cases"]
        out.append(f"check: peer at ready: {pr['markers']:,} markers in the cluster of "
                   f"{peer['cases']:,} given, {pr['clusters']:,} clusters drawn: "
                   f"{'ok' if ok else 'MISSING MARKERS'}")  # fmt: skip
        if not ok:
            failures.append("peer: markers missing from the cluster")
    return out, failures


# ---- main -----------------------------------------------------------------------------------
def run(args: argparse.Namespace, log: Callable[[str], None]) -> int:
    figures: dict[str, Any] = {
        "benchmark": "screen",
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": nproc(),
        "python": platform.python_version(),
        "commit": _commit(),
        "options": {k: str(v) for k, v in vars(args).items()},
        "targets": {"html_bytes": TARGET_HTML_BYTES},
    }
    out: list[str] = []
    failures: list[str] = []

    def emit(lines: list[str]) -> None:
        print("\n".join(lines), flush=True)
        out.extend(lines)

    if not Path(CHROMIUM).exists():
        emit([f"error: Chromium not found at {CHROMIUM} (apt-get install chromium)"])
        return finish(figures, out, ["no Chromium"], args.results, emit, log)
    WORK.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    www = Path(tempfile.mkdtemp(prefix="gridmap-screen-peer-"))
    try:
        with screen_database(args, log) as db:
            counts = {**db["counts"], "gridworkers": db["gridworkers"]}
            figures.update(server=db["versions"], data=counts, load_s=db["load_s"])
            (www / "static").symlink_to(STATIC_DIR, target_is_directory=True)
            (www / "favicon.ico").symlink_to(STATIC_DIR / "favicon.svg")  # as the app serves it
            limit = args.peer_cases or None
            log(f"building the peer's page: folium, {min(limit or 10**9, counts['cases']):,} "
                "markers with popups, in a child process …")  # fmt: skip
            peer = peer_page(db, www, limit)
            html = (www / "peer.html").read_bytes()
            peer.update(html_bytes=len(html), gzip_bytes=len(gzip.compress(html, 6)))
            del html
            figures["peer"] = peer
            log(f"peer page: {peer['html_bytes']:,} B in {peer['wall_s']:.0f} s")
            env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDMAP_")}
            env.update(
                GRIDMAP_DATABASE_URL=db["url"], GRIDMAP_VAR_DIR=str(WORK / "var"),
                GRIDMAP_SUPERVISION_INTERVAL_S="0", GRIDMAP_DEMO_PATROLS="false",
                PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get(
                    "PYTHONPATH")])]),
            )  # fmt: skip
            try:
                with contextlib.ExitStack() as stack:
                    log("starting uvicorn: app.main:create_app, and http.server for the peer …")
                    base, _pid = stack.enter_context(
                        uvicorn_server("app.main:create_app", ROOT, env, WORK / "app.log")
                    )
                    peer_base = stack.enter_context(static_server(www, WORK / "peer-http.log"))
                    got = fetch_screen(base, db["token"], 3)
                    body = got.pop("html")
                    figures["page"] = {**got, "html_bytes": len(body),
                                       "gzip_bytes": len(gzip.compress(body, 6))}  # fmt: skip
                    (WORK / "screen.html").write_bytes(body)
                    emit([
                        f"screen bench — nproc {nproc()}, {dt.date.today().isoformat()}, commit "
                        f"{figures['commit']}; PostgreSQL {db['versions']['postgres']} / PostGIS "
                        f"{db['versions']['postgis']} (fsync off); demo district "
                        f"({counts['grids']:,} grids, {counts['gridworkers']:,} gridworkers), "
                        f"{args.days} days of demo activity: {counts['cases']:,} cases "
                        f"({counts['open']:,} open), {counts['whistles']:,} whistles, every "
                        f"gridworker's live fix; gridmap under uvicorn {UVICORN_OPTIONS}, as "
                        f"{COMMANDER} (bearer token); peer folium {peer['folium']} served by "
                        f"python -m http.server; {args.repeat} runs each; load average "
                        f"{load_start:.2f} at the start"
                    ])  # fmt: skip
                    load_before = os.getloadavg()[0]
                    walls, peers, version = render_runs(
                        args, db, f"{base}/screen", f"{peer_base}/peer.html", peer, log
                    )
                    figures["chromium"] = version
                    figures["render"] = {
                        "gridmap": summary(walls), "peer": summary(peers),
                        "gridmap_runs": walls, "peer_runs": peers, "load_before": load_before,
                    }  # fmt: skip
            except RuntimeError as exc:  # a server that fails to start or answers wrongly
                emit([f"error: {exc}"])
                failures.append("error")
    finally:
        shutil.rmtree(www, ignore_errors=True)
    if "render" in figures:
        emit([f"Chromium {figures['chromium']} headless ({CHROMIUM}), {VIEWPORT['width']}×"
              f"{VIEWPORT['height']}; screenshots of the first runs in "
              f"{WORK.relative_to(ROOT)}/"])  # fmt: skip
        lines, more = lines_for(figures)
        emit(lines)
        failures += more
    return finish(figures, out, failures, args.results, emit, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=None,
                        help="days of demo activity (default 365; 30 with --quick)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs of each page (default 5; 3 with --quick)")  # fmt: skip
    parser.add_argument("--peer-cases", type=int, default=0,
                        help="cap the peer's markers (default 0: every case)")  # fmt: skip
    parser.add_argument("--peer-timeout", type=float, default=180.0,
                        help="seconds the peer's page may take to get ready")  # fmt: skip
    parser.add_argument("--whistles", type=int, default=None,
                        help="demo whistles (default 90 a year, at least 12)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="30 days of activity, 3 runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    if args.days is None:
        args.days = 30 if args.quick else 365
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.whistles is None:
        args.whistles = max(12, round(90 * args.days / 365))
    if min(args.days, args.repeat, args.whistles) < 1 or args.peer_cases < 0:
        parser.error("--days, --repeat, --whistles >= 1; --peer-cases >= 0")
    if args.peer_timeout <= 0:
        parser.error("--peer-timeout must be positive")
    return run_logged(lambda log: run(args, log))


if __name__ == "__main__":
    sys.exit(main())
