"""The domain: envelopes in, source events, fact rows and dimension rows out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any, NewType

EventKey = NewType("EventKey", str)
"""Identity of one counted activity: `aloware:<id>`, `hubspot:ticket:<id>`, `hubspot:email:<id>`."""

DateKey = NewType("DateKey", int)
"""Business date as an int yyyymmdd (20251105)."""


class MetricID(StrEnum):
    CALLS = "CALLS"
    TEXTS = "TEXTS"
    EMAILS = "EMAILS"
    CASES = "CASES"


class Source(StrEnum):
    ALOWARE = "aloware"
    HUBSPOT = "hubspot"


class Kind(StrEnum):
    """What a source event is about, before the rules decide whether it counts."""

    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    TICKET = "ticket"
    PROBE = "probe"
    ENRICHMENT = "enrichment"
    UNKNOWN = "unknown"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class IngestEnvelope:
    """One webhook request as the edge stored it: raw, so a parser fix can replay it."""

    request_id: str
    source: str
    received_at: datetime
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An envelope handed to a worker by the inbox; `receipt` acks or returns it."""

    envelope: IngestEnvelope
    receipt: str
    attempt: int = 1


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One activity parsed from a webhook, normalised across vendors.

    `object_id` is the vendor's id of the communication / CRM object; `agent_id` is the
    Aloware user id when the source names one; HubSpot events learn owner and direction
    from the CRM (see `CrmObject`).
    """

    source: Source
    kind: Kind
    event_name: str
    object_id: str | None
    occurred_at: datetime | None
    direction: Direction = Direction.UNKNOWN
    agent_id: str | None = None
    disposition: str | None = None
    final: bool = False
    agent_leg_answered: bool = True
    duration_sec: int | None = None
    object_type_id: str | None = None


@dataclass(frozen=True, slots=True)
class CrmObject:
    """What HubSpot's CRM says about an email or ticket (ids only arrive by webhook)."""

    object_type: str
    object_id: str
    owner_id: str | None
    owner_email: str | None
    direction: str | None = None
    status: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RosterAgent:
    agent_id: str
    name: str
    email: str | None = None
    ring_group_id: str | None = None
    """The ring group (team) the roster found them in; None: the snapshot's."""


@dataclass(frozen=True, slots=True)
class RosterSnapshot:
    """The ring-group roster. `count_everyone` is the local allow-all mode (warned at start)."""

    agents: tuple[RosterAgent, ...]
    ring_group_id: str | None = None
    count_everyone: bool = False

    def by_id(self, agent_id: str) -> RosterAgent | None:
        for agent in self.agents:
            if agent.agent_id == agent_id:
                return agent
        return None

    def by_email(self, email: str) -> RosterAgent | None:
        wanted = email.strip().lower()
        for agent in self.agents:
            if agent.email and agent.email.strip().lower() == wanted:
                return agent
        return None


# ---- star schema rows (DESIGN §3) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactEvent:
    EventKey: EventKey
    Source: str
    MetricID: MetricID
    AgentKey: str
    DateKey: DateKey
    ShiftKey: str
    OccurredAtUtc: datetime
    OccurredAtLocal: datetime
    MetricMonthKey: str
    DurationSec: int | None = None


@dataclass(frozen=True, slots=True)
class DimAgent:
    AgentKey: str
    AgentName: str
    Email: str | None
    RingGroupId: str | None
    Active: bool
    SyncedAt: datetime
    ActiveFrom: date | None = None
    """The business date a roster sync first saw them; None: on the roster before Pulse knew."""
    ActiveTo: date | None = None
    """For an agent who left, the last business date a roster sync saw them; None while on it."""


@dataclass(frozen=True, slots=True)
class DimDate:
    DateKey: DateKey
    Date: date
    Year: int
    Quarter: int
    Month: int
    MonthName: str
    Day: int
    DayOfWeek: int
    DayName: str
    WeekOfYear: int
    IsWeekend: bool
    IsWorkday: bool


@dataclass(frozen=True, slots=True)
class DimMetric:
    MetricMonthKey: str
    MetricID: MetricID
    Month: str
    DefaultGoal: float
    YellowFloorPct: float
    Version: int
    AgentKey: str | None = None
    """None: the goal of every agent; else this agent's own goal (key `2026-11:CALLS:<agent>`)."""


@dataclass(frozen=True, slots=True)
class DimShift:
    ShiftKey: str
    ShiftName: str
    StartLocal: str
    EndLocal: str
    Days: str
    Retired: bool = False
    """No rule assigns it any more; kept because facts may carry the key."""


DimRow = DimAgent | DimDate | DimMetric | DimShift
Row = FactEvent | DimRow


@dataclass(frozen=True, slots=True)
class ShiftRule:
    """A named window of local time on some weekdays (0 = Monday). `end <= start` wraps midnight."""

    key: str
    name: str
    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class Goal:
    """Default monthly goal for one metric: per agent per workday."""

    metric: MetricID
    default_goal: float
    yellow_floor_pct: float


def row_dict(row: Row) -> dict[str, Any]:
    """A row as column → value, in schema order."""
    return {name: getattr(row, name) for name in row.__dataclass_fields__}
