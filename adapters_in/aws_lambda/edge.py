"""API Gateway → the webhook intake: REST API (payload 1.0) and HTTP API (2.0) proxy events in,
the same `202 {"request_id": …}` or JSON error as `POST /webhooks/{source}` out."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from pulse.adapters_in.intake import (
    Refused,
    Webhook,
    WebhookIntake,
    accepted_body,
    error_body,
    public_url,
    request_id_from,
)

log = logging.getLogger("pulse.http")

ROUTE = "/webhooks/"


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """The parts of a proxy event the edge reads, the same for both payload versions."""

    method: str
    source: str
    path: str
    """The path after the stage, as the route sees it (`/webhooks/hubspot`), with its query."""
    received_url: str
    """The URL the client called (scheme, host, stage and path, query)."""
    headers: dict[str, str]
    body: bytes

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> ProxyRequest:
        """Raises `Refused(400)` when the event is not an API Gateway proxy request."""
        try:
            if event.get("version") == "2.0":
                return cls._http_api(event)
            return cls._rest_api(event)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise Refused(400, f"not an API Gateway proxy event ({type(exc).__name__})") from None

    @classmethod
    def _rest_api(cls, event: Mapping[str, Any]) -> ProxyRequest:
        # Payload 1.0 keeps the header names as sent; `multiValueHeaders` lists repeats.
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        for name, values in (event.get("multiValueHeaders") or {}).items():
            if values:
                headers[name.lower()] = ",".join(values)
        pairs = event.get("multiValueQueryStringParameters") or {}
        query = urlencode([(k, v) for k, vs in pairs.items() for v in vs])
        context = event.get("requestContext") or {}
        path = str(event["path"])
        called = str(context.get("path") or path)  # with the stage: /prod/webhooks/hubspot
        return cls._built(event, str(event["httpMethod"]), path, called, query, headers)

    @classmethod
    def _http_api(cls, event: Mapping[str, Any]) -> ProxyRequest:
        # Payload 2.0: header names lower-cased, repeats comma-joined; rawPath has the stage.
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        context = event["requestContext"]
        called = str(event.get("rawPath") or context["http"]["path"])
        stage = str(context.get("stage") or "$default")
        path = called
        if stage != "$default" and called.startswith(f"/{stage}/"):
            path = called[len(stage) + 1 :]
        method = str(context["http"]["method"])
        return cls._built(event, method, path, called, event.get("rawQueryString") or "", headers)

    @classmethod
    def _built(
        cls,
        event: Mapping[str, Any],
        method: str,
        path: str,
        called: str,
        query: str,
        headers: dict[str, str],
    ) -> ProxyRequest:
        source = (event.get("pathParameters") or {}).get("source")
        if source is None:  # a catch-all route: the segment after /webhooks/
            source = path.partition(ROUTE)[2].strip("/") if ROUTE in path else ""
        suffix = f"?{query}" if query else ""
        scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip()
        host = headers.get("host") or (event.get("requestContext") or {}).get("domainName", "")
        return cls(
            method=method.upper(),
            source=str(source),
            path=path + suffix,
            received_url=f"{scheme}://{host}{called}{suffix}",
            headers=headers,
            body=_body(event),
        )


def _body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "isBase64Encoded, but the body is not base64") from None


@dataclass(frozen=True, slots=True)
class LambdaEdge:
    """`edge(event, context)`: what `POST /webhooks/{source}` does, answered as a proxy
    response. Every input gets a JSON answer with a request id; nothing raises."""

    intake: WebhookIntake
    public_base_url: str | None = None
    """The URL up to `/webhooks` the senders post to (a custom domain, or the stage's URL)."""

    async def handle(self, event: Mapping[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        headers = event.get("headers") if isinstance(event, Mapping) else None
        given = (
            {str(k).lower(): v for k, v in headers.items()} if isinstance(headers, Mapping) else {}
        )
        rid = request_id_from(given.get("x-request-id"))
        fields: dict[str, Any] = {"request_id": rid, "method": "", "path": ""}
        try:
            request = ProxyRequest.of(event)
            fields.update(method=request.method, path=request.path.partition("?")[0])
            if request.method != "POST":
                raise Refused(405, f"method {request.method} is not allowed; POST a webhook")
            url = public_url(self.public_base_url, request.path, request.received_url)
            webhook = Webhook(
                request.source, request.method, url, request.headers, request.body, rid
            )
            answer = _answer(202, accepted_body(await self.intake.take(webhook)), rid)
        except Refused as exc:
            fields["error"] = exc.message
            answer = _answer(exc.status, error_body(exc.status, exc.message, rid, exc.code), rid)
            if exc.status == 405:
                answer["headers"]["Allow"] = "POST"
        except Exception:
            log.exception("handler crashed", extra={"fields": fields})
            fields["error"] = "handler crashed"
            message = "internal error; the request id is in the logs"
            answer = _answer(500, error_body(500, message, rid), rid)
        fields.update(
            status=answer["statusCode"], ms=round((time.perf_counter() - started) * 1000, 2)
        )
        if answer["statusCode"] >= 400:
            log.warning("request", extra={"fields": fields})
        elif log.isEnabledFor(logging.INFO):
            log.info("request", extra={"fields": fields})
        return answer


def _answer(status: int, body: bytes, request_id: str) -> dict[str, Any]:
    """A proxy response both payload versions take."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", "X-Request-Id": request_id},
        "body": body.decode(),
        "isBase64Encoded": False,
    }
