"""The folium plugins a wall page may use load every script and style from the app's vendored
copies (app/web/static/vendor), never from a CDN. No database needed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import folium
import pytest
from folium import plugins

from app.web.assets import LOCAL, STATIC_URL, UnknownAsset, localize

STATIC = Path(__file__).resolve().parents[2] / "app" / "web" / "static"
VENDOR = STATIC / "vendor"
# The packages vendored for these plugins (one directory each under VENDOR).
PLUGIN_PACKAGES = [
    "markercluster",
    "heat",
    "realtime",
    "fullscreen",
    "groupedlayercontrol",
    "vectorgrid",
    "featuregroup-subgroup",
    "mouse-position",
]
HERE = [39.13, 117.15]
POINTS = [[39.13, 117.15], [39.14, 117.16], [39.15, 117.17]]


def _marker_cluster(m: folium.Map) -> None:
    cluster = plugins.MarkerCluster(locations=POINTS, name="cluster").add_to(m)
    folium.Marker(HERE, icon=folium.Icon(icon="flag", prefix="fa")).add_to(cluster)


def _fast_marker_cluster(m: folium.Map) -> None:
    plugins.FastMarkerCluster(POINTS, name="fast").add_to(m)


def _heat_map(m: folium.Map) -> None:
    plugins.HeatMap([[*p, w] for p, w in zip(POINTS, (0.2, 1.0, 3.0), strict=True)]).add_to(m)


def _realtime(m: folium.Map) -> None:
    plugins.Realtime("/api/v1/live.geojson", interval=5000, name="live").add_to(m)


def _fullscreen(m: folium.Map) -> None:
    plugins.Fullscreen(position="topright").add_to(m)


def _grouped_layer_control(m: folium.Map) -> None:
    a = folium.FeatureGroup("a").add_to(m)
    b = folium.FeatureGroup("b").add_to(m)
    folium.Marker(HERE).add_to(a)
    folium.CircleMarker(POINTS[1]).add_to(b)
    plugins.GroupedLayerControl({"incidents": [a, b]}, collapsed=False).add_to(m)


def _vector_grid(m: folium.Map) -> None:
    plugins.VectorGridProtobuf(
        "/tiles/{z}/{x}/{y}.pbf", "grid", {"vectorTileLayerStyles": {}}
    ).add_to(m)


def _feature_group_sub_group(m: folium.Map) -> None:
    parent = plugins.MarkerCluster(control=False).add_to(m)
    sub = plugins.FeatureGroupSubGroup(parent, name="sub").add_to(m)
    folium.Marker(HERE).add_to(sub)
    folium.LayerControl().add_to(m)


def _mouse_position(m: folium.Map) -> None:
    plugins.MousePosition(position="bottomleft", num_digits=6).add_to(m)


def _scroll_zoom_toggler(m: folium.Map) -> None:
    plugins.ScrollZoomToggler().add_to(m)


CASES: dict[str, tuple[type, Callable[[folium.Map], None]]] = {
    "MarkerCluster": (plugins.MarkerCluster, _marker_cluster),
    "FastMarkerCluster": (plugins.FastMarkerCluster, _fast_marker_cluster),
    "HeatMap": (plugins.HeatMap, _heat_map),
    "Realtime": (plugins.Realtime, _realtime),
    "Fullscreen": (plugins.Fullscreen, _fullscreen),
    "GroupedLayerControl": (plugins.GroupedLayerControl, _grouped_layer_control),
    "VectorGridProtobuf": (plugins.VectorGridProtobuf, _vector_grid),
    "FeatureGroupSubGroup": (plugins.FeatureGroupSubGroup, _feature_group_sub_group),
    "MousePosition": (plugins.MousePosition, _mouse_position),
}

ATTR_URL = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""")


def _render(build: Callable[[folium.Map], None]) -> str:
    m = folium.Map(location=HERE, zoom_start=13, tiles=None)
    build(m)
    root = m.get_root()
    localize(root)
    return root.render()


def _declared(cls: type) -> list[str]:
    return [name for attr in ("default_js", "default_css") for name, _ in getattr(cls, attr, [])]


@pytest.mark.parametrize("plugin", list(CASES))
def test_plugin_page_uses_only_vendored_assets(plugin: str) -> None:
    cls, build = CASES[plugin]
    page = _render(build)
    urls = ATTR_URL.findall(page)
    external = [u for u in urls if re.match(r"(?i)(?:https?:)?//", u)]
    assert external == [], external
    local = [u for u in urls if u.startswith(f"{STATIC_URL}/")]
    assert local, "the map page loads nothing from /static"
    for url in local:
        path = STATIC / url.removeprefix(f"{STATIC_URL}/").split("?")[0]
        assert path.is_file(), url
    for name in _declared(cls):
        assert f"{STATIC_URL}/{LOCAL[name]}" in local, (plugin, name)


def test_every_plugin_declares_what_is_vendored_for_it() -> None:
    for plugin, (cls, _) in CASES.items():
        assert _declared(cls), plugin
    assert _declared(plugins.FastMarkerCluster) == _declared(plugins.MarkerCluster)


def test_scroll_zoom_toggler_is_refused() -> None:
    # It declares no assets, but its template hard-codes a cdnjs <img>, which localize cannot
    # rewrite: a wall page using it would reach for the internet, so localize refuses it.
    assert _declared(plugins.ScrollZoomToggler) == []
    with pytest.raises(UnknownAsset, match="ScrollZoomToggler"):
        _render(_scroll_zoom_toggler)


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_vendored_css_finds_what_it_references(package: str) -> None:
    directory = VENDOR / package
    assert directory.is_dir(), package
    assert any(p.suffix == ".js" for p in directory.iterdir()), package
    for css in directory.rglob("*.css"):
        for _, ref in CSS_URL.findall(css.read_text(encoding="utf-8")):
            ref = ref.strip()
            if ref.startswith("data:"):
                continue
            assert not re.match(r"(?i)(?:https?:)?//", ref), (css, ref)
            target = css.parent / re.split(r"[?#]", ref)[0]
            assert target.is_file(), (css.relative_to(VENDOR), ref)


def test_vendored_files_carry_no_source_map_reference() -> None:
    for package in PLUGIN_PACKAGES:
        for path in (VENDOR / package).rglob("*"):
            if path.suffix in {".js", ".css"}:
                assert "sourceMappingURL=" not in path.read_text(encoding="utf-8"), path
