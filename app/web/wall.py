"""The command wall (/screen): one folium page, every layer, dark, offline.

The page embeds only what is bounded by the region: its boundaries (four levels, the grids
carrying their codes for the choropleth) and the week's heat (cases counted per ~100 m cell).
Everything that changes or grows — cases, whistles, gridworkers' positions, the headline
figures, the grid figures, today's tracks — is fetched by the page from the API (folium's
Realtime plugin, Leaflet.VectorGrid for tiles) and refreshed without reloading. The wiring
between folium's generated layers and that refreshing lives in ``static/wall.js``, which this
module hands the layers' JavaScript names in one JSON config.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import folium
from branca.element import Element, JavascriptLink
from folium.plugins import (
    Fullscreen,
    GroupedLayerControl,
    MarkerCluster,
    Realtime,
    VectorGridProtobuf,
)
from folium.utilities import JsCode

from app.services import incidents
from app.web.assets import STATIC_URL, localize
from gis.maps import DARK_BACKGROUND, add_labels, boundary_layer, bounds_of, heat_layer

ZONE = ZoneInfo("Asia/Shanghai")
LEVELS = ("district", "street", "community", "grid")
# Refresh periods (ms): positions move every fix (15 s), cases and whistles change by the minute.
LIVE_MS = 10_000
CASES_MS = 30_000
WHISTLES_MS = 60_000
FIGURES_MS = 30_000
CASE_LIMIT = 5_000  # the newest open cases drawn as markers (the demo year leaves ~3,400)
MONTH_DAYS = 30  # the cases layer served as tiles: no bound on their number
HOTSPOT_DAYS = 7  # the hot-spot overlay: the last 7 Beijing days, today included
# Leaflet.VectorGrid options (JavaScript: the styles are functions of the features).
_TRACK_OPTIONS = (
    "{rendererFactory: L.canvas.tile, interactive: false, maxNativeZoom: 18, "
    "vectorTileLayerStyles: {tracks: {color: '#69f0ae', weight: 2, opacity: 0.55}}}"
)
_CASE_TILE_OPTIONS = (
    "{rendererFactory: L.canvas.tile, interactive: false, maxNativeZoom: 18, "
    "vectorTileLayerStyles: {incidents: gridmapWall.caseTileStyle}}"
)
METRICS = ("reports_today", "open_cases", "hotspot_z", "anomaly_z")
# The zoom from which each level's names are written (fewer, larger names further out).
LABEL_ZOOM = {"district": 0, "street": 12, "community": 15, "grid": 17}


def _round(coords: Any) -> Any:
    if coords and isinstance(coords[0], float | int):
        return [round(c, 6) for c in coords]  # ~0.1 m: finer than any boundary is drawn
    return [_round(c) for c in coords]


def slim(feature: Mapping[str, Any]) -> dict[str, Any]:
    """A boundary feature with only what the wall uses, coordinates to 6 decimals (the page
    stays small: a district's 992 grids are ~250 KB)."""
    p = feature["properties"]
    props = {"code": p["code"], "name": p.get("name") or ""}
    if p["level"] != "grid":  # grids carry no written name and are not fitted to
        props.update(label_point=p.get("label_point"), bbox=p.get("bbox"))
    geometry = feature["geometry"]
    return {
        "type": "Feature",
        "geometry": {"type": geometry["type"], "coordinates": _round(geometry["coordinates"])},
        "properties": props,
    }


def build(
    *,
    region: Mapping[str, Any],
    boundaries: Mapping[str, Sequence[Mapping[str, Any]]],
    heat: Sequence[Sequence[float]],
    t: Mapping[str, str],
    lang: str,
    tile_url: str | None,
    tile_attribution: str,
) -> str:
    """The wall's HTML for ``region`` (a feature) with its ``boundaries`` by level."""
    code = region["properties"]["code"]
    m = folium.Map(tiles=None, control_scale=True, zoom_control=False, prefer_canvas=True,
                   maxZoom=19, minZoom=8)  # fmt: skip  # clustering needs a maxZoom
    if tile_url:
        folium.TileLayer(tiles=tile_url, attr=tile_attribution or " ", name=t["basemap"],
                         max_zoom=19).add_to(m)  # fmt: skip
    Fullscreen(position="topright", title=t["fullscreen"], title_cancel=t["exit_fullscreen"],
               force_separate_button=True).add_to(m)  # fmt: skip

    # -- boundaries: one layer per level, names written from a zoom on -------------------------
    levels = [lv for lv in LEVELS if boundaries.get(lv)]
    boundary_layers: dict[str, folium.GeoJson] = {}
    for level in levels:
        features = [slim(f) for f in boundaries[level]]
        layer = boundary_layer(features, level, t[f"{level}_layer"], labels=t)
        if level != "grid":
            add_labels(layer, features, level)
        boundary_layers[level] = layer
        layer.add_to(m)
    grid_layer = boundary_layers.get("grid")

    # -- the grid choropleth: switches that recolour the grid layer ----------------------------
    switches = {}
    for metric in (*METRICS, "none"):  # the first is the one shown (a radio group)
        group = folium.FeatureGroup(name=t[f"metric_{metric}"], show=metric == METRICS[0])
        group.add_to(m)
        switches[metric] = group

    # -- cases: the newest open ones as clustered markers, refreshed; the week's heat ---------
    statuses = list(incidents.OPEN)
    since = (dt.datetime.now(ZONE) - dt.timedelta(days=MONTH_DAYS)).date().isoformat()
    cases_url = "/api/v1/incidents?" + urlencode(
        [("format", "geojson"), ("region", code), ("limit", CASE_LIMIT)]
        + [("status", s) for s in statuses]
    )
    cases_group = folium.FeatureGroup(name=t["layer_cases"], show=True).add_to(m)
    cluster = MarkerCluster(name=t["layer_cases"], control=False,
                            options={"maxClusterRadius": 45, "chunkedLoading": True,
                                     "showCoverageOnHover": False})  # fmt: skip
    cluster.add_to(cases_group)
    cases = Realtime(cases_url, interval=CASES_MS, remove_missing=True, container=cluster,
                     get_feature_id=JsCode("(f) => f.id"),
                     point_to_layer=JsCode("gridmapWall.caseMarker"),
                     on_each_feature=JsCode("gridmapWall.casePopup"))  # fmt: skip
    cases.add_to(cases_group)
    heat_group = folium.FeatureGroup(name=t["layer_heat"], show=False).add_to(m)
    if heat:
        heat_layer(heat, t["layer_heat"]).add_to(heat_group)
    # The last 7 days' Gi* hot and cold spots (FDR-corrected bins), filled by wall.js from the
    # analytics API while shown; the hotspot_z choropleth beside it shows the raw z.
    hotspots_group = folium.FeatureGroup(name=t["layer_hotspots"], show=False).add_to(m)

    # -- whistles: open and lately ended, pulsing when overdue, lines to the check-ins ---------
    whistles_group = folium.FeatureGroup(name=t["layer_whistles"], show=True).add_to(m)
    whistles = Realtime("/api/v1/whistles-map?" + urlencode({"days": 1}), interval=WHISTLES_MS,
                        remove_missing=True, get_feature_id=JsCode("(f) => f.id"),
                        point_to_layer=JsCode("gridmapWall.whistleMarker"),
                        style=JsCode("gridmapWall.whistleStyle"),
                        on_each_feature=JsCode("gridmapWall.whistlePopup"))  # fmt: skip
    whistles.add_to(whistles_group)

    # -- gridworkers: live positions (a fix of the last 10 minutes) ----------------------------
    workers_group = folium.FeatureGroup(name=t["layer_workers"], show=True).add_to(m)
    workers = Realtime("/api/v1/patrols/live", interval=LIVE_MS, remove_missing=True,
                       get_feature_id=JsCode("(f) => f.id"),
                       point_to_layer=JsCode("gridmapWall.workerMarker"),
                       on_each_feature=JsCode("gridmapWall.workerTooltip"))  # fmt: skip
    workers.add_to(workers_group)

    # -- tiles: today's tracks, and a month of cases clustered by the server below zoom 14 ----
    tracks_group = folium.FeatureGroup(name=t["layer_tracks"], show=False).add_to(m)
    tracks = VectorGridProtobuf("/tiles/tracks/{z}/{x}/{y}.pbf", t["layer_tracks"],
                                _TRACK_OPTIONS, control=False)  # fmt: skip
    tracks.add_to(tracks_group)
    month_group = folium.FeatureGroup(name=t["layer_month_cases"], show=False).add_to(m)
    month = VectorGridProtobuf(
        "/tiles/incidents/{z}/{x}/{y}.pbf?" + urlencode({"region": code, "from": since}),
        t["layer_month_cases"], _CASE_TILE_OPTIONS, control=False,
    )  # fmt: skip
    month.add_to(month_group)

    groups = {
        t["group_boundaries"]: [boundary_layers[lv] for lv in levels],
        t["group_activity"]: [
            cases_group,
            heat_group,
            hotspots_group,
            month_group,
            whistles_group,
            workers_group,
            tracks_group,
        ],
    }
    GroupedLayerControl(groups, exclusive_groups=False, collapsed=False,
                        position="topright").add_to(m)  # fmt: skip
    GroupedLayerControl({t["group_choropleth"]: list(switches.values())}, exclusive_groups=True,
                        collapsed=False, position="topright").add_to(m)  # fmt: skip

    bounds = bounds_of([slim(region)])
    if bounds:
        m.fit_bounds(bounds)

    figure = dress(m, f"{region['properties'].get('name') or code} · {t['wall_title']}",
                   "wall", DARK_BACKGROUND)  # fmt: skip
    figure.html.add_child(Element(_panel(region, t, lang)))
    config = {
        "map": m.get_name(),
        "region": code,
        "lang": lang,
        "labels": {k: v for k, v in t.items() if k.startswith(("wall_", "status_", "grade_",
                                                                "metric_", "fig_", "legend_"))},
        "grid_layer": grid_layer.get_name() if grid_layer else None,
        "label_zoom": LABEL_ZOOM,
        "switches": {s.get_name(): metric for metric, s in switches.items()},
        "realtime": {"cases": cases.get_name(), "whistles": whistles.get_name(),
                     "workers": workers.get_name()},
        "tiles": {"tracks": tracks.get_name(), "month_cases": month.get_name()},
        "hotspots": hotspots_group.get_name(),
        "hotspot_days": HOTSPOT_DAYS,
        "urls": {"figures": "/api/v1/screen/figures?" + urlencode({"region": code}),
                 "grid_values": "/api/v1/screen/grid-values?" + urlencode({"region": code}),
                 "hotspots": "/api/v1/analytics/hotspots?" + urlencode({"region": code,
                                                                        "level": "grid"})},
        "figures_ms": FIGURES_MS,
    }  # fmt: skip
    # folium writes the layers' script after this one: start once the document has run it.
    figure.script.add_child(Element(
        "document.addEventListener('DOMContentLoaded', () => "
        f"gridmapWall.start({json.dumps(config)}));"
    ))  # fmt: skip
    localize(figure)
    return figure.render()


def dress(m: folium.Map, title: str, name: str, background: str) -> Any:
    """The page around map ``m``: its title, ``/static/{name}.css`` and ``{name}.js`` and the
    map's background colour; returns the figure to add panels to."""
    figure = m.get_root()
    figure.title = title
    figure.header.add_child(
        Element(
            f'<link rel="stylesheet" href="{STATIC_URL}/{name}.css">'
            f"<style>.leaflet-container {{ background: {background} !important; }}</style>"
        )
    )
    figure.header.add_child(JavascriptLink(f"{STATIC_URL}/{name}.js"))
    return figure


def _panel(region: Mapping[str, Any], t: Mapping[str, str], lang: str) -> str:
    """The headline panel, the clock and the legend (filled and refreshed by wall.js)."""
    name = html.escape(region["properties"].get("name") or region["properties"]["code"])
    figures = "".join(
        f'<div class="wall-figure"><div class="wall-value" id="fig-{key}">—</div>'
        f'<div class="wall-caption">{html.escape(t[f"fig_{key}"])}</div></div>'
        for key in ("reports_today", "filed_today", "month_closing_rate", "month_on_time_rate",
                    "open_cases", "overdue_cases", "whistles_open", "whistles_overdue",
                    "gridworkers_on_duty")
    )  # fmt: skip
    other = "en" if lang == "zh" else "zh"
    return (
        f'<div id="wall-head"><div id="wall-title">{name} · {html.escape(t["wall_title"])}</div>'
        f'<a id="wall-lang" href="?lang={other}">{"English" if lang == "zh" else "中文"}</a>'
        f'<div id="wall-clock">--:--:--</div></div>'
        f'<div id="wall-figures">{figures}<div id="wall-updated"></div></div>'
        f'<div id="wall-legend"></div>'
    )
