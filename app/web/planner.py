"""The planners' page (/planner): one folium page, light and readable, offline.

folium builds the map, the region's outlines (the district, its streets and communities — the
grids come with the analyses) and empty layers in two layer controls: the analyses, one shown
at a time (Gi* hot spots, Local Moran clusters, emerging hot spots, the change from the previous
period, or none), and the kernel-density heat on top. ``static/planner.js`` fills those layers
from ``/api/v1/analytics`` for the filters of the panel (class, period, level, method, measure)
and refills them when a filter changes; this module hands it the layers' JavaScript names and
the filters' starting values in one JSON config.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import folium
from branca.element import Element
from folium.plugins import GroupedLayerControl

from app.services.analytics import MAX_DAYS, MAX_WEEKS
from app.web.assets import localize
from app.web.wall import LABEL_ZOOM, dress, slim
from gis.maps import add_labels, boundary_layer, bounds_of, heat_layer, shared_prefix

ZONE = ZoneInfo("Asia/Shanghai")
BACKGROUND = "#eef1f4"
OUTLINE_LEVELS = ("district", "street", "community")
# Outlines only (no fill, so a click inside reaches the analysis underneath), dark on light.
OUTLINE_STYLE: dict[str, dict[str, Any]] = {
    "district": {"color": "#263238", "weight": 3.5, "fill": False, "opacity": 0.9},
    "street": {"color": "#1a237e", "weight": 2.2, "fill": False, "opacity": 0.85},
    "community": {"color": "#546e7a", "weight": 1, "fill": False, "opacity": 0.8,
                  "dashArray": "4 3"},
}  # fmt: skip
LABEL_COLOUR = {"district": "#263238", "street": "#1a237e", "community": "#455a64"}
ANALYSES = ("gi", "moran", "emerging", "compare", "none")  # the first is shown
ANALYSIS_LEVELS = ("street", "community", "grid")
PRESETS = {"last_4_weeks": 28, "last_quarter": 91, "last_12_months": 365}
MEASURES = ("count", "per_1000", "per_km2")
LABEL_PREFIXES = ("planner_", "legend_", "emerging_", "trend_")


def build(
    *,
    region: Mapping[str, Any],
    boundaries: Mapping[str, Sequence[Mapping[str, Any]]],
    catalogue: Sequence[Mapping[str, Any]],
    start: dt.date,
    end: dt.date,
    t: Mapping[str, str],
    lang: str,
    tile_url: str | None,
    tile_attribution: str,
) -> str:
    """The planners' HTML for ``region`` (a feature), its outline ``boundaries`` by level, the
    class ``catalogue`` (majors with their classes) and the period shown first."""
    props = region["properties"]
    code, level = props["code"], props["level"]
    m = folium.Map(tiles=None, control_scale=True, zoom_control=False, prefer_canvas=False,
                   maxZoom=19, minZoom=8)  # fmt: skip  # SVG: outlines let clicks through
    if tile_url:
        folium.TileLayer(tiles=tile_url, attr=tile_attribution or " ", name=t["basemap"],
                         max_zoom=19).add_to(m)  # fmt: skip

    # -- the analyses: empty layers planner.js fills, one shown at a time ---------------------
    analyses = {}
    for name in ANALYSES:
        group = folium.FeatureGroup(name=t[f"planner_layer_{name}"], show=name == ANALYSES[0])
        group.add_to(m)
        analyses[name] = group
    heat_group = folium.FeatureGroup(name=t["planner_layer_density"], show=False).add_to(m)
    heat = heat_layer([], t["planner_layer_density"])
    heat.add_to(heat_group)

    # -- outlines on top: the region, its streets and communities, names by zoom --------------
    outlines: dict[str, folium.GeoJson] = {}
    for lv in OUTLINE_LEVELS:
        if not boundaries.get(lv):
            continue
        features = [slim(f) for f in boundaries[lv]]
        layer = boundary_layer(features, lv, t[f"{lv}_layer"], labels=t)
        # gis.maps styles boundaries for the dark wall; the planner's map is light.
        layer.style_function = lambda _f, s=OUTLINE_STYLE[lv]: s
        if lv != level:  # the region itself is the frame, not a label
            names = [str(f["properties"].get("name") or "") for f in features]
            add_labels(layer, features, lv, colour=LABEL_COLOUR[lv], strip=shared_prefix(names))
        layer.add_to(m)
        outlines[lv] = layer

    GroupedLayerControl({t["planner_group_analysis"]: list(analyses.values())},
                        exclusive_groups=True, collapsed=False,
                        position="topright").add_to(m)  # fmt: skip
    GroupedLayerControl(
        {t["planner_group_overlays"]: [heat_group],
         t["group_boundaries"]: list(outlines.values())},
        exclusive_groups=False, collapsed=False, position="topright",
    ).add_to(m)  # fmt: skip

    bounds = bounds_of([slim(region)])
    if bounds:
        m.fit_bounds(bounds, padding_top_left=(340, 10), padding_bottom_right=(10, 10))

    levels = [lv for lv in ANALYSIS_LEVELS if lv == "grid" or (lv in boundaries and lv != level)]
    figure = dress(m, f"{props.get('name') or code} · {t['planner_title']}", "planner", BACKGROUND)
    figure.html.add_child(Element(_panel(region, catalogue, levels, start, end, t, lang)))
    config = {
        "map": m.get_name(),
        "region": code,
        "region_level": level,
        "lang": lang,
        "today": end.isoformat(),
        "filters": {"class": "", "from": start.isoformat(), "to": end.isoformat(),
                    "level": "grid", "method": "gi", "measure": "count"},
        "presets": PRESETS,
        "levels": levels,
        "max_days": MAX_DAYS,
        "max_weeks": MAX_WEEKS,
        "labels": {k: v for k, v in t.items() if k.startswith(LABEL_PREFIXES)},
        "analyses": {name: group.get_name() for name, group in analyses.items()},
        "heat": {"group": heat_group.get_name(), "layer": heat.get_name()},
        "outlines": {lv: layer.get_name() for lv, layer in outlines.items()},
        "label_zoom": LABEL_ZOOM,
        "urls": {kind: f"/api/v1/analytics/{kind}"
                 for kind in ("hotspots", "emerging", "series", "compare", "density")},
    }  # fmt: skip
    # folium writes the layers' script after this one: start once the document has run it.
    figure.script.add_child(Element(
        "document.addEventListener('DOMContentLoaded', () => "
        f"gridmapPlanner.start({json.dumps(config, ensure_ascii=False)}));"
    ))  # fmt: skip
    localize(figure)
    return figure.render()


def _options(pairs: Sequence[tuple[str, str]], selected: str) -> str:
    return "".join(
        f'<option value="{html.escape(v)}"{" selected" if v == selected else ""}>'
        f"{html.escape(text)}</option>"
        for v, text in pairs
    )


def _panel(
    region: Mapping[str, Any],
    catalogue: Sequence[Mapping[str, Any]],
    levels: Sequence[str],
    start: dt.date,
    end: dt.date,
    t: Mapping[str, str],
    lang: str,
) -> str:
    """The filter panel, the summary and the legend (filled by planner.js)."""
    name = html.escape(region["properties"].get("name") or region["properties"]["code"])
    classes = f'<option value="">{html.escape(t["planner_class_all"])}</option>'
    for major in catalogue:
        label = f"{major['code']} {major['name']}"
        classes += (
            f'<optgroup label="{html.escape(label)}">'
            f'<option value="{html.escape(major["code"])}">{html.escape(label)} · '
            f"{html.escape(t['planner_class_major_all'])}</option>"
            + _options([(c["code"], f"{c['code']} {c['name']}") for c in major["classes"]], "")
            + "</optgroup>"
        )
    presets = "".join(
        f'<button type="button" class="planner-preset" data-days="{days}">'
        f"{html.escape(t[f'planner_{key}'])}</button>"
        for key, days in PRESETS.items()
    )
    level_names = {"grid": t["grid_layer"], "community": t["community_layer"],
                   "street": t["street_layer"]}  # fmt: skip
    other = "en" if lang == "zh" else "zh"
    return (
        '<div id="planner-panel">'
        f'<div id="planner-head"><div id="planner-title">{name} · '
        f"{html.escape(t['planner_title'])}</div>"
        f'<a id="planner-lang" href="?lang={other}">{"English" if lang == "zh" else "中文"}</a>'
        "</div>"
        '<form id="planner-filters" autocomplete="off" onsubmit="return false">'
        f'<label>{html.escape(t["planner_class"])}<select id="planner-class">{classes}</select>'
        "</label>"
        f"<fieldset><legend>{html.escape(t['planner_period'])}</legend>"
        f'<label class="planner-date">{html.escape(t["planner_from"])}'
        f'<input type="date" id="planner-from" value="{start.isoformat()}" '
        f'max="{end.isoformat()}"></label>'
        f'<label class="planner-date">{html.escape(t["planner_to"])}'
        f'<input type="date" id="planner-to" value="{end.isoformat()}" max="{end.isoformat()}">'
        f'</label><div id="planner-presets">{presets}</div></fieldset>'
        f'<label>{html.escape(t["planner_level"])}<select id="planner-level">'
        + _options([(lv, level_names[lv]) for lv in reversed(levels)], "grid")
        + "</select></label>"
        f'<label>{html.escape(t["planner_method"])}<select id="planner-method">'
        + _options([("gi", t["planner_method_gi"]), ("moran", t["planner_method_moran"])], "gi")
        + "</select></label>"
        f'<label>{html.escape(t["planner_measure"])}<select id="planner-measure">'
        + _options([(ms, t[f"planner_measure_{ms}"]) for ms in MEASURES], "count")
        + "</select></label></form>"
        '<div id="planner-status" aria-live="polite"></div>'
        '<div id="planner-summary"></div>'
        '<div id="planner-reason" hidden></div>'
        '<div id="planner-error" hidden></div>'
        '<div id="planner-legend"></div>'
        "</div>"
    )
