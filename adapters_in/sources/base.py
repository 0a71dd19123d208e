"""What the edge asks of each webhook source: authenticate, check, and (in workers) parse."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pulse.core.model import IngestEnvelope, SourceEvent


class SourceRejected(Exception):
    """A request the edge must refuse; `status` and `code` go into the JSON error body."""

    status = 400
    code = "bad_request"


class AuthFailed(SourceRejected):
    status = 401
    code = "unauthorized"


class BadPayload(SourceRejected):
    status = 400
    code = "bad_payload"


# The secrets a check accepts, current first: read per request, so a rotation needs no restart.
Accepted = Callable[[], Sequence[str]]


def matches_any(given: bytes, expected: Sequence[bytes]) -> bool:
    """Constant-time against every candidate: which one matched (or that one did) is not timed."""
    results = [hmac.compare_digest(given, candidate) for candidate in expected]
    return any(results)


def load_json(body: bytes, error: type[Exception] = BadPayload) -> Any:
    """The body as JSON, or `error` saying why not. Nesting past the parser's recursion limit
    (a body of 10,000 `[`) is refused like any other non-JSON body, not left to crash."""
    try:
        return json.loads(body)
    except RecursionError:
        raise error("body is JSON nested too deeply") from None
    except ValueError as exc:
        raise error(f"body is not JSON: {exc}") from None


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of an HTTP request a source needs (framework-free, so sources test without a server).

    `url` is the public URL the sender used (configured base URL + path and query), which is what
    HubSpot signs; `headers` are case-insensitive in aiohttp but plain here: keys are lower-cased.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes
    now_ms: int


class WebhookSource(Protocol):
    name: str
    kept_headers: tuple[str, ...]
    """Lower-case header names stored with the envelope (never Authorization)."""

    def authenticate(self, request: WebhookRequest) -> None:
        """Raise `AuthFailed` with a message that says what is wrong (never echo a secret)."""
        ...

    def check(self, request: WebhookRequest) -> None:
        """Cheap shape checks at the edge (JSON, array size); raise `BadPayload`."""
        ...

    def parse(self, envelope: IngestEnvelope) -> list[SourceEvent]:
        """Worker side: envelope → source events; raise `core.errors.UnparseableEnvelope`."""
        ...
