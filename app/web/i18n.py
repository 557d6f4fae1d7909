"""The one translation table for user-facing labels: Chinese by default, English on request."""

from __future__ import annotations

LANGS = ("zh", "en")

TEXT: dict[str, dict[str, str]] = {
    "name": {"zh": "名称", "en": "Name"},
    "code": {"zh": "编码", "en": "Code"},
    "basemap": {"zh": "底图", "en": "Basemap"},
    "district": {"zh": "区", "en": "District"},
    "street": {"zh": "街道", "en": "Streets"},
    "community": {"zh": "社区", "en": "Communities"},
    "grid": {"zh": "网格", "en": "Grids"},
    "siblings": {"zh": "同级", "en": "Neighbours"},
    "region_map": {"zh": "区域地图", "en": "Region map"},
    "population": {"zh": "人口", "en": "Population"},
    "households": {"zh": "户数", "en": "Households"},
    "area": {"zh": "面积", "en": "Area"},
    "boundary_version": {"zh": "边界版本", "en": "Boundary version"},
    "api_docs": {"zh": "接口文档", "en": "API docs"},
    "home_title": {"zh": "网格化管理地图服务", "en": "Grid management map service"},
}


def labels(lang: str) -> dict[str, str]:
    """Every label in ``lang`` (falls back to Chinese)."""
    key = lang if lang in LANGS else "zh"
    return {name: texts[key] for name, texts in TEXT.items()}
