"""`POST /webhooks/{source}`: size, authenticate, check, store in the inbox, answer 202."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from opentelemetry import propagate, trace

from pulse.adapters_in.edge_load import EdgeLoad
from pulse.adapters_in.http.middleware import JsonError, request_id_of
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.base import SourceRejected, WebhookRequest, WebhookSource
from pulse.core.errors import EnvelopeTooLarge
from pulse.core.model import IngestEnvelope
from pulse.ports.clock import Clock
from pulse.ports.inbox import Inbox

log = logging.getLogger("pulse.edge")
tracer = trace.get_tracer("pulse.edge")


STORE_FAILURE_HOLD = timedelta(seconds=30)


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
class WebhookEdge:
    sources: Mapping[str, WebhookSource]
    inbox: Inbox
    clock: Clock
    metrics: Metrics
    public_base_url: str | None = None
    tracing: bool = False
    """Open a span per request and carry its context to the worker (only when exporting)."""
    store_health: StoreHealth | None = None
    activity: Callable[[str], None] | None = None
    """Told the source of each request stored (the silence alarm; memory only, never I/O)."""
    load: EdgeLoad | None = None
    """Counts the requests, so the workers can yield to a saturated edge."""

    def public_url(self, request: web.Request) -> str:
        """The URL the sender signed: configured public base + raw path, else what we received."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/") + request.raw_path
        return str(request.url)

    async def receive(self, request: web.Request) -> web.Response:
        if self.load is not None:
            self.load.entered()
        name = request.match_info["source"]
        source = self.sources.get(name)
        if source is None:
            raise JsonError(
                404, f"unknown source {name!r}; known: {', '.join(sorted(self.sources))}"
            )
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("identity", ""):
            # Neither Aloware nor HubSpot compresses; HubSpot signs the bytes it sends.
            raise JsonError(
                415, f"Content-Encoding {encoding!r} is not accepted: send the body uncompressed"
            )
        body = await request.read()
        now = self.clock.now()
        incoming = WebhookRequest(
            method=request.method,
            url=self.public_url(request),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            now_ms=int(now.timestamp() * 1000),
        )
        try:
            source.authenticate(incoming)
            source.check(incoming)
        except SourceRejected as exc:
            self.metrics.inc("webhooks_rejected_total", source=name, code=exc.code)
            raise JsonError(exc.status, str(exc), exc.code) from None
        rid = request_id_of(request)
        headers = {h: incoming.headers[h] for h in source.kept_headers if h in incoming.headers}
        if self.tracing:
            with tracer.start_as_current_span(
                "webhook.store", attributes={"pulse.request_id": rid, "pulse.source": name}
            ):
                propagate.inject(headers)  # the worker's batch span links back to this one
                await self._store(IngestEnvelope(rid, source.name, now, body, headers), rid, name)
        else:
            await self._store(IngestEnvelope(rid, source.name, now, body, headers), rid, name)
        self.metrics.inc("webhooks_received_total", source=name)
        if self.activity is not None:
            self.activity(name)
        return accepted(rid)

    async def _store(self, envelope: IngestEnvelope, rid: str, name: str) -> None:
        try:
            await self.inbox.put(envelope)
        except EnvelopeTooLarge as exc:
            # Within the edge's body limit, but too big once wrapped for this inbox: a retry
            # cannot help, so say what fits.
            raise JsonError(413, str(exc)) from None
        except Exception as exc:
            # Nothing was stored: say so, so a sender that retries (HubSpot) tries again.
            log.exception("inbox put failed", extra={"fields": {"request_id": rid, "source": name}})
            if self.store_health is not None:
                self.store_health.failed(f"{type(exc).__name__}: {exc}")
            raise JsonError(
                503, f"could not store the request ({type(exc).__name__}); retry"
            ) from None
        if self.store_health is not None:
            self.store_health.stored()


def accepted(request_id: str) -> web.Response:
    """`202 {"request_id": …}`, built without a JSON encoder (the id is `[A-Za-z0-9._:-]` only)."""
    return web.Response(
        status=202,
        body=b'{"request_id": "' + request_id.encode() + b'"}',
        content_type="application/json",
    )
