"""What an alert says, in the shape each incoming webhook takes (Slack, Microsoft Teams, JSON)."""

from __future__ import annotations

from typing import Any, Literal

from pulse.core.incidents import Change, Incident, Transition

AlertFormat = Literal["slack", "teams", "json"]
FORMATS: tuple[AlertFormat, ...] = ("slack", "teams", "json")


def headline(transition: Transition, service: str) -> str:
    incident = transition.incident
    if transition.change is Change.OPENED:
        return f"[{service}] incident opened: {incident.signature} ({incident.count}×)"
    return f"[{service}] incident resolved: {incident.signature} (by {incident.resolved_by})"


def facts(incident: Incident) -> list[tuple[str, str]]:
    found = [
        ("Signature", incident.signature),
        ("Occurrences", str(incident.count)),
        ("First seen", incident.first_seen.isoformat(timespec="seconds")),
        ("Last seen", incident.last_seen.isoformat(timespec="seconds")),
    ]
    if incident.resolved_at is not None:
        found.append(("Resolved", incident.resolved_at.isoformat(timespec="seconds")))
    found.append(("Incident", incident.id))
    return found


def render(transition: Transition, fmt: AlertFormat, service: str = "pulse") -> dict[str, Any]:
    """The JSON body to POST to the alert webhook."""
    if fmt == "slack":
        return _slack(transition, service)
    if fmt == "teams":
        return _teams(transition, service)
    return {
        "event": f"incident.{transition.change.value}",
        "service": service,
        "summary": headline(transition, service),
        "incident": transition.incident.as_dict(),
    }


def _slack(transition: Transition, service: str) -> dict[str, Any]:
    """Slack incoming webhook: `text` (notifications, fallback) and Block Kit blocks."""
    incident = transition.incident
    icon = ":red_circle:" if transition.change is Change.OPENED else ":large_green_circle:"
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in facts(incident)]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{icon} *{headline(transition, service)}*"},
        },
        {"type": "section", "fields": fields[:10]},  # Slack takes at most 10 fields
    ]
    if incident.sample:
        blocks.append(
            {"type": "context", "elements": [{"type": "plain_text", "text": incident.sample}]}
        )
    return {"text": headline(transition, service), "blocks": blocks}


def _teams(transition: Transition, service: str) -> dict[str, Any]:
    """Microsoft Teams incoming webhook (Workflows): a message carrying one Adaptive Card."""
    incident = transition.incident
    opened = transition.change is Change.OPENED
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": headline(transition, service),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
            "color": "Attention" if opened else "Good",
        },
        {
            "type": "FactSet",
            "facts": [{"title": name, "value": value} for name, value in facts(incident)],
        },
    ]
    if incident.sample:
        body.append({"type": "TextBlock", "text": incident.sample, "wrap": True, "isSubtle": True})
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": body,
                },
            }
        ],
    }
