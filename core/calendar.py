"""Business time: the date, DateKey, month and shift of a UTC instant in the business time zone."""

from __future__ import annotations

import calendar as _cal
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from pulse.core.model import DateKey, DimDate, DimShift, MetricID, ShiftRule

UNASSIGNED_SHIFT = "UNASSIGNED"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
ALL_DAY = ShiftRule(key="ALLDAY", name="All day", start=time(0, 0), end=time(0, 0))


def as_utc(instant: datetime) -> datetime:
    """Naive instants are UTC (Aloware's `created_at`); aware ones are converted."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def local_time(instant: datetime, zone: tzinfo) -> datetime:
    return as_utc(instant).astimezone(zone)


def date_key(day: date) -> DateKey:
    return DateKey(day.year * 10000 + day.month * 100 + day.day)


def business_date(instant: datetime, zone: tzinfo) -> date:
    return local_time(instant, zone).date()


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def metric_month_key(day: date, metric: MetricID) -> str:
    return f"{month_key(day)}:{metric.value}"


def _covers(rule: ShiftRule, local: datetime) -> bool:
    t = local.time().replace(tzinfo=None)
    weekday = local.weekday()
    if rule.start < rule.end:
        return weekday in rule.days and rule.start <= t < rule.end
    # end <= start wraps midnight: the part after midnight belongs to the previous day's shift
    if t >= rule.start:
        return weekday in rule.days
    if t < rule.end:
        return (weekday - 1) % 7 in rule.days
    return False


def shift_for(instant: datetime, zone: tzinfo, rules: Sequence[ShiftRule]) -> str:
    """The key of the first rule covering the local time, else `UNASSIGNED`."""
    local = local_time(instant, zone)
    for rule in rules:
        if _covers(rule, local):
            return rule.key
    return UNASSIGNED_SHIFT


def shift_rows(rules: Sequence[ShiftRule]) -> list[DimShift]:
    rows = [
        DimShift(
            ShiftKey=r.key,
            ShiftName=r.name,
            StartLocal=r.start.strftime("%H:%M"),
            EndLocal=r.end.strftime("%H:%M"),
            Days=",".join(WEEKDAYS[d] for d in sorted(r.days)),
        )
        for r in rules
    ]
    rows.append(DimShift(UNASSIGNED_SHIFT, "Unassigned", "", "", ""))
    return rows


def dim_date(day: date, workdays: frozenset[int] = frozenset(range(5))) -> DimDate:
    weekday = day.weekday()
    return DimDate(
        DateKey=date_key(day),
        Date=day,
        Year=day.year,
        Quarter=(day.month - 1) // 3 + 1,
        Month=day.month,
        MonthName=_cal.month_name[day.month],
        Day=day.day,
        DayOfWeek=weekday + 1,
        DayName=_cal.day_name[weekday],
        WeekOfYear=day.isocalendar().week,
        IsWeekend=weekday >= 5,
        IsWorkday=weekday in workdays,
    )


def date_range(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def dim_dates(
    first: date, last: date, workdays: frozenset[int] = frozenset(range(5))
) -> list[DimDate]:
    return [dim_date(d, workdays) for d in date_range(first, last)]
