"""The four grid levels and their codes.

A code is the parent's code followed by this level's segment: administrative code (GB/T 2260,
6 digits) + street (3) + community (3) + grid sequence (3) = 15 digits by default (Beijing
DB11/T 2157-2023). Other cities use other widths, e.g. 2 for the grid sequence, so the widths are
a setting (``GRIDMAP_CODE_WIDTHS``, default ``6,3,3,3``). Inside a community the grid sequence runs
west→east, north→south (reading order), see :func:`reading_order`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "LEVELS",
    "LEVEL_ALIASES",
    "CodeScheme",
    "level_rank",
    "normalise_level",
    "reading_order",
]

LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")

# What boundary files call the levels in practice (English, Chinese, numeric rank).
LEVEL_ALIASES: dict[str, str] = {
    "district": "district",
    "区": "district",
    "区县": "district",
    "1": "district",
    "street": "street",
    "subdistrict": "street",
    "街道": "street",
    "街镇": "street",
    "2": "street",
    "community": "community",
    "社区": "community",
    "3": "community",
    "grid": "grid",
    "basic": "grid",
    "basic_grid": "grid",
    "网格": "grid",
    "基础网格": "grid",
    "4": "grid",
}


def normalise_level(value: object) -> str | None:
    """The canonical level name for ``value``, or None if it names no level."""
    if value is None:
        return None
    if isinstance(value, float):
        if np.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    return LEVEL_ALIASES.get(str(value).strip().lower())


def level_rank(level: str) -> int:
    """0 for district … 3 for grid."""
    return LEVELS.index(level)


@dataclass(frozen=True)
class CodeScheme:
    """Digit widths of each level's code segment."""

    widths: tuple[int, ...] = (6, 3, 3, 3)

    def __post_init__(self) -> None:
        if len(self.widths) != len(LEVELS) or any(w < 1 for w in self.widths):
            raise ValueError(
                f"code widths must be {len(LEVELS)} positive integers, got {self.widths}"
            )

    @classmethod
    def parse(cls, text: str) -> CodeScheme:
        """From ``"6,3,3,3"``."""
        try:
            widths = tuple(int(part) for part in text.split(","))
        except ValueError as exc:
            raise ValueError(f"code widths must look like '6,3,3,3', got {text!r}") from exc
        return cls(widths)

    def length(self, level: str) -> int:
        """Total digits of a full code at ``level``."""
        return sum(self.widths[: level_rank(level) + 1])

    def level_of(self, code: str) -> str | None:
        """The level a code of this length belongs to, if any."""
        for level in LEVELS:
            if len(code) == self.length(level):
                return level
        return None

    def child_code(self, parent_code: str, level: str, sequence: int) -> str:
        """The code of the ``sequence``-th child (1-based) at ``level`` under ``parent_code``."""
        width = self.widths[level_rank(level)]
        if not 1 <= sequence < 10**width:
            raise ValueError(f"sequence {sequence} does not fit {width} digits")
        return f"{parent_code}{sequence:0{width}d}"

    def problems(self, code: str, level: str, parent_code: str | None) -> list[str]:
        """What is wrong with ``code`` for a region at ``level`` under ``parent_code``."""
        found: list[str] = []
        if not code.isdigit() or not code.isascii():
            found.append(f"code {code!r} must be ASCII digits only")
        want = self.length(level)
        if len(code) != want:
            found.append(f"a {level} code has {want} digits, {code!r} has {len(code)}")
        if parent_code and level != LEVELS[0] and not code.startswith(parent_code):
            found.append(f"code {code!r} does not start with its parent's code {parent_code!r}")
        if (
            level != LEVELS[0]
            and len(code) == want
            and code.isdigit()
            and int(code[-self.widths[level_rank(level)] :]) == 0
        ):
            found.append(f"code {code!r} has an all-zero {level} segment")
        return found


def reading_order(x: ArrayLike, y: ArrayLike, band: float) -> NDArray[np.intp]:
    """Indices ordering points west→east within rows, rows north→south.

    Rows are horizontal bands of height ``band`` (in the units of ``y``) counted from the
    northernmost point, so points at almost the same latitude share a row.
    """
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.size == 0:
        return np.empty(0, dtype=np.intp)
    if band <= 0:
        raise ValueError("band must be positive")
    rows = np.floor((ys.max() - ys) / band)
    return np.lexsort((xs, rows))
