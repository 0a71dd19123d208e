"""The durable inbox between the edge and the workers, and where unprocessable envelopes rest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from pulse.core.dead_letters import DeadLetterFilter
from pulse.core.model import Delivery, IngestEnvelope


@dataclass(frozen=True, slots=True)
class InboxStats:
    depth: int
    oldest_age_sec: float
    dead_letters: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    envelope: IngestEnvelope
    reason: str
    dead_at: datetime
    attempts: int


class Inbox(Protocol):
    """An inbox whose items have a size cap (SQS: 256 KiB a message) also has an int attribute
    `max_body_bytes`, the largest raw body it can hold; the edge's body limit is lowered to it,
    and `put` raises `core.errors.EnvelopeTooLarge` for what still does not fit."""

    async def put(self, envelope: IngestEnvelope) -> None:
        """Store durably; return only when a crash can no longer lose it."""
        ...

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        """Up to `max_items` visible envelopes, hidden from others until acked or their
        visibility timeout passes; waits up to `wait` seconds when none is ready."""
        ...

    async def ack(self, receipts: Sequence[str]) -> None:
        """Done with these deliveries: they never come back."""
        ...

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        """Give these back, visible again after `delay` (transient failure)."""
        ...

    async def extend(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        """Keep these deliveries hidden `hidden_for` from now, receipts unchanged (a worker
        holds them while a dependency is down, rather than handing them back)."""
        ...

    async def stats(self) -> InboxStats: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class DeadLetters(Protocol):
    async def add(self, delivery: Delivery, reason: str) -> None:
        """Keep the envelope with the reason, replayable; the caller acks the delivery after."""
        ...

    async def list(
        self, limit: int = 100, where: DeadLetterFilter | None = None, offset: int = 0
    ) -> list[DeadLetter]:
        """The letters `where` matches (all when None), oldest first, `offset` skipped."""
        ...

    async def count(self, where: DeadLetterFilter | None = None) -> int:
        """How many letters `where` matches (all when None)."""
        ...

    async def replay(
        self, request_ids: Sequence[str] | None = None, where: DeadLetterFilter | None = None
    ) -> int:
        """Put dead letters back into the inbox: those with these request ids (any when None)
        that `where` matches (any when None); returns how many."""
        ...

    async def purge(self, dead_before: datetime) -> int:
        """Delete, for good, the letters dead before `dead_before`; returns how many."""
        ...
