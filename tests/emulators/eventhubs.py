"""An Event Hubs HTTPS send endpoint (what a Fabric Eventstream custom endpoint is) on 127.0.0.1.

`POST /{entity}/messages` with `Content-Type: application/vnd.microsoft.servicebus.json` and a
batch body `[{"Body": "…", "UserProperties": {…}}, …]` answers 201. The `SharedAccessSignature`
is checked as the service checks it: the key named by `skn`, HMAC-SHA256 over the token's own
(URL-encoded) `sr` + "\\n" + `se`, `se` not past, `sr` a prefix of the addressed resource.
Errors come back as Event Hubs' `<Error><Code>…</Code><Detail>…</Detail></Error>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

import httpx
from aiohttp import web

from tests.emulators.faults import Served

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
BATCH_LIMIT_BYTES = 1024 * 1024  # Event Hubs Standard: 1 MB per event or batch


def _error(status: int, detail: str, **headers: str) -> web.Response:
    body = f"<Error><Code>{status}</Code><Detail>{detail}</Detail></Error>"
    return web.Response(status=status, text=body, content_type="application/xml", headers=headers)


@dataclass
class HubFaults:
    throttle: int = 0  # next N sends answer 503 ServerBusy (Event Hubs' throttling answer)
    retry_after: int = 1
    errors_5xx: int = 0  # next N sends answer 500
    drop_after: int = 0  # next N sends: events kept, then the connection closed
    max_batch_bytes: int = BATCH_LIMIT_BYTES


@dataclass
class HubCounters:
    sends: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    rejected_auth: list[str] = field(default_factory=list)  # why each 401 was answered
    throttled: int = 0
    injected_5xx: int = 0
    too_large: int = 0
    dropped: int = 0


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    body: dict[str, Any]  # the event's Body, parsed (Pulse sends JSON text)
    user_properties: dict[str, Any]


class EventHubsEmulator(Served):
    def __init__(
        self,
        *,
        namespace: str = "pulse-test.servicebus.windows.net",
        entity: str = "es_pulse",
        key_name: str = "key_pulse",
        key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.namespace = namespace
        self.entity = entity
        self.key_name = key_name
        self.key = key or base64.b64encode(secrets.token_bytes(32)).decode()
        self.clock = clock
        self.events: list[ReceivedEvent] = []
        self.faults = HubFaults()
        self.counters = HubCounters()

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{self.namespace}/;SharedAccessKeyName={self.key_name};"
            f"SharedAccessKey={self.key};EntityPath={self.entity}"
        )

    def transport(self) -> LoopbackTransport:
        """What the sink is given in tests: https://<namespace> → this emulator, over real HTTP."""
        return LoopbackTransport(self.namespace, self.url)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{entity}/messages", self._send)
        app.router.add_get("/", self._root)

    # --- the service --------------------------------------------------------------------------

    def check_sas(self, header: str, resource: str) -> str | None:
        """None when `header` authorizes a send to `resource`, else why not."""
        if not header.startswith("SharedAccessSignature "):
            return "no SharedAccessSignature"
        raw: dict[str, str] = {}
        for part in header.removeprefix("SharedAccessSignature ").split("&"):
            name, _, value = part.partition("=")
            raw[name] = value
        if not all(raw.get(k) for k in ("sr", "sig", "se", "skn")):
            return "the token lacks sr, sig, se or skn"
        if raw["skn"] != self.key_name:
            return f"unknown key name {raw['skn']!r}"
        try:
            expiry = int(raw["se"])
        except ValueError:
            return "se is not a number"
        if expiry <= self.clock():
            return "ExpiredToken: the token has expired"
        if not resource.lower().startswith(unquote_plus(raw["sr"]).lower()):
            return "the token's audience (sr) does not cover this entity"
        expected = hmac.new(
            self.key.encode(), f"{raw['sr']}\n{raw['se']}".encode(), hashlib.sha256
        ).digest()
        try:
            given = base64.b64decode(unquote(raw["sig"]), validate=True)
        except ValueError:
            return "the signature is not base64"
        if not hmac.compare_digest(expected, given):
            return "InvalidSignature: the signature does not match"
        return None

    async def _root(self, request: web.Request) -> web.Response:
        return web.Response(status=200, text="")

    async def _send(self, request: web.Request) -> web.StreamResponse:
        entity = request.match_info["entity"]
        resource = f"https://{self.namespace}/{entity}"
        why = self.check_sas(request.headers.get("Authorization", ""), resource)
        if why is not None:
            self.counters.rejected_auth.append(why)
            return _error(401, f"{why}. TrackingId:emulated")
        if entity != self.entity:
            return _error(404, f"The messaging entity '{entity}' could not be found.")
        if request.headers.get("Content-Type", "").split(";")[0].strip() != BATCH_CONTENT_TYPE:
            return _error(400, f"a batch must be sent as {BATCH_CONTENT_TYPE}")
        self.counters.sends += 1
        faults = self.faults
        if faults.throttle > 0:
            faults.throttle -= 1
            self.counters.throttled += 1
            return _error(
                503,
                "ServerBusy: the request was terminated because the namespace is being throttled.",
                **{"Retry-After": str(faults.retry_after)},
            )
        if faults.errors_5xx > 0:
            faults.errors_5xx -= 1
            self.counters.injected_5xx += 1
            return _error(500, "InternalServerError (injected)")
        raw = await request.read()
        self.counters.batch_sizes.append(len(raw))
        if len(raw) > faults.max_batch_bytes:
            self.counters.too_large += 1
            return _error(
                413,
                f"The received message (size:{len(raw)} bytes) exceeds the limit "
                f"({faults.max_batch_bytes} bytes) currently allowed on the link.",
            )
        try:
            batch = json.loads(raw)
            events = [self._event(item) for item in batch]
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, f"the batch is not valid: {exc}")
        self.events.extend(events)
        if faults.drop_after > 0:
            faults.drop_after -= 1
            self.counters.dropped += 1
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=201)

    @staticmethod
    def _event(item: Any) -> ReceivedEvent:
        if not isinstance(item, dict) or not isinstance(item.get("Body"), str):
            raise ValueError('each event needs a string "Body"')
        unknown = set(item) - {"Body", "UserProperties", "BrokerProperties"}
        if unknown:
            raise ValueError(f"unknown event properties {sorted(unknown)}")
        properties = item.get("UserProperties") or {}
        if not isinstance(properties, dict):
            raise ValueError("UserProperties must be an object")
        body = json.loads(item["Body"])
        if not isinstance(body, dict):
            raise ValueError("Pulse's event bodies are JSON objects")
        return ReceivedEvent(body, properties)


class LoopbackTransport(httpx.AsyncBaseTransport):
    """Sends https://<namespace>/… to the emulator's http://127.0.0.1:<port>/… (real HTTP)."""

    def __init__(self, namespace: str, target: str) -> None:
        self._namespace = namespace.lower()
        self._target = httpx.URL(target)
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == self._namespace:
            request.url = request.url.copy_with(
                scheme=self._target.scheme, host=self._target.host, port=self._target.port
            )
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
