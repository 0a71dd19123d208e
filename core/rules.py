"""The counting rules: one table an operator can read, first matching row wins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pulse.core.model import Direction, Kind, MetricID, Source, SourceEvent

FAILED_SMS_DISPOSITIONS = frozenset({"failed", "invalid", "undelivered", "rejected", "error"})
FAILED_EMAIL_STATUSES = frozenset({"FAILED", "BOUNCED"})
OUTBOUND_EMAIL_DIRECTION = "EMAIL"  # HubSpot's hs_email_direction for a sent email


@dataclass(frozen=True, slots=True)
class Policy:
    """Switches an operator may flip (settings); the defaults are the documented behaviour."""

    count_failed_calls: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a rule decides: count as `metric`, or ignore with `reason`."""

    metric: MetricID | None
    reason: str

    @property
    def counts(self) -> bool:
        return self.metric is not None


def count(metric: MetricID) -> Verdict:
    return Verdict(metric, f"counted as {metric.value}")


def ignore(reason: str) -> Verdict:
    return Verdict(None, reason)


Condition = Callable[[SourceEvent, Policy], bool]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    when: Condition
    then: Verdict


def _aloware(e: SourceEvent) -> bool:
    return e.source is Source.ALOWARE


def _hubspot(e: SourceEvent) -> bool:
    return e.source is Source.HUBSPOT


# The table. Read top to bottom; the first row whose condition holds decides.
COUNTING_RULES: tuple[Rule, ...] = (
    Rule("Aloware test probe", lambda e, p: e.kind is Kind.PROBE, ignore("probe")),
    Rule(
        "no communication id (enrichment such as a transcription summary)",
        lambda e, p: e.object_id is None or e.kind is Kind.ENRICHMENT,
        ignore("no_object_id"),
    ),
    Rule(
        "inbound call or SMS",
        lambda e, p: _aloware(e) and e.direction is not Direction.OUTBOUND,
        ignore("not_outbound"),
    ),
    Rule(
        "no agent on the communication",
        lambda e, p: _aloware(e) and not e.agent_id,
        ignore("no_agent"),
    ),
    Rule(
        "not dispositioned yet (initiation, ringing)",
        lambda e, p: _aloware(e) and not e.final,
        ignore("not_final"),
    ),
    Rule(
        "failed call whose agent leg was never answered",
        lambda e, p: (
            e.kind is Kind.CALL
            and e.disposition == "failed"
            and not e.agent_leg_answered
            and not p.count_failed_calls
        ),
        ignore("failed_call"),
    ),
    Rule(
        "SMS dispositioned invalid or failed",
        lambda e, p: e.kind is Kind.SMS and (e.disposition or "") in FAILED_SMS_DISPOSITIONS,
        ignore("failed_sms"),
    ),
    Rule(
        "outbound call, final disposition",
        lambda e, p: _aloware(e) and e.kind is Kind.CALL,
        count(MetricID.CALLS),
    ),
    Rule(
        "outbound SMS, final disposition",
        lambda e, p: _aloware(e) and e.kind is Kind.SMS,
        count(MetricID.TEXTS),
    ),
    Rule(
        "HubSpot ticket created",
        lambda e, p: _hubspot(e) and e.kind is Kind.TICKET,
        count(MetricID.CASES),
    ),
    Rule(
        "HubSpot email not outbound (CRM hs_email_direction is not EMAIL)",
        lambda e, p: _hubspot(e) and e.kind is Kind.EMAIL and e.direction is not Direction.OUTBOUND,
        ignore("not_outbound"),
    ),
    Rule(
        "HubSpot email failed or bounced (CRM hs_email_status)",
        lambda e, p: (
            _hubspot(e)
            and e.kind is Kind.EMAIL
            and (e.disposition or "").upper() in FAILED_EMAIL_STATUSES
        ),
        ignore("failed_email"),
    ),
    Rule(
        "HubSpot outbound email",
        lambda e, p: _hubspot(e) and e.kind is Kind.EMAIL,
        count(MetricID.EMAILS),
    ),
)

NO_RULE = ignore("no_rule")


def classify(event: SourceEvent, policy: Policy = Policy()) -> Verdict:
    for rule in COUNTING_RULES:
        if rule.when(event, policy):
            return rule.then
    return NO_RULE
