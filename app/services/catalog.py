"""The incident class catalogue (案件分类): parts (部件) and events (事件) of digital urban
management (GB/T 30428-style) and social-governance classes (社会治理), each with its filing and
closing conditions (立案 / 结案条件), a time limit per step and the kind of department that owns it.

The catalogue is data — data/catalogs/incident_classes.yaml — read and checked here. Pure Python
on purpose (no database, no web framework): the API, the CLI and the tests load it the same way.

Codes: a kind letter (P part, E event, S social) + 2-digit major + 2-digit minor, e.g. ``E0101``;
a major is written with its letter (``E01``) so that majors of different kinds stay distinct.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from app.services.identity import DEPARTMENT_KINDS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CATALOG = ROOT / "data" / "catalogs" / "incident_classes.yaml"
DEFAULT_CALENDAR = ROOT / "data" / "catalogs" / "calendar.yaml"

TIME_TYPES = ("urgent_work_hours", "work_hours", "work_days", "natural_days")
STEPS = ("dispatch", "handle", "verify")
KINDS = {"P": "part", "E": "event", "S": "social"}

DEFAULT_DUPLICATE_RADIUS_M = 100.0
DEFAULT_DUPLICATE_WINDOW_H = 72.0

# [0-9], not \d: \d also matches full-width and other Unicode digits.
_MAJOR_CODE = re.compile(r"[PES](0[1-9]|[1-9][0-9])")
_CLASS_CODE = re.compile(r"[PES](0[1-9]|[1-9][0-9])(0[1-9]|[1-9][0-9])")
_CODE_LIKE = re.compile(r"[A-Za-z]?[0-9]*")

_TOP_KEYS = {"version", "time_types", "majors", "classes"}
_MAJOR_KEYS = {"code", "kind", "name_zh", "name_en"}
_CLASS_KEYS = {
    "code", "name_zh", "name_en", "filing_condition", "closing_condition", "limits",
    "department_kind", "duplicate_radius_m", "duplicate_window_h", "urgent",
}  # fmt: skip
_LIMIT_KEYS = {"amount", "time_type"}


class CatalogError(ValueError):
    """A catalogue or calendar file that cannot be used; ``problems`` names every fault and its
    place, one per item."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class StepLimit:
    amount: float
    time_type: str


@dataclass(frozen=True)
class IncidentClass:
    code: str  # e.g. "E0101"
    kind: str  # "part" | "event" | "social"
    major_code: str  # the 2-digit major, e.g. "01" (with kind it names the major)
    major_name_zh: str
    major_name_en: str
    name_zh: str
    name_en: str
    filing_condition: str
    closing_condition: str
    limits: dict[str, StepLimit]  # one per step in STEPS
    department_kind: str
    duplicate_radius_m: float = DEFAULT_DUPLICATE_RADIUS_M
    duplicate_window_h: float = DEFAULT_DUPLICATE_WINDOW_H
    urgent: bool = False


@dataclass(frozen=True)
class Catalog:
    classes: dict[str, IncidentClass]  # by code, in file order
    majors: dict[str, dict]  # by lettered code ("P01"): {code, kind, name_zh, name_en}
    time_types: dict[str, dict] = field(default_factory=dict)  # descriptions, if the file has them


def _is_number(value: Any) -> bool:
    # bool is an int subclass; `amount: yes` must not pass as 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(entry: dict, key: str, where: str, problems: list[str]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where}: {key} must be a non-empty text")
        return ""
    return value.strip()


def _positive(value: Any, where: str, problems: list[str]) -> float | None:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        problems.append(f"{where}: must be a positive number, not {value!r}")
        return None
    return float(value)


def _unknown_keys(entry: dict, allowed: set[str], where: str, problems: list[str]) -> None:
    extra = sorted(str(k) for k in entry if k not in allowed)
    if extra:
        problems.append(f"{where}: unknown key(s) {', '.join(extra)}")


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from None


def _limits(raw: Any, where: str, problems: list[str]) -> dict[str, StepLimit]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: limits must map each of {', '.join(STEPS)} to a limit")
        return {}
    for step in raw:
        if step not in STEPS:
            problems.append(f"{where}: limits.{step}: unknown step; steps: {', '.join(STEPS)}")
    limits: dict[str, StepLimit] = {}
    for step in STEPS:
        place = f"{where}: limits.{step}"
        limit = raw.get(step)
        if limit is None:
            problems.append(f"{place}: missing step")
            continue
        if not isinstance(limit, dict):
            problems.append(f"{place}: must be {{amount, time_type}}")
            continue
        _unknown_keys(limit, _LIMIT_KEYS, place, problems)
        amount = _positive(limit.get("amount"), f"{place}.amount", problems)
        time_type = limit.get("time_type")
        if time_type not in TIME_TYPES:
            problems.append(
                f"{place}.time_type: unknown time type {time_type!r}; "
                f"time types: {', '.join(TIME_TYPES)}"
            )
        elif amount is not None:
            limits[step] = StepLimit(amount, time_type)
    return limits


def _majors(raw: Any, name: str, problems: list[str]) -> dict[str, dict]:
    majors: dict[str, dict] = {}
    if not isinstance(raw, list):
        problems.append(f"{name}: expected a top-level 'majors' list")
        return majors
    for i, entry in enumerate(raw):
        where = f"{name}: majors[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        code = entry.get("code")
        where = f"{where} ({code})"
        _unknown_keys(entry, _MAJOR_KEYS, where, problems)
        ok = True
        if not isinstance(code, str) or not _MAJOR_CODE.fullmatch(code):
            problems.append(f"{where}: bad major code {code!r}; expected a kind letter "
                            f"(P, E, S) and 2 digits, e.g. P01")  # fmt: skip
            ok = False
        elif code in majors:
            problems.append(f"{where}: duplicate major code {code}")
            ok = False
        kind = entry.get("kind")
        if kind not in KINDS.values():
            problems.append(f"{where}: unknown kind {kind!r}; kinds: {', '.join(KINDS.values())}")
            ok = False
        elif isinstance(code, str) and code[:1] in KINDS and KINDS[code[0]] != kind:
            problems.append(f"{where}: kind {kind!r} does not match the letter of {code}")
            ok = False
        name_zh = _text(entry, "name_zh", where, problems)
        name_en = _text(entry, "name_en", where, problems)
        if ok:
            majors[code] = {"code": code, "kind": kind, "name_zh": name_zh, "name_en": name_en}
    return majors


def _time_types(raw: Any, name: str, problems: list[str]) -> dict[str, dict]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{name}: time_types must map time types to their descriptions")
        return {}
    described: dict[str, dict] = {}
    for key, value in raw.items():
        where = f"{name}: time_types.{key}"
        if key not in TIME_TYPES:
            problems.append(f"{where}: unknown time type; time types: {', '.join(TIME_TYPES)}")
        elif not isinstance(value, dict):
            problems.append(f"{where}: must be a mapping")
        else:
            _text(value, "name_zh", where, problems)
            _text(value, "name_en", where, problems)
            described[key] = dict(value)
    return described


def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    """Read and check a catalogue file; any fault refuses the whole file with a CatalogError that
    lists every problem found, each with its place (file, entry index, code, field)."""
    path = Path(path)
    data = _read_yaml(path)
    name = path.name
    if not isinstance(data, dict):
        raise CatalogError(f"{name}: expected a mapping with 'majors' and 'classes'")
    problems: list[str] = []
    _unknown_keys(data, _TOP_KEYS, name, problems)
    time_types = _time_types(data.get("time_types"), name, problems)
    majors = _majors(data.get("majors"), name, problems)
    raw_classes = data.get("classes")
    classes: dict[str, IncidentClass] = {}
    if not isinstance(raw_classes, list):
        problems.append(f"{name}: expected a top-level 'classes' list")
        raw_classes = []
    seen: set[str] = set()
    for i, entry in enumerate(raw_classes):
        where = f"{name}: classes[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        code = entry.get("code")
        where = f"{where} ({code})"
        _unknown_keys(entry, _CLASS_KEYS, where, problems)
        ok = True
        major: dict | None = None
        if not isinstance(code, str) or not _CLASS_CODE.fullmatch(code):
            problems.append(f"{where}: bad class code {code!r}; expected a kind letter (P, E, S), "
                            f"a 2-digit major and a 2-digit minor, e.g. E0101")  # fmt: skip
            ok = False
        else:
            if code in seen:
                problems.append(f"{where}: duplicate class code {code}")
                ok = False
            seen.add(code)
            major = majors.get(code[:3])
            if major is None:
                problems.append(f"{where}: its major {code[:3]} is not in 'majors'")
                ok = False
        texts = {
            key: _text(entry, key, where, problems)
            for key in ("name_zh", "name_en", "filing_condition", "closing_condition")
        }
        limits = _limits(entry.get("limits"), where, problems)
        department_kind = entry.get("department_kind")
        if department_kind not in DEPARTMENT_KINDS:
            problems.append(f"{where}: unknown department kind {department_kind!r}; "
                            f"kinds: {', '.join(DEPARTMENT_KINDS)}")  # fmt: skip
        radius = entry.get("duplicate_radius_m", DEFAULT_DUPLICATE_RADIUS_M)
        radius = _positive(radius, f"{where}: duplicate_radius_m", problems)
        window = entry.get("duplicate_window_h", DEFAULT_DUPLICATE_WINDOW_H)
        window = _positive(window, f"{where}: duplicate_window_h", problems)
        urgent = entry.get("urgent", False)
        if not isinstance(urgent, bool):
            problems.append(f"{where}: urgent must be true or false, not {urgent!r}")
        if problems or not ok or major is None:
            continue  # keep collecting problems; the result is discarded anyway
        classes[code] = IncidentClass(
            code=code,
            kind=major["kind"],
            major_code=code[1:3],
            major_name_zh=major["name_zh"],
            major_name_en=major["name_en"],
            limits=limits,
            department_kind=department_kind,
            duplicate_radius_m=radius,
            duplicate_window_h=window,
            urgent=urgent,
            **texts,
        )
    if problems:
        raise CatalogError(problems)
    if not classes:
        raise CatalogError(f"{name}: the catalogue has no classes")
    return Catalog(classes=classes, majors=majors, time_types=time_types)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def nearest_codes(catalog: Catalog, code: str, n: int = 5) -> list[str]:
    """The known codes most like an unknown one, best first, for a "did you mean" answer.

    Text that is not code-like (井盖, "lamp") is matched against the class names first. Codes are
    ranked by the length of the shared prefix (same kind, then same major) and then by difflib
    similarity, so ``E0199`` suggests the E01 classes before ``P0199``-like look-alikes."""
    text = code.strip()
    if not text or n <= 0:
        return []
    upper = text.upper()
    found: list[str] = [upper] if upper in catalog.classes else []
    if not _CODE_LIKE.fullmatch(text):
        lowered = text.lower()
        named = [c.code for c in catalog.classes.values()
                 if lowered in c.name_zh.lower() or lowered in c.name_en.lower()]  # fmt: skip
        if not named:  # 路灯坏了 → 路灯: near names when no name contains the text
            by_name = {c.name_zh: c.code for c in catalog.classes.values()}
            near = difflib.get_close_matches(text, list(by_name), n=n, cutoff=0.5)
            named = [by_name[name] for name in near]
        found += named
    scored = []
    for known in catalog.classes:
        prefix = _common_prefix(upper, known)
        ratio = difflib.SequenceMatcher(None, upper, known).ratio()
        if prefix >= 1 or ratio >= 0.6:
            scored.append((-prefix, -ratio, known))
    found += [known for *_, known in sorted(scored)]
    return list(dict.fromkeys(found))[:n]
