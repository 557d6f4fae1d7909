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
}

# Declared by folium.Map but not needed: gridmap draws icons with Font Awesome (prefix="fa").
DROPPED = {"glyphicons_css", "awesome_rotate_css"}


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
        for attr in ("default_js", "default_css"):
            pairs = getattr(element, attr, None)
            if pairs:
                setattr(element, attr, _rewrite(list(pairs), element))
    return root
