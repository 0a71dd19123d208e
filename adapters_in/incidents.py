"""The incident monitor: failures and requests noted in memory (never a write on the ingest
path), recorded in the shared store every few seconds, silences checked, quiet incidents
resolved, and each open or resolve this replica decided handed to the alerts queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from pulse.core import incidents
from pulse.core.incidents import Incident, IncidentRules, State, Transition, silence_signature
from pulse.core.silence import BusinessHours, silent
from pulse.ports.clock import Clock
from pulse.ports.incidents import IncidentStore

log = logging.getLogger("pulse.incidents")

CHECK_EVERY_SEC = 15.0


class Alerts(Protocol):
    def offer(self, transition: Transition) -> None: ...


@dataclass(frozen=True, slots=True)
class SilenceRules:
    """SILENCE__<SOURCE>_MINUTES (sources without one are never silent) in business hours."""

    limits: Mapping[str, timedelta]
    hours: BusinessHours


@dataclass(slots=True)
class _Noted:
    count: int = 0
    sample: str = ""


@dataclass
class IncidentMonitor:
    store: IncidentStore
    clock: Clock
    rules: IncidentRules
    alerts: Alerts
    silence: SilenceRules | None = None
    check_every_sec: float = CHECK_EVERY_SEC
    _failures: dict[str, _Noted] = field(default_factory=dict)
    _seen: dict[str, datetime] = field(default_factory=dict)
    _started: datetime | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_event_at: dict[str, datetime] = field(default_factory=dict)
    _silent: set[str] = field(default_factory=set)  # sources silent at the last round
    open_by_signature: dict[str, int] = field(default_factory=dict)

    # --- noted from the ingest path: memory only ------------------------------------------------

    def note(self, failures: Mapping[str, tuple[int, str]]) -> None:
        """A batch's failures by signature (`BatchOutcome.failures()`)."""
        for signature, (count, sample) in failures.items():
            noted = self._failures.setdefault(signature, _Noted())
            noted.count += count
            noted.sample = sample

    def note_one(self, signature: str, sample: str) -> None:
        self.note({signature: (1, sample)})

    def saw(self, source: str) -> None:
        """A request from `source` was stored (the edge calls this after answering)."""
        now = self.clock.now()
        self._seen[source] = now
        self.last_event_at[source] = now
        if source in self._silent:
            self._wake.set()  # the silence this request ends resolves now, not next round

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("incident round failed; the next one tries again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_every_sec)
            self._wake.clear()

    async def round(self) -> list[Transition]:
        """Record what was noted, check silences, resolve what went quiet; alert each change."""
        now = self.clock.now()
        if self._started is None:
            self._started = now
        changes = await self._record_failures(now)
        changes += await self._check_silences(now)
        changes += await incidents.sweep(self.store, now, self.rules)
        for change in changes:
            log.warning(
                f"incident {change.change.value}",
                extra={
                    "fields": {"signature": change.incident.signature, "id": change.incident.id}
                },
            )
            self.alerts.offer(change)
        opened: dict[str, int] = {}
        for incident in await self.store.open():
            opened[incident.signature] = opened.get(incident.signature, 0) + 1
        self.open_by_signature = opened
        return changes

    async def _record_failures(self, now: datetime) -> list[Transition]:
        noted, self._failures = list(self._failures.items()), {}
        changes: list[Transition] = []
        for done, (signature, failures) in enumerate(noted):
            try:
                change = await incidents.record(
                    self.store, signature, failures.count, failures.sample, now, self.rules
                )
            except Exception:
                # The store is down: what was not recorded waits for the next round.
                self.note({s: (f.count, f.sample) for s, f in noted[done:]})
                raise
            if change is not None:
                changes.append(change)
        return changes

    async def _check_silences(self, now: datetime) -> list[Transition]:
        seen, self._seen = self._seen, {}
        try:
            for source, at in seen.items():
                await self.store.saw(source, at)
        except Exception:
            for source, at in seen.items():  # kept (unless a later request came) for next round
                self._seen[source] = max(at, self._seen.get(source, at))
            raise
        if self.silence is None:
            return []
        last = await self.store.last_seen()
        self.last_event_at.update(last)
        changes: list[Transition] = []
        for source, limit in sorted(self.silence.limits.items()):
            since = last.get(source, self._started or now)
            change = await self._silence(source, since, limit, now)
            if change is not None:
                changes.append(change)
        return changes

    async def _silence(
        self, source: str, since: datetime, limit: timedelta, now: datetime
    ) -> Transition | None:
        assert self.silence is not None
        signature = silence_signature(source)
        head, _ = await self.store.head(signature)
        is_open = head is not None and head.state is State.OPEN
        if not silent(since, now, limit, self.silence.hours):
            self._silent.discard(source)
            return (
                await incidents.resolve(self.store, signature, now, "request") if is_open else None
            )
        self._silent.add(source)
        if is_open:
            return None
        minutes = limit.total_seconds() / 60
        sample = (
            f"no {source} request for {minutes:g} min of business hours"
            f" (last: {since.isoformat(timespec='seconds')})"
        )
        return await incidents.record(self.store, signature, 1, sample, now, self.rules)

    # --- the operator (admin API) ---------------------------------------------------------------

    async def acknowledge(self, incident_id: str, who: str, *, resolve: bool = False) -> Incident:
        """Ack (and, asked, resolve) one incident; a resolve is alerted like any other."""
        incident, change = await incidents.acknowledge(
            self.store, incident_id, who, self.clock.now(), resolve_it=resolve
        )
        if change is not None:
            self.alerts.offer(change)
        return incident

    # --- /metrics -----------------------------------------------------------------------------

    def gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        for source, at in sorted(self.last_event_at.items()):
            yield "last_event_timestamp_seconds", {"source": source}, at.timestamp()
        for signature, count in sorted(self.open_by_signature.items()):
            yield "incidents_open", {"signature": signature}, float(count)
