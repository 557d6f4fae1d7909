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
    "login": {"zh": "登录", "en": "Log in"},
    "logout": {"zh": "退出", "en": "Log out"},
    "username": {"zh": "用户名", "en": "User name"},
    "password": {"zh": "密码", "en": "Password"},
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong user name or password"},
    "login_limited": {
        "zh": "登录失败次数过多，请 {seconds} 秒后再试",
        "en": "Too many failed logins; try again in {seconds} s",
    },
    "login_missing": {"zh": "请输入用户名和密码", "en": "Enter a user name and a password"},
    "logged_in_as": {"zh": "当前用户", "en": "Logged in as"},
}


def labels(lang: str) -> dict[str, str]:
    """Every label in ``lang`` (falls back to Chinese)."""
    key = lang if lang in LANGS else "zh"
    return {name: texts[key] for name, texts in TEXT.items()}
