"""Inbox workers: take batches, run `process_batch`, log one line per batch; drain on stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from pulse.adapters_in.breakers import Breakers
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.tracing import LazyTracer
from pulse.core.errors import TransientError
from pulse.core.incidents import signature_of
from pulse.core.ingest import BatchOutcome, IngestConfig, IngestPorts, process_batch
from pulse.core.model import Delivery
from pulse.ports.clock import Clock
from pulse.ports.inbox import Inbox

if TYPE_CHECKING:
    from opentelemetry import trace

    from pulse.adapters_in.edge_load import EdgeLoad
    from pulse.adapters_in.incidents import IncidentMonitor

log = logging.getLogger("pulse.worker")
tracer = LazyTracer("pulse.worker")

CRASH_RETRY_DELAY = timedelta(seconds=5)
HOLD_EXTENSION = timedelta(seconds=60)  # how long each extension keeps held deliveries hidden
PAUSE_SEC = 0.5  # how often a paused worker looks at the breakers again
STORES = "stores"  # the breaker of a store outage that escaped the use case (no port named)
MAX_ATTEMPTS = 5
# Deliveries one worker holds for a sink that is down while the others count on; past it,
# intake waits for that sink too (memory, and SQS's 120,000 in flight, stay bounded).
MAX_HELD = 10_000
YIELD_TICK_SEC = 0.02  # how often workers yielding to a busy edge look at it again


@dataclass(slots=True)
class _Hold:
    """A batch's deliveries held while the breakers in `waits_for` are open."""

    deliveries: list[Delivery]
    waits_for: frozenset[str]
    extended_at: float  # time.monotonic() of its last visibility extension


@dataclass(slots=True)
class DrainReport:
    acked: int
    in_flight: int
    dead_lettered: int
    cancelled: int

    def line(self) -> str:
        return (
            f"shutdown: {self.acked:,} acked · {self.in_flight} in flight · "
            f"{self.dead_lettered} dead-lettered · {self.cancelled} cancelled"
        )


class InboxWorkers:
    """N asyncio tasks sharing one inbox. A batch in progress is finished before stop."""

    def __init__(
        self,
        ports: IngestPorts,
        config: IngestConfig,
        clock: Clock,
        metrics: Metrics,
        count: int = 2,
        batch_size: int = 100,
        take_wait: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
        crash_retry_delay: timedelta = CRASH_RETRY_DELAY,
        breakers: Breakers | None = None,
        hold_extension: timedelta = HOLD_EXTENSION,
        incidents: IncidentMonitor | None = None,
        max_held: int = MAX_HELD,
        edge: EdgeLoad | None = None,
        yield_sec: float = 0.0,
    ) -> None:
        self.ports = ports
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.count = count
        self.batch_size = batch_size
        self.take_wait = take_wait
        self.max_attempts = max_attempts
        self.crash_retry_delay = crash_retry_delay
        self.breakers = breakers if breakers is not None else Breakers(clock)
        self.hold_extension = hold_extension
        self.incidents = incidents
        self.max_held = max_held
        self.edge = edge
        self.yield_sec = yield_sec
        self._yielding_since: float | None = None  # shared: the backlog's age, not a worker's
        # each sink's breaker: one that is open holds its share, the others go on
        self.sinks = frozenset(lane.dependency for lane in ports.sink_lanes)
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.acked = 0
        self.dead_lettered = 0
        self.batches = 0
        self.last_error: str | None = None

    def over(self, inbox: Inbox) -> InboxWorkers:
        """Workers that settle deliveries on `inbox` (a Lambda invocation's records) with this
        one's config, breakers, metrics and incidents; never started."""
        return InboxWorkers(
            replace(self.ports, inbox=inbox),
            self.config,
            self.clock,
            self.metrics,
            count=0,
            batch_size=self.batch_size,
            max_attempts=self.max_attempts,
            crash_retry_delay=self.crash_retry_delay,
            breakers=self.breakers,
            hold_extension=self.hold_extension,
            incidents=self.incidents,
        )

    async def run_handed(self, deliveries: list[Delivery]) -> list[Delivery]:
        """A batch handed over from outside (an SQS event source mapping), under the breakers:
        run while intake is open, or as the probe once a breaker's cool-down is over; else it
        is not run. Returns the deliveries left held (extended for `hold_extension`)."""
        if not deliveries:
            return []  # no probe taken: a half-open breaker with nothing to run would stay so
        probed = frozenset() if self._may_take([]) else self._take_probe()
        held = deliveries
        if probed is not None:
            outcome = await self.run_batch(deliveries, probed)
            held = list(outcome.held) if outcome is not None else []
        if held:
            await self._hide(held)
        return held

    def start(self) -> None:
        for i in range(self.count):
            self._tasks.append(asyncio.create_task(self._run(), name=f"inbox-worker-{i}"))

    @property
    def alive(self) -> int:
        return sum(1 for t in self._tasks if not t.done())

    async def _run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        holds: list[_Hold] = []
        try:
            while not self._stopping.is_set():
                await self._extend(holds)
                if (ready := self._ready(holds)) is not None:
                    hold, probing = ready
                    holds.remove(hold)
                    holds += await self._busy_running(task, hold.deliveries, probing)
                elif self._may_take(holds):
                    await self._yield_to_edge()
                    if self._stopping.is_set():
                        break  # stopped while yielding: nothing was taken
                    holds += await self._take_and_run(task, frozenset())
                elif (probe := self._take_probe()) is not None:
                    holds += await self._take_and_run(task, probe)  # no hold of ours waits on it
                else:
                    await self._paused()  # backpressure: the inbox keeps what the edge stores
        finally:
            if holds:  # stopping: what is held goes back for another worker or a restart
                await self._hand_back([d for hold in holds for d in hold.deliveries])

    async def _yield_to_edge(self) -> None:
        """While the edge is busy, take nothing: its requests get the loop and the cores, and the
        inbox keeps what it stores. For at most `yield_sec` from the first yield until the
        workers have caught up (a take that found less than a batch), so an edge that stays
        busy delays counting by that much at most, then shares the process as before."""
        if self.edge is None or self.yield_sec <= 0:
            return
        loop = asyncio.get_running_loop()
        while self.edge.busy and not self._stopping.is_set():
            if self._yielding_since is None:
                self._yielding_since = loop.time()
            elif loop.time() - self._yielding_since >= self.yield_sec:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), YIELD_TICK_SEC)

    def _take_probe(self, among: frozenset[str] | None = None) -> frozenset[str] | None:
        breakers = [b for b in self.breakers.not_closed() if among is None or b.dependency in among]
        probe = next((b for b in breakers if b.take_probe()), None)
        return frozenset({probe.dependency}) if probe is not None else None

    def _ready(self, holds: list[_Hold]) -> tuple[_Hold, frozenset[str]] | None:
        """A held batch to run again: every breaker it waits for closed (another worker's probe
        closed it), or one of them due for a probe, which this batch then is."""
        for hold in holds:
            if not any(b.dependency in hold.waits_for for b in self.breakers.not_closed()):
                return hold, frozenset()
        for hold in holds:
            if (probe := self._take_probe(hold.waits_for)) is not None:
                return hold, probe
        return None

    def _may_take(self, holds: list[_Hold]) -> bool:
        """Intake goes on while every shared dependency (ledger, CRM, stores) is closed and one
        sink at least is: a sink that is down has its share held, the others keep counting. A
        worker holding `max_held` deliveries takes no more until some are released."""
        down = {b.dependency for b in self.breakers.not_closed()}
        if down - self.sinks or self.sinks <= down:
            return False
        return sum(len(h.deliveries) for h in holds) < self.max_held

    async def _take_and_run(self, task: asyncio.Task[None], probed: frozenset[str]) -> list[_Hold]:
        try:
            deliveries = await self.ports.inbox.take(self.batch_size, self.take_wait)
        except Exception as exc:
            self.last_error = f"inbox take failed: {exc!r}"
            log.exception("inbox take failed")
            await asyncio.sleep(1)
            deliveries = []
        if len(deliveries) < self.batch_size:
            self._yielding_since = None  # caught up: the next busy spell may yield again
        if not deliveries:
            self.breakers.record({}, probed)  # nothing waits: nothing to hold back for
            return []
        return await self._busy_running(task, deliveries, probed)

    async def _busy_running(
        self, task: asyncio.Task[None], deliveries: list[Delivery], probed: frozenset[str]
    ) -> list[_Hold]:
        self._busy.add(task)
        try:
            outcome = await self.run_batch(deliveries, probed)
        finally:
            self._busy.discard(task)
        if outcome is None or not outcome.held:
            return []
        waits_for = frozenset().union(*(env.outages for env in outcome.envelopes))
        return [_Hold(list(outcome.held), waits_for or frozenset({STORES}), time.monotonic())]

    async def _paused(self) -> None:
        waits = [b.seconds_to_probe() for b in self.breakers.not_closed()]
        delay = min([PAUSE_SEC, *waits]) if waits else PAUSE_SEC
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), max(delay, 0.01))

    async def _extend(self, holds: list[_Hold]) -> None:
        """Keep held deliveries hidden: each batch a third of the way into its last extension."""
        due = time.monotonic() - self.hold_extension.total_seconds() / 3
        stale = [hold for hold in holds if hold.extended_at <= due]
        if not stale:
            return
        if await self._hide([d for hold in stale for d in hold.deliveries]):
            for hold in stale:
                hold.extended_at = time.monotonic()

    async def _hide(self, held: list[Delivery]) -> bool:
        """Extend held deliveries' visibility by `hold_extension`; False when the inbox failed."""
        try:
            await self.ports.inbox.extend([d.receipt for d in held], self.hold_extension)
        except Exception:
            log.exception("could not extend held deliveries; they may be redelivered")
            return False
        return True

    async def _hand_back(self, held: list[Delivery]) -> None:
        try:
            await self.ports.inbox.retry([d.receipt for d in held], timedelta(0))
        except Exception:
            log.exception("could not hand held deliveries back; visibility timeout will")

    async def run_batch(
        self, deliveries: list[Delivery], probed: frozenset[str] = frozenset()
    ) -> BatchOutcome | None:
        """Process a batch. One that raises something other than a transient error is split
        in halves until the envelope that raises is alone: the rest are processed as usual,
        and that one is retried, then dead-lettered after `max_attempts` (a backstop for what
        parsing does not catch; the ledger makes every retry safe)."""
        started = time.perf_counter()
        down = {b.dependency for b in self.breakers.not_closed()}
        try:
            with tracer.start_as_current_span(
                "inbox.batch",
                links=_links(deliveries),
                attributes={"pulse.envelopes": len(deliveries)},
            ):
                outcome = await process_batch(
                    deliveries,
                    self.ports,
                    self.config,
                    self.clock.now(),
                    hold_outages=True,
                    skip=frozenset(self.sinks & (down - probed)),  # held for, not tried
                )
        except Exception as exc:
            self.last_error = f"batch failed: {exc!r}"
            self.metrics.inc("batch_failures_total")
            # A probe that raised proved nothing: its breakers wait out another cool-down.
            self.breakers.record(dict.fromkeys(probed, f"probe batch raised {exc!r}"))
            if isinstance(exc, TransientError):
                # A store the batch needs is down: back off like any outage (not a poison).
                self.breakers.record({STORES: f"{type(exc).__name__}: {exc}"}, probed)
                self._note(signature_of(exc, STORES), f"batch failed: {exc}")
                await self._failed(deliveries, exc)
                return None
            if len(deliveries) == 1:
                await self._failed(deliveries, exc)
                return None
            log.warning(
                "batch failed; splitting it to find the envelope that raises",
                extra={"fields": {"envelopes": len(deliveries), "error": repr(exc)}},
            )
            half = len(deliveries) // 2
            first = await self.run_batch(deliveries[:half], probed)
            second = await self.run_batch(deliveries[half:], probed)
            parts = [part for part in (first, second) if part is not None]
            held = tuple(d for part in parts for d in part.held)
            envelopes = tuple(env for part in parts for env in part.envelopes)
            return BatchOutcome(envelopes, held) if held else None
        self.breakers.record(outcome.outages, probed)
        self._record(outcome, time.perf_counter() - started)
        return outcome

    async def _failed(self, deliveries: list[Delivery], exc: Exception) -> None:
        """A store outage (transient) hands the batch back; an envelope that raises alone is
        handed back until its `max_attempts`-th delivery, then dead-lettered with the error."""
        log.error(
            "batch failed",
            exc_info=exc,
            extra={"fields": {"request_ids": [d.envelope.request_id for d in deliveries][:20]}},
        )
        if not isinstance(exc, TransientError) and deliveries[0].attempt >= self.max_attempts:
            (delivery,) = deliveries
            reason = f"failed {delivery.attempt} times: {type(exc).__name__}: {exc}"
            try:
                await self.ports.dead_letters.add(delivery, reason)
                await self.ports.inbox.ack([delivery.receipt])
            except Exception:
                log.exception("could not dead-letter the envelope; it comes back")
            else:
                self.dead_lettered += 1
                self._note(f"crash:{delivery.envelope.source}", reason)
                log.warning(
                    "dead-lettered",
                    extra={
                        "fields": {
                            "request_id": delivery.envelope.request_id,
                            "source": delivery.envelope.source,
                            "reason": reason,
                        }
                    },
                )
                return
        try:
            await self.ports.inbox.retry([d.receipt for d in deliveries], self.crash_retry_delay)
        except Exception:
            log.exception("could not hand the batch back; visibility timeout will")

    def _note(self, signature: str, sample: str) -> None:
        if self.incidents is not None:
            self.incidents.note_one(signature, sample)

    def _record(self, outcome: BatchOutcome, seconds: float) -> None:
        self.batches += 1
        if self.incidents is not None:
            self.incidents.note(outcome.failures())
        envs = outcome.envelope_counts()
        events = outcome.event_counts()
        self.acked += sum(n for s, n in envs.items() if s != "retry")
        self.dead_lettered += envs.get("dead_lettered", 0)
        self.metrics.observe("batch_duration_seconds", seconds)
        for env in outcome.envelopes:
            self.metrics.inc("envelopes_total", source=env.source, outcome=env.status.value)
            for event in env.events:
                self.metrics.inc(
                    "events_total",
                    source=env.source,
                    outcome=event.status.value,
                    reason=event.code,
                    sink=event.sink,
                )
            if env.status.value == "dead_lettered":
                log.warning(
                    "dead-lettered",
                    extra={
                        "fields": {
                            "request_id": env.request_id,
                            "source": env.source,
                            "reason": env.reason,
                        }
                    },
                )
        log.info(
            "batch",
            extra={
                "fields": {
                    "envelopes": len(outcome.envelopes),
                    "request_ids": [e.request_id for e in outcome.envelopes][:20],
                    "events": dict(events),
                    "ms": round(seconds * 1000, 2),
                }
            },
        )

    async def drain(self, budget_sec: float) -> DrainReport:
        """Stop taking, let batches in progress finish within `budget_sec`, cancel the rest."""
        self._stopping.set()
        for task in self._tasks:
            if task not in self._busy:
                task.cancel()  # idle in take(): nothing to lose
        busy = [t for t in self._tasks if t in self._busy]
        in_flight = len(busy)
        cancelled = 0
        if busy:
            _, pending = await asyncio.wait(busy, timeout=budget_sec)
            for task in pending:
                task.cancel()  # its deliveries come back after the visibility timeout
            cancelled = len(pending)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return DrainReport(self.acked, in_flight, self.dead_lettered, cancelled)


def _links(deliveries: list[Delivery]) -> list[trace.Link]:
    """Links from the batch span to each request's edge span (context carried in the envelope)."""
    links: list[trace.Link] = []
    if not any("traceparent" in delivery.envelope.headers for delivery in deliveries):
        return links  # nothing traced: the API need not be loaded
    from opentelemetry import propagate, trace

    for delivery in deliveries:
        if "traceparent" not in delivery.envelope.headers:
            continue
        span = trace.get_current_span(propagate.extract(delivery.envelope.headers))
        if span.get_span_context().is_valid:
            links.append(trace.Link(span.get_span_context()))
    return links
