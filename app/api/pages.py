"""HTML pages: the landing page and a region's preview map (folium, assets served locally)."""

from __future__ import annotations

import html
from typing import Annotated, Any, Literal

from branca.element import Element
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import text

from app.api.auth import CurrentUser
from app.api.deps import Conn, ScopeDep, get_settings
from app.api.problems import not_found, problem_responses
from app.services import regions as service
from app.settings import Settings
from app.web.assets import localize
from app.web.i18n import labels
from gis.codes import LEVELS, level_rank
from gis.maps import region_map

router = APIRouter(tags=["pages"], responses=problem_responses(404, 422))
Lang = Annotated[Literal["zh", "en"], Query(description="Label language")]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(conn: Conn, request: Request, principal: CurrentUser, lang: Lang = "zh") -> HTMLResponse:
    t = labels(lang)
    districts = conn.execute(
        text(
            "SELECT r.code, r.name FROM region r JOIN boundary_version v ON v.id = r.version_id "
            "WHERE v.is_active AND r.level = 'district' ORDER BY r.code LIMIT 50"
        )
    ).all()
    items = "".join(
        f'<li><a href="/regions/{html.escape(d.code)}/map?lang={lang}">'
        f"{html.escape(d.name or d.code)} ({html.escape(d.code)})</a></li>"
        for d in districts
    )
    links = [(url, t[key]) for url, key, action in (("/screen", "home_wall", "screen:view"),
             ("/planner", "home_planner", "analytics:read")) if principal.can(action)]  # fmt: skip
    pages = "".join(f'<li><a href="{url}?lang={lang}">{label}</a></li>' for url, label in links)
    pages = f"<h2>{t['home_pages']}</h2><ul>{pages}</ul>" if pages else ""
    body = f"""<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<title>gridmap</title><meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{background:#0b1320;color:#e0e6ea;font:18px/1.6 system-ui,sans-serif;margin:2em}}
a{{color:#4fc3f7}}</style></head><body><h1>gridmap · {t["home_title"]}</h1>
<form method="post" action="/logout" style="float:right">{t["logged_in_as"]}:
{html.escape(principal.display_name or principal.name)} ({html.escape(principal.role)})
<button type="submit">{t["logout"]}</button></form>
{pages}<h2>{t["region_map"]}</h2><ul>{items or "<li>—</li>"}</ul>
<p><a href="/docs">{t["api_docs"]}</a> · <a href="/api/v1/regions?level=street">/api/v1/regions</a>
· <a href="/api/v1/boundary-versions">/api/v1/boundary-versions</a> · <a href="/health">/health</a>
· <a href="?lang={"en" if lang == "zh" else "zh"}">{"English" if lang == "zh" else "中文"}</a></p>
</body></html>"""
    return HTMLResponse(body)


@router.get(
    "/regions/{code}/map",
    response_class=HTMLResponse,
)
def region_map_page(
    code: Annotated[str, Path(max_length=32, examples=["120106"])],
    conn: Conn,
    scope: ScopeDep,
    settings: Annotated[Settings, Depends(get_settings)],
    lang: Lang = "zh",
) -> HTMLResponse:
    """A preview map of one region and its children (or, for a grid, its neighbours).

    Every script, style and font is served by this app; the basemap is GRIDMAP_TILE_URL or none.
    """
    t = labels(lang)
    region = service.feature(conn, scope, code, metric_srid=settings.metric_srid)
    if region is None:
        raise not_found(f"no region {code} in boundary version {scope.version.id}")
    props = region["properties"]
    level = props["level"]
    layers: list[tuple[str, str, list[dict[str, Any]]]] = []
    if level != LEVELS[-1]:
        child_level = LEVELS[level_rank(level) + 1]
        kids = service.features_where(
            conn, scope, "r.parent_code = :p", {"p": code}, metric_srid=settings.metric_srid
        )
        layers.append((child_level, t[child_level], kids))
    elif props["parent_code"]:
        siblings = service.features_where(
            conn, scope, "r.parent_code = :p AND r.code <> :c",
            {"p": props["parent_code"], "c": code}, metric_srid=settings.metric_srid,
        )  # fmt: skip
        layers.append((level, t["siblings"], siblings))
    m = region_map(
        region, layers, labels=t, tiles=settings.tile_url, attribution=settings.tile_attribution
    )
    figure = m.get_root()
    figure.title = f"{props['name'] or code} · gridmap"
    figure.html.add_child(_info_panel(props, scope.version.label, t))
    localize(figure)
    return HTMLResponse(figure.render())


def _info_panel(props: dict[str, Any], version: str, t: dict[str, str]) -> Element:
    def fmt(value: Any) -> str:
        return f"{value:,}" if isinstance(value, int) else "—"

    rows = [
        (t["code"], html.escape(props["code"])),
        (t["population"], fmt(props["population"])),
        (t["households"], fmt(props["households"])),
        (t["area"], f"{props['area_m2'] / 1e6:,.3f} km²"),
        (t["boundary_version"], html.escape(version)),
    ]
    cells = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return Element(
        '<div id="region-info" style="position:fixed;top:12px;left:60px;z-index:1000;'
        "background:rgba(11,19,32,.85);color:#e0e6ea;padding:10px 16px;border-radius:6px;"
        'font:16px/1.4 system-ui,sans-serif;border:1px solid #4fc3f7">'
        f'<div style="font-size:22px;font-weight:600">{html.escape(props["name"] or "")}</div>'
        f'<table style="border-spacing:10px 2px">{cells}</table></div>'
    )
