"""Aloware webhooks: Bearer/Basic secret at the edge, `{event, body}` into source events."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pulse.adapters_in.sources.base import (
    Accepted,
    AuthFailed,
    BadPayload,
    WebhookRequest,
    load_json,
    matches_any,
)
from pulse.adapters_in.sources.bounds import INT64_MAX, MAX_ID_CHARS, bounded
from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import Direction, IngestEnvelope, Kind, Source, SourceEvent

AlowareAuth = Literal["bearer", "basic", "none"]

CALL_TYPE = 1
SMS_TYPE = 2
INBOUND = 1
OUTBOUND = 2

# `disposition_status2` as seen in captures: 1 initiated / in progress, 3 missed, 4 completed,
# 5 failed. Anything from 3 up is an outcome, so the communication is over.
FIRST_FINAL_DISPOSITION_CODE = 3
FAILED_DISPOSITION_CODE = 5
FAILED_DISPOSITION = "failed"
IN_PROGRESS_DISPOSITIONS = frozenset(
    {"initiated", "queued", "ringing", "in-progress", "in_progress", "in progress", "sending"}
)
# Aloware writes "no user" as null, empty, 0 or -1 depending on the event.
NO_USER_IDS = frozenset({"0", "-1"})


class AlowareSource:
    """Aloware's webhook: one communication per request, re-sent under several event names."""

    name = Source.ALOWARE.value
    kept_headers: tuple[str, ...] = ("content-type", "user-agent")

    def __init__(
        self, auth: AlowareAuth, secret: str | None = None, secrets: Accepted | None = None
    ) -> None:
        """`secrets` (current, then previous during a rotation) wins over a fixed `secret`."""
        if auth not in ("bearer", "basic", "none"):
            raise ValueError(f"unknown Aloware auth mode {auth!r}: bearer, basic or none")
        fixed = (secret,) if secret else ()
        self._secrets: Accepted = secrets or (lambda: fixed)
        if auth != "none" and not self._secrets():
            raise ValueError(f"Aloware auth {auth!r} needs a secret")
        self.auth = auth

    def _expected(self) -> list[bytes]:
        return [secret.encode("utf-8") for secret in self._secrets()]

    def __repr__(self) -> str:
        return f"AlowareSource(auth={self.auth!r})"

    # ---- edge -------------------------------------------------------------------------

    def authenticate(self, request: WebhookRequest) -> None:
        if self.auth == "none":
            return
        header = request.headers.get("authorization")
        if not header or not header.strip():
            raise AuthFailed("missing Authorization header")
        scheme, _, credentials = header.strip().partition(" ")
        if self.auth == "bearer":
            if scheme.lower() != "bearer":
                raise AuthFailed("wrong Authorization scheme: expected Bearer")
            given = credentials.strip().encode("utf-8", "surrogateescape")
            if not matches_any(given, self._expected()):
                raise AuthFailed("bearer token does not match")
            return
        if scheme.lower() != "basic":
            raise AuthFailed("wrong Authorization scheme: expected Basic")
        try:
            user_password = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise AuthFailed("basic credentials are not valid base64") from None
        if not matches_any(user_password, self._expected()):
            raise AuthFailed("basic credentials do not match")

    def check(self, request: WebhookRequest) -> None:
        payload = load_json(request.body)
        if not isinstance(payload, dict):
            raise BadPayload("body is not a JSON object")

    # ---- worker -----------------------------------------------------------------------

    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        payload = load_json(envelope.body, UnparseableEnvelope)
        if not isinstance(payload, dict):
            raise UnparseableEnvelope(f"body is not a JSON object but {_json_type(payload)}")
        if payload.get("test_payload"):
            # The probe Aloware sends when a webhook is saved; it must be answered, never counted.
            return [_uncountable(Kind.PROBE, "test_payload")]

        event_name = payload.get("event")
        if event_name is None:
            event_name = ""
        if not isinstance(event_name, str):
            raise UnparseableEnvelope(f"`event` is {_json_type(event_name)}, not a string")
        body = payload.get("body")
        if not isinstance(body, dict):
            raise UnparseableEnvelope(f"`body` is {_json_type(body)}, not an object")

        communication_id = _id(body, "id")
        if communication_id is None:
            # Enrichment events (e.g. transcription.call.summarized) describe a communication
            # already counted and carry no `body.id`: kept as an event the rules ignore.
            return [_uncountable(Kind.ENRICHMENT, event_name)]
        return [bounded(_communication(event_name, communication_id, body))]


def _communication(event_name: str, communication_id: str, body: Mapping[str, Any]) -> SourceEvent:
    kind = _kind(_code(body, "type"), event_name)
    disposition = _disposition(body)
    disposition_code = _code(body, "disposition_status2")
    if disposition is None and disposition_code == FAILED_DISPOSITION_CODE:
        # Some captures carry only the numeric code; a failed call must not count by default.
        disposition = FAILED_DISPOSITION
    return SourceEvent(
        source=Source.ALOWARE,
        kind=kind,
        event_name=event_name,
        object_id=communication_id,
        occurred_at=_created_at(body),
        direction=_direction(_code(body, "direction"), event_name),
        agent_id=_agent(body),
        disposition=disposition,
        final=_is_final(disposition, disposition_code, event_name),
        agent_leg_answered=_agent_leg_answered(kind, disposition, body),
        duration_sec=_seconds(body, "duration") if kind is Kind.CALL else None,
    )


def _uncountable(kind: Kind, event_name: str) -> SourceEvent:
    """A probe or enrichment: no communication id, so the rules ignore it by construction."""
    return SourceEvent(
        source=Source.ALOWARE, kind=kind, event_name=event_name, object_id=None, occurred_at=None
    )


def _kind(type_code: int | None, event_name: str) -> Kind:
    if type_code == CALL_TYPE:
        return Kind.CALL
    if type_code == SMS_TYPE:
        return Kind.SMS
    if type_code is not None:
        return Kind.UNKNOWN
    # `type` is the truth; the event name ("OutboundPhoneCall…", "InboundSMS…") only fills a gap.
    name = event_name.lower()
    if "sms" in name:
        return Kind.SMS
    if "call" in name:
        return Kind.CALL
    return Kind.UNKNOWN


def _direction(direction_code: int | None, event_name: str) -> Direction:
    if direction_code == OUTBOUND:
        return Direction.OUTBOUND
    if direction_code == INBOUND:
        return Direction.INBOUND
    if direction_code is not None:
        return Direction.UNKNOWN
    name = event_name.lower()
    if name.startswith("outbound"):
        return Direction.OUTBOUND
    if name.startswith("inbound"):
        return Direction.INBOUND
    return Direction.UNKNOWN


def _agent(body: Mapping[str, Any]) -> str | None:
    user_id = _id(body, "user_id")
    return None if user_id is None or user_id in NO_USER_IDS else user_id


def _disposition(body: Mapping[str, Any]) -> str | None:
    value = body.get("disposition_status")
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnparseableEnvelope(f"disposition_status is {_json_type(value)}, not a string")
    return value.strip().lower() or None


def _is_final(disposition: str | None, disposition_code: int | None, event_name: str) -> bool:
    """The most specific signal present decides: the status text, then its code, then the name."""
    if disposition is not None:
        return disposition not in IN_PROGRESS_DISPOSITIONS
    if disposition_code is not None:
        return disposition_code >= FIRST_FINAL_DISPOSITION_CODE
    return "disposition" in event_name.lower()


def _agent_leg_answered(kind: Kind, disposition: str | None, body: Mapping[str, Any]) -> bool:
    # A failed call with no customer leg and no talk time never reached the lead: Aloware
    # rings the agent first, and that leg was never picked up.
    if kind is not Kind.CALL or disposition != FAILED_DISPOSITION:
        return True
    no_customer_leg = body.get("customer_leg_status") in (None, "")
    return not (no_customer_leg and not _seconds(body, "talk_time"))


def _created_at(body: Mapping[str, Any]) -> datetime:
    raw = body.get("created_at")
    if not isinstance(raw, str) or not raw.strip():
        raise UnparseableEnvelope(
            f"created_at is {_json_type(raw)}, expected 'YYYY-MM-DD HH:MM:SS'"
        )
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise UnparseableEnvelope(
            f"created_at {raw!r} is not a timestamp ('YYYY-MM-DD HH:MM:SS')"
        ) from None
    # Aloware writes UTC without an offset; an explicit offset, if one ever appears, wins.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _id(body: Mapping[str, Any], field: str) -> str | None:
    """Aloware sends ids as strings in some events and numbers in others: one spelling here."""
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UnparseableEnvelope(f"{field} is a boolean, not an id")
    if isinstance(value, int | float) and not abs(value) <= INT64_MAX:
        raise UnparseableEnvelope(f"{field} is a number out of range, not an id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_ID_CHARS:
            raise UnparseableEnvelope(f"{field} is {len(text):,} characters, not an id")
        if text.lstrip("-").isdigit() and text.isascii():
            return str(int(text))
        if text:
            return text
        return None
    raise UnparseableEnvelope(f"{field} is {_json_type(value)}, not an id")


def _code(body: Mapping[str, Any], field: str) -> int | None:
    """Numeric codes (`type`, `direction`, `disposition_status2`) as ints, or None."""
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UnparseableEnvelope(f"{field} is a boolean, not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise UnparseableEnvelope(f"{field} is {value!r}, not a whole number")


def _seconds(body: Mapping[str, Any], field: str) -> int | None:
    """Durations: whole seconds, though a capture may spell them "44", 44 or 44.0."""
    value = body.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnparseableEnvelope(f"{field} is {_json_type(value)}, not a number of seconds")
    try:
        return int(float(value))
    except (ValueError, OverflowError):
        raise UnparseableEnvelope(f"{field} is {value!r}, not a number of seconds") from None


def _json_type(value: object) -> str:
    if value is None:
        return "missing or null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )
