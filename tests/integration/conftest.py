"""The real aiohttp app, wired as `bootstrap.daemon` wires it, over a real SQLite inbox in tmp_path."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from pulse.adapters_in.http.app import build_app
from pulse.adapters_in.http.health import Health
from pulse.adapters_in.http.webhooks import WebhookEdge
from pulse.adapters_in.intake import WebhookIntake
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.sources.base import WebhookSource
from pulse.adapters_in.sources.hubspot import HubSpotSource
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.inbox import SqliteInbox
from tests.fakes import FakeClock

SAMPLES = Path(__file__).parents[1] / "specs" / "webhooks"
PUBLIC_BASE_URL = "https://pulse.example.com"
HUBSPOT_URL = f"{PUBLIC_BASE_URL}/webhooks/hubspot"
BODY_LIMIT = 1024 * 1024  # the default BODY_LIMIT_BYTES
# Headers a proxy or the client library sets for itself; the rest go out as captured.
TRANSPORT_HEADERS = {"host", "connection", "accept-encoding", "content-length"}

AiohttpClient = Callable[[web.Application], Awaitable[TestClient]]


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / f"{name}.json").read_text())


WEBHOOK_SAMPLES = sorted(
    path.stem
    for path in SAMPLES.glob("*.json")
    if "headers" in (meta := json.loads(path.read_text())) and "expected_fact" in meta["_meta"]
)
HUBSPOT_SECRET = sample("hubspot-v3-ticket-creation")["_meta"]["signing"]["test_client_secret"]


def sample_body(captured: dict[str, Any]) -> bytes:
    """HubSpot samples keep the exact signed bytes; Aloware samples only the parsed body."""
    if "raw_body" in captured:
        return str(captured["raw_body"]).encode()
    return json.dumps(captured["body"]).encode()


def sample_headers(captured: dict[str, Any], aloware_token: str) -> dict[str, str]:
    headers = {k: v for k, v in captured["headers"].items() if k.lower() not in TRANSPORT_HEADERS}
    if "Authorization" in headers:  # the sample holds a placeholder for the configured token
        headers["Authorization"] = f"Bearer {aloware_token}"
    return headers


def signed_at(captured: dict[str, Any]) -> datetime:
    """The instant a HubSpot sample validates at: its request timestamp + 1 s."""
    timestamp_ms = int(captured["headers"]["X-HubSpot-Request-Timestamp"]) + 1000
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def hubspot_signature(secret: str, url: str, body: bytes, timestamp_ms: int) -> str:
    """v3, written from HubSpot's documentation independently of the product's code."""
    source = b"POST" + url.encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def signed_hubspot_headers(body: bytes, now: datetime, secret: str = HUBSPOT_SECRET) -> dict:
    timestamp_ms = int(now.timestamp() * 1000) - 1000
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
        "X-HubSpot-Signature-v3": hubspot_signature(secret, HUBSPOT_URL, body, timestamp_ms),
    }


@dataclass
class Edge:
    """The running app and what a test needs to talk to it and look behind it."""

    client: TestClient
    inbox: SqliteInbox
    clock: FakeClock
    aloware_token: str
    metrics: Metrics

    def aloware_headers(self, **extra: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.aloware_token}",
            **extra,
        }

    async def depth(self) -> int:
        return (await self.inbox.stats()).depth

    async def post_sample(self, name: str, **extra_headers: str) -> Any:
        captured = sample(name)
        if name.startswith("hubspot"):
            self.clock.current = signed_at(captured)
        headers = {**sample_headers(captured, self.aloware_token), **extra_headers}
        provider = captured["_meta"]["provider"]
        return await self.client.post(
            f"/webhooks/{provider}", data=sample_body(captured), headers=headers
        )

    async def post_hubspot(self, events: list[dict[str, Any]]) -> Any:
        body = json.dumps(events).encode()
        return await self.client.post(
            "/webhooks/hubspot", data=body, headers=signed_hubspot_headers(body, self.clock.now())
        )


@pytest.fixture
def aloware_token() -> str:
    return secrets.token_hex(16)


@pytest.fixture
def edge_clock() -> FakeClock:
    return FakeClock(datetime(2025, 11, 5, 17, 30, tzinfo=UTC))


@pytest.fixture
def webhook_sources(aloware_token: str) -> dict[str, WebhookSource]:
    return {
        "aloware": AlowareSource(auth="bearer", secret=aloware_token),
        "hubspot": HubSpotSource(client_secret=HUBSPOT_SECRET),
    }


@pytest.fixture
async def inbox(tmp_path: Path) -> AsyncIterator[SqliteInbox]:
    # The wall clock: moving the edge's clock to a sample's signing time must not hide rows.
    inbox = SqliteInbox(tmp_path / "inbox.sqlite", SystemClock())
    yield inbox
    await inbox.close()


async def start_edge(
    aiohttp_client: AiohttpClient,
    sources: dict[str, WebhookSource],
    inbox: SqliteInbox,
    clock: FakeClock,
    aloware_token: str,
) -> Edge:
    """`build_app` with WebhookEdge and Health exactly as `Daemon.run` composes them."""
    metrics = Metrics()
    edge = WebhookEdge(WebhookIntake(sources, inbox, clock, metrics), PUBLIC_BASE_URL)
    health = Health({"inbox": inbox}, metrics)
    client = await aiohttp_client(build_app(edge, health, BODY_LIMIT))
    return Edge(client, inbox, clock, aloware_token, metrics)


@pytest.fixture
async def edge(
    aiohttp_client: AiohttpClient,
    webhook_sources: dict[str, WebhookSource],
    inbox: SqliteInbox,
    edge_clock: FakeClock,
    aloware_token: str,
) -> Edge:
    return await start_edge(aiohttp_client, webhook_sources, inbox, edge_clock, aloware_token)


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0) -> bool:
    """Poll `check` until it holds or `within` seconds pass; the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
