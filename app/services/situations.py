"""The whistle call-situation catalogue (吹哨情形目录): when a street or community may blow a
whistle, which department kinds lead (主责) and co-handle (协办), which 1+8+X grid members a
community whistle calls, and the default red / yellow / blue grade with its time limits.

The catalogue is data — data/catalogs/whistle_situations.yaml — read and checked here. Pure
Python (no database, no web framework) so the API, the CLI and the tests load it the same way.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from app.services.identity import DEPARTMENT_KINDS, MEMBER_KINDS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SITUATIONS = ROOT / "data" / "catalogs" / "whistle_situations.yaml"

GRADES = ("red", "yellow", "blue")

# [A-Z]/[0-9], not \w/\d: those also match full-width and other Unicode letters and digits.
_CLASS_CODE = re.compile(r"[A-Z]{2}")
_SITUATION_CODE = re.compile(r"[A-Z]{2}(0[1-9]|[1-9][0-9])")

_TOP_KEYS = {"grades", "classes", "situations"}
_GRADE_KEYS = {"name_zh", "name_en", "report_minutes", "resolve_hours"}
_CLASS_KEYS = {"code", "name_zh", "name_en"}
_SITUATION_KEYS = {"code", "class", "name_zh", "name_en", "grade", "lead", "co", "members"}


class SituationError(ValueError):
    """A catalogue file that cannot be used; the message lists every problem found, one per line,
    each with its place (file, situation index, code and line); ``problems`` holds them."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Grade:
    code: str  # "red" | "yellow" | "blue"
    name_zh: str
    name_en: str
    report_minutes: int  # departments report on site (报到) within this
    resolve_hours: int  # and resolve within this


@dataclass(frozen=True)
class SituationClass:
    key: str  # e.g. "conflict"
    code: str  # two letters, the prefix of its situations' codes, e.g. "MD"
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class Situation:
    code: str  # class code + 2 digits, e.g. "MD01"
    class_key: str
    name_zh: str
    name_en: str
    grade: str  # the default grade
    lead: tuple[str, ...]  # department kinds that lead (主责)
    co: tuple[str, ...]  # department kinds that co-handle (协办)
    members: tuple[str, ...]  # grid member kinds a community whistle calls


@dataclass(frozen=True)
class SituationCatalog:
    grades: dict[str, Grade]  # in GRADES order
    classes: dict[str, SituationClass]  # by key, in file order
    situations: dict[str, Situation]  # by code, in file order

    def by_class(self) -> dict[str, list[Situation]]:
        """Situations grouped by class key, classes and situations in file order; a class with no
        situations maps to an empty list."""
        grouped: dict[str, list[Situation]] = {key: [] for key in self.classes}
        for situation in self.situations.values():
            grouped[situation.class_key].append(situation)
        return grouped


def _text(entry: dict, key: str, where: str, problems: list[str]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty text")
        return ""
    return value.strip()


def _unknown_keys(entry: dict, allowed: set[str], where: str, problems: list[str]) -> None:
    # Catches typos such as `co_handlers:` that would otherwise be silently ignored.
    extra = sorted(str(k) for k in entry if k not in allowed)
    if extra:
        problems.append(f"{where}: unknown key(s) {', '.join(extra)}")


def _positive_int(value: Any, where: str, problems: list[str]) -> int | None:
    # bool is an int subclass; `report_minutes: yes` must not pass as 1.
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        problems.append(f"{where}: must be a positive whole number, not {value!r}")
        return None
    return value


def _read(path: Path) -> tuple[Any, list[int]]:
    """The parsed document and the 1-based line of each item of its `situations` list (for the
    messages); composing the node tree first is what keeps the line numbers."""
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (OSError, UnicodeDecodeError) as exc:
        raise SituationError(f"{path}: cannot read the file: {exc}") from None
    except yaml.YAMLError as exc:
        # One line, with the file's own name and line, not PyYAML's multi-line "<unicode string>".
        mark = getattr(exc, "problem_mark", None)
        place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise SituationError(f"{path.name}: invalid YAML{place}: {detail}") from None
    lines: list[int] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "situations" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]
    return data, lines


def _grades(raw: Any, name: str, problems: list[str]) -> dict[str, Grade]:
    if not isinstance(raw, dict):
        problems.append(f"{name}: 'grades' must map each of {', '.join(GRADES)} to its limits")
        return {}
    if set(raw) != set(GRADES):
        found = ", ".join(str(k) for k in raw) or "none"
        problems.append(f"{name}: grades must be exactly {', '.join(GRADES)}, not {found}")
    grades: dict[str, Grade] = {}
    for code in GRADES:
        entry = raw.get(code)
        where = f"{name}: grades.{code}"
        if entry is None:
            continue  # reported above
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        _unknown_keys(entry, _GRADE_KEYS, where, problems)
        name_zh = _text(entry, "name_zh", where, problems)
        name_en = _text(entry, "name_en", where, problems)
        report = _positive_int(entry.get("report_minutes"), f"{where}.report_minutes", problems)
        resolve = _positive_int(entry.get("resolve_hours"), f"{where}.resolve_hours", problems)
        if report is not None and resolve is not None:
            grades[code] = Grade(code, name_zh, name_en, report, resolve)
    return grades


def _classes(raw: Any, name: str, problems: list[str]) -> dict[str, SituationClass]:
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{name}: 'classes' must map class keys to {{code, name_zh, name_en}}")
        return {}
    classes: dict[str, SituationClass] = {}
    codes: dict[str, str] = {}
    for key, entry in raw.items():
        where = f"{name}: classes.{key}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        _unknown_keys(entry, _CLASS_KEYS, where, problems)
        code = entry.get("code")
        name_zh = _text(entry, "name_zh", where, problems)
        name_en = _text(entry, "name_en", where, problems)
        if not isinstance(code, str) or not _CLASS_CODE.fullmatch(code):
            problems.append(f"{where}: bad class code {code!r}; expected two uppercase letters")
            continue
        if code in codes:
            problems.append(f"{where}: class code {code} is already used by {codes[code]}")
            continue
        codes[code] = str(key)
        classes[str(key)] = SituationClass(str(key), code, name_zh, name_en)
    return classes


def _kinds(
    entry: dict, key: str, allowed: dict[str, str], where: str, problems: list[str],
    *, required: bool, what: str,
) -> tuple[str, ...]:  # fmt: skip
    if required and key not in entry:
        problems.append(f"{where}: missing {key}; it must name at least one {what} kind")
        return ()
    raw = entry.get(key)
    if raw is None and not required:
        raw = []  # `co:` left empty means no co-handlers
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        problems.append(f"{where}: {key} must be a list of {what} kinds")
        return ()
    if required and not raw:
        problems.append(f"{where}: {key} must name at least one {what} kind")
    for kind in raw:
        if kind not in allowed:
            problems.append(
                f"{where}: unknown {what} kind {kind!r} in {key}; kinds: {', '.join(allowed)}"
            )
    for kind in sorted({k for k in raw if raw.count(k) > 1}):
        problems.append(f"{where}: {kind!r} is listed twice in {key}")
    return tuple(raw)


def load_situations(path: Path = DEFAULT_SITUATIONS) -> SituationCatalog:
    """Read and check a call-situation catalogue; any fault refuses the whole file with a
    SituationError that lists every problem found, each on its own line with its place."""
    path = Path(path)
    data, lines = _read(path)
    name = path.name
    if not isinstance(data, dict):
        raise SituationError(f"{name}: expected a mapping with {', '.join(sorted(_TOP_KEYS))}")
    problems: list[str] = []
    for key in ("grades", "classes", "situations"):
        if key not in data:
            problems.append(f"{name}: missing top-level key '{key}'")
    _unknown_keys(data, _TOP_KEYS, name, problems)
    grades = _grades(data["grades"], name, problems) if "grades" in data else {}
    classes = _classes(data["classes"], name, problems) if "classes" in data else {}
    raw = data.get("situations", [])
    if not isinstance(raw, list):
        problems.append(f"{name}: 'situations' must be a list")
        raw = []
    elif "situations" in data and not raw:
        problems.append(f"{name}: 'situations' is empty")
    # A class listed but refused is reported once, at the class, not at each of its situations;
    # with no 'classes' at all the missing key is the one message.
    listed = data.get("classes") if isinstance(data.get("classes"), dict) else None
    situations: dict[str, Situation] = {}
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        line = f", line {lines[i]}" if i < len(lines) else ""
        if not isinstance(entry, dict):
            problems.append(f"{name}: situations[{i}]{line}: must be a mapping")
            continue
        code = entry.get("code")
        where = f"{name}: situations[{i}] ({code}{line})"
        _unknown_keys(entry, _SITUATION_KEYS, where, problems)
        class_key = entry.get("class")
        klass = classes.get(class_key) if isinstance(class_key, str) else None
        if listed is not None and (not isinstance(class_key, str) or class_key not in listed):
            problems.append(f"{where}: unknown class {class_key!r}; classes: "
                            f"{', '.join(classes) or 'none'}")  # fmt: skip
        if not isinstance(code, str) or not _SITUATION_CODE.fullmatch(code):
            problems.append(f"{where}: bad situation code {code!r}; expected the class code and "
                            f"2 digits, e.g. MD01")  # fmt: skip
        else:
            if code in seen:
                problems.append(
                    f"{where}: duplicate code {code} (first at situations[{seen[code]}])"
                )
            else:
                seen[code] = i
            if klass is not None and code[:2] != klass.code:
                problems.append(f"{where}: code {code} does not start with the code {klass.code} "
                                f"of its class {klass.key}")  # fmt: skip
        grade = entry.get("grade")
        if grade not in GRADES:
            problems.append(f"{where}: unknown grade {grade!r}; grades: {', '.join(GRADES)}")
        name_zh = _text(entry, "name_zh", where, problems)
        name_en = _text(entry, "name_en", where, problems)
        lead = _kinds(entry, "lead", DEPARTMENT_KINDS, where, problems,
                      required=True, what="department")  # fmt: skip
        co = _kinds(entry, "co", DEPARTMENT_KINDS, where, problems,
                    required=False, what="department")  # fmt: skip
        for kind in sorted(set(lead) & set(co)):
            problems.append(f"{where}: {kind!r} is both lead and co; a kind is one or the other")
        members = _kinds(entry, "members", MEMBER_KINDS, where, problems,
                         required=True, what="member")  # fmt: skip
        if problems or klass is None:
            continue  # keep collecting problems; the result is discarded anyway
        situations[code] = Situation(code, klass.key, name_zh, name_en, grade, lead, co, members)
    if problems:
        raise SituationError(problems)
    return SituationCatalog(grades=grades, classes=classes, situations=situations)


def grade_limits(
    catalog: SituationCatalog, overrides: dict[str, tuple[int, int]] | None = None
) -> dict[str, tuple[dt.timedelta, dt.timedelta]]:
    """Per grade, (report-on-site limit, resolve limit). ``overrides`` maps a grade to
    (report_minutes, resolve_hours) and replaces the catalogue's defaults for that grade (how
    settings make the limits configurable); grades not named keep their defaults."""
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(catalog.grades))
    if unknown:
        raise ValueError(f"unknown grade(s) {', '.join(unknown)}; grades: {', '.join(GRADES)}")
    limits: dict[str, tuple[dt.timedelta, dt.timedelta]] = {}
    for code, grade in catalog.grades.items():
        report, resolve = overrides.get(code, (grade.report_minutes, grade.resolve_hours))
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in (report, resolve)):  # fmt: skip
            raise ValueError(f"grade {code}: limits must be positive whole numbers, "
                             f"not {(report, resolve)!r}")  # fmt: skip
        limits[code] = (dt.timedelta(minutes=report), dt.timedelta(hours=resolve))
    return limits
