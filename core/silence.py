"""The source-silence alarm's rule: how long a source said nothing inside business hours."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

from pulse.core.errors import ValidationFailed
from pulse.core.model import ShiftRule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKBACK = timedelta(days=31)  # silence past a month is counted as a month: it is open anyway
_WINDOW = re.compile(
    r"^\s*(?P<days>[A-Za-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})\s*$"
)


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Windows of local time (the shift rules' working times, or BUSINESS_HOURS)."""

    windows: tuple[ShiftRule, ...]
    zone: tzinfo

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds in [start, end] (overlapping windows counted once)."""
        start = max(start, end - LOOKBACK)
        if end <= start:
            return 0.0
        spans = sorted(
            (max(a, start), min(b, end))
            for a, b in self._spans(start, end)
            if b > start and a < end
        )
        total, reached = 0.0, start
        for a, b in spans:
            a = max(a, reached)
            if b > a:
                total += (b - a).total_seconds()
                reached = b
        return total

    def _spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        first = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        found: list[tuple[datetime, datetime]] = []
        day = first
        while day <= last:
            for window in self.windows:
                if day.weekday() not in window.days:
                    continue
                opens = datetime.combine(day, window.start, self.zone)
                closes_on = day if window.end > window.start else day + timedelta(days=1)
                closes = datetime.combine(closes_on, window.end, self.zone)
                # in UTC: differences between two times of one zone ignore a DST change
                found.append((opens.astimezone(UTC), closes.astimezone(UTC)))
            day += timedelta(days=1)
        return found


def silent(last: datetime, now: datetime, limit: timedelta, hours: BusinessHours) -> bool:
    """True once a source has said nothing for `limit` of business time."""
    return hours.seconds_between(last, now) >= limit.total_seconds()


def parse_business_hours(text: str, zone: tzinfo) -> BusinessHours:
    """`Mon-Fri 08:00-18:00`, several separated by `;` (`Mon-Fri 08:00-18:00; Sat 09:00-13:00`)."""
    windows = [_window(part, i) for i, part in enumerate(text.split(";")) if part.strip()]
    if not windows:
        raise ValidationFailed("BUSINESS_HOURS: empty; e.g. 'Mon-Fri 08:00-18:00'")
    return BusinessHours(tuple(windows), zone)


def from_shifts(rules: Sequence[ShiftRule], zone: tzinfo) -> BusinessHours:
    return BusinessHours(tuple(rules), zone)


def _window(part: str, index: int) -> ShiftRule:
    match = _WINDOW.match(part)
    if match is None:
        raise ValidationFailed(
            f"BUSINESS_HOURS: {part.strip()!r} is not like 'Mon-Fri 08:00-18:00'"
        )
    days: set[int] = set()
    for item in match["days"].replace(" ", "").lower().split(","):
        days.update(_days(item, part))
    return ShiftRule(
        key=f"BH{index}",
        name=part.strip(),
        start=_time(match["start"], part),
        end=_time(match["end"], part),
        days=frozenset(days),
    )


def _days(item: str, part: str) -> range | list[int]:
    names = item.split("-")
    if len(names) > 2 or any(n[:3] not in DAYS or len(n) < 3 for n in names):
        raise ValidationFailed(f"BUSINESS_HOURS: {part.strip()!r}: days are Mon … Sun")
    first, last = (DAYS.index(n[:3]) for n in (names[0], names[-1]))
    if first <= last:
        return range(first, last + 1)
    return [*range(first, 7), *range(0, last + 1)]  # Sat-Mon wraps the week


def _time(text: str, part: str) -> time:
    hour, minute = (int(n) for n in text.split(":"))
    if hour == 24 and minute == 0:
        return time(0, 0)
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise ValidationFailed(f"BUSINESS_HOURS: {part.strip()!r}: {text} is not a time of day")
    return time(hour, minute)
