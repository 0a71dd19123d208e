"""Nightly control-plane jobs on APScheduler 3 cron, in business time, once across replicas."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from pulse.adapters_in.metrics import Metrics
from pulse.core.control import Caller, Summary
from pulse.ports.clock import Clock
from pulse.ports.control import JobLease

if TYPE_CHECKING:  # apscheduler loads with the triggers (`ControlScheduler.load`)
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger("pulse.scheduler")

JobRunner = Callable[[Caller], Awaitable[Summary]]


def cron_trigger(expression: str, zone: tzinfo) -> CronTrigger:
    """Five crontab fields, or six with seconds first (tests run every second)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expression.split()
    if len(fields) == 6:
        second, minute, hour, day, month, dow = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=dow,
            timezone=zone,
        )
    return CronTrigger.from_crontab(expression, timezone=zone)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    cron: str
    run: JobRunner


@dataclass(slots=True)
class JobRun:
    occurrence: str
    started_at: datetime
    ok: bool
    detail: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class JobBoard:
    """The last run of each job, for `/metrics` and `GET /admin/status`."""

    metrics: Metrics
    last: dict[str, JobRun] = field(default_factory=dict)
    _last_at: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.metrics.gauge_source(self._gauges)

    def record(self, name: str, run: JobRun) -> None:
        self.last[name] = run
        outcome = "ok" if run.ok else "failed"
        self.metrics.inc("job_runs_total", job=name, outcome=outcome)
        self._last_at[name, outcome] = run.started_at.timestamp()

    def _gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        for (job, outcome), at in sorted(self._last_at.items()):
            yield "job_last_run_timestamp_seconds", {"job": job, "outcome": outcome}, at

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {
                "occurrence": r.occurrence,
                "startedAt": r.started_at.isoformat(),
                "ok": r.ok,
                "detail": r.detail,
                "counts": dict(r.counts),
            }
            for name, r in self.last.items()
        }


class ControlScheduler:
    """Each firing takes a lease named for the job and its scheduled instant, and keeps it: the
    replica that wins runs the occurrence, the others (even late ones) skip it."""

    def __init__(
        self,
        jobs: Sequence[Job],
        leases: JobLease,
        clock: Clock,
        zone: tzinfo,
        board: JobBoard,
        *,
        replica: str | None = None,
        misfire_grace: timedelta = timedelta(hours=1),
        lease_ttl: timedelta = timedelta(hours=2),
    ) -> None:
        self.jobs = {job.name: job for job in jobs}
        self._leases, self._clock, self._zone = leases, clock, zone
        self.board = board
        self.replica = replica or uuid.uuid4().hex[:12]
        self._grace, self._ttl = misfire_grace, lease_ttl
        self._loaded: dict[str, CronTrigger] | None = None
        self._apscheduler: AsyncIOScheduler | None = None

    def load(self) -> None:
        """Import apscheduler and build each job's trigger: a crontab it cannot read raises
        `ValueError` here. About 20 ms of imports, so the daemon calls this in a thread once
        it listens; the other methods call it if it has not run. The scheduler itself is made
        on the loop's thread, where apscheduler looks for its event loop."""
        if self._loaded is None:
            import apscheduler.schedulers.asyncio  # noqa: F401  # imported here, made in start

            self._loaded = {
                name: cron_trigger(job.cron, self._zone) for name, job in self.jobs.items()
            }

    @property
    def _triggers(self) -> dict[str, CronTrigger]:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def _scheduler(self) -> AsyncIOScheduler:
        if self._apscheduler is None:
            from apscheduler.schedulers.asyncio import AsyncIOScheduler

            self._apscheduler = AsyncIOScheduler(timezone=self._zone)
        return self._apscheduler

    def start(self) -> None:
        """Call from inside the running loop (the daemon's)."""
        for name in self.jobs:
            self._scheduler.add_job(
                self.fire,
                self._triggers[name],
                args=[name],
                id=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=int(self._grace.total_seconds()),
            )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._apscheduler is not None and self._apscheduler.running:
            self._scheduler.shutdown(wait=False)

    async def fire(self, name: str) -> bool:
        """A cron firing: run the occurrence it belongs to, unless another replica has it."""
        return await self.run_once(name, self._occurrence(name, self._clock.now()))

    async def run_once(self, name: str, occurrence: str) -> bool:
        job = self.jobs[name]
        lease = f"job:{name}:{occurrence}"
        if not await self._leases.acquire(lease, self.replica, self._ttl):
            log.info("%s %s: another replica runs it", name, occurrence)
            return False
        started = self._clock.now()
        try:
            summary = await job.run(Caller("scheduler", f"{self.replica}:{uuid.uuid4().hex}"))
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            log.error(
                "%s failed: %s",
                name,
                detail,
                extra={"fields": {"job": name, "occurrence": occurrence}},
            )
            self.board.record(name, JobRun(occurrence, started, False, detail))
            return True
        log.info(summary.line(), extra={"fields": {"job": name, **summary.as_dict()}})
        self.board.record(
            name, JobRun(occurrence, started, True, summary.line(), dict(summary.counts))
        )
        return True

    def _occurrence(self, name: str, now: datetime) -> str:
        """The scheduled instant this firing belongs to: the latest fire time not after now."""
        trigger = self._triggers[name]
        local_now = now.astimezone(self._zone)
        latest = None
        when = trigger.get_next_fire_time(None, local_now - self._grace)
        while when is not None and when <= local_now:
            latest = when
            when = trigger.get_next_fire_time(when, when + timedelta(seconds=1))
        return (latest or local_now.replace(microsecond=0)).isoformat()
