"""Reconciliation: what the CRM lists, fed through the webhook's own ingest path (DESIGN §5)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from pulse.core.control import Busy, Caller, Summary, payload_hash
from pulse.core.errors import ValidationFailed
from pulse.core.ingest import (
    EventOutcome,
    IngestConfig,
    IngestPorts,
    Status,
    preview,
    process_batch,
)
from pulse.core.model import CrmObject, Delivery, IngestEnvelope
from pulse.core.records import AuditRecord

if TYPE_CHECKING:
    from pulse.ports.clock import Clock
    from pulse.ports.control import AuditLog, JobLease
    from pulse.ports.directory import CrmDirectory, CrmListing, CrmPage
    from pulse.ports.inbox import InboxStats
    from pulse.ports.parser import WebhookReplay

OBJECT_TYPES = ("email", "ticket")
LEASE = "control:reconcile:hubspot"
COUNTS = ("found", "new", "already", "gated", "ignored")

Progress = Callable[[int, int], None]

# What each ingest status means for an object the CRM listed.
_TALLY = {
    Status.ACCEPTED: "new",
    Status.DUPLICATE: "already",
    Status.GATED: "gated",
    Status.IGNORED: "ignored",
    Status.RETRY: "retry",
    Status.DEAD_LETTERED: "dead_lettered",
}


@dataclass(frozen=True, slots=True)
class Window:
    """Objects created in [since, until), UTC."""

    since: datetime
    until: datetime

    @classmethod
    def of_dates(cls, first: date, last: date | None, zone: tzinfo, now: datetime) -> Window:
        """Business dates `first` … `last` (inclusive, in `zone`); no `last`: up to now."""
        since = datetime.combine(first, time(), zone)
        until = datetime.combine(last + timedelta(days=1), time(), zone) if last else now
        return cls(since, min(until, now))

    @classmethod
    def last_days(cls, now: datetime, days: int) -> Window:
        return cls(now - timedelta(days=days), now)

    def validate(self) -> None:
        if self.since >= self.until:
            raise ValidationFailed(
                f"window: {self.since.isoformat()} is not before {self.until.isoformat()}"
            )

    def describe(self) -> str:
        return f"{self.since.isoformat()} … {self.until.isoformat()}"


@dataclass(frozen=True, slots=True)
class ReconcilePorts:
    listing: CrmListing
    ingest: IngestPorts
    replay: WebhookReplay
    """Writes the webhook HubSpot would have sent for an object, which the hubspot parser reads."""
    audit: AuditLog
    leases: JobLease
    clock: Clock


async def reconcile_hubspot(
    window: Window,
    ports: ReconcilePorts,
    config: IngestConfig,
    caller: Caller,
    *,
    action: str = "backfill_hubspot",
    dry_run: bool = False,
    lease_ttl: timedelta = timedelta(hours=2),
    progress: Progress | None = None,
) -> Summary:
    """Every email and ticket the CRM lists as created in `window`, as the webhook of its
    creation, through `process_batch` with the ingest ledger: the same identity, counting
    rules, roster gate and dedup, so what was counted is `already` and a repeat adds nothing.
    Dry: the same rules and gate, and the ledger only read; `changes` lists what is missing."""
    window.validate()
    started = ports.clock.now()
    walk = _Walk(ports, config, dry_run, progress)
    if dry_run:
        await walk.run(window)
    else:
        if not await ports.leases.acquire(LEASE, caller.owner, lease_ttl):
            raise Busy(f"{LEASE} is running for another caller; try again later")
        try:
            await walk.run(window)
        finally:
            await ports.leases.release(LEASE, caller.owner)
    counts = {name: walk.counts[name] for name in COUNTS}
    counts.update({k: v for k, v in walk.counts.items() if k not in counts and v})
    summary = Summary(
        action=action,
        outcome=_outcome(counts, dry_run),
        dry_run=dry_run,
        counts=counts,
        duration_sec=(ports.clock.now() - started).total_seconds(),
        changes=(f"window {window.describe()}", *walk.missing),
    )
    await ports.audit.append(
        AuditRecord(
            who=caller.who,
            when=ports.clock.now(),
            action=action,
            payload_hash=payload_hash(window.describe()),
            outcome=summary.outcome,
            counts=dict(counts),
            duration_sec=summary.duration_sec,
        )
    )
    return summary


def _outcome(counts: Mapping[str, int], dry_run: bool) -> str:
    if dry_run:
        return "dry_run"
    if counts.get("retry"):
        return f"incomplete: {counts['retry']:,} to retry (in flight or a dependency down)"
    return "applied" if counts["new"] else "unchanged"


class _Walk:
    """One pass over the listing: a page at a time through the ingest path, tallied."""

    def __init__(
        self, ports: ReconcilePorts, config: IngestConfig, dry_run: bool, progress: Progress | None
    ) -> None:
        self.ports, self.config, self.dry_run, self.progress = ports, config, dry_run, progress
        self.counts: Counter[str] = Counter()
        self.missing: list[str] = []
        self._expected: dict[str, int] = {}

    async def run(self, window: Window) -> None:
        for object_type in OBJECT_TYPES:
            async for page in self.ports.listing.created(object_type, window.since, window.until):
                await self._page(object_type, page)

    async def _page(self, object_type: str, page: CrmPage) -> None:
        self._expected[object_type] = page.expected
        if not page.objects:
            return
        now = self.ports.clock.now()
        deliveries = [self._delivery(obj, now) for obj in page.objects]
        ingest = replace(
            self.ports.ingest, crm=_Listed(page.objects, self.ports.ingest.crm), inbox=_Settled()
        )
        if self.dry_run:
            outcomes = await self._preview(deliveries, ingest)
        else:
            batch = await process_batch(deliveries, ingest, self.config, now)
            outcomes = [event for env in batch.envelopes for event in env.each_event_once()]
        self.counts["found"] += len(page.objects)
        self.counts.update(_TALLY[o.status] for o in outcomes)
        if self.progress is not None:
            self.progress(self.counts["found"], max(self.counts["found"], self._total()))

    def _delivery(self, obj: CrmObject, now: datetime) -> Delivery:
        envelope: IngestEnvelope = self.ports.replay.envelope(obj, now)
        return Delivery(envelope, receipt=envelope.request_id)

    async def _preview(
        self, deliveries: Sequence[Delivery], ingest: IngestPorts
    ) -> list[EventOutcome]:
        """The dry run: what would count and is not DONE in the ledger is missing."""
        outcomes = await preview(deliveries, ingest, self.config)
        for outcome in outcomes:
            if outcome.status is Status.ACCEPTED:
                metric = outcome.metric.value if outcome.metric else "?"
                self.missing.append(f"missing {outcome.key} ({metric})")
        return outcomes

    def _total(self) -> int:
        return sum(self._expected.values())


class _Listed:
    """The CRM as the listing saw it: a listed object is answered from the page (owner and all),
    anything else from the CRM itself."""

    def __init__(self, objects: Sequence[CrmObject], crm: CrmDirectory) -> None:
        self._objects = {(o.object_type, o.object_id): o for o in objects}
        self._crm = crm

    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        found = self._objects.get((object_type, object_id))
        return found if found is not None else await self._crm.lookup(object_type, object_id)


class _Settled:
    """The inbox of envelopes that were never queued: acking or handing one back is a no-op,
    since the outcome is read from the batch (a retry is the next run's, or the next night's)."""

    async def put(self, envelope: IngestEnvelope) -> None:
        raise AssertionError("reconciliation never queues")

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        return []

    async def ack(self, receipts: Sequence[str]) -> None:
        return None

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        return None

    async def extend(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        return None

    async def stats(self) -> InboxStats:
        raise AssertionError("reconciliation has no inbox to measure")

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
