"""The edge answers every input with JSON and a request id, never a 5xx, never a secret: the
app as the container builds it, on `PulseRunner` (as `pulse serve` runs it) on 127.0.0.1, fed
malformed requests over raw sockets whose headers carry the real secrets."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from pulse.adapters_in.http.app import build_app
from pulse.adapters_in.http.health import Health
from pulse.adapters_in.http.server import PulseRunner
from pulse.adapters_in.http.webhooks import WebhookEdge
from pulse.adapters_in.intake import StoreHealth, WebhookIntake
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.hubspot import HubSpotSource, signature_v3
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.inbox import SqliteInbox
from tests.support.raw_http import RawHttp

BODY_LIMIT = 1 << 20
DISPOSED = (
    b'{"event":"OutboundPhoneCall-DispositionCompleted","body":{"id":"1","user_id":"42",'
    b'"direction":"2","type":"1","disposition_status":"completed","created_at":"2025-11-05 17:22:28"}}'
)


@dataclass
class RunningEdge(RawHttp):
    inbox: SqliteInbox
    aloware_secret: str
    hubspot_secret: str
    logs: list[str]
    metrics: Metrics

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.aloware_secret}"}

    def secrets_seen_in(self, *texts: str | bytes) -> list[str]:
        haystack = "\n".join(t.decode("latin-1") if isinstance(t, bytes) else t for t in texts)
        return [s for s in (self.aloware_secret, self.hubspot_secret) if s in haystack]


class ListHandler(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        fields = getattr(record, "fields", None)
        self.into.append(f"{record.name} {record.levelname} {text} {fields}")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[RunningEdge]:
    logs: list[str] = []
    handler = ListHandler(logs)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    aloware_secret, hubspot_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    clock = SystemClock()
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", clock)
    sources = {
        "aloware": AlowareSource(auth="bearer", secret=aloware_secret),
        "hubspot": HubSpotSource(client_secret=hubspot_secret),
    }
    metrics = Metrics()
    storing = StoreHealth(clock)
    edge = WebhookEdge(WebhookIntake(sources, inbox, clock, metrics, store_health=storing))
    health = Health({"inbox": inbox}, metrics, {"inbox_storing": storing.check})
    runner = PulseRunner(build_app(edge, health, BODY_LIMIT), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield RunningEdge(port, inbox, aloware_secret, hubspot_secret, logs, metrics)
    finally:
        await runner.cleanup()
        await inbox.close()
        root.removeHandler(handler)
        root.setLevel(level)


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert error["request_id"] and error["request_id"] == headers["x-request-id"]
    assert error["code"] and error["message"]
    assert headers["server"] == "Pulse"
    return error


async def test_a_webhook_is_answered_alike_on_the_fast_path_and_through_the_router(
    running: RunningEdge,
) -> None:
    """`/webhooks/aloware` skips the router and the middleware chain (PulseRunner asks the
    edge first); `/webhooks/alowar%65` is the same route reached through them: each answer,
    refusal, stored envelope, log line and metric is the same either way."""
    answers = []
    for path in ("/webhooks/aloware", "/webhooks/alowar%65"):
        status, headers, body = await running.post(
            path, DISPOSED, {**running.bearer(), "X-Request-Id": f"req-{len(answers)}"}
        )
        assert status == 202, body
        assert json.loads(body) == {"request_id": f"req-{len(answers)}"}
        assert headers["x-request-id"] == f"req-{len(answers)}" and headers["server"] == "Pulse"
        assert headers["content-type"] == "application/json"
        answers.append(headers)
        status, headers, body = await running.post(path, b"not json", running.bearer())
        assert "not JSON" in assert_json_error(status, headers, body, 400)["message"]
        status, headers, body = await running.post(path, DISPOSED, {"Authorization": "Bearer x"})
        assert_json_error(status, headers, body, 401)
    stored = await running.inbox.take(10, 0)
    assert [d.envelope.request_id for d in stored] == ["req-0", "req-1"]
    assert stored[0].envelope.headers == stored[1].envelope.headers
    assert stored[0].envelope.body == stored[1].envelope.body == DISPOSED
    route = {"route": "/webhooks/{source}", "method": "POST"}
    for status in ("202", "400", "401"):
        assert running.metrics.value("http_requests_total", **route, status=status) == 2
    assert running.metrics.value("http_request_duration_seconds_count", route=route["route"]) == 6
    assert running.metrics.value("webhooks_received_total", source="aloware") == 2
    lines = [
        line for line in running.logs if "pulse.http" in line and "'path': '/webhooks/" in line
    ]
    assert len(lines) == 6, lines
    status, headers, body = await running.post("/webhooks/nobody", DISPOSED, running.bearer())
    assert "unknown source" in assert_json_error(status, headers, body, 404)["message"]


async def test_json_nested_deeper_than_the_parser_goes_is_a_400(running: RunningEdge) -> None:
    for depth in (1_000, 10_000):
        body = b"[" * depth + b"]" * depth
        status, headers, answer = await running.post("/webhooks/aloware", body, running.bearer())
        error = assert_json_error(status, headers, answer, 400)
        assert "nested too deeply" in error["message"]
    assert await running.inbox.stats() and (await running.inbox.stats()).depth == 0


async def test_a_timestamp_of_thousands_of_digits_is_a_401(running: RunningEdge) -> None:
    body = b'[{"eventId":1,"subscriptionType":"ticket.creation","objectId":5,"occurredAt":1}]'
    timestamp = "9" * 5_000
    signature = signature_v3(
        running.hubspot_secret,
        "POST",
        f"http://127.0.0.1:{running.port}/webhooks/hubspot",
        body,
        timestamp,
    )
    status, headers, answer = await running.post(
        "/webhooks/hubspot",
        body,
        {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp},
    )
    error = assert_json_error(status, headers, answer, 401)
    assert "epoch milliseconds" in error["message"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compressed_content_encoding_is_a_415(running: RunningEdge, encoding: str) -> None:
    status, headers, answer = await running.post(
        "/webhooks/aloware", DISPOSED, {**running.bearer(), "Content-Encoding": encoding}
    )
    error = assert_json_error(status, headers, answer, 415)
    assert encoding in error["message"]


async def test_a_non_utf8_byte_in_authorization_is_a_401(running: RunningEdge) -> None:
    status, headers, answer = await running.post(
        "/webhooks/aloware",
        DISPOSED,
        raw_headers=b"Authorization: Bearer \xff\xfe" + running.aloware_secret.encode() + b"\r\n",
    )
    assert_json_error(status, headers, answer, 401)


PROTOCOL_ERRORS = {
    "nul_in_header": lambda s: b"Authorization: Bearer " + s + b"\x00\r\n",
    "header_over_8k": lambda s: b"Authorization: Bearer " + s + b"A" * 9_000 + b"\r\n",
    "obs_fold": lambda s: b"X-Note: a\r\n  Bearer " + s + b"\r\n",
    "space_before_colon": lambda s: b"Authorization : Bearer " + s + b"\r\n",
}


@pytest.mark.parametrize("case", sorted(PROTOCOL_ERRORS))
async def test_an_unparseable_request_is_a_json_400_and_its_secret_stays_unlogged(
    running: RunningEdge, case: str
) -> None:
    secret = running.aloware_secret.encode()
    status, headers, answer = await running.post(
        "/webhooks/aloware", DISPOSED, raw_headers=PROTOCOL_ERRORS[case](secret)
    )
    assert_json_error(status, headers, answer, 400)
    assert running.secrets_seen_in(answer, json.dumps(headers), *running.logs) == []
    assert any("malformed request" in line for line in running.logs)


async def test_a_bad_chunk_size_is_a_json_400(running: RunningEdge) -> None:
    request = (
        b"POST /webhooks/aloware HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Bearer "
        + running.aloware_secret.encode()
        + b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
    )
    status, headers, answer = await running.raw(request)
    assert_json_error(status, headers, answer, 400)
    assert running.secrets_seen_in(answer, *running.logs) == []


async def test_a_wrong_method_is_a_405_with_allow_and_no_versions_in_server(
    running: RunningEdge,
) -> None:
    status, headers, answer = await running.raw(
        b"GET /webhooks/aloware HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert_json_error(status, headers, answer, 405)
    assert headers["allow"] == "POST"
    status, headers, _ = await running.post("/webhooks/aloware", DISPOSED, running.bearer())
    assert status == 202 and headers["server"] == "Pulse"


async def test_readiness_fails_while_the_inbox_cannot_store_and_recovers_after(
    running: RunningEdge,
) -> None:
    async def ready() -> int:
        status, _, _ = await running.raw(
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        return status

    assert await ready() == 200
    # A real SQLITE_FULL: the inbox's database may not grow past the pages it has.
    pages = await running.inbox.db.run(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await running.inbox.db.run(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    big = b'{"event":"x","body":{"id":"2","pad":"' + b"p" * 200_000 + b'"}}'
    status, headers, answer = await running.post("/webhooks/aloware", big, running.bearer())
    assert_json_error(status, headers, answer, 503)
    assert await ready() == 503
    await running.inbox.db.run(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    status, _, _ = await running.post("/webhooks/aloware", DISPOSED, running.bearer())
    assert status == 202
    assert await ready() == 200


async def test_store_health_lets_a_request_try_again_after_the_hold() -> None:
    class Clock:
        def __init__(self) -> None:
            self.at = time.time()

        def now(self):  # type: ignore[no-untyped-def]
            from datetime import UTC, datetime

            return datetime.fromtimestamp(self.at, UTC)

    clock = Clock()
    storing = StoreHealth(clock)  # type: ignore[arg-type]
    storing.failed("OperationalError: database or disk is full")
    with pytest.raises(RuntimeError, match="disk is full"):
        await storing.check()
    clock.at += 31
    await storing.check()
