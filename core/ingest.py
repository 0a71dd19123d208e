"""The ingest use case: deliveries in, facts out, each counted event exactly once (DESIGN §2)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING

from pulse.core import calendar
from pulse.core.dimensions import dimension_key, metric_row, push_once
from pulse.core.errors import (
    SinkPermanentError,
    SinkTransientError,
    TransientError,
    UnparseableEnvelope,
)
from pulse.core.identity import event_key, first_of_each
from pulse.core.incidents import parse_signature, signature_of
from pulse.core.lanes import SinkLane
from pulse.core.model import (
    CrmObject,
    DimAgent,
    DimRow,
    Direction,
    EventKey,
    FactEvent,
    Goal,
    Kind,
    MetricID,
    RosterSnapshot,
    ShiftRule,
    Source,
    SourceEvent,
)
from pulse.core.rules import OUTBOUND_EMAIL_DIRECTION, Policy, classify

if TYPE_CHECKING:
    from pulse.core.model import Delivery, IngestEnvelope
    from pulse.ports.directory import CrmDirectory, Roster
    from pulse.ports.inbox import DeadLetters, Inbox
    from pulse.ports.ledger import Claim, Ledger
    from pulse.ports.parser import EnvelopeParser
    from pulse.ports.shifts import ShiftRuleSource
    from pulse.ports.sink import Sink


class Status(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    GATED = "gated"
    IGNORED = "ignored"
    DEAD_LETTERED = "dead_lettered"
    RETRY = "retry"


# An envelope's status is the most pressing of its events' statuses, in this order.
_PRECEDENCE = (
    Status.RETRY,  # an envelope with anything still to do comes back whole; done keys dedup
    Status.DEAD_LETTERED,
    Status.ACCEPTED,
    Status.DUPLICATE,
    Status.GATED,
    Status.IGNORED,
)


@dataclass(frozen=True, slots=True)
class EventOutcome:
    key: str | None
    status: Status
    reason: str
    metric: MetricID | None = None
    outage: str | None = None
    """RETRY because this dependency failed transiently: `sink`, `ledger` or `crm`."""
    code: str = ""
    """The reason as a fixed word (`not_on_roster`, `sink_unavailable`): never an id or an
    error's text, so `/metrics` can count by it."""
    signature: str | None = None
    """The failure's incident signature (`powerbi:429`), when a dependency failed."""
    sink: str = ""
    """The sink this outcome is for (`powerbi`): a counted event has one outcome per sink;
    '' when it was settled before any sink (ignored, gated, a repeat, the CRM down)."""


HELD = "sink_held"
"""The code of an event a sink's lane did not try: its breaker is open (held, not failed)."""


@dataclass(frozen=True, slots=True)
class EnvelopeOutcome:
    request_id: str
    source: str
    status: Status
    events: tuple[EventOutcome, ...]
    reason: str = ""
    signature: str | None = None
    """A parse failure's incident signature (`parse:aloware:bad_created_at`)."""

    @property
    def outages(self) -> frozenset[str]:
        return frozenset(e.outage for e in self.events if e.outage is not None)

    def each_event_once(self) -> tuple[EventOutcome, ...]:
        """One outcome per event: a counted event's most pressing over the sinks (accepted by
        one sink and a duplicate in another is accepted)."""
        merged: dict[object, EventOutcome] = {}
        for index, event in enumerate(self.events):
            slot: object = event.key if event.sink else index
            kept = merged.get(slot)
            if kept is None or _PRECEDENCE.index(event.status) < _PRECEDENCE.index(kept.status):
                merged[slot] = event
        return tuple(merged.values())


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    envelopes: tuple[EnvelopeOutcome, ...]
    held: tuple[Delivery, ...] = ()
    """Deliveries left with the caller (`hold_outages`): neither acked nor handed back."""

    @property
    def outages(self) -> dict[str, str]:
        """The dependencies that failed transiently in this batch, each with its first error."""
        found: dict[str, str] = {}
        for env in self.envelopes:
            for event in env.events:
                if event.outage is not None and event.code != HELD:
                    found.setdefault(event.outage, event.reason)
        return found

    def failures(self) -> dict[str, tuple[int, str]]:
        """Each incident signature this batch met: how often, and one reason as a sample."""
        found: dict[str, tuple[int, str]] = {}
        for env in self.envelopes:
            signed = [(env.signature, env.reason)] if env.signature else []
            signed += [(e.signature, e.reason) for e in env.events if e.signature]
            for signature, reason in signed:
                assert signature is not None
                count, _ = found.get(signature, (0, ""))
                found[signature] = (count + 1, reason)
        return found

    def event_counts(self) -> Counter[str]:
        return Counter(e.status.value for env in self.envelopes for e in env.events)

    def envelope_counts(self) -> Counter[str]:
        return Counter(env.status.value for env in self.envelopes)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    zone: tzinfo
    shift_rules: tuple[ShiftRule, ...] = (calendar.ALL_DAY,)
    goals: Mapping[MetricID, Goal] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    workdays: frozenset[int] = frozenset(range(5))
    ledger_lease: timedelta = timedelta(seconds=240)  # LEDGER_LEASE_SEC
    retry_base: timedelta = timedelta(seconds=2)
    # A redelivery waits at most this: what comes back is mostly an event in flight elsewhere
    # (outages hold their deliveries instead), and its key settles within a lease.
    retry_cap: timedelta = timedelta(seconds=60)

    def retry_delay(self, attempt: int) -> timedelta:
        # The exponent is bounded: from attempt 49 on, 2 s x 2**48 overflows timedelta.
        delay: timedelta = self.retry_base * (2 ** min(max(0, attempt - 1), 32))
        return min(self.retry_cap, delay)


@dataclass(frozen=True, slots=True)
class IngestPorts:
    parsers: Mapping[str, EnvelopeParser]
    inbox: Inbox
    dead_letters: DeadLetters
    ledger: Ledger
    sink: Sink
    roster: Roster
    crm: CrmDirectory
    shifts: ShiftRuleSource | None = None
    """The shift rules an operator applied (`pulse shifts apply`); None, or no rules applied
    yet: `IngestConfig.shift_rules` (the SHIFTS setting)."""
    lanes: tuple[SinkLane, ...] = ()
    """Every sink, each with its ledger namespace (SINKS); empty: the one `sink`, counted in
    `ledger`."""

    @property
    def sink_lanes(self) -> tuple[SinkLane, ...]:
        return self.lanes or (SinkLane("sink", self.ledger, self.sink),)


@dataclass(slots=True)
class _Candidate:
    """One parsed event on its way through the pipeline."""

    index: int  # which delivery it came from
    event: SourceEvent
    key: EventKey | None = None
    fact: FactEvent | None = None
    outcome: EventOutcome | None = None
    in_sinks: list[EventOutcome] = field(default_factory=list)
    """A counted event's outcome in each sink (`outcome` is then None)."""

    def settle(
        self,
        status: Status,
        reason: str,
        outage: str | None = None,
        code: str = "",
        signature: str | None = None,
    ) -> None:
        """`code` defaults to `reason`, for reasons that are codes already (the rules')."""
        metric = self.fact.MetricID if self.fact else None
        self.outcome = EventOutcome(
            self.key, status, reason, metric, outage, code or reason, signature
        )

    @property
    def outcomes(self) -> list[EventOutcome]:
        return [self.outcome] if self.outcome is not None else self.in_sinks


async def process_batch(
    deliveries: Sequence[Delivery],
    ports: IngestPorts,
    config: IngestConfig,
    now: datetime,
    *,
    hold_outages: bool = False,
    skip: frozenset[str] = frozenset(),
) -> BatchOutcome:
    """parse → classify → identity + dedup → enrich → gate → then in each sink: claim → dims →
    append → commit; → ack once every sink has each envelope's events.

    An envelope that must come back because a dependency is down is handed back to the inbox
    with backoff, or, with `hold_outages`, left with the caller (`BatchOutcome.held`) to hold
    while its breaker is open and process again when it half-opens. The sinks whose breaker
    is in `skip` are not tried: what they still need is held for them (a sink that counted an
    envelope already finds its keys DONE when it comes again)."""
    admitted = await _admitted(deliveries, ports, config)
    config = admitted.config
    # Side by side: a slow sink delays the ack, never another sink's rows.
    in_sinks = await asyncio.gather(
        *(
            _in_sink(lane, admitted.unique, lane.dependency in skip, config, admitted.roster, now)
            for lane in ports.sink_lanes
        )
    )
    for settled in in_sinks:
        for cand, outcome in zip(admitted.unique, settled, strict=True):
            cand.in_sinks.append(outcome)

    outcomes = _envelope_outcomes(deliveries, admitted.candidates, admitted.dead)
    held = await _settle_deliveries(deliveries, outcomes, ports, config, hold_outages)
    return BatchOutcome(tuple(outcomes), held)


async def preview(
    deliveries: Sequence[Delivery], ports: IngestPorts, config: IngestConfig
) -> list[EventOutcome]:
    """What `process_batch` would decide, writing nothing: each event that would count is
    ACCEPTED ("would count") unless every sink's ledger has it DONE (DUPLICATE, "already
    counted"); the rest settled as the same rules and gate settle them (IGNORED, GATED, a repeat
    DUPLICATE), and a delivery that cannot be parsed is one DEAD_LETTERED outcome. The ledger is
    only read: nothing is claimed, pushed, acked or dead-lettered."""
    admitted = await _admitted(deliveries, ports, config)
    candidates, dead, unique = admitted.candidates, admitted.dead, admitted.unique
    done = await _done_in_every_sink([str(c.key) for c in unique], ports) if unique else set()
    for cand in unique:
        if cand.key in done:
            cand.settle(Status.DUPLICATE, "already counted", code="already_counted")
        else:
            cand.settle(Status.ACCEPTED, "would count", code="counted")
    outcomes = [o for c in candidates for o in c.outcomes]
    return outcomes + [
        EventOutcome(None, Status.DEAD_LETTERED, reason, code="unparseable", signature=signature)
        for reason, signature in dead.values()
    ]


async def _done_in_every_sink(keys: list[str], ports: IngestPorts) -> set[str]:
    done: set[str] | None = None
    for lane in ports.sink_lanes:
        found = await lane.ledger.done_among(keys)
        done = set(found) if done is None else done & found
    return done or set()


@dataclass(frozen=True, slots=True)
class _Admitted:
    config: IngestConfig  # with the shift rules an operator applied
    candidates: list[_Candidate]
    dead: dict[int, tuple[str, str]]  # deliveries that cannot be parsed, as `_parse` answers
    roster: RosterSnapshot
    unique: list[_Candidate]
    """The candidates the rules and the gate let through, each key once (repeats settled)."""


async def _admitted(
    deliveries: Sequence[Delivery], ports: IngestPorts, config: IngestConfig
) -> _Admitted:
    """What `process_batch` and `preview` both do first: parse, classify, enrich and gate each
    event, then settle repeats of a key within the batch as DUPLICATE."""
    config = await _with_applied_shifts(config, ports.shifts)
    candidates, dead = _parse(deliveries, ports.parsers)
    roster = await ports.roster.snapshot()
    crm_seen: dict[tuple[str, str], CrmObject | None] = {}
    live: list[_Candidate] = []
    for cand in candidates:
        if await _admit(cand, ports.crm, crm_seen, roster, config):
            live.append(cand)
    unique, repeats = first_of_each(live, key=lambda c: str(c.key))
    for cand in repeats:
        cand.settle(Status.DUPLICATE, "repeat within batch", code="repeat_in_batch")
    return _Admitted(config, candidates, dead, roster, unique)


async def _with_applied_shifts(
    config: IngestConfig, shifts: ShiftRuleSource | None
) -> IngestConfig:
    """The shift rules an operator applied win over the SHIFTS setting."""
    if shifts is not None:
        applied = await shifts.current()
        if applied and applied != config.shift_rules:
            return replace(config, shift_rules=applied)
    return config


def _parse(
    deliveries: Sequence[Delivery], parsers: Mapping[str, EnvelopeParser]
) -> tuple[list[_Candidate], dict[int, tuple[str, str]]]:
    """Each delivery's events as candidates (an event without a time happened when received),
    and the reason and signature of each delivery that cannot be parsed, by index."""
    dead: dict[int, tuple[str, str]] = {}
    candidates: list[_Candidate] = []
    for index, delivery in enumerate(deliveries):
        parser = parsers.get(delivery.envelope.source)
        if parser is None:
            source = delivery.envelope.source
            dead[index] = (f"no parser for source {source!r}", parse_signature(source, "no_parser"))
            continue
        try:
            events = parser.parse(delivery.envelope)
        except UnparseableEnvelope as exc:
            signature = parse_signature(delivery.envelope.source, exc.code)
            dead[index] = (f"unparseable: {exc}", signature)
            continue
        for event in events:
            occurred = event.occurred_at or delivery.envelope.received_at
            candidates.append(_Candidate(index, replace(event, occurred_at=occurred)))
    return candidates, dead


async def _admit(
    cand: _Candidate,
    crm: CrmDirectory,
    crm_seen: dict[tuple[str, str], CrmObject | None],
    roster: RosterSnapshot,
    config: IngestConfig,
) -> bool:
    """Identity, CRM enrichment, the counting rules and the roster gate: True when the event
    counts (it now carries its fact); else it is settled with the reason it does not."""
    cand.key = event_key(cand.event)
    if _needs_crm(cand.event) and not await _enrich(cand, crm, crm_seen):
        return False
    verdict = classify(cand.event, config.policy)
    if not verdict.counts or cand.key is None or verdict.metric is None:
        cand.settle(Status.IGNORED, verdict.reason)
        return False
    agent, gate_reason = _gate(cand.event, roster)
    if agent is None:
        cand.settle(Status.GATED, gate_reason)
        return False
    cand.fact = _fact(cand.key, cand.event, verdict.metric, agent, config)
    return True


def _needs_crm(event: SourceEvent) -> bool:
    """HubSpot webhooks carry ids only: owner, direction and status come from the CRM."""
    return event.source is Source.HUBSPOT and event.kind in (Kind.EMAIL, Kind.TICKET)


async def _enrich(
    cand: _Candidate, crm: CrmDirectory, seen: dict[tuple[str, str], CrmObject | None]
) -> bool:
    """Learn owner, direction and status of a HubSpot object. False when the event is settled."""
    event = cand.event
    ref = (event.kind.value, str(event.object_id))
    if ref not in seen:
        try:
            seen[ref] = await crm.lookup(*ref)
        except TransientError as exc:
            cand.settle(
                Status.RETRY,
                f"crm unavailable: {exc}",
                "crm",
                "crm_unavailable",
                signature_of(exc, "crm"),
            )
            return False
    obj = seen[ref]
    if obj is None:
        cand.settle(Status.DEAD_LETTERED, f"crm has no {ref[0]} {ref[1]}", code="crm_not_found")
        return False
    direction = event.direction
    if event.kind is Kind.EMAIL:
        outbound = obj.direction == OUTBOUND_EMAIL_DIRECTION
        direction = Direction.OUTBOUND if outbound else Direction.INBOUND
    cand.event = replace(
        event,
        direction=direction,
        disposition=obj.status,
        agent_id=obj.owner_email.strip().lower() if obj.owner_email else None,
    )
    return True


def _gate(event: SourceEvent, roster: RosterSnapshot) -> tuple[str | None, str]:
    """The roster agent this event counts for, or None with the reason it does not."""
    if event.source is Source.HUBSPOT:
        email = event.agent_id
        if not email:
            return None, "unknown_owner"
        agent = roster.by_email(email)
        if agent is not None:
            return agent.agent_id, ""
        return (email, "") if roster.count_everyone else (None, "unknown_owner")
    agent_id = event.agent_id or ""
    if roster.count_everyone or roster.by_id(agent_id) is not None:
        return agent_id, ""
    return None, "not_on_roster"


def _fact(
    key: EventKey, event: SourceEvent, metric: MetricID, agent: str, config: IngestConfig
) -> FactEvent:
    assert event.occurred_at is not None
    occurred = calendar.as_utc(event.occurred_at)
    local = calendar.local_time(occurred, config.zone)
    day = local.date()
    return FactEvent(
        EventKey=key,
        Source=event.source.value,
        MetricID=metric,
        AgentKey=agent,
        DateKey=calendar.date_key(day),
        ShiftKey=calendar.shift_for(occurred, config.zone, config.shift_rules),
        OccurredAtUtc=occurred,
        OccurredAtLocal=local.replace(tzinfo=None),
        MetricMonthKey=calendar.metric_month_key(day, metric),
        DurationSec=event.duration_sec if event.kind is Kind.CALL else None,
    )


def dimension_rows(
    facts: Sequence[FactEvent], config: IngestConfig, roster: RosterSnapshot, now: datetime
) -> list[DimRow]:
    """The dimension rows these facts refer to (DimDate, DimMetric, DimAgent, DimShift)."""
    rows: dict[str, DimRow] = {}
    shifts = {s.ShiftKey: s for s in calendar.shift_rows(config.shift_rules)}
    for fact in facts:
        day = fact.OccurredAtLocal.date()
        wanted: list[DimRow] = [calendar.dim_date(day, config.workdays)]
        goal = config.goals.get(fact.MetricID)
        if goal is not None:
            wanted.append(metric_row(calendar.month_key(day), fact.MetricID, goal))
        agent = roster.by_id(fact.AgentKey)
        wanted.append(
            DimAgent(
                AgentKey=fact.AgentKey,
                AgentName=agent.name if agent else fact.AgentKey,
                Email=agent.email if agent else None,
                RingGroupId=(agent.ring_group_id if agent else None) or roster.ring_group_id,
                Active=True,
                SyncedAt=now,
            )
        )
        if fact.ShiftKey in shifts:
            wanted.append(shifts[fact.ShiftKey])
        for row in wanted:
            rows.setdefault(dimension_key(row), row)
    return list(rows.values())


async def _in_sink(
    lane: SinkLane,
    cands: Sequence[_Candidate],
    held: bool,
    config: IngestConfig,
    roster: RosterSnapshot,
    now: datetime,
) -> list[EventOutcome]:
    """The events' outcomes in one sink, settled on copies of them (the sinks run at once);
    `held`: not tried, its breaker is open."""
    mine = [_Candidate(c.index, c.event, c.key, c.fact) for c in cands]
    if held:
        reason = f"{lane.dependency} held: its breaker is open"
        for cand in mine:
            cand.settle(Status.RETRY, reason, lane.dependency, HELD)
    else:
        await _claim_and_push(mine, lane, config, roster, now)
    return [replace(c.outcome, sink=lane.name) for c in mine if c.outcome is not None]


async def _claim_and_push(
    cands: Sequence[_Candidate],
    lane: SinkLane,
    config: IngestConfig,
    roster: RosterSnapshot,
    now: datetime,
) -> None:
    """Claim the events' keys in the sink's ledger; push the ones claimed and settle every event."""
    if not cands:
        return
    try:
        claim = await lane.ledger.claim([str(c.key) for c in cands], config.ledger_lease)
    except TransientError as exc:
        failed = signature_of(exc, "ledger")
        for cand in cands:
            cand.settle(
                Status.RETRY, f"ledger unavailable: {exc}", "ledger", "ledger_unavailable", failed
            )
        return
    ours = _settle_taken(cands, claim)
    if not ours:
        return
    status, reason, outage, code, signature = await _push(ours, claim, lane, config, roster, now)
    for cand in ours:
        cand.settle(status, reason, outage, code, signature)


def _settle_taken(cands: Sequence[_Candidate], claim: Claim) -> list[_Candidate]:
    """Settle the events whose key was counted already or is in flight elsewhere; the rest,
    claimed by us, are returned."""
    done, busy = set(claim.done), set(claim.busy)
    ours: list[_Candidate] = []
    for cand in cands:
        if cand.key in done:
            cand.settle(Status.DUPLICATE, "already counted", code="already_counted")
        elif cand.key in busy:
            cand.settle(Status.RETRY, "in flight elsewhere", code="in_flight_elsewhere")
        else:
            ours.append(cand)
    return ours


async def _push(
    ours: Sequence[_Candidate],
    claim: Claim,
    lane: SinkLane,
    config: IngestConfig,
    roster: RosterSnapshot,
    now: datetime,
) -> tuple[Status, str, str | None, str, str | None]:
    """The dimension rows the facts refer to, then the facts; commit the claim, or release it
    so a later delivery can take the keys. The status, reason and outage of every claimed
    event (and its reason's code). A commit that fails leaves rows the sink accepted uncommitted: the events come
    back, and the read side's distinct EventKey keeps them counted once."""
    facts = [c.fact for c in ours if c.fact is not None]
    try:
        await push_once(
            dimension_rows(facts, config, roster, now),
            lane.ledger,
            lane.sink,
            config.ledger_lease,
        )
        await lane.sink.append(facts)
    except TransientError as exc:
        await _release(lane.ledger, claim)
        sink = isinstance(exc, SinkTransientError)
        outage, code = (lane.dependency, "sink") if sink else ("ledger", "ledger")
        reason = f"{outage} unavailable: {exc}"
        return Status.RETRY, reason, outage, f"{code}_unavailable", signature_of(exc, outage)
    except SinkPermanentError as exc:
        await _release(lane.ledger, claim)
        reason = f"{lane.dependency} rejected: {exc}"
        return (
            Status.DEAD_LETTERED,
            reason,
            None,
            "sink_rejected",
            signature_of(exc, lane.dependency),
        )
    try:
        await lane.ledger.commit(claim)
    except TransientError as exc:
        reason = f"ledger unavailable: {exc}"
        return Status.RETRY, reason, "ledger", "ledger_unavailable", signature_of(exc, "ledger")
    return Status.ACCEPTED, "counted", None, "counted", None


async def _release(ledger: Ledger, claim: Claim) -> None:
    """Release a claim, or, with the ledger down too, leave it to lapse after its lease."""
    try:
        await ledger.release(claim)
    except TransientError:
        pass


def _envelope_outcomes(
    deliveries: Sequence[Delivery],
    candidates: Sequence[_Candidate],
    dead: Mapping[int, tuple[str, str]],
) -> list[EnvelopeOutcome]:
    by_index: dict[int, list[EventOutcome]] = {i: [] for i in range(len(deliveries))}
    for cand in candidates:
        assert cand.outcomes, "every candidate is settled"
        by_index[cand.index].extend(cand.outcomes)
    return [
        _envelope_outcome(delivery.envelope, tuple(by_index[index]), dead.get(index))
        for index, delivery in enumerate(deliveries)
    ]


def _envelope_outcome(
    env: IngestEnvelope, events: tuple[EventOutcome, ...], dead: tuple[str, str] | None
) -> EnvelopeOutcome:
    """Dead-lettered whole when it could not be parsed; else the most pressing of its events'
    statuses, with their reasons."""
    if dead is not None:
        reason, signature = dead
        return EnvelopeOutcome(
            env.request_id, env.source, Status.DEAD_LETTERED, events, reason, signature
        )
    statuses = {e.status for e in events}
    status = next((s for s in _PRECEDENCE if s in statuses), Status.IGNORED)
    reasons = sorted({e.reason for e in events if e.status is status})
    reason = "; ".join(reasons) if events else "no events"
    return EnvelopeOutcome(env.request_id, env.source, status, events, reason)


async def _settle_deliveries(
    deliveries: Sequence[Delivery],
    outcomes: Sequence[EnvelopeOutcome],
    ports: IngestPorts,
    config: IngestConfig,
    hold_outages: bool,
) -> tuple[Delivery, ...]:
    """Ack what settled, dead-letter what cannot be processed, hand back (or hold) the rest."""
    acks: list[str] = []
    retries: dict[timedelta, list[str]] = {}
    held: list[Delivery] = []
    for delivery, outcome in zip(deliveries, outcomes, strict=True):
        if outcome.status is Status.DEAD_LETTERED:
            await ports.dead_letters.add(delivery, outcome.reason)
            acks.append(delivery.receipt)
        elif outcome.status is Status.RETRY and hold_outages and outcome.outages:
            held.append(delivery)
        elif outcome.status is Status.RETRY:
            retries.setdefault(config.retry_delay(delivery.attempt), []).append(delivery.receipt)
        else:
            acks.append(delivery.receipt)
    for delay, receipts in retries.items():
        await ports.inbox.retry(receipts, delay)
    if acks:
        await ports.inbox.ack(acks)
    return tuple(held)
