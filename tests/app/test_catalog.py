"""The incident class catalogue: the shipped file, every kind of refusal, and "did you mean"."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.services.catalog import (
    DEFAULT_CALENDAR,
    DEFAULT_CATALOG,
    KINDS,
    STEPS,
    TIME_TYPES,
    Catalog,
    CatalogError,
    IncidentClass,
    StepLimit,
    load_catalog,
    nearest_codes,
)
from app.services.identity import DEPARTMENT_KINDS


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog(DEFAULT_CATALOG)


# -- the shipped catalogue -------------------------------------------------------------------


def test_default_paths_point_at_the_data_files() -> None:
    assert DEFAULT_CATALOG.is_file()
    assert DEFAULT_CALENDAR.is_file()


def test_shipped_catalogue_has_enough_classes_of_each_kind(shipped: Catalog) -> None:
    kinds = Counter(c.kind for c in shipped.classes.values())
    assert kinds["part"] + kinds["event"] >= 45
    assert kinds["part"] >= 20 and kinds["event"] >= 25
    assert kinds["social"] >= 10
    assert set(kinds) == set(KINDS.values())


def test_shipped_majors_are_the_standard_ones(shipped: Catalog) -> None:
    assert [m for m in shipped.majors if m.startswith("P")] == [f"P0{i}" for i in range(1, 7)]
    assert [m for m in shipped.majors if m.startswith("E")] == [f"E0{i}" for i in range(1, 7)]
    assert [m for m in shipped.majors if m.startswith("S")] == ["S01", "S02", "S03"]
    assert shipped.majors["S01"]["name_zh"] == "矛盾纠纷"
    assert shipped.majors["E04"]["name_zh"] == "突发事件"


def test_every_shipped_class_is_complete(shipped: Catalog) -> None:
    for code, c in shipped.classes.items():
        assert isinstance(c, IncidentClass)
        assert code == c.code
        assert c.kind == KINDS[code[0]]
        assert c.major_code == code[1:3]
        assert c.major_name_zh == shipped.majors[code[:3]]["name_zh"]
        assert set(c.limits) == set(STEPS)
        for limit in c.limits.values():
            assert isinstance(limit, StepLimit)
            assert limit.amount > 0 and limit.time_type in TIME_TYPES
        assert c.department_kind in DEPARTMENT_KINDS
        for text in (c.name_zh, c.name_en, c.filing_condition, c.closing_condition):
            assert text.strip()
        assert c.duplicate_radius_m > 0 and c.duplicate_window_h > 0


def test_shipped_urgent_classes_run_on_the_urgent_clock(shipped: Catalog) -> None:
    urgent = [c for c in shipped.classes.values() if c.urgent]
    assert {"E0401", "E0402"} <= {c.code for c in urgent}
    for c in urgent:
        assert {limit.time_type for limit in c.limits.values()} == {"urgent_work_hours"}, c.code


def test_shipped_examples(shipped: Catalog) -> None:
    manhole = shipped.classes["E0401"]
    assert manhole.name_zh == "井盖丢失" and manhole.urgent
    assert manhole.limits["handle"] == StepLimit(2.0, "urgent_work_hours")
    lamp = shipped.classes["P0109"]
    assert lamp.name_zh == "路灯"
    assert lamp.limits["handle"] == StepLimit(3.0, "work_days")
    assert shipped.classes["E0101"].name_zh == "暴露垃圾"
    assert shipped.classes["P0201"].duplicate_radius_m == 50
    assert shipped.classes["P0301"].duplicate_radius_m == 100  # the default
    assert shipped.classes["P0301"].duplicate_window_h == 72
    assert set(shipped.time_types) == set(TIME_TYPES)


# -- refusals ---------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "majors": [
        {"code": "E01", "kind": "event", "name_zh": "市容环境", "name_en": "City appearance"},
        {"code": "P01", "kind": "part", "name_zh": "公用设施", "name_en": "Public facilities"},
    ],
    "classes": [
        {
            "code": "E0101",
            "name_zh": "暴露垃圾",
            "name_en": "Exposed garbage",
            "filing_condition": "公共区域有暴露垃圾。",
            "closing_condition": "垃圾已清运。",
            "department_kind": "city_management",
            "limits": {
                "dispatch": {"amount": 0.5, "time_type": "work_hours"},
                "handle": {"amount": 2, "time_type": "urgent_work_hours"},
                "verify": {"amount": 1, "time_type": "work_hours"},
            },
        },
        {
            "code": "P0101",
            "name_zh": "上水井盖",
            "name_en": "Water manhole cover",
            "filing_condition": "井盖破损。",
            "closing_condition": "井盖已修复。",
            "department_kind": "water",
            "duplicate_radius_m": 30,
            "urgent": False,
            "limits": {
                "dispatch": {"amount": 0.5, "time_type": "work_hours"},
                "handle": {"amount": 3, "time_type": "work_days"},
                "verify": {"amount": 1, "time_type": "natural_days"},
            },
        },
    ],
}


def write(tmp_path: Path, data: Any, name: str = "classes.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def refusal(tmp_path: Path, data: Any) -> CatalogError:
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, data))
    return caught.value


def test_the_small_valid_catalogue_loads(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, VALID))
    assert list(catalog.classes) == ["E0101", "P0101"]
    assert catalog.classes["P0101"].duplicate_radius_m == 30
    assert catalog.classes["P0101"].duplicate_window_h == 72
    assert catalog.classes["E0101"].limits["handle"] == StepLimit(2.0, "urgent_work_hours")
    assert catalog.time_types == {}


def mutated(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: Any) -> None:
        for key in path[:-1]:
            data = data[key]
        if value is KeyError:
            del data[path[-1]]
        else:
            data[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set(("classes", 0, "code"), "E101"), "classes[0] (E101): bad class code 'E101'"),
        (_set(("classes", 0, "code"), "X0101"), "classes[0] (X0101): bad class code"),
        (_set(("classes", 0, "code"), "E0100"), "classes[0] (E0100): bad class code"),
        (_set(("classes", 0, "code"), "E0901"), "classes[0] (E0901): its major E09 is not in"),
        (_set(("classes", 1, "code"), "E0101"), "classes[1] (E0101): duplicate class code E0101"),
        (
            _set(("classes", 0, "limits", "handle", "time_type"), "hours"),
            "classes[0] (E0101): limits.handle.time_type: unknown time type 'hours'",
        ),
        (
            _set(("classes", 1, "limits", "verify"), KeyError),
            "classes[1] (P0101): limits.verify: missing step",
        ),
        (
            _set(("classes", 0, "limits", "review"), {"amount": 1, "time_type": "work_days"}),
            "classes[0] (E0101): limits.review: unknown step",
        ),
        (
            _set(("classes", 0, "limits", "dispatch", "amount"), 0),
            "classes[0] (E0101): limits.dispatch.amount: must be a positive number, not 0",
        ),
        (
            _set(("classes", 0, "limits", "dispatch", "amount"), -2),
            "limits.dispatch.amount: must be a positive number, not -2",
        ),
        (
            _set(("classes", 0, "limits", "dispatch", "amount"), True),
            "limits.dispatch.amount: must be a positive number, not True",
        ),
        (
            _set(("classes", 0, "limits", "dispatch", "amount"), "half"),
            "limits.dispatch.amount: must be a positive number, not 'half'",
        ),
        (
            _set(("classes", 0, "department_kind"), "sanitation"),
            "classes[0] (E0101): unknown department kind 'sanitation'",
        ),
        (_set(("classes", 0, "name_zh"), ""), "classes[0] (E0101): name_zh must be a non-empty"),
        (_set(("classes", 1, "name_en"), KeyError), "classes[1] (P0101): name_en must be a non"),
        (_set(("classes", 0, "filing_condition"), "  "), "(E0101): filing_condition must be"),
        (_set(("classes", 0, "duplicate_radius_m"), -5), "(E0101): duplicate_radius_m: must be"),
        (_set(("classes", 0, "urgent"), "yes please"), "(E0101): urgent must be true or false"),
        (_set(("classes", 0, "dept"), "water"), "classes[0] (E0101): unknown key(s) dept"),
        (_set(("majors", 0, "code"), "E1"), "majors[0] (E1): bad major code 'E1'"),
        (_set(("majors", 1, "code"), "E01"), "majors[1] (E01): duplicate major code E01"),
        (_set(("majors", 0, "kind"), "part"), "majors[0] (E01): kind 'part' does not match"),
        (_set(("majors", 0, "kind"), "thing"), "majors[0] (E01): unknown kind 'thing'"),
        (_set(("majors", 0, "name_en"), ""), "majors[0] (E01): name_en must be a non-empty"),
        (_set(("majors",), KeyError), "expected a top-level 'majors' list"),
        (_set(("classes",), {"E0101": {}}), "expected a top-level 'classes' list"),
        (_set(("time_types",), {"weeks": {}}), "time_types.weeks: unknown time type"),
    ],
)
def test_each_bad_catalogue_is_refused_with_its_place(
    tmp_path: Path, change: Any, expected: str
) -> None:
    error = refusal(tmp_path, mutated(change))
    assert any(expected in p for p in error.problems), error.problems
    assert all(p.startswith("classes.yaml") for p in error.problems)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["classes"][0]["department_kind"] = "nobody"
        data["classes"][1]["limits"]["handle"]["time_type"] = "fortnights"
        data["classes"][1]["code"] = "P9901"

    error = refusal(tmp_path, mutated(change))
    assert len(error.problems) == 3, error.problems
    assert "nobody" in str(error) and "fortnights" in str(error) and "P99" in str(error)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("majors: [unclosed", "classes.yaml"),
        ("- just\n- a list\n", "expected a mapping"),
        ("majors: []\nclasses: []\n", "no classes"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=expected):
        load_catalog(path)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nowhere\.yaml"):
        load_catalog(tmp_path / "nowhere.yaml")


# -- did you mean -----------------------------------------------------------------------------


def test_nearest_codes_for_an_unknown_minor_suggest_its_major(shipped: Catalog) -> None:
    near = nearest_codes(shipped, "E0199")
    assert len(near) == 5
    assert all(code.startswith("E01") for code in near), near
    assert "E0199" not in shipped.classes


def test_nearest_codes_finds_classes_by_name(shipped: Catalog) -> None:
    assert "P0109" in nearest_codes(shipped, "路灯")
    near = nearest_codes(shipped, "井盖", n=10)
    assert {"P0101", "P0102", "E0401"} <= set(near)
    assert nearest_codes(shipped, "street lamp")[0] == "P0109"
    assert nearest_codes(shipped, "路灯坏了")[0] == "P0109"  # no name contains it: fuzzy


def test_nearest_codes_edge_cases(shipped: Catalog) -> None:
    assert nearest_codes(shipped, "e0101")[0] == "E0101"
    assert nearest_codes(shipped, "") == []
    assert nearest_codes(shipped, "E0101", n=0) == []
    assert len(nearest_codes(shipped, "S02", n=3)) == 3
    assert nearest_codes(shipped, "zzz") == []
