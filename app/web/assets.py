"""Serve every script and style of a folium page from the app's own vendored copies.

folium elements declare their assets as (name, CDN URL) pairs in ``default_js`` and
``default_css``. Before rendering, :func:`localize` rewrites each pair to the file under
``app/web/static/vendor`` (see VENDOR.md there). An asset with no local copy raises, so a new
plugin can never quietly make a wall page reach for the internet.
"""

from __future__ import annotations

from collections.abc import Iterator

from branca.element import Element

STATIC_URL = "/static"

LOCAL: dict[str, str] = {
    "leaflet": "vendor/leaflet/leaflet.js",
    "leaflet_css": "vendor/leaflet/leaflet.css",
    "jquery": "vendor/jquery/jquery.min.js",
    "bootstrap": "vendor/bootstrap/bootstrap.bundle.min.js",
    "bootstrap_css": "vendor/bootstrap/bootstrap.min.css",
    "awesome_markers": "vendor/awesome-markers/leaflet.awesome-markers.min.js",
    "awesome_markers_css": "vendor/awesome-markers/leaflet.awesome-markers.css",
    "awesome_markers_font_css": "vendor/fontawesome/css/all.min.css",
    # folium.plugins.MarkerCluster, FastMarkerCluster
    "markerclusterjs": "vendor/markercluster/leaflet.markercluster.js",
    "markerclustercss": "vendor/markercluster/MarkerCluster.css",
    "markerclusterdefaultcss": "vendor/markercluster/MarkerCluster.Default.css",
    # folium.plugins.HeatMap (folium's own patched copy of Leaflet.heat)
    "leaflet-heat.js": "vendor/heat/leaflet_heat.min.js",
    # folium.plugins.Realtime
    "Leaflet_Realtime_js": "vendor/realtime/leaflet-realtime.min.js",
    # folium.plugins.Fullscreen (folium spells the js name "Fullscreen", the css "FullScreen")
    "Control.Fullscreen.js": "vendor/fullscreen/Control.FullScreen.js",
    "Control.FullScreen.css": "vendor/fullscreen/Control.FullScreen.css",
    # folium.plugins.GroupedLayerControl
    "leaflet.groupedlayercontrol.min.js": (
        "vendor/groupedlayercontrol/leaflet.groupedlayercontrol.min.js"
    ),
    "leaflet.groupedlayercontrol.min.css": (
        "vendor/groupedlayercontrol/leaflet.groupedlayercontrol.min.css"
    ),
    # folium.plugins.VectorGridProtobuf
    "vectorGrid": "vendor/vectorgrid/Leaflet.VectorGrid.bundled.min.js",
    # folium.plugins.FeatureGroupSubGroup
    "featuregroupsubgroupjs": "vendor/featuregroup-subgroup/leaflet.featuregroup.subgroup.js",
    # folium.plugins.MousePosition
    "Control_MousePosition_js": "vendor/mouse-position/L.Control.MousePosition.js",
    "Control_MousePosition_css": "vendor/mouse-position/L.Control.MousePosition.css",
}

# Declared by folium.Map but not needed: gridmap draws icons with Font Awesome (prefix="fa").
DROPPED = {"glyphicons_css", "awesome_rotate_css"}

# Elements whose template hard-codes a CDN URL outside default_js/default_css, where no rewrite can
# reach it: refused outright, with what to use instead.
REFUSED = {
    "ScrollZoomToggler": "its button is an <img> hard-coded to cdnjs (ionicons 2.0.1); build the"
    " map with folium.Map(scroll_wheel_zoom=False) instead",
}


class UnknownAsset(LookupError):
    """A folium element wants an asset that is not vendored."""


def _walk(element: Element) -> Iterator[Element]:
    yield element
    for child in list(element._children.values()):
        yield from _walk(child)


def _rewrite(pairs: list[tuple[str, str]], owner: Element) -> list[tuple[str, str]]:
    out = []
    for name, url in pairs:
        if name in DROPPED:
            continue
        if name not in LOCAL:
            raise UnknownAsset(
                f"{type(owner).__name__} needs {name} ({url}); vendor it (scripts/vendor-assets.sh)"
                " and add it to app.web.assets.LOCAL"
            )
        out.append((name, f"{STATIC_URL}/{LOCAL[name]}"))
    return out


def localize(root: Element) -> Element:
    """Point every element's assets at the vendored copies (in place); returns ``root``."""
    for element in _walk(root):
        for cls in type(element).__mro__:
            if cls.__name__ in REFUSED:
                raise UnknownAsset(f"{type(element).__name__}: {REFUSED[cls.__name__]}")
        for attr in ("default_js", "default_css"):
            pairs = getattr(element, attr, None)
            if pairs:
                setattr(element, attr, _rewrite(list(pairs), element))
    return root
