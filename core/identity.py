"""Event identity and within-batch dedup: one fact per communication or CRM object."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from pulse.core.model import EventKey, Kind, Source, SourceEvent

T = TypeVar("T")


def event_key(event: SourceEvent) -> EventKey | None:
    """`aloware:<id>` (one call arrives up to six times under different event names);
    `hubspot:<ticket|email>:<objectId>` (HubSpot's `eventId` is not unique)."""
    if event.object_id is None:
        return None
    if event.source is Source.ALOWARE:
        return EventKey(f"aloware:{event.object_id}")
    if event.kind in (Kind.TICKET, Kind.EMAIL):
        return EventKey(f"hubspot:{event.kind.value}:{event.object_id}")
    return EventKey(f"hubspot:{event.object_type_id or 'object'}:{event.object_id}")


def first_of_each(items: Iterable[T], key: Callable[[T], str]) -> tuple[list[T], list[T]]:
    """Split into (first occurrence of each key, later repeats), keeping order."""
    seen: set[str] = set()
    firsts: list[T] = []
    repeats: list[T] = []
    for item in items:
        k = key(item)
        if k in seen:
            repeats.append(item)
        else:
            seen.add(k)
            firsts.append(item)
    return firsts, repeats
