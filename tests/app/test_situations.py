"""The whistle call-situation catalogue: the shipped file, grade limits, every refusal."""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.services.identity import DEPARTMENT_KINDS, MEMBER_KINDS
from app.services.situations import (
    DEFAULT_SITUATIONS,
    GRADES,
    Situation,
    SituationCatalog,
    SituationError,
    grade_limits,
    load_situations,
)

CLASSES = ("conflict", "service", "enforcement", "key_work", "emergency")


@pytest.fixture(scope="module")
def shipped() -> SituationCatalog:
    return load_situations()


# -- the shipped catalogue -------------------------------------------------------------------


def test_default_path_points_at_the_data_file() -> None:
    assert DEFAULT_SITUATIONS.is_file()
    assert DEFAULT_SITUATIONS.name == "whistle_situations.yaml"


def test_shipped_catalogue_has_at_least_heping_s_43_situations(shipped: SituationCatalog) -> None:
    assert len(shipped.situations) >= 43
    grouped = shipped.by_class()
    assert tuple(grouped) == CLASSES
    for key, situations in grouped.items():
        assert len(situations) >= 6, key
        assert all(s.class_key == key for s in situations)


def test_shipped_class_codes(shipped: SituationCatalog) -> None:
    codes = {key: c.code for key, c in shipped.classes.items()}
    assert codes == {
        "conflict": "MD", "service": "FW", "enforcement": "ZF", "key_work": "ZD", "emergency": "YJ",
    }  # fmt: skip
    assert shipped.classes["emergency"].name_zh == "应急处置"


def test_shipped_codes_are_numbered_from_01_within_each_class(shipped: SituationCatalog) -> None:
    for key, situations in shipped.by_class().items():
        prefix = shipped.classes[key].code
        assert [s.code for s in situations] == [
            f"{prefix}{n:02d}" for n in range(1, 1 + len(situations))
        ]


def test_every_shipped_situation_is_complete(shipped: SituationCatalog) -> None:
    for code, s in shipped.situations.items():
        assert isinstance(s, Situation) and s.code == code
        assert re.search(r"[\u4e00-\u9fff]", s.name_zh), code  # Chinese name
        assert s.name_en.isascii() and s.name_en.strip(), code
        assert s.lead and set(s.lead) <= set(DEPARTMENT_KINDS), code
        assert set(s.co) <= set(DEPARTMENT_KINDS), code
        assert not set(s.lead) & set(s.co), code
        assert s.members and set(s.members) <= set(MEMBER_KINDS), code
        assert s.grade in GRADES
    names = [s.name_zh for s in shipped.situations.values()]
    assert len(names) == len(set(names)), "duplicate situation names"


def test_group_rental_example_from_heping(shipped: SituationCatalog) -> None:
    rental = next(s for s in shipped.situations.values() if "群租房" in s.name_zh)
    assert rental.class_key == "conflict"
    assert rental.lead == ("political_legal",)
    assert {"police", "housing", "emergency", "fire"} <= set(rental.co)


def test_grades_are_a_realistic_mix(shipped: SituationCatalog) -> None:
    used = Counter(s.grade for s in shipped.situations.values())
    assert set(used) == set(GRADES)
    by_class = shipped.by_class()
    emergency = Counter(s.grade for s in by_class["emergency"])
    key_work = Counter(s.grade for s in by_class["key_work"])
    assert emergency.most_common(1)[0][0] == "red"
    assert key_work.most_common(1)[0][0] == "blue"


def test_default_grade_limits(shipped: SituationCatalog) -> None:
    assert list(shipped.grades) == list(GRADES)
    assert grade_limits(shipped) == {
        "red": (dt.timedelta(minutes=30), dt.timedelta(hours=24)),
        "yellow": (dt.timedelta(hours=2), dt.timedelta(days=3)),
        "blue": (dt.timedelta(days=1), dt.timedelta(days=7)),
    }


def test_grade_limit_overrides(shipped: SituationCatalog) -> None:
    limits = grade_limits(shipped, {"red": (15, 12)})
    assert limits["red"] == (dt.timedelta(minutes=15), dt.timedelta(hours=12))
    assert limits["yellow"] == (dt.timedelta(hours=2), dt.timedelta(days=3))  # untouched
    assert grade_limits(shipped, {}) == grade_limits(shipped)
    with pytest.raises(ValueError, match="purple"):
        grade_limits(shipped, {"purple": (1, 1)})
    with pytest.raises(ValueError, match="positive"):
        grade_limits(shipped, {"blue": (0, 24)})


# -- refusals --------------------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_SITUATIONS.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "situations.yaml"
    text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


def _refused(tmp_path: Path, data: Any) -> SituationError:
    with pytest.raises(SituationError) as info:
        load_situations(_write(tmp_path, data))
    return info.value


def _situation(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(s for s in data["situations"] if s["code"] == code)


def test_a_copy_of_the_shipped_file_loads(tmp_path: Path) -> None:
    assert len(load_situations(_write(tmp_path, _raw())).situations) >= 43


def test_unknown_department_kind(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "YJ01")["co"].append("gas_company")
    err = _refused(tmp_path, data)
    assert "YJ01" in str(err) and "'gas_company'" in str(err)
    assert "political_legal" in str(err)  # the allowed kinds are listed


def test_unknown_member_kind(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "MD02")["members"] = ["volunteer"]
    err = _refused(tmp_path, data)
    assert "MD02" in str(err) and "'volunteer'" in str(err) and "street_staff" in str(err)


def test_duplicate_code(tmp_path: Path) -> None:
    data = _raw()
    data["situations"].append(copy.deepcopy(_situation(data, "FW02")))
    assert "duplicate code FW02" in str(_refused(tmp_path, data))


def test_code_prefix_must_be_its_class_code(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "ZF01")["class"] = "service"
    err = _refused(tmp_path, data)
    assert "ZF01" in str(err) and "FW" in str(err)


def test_malformed_code(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "ZD01")["code"] = "ZD1"
    assert "bad situation code 'ZD1'" in str(_refused(tmp_path, data))


def test_unknown_grade(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "YJ02")["grade"] = "orange"
    err = _refused(tmp_path, data)
    assert "YJ02" in str(err) and "unknown grade 'orange'" in str(err)


def test_unknown_class(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "YJ02")["class"] = "disaster"
    assert "unknown class 'disaster'" in str(_refused(tmp_path, data))


@pytest.mark.parametrize("lead", [None, []])
def test_missing_lead(tmp_path: Path, lead: list | None) -> None:
    data = _raw()
    if lead is None:
        del _situation(data, "MD03")["lead"]
    else:
        _situation(data, "MD03")["lead"] = lead
    err = _refused(tmp_path, data)
    assert "MD03" in str(err) and "lead" in str(err)


def test_kind_both_lead_and_co(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "MD01")["co"].append("political_legal")
    err = _refused(tmp_path, data)
    assert "MD01" in str(err) and "'political_legal' is both lead and co" in str(err)


def test_bad_grade_table(tmp_path: Path) -> None:
    data = _raw()
    data["grades"]["red"]["report_minutes"] = 0
    data["grades"]["orange"] = copy.deepcopy(data["grades"]["blue"])
    err = _refused(tmp_path, data)
    assert "grades.red.report_minutes" in str(err) and "orange" in str(err)


def test_bad_and_duplicate_class_codes(tmp_path: Path) -> None:
    data = _raw()
    data["classes"]["service"]["code"] = "MD"
    data["classes"]["key_work"]["code"] = "zd"
    err = str(_refused(tmp_path, data))
    assert "class code MD is already used by conflict" in err
    assert "bad class code 'zd'" in err


def test_invalid_yaml(tmp_path: Path) -> None:
    err = _refused(tmp_path, "grades: {red: [1, 2\nclasses: {}\n")
    assert "invalid YAML at line 2" in str(err) and len(err.problems) == 1


def test_missing_situations_key(tmp_path: Path) -> None:
    data = _raw()
    del data["situations"]
    assert "missing top-level key 'situations'" in str(_refused(tmp_path, data))


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping" in str(_refused(tmp_path, "- just\n- a list\n"))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SituationError, match="cannot read"):
        load_situations(tmp_path / "missing.yaml")


def test_every_problem_is_reported_each_on_its_own_line(tmp_path: Path) -> None:
    data = _raw()
    _situation(data, "FW01")["lead"] = ["social_work"]
    _situation(data, "YJ05")["grade"] = "purple"
    err = _refused(tmp_path, data)
    assert len(err.problems) == 2
    lines = str(err).splitlines()
    assert len(lines) == 2
    assert "FW01" in lines[0] and "'social_work'" in lines[0]
    assert "YJ05" in lines[1] and "'purple'" in lines[1]


def test_messages_name_the_line(tmp_path: Path) -> None:
    text = DEFAULT_SITUATIONS.read_text(encoding="utf-8").replace(
        "code: YJ08, class: emergency", "code: YJ08, class: emergencies"
    )
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "code: YJ08" in t)
    err = _refused(tmp_path, text)
    assert f"(YJ08, line {line})" in str(err)
