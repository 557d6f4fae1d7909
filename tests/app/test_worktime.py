"""The working-time calendar: holidays, the four time types, refusals, and the algebra of
deadline and elapsed (hypothesis)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.catalog import DEFAULT_CALENDAR, TIME_TYPES, CatalogError
from app.services.worktime import WorkCalendar, load_calendar

TZ = ZoneInfo("Asia/Shanghai")
CAL = load_calendar(DEFAULT_CALENDAR)
HOUR_TYPES = ("work_hours", "urgent_work_hours")


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=TZ)


# -- days -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (dt.date(2026, 3, 6), True),  # a Friday
        (dt.date(2026, 3, 7), False),  # a Saturday
        (dt.date(2026, 1, 1), False),  # 元旦
        (dt.date(2026, 1, 4), True),  # Sunday worked for 元旦
        (dt.date(2026, 2, 17), False),  # 春节
        (dt.date(2026, 2, 14), True),  # Saturday worked for 春节
        (dt.date(2026, 4, 6), False),  # 清明 on a Monday
        (dt.date(2026, 5, 9), True),  # Saturday worked for 劳动节
        (dt.date(2026, 10, 7), False),  # 国庆
        (dt.date(2026, 9, 20), True),  # Sunday worked for 国庆
        (dt.date(2026, 10, 10), True),  # Saturday worked for 国庆
        (dt.date(2030, 6, 3), True),  # a Monday in a year the file does not list
    ],
)
def test_is_workday(day: dt.date, working: bool) -> None:
    assert CAL.is_workday(day) is working


@pytest.mark.parametrize("year", [2026, 2027])
def test_each_listed_year_loses_exactly_the_13_statutory_days(year: int) -> None:
    # Make-up days balance the bridged days, so a year has (weekdays − 13) working days
    # (2025 revision: 元旦 1, 春节 4, 清明 1, 劳动 2, 端午 1, 中秋 1, 国庆 3).
    days = [dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(365)]
    weekdays = sum(d.weekday() < 5 for d in days)
    assert sum(CAL.is_workday(d) for d in days) == weekdays - 13
    assert year in CAL.years


def test_calendar_shape() -> None:
    assert CAL.timezone == "Asia/Shanghai"
    assert CAL.hours_per_work_day == 7.5
    assert CAL.holidays[dt.date(2026, 10, 1)] == "国庆节"
    assert CAL.adjusted_workdays[dt.date(2026, 10, 10)] == "国庆节"


# -- deadlines --------------------------------------------------------------------------------


def test_friday_afternoon_work_hours_land_on_monday_morning() -> None:
    assert CAL.deadline(at(2026, 3, 6, 16, 30), 2, "work_hours") == at(2026, 3, 9, 9, 30)


def test_a_deadline_that_uses_up_the_day_is_the_end_of_the_day() -> None:
    assert CAL.deadline(at(2026, 3, 6, 16, 30), 1, "work_hours") == at(2026, 3, 6, 17, 30)
    assert CAL.deadline(at(2026, 3, 6, 8, 30), 7.5, "work_hours") == at(2026, 3, 6, 17, 30)
    assert CAL.deadline(at(2026, 3, 6, 10, 0), 2, "work_hours") == at(2026, 3, 6, 12, 0)


def test_work_hours_skip_the_lunch_break_and_start_at_the_next_window() -> None:
    assert CAL.deadline(at(2026, 3, 9, 11, 0), 2, "work_hours") == at(2026, 3, 9, 14, 30)
    assert CAL.deadline(at(2026, 3, 9, 12, 30), 1, "work_hours") == at(2026, 3, 9, 14, 30)
    assert CAL.deadline(at(2026, 3, 9, 6, 0), 1, "work_hours") == at(2026, 3, 9, 9, 30)
    assert CAL.deadline(at(2026, 3, 7, 10, 0), 0.5, "work_hours") == at(2026, 3, 9, 9, 0)
    # a zero amount is the start itself, even outside working time
    assert CAL.deadline(at(2026, 3, 9, 20, 0), 0, "work_hours") == at(2026, 3, 9, 20, 0)


def test_national_day_2026_is_skipped_and_its_saturday_counts() -> None:
    # Wed 30 Sep; 1–7 Oct off; Thu 8, Fri 9 and the adjusted Sat 10 Oct are working days.
    assert CAL.deadline(at(2026, 9, 30, 10, 0), 3, "work_days") == at(2026, 10, 10, 10, 0)
    assert CAL.deadline(at(2026, 9, 30, 16, 30), 2, "work_hours") == at(2026, 10, 8, 9, 30)
    assert CAL.deadline(at(2026, 10, 9, 17, 0), 1, "work_hours") == at(2026, 10, 10, 9, 0)
    # and the Sunday 20 Sep is worked too
    assert CAL.deadline(at(2026, 9, 18, 17, 0), 1, "work_hours") == at(2026, 9, 20, 9, 0)


def test_urgent_hours_run_over_weekends_and_holidays() -> None:
    assert CAL.deadline(at(2026, 3, 7, 21, 0), 2, "urgent_work_hours") == at(2026, 3, 8, 8, 0)
    assert CAL.deadline(at(2026, 10, 1, 10, 0), 3, "urgent_work_hours") == at(2026, 10, 1, 13, 0)
    assert CAL.deadline(at(2026, 3, 7, 23, 0), 0.5, "urgent_work_hours") == at(2026, 3, 8, 7, 30)
    assert CAL.deadline(at(2026, 3, 7, 7, 0), 30, "urgent_work_hours") == at(2026, 3, 8, 22, 0)


def test_work_days_keep_the_clock_and_count_fractions_in_work_hours() -> None:
    assert CAL.deadline(at(2026, 3, 6, 15, 0), 1, "work_days") == at(2026, 3, 9, 15, 0)
    assert CAL.deadline(at(2026, 3, 9, 20, 0), 1, "work_days") == at(2026, 3, 10, 20, 0)
    # 1.5 days: Tue 10:00, then 3.75 working hours
    assert CAL.deadline(at(2026, 3, 9, 10, 0), 1.5, "work_days") == at(2026, 3, 10, 15, 15)
    # a start on a day off begins at Monday 08:30
    assert CAL.deadline(at(2026, 3, 7, 10, 0), 1, "work_days") == at(2026, 3, 10, 8, 30)
    assert CAL.deadline(at(2026, 3, 7, 10, 0), 0.25, "work_days") == at(2026, 3, 9, 10, 22, 30)
    assert CAL.deadline(at(2026, 3, 7, 10, 0), 0, "work_days") == at(2026, 3, 7, 10, 0)


def test_natural_days_are_24_hours() -> None:
    assert CAL.deadline(at(2026, 9, 30, 10, 0), 1.5, "natural_days") == at(2026, 10, 1, 22, 0)


def test_results_are_in_the_calendar_zone_whatever_the_start_zone() -> None:
    start = dt.datetime(2026, 3, 6, 8, 30, tzinfo=dt.UTC)  # 16:30 in Shanghai
    for time_type in TIME_TYPES:
        due = CAL.deadline(start, 2, time_type)
        assert due.tzinfo == TZ
        assert due == CAL.deadline(start.astimezone(TZ), 2, time_type)
    assert CAL.deadline(start, 2, "work_hours") == at(2026, 3, 9, 9, 30)


def test_years_beyond_the_file_still_count_weekends() -> None:
    # Fri 7 Jun 2030 16:30 + 2 h → Mon 10 Jun 09:30; far dates grow the day index.
    assert CAL.deadline(at(2030, 6, 7, 16, 30), 2, "work_hours") == at(2030, 6, 10, 9, 30)
    assert CAL.deadline(at(1999, 1, 1, 9, 0), 5, "work_days") == at(1999, 1, 8, 9, 0)


def test_refusals() -> None:
    naive = dt.datetime(2026, 3, 6, 16, 30)
    for time_type in TIME_TYPES:
        with pytest.raises(ValueError, match="timezone-aware"):
            CAL.deadline(naive, 1, time_type)
        with pytest.raises(ValueError, match="timezone-aware"):
            CAL.elapsed(naive, at(2026, 3, 9), time_type)
        with pytest.raises(ValueError, match="timezone-aware"):
            CAL.elapsed(at(2026, 3, 9), naive, time_type)
    with pytest.raises(ValueError, match="unknown time type"):
        CAL.deadline(at(2026, 3, 6), 1, "fortnights")
    with pytest.raises(ValueError, match="amount"):
        CAL.deadline(at(2026, 3, 6), -1, "work_hours")
    with pytest.raises(ValueError, match="amount"):
        CAL.deadline(at(2026, 3, 6), float("nan"), "work_days")


# -- elapsed ----------------------------------------------------------------------------------


def test_elapsed() -> None:
    assert CAL.elapsed(at(2026, 3, 6, 16, 30), at(2026, 3, 9, 9, 30), "work_hours") == 2
    assert CAL.elapsed(at(2026, 3, 9, 9, 30), at(2026, 3, 6, 16, 30), "work_hours") == -2
    assert CAL.elapsed(at(2026, 3, 7, 0, 0), at(2026, 3, 9, 0, 0), "work_hours") == 0
    assert CAL.elapsed(at(2026, 3, 7, 0, 0), at(2026, 3, 9, 0, 0), "urgent_work_hours") == 30
    assert CAL.elapsed(at(2026, 9, 30, 10, 0), at(2026, 10, 10, 10, 0), "work_days") == 3
    assert CAL.elapsed(at(2026, 3, 9, 10, 0), at(2026, 3, 10, 15, 15), "work_days") == 1.5
    assert CAL.elapsed(at(2026, 3, 6, 12, 0), at(2026, 3, 8, 0, 0), "natural_days") == 1.5


# -- properties -------------------------------------------------------------------------------

# Any moment, and moments on the edges of the windows (where off-by-one rules would show).
starts = st.one_of(
    st.datetimes(
        min_value=dt.datetime(2025, 12, 1),
        max_value=dt.datetime(2027, 12, 31),
        timezones=st.sampled_from([TZ, dt.UTC]),
    ),
    st.builds(
        lambda day, clock: dt.datetime.combine(day, clock, tzinfo=TZ),
        st.dates(min_value=dt.date(2025, 12, 1), max_value=dt.date(2027, 12, 31)),
        st.sampled_from(
            [
                dt.time(h, m)
                for h, m in ((7, 0), (8, 30), (12, 0), (13, 30), (17, 30), (22, 0), (0, 0))
            ]
        ),
    ),
)
# Amounts on a one-minute grid: a sum of two lands exactly where the whole would.
minutes = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 3.5, 4.0, 7.5, 15.0]),  # window and day boundaries
    st.integers(min_value=0, max_value=60 * 200).map(lambda m: m / 60),
)
amounts = st.floats(min_value=0, max_value=300, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(start=starts, a=amounts, b=amounts, time_type=st.sampled_from(TIME_TYPES))
def test_deadline_is_monotonic_in_amount(
    start: dt.datetime, a: float, b: float, time_type: str
) -> None:
    a, b = sorted((a, b))
    assert CAL.deadline(start, a, time_type) <= CAL.deadline(start, b, time_type)
    assert CAL.deadline(start, a, time_type) >= start


@settings(max_examples=300, deadline=None)
@given(start=starts, a=minutes, b=minutes, time_type=st.sampled_from(HOUR_TYPES))
def test_hour_deadlines_are_additive(
    start: dt.datetime, a: float, b: float, time_type: str
) -> None:
    first = CAL.deadline(start, a, time_type)
    assert CAL.deadline(first, b, time_type) == CAL.deadline(start, a + b, time_type)


@settings(max_examples=300, deadline=None)
@given(start=starts, a=amounts, time_type=st.sampled_from(TIME_TYPES))
def test_elapsed_inverts_deadline(start: dt.datetime, a: float, time_type: str) -> None:
    due = CAL.deadline(start, a, time_type)
    assert CAL.elapsed(start, due, time_type) == pytest.approx(a, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(start=starts, a=minutes.filter(lambda m: m > 0))
def test_work_hour_deadlines_fall_inside_working_time(start: dt.datetime, a: float) -> None:
    due = CAL.deadline(start, a, "work_hours")
    assert due.tzinfo == TZ
    assert CAL.is_workday(due.date())
    clock = due.time()
    assert dt.time(8, 30) < clock <= dt.time(12) or dt.time(13, 30) < clock <= dt.time(17, 30)


# -- bad calendars ----------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "timezone": "Asia/Shanghai",
    "work_week": ["mon", "tue", "wed", "thu", "fri"],
    "work_hours": [["08:30", "12:00"], ["13:30", "17:30"]],
    "urgent_work_hours": [["07:00", "22:00"]],
    "holidays": [
        {
            "name_zh": "国庆节",
            "name_en": "National Day",
            "start": dt.date(2026, 10, 1),
            "end": dt.date(2026, 10, 7),
        },
    ],
    "adjusted_workdays": [{"date": dt.date(2026, 10, 10), "for": "国庆节"}],
}


def write_calendar(tmp_path: Path, **changes: Any) -> Path:
    data = {**GOOD, **changes}
    path = tmp_path / "calendar.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_small_calendar_loads(tmp_path: Path) -> None:
    cal = load_calendar(write_calendar(tmp_path))
    assert isinstance(cal, WorkCalendar)
    assert not cal.is_workday(dt.date(2026, 10, 2)) and cal.is_workday(dt.date(2026, 10, 10))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone: unknown time zone 'Mars/Olympus'"),
        ({"work_week": ["mon", "funday"]}, "work_week[1]: unknown day 'funday'"),
        ({"work_week": []}, "work_week: must be a non-empty list"),
        ({"work_hours": [[510, 720]]}, "work_hours[0]: bad time in [510, 720]"),
        ({"work_hours": [["12:00", "08:30"]]}, "work_hours[0]: 12:00 is not before 08:30"),
        (
            {"work_hours": [["08:30", "12:00"], ["11:00", "17:30"]]},
            "work_hours[1]: overlaps or precedes",
        ),
        ({"urgent_work_hours": []}, "urgent_work_hours: must be a non-empty list"),
        ({"urgent_work_hours": [["07:00", "24:30"]]}, "urgent_work_hours[0]: bad time"),
        (
            {"holidays": [{"name_zh": "国庆节", "start": "2026-10-07", "end": "2026-10-01"}]},
            "holidays[0] (国庆节): 2026-10-07 … 2026-10-01 is not a holiday span",
        ),
        (
            {"holidays": [{"name_zh": "国庆节", "start": "2026-13-01", "end": "2026-10-01"}]},
            "holidays[0] (国庆节): start: bad date '2026-13-01'",
        ),
        (
            {
                "holidays": [
                    *GOOD["holidays"],
                    {"name_zh": "中秋", "start": dt.date(2026, 10, 1), "end": dt.date(2026, 10, 1)},
                ]
            },
            "holidays[1] (中秋): 2026-10-01 is already a holiday (国庆节)",
        ),
        (
            {"adjusted_workdays": [{"date": dt.date(2026, 10, 9), "for": "国庆节"}]},
            "adjusted_workdays[0]: 2026-10-09 is already a working day (fri)",
        ),
        (
            {"adjusted_workdays": [{"date": dt.date(2026, 10, 3), "for": "国庆节"}]},
            "adjusted_workdays[0]: 2026-10-03 is also a holiday (国庆节)",
        ),
        ({"weekend": ["sat"]}, "unknown key(s) weekend"),
    ],
)
def test_each_bad_calendar_is_refused_with_its_place(
    tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    with pytest.raises(CatalogError) as caught:
        load_calendar(write_calendar(tmp_path, **changes))
    assert any(expected in p for p in caught.value.problems), caught.value.problems


def test_unquoted_times_are_caught(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted 12:00 as the base-60 integer 720: say so, do not misbehave.
    path = tmp_path / "calendar.yaml"
    text = write_calendar(tmp_path).read_text(encoding="utf-8")
    path.write_text(text.replace("'12:00'", "12:00"), encoding="utf-8")
    with pytest.raises(CatalogError, match="quote"):
        load_calendar(path)
