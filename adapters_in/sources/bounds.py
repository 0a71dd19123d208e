"""Every value a parsed event carries into a sink, held inside what every sink can store.

A value outside them (a lone surrogate in an id, a duration past Int64, an instant in year 1)
would make the sink's write raise on every attempt and hold its whole batch with it; caught
here, its envelope is dead-lettered on the first attempt with a reason that names the field."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime

from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import SourceEvent

MAX_ID_CHARS = 128  # ids of both vendors are a few digits; an EventKey embeds one
MAX_TEXT_CHARS = 4_000  # Power BI's limit per string value (DESIGN §4)
INT64_MAX = 2**63 - 1
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # DimDate, DateKey (yyyymmdd) and every sink's clock

_LIMITS = {"object_id": MAX_ID_CHARS, "agent_id": MAX_ID_CHARS, "object_type_id": MAX_ID_CHARS}


def bounded(event: SourceEvent, where: str = "") -> SourceEvent:
    """`event` itself, or `UnparseableEnvelope` naming the first value no sink could store."""
    prefix = f"{where}: " if where else ""
    for field in fields(event):
        value = getattr(event, field.name)
        if isinstance(value, str):
            _check_text(prefix, field.name, value, _LIMITS.get(field.name, MAX_TEXT_CHARS))
    if event.duration_sec is not None and not 0 <= event.duration_sec <= INT64_MAX:
        raise UnparseableEnvelope(
            f"{prefix}duration {event.duration_sec} is out of range", "out_of_range"
        )
    if event.occurred_at is not None and not EARLIEST <= event.occurred_at < LATEST:
        raise UnparseableEnvelope(
            f"{prefix}time {event.occurred_at.isoformat()} is outside"
            f" {EARLIEST.year}–{LATEST.year - 1}",
            "out_of_range",
        )
    return event


def _check_text(prefix: str, name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise UnparseableEnvelope(
            f"{prefix}{name} is {len(value):,} characters; at most {limit:,}", "too_long"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnparseableEnvelope(
            f"{prefix}{name} is not valid Unicode text (a lone surrogate such as \\ud800)",
            "bad_text",
        ) from None
