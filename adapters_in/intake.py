"""Taking one webhook, whatever carried it (aiohttp, API Gateway): size, authenticate, check,
store in the inbox; the request id and the JSON bodies every answer carries."""

from __future__ import annotations

import itertools
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.base import SourceRejected, WebhookRequest, WebhookSource
from pulse.adapters_in.tracing import LazyTracer
from pulse.core.errors import EnvelopeTooLarge
from pulse.core.model import IngestEnvelope
from pulse.ports.clock import Clock
from pulse.ports.inbox import Inbox

log = logging.getLogger("pulse.edge")
tracer = LazyTracer("pulse.edge")

STORE_FAILURE_HOLD = timedelta(seconds=30)
SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

# 64 random bits per process + a counter: unique across processes and restarts, and far cheaper
# than uuid4 (a getrandom syscall per request). 32 hex characters, the same shape as uuid4().hex.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count(1)

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
}


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_id_counter):016x}"


def request_id_from(header: str | None) -> str:
    """The caller's `X-Request-Id` when it is safe to log and echo, else a new one."""
    return header if header and SAFE_ID.match(header) else new_request_id()


def error_body(status: int, message: str, request_id: str, code: str | None = None) -> bytes:
    """`{"error": {"code", "message", "request_id"}}`: every refusal, on every carrier."""
    error = {"code": code or ERROR_CODES.get(status, "error"), "message": message}
    return json.dumps({"error": {**error, "request_id": request_id}}).encode()


def accepted_body(request_id: str) -> bytes:
    """`{"request_id": …}`, built without a JSON encoder (the id is `[A-Za-z0-9._:-]` only)."""
    return b'{"request_id": "' + request_id.encode() + b'"}'


def public_url(base: str | None, path_and_query: str, received: str) -> str:
    """The URL the sender signed: the configured public base + the raw path, else the URL as
    received."""
    return base.rstrip("/") + path_and_query if base else received


class Refused(Exception):
    """A webhook the edge does not store: the status and code of its JSON error."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or ERROR_CODES.get(status, "error")


class StoreHealth:
    """Readiness for the edge's one job, storing: it fails from an inbox put that failed (disk
    full, SQS unreachable) until one succeeds, so a load balancer stops sending here. With no
    traffic to prove recovery, it fails for `hold` after the last failure, then lets a
    request try again."""

    def __init__(self, clock: Clock, hold: timedelta = STORE_FAILURE_HOLD) -> None:
        self._clock = clock
        self._hold = hold
        self._last_failure: datetime | None = None
        self._reason = ""

    def failed(self, reason: str) -> None:
        self._last_failure, self._reason = self._clock.now(), reason

    def stored(self) -> None:
        self._last_failure = None

    async def check(self) -> None:
        if self._last_failure is None:
            return
        age = (self._clock.now() - self._last_failure).total_seconds()
        if age < self._hold.total_seconds():
            raise RuntimeError(
                f"the inbox could not store a request {age:.0f} s ago: {self._reason}"
            )


@dataclass(frozen=True, slots=True)
class Webhook:
    """One request as its carrier delivered it; `headers` answer lower-case names (aiohttp's
    are case-insensitive, API Gateway's are lower-cased by the Lambda edge)."""

    source: str
    method: str
    url: str
    """The public URL the sender used (HubSpot signs it)."""
    headers: Mapping[str, str]
    body: bytes
    request_id: str


@dataclass(frozen=True, slots=True)
class WebhookIntake:
    """`POST /webhooks/{source}` without a framework (DESIGN §2.1); raises `Refused`."""

    sources: Mapping[str, WebhookSource]
    inbox: Inbox
    clock: Clock
    metrics: Metrics
    tracing: bool = False
    """Open a span per request and carry its context to the worker (only when exporting)."""
    store_health: StoreHealth | None = None
    activity: Callable[[str], None] | None = None
    """Told the source of each request stored (the silence alarm; memory only, never I/O)."""
    body_limit: int | None = None
    """Refuse a larger body (413); aiohttp enforces it while reading, API Gateway does not."""

    def source_for(self, name: str, headers: Mapping[str, str]) -> WebhookSource:
        """What can be refused before the body is read: an unknown source, a compressed body."""
        source = self.sources.get(name)
        if source is None:
            raise Refused(404, f"unknown source {name!r}; known: {', '.join(sorted(self.sources))}")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            # Neither Aloware nor HubSpot compresses; HubSpot signs the bytes it sends.
            raise Refused(
                415, f"Content-Encoding {encoding!r} is not accepted: send the body uncompressed"
            )
        return source

    async def take(self, webhook: Webhook) -> str:
        """Check and store one webhook; its request id once the inbox holds it."""
        source = self.source_for(webhook.source, webhook.headers)
        if self.body_limit is not None and len(webhook.body) > self.body_limit:
            raise Refused(413, f"body larger than {self.body_limit} bytes")
        now = self.clock.now()
        incoming = WebhookRequest(
            webhook.method, webhook.url, webhook.headers, webhook.body, int(now.timestamp() * 1000)
        )
        name, rid = webhook.source, webhook.request_id
        try:
            source.authenticate(incoming)
            source.check(incoming)
        except SourceRejected as exc:
            self.metrics.inc("webhooks_rejected_total", source=name, code=exc.code)
            raise Refused(exc.status, str(exc), exc.code) from None
        headers = {h: webhook.headers[h] for h in source.kept_headers if h in webhook.headers}
        if self.tracing:
            from opentelemetry import propagate

            with tracer.start_as_current_span(
                "webhook.store", attributes={"pulse.request_id": rid, "pulse.source": name}
            ):
                propagate.inject(headers)  # the worker's batch span links back to this one
                await self._store(IngestEnvelope(rid, source.name, now, webhook.body, headers))
        else:
            await self._store(IngestEnvelope(rid, source.name, now, webhook.body, headers))
        self.metrics.inc("webhooks_received_total", source=name)
        if self.activity is not None:
            self.activity(name)
        return rid

    async def _store(self, envelope: IngestEnvelope) -> None:
        try:
            await self.inbox.put(envelope)
        except EnvelopeTooLarge as exc:
            # Within the edge's body limit, but too big once wrapped for this inbox: a retry
            # cannot help, so say what fits.
            raise Refused(413, str(exc)) from None
        except Exception as exc:
            # Nothing was stored: say so, so a sender that retries (HubSpot) tries again.
            fields = {"request_id": envelope.request_id, "source": envelope.source}
            log.exception("inbox put failed", extra={"fields": fields})
            if self.store_health is not None:
                self.store_health.failed(f"{type(exc).__name__}: {exc}")
            raise Refused(
                503, f"could not store the request ({type(exc).__name__}); retry"
            ) from None
        if self.store_health is not None:
            self.store_health.stored()
