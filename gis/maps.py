"""folium layer builders for boundaries. Pure: features in, folium objects out.

Where the page's scripts and styles come from is not decided here: folium's defaults point at
CDNs, and the service rewrites them to its own vendored copies before rendering.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import folium
from folium.plugins import HeatMap

__all__ = [
    "DARK_BACKGROUND",
    "LEVEL_STYLE",
    "add_labels",
    "boundary_layer",
    "bounds_of",
    "heat_layer",
    "region_map",
    "shared_prefix",
]

DARK_BACKGROUND = "#0b1320"
HIGHLIGHT = "#ffd54f"
HEAT_GRADIENT = {0.2: "#1e88e5", 0.45: "#00e5ff", 0.65: "#ffee58", 0.85: "#ff7043", 1.0: "#ff1744"}

# Wall-readable: thicker, brighter lines for the higher levels.
LEVEL_STYLE: dict[str, dict[str, Any]] = {
    "district": {"color": "#ffd54f", "weight": 5, "fillColor": "#ffd54f", "fillOpacity": 0.03},
    "street": {"color": "#4fc3f7", "weight": 3.5, "fillColor": "#4fc3f7", "fillOpacity": 0.06},
    "community": {"color": "#81c784", "weight": 2, "fillColor": "#81c784", "fillOpacity": 0.08},
    "grid": {"color": "#cfd8dc", "weight": 1, "fillColor": "#90a4ae", "fillOpacity": 0.10},
}


def bounds_of(features: Sequence[Mapping[str, Any]]) -> list[list[float]] | None:
    """[[south, west], [north, east]] from the features' ``bbox`` properties."""
    boxes = [f["properties"]["bbox"] for f in features if f["properties"].get("bbox")]
    if not boxes:
        return None
    return [
        [min(b[1] for b in boxes), min(b[0] for b in boxes)],
        [max(b[3] for b in boxes), max(b[2] for b in boxes)],
    ]


def boundary_layer(
    features: Sequence[Mapping[str, Any]],
    level: str,
    name: str,
    *,
    labels: Mapping[str, str],
    highlight: bool = False,
    show: bool = True,
) -> folium.GeoJson:
    """One level's boundaries as a GeoJSON layer with a name/code tooltip."""
    style = dict(LEVEL_STYLE.get(level, LEVEL_STYLE["grid"]))
    if highlight:
        style.update(color=HIGHLIGHT, weight=style["weight"] + 3, fillOpacity=0.12)
    collection = {"type": "FeatureCollection", "features": list(features)}
    return folium.GeoJson(
        collection,
        name=name,
        show=show,
        style_function=lambda _feature, s=style: s,
        highlight_function=lambda _feature: {"weight": 4, "fillOpacity": 0.35},
        tooltip=folium.GeoJsonTooltip(
            fields=["name", "code"], aliases=[labels["name"], labels["code"]], sticky=True
        ),
    )


_PLACE_ENDINGS = ("区", "道", "镇", "乡", "村")


def shared_prefix(names: Sequence[str]) -> str:
    """The place name every name starts with ("永乐西里社区" for "永乐西里社区第4网格",
    "永乐西里社区第5网格"), or "" when they share none or there are fewer than two."""
    if len(names) < 2:
        return ""
    first, last = min(names), max(names)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    while prefix and not prefix.endswith(_PLACE_ENDINGS):
        prefix = prefix[:-1]
    return prefix


def add_labels(
    layer: folium.Element,
    features: Sequence[Mapping[str, Any]],
    level: str,
    *,
    colour: str | None = None,
    strip: str = "",
) -> None:
    """Names at each feature's label point, sized for a wall, without the ``strip`` prefix
    (the community in "永乐西里社区第4网格"), so that neighbouring labels stay apart."""
    size = {"district": 22, "street": 18, "community": 15, "grid": 13}.get(level, 13)
    colour = colour or LEVEL_STYLE.get(level, LEVEL_STYLE["grid"])["color"]
    for feature in features:
        props = feature["properties"]
        name = str(props.get("name") or "")
        text = name.removeprefix(strip) or name
        if not props.get("label_point") or not text:
            continue
        lon, lat = props["label_point"]
        folium.Marker(
            [lat, lon],
            icon=folium.DivIcon(
                html=(
                    f'<div class="gridmap-label gridmap-label-{level}" '
                    f'style="font-size:{size}px;color:{colour};'
                    "transform:translate(-50%,-50%);white-space:nowrap;pointer-events:none;"
                    'text-shadow:0 0 3px #000,0 0 6px #000;font-weight:600">'
                    f"{html.escape(text)}</div>"
                ),
                icon_size=(0, 0),
            ),
            interactive=False,
        ).add_to(layer)


def region_map(
    region: Mapping[str, Any],
    layers: Sequence[tuple[str, str, Sequence[Mapping[str, Any]]]],
    *,
    labels: Mapping[str, str],
    tiles: str | None = None,
    attribution: str = "",
) -> folium.Map:
    """A map of ``region`` with extra ``layers`` (level, layer name, features) drawn under it."""
    m = folium.Map(
        tiles=None,
        control_scale=True,
        prefer_canvas=False,
        zoom_control=True,
    )
    if tiles:
        folium.TileLayer(tiles=tiles, attr=attribution or " ", name=labels["basemap"]).add_to(m)
    else:
        m.get_root().header.add_child(
            folium.Element(
                # !important: leaflet.css, linked after this, sets its own grey background.
                f"<style>.leaflet-container {{ background: {DARK_BACKGROUND} !important; }}</style>"
            )
        )
    # The region goes underneath, so that its children on top get the pointer and tooltips.
    region_level = region["properties"]["level"]
    selected = boundary_layer(
        [region], region_level, region["properties"]["name"] or "", labels=labels, highlight=True
    )
    neighbours = [f for lv, _, feats in layers if lv == region_level for f in feats]
    strip = shared_prefix([str(f["properties"].get("name") or "") for f in [region, *neighbours]])
    if neighbours:
        # Shown among its neighbours: labelled like them, in the highlight colour.
        add_labels(selected, [region], region_level, colour=HIGHLIGHT, strip=strip)
    selected.add_to(m)
    for level, layer_name, features in layers:
        if features:
            layer = boundary_layer(features, level, layer_name, labels=labels)
            names = [str(f["properties"].get("name") or "") for f in features]
            add_labels(
                layer,
                features,
                level,
                strip=strip if level == region_level else shared_prefix(names),
            )
            layer.add_to(m)
    bounds = bounds_of([region, *[f for _, _, feats in layers for f in feats]])
    if bounds:
        m.fit_bounds(bounds)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def heat_layer(points: Sequence[Sequence[float]], name: str, *, show: bool = True) -> folium.Layer:
    """A heat map of ``[[lat, lon, weight], …]`` (weights scaled to the largest), drawn for a
    dark wall: blue through yellow to red."""
    top = max((float(p[2]) for p in points), default=1.0) or 1.0
    return HeatMap(
        [[p[0], p[1], float(p[2]) / top] for p in points],
        name=name,
        show=show,
        min_opacity=0.25,
        radius=18,
        blur=15,
        gradient={
            0.2: "#1e88e5",
            0.45: "#00e5ff",
            0.65: "#ffee58",
            0.85: "#ff7043",
            1.0: "#ff1744",
        },
    )
