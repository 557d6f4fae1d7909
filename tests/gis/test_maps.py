"""folium layer builders: what a map page shows."""

from __future__ import annotations

import json
import re

import folium

from gis.maps import LEVEL_STYLE, bounds_of, region_map, shared_prefix

LABELS = {"name": "名称", "code": "编码", "basemap": "底图"}


def js(text: str) -> str:
    """How folium writes text into the page's script (JSON, non-ASCII escaped)."""
    return json.dumps(text)[1:-1]


def label_texts(page: str) -> list[str]:
    """The texts of the name labels drawn on the map."""
    found = re.findall(r'"html": "(\\u003cdiv class=\\"gridmap-label.*?)",?\n', page)
    texts = [json.loads(f'"{raw}"') for raw in found]
    return [re.sub(r"<[^>]+>", "", t) for t in texts]


def _feature(code: str, name: str, level: str, x: float) -> dict:
    box = [[x, 39.0], [x + 0.01, 39.0], [x + 0.01, 39.01], [x, 39.01], [x, 39.0]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [box]},
        "properties": {
            "code": code,
            "name": name,
            "level": level,
            "bbox": [x, 39.0, x + 0.01, 39.01],
            "label_point": [x + 0.005, 39.005],
        },
    }


def test_shared_prefix_stops_at_the_place_name() -> None:
    assert shared_prefix(["永乐西里社区第4网格", "永乐西里社区第5网格"]) == "永乐西里社区"
    assert shared_prefix(["丁字沽街道", "西沽街道"]) == ""
    assert shared_prefix(["佳园里社区", "佳园家园社区"]) == ""
    assert shared_prefix(["只有一个"]) == ""


def test_region_map_labels_children_without_their_shared_prefix() -> None:
    region = _feature("120106001001", "永乐西里社区", "community", 117.10)
    grids = [_feature(f"120106001001{i:03d}", f"永乐西里社区第{i}网格", "grid", 117.10 + i * 0.01)
             for i in (1, 2)]  # fmt: skip
    m = region_map(region, [("grid", "网格", grids)], labels=LABELS)
    html = m.get_root().render()
    assert sorted(label_texts(html)) == ["第1网格", "第2网格"]
    assert LEVEL_STYLE["grid"]["color"] in html


def test_no_tiles_means_a_dark_background_and_a_tile_url_adds_a_basemap() -> None:
    region = _feature("120106", "红桥区", "district", 117.1)
    dark = region_map(region, [], labels=LABELS).get_root().render()
    assert "background: #0b1320 !important" in dark
    assert "tileLayer" not in dark
    lit = region_map(
        region, [], labels=LABELS, tiles="/tiles/{z}/{x}/{y}.png", attribution="天地图"
    )
    assert isinstance(lit, folium.Map)
    html = lit.get_root().render()
    assert "/tiles/{z}/{x}/{y}.png" in html and js("天地图") in html


def test_bounds_cover_every_feature() -> None:
    a = _feature("1", "a", "grid", 117.10)
    b = _feature("2", "b", "grid", 117.30)
    assert bounds_of([a, b]) == [[39.0, 117.10], [39.01, 117.31]]
    assert bounds_of([]) is None
