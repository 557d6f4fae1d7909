"""Working time (工作时 / 工作日): deadlines and elapsed time in the four time types of the case
loop, on a working-time calendar read from YAML (data/catalogs/calendar.yaml): the zone, the
working week, the work-hour and urgent windows of a day, public holidays and the adjusted working
days (调休上班) that fall on weekends.

The rules, per time type:

- ``natural_days``: absolute time, amount × 24 h.
- ``work_hours``: only time inside the work-hour windows of working days counts.
  ``urgent_work_hours``: only time inside the urgent windows counts, every day (weekends and
  holidays included). A start outside the windows begins counting at the next window. A deadline
  that uses up a window exactly is that window's end (Friday 17:30, not Monday 08:30).
- ``work_days``: the whole part n moves to the same wall-clock time on the n-th next working day;
  the fraction f is then counted as f × (one working day's work hours) of ``work_hours`` (with
  08:30–12:00 and 13:30–17:30, half a day is 3.75 working hours). A start on a day off begins at
  the first work window of the next working day; a start on a working day keeps its clock time,
  even outside work hours.

A zero amount (after rounding to whole microseconds) is the start itself, whatever the type, so
that deadline(deadline(s, a), b) == deadline(s, a + b) holds for b = 0 as well.

Windows are wall-clock times in the calendar's zone (China has no daylight saving time; a zone
with a clock change inside a window would be off by the change). Amounts are counted in whole
microseconds so that deadlines compose exactly, and days are found with a sorted index of working
days, so a call costs a few bisections, not a walk.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from app.services.catalog import DEFAULT_CALENDAR, TIME_TYPES, CatalogError, _read_yaml

_US = 1_000_000
_MINUTE_US = 60 * _US
_HOUR_US = 60 * _MINUTE_US
_DAY_US = 24 * _HOUR_US
_UTC = dt.UTC

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Window = tuple[int, int]  # microseconds after local midnight, [start, end)


def _clock(value: Any) -> int | None:
    """ "HH:MM" → microseconds after midnight; "24:00" is the end of the day."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        return None
    hh, mm = value[:2], value[3:]
    if not (hh.isascii() and hh.isdigit() and mm.isascii() and mm.isdigit()):
        return None
    hours, minutes = int(hh), int(mm)
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours * _HOUR_US + minutes * _MINUTE_US


def _windows(raw: Any, where: str, problems: list[str]) -> tuple[Window, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f'{where}: must be a non-empty list of ["HH:MM", "HH:MM"] windows')
        return ()
    windows: list[Window] = []
    for i, pair in enumerate(raw):
        place = f"{where}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            problems.append(f'{place}: must be ["HH:MM", "HH:MM"] (quote the times)')
            continue
        start, end = _clock(pair[0]), _clock(pair[1])
        if start is None or end is None:
            problems.append(f'{place}: bad time in {pair!r}; write "HH:MM" in quotes')
        elif start >= end:
            problems.append(f"{place}: {pair[0]} is not before {pair[1]}")
        elif windows and start < windows[-1][1]:
            problems.append(f"{place}: overlaps or precedes the window before it")
        else:
            windows.append((start, end))
    return tuple(windows)


def _date(value: Any, where: str, problems: list[str]) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    problems.append(f"{where}: bad date {value!r}; write YYYY-MM-DD")
    return None


class WorkCalendar:
    """A working-time calendar. Build it with ``load_calendar``; the attributes are read-only by
    convention (the working-day index below depends on them)."""

    def __init__(
        self,
        timezone: str,
        work_weekdays: frozenset[int],
        work_hours: tuple[Window, ...],
        urgent_work_hours: tuple[Window, ...],
        holidays: dict[dt.date, str],
        adjusted_workdays: dict[dt.date, str],
    ) -> None:
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self.work_weekdays = work_weekdays  # date.weekday(): 0 = Monday
        self.work_hours = work_hours
        self.urgent_work_hours = urgent_work_hours
        self.holidays = holidays  # date → holiday name
        self.adjusted_workdays = adjusted_workdays  # date → the holiday it makes up for
        # Years whose holidays the file lists; outside them only the working week applies.
        self.years = frozenset(d.year for d in (*holidays, *adjusted_workdays))
        self._work_len = sum(e - s for s, e in work_hours)
        self._urgent_len = sum(e - s for s, e in urgent_work_hours)
        self._off = {d.toordinal() for d in holidays}
        self._on = {d.toordinal() for d in adjusted_workdays}
        # Sorted ordinals of the working days in [_lo, _hi), grown on demand.
        self._lo = self._hi = 0
        self._days: list[int] = []

    @property
    def hours_per_work_day(self) -> float:
        return self._work_len / _HOUR_US

    def __repr__(self) -> str:
        return f"WorkCalendar({self.timezone!r}, years={sorted(self.years)})"

    # -- days -----------------------------------------------------------------------------------

    def is_workday(self, day: dt.date) -> bool:
        """Holidays are off, adjusted working days (调休上班) are on, else the working week."""
        return self._is_workday(day.toordinal())

    def _is_workday(self, ordinal: int) -> bool:
        if ordinal in self._on:
            return True
        if ordinal in self._off:
            return False
        return (ordinal - 1) % 7 in self.work_weekdays  # ordinal 1 (0001-01-01) is a Monday

    def _cover(self, lo: int, hi: int) -> None:
        """Make the index hold every working day in [lo, hi)."""
        if self._lo <= lo and hi <= self._hi and self._days:
            return
        span = max(732, self._hi - self._lo)  # grow geometrically: few rebuilds
        new_lo = min(lo, self._lo if self._days else lo) - span
        new_hi = max(hi, self._hi if self._days else hi) + span
        new_lo, new_hi = max(new_lo, 1), min(new_hi, dt.date.max.toordinal() + 1)
        self._days = [o for o in range(new_lo, new_hi) if self._is_workday(o)]
        self._lo, self._hi = new_lo, new_hi

    def _nth_workday(self, ordinal: int, n: int) -> int:
        """The n-th working day after the day ``ordinal`` (n ≥ 1)."""
        reach = ordinal + 1 + 2 * n + 14
        while True:
            self._cover(ordinal + 1, reach)
            i = bisect.bisect_right(self._days, ordinal) + n - 1
            if i < len(self._days):
                return self._days[i]
            if self._hi > dt.date.max.toordinal():
                raise OverflowError("the working day falls after 9999-12-31")
            reach += 2 * n + 366

    def _workdays_between(self, first: int, last: int) -> int:
        """How many working days lie strictly between two days."""
        if last - first < 2:
            return 0
        self._cover(first + 1, last)
        return bisect.bisect_left(self._days, last) - bisect.bisect_right(self._days, first)

    # -- hours ----------------------------------------------------------------------------------

    def _plan(self, urgent: bool) -> tuple[tuple[Window, ...], int]:
        if urgent:
            return self.urgent_work_hours, self._urgent_len
        return self.work_hours, self._work_len

    def _on_day(self, ordinal: int, urgent: bool) -> bool:
        return urgent or self._is_workday(ordinal)

    def _next_on_day(self, ordinal: int, n: int, urgent: bool) -> int:
        return ordinal + n if urgent else self._nth_workday(ordinal, n)

    def _add_hours(self, day: int, at: int, amount: int, urgent: bool) -> tuple[int, int]:
        """The moment at which ``amount`` µs of window time have passed since (day, at)."""
        if amount == 0:  # nothing to count: the start itself, so that chains compose
            return day, at
        windows, length = self._plan(urgent)
        if self._on_day(day, urgent):
            for start, end in windows:
                if at < end:
                    begin = max(at, start)
                    if amount <= end - begin:
                        return day, begin + amount
                    amount -= end - begin
        whole = -(-amount // length)  # the deadline falls on the whole-th next day
        day = self._next_on_day(day, whole, urgent)
        amount -= (whole - 1) * length  # now in (0, length]
        for start, end in windows:
            if amount <= end - start:
                return day, start + amount
            amount -= end - start
        raise AssertionError("unreachable: amount exceeded a day's windows")

    def _hours_between(self, a: tuple[int, int], b: tuple[int, int], urgent: bool) -> int:
        """Window time (µs) from a to b, a ≤ b, both (day ordinal, µs after midnight)."""
        windows, length = self._plan(urgent)

        def inside(lo: int, hi: int) -> int:
            return sum(max(0, min(hi, end) - max(lo, start)) for start, end in windows)

        (d1, t1), (d2, t2) = a, b
        if d1 == d2:
            return inside(t1, t2) if self._on_day(d1, urgent) else 0
        total = inside(t1, _DAY_US) if self._on_day(d1, urgent) else 0
        total += inside(0, t2) if self._on_day(d2, urgent) else 0
        between = d2 - d1 - 1 if urgent else self._workdays_between(d1, d2)
        return total + between * length

    # -- conversions ----------------------------------------------------------------------------

    def _local(self, moment: dt.datetime, name: str = "start") -> tuple[int, int]:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, not {moment!r}")
        local = moment.astimezone(self.zone)
        clock = (local.hour * 60 + local.minute) * _MINUTE_US + local.second * _US
        return local.toordinal(), clock + local.microsecond

    def _moment(self, day: int, at: int) -> dt.datetime:
        day, at = day + at // _DAY_US, at % _DAY_US  # a window may end at 24:00
        hours, rest = divmod(at, _HOUR_US)
        minutes, rest = divmod(rest, _MINUTE_US)
        seconds, micro = divmod(rest, _US)
        clock = dt.time(hours, minutes, seconds, micro)
        return dt.datetime.combine(dt.date.fromordinal(day), clock, tzinfo=self.zone)

    def _workday_start(self, day: int, at: int) -> tuple[int, int]:
        if self._is_workday(day):
            return day, at
        return self._nth_workday(day, 1), self.work_hours[0][0]

    @staticmethod
    def _check(time_type: str, amount: float | None = None) -> None:
        if time_type not in TIME_TYPES:
            raise ValueError(
                f"unknown time type {time_type!r}; time types: {', '.join(TIME_TYPES)}"
            )
        if amount is not None and (not math.isfinite(amount) or amount < 0):
            raise ValueError(f"amount must be a finite number ≥ 0, not {amount!r}")

    # -- the public measures --------------------------------------------------------------------

    def deadline(self, start: dt.datetime, amount: float, time_type: str) -> dt.datetime:
        """The moment ``amount`` units of ``time_type`` after ``start`` (aware, in this zone)."""
        self._check(time_type, amount)
        if time_type == "natural_days":
            self._local(start)  # refuses a naive start
            span = dt.timedelta(microseconds=round(amount * _DAY_US))
            return (start.astimezone(_UTC) + span).astimezone(self.zone)
        day, at = self._local(start)
        if time_type == "work_days":
            whole = math.floor(amount)
            fraction = round((amount - whole) * self._work_len)
            if not whole and not fraction:
                return start.astimezone(self.zone)
            day, at = self._workday_start(day, at)
            if whole:
                day = self._nth_workday(day, whole)
            if fraction:
                day, at = self._add_hours(day, at, fraction, urgent=False)
            return self._moment(day, at)
        urgent = time_type == "urgent_work_hours"
        return self._moment(*self._add_hours(day, at, round(amount * _HOUR_US), urgent))

    def elapsed(self, start: dt.datetime, end: dt.datetime, time_type: str) -> float:
        """Units of ``time_type`` from ``start`` to ``end`` (negative when end is earlier): the
        inverse of ``deadline``, so elapsed(s, deadline(s, a, t), t) == a."""
        self._check(time_type)
        a, b = self._local(start), self._local(end, "end")
        if time_type == "natural_days":
            return (end.astimezone(_UTC) - start.astimezone(_UTC)) / dt.timedelta(days=1)
        if b < a:
            return -self.elapsed(end, start, time_type)
        if time_type != "work_days":
            urgent = time_type == "urgent_work_hours"
            return self._hours_between(a, b, urgent) / _HOUR_US
        a = self._workday_start(*a)
        if b <= a:
            return 0.0
        (day, at), (end_day, end_at) = a, b
        # whole: the most working days n with (n-th next working day, same clock) ≤ end
        whole = self._workdays_between(day, end_day + 1)
        if whole and self._nth_workday(day, whole) == end_day and end_at < at:
            whole -= 1
        base = self._nth_workday(day, whole) if whole else day
        return whole + self._hours_between((base, at), b, urgent=False) / self._work_len


def load_calendar(path: Path = DEFAULT_CALENDAR) -> WorkCalendar:
    """Read and check a calendar file; any fault raises a CatalogError naming every problem."""
    path = Path(path)
    data = _read_yaml(path)
    name = path.name
    if not isinstance(data, dict):
        raise CatalogError(f"{name}: expected a mapping (timezone, work_week, work_hours, …)")
    problems: list[str] = []
    known = {"timezone", "work_week", "work_hours", "urgent_work_hours", "holidays",
             "adjusted_workdays"}  # fmt: skip
    extra = sorted(str(k) for k in data if k not in known)
    if extra:
        problems.append(f"{name}: unknown key(s) {', '.join(extra)}")

    timezone = data.get("timezone")
    try:
        ZoneInfo(str(timezone))
        if not isinstance(timezone, str):
            raise ValueError
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{name}: timezone: unknown time zone {timezone!r} (e.g. Asia/Shanghai)")

    week = data.get("work_week")
    weekdays: set[int] = set()
    if not isinstance(week, list) or not week:
        problems.append(f"{name}: work_week: must be a non-empty list of {', '.join(WEEKDAYS)}")
    else:
        for i, w in enumerate(week):
            if w not in WEEKDAYS:
                problems.append(f"{name}: work_week[{i}]: unknown day {w!r}; days: "
                                f"{', '.join(WEEKDAYS)}")  # fmt: skip
            elif WEEKDAYS.index(w) in weekdays:
                problems.append(f"{name}: work_week[{i}]: {w} appears twice")
            else:
                weekdays.add(WEEKDAYS.index(w))

    work = _windows(data.get("work_hours"), f"{name}: work_hours", problems)
    urgent = _windows(data.get("urgent_work_hours"), f"{name}: urgent_work_hours", problems)

    holidays: dict[dt.date, str] = {}
    raw = data.get("holidays") or []
    if not isinstance(raw, list):
        problems.append(f"{name}: holidays: must be a list")
        raw = []
    for i, h in enumerate(raw):
        where = f"{name}: holidays[{i}]"
        if not isinstance(h, dict):
            problems.append(f"{where}: must be {{name_zh, name_en, start, end}}")
            continue
        label = h.get("name_zh")
        where = f"{where} ({label})"
        if not isinstance(label, str) or not label.strip():
            problems.append(f"{where}: name_zh must be a non-empty text")
        first = _date(h.get("start"), f"{where}: start", problems)
        last = _date(h.get("end"), f"{where}: end", problems)
        if first is None or last is None:
            continue
        if last < first or (last - first).days > 31:
            problems.append(f"{where}: {first} … {last} is not a holiday span (≤ 32 days)")
            continue
        for k in range((last - first).days + 1):
            d = first + dt.timedelta(days=k)
            if d in holidays:
                problems.append(f"{where}: {d} is already a holiday ({holidays[d]})")
            holidays[d] = str(label)

    adjusted: dict[dt.date, str] = {}
    raw = data.get("adjusted_workdays") or []
    if not isinstance(raw, list):
        problems.append(f"{name}: adjusted_workdays: must be a list")
        raw = []
    for i, a in enumerate(raw):
        where = f"{name}: adjusted_workdays[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{where}: must be {{date, for}}")
            continue
        d = _date(a.get("date"), where, problems)
        if d is None:
            continue
        if d in holidays:
            problems.append(f"{where}: {d} is also a holiday ({holidays[d]})")
        elif d in adjusted:
            problems.append(f"{where}: {d} appears twice")
        elif d.weekday() in weekdays:
            problems.append(f"{where}: {d} is already a working day ({WEEKDAYS[d.weekday()]})")
        adjusted[d] = str(a.get("for") or "")

    if problems:
        raise CatalogError(problems)
    return WorkCalendar(str(timezone), frozenset(weekdays), work, urgent, holidays, adjusted)
