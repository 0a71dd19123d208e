"""Dead letters by filter: preview, replay and the retention purge, each audited (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pulse.core.control import Caller, Summary, payload_hash
from pulse.core.errors import ValidationFailed
from pulse.core.records import AuditRecord

if TYPE_CHECKING:
    from pulse.ports.clock import Clock
    from pulse.ports.control import AuditLog
    from pulse.ports.inbox import DeadLetter, DeadLetters

PREVIEW_LIMIT = 20  # letters a preview names; the count is of every match
MAX_NAMED_SCAN = 10_000  # letters a preview of request ids named by hand looks through


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    """Which dead letters: `source` exactly, `reason` containing this text (any case), dead at
    or after `since` and before `until` (an incident's window: opened … resolved). None: any."""

    source: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, bound in (("since", self.since), ("until", self.until)):
            if bound is not None and bound.tzinfo is None:
                raise ValidationFailed(f"{name}: {bound.isoformat()} needs a UTC offset")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise ValidationFailed(
                f"until: {self.until.isoformat()} is not after since {self.since.isoformat()}"
            )

    def matches(self, source: str, reason: str, dead_at: datetime) -> bool:
        return (
            (self.source is None or source == self.source)
            and (self.reason is None or self.reason.lower() in reason.lower())
            and (self.since is None or dead_at >= self.since)
            and (self.until is None or dead_at < self.until)
        )

    def describe(self) -> str:
        parts = [
            f"source={self.source}" if self.source is not None else "",
            f"reason~{self.reason}" if self.reason is not None else "",
            f"since={self.since.isoformat()}" if self.since is not None else "",
            f"until={self.until.isoformat()}" if self.until is not None else "",
        ]
        return " ".join(p for p in parts if p) or "every dead letter"


EVERY = DeadLetterFilter()


@dataclass(frozen=True, slots=True)
class DeadLetterPorts:
    dead_letters: DeadLetters
    audit: AuditLog
    clock: Clock


@dataclass(frozen=True, slots=True)
class Preview:
    """How many letters match, and the first of them (oldest first)."""

    count: int
    first: tuple[DeadLetter, ...]


def describe_letter(letter: DeadLetter) -> str:
    """One line naming a letter; never its body (raw bodies hold lead phone numbers)."""
    return (
        f"{letter.dead_at.isoformat()}  {letter.envelope.source}  {letter.envelope.request_id}"
        f"  attempts={letter.attempts}  {letter.reason}"
    )


async def preview(
    ports: DeadLetterPorts,
    where: DeadLetterFilter = EVERY,
    limit: int = PREVIEW_LIMIT,
    request_ids: Sequence[str] | None = None,
) -> Preview:
    if request_ids is not None:  # few, named by hand: look at the filter's matches for them
        wanted = set(request_ids)
        listed = await ports.dead_letters.list(MAX_NAMED_SCAN, where)
        named = [x for x in listed if x.envelope.request_id in wanted]
        return Preview(len(named), tuple(named[:limit]))
    count = await ports.dead_letters.count(where)
    first = await ports.dead_letters.list(limit, where) if count else []
    return Preview(count, tuple(first))


async def missing(
    ports: DeadLetterPorts, request_ids: Sequence[str], where: DeadLetterFilter = EVERY
) -> list[str]:
    """The ids among `request_ids` that name no dead letter `where` matches (a typo, or one
    replayed already): a replay by id should say so rather than replay nothing."""
    listed = await ports.dead_letters.list(MAX_NAMED_SCAN, where)
    found = {x.envelope.request_id for x in listed}
    return [i for i in dict.fromkeys(request_ids) if i not in found]


async def replay(
    ports: DeadLetterPorts,
    caller: Caller,
    where: DeadLetterFilter = EVERY,
    *,
    request_ids: Sequence[str] | None = None,
    dry_run: bool = False,
) -> Summary:
    """Dry: how many and which would go back to the inbox (of those `where` matches, only
    these request ids when given). Else put them back. Audited."""
    started = ports.clock.now()
    shown = await preview(ports, where, request_ids=request_ids)
    replayed = 0 if dry_run else await ports.dead_letters.replay(request_ids, where)
    if dry_run:
        outcome = "dry_run"
    else:
        outcome = "applied" if replayed else "unchanged"
    summary = Summary(
        action="replay_dead_letters",
        outcome=outcome,
        dry_run=dry_run,
        counts={"matched": shown.count, "replayed": replayed},
        duration_sec=(ports.clock.now() - started).total_seconds(),
        changes=(where.describe(), *(describe_letter(letter) for letter in shown.first)),
    )
    named = f" ids={','.join(sorted(request_ids))}" if request_ids is not None else ""
    await _audit(ports, caller, summary, where.describe() + named)
    return summary


async def purge_expired(
    ports: DeadLetterPorts, caller: Caller, retention: timedelta, *, dry_run: bool = False
) -> Summary:
    """Delete the letters dead longer than `retention` (DEAD_LETTER_RETENTION_DAYS). Audited."""
    started = ports.clock.now()
    cutoff = started - retention
    expired = DeadLetterFilter(until=cutoff)
    purged = (
        await ports.dead_letters.count(expired)
        if dry_run
        else await ports.dead_letters.purge(cutoff)
    )
    outcome = "dry_run" if dry_run else ("applied" if purged else "unchanged")
    summary = Summary(
        action="purge_dead_letters",
        outcome=outcome,
        dry_run=dry_run,
        counts={"purged": purged},
        duration_sec=(ports.clock.now() - started).total_seconds(),
        changes=(f"dead before {cutoff.isoformat()} ({retention.days} days)",),
    )
    await _audit(ports, caller, summary, f"before {cutoff.isoformat()}")
    return summary


async def _audit(ports: DeadLetterPorts, caller: Caller, summary: Summary, what: str) -> None:
    await ports.audit.append(
        AuditRecord(
            who=caller.who,
            when=ports.clock.now(),
            action=summary.action,
            payload_hash=payload_hash(what),
            outcome=summary.outcome,
            counts=summary.counts,
            duration_sec=summary.duration_sec,
        )
    )
