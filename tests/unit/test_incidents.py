"""Failure signatures, the incident rules, the silence rule and alert rendering (core, pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.adapters_out.dynamodb.client import DynamoThrottled
from pulse.adapters_out.entra.tokens import EntraAuthError
from pulse.adapters_out.fabric.errors import FabricUnavailable
from pulse.adapters_out.powerbi.errors import (
    PowerBIAccessDenied,
    PowerBIAuthError,
    PowerBIThrottled,
    PowerBIUnavailable,
)
from pulse.core import alerts, silence
from pulse.core.calendar import ALL_DAY
from pulse.core.errors import ValidationFailed
from pulse.core.incidents import (
    Change,
    IncidentRules,
    State,
    Transition,
    incident_from_dict,
    observed,
    quiet,
    resolved,
    signature_of,
)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
RULES = IncidentRules(threshold=3, resolve_after=timedelta(minutes=10))
NY = ZoneInfo("America/New_York")


# --- signatures ----------------------------------------------------------------------------


def _timeout() -> FabricUnavailable:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError as exc:
        try:
            raise FabricUnavailable("no answer") from exc
        except FabricUnavailable as wrapped:
            return wrapped


@pytest.mark.parametrize(
    ("error", "port", "signature"),
    [
        (PowerBIThrottled("slow down", retry_after=3), "sink", "powerbi:429"),
        (PowerBIUnavailable("bad gateway", status=502), "sink", "powerbi:5xx"),
        (PowerBIAccessDenied("no access", status=401), "sink", "powerbi:401"),
        (DynamoThrottled("ThrottlingException for 9 attempts"), "ledger", "dynamodb:throttled"),
        (_timeout(), "sink", "fabric:timeout"),
        (
            PowerBIAuthError("invalid_client", "AADSTS7000215: Invalid secret"),
            "sink",
            "powerbi:auth",
        ),
        (EntraAuthError("invalid_client", "AADSTS7000215"), "sink", "entra:auth"),
        (RuntimeError("odd"), "crm", "crm:unavailable"),
    ],
)
def test_a_failure_is_named_by_its_dependency_and_error_class(
    error: BaseException, port: str, signature: str
) -> None:
    assert signature_of(error, port) == signature


# --- the incident rules --------------------------------------------------------------------


def test_failures_below_the_threshold_stay_pending_and_the_threshold_opens() -> None:
    head = observed(None, "powerbi:429", 1, "first", T0, RULES)
    head = observed(head, "powerbi:429", 1, "second", T0 + timedelta(seconds=5), RULES)
    assert (head.state, head.count, head.opened_at) == (State.PENDING, 2, None)

    opened = observed(head, "powerbi:429", 1, "third", T0 + timedelta(seconds=9), RULES)

    assert (opened.state, opened.count, opened.sample) == (State.OPEN, 3, "third")
    assert (opened.first_seen, opened.last_seen) == (T0, T0 + timedelta(seconds=9))
    assert opened.opened_at == T0 + timedelta(seconds=9) and opened.id == head.id


def test_pending_failures_far_apart_start_counting_again() -> None:
    head = observed(None, "powerbi:429", 2, "x", T0, RULES)
    later = observed(head, "powerbi:429", 1, "y", T0 + timedelta(minutes=11), RULES)
    assert (later.state, later.count, later.first_seen) == (State.PENDING, 1, later.last_seen)


def test_an_open_incident_resolves_after_quiet_and_a_new_failure_then_opens_a_new_one() -> None:
    head = observed(None, "dynamodb:throttled", 3, "x", T0, RULES)
    assert not quiet(head, T0 + timedelta(minutes=9, seconds=59), RULES)
    assert quiet(head, T0 + timedelta(minutes=10), RULES)

    done = resolved(head, T0 + timedelta(minutes=10), "quiet")
    again = observed(done, "dynamodb:throttled", 1, "z", T0 + timedelta(minutes=11), RULES)

    assert again.id != head.id and (again.state, again.count) == (State.PENDING, 1)


def test_a_silence_opens_at_once_and_never_resolves_by_quiet() -> None:
    head = observed(None, "silence:aloware", 1, "nothing for 30 min", T0, RULES)
    assert head.state is State.OPEN
    assert not quiet(head, T0 + timedelta(days=1), RULES)


def test_an_incident_survives_its_stored_form() -> None:
    head = observed(None, "parse:aloware:bad_created_at", 3, "created_at 'x'", T0, RULES)
    assert incident_from_dict(json.loads(json.dumps(head.as_dict()))) == head


def test_a_sample_is_cut_to_a_readable_length() -> None:
    assert len(observed(None, "powerbi:5xx", 1, "e" * 10_000, T0, RULES).sample) == 500


# --- silence inside business hours ---------------------------------------------------------


def test_business_hours_are_read_from_the_setting_and_bad_ones_named() -> None:
    hours = silence.parse_business_hours("Mon-Fri 08:00-18:00; Sat 09:00-13:00", NY)
    assert [sorted(w.days) for w in hours.windows] == [[0, 1, 2, 3, 4], [5]]
    with pytest.raises(ValidationFailed, match="BUSINESS_HOURS: 'Mon-Fri 8-18'"):
        silence.parse_business_hours("Mon-Fri 8-18", NY)
    with pytest.raises(ValidationFailed, match="days are Mon"):
        silence.parse_business_hours("Mo-Fr 08:00-18:00", NY)


def test_only_business_time_counts_toward_a_silence() -> None:
    hours = silence.parse_business_hours("Mon-Fri 08:00-18:00", NY)
    friday_evening = datetime(2026, 12, 4, 17, 50, tzinfo=NY)  # a Friday
    monday_morning = datetime(2026, 12, 7, 8, 15, tzinfo=NY)
    limit = timedelta(minutes=30)

    assert hours.seconds_between(friday_evening, monday_morning) == 25 * 60
    assert not silence.silent(friday_evening, monday_morning, limit, hours)
    assert silence.silent(friday_evening, monday_morning + timedelta(minutes=5), limit, hours)
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=NY)
    assert not silence.silent(saturday, saturday + timedelta(hours=6), limit, hours)


def test_all_day_shift_rules_make_every_minute_business_time() -> None:
    hours = silence.from_shifts([ALL_DAY], NY)
    assert hours.seconds_between(T0, T0 + timedelta(hours=30)) == 30 * 3600


# --- alert messages ------------------------------------------------------------------------


def _opened() -> Transition:
    return Transition(Change.OPENED, observed(None, "powerbi:429", 3, "Retry-After 30", T0, RULES))


def test_a_slack_alert_has_text_and_blocks_naming_the_signature() -> None:
    body = alerts.render(_opened(), "slack")
    assert body["text"] == "[pulse] incident opened: powerbi:429 (3×)"
    assert body["blocks"][0]["text"]["type"] == "mrkdwn"
    assert any("powerbi:429" in f["text"] for f in body["blocks"][1]["fields"])
    assert body["blocks"][2]["elements"][0]["text"] == "Retry-After 30"


def test_a_teams_alert_is_one_adaptive_card_message() -> None:
    body = alerts.render(_opened(), "teams")
    (attachment,) = body["attachments"]
    assert body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["color"] == "Attention"
    assert {"title": "Signature", "value": "powerbi:429"} in card["body"][1]["facts"]


def test_a_json_alert_carries_the_whole_incident_and_a_resolve_says_by_whom() -> None:
    opened = _opened()
    done = Transition(Change.RESOLVED, resolved(opened.incident, T0, "quiet"))
    assert alerts.render(opened, "json")["incident"] == opened.incident.as_dict()
    body = alerts.render(done, "json")
    assert body["event"] == "incident.resolved"
    assert body["summary"] == "[pulse] incident resolved: powerbi:429 (by quiet)"


# --- the README's examples are what Pulse sends ---------------------------------------------


def test_the_readmes_alert_examples_are_what_each_format_renders() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    alerts_section = readme.split("### Alerts", 1)[1].split("\n## ", 1)[0]
    examples = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", alerts_section, re.S)]
    at = datetime(2026, 12, 1, 14, 2, 11, tzinfo=UTC)
    sample = "sink unavailable: PostRows throttled: HTTP 429, Retry-After 30"
    incident = observed(None, "powerbi:429", 5, sample, at, IncidentRules())
    opened = Transition(Change.OPENED, incident)
    done = Transition(Change.RESOLVED, resolved(incident, at + timedelta(minutes=14), "quiet"))

    assert examples == [
        alerts.render(opened, "slack"),
        alerts.render(opened, "teams"),
        alerts.render(done, "json"),
    ]
    for command in ("pulse incidents list", "pulse incidents ack", "GET /admin/incidents"):
        assert command in readme
