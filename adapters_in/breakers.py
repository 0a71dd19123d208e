"""One circuit breaker per outbound dependency (sink, ledger, CRM), shared by the inbox workers.

A batch whose dependency failed transiently opens that dependency's breaker: the workers
stop taking deliveries (backpressure: the edge keeps storing into the inbox), hold what they
have, and after a cool-down one of them probes with its held batch (half-open). The probe's
success closes the breaker and intake resumes; a failure reopens it for twice as long."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pulse.adapters_in.metrics import Metrics
from pulse.ports.clock import Clock

log = logging.getLogger("pulse.breakers")

FIRST_COOLDOWN = timedelta(seconds=1)
LONGEST_COOLDOWN = timedelta(seconds=30)


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class Breaker:
    dependency: str
    clock: Clock
    first_cooldown: timedelta = FIRST_COOLDOWN
    longest_cooldown: timedelta = LONGEST_COOLDOWN
    state: State = State.CLOSED
    opened_at: datetime | None = None
    probe_at: datetime | None = None
    cooldown: timedelta = field(default=FIRST_COOLDOWN)
    last_error: str = ""
    opened: int = 0  # times it opened, for /metrics

    def failed(self, error: str) -> None:
        now = self.clock.now()
        self.last_error = error
        if self.state is State.CLOSED:
            self.cooldown = self.first_cooldown
            self.opened_at = now
            self.opened += 1
            log.warning(
                "breaker open: holding deliveries",
                extra={"fields": {"dependency": self.dependency, "error": error}},
            )
        elif self.state is State.HALF_OPEN:
            self.cooldown = min(self.longest_cooldown, self.cooldown * 2)
        self.state = State.OPEN
        self.probe_at = now + self.cooldown

    def succeeded(self) -> None:
        if self.state is not State.CLOSED:
            log.info(
                "breaker closed: intake resumes",
                extra={
                    "fields": {
                        "dependency": self.dependency,
                        "open_sec": round(self._open_for(), 1),
                    }
                },
            )
        self.state, self.opened_at, self.probe_at = State.CLOSED, None, None

    def take_probe(self) -> bool:
        """True for the one caller that may probe now (the breaker turns half-open)."""
        if self.state is State.OPEN and self.probe_at is not None:
            if self.clock.now() >= self.probe_at:
                self.state = State.HALF_OPEN
                return True
        return False

    def seconds_to_probe(self) -> float:
        if self.probe_at is None:
            return 0.0
        return max(0.0, (self.probe_at - self.clock.now()).total_seconds())

    def _open_for(self) -> float:
        return (self.clock.now() - self.opened_at).total_seconds() if self.opened_at else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "openSec": round(self._open_for(), 1),
            "lastError": self.last_error,
            "opened": self.opened,
        }


class Breakers:
    """The breakers of one process, created on first failure of a dependency."""

    def __init__(
        self,
        clock: Clock,
        metrics: Metrics | None = None,
        *,
        first_cooldown: timedelta = FIRST_COOLDOWN,
        longest_cooldown: timedelta = LONGEST_COOLDOWN,
    ) -> None:
        self._clock = clock
        self._cooldowns = (first_cooldown, longest_cooldown)
        self.by_dependency: dict[str, Breaker] = {}
        if metrics is not None:
            metrics.gauge_source(self._gauges)

    def __getitem__(self, dependency: str) -> Breaker:
        if dependency not in self.by_dependency:
            first, longest = self._cooldowns
            self.by_dependency[dependency] = Breaker(dependency, self._clock, first, longest)
        return self.by_dependency[dependency]

    @property
    def intake_open(self) -> bool:
        return all(b.state is State.CLOSED for b in self.by_dependency.values())

    def not_closed(self) -> list[Breaker]:
        return [b for b in self.by_dependency.values() if b.state is not State.CLOSED]

    def record(self, outages: Mapping[str, str], probed: frozenset[str] = frozenset()) -> None:
        """A batch's verdict (`outages`: dependency → error): each dependency that failed
        fails its breaker; each one the batch probed and that did not fail closes (a batch
        says nothing of the others)."""
        for dependency, error in outages.items():
            self[dependency].failed(error)
        for dependency in probed - outages.keys():
            self[dependency].succeeded()

    def as_dict(self) -> dict[str, Any]:
        return {name: b.as_dict() for name, b in sorted(self.by_dependency.items())}

    def _gauges(self) -> list[tuple[str, dict[str, str], float]]:
        found: list[tuple[str, dict[str, str], float]] = []
        for name, breaker in sorted(self.by_dependency.items()):
            for state in State:
                labels = {"dependency": name, "state": state.value}
                found.append(("breaker_state", labels, float(breaker.state is state)))
            found.append(("breaker_opened_total", {"dependency": name}, float(breaker.opened)))
        return found
