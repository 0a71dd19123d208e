"""HubSpot webhooks: v3 request signatures at the edge, event arrays into source events."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pulse.adapters_in.sources.base import (
    Accepted,
    AuthFailed,
    BadPayload,
    WebhookRequest,
    load_json,
    matches_any,
)
from pulse.adapters_in.sources.bounds import INT64_MAX, bounded
from pulse.core.errors import UnparseableEnvelope
from pulse.core.model import CrmObject, Direction, IngestEnvelope, Kind, Source, SourceEvent

HubSpotAuth = Literal["v3", "none"]

SIGNATURE_V3 = "x-hubspot-signature-v3"
REQUEST_TIMESTAMP = "x-hubspot-request-timestamp"
SIGNATURE_V1 = "x-hubspot-signature"
SIGNATURE_VERSION = "x-hubspot-signature-version"

# HubSpot batches at most 100 events per request (webhooks API limits).
MAX_EVENTS_PER_REQUEST = 100
MAX_TIMESTAMP_DIGITS = 16  # epoch ms has 13; int() of thousands of digits is refused (and slow)

EMAIL_OBJECT_TYPE = "0-49"
TICKET_OBJECT_TYPE = "0-5"

# "Validating requests", v3: before signing, HubSpot decodes exactly these escapes in the URI
# (and no others), so the receiver must decode the same set and leave the rest encoded.
_SIGNED_URI_ESCAPES = re.compile(r"%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)", re.IGNORECASE)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def signed_uri(url: str) -> str:
    """The URI as HubSpot puts it in the v3 source string."""
    return _SIGNED_URI_ESCAPES.sub(lambda m: chr(int(m.group(1), 16)), url)


def signature_v3(client_secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(client secret, method + URI + body + timestamp))."""
    source = method.upper().encode() + signed_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(client_secret.encode(), source, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signature_v1(client_secret: str, body: bytes) -> str:
    """hex(SHA-256(client secret + body)): no method, URI or timestamp, hence opt-in only."""
    return hashlib.sha256(client_secret.encode() + body).hexdigest()


class HubSpotSource:
    """HubSpot's webhook: a signed array of up to 100 CRM events that carry ids only."""

    name = Source.HUBSPOT.value
    kept_headers: tuple[str, ...] = (
        "content-type",
        "user-agent",
        REQUEST_TIMESTAMP,
        SIGNATURE_VERSION,
    )

    def __init__(
        self,
        client_secret: str | None = None,
        auth: HubSpotAuth = "v3",
        allow_v1: bool = False,
        max_age_ms: int = 300_000,
        client_secrets: Accepted | None = None,
    ) -> None:
        """`client_secrets` (current, then previous during a rotation) wins over `client_secret`."""
        if auth not in ("v3", "none"):
            raise ValueError(f"unknown HubSpot auth mode {auth!r}: v3 or none")
        fixed = (client_secret,) if client_secret else ()
        self._client_secrets: Accepted = client_secrets or (lambda: fixed)
        if auth == "v3" and not self._client_secrets():
            raise ValueError("HubSpot v3 signatures need the app's client secret")
        if max_age_ms <= 0:
            raise ValueError("max_age_ms must be positive")
        self.auth = auth
        self.allow_v1 = allow_v1
        self.max_age_ms = max_age_ms

    def __repr__(self) -> str:
        return (
            f"HubSpotSource(auth={self.auth!r}, allow_v1={self.allow_v1}, "
            f"max_age_ms={self.max_age_ms})"
        )

    # ---- edge -------------------------------------------------------------------------

    def authenticate(self, request: WebhookRequest) -> None:
        if self.auth == "none":
            return
        signature = request.headers.get(SIGNATURE_V3)
        if signature is None and self.allow_v1 and SIGNATURE_V1 in request.headers:
            self._check_v1(request)
            return
        if not signature:
            raise AuthFailed("missing X-HubSpot-Signature-v3")
        timestamp = self._fresh_timestamp(request)
        expected = [
            signature_v3(secret, request.method, request.url, request.body, timestamp).encode()
            for secret in self._client_secrets()
        ]
        if not matches_any(signature.strip().encode(), expected):
            raise AuthFailed("signature does not match")

    def _fresh_timestamp(self, request: WebhookRequest) -> str:
        timestamp = request.headers.get(REQUEST_TIMESTAMP)
        if not timestamp:
            raise AuthFailed("missing X-HubSpot-Request-Timestamp")
        timestamp = timestamp.strip()
        if not (
            timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS
        ):
            raise AuthFailed("X-HubSpot-Request-Timestamp is not epoch milliseconds")
        age_ms = request.now_ms - int(timestamp)
        window = f"{self.max_age_ms / 1000:g} s"
        # The timestamp is what makes a v3 signature unreplayable; clock skew is allowed
        # both ways within the same window.
        if age_ms > self.max_age_ms:
            raise AuthFailed(f"timestamp older than {window}")
        if -age_ms > self.max_age_ms:
            raise AuthFailed(f"timestamp more than {window} in the future")
        return timestamp

    def _check_v1(self, request: WebhookRequest) -> None:
        version = request.headers.get(SIGNATURE_VERSION, "").strip().lower()
        if version != "v1":
            raise AuthFailed("X-HubSpot-Signature-Version is not v1; only v1 and v3 are accepted")
        signature = request.headers.get(SIGNATURE_V1, "").strip().lower()
        expected = [
            signature_v1(secret, request.body).encode() for secret in self._client_secrets()
        ]
        if not matches_any(signature.encode(), expected):
            raise AuthFailed("signature does not match")

    def check(self, request: WebhookRequest) -> None:
        payload = load_json(request.body)
        if not isinstance(payload, list):
            raise BadPayload("body is not a JSON array of events")
        if not payload:
            raise BadPayload("empty event array")
        if len(payload) > MAX_EVENTS_PER_REQUEST:
            raise BadPayload(
                f"{len(payload)} events in one request; HubSpot sends at most {MAX_EVENTS_PER_REQUEST}"
            )
        for index, item in enumerate(payload):
            if not isinstance(item, dict):
                raise BadPayload(f"event {index} is not a JSON object")

    # ---- worker -----------------------------------------------------------------------

    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        payload = load_json(envelope.body, UnparseableEnvelope)
        if not isinstance(payload, list):
            raise UnparseableEnvelope("body is not a JSON array of events")
        return [
            bounded(_event(index, item), f"event {index}") for index, item in enumerate(payload)
        ]

    # ---- reconciliation ---------------------------------------------------------------

    def envelope(self, obj: CrmObject, received_at: datetime) -> IngestEnvelope:
        """The creation webhook HubSpot sends for `obj` (an email's generic `object.creation`
        with type 0-49, a ticket's `ticket.creation`), `occurredAt` its creation time, so the
        fact is the one the webhook would have made. Marked `x-pulse-replay: crm-search`."""
        event: dict[str, Any] = {
            "objectId": int(obj.object_id) if obj.object_id.isdigit() else obj.object_id,
            "changeFlag": "CREATED",
            "changeSource": "PULSE_RECONCILE",
        }
        if obj.object_type == "email":
            event.update(subscriptionType="object.creation", objectTypeId=EMAIL_OBJECT_TYPE)
        else:
            event.update(subscriptionType="ticket.creation")
        if obj.created_at is not None:
            event["occurredAt"] = (obj.created_at - _EPOCH) // timedelta(milliseconds=1)
        return IngestEnvelope(
            request_id=f"reconcile:{obj.object_type}:{obj.object_id}",
            source=self.name,
            received_at=received_at,
            body=json.dumps([event], separators=(",", ":")).encode(),
            headers={"content-type": "application/json", "x-pulse-replay": "crm-search"},
        )


def _event(index: int, item: object) -> SourceEvent:
    if not isinstance(item, dict):
        raise UnparseableEnvelope(f"event {index} is not a JSON object")
    subscription = item.get("subscriptionType") or ""
    if not isinstance(subscription, str):
        raise UnparseableEnvelope(f"event {index}: subscriptionType is not a string")
    object_type_id = item.get("objectTypeId")
    if object_type_id is not None:
        object_type_id = str(object_type_id)
    return SourceEvent(
        source=Source.HUBSPOT,
        kind=_kind(subscription, object_type_id),
        event_name=subscription,
        object_id=_object_id(index, item),
        occurred_at=_occurred_at(index, item),
        # A webhook carries ids only; the email's direction comes from the CRM at enrichment.
        direction=Direction.UNKNOWN,
        object_type_id=object_type_id,
    )


def _kind(subscription: str, object_type_id: str | None) -> Kind:
    if subscription == "ticket.creation":
        return Kind.TICKET
    if subscription == "object.creation":
        # Generic (object.*) subscriptions name the type by id: 0-49 emails, 0-5 tickets.
        if object_type_id == EMAIL_OBJECT_TYPE:
            return Kind.EMAIL
        if object_type_id == TICKET_OBJECT_TYPE:
            return Kind.TICKET
    return Kind.UNKNOWN


def _object_id(index: int, item: Mapping[str, Any]) -> str:
    value = item.get("objectId")
    if isinstance(value, bool) or value is None or value == "":
        raise UnparseableEnvelope(f"event {index} has no objectId")
    if isinstance(value, int) and abs(value) <= INT64_MAX:
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise UnparseableEnvelope(f"event {index}: objectId {value!r} is not an id")


def _occurred_at(index: int, item: Mapping[str, Any]) -> datetime | None:
    value = item.get("occurredAt")
    if value is None:
        return None
    if (
        isinstance(value, str)
        and value.strip().isdigit()
        and len(value.strip()) <= MAX_TIMESTAMP_DIGITS
    ):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnparseableEnvelope(
            f"event {index}: occurredAt {value!r} is not epoch milliseconds", "bad_occurred_at"
        )
    try:
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise UnparseableEnvelope(
            f"event {index}: occurredAt {value} is out of range", "bad_occurred_at"
        ) from None
