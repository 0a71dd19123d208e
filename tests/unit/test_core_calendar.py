"""Business time: dates, DateKeys, shifts and DimDate rows in the business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from pulse.core import calendar
from pulse.core.model import MetricID, ShiftRule

NEW_YORK = ZoneInfo("America/New_York")
MON_TO_FRI = frozenset(range(5))

DAY = ShiftRule("DAY", "Day", time(9, 0), time(17, 0), MON_TO_FRI)
EVENING = ShiftRule("EVENING", "Evening", time(17, 0), time(22, 0), MON_TO_FRI)
NIGHT = ShiftRule("NIGHT", "Night", time(22, 0), time(6, 0), MON_TO_FRI)
EARLY = ShiftRule("EARLY", "Early hours", time(0, 0), time(2, 0))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


# --- business date and DateKey ------------------------------------------------------------


def test_an_event_at_0230_utc_lands_on_the_previous_business_day_in_new_york() -> None:
    instant = utc(2025, 11, 5, 2, 30)

    assert calendar.business_date(instant, NEW_YORK) == date(2025, 11, 4)
    assert calendar.date_key(calendar.business_date(instant, NEW_YORK)) == 20251104
    assert calendar.local_time(instant, NEW_YORK).replace(tzinfo=None) == datetime(
        2025, 11, 4, 21, 30
    )


def test_the_same_instant_stays_on_its_utc_day_when_the_business_zone_is_utc() -> None:
    assert calendar.business_date(utc(2025, 11, 5, 2, 30), ZoneInfo("UTC")) == date(2025, 11, 5)


def test_a_naive_instant_is_read_as_utc_as_aloware_writes_it() -> None:
    naive = datetime(2025, 11, 5, 2, 30)

    assert calendar.as_utc(naive) == utc(2025, 11, 5, 2, 30)
    assert calendar.business_date(naive, NEW_YORK) == date(2025, 11, 4)


def test_an_aware_instant_in_another_zone_is_converted_not_relabelled() -> None:
    chicago_evening = datetime(2025, 11, 4, 22, 0, tzinfo=ZoneInfo("America/Chicago"))

    assert calendar.as_utc(chicago_evening) == utc(2025, 11, 5, 4, 0)
    assert calendar.business_date(chicago_evening, NEW_YORK) == date(2025, 11, 4)


def test_date_key_is_the_business_date_as_an_int_yyyymmdd() -> None:
    assert calendar.date_key(date(2025, 1, 9)) == 20250109
    assert calendar.date_key(date(2026, 12, 31)) == 20261231


# --- DST edges in America/New_York ----------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "local", "offset_hours"),
    [
        (utc(2025, 3, 9, 6, 59), datetime(2025, 3, 9, 1, 59), -5),  # last minute of EST
        (utc(2025, 3, 9, 7, 0), datetime(2025, 3, 9, 3, 0), -4),  # 02:00 never happens
        (utc(2025, 3, 9, 12, 30), datetime(2025, 3, 9, 8, 30), -4),
    ],
)
def test_spring_forward_day_skips_the_two_oclock_hour(
    instant: datetime, local: datetime, offset_hours: int
) -> None:
    seen = calendar.local_time(instant, NEW_YORK)

    assert seen.replace(tzinfo=None) == local
    assert seen.utcoffset() is not None
    assert seen.utcoffset().total_seconds() == offset_hours * 3600  # type: ignore[union-attr]
    assert calendar.date_key(calendar.business_date(instant, NEW_YORK)) == 20250309


def test_spring_forward_moves_the_day_shift_an_hour_earlier_in_utc() -> None:
    # 13:30 UTC is 08:30 EST on the Friday before the change, 09:30 EDT on the Monday after it.
    friday_before = utc(2025, 3, 7, 13, 30)
    monday_after = utc(2025, 3, 10, 13, 30)

    assert calendar.shift_for(friday_before, NEW_YORK, [DAY]) == calendar.UNASSIGNED_SHIFT
    assert calendar.shift_for(monday_after, NEW_YORK, [DAY]) == "DAY"


def test_fall_back_day_sees_half_past_one_twice_on_the_same_business_date() -> None:
    first = calendar.local_time(utc(2025, 11, 2, 5, 30), NEW_YORK)  # 01:30 EDT
    second = calendar.local_time(utc(2025, 11, 2, 6, 30), NEW_YORK)  # 01:30 EST, an hour later

    assert first.replace(tzinfo=None) == second.replace(tzinfo=None) == datetime(2025, 11, 2, 1, 30)
    assert first.utcoffset() != second.utcoffset()
    assert first.date() == second.date() == date(2025, 11, 2)
    assert calendar.shift_for(utc(2025, 11, 2, 5, 30), NEW_YORK, [EARLY]) == "EARLY"
    assert calendar.shift_for(utc(2025, 11, 2, 6, 30), NEW_YORK, [EARLY]) == "EARLY"


def test_fall_back_day_midnight_boundary_follows_the_daylight_offset() -> None:
    # Before the change New York is UTC-4: 03:59 UTC is still Saturday night.
    assert calendar.business_date(utc(2025, 11, 2, 3, 59), NEW_YORK) == date(2025, 11, 1)
    assert calendar.business_date(utc(2025, 11, 2, 4, 0), NEW_YORK) == date(2025, 11, 2)
    # After it New York is UTC-5: 04:30 UTC on Monday is still Sunday evening.
    assert calendar.business_date(utc(2025, 11, 3, 4, 30), NEW_YORK) == date(2025, 11, 2)


# --- shifts ---------------------------------------------------------------------------------


def ny(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (ny(2025, 11, 5, 9, 0), "DAY"),  # start is inside
        (ny(2025, 11, 5, 16, 59), "DAY"),
        (ny(2025, 11, 5, 17, 0), "EVENING"),  # end is outside: the next shift has it
        (ny(2025, 11, 5, 22, 0), "NIGHT"),
        (ny(2025, 11, 6, 5, 59), "NIGHT"),  # after midnight: Wednesday's night shift
        (ny(2025, 11, 6, 6, 0), calendar.UNASSIGNED_SHIFT),
        (ny(2025, 11, 5, 8, 59), calendar.UNASSIGNED_SHIFT),
    ],
)
def test_a_local_time_falls_into_the_shift_that_covers_it(local: datetime, expected: str) -> None:
    assert calendar.shift_for(local, NEW_YORK, [DAY, EVENING, NIGHT]) == expected


def test_an_overnight_shift_belongs_to_the_weekday_it_started_on() -> None:
    friday_late = ny(2025, 11, 7, 23, 0)
    saturday_early = ny(2025, 11, 8, 3, 0)  # Friday's night shift, running past midnight
    sunday_late = ny(2025, 11, 9, 23, 0)  # no night shift starts on Sunday
    monday_early = ny(2025, 11, 10, 3, 0)  # would be Sunday's night shift: there is none
    tuesday_early = ny(2025, 11, 11, 3, 0)  # Monday's night shift

    assert calendar.shift_for(friday_late, NEW_YORK, [NIGHT]) == "NIGHT"
    assert calendar.shift_for(saturday_early, NEW_YORK, [NIGHT]) == "NIGHT"
    assert calendar.shift_for(sunday_late, NEW_YORK, [NIGHT]) == calendar.UNASSIGNED_SHIFT
    assert calendar.shift_for(monday_early, NEW_YORK, [NIGHT]) == calendar.UNASSIGNED_SHIFT
    assert calendar.shift_for(tuesday_early, NEW_YORK, [NIGHT]) == "NIGHT"


def test_shifts_are_computed_in_the_business_zone_not_in_utc() -> None:
    # 14:00 UTC on a November Wednesday is 09:00 in New York.
    assert calendar.shift_for(utc(2025, 11, 5, 14, 0), NEW_YORK, [DAY]) == "DAY"
    assert calendar.shift_for(utc(2025, 11, 5, 13, 59), NEW_YORK, [DAY]) == (
        calendar.UNASSIGNED_SHIFT
    )


def test_the_first_rule_that_covers_a_time_wins() -> None:
    overlapping = ShiftRule("CORE", "Core hours", time(10, 0), time(12, 0))
    at_eleven = ny(2025, 11, 5, 11, 0)

    assert calendar.shift_for(at_eleven, NEW_YORK, [DAY, overlapping]) == "DAY"
    assert calendar.shift_for(at_eleven, NEW_YORK, [overlapping, DAY]) == "CORE"


def test_a_weekend_hour_outside_every_shift_is_unassigned() -> None:
    saturday_noon = ny(2025, 11, 8, 12, 0)

    assert calendar.shift_for(saturday_noon, NEW_YORK, [DAY]) == calendar.UNASSIGNED_SHIFT
    assert calendar.shift_for(saturday_noon, NEW_YORK, []) == calendar.UNASSIGNED_SHIFT


def test_the_all_day_shift_covers_every_minute_of_every_day() -> None:
    for hour in (0, 1, 12, 23):
        assert calendar.shift_for(ny(2025, 11, 8, hour, 59), NEW_YORK, [calendar.ALL_DAY]) == (
            "ALLDAY"
        )


def test_shift_rows_describe_each_rule_and_add_unassigned() -> None:
    rows = {r.ShiftKey: r for r in calendar.shift_rows([DAY, NIGHT])}

    assert set(rows) == {"DAY", "NIGHT", calendar.UNASSIGNED_SHIFT}
    assert (rows["NIGHT"].StartLocal, rows["NIGHT"].EndLocal) == ("22:00", "06:00")
    assert rows["DAY"].Days == "Mon,Tue,Wed,Thu,Fri"
    assert rows[calendar.UNASSIGNED_SHIFT].ShiftName == "Unassigned"


# --- DimDate --------------------------------------------------------------------------------


def test_dim_date_of_a_wednesday_is_a_workday_in_iso_week_45() -> None:
    row = calendar.dim_date(date(2025, 11, 5))

    assert row.DateKey == 20251105
    assert (row.Year, row.Quarter, row.Month, row.Day) == (2025, 4, 11, 5)
    assert (row.MonthName, row.DayName, row.DayOfWeek) == ("November", "Wednesday", 3)
    assert row.WeekOfYear == 45
    assert (row.IsWeekend, row.IsWorkday) == (False, True)


def test_dim_date_of_a_saturday_is_a_weekend_not_a_workday() -> None:
    row = calendar.dim_date(date(2025, 11, 8))

    assert (row.DayName, row.DayOfWeek) == ("Saturday", 6)
    assert (row.IsWeekend, row.IsWorkday) == (True, False)


@pytest.mark.parametrize(
    ("day", "iso_week"),
    [
        (date(2024, 12, 30), 1),  # a Monday in December already in 2025's week 1
        (date(2021, 1, 3), 53),  # a Sunday in January still in 2020's week 53
        (date(2025, 12, 28), 52),
    ],
)
def test_week_of_year_is_the_iso_week_across_year_ends(day: date, iso_week: int) -> None:
    assert calendar.dim_date(day).WeekOfYear == iso_week


def test_workdays_are_configurable_independently_of_the_weekend() -> None:
    sunday_to_thursday = frozenset({6, 0, 1, 2, 3})

    friday = calendar.dim_date(date(2025, 11, 7), sunday_to_thursday)
    sunday = calendar.dim_date(date(2025, 11, 9), sunday_to_thursday)

    assert (friday.IsWeekend, friday.IsWorkday) == (False, False)
    assert (sunday.IsWeekend, sunday.IsWorkday) == (True, True)


def test_dim_dates_cover_a_range_inclusive_of_both_ends() -> None:
    rows = calendar.dim_dates(date(2025, 2, 27), date(2025, 3, 2))

    assert [r.DateKey for r in rows] == [20250227, 20250228, 20250301, 20250302]
    assert [r.Quarter for r in rows] == [1, 1, 1, 1]


# --- months ---------------------------------------------------------------------------------


def test_metric_month_key_joins_the_month_and_the_metric() -> None:
    assert calendar.metric_month_key(date(2026, 11, 3), MetricID.CALLS) == "2026-11:CALLS"
    assert calendar.metric_month_key(date(2025, 1, 31), MetricID.EMAILS) == "2025-01:EMAILS"
    assert calendar.month_key(date(2025, 9, 1)) == "2025-09"


def test_the_metric_month_follows_the_business_date_not_the_utc_date() -> None:
    first_of_december_utc = utc(2025, 12, 1, 3, 0)  # still November 30 in New York

    day = calendar.business_date(first_of_december_utc, NEW_YORK)

    assert calendar.metric_month_key(day, MetricID.TEXTS) == "2025-11:TEXTS"
