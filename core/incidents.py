"""Failure signatures and incidents: when a failure opens one, when it resolves (DESIGN §7)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.ports.incidents import IncidentStore

SAMPLE_CHARS = 500  # a sample message is for a human; a whole error body is not
SILENCE = "silence"
SAVE_ATTEMPTS = 8  # racing replicas: each lost conditional write reads the head again


class State(StrEnum):
    PENDING = "pending"  # seen, below the threshold: not shown, not alerted
    OPEN = "open"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Incident:
    """One signature's trouble, from its first occurrence until it resolves."""

    id: str
    signature: str
    state: State
    count: int
    first_seen: datetime
    last_seen: datetime
    sample: str
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str = ""
    acked_by: str = ""
    acked_at: datetime | None = None

    @property
    def dependency(self) -> str:
        return self.signature.split(":", 1)[0]

    def as_dict(self) -> dict[str, object]:
        def iso(at: datetime | None) -> str | None:
            return at.isoformat() if at is not None else None

        return {
            "id": self.id,
            "signature": self.signature,
            "state": self.state.value,
            "count": self.count,
            "firstSeen": iso(self.first_seen),
            "lastSeen": iso(self.last_seen),
            "sample": self.sample,
            "openedAt": iso(self.opened_at),
            "resolvedAt": iso(self.resolved_at),
            "resolvedBy": self.resolved_by,
            "ackedBy": self.acked_by,
            "ackedAt": iso(self.acked_at),
        }


def incident_from_dict(data: Mapping[str, object]) -> Incident:
    """The inverse of `Incident.as_dict` (how the stores keep an incident)."""

    def at(name: str) -> datetime | None:
        value = data.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else None

    def text(name: str) -> str:
        value = data.get(name)
        return value if isinstance(value, str) else ""

    first, last, count = at("firstSeen"), at("lastSeen"), data.get("count")
    assert first is not None and last is not None and isinstance(count, int)
    return Incident(
        id=text("id"),
        signature=text("signature"),
        state=State(text("state")),
        count=count,
        first_seen=first,
        last_seen=last,
        sample=text("sample"),
        opened_at=at("openedAt"),
        resolved_at=at("resolvedAt"),
        resolved_by=text("resolvedBy"),
        acked_by=text("ackedBy"),
        acked_at=at("ackedAt"),
    )


@dataclass(frozen=True, slots=True)
class IncidentRules:
    """INCIDENT_THRESHOLD occurrences (within `resolve_after` of each other) open an incident;
    `resolve_after` without one resolves it. A silence opens at once and resolves only when
    the source speaks again."""

    threshold: int = 5
    resolve_after: timedelta = timedelta(minutes=10)

    def threshold_of(self, signature: str) -> int:
        return 1 if is_silence(signature) else self.threshold


class Change(StrEnum):
    OPENED = "opened"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Transition:
    """What an alert says: this incident just opened or resolved (told by the one replica
    whose write made it so)."""

    change: Change
    incident: Incident


# --- signatures ---------------------------------------------------------------------------------


def is_silence(signature: str) -> bool:
    return signature.startswith(f"{SILENCE}:")


def silence_signature(source: str) -> str:
    return f"{SILENCE}:{source}"


def parse_signature(source: str, code: str) -> str:
    return f"parse:{source}:{code}"


def signature_of(error: BaseException, dependency: str) -> str:
    """`dependency:class` of a failure: the error's own `dependency` (a vendor adapter's) or
    the port that failed, and its HTTP status (`429`, `5xx`, `401`), `throttled`, `timeout`,
    `auth` or `unavailable`."""
    named = getattr(error, "dependency", None)
    return f"{named if isinstance(named, str) and named else dependency}:{error_class(error)}"


def error_class(error: BaseException) -> str:
    declared = getattr(error, "error_class", None)
    if isinstance(declared, str) and declared:
        return declared
    status = getattr(error, "status", None)
    if isinstance(status, int) and not isinstance(status, bool):
        return "5xx" if status >= 500 else str(status)
    chain = _chain(error)
    names = " ".join(type(e).__name__.lower() for e in chain)
    if "throttl" in names:
        return "throttled"
    if any(isinstance(e, TimeoutError) for e in chain) or "timeout" in names:
        return "timeout"
    if "auth" in names or "token" in names:
        return "auth"
    return "unavailable"


def _chain(error: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(found) < 8:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def incident_id(signature: str, first_seen: datetime) -> str:
    digest = hashlib.sha256(signature.encode()).hexdigest()[:8]
    return f"{first_seen:%Y%m%dT%H%M%S}-{digest}"


# --- the rules, pure ----------------------------------------------------------------------------


def observed(
    head: Incident | None,
    signature: str,
    occurrences: int,
    sample: str,
    now: datetime,
    rules: IncidentRules,
) -> Incident:
    """The signature's incident after `occurrences` more failures: a new one when there is
    none or it resolved, or when a pending one went quiet; open once the threshold is met."""
    sample = sample[:SAMPLE_CHARS]
    stale = head is not None and (
        head.state is State.RESOLVED
        or (head.state is State.PENDING and now - head.last_seen > rules.resolve_after)
    )
    if head is None or stale:
        head = Incident(incident_id(signature, now), signature, State.PENDING, 0, now, now, sample)
    count = head.count + occurrences
    opened = head.state is State.PENDING and count >= rules.threshold_of(signature)
    return replace(
        head,
        count=count,
        last_seen=max(now, head.last_seen),
        sample=sample or head.sample,
        state=State.OPEN if opened else head.state,
        opened_at=now if opened else head.opened_at,
    )


def quiet(head: Incident, now: datetime, rules: IncidentRules) -> bool:
    """An open incident resolves itself once nothing failed for `resolve_after` (a silence
    waits for its source instead)."""
    return (
        head.state is State.OPEN
        and not is_silence(head.signature)
        and now - head.last_seen >= rules.resolve_after
    )


def resolved(head: Incident, now: datetime, by: str) -> Incident:
    return replace(head, state=State.RESOLVED, resolved_at=now, resolved_by=by)


def acknowledged(incident: Incident, now: datetime, who: str) -> Incident:
    return replace(incident, acked_by=who, acked_at=now)


# --- use cases over the store --------------------------------------------------------------------


class UnknownIncident(LookupError):
    """No incident has this id."""


async def record(
    store: IncidentStore,
    signature: str,
    occurrences: int,
    sample: str,
    now: datetime,
    rules: IncidentRules,
) -> Transition | None:
    """Count failures of `signature`; the replica whose write opened the incident is told."""
    for _ in range(SAVE_ATTEMPTS):
        head, version = await store.head(signature)
        after = observed(head, signature, occurrences, sample, now, rules)
        if await store.save(after, version):
            was_open = head is not None and head.id == after.id and head.state is State.OPEN
            if after.state is State.OPEN and not was_open:
                return Transition(Change.OPENED, after)
            return None
    raise RuntimeError(f"incident {signature}: lost {SAVE_ATTEMPTS} conditional writes in a row")


async def resolve(
    store: IncidentStore, signature: str, now: datetime, by: str
) -> Transition | None:
    """Resolve the signature's open incident (a pending one is dropped quietly)."""
    for _ in range(SAVE_ATTEMPTS):
        head, version = await store.head(signature)
        if head is None or head.state is State.RESOLVED:
            return None
        after = resolved(head, now, by)
        if await store.save(after, version):
            return Transition(Change.RESOLVED, after) if head.state is State.OPEN else None
    raise RuntimeError(f"incident {signature}: lost {SAVE_ATTEMPTS} conditional writes in a row")


async def sweep(store: IncidentStore, now: datetime, rules: IncidentRules) -> list[Transition]:
    """Resolve every open incident that went quiet."""
    found: list[Transition] = []
    for head in await store.open():
        if quiet(head, now, rules):
            done = await resolve(store, head.signature, now, "quiet")
            if done is not None:
                found.append(done)
    return found


async def acknowledge(
    store: IncidentStore, incident_id: str, who: str, now: datetime, *, resolve_it: bool = False
) -> tuple[Incident, Transition | None]:
    """An operator's ack (and, asked, resolve) of one incident by id."""
    incident = await store.get(incident_id)
    if incident is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    for _ in range(SAVE_ATTEMPTS):
        head, version = await store.head(incident.signature)
        if head is None or head.id != incident_id:  # an older one: only its record changes
            incident = acknowledged(incident, now, who)
            await store.save(incident, None)
            return incident, None
        after = acknowledged(head, now, who)
        if resolve_it and head.state is not State.RESOLVED:
            after = resolved(after, now, f"operator:{who}")
        if await store.save(after, version):
            told = resolve_it and head.state is State.OPEN
            return after, Transition(Change.RESOLVED, after) if told else None
    raise RuntimeError(f"incident {incident_id}: lost {SAVE_ATTEMPTS} conditional writes in a row")


def counts_by_state(incidents: list[Incident]) -> Mapping[str, int]:
    found = {s.value: 0 for s in (State.OPEN, State.RESOLVED)}
    for incident in incidents:
        if incident.state.value in found:
            found[incident.state.value] += 1
    return found
