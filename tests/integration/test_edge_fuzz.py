"""A bounded fuzz run through the whole local pipeline (the edge on `PulseRunner`, the SQLite
inbox, ledger and warehouse, inbox workers): a few thousand malformed, mutated and valid
requests, with a canary valid call every 25. Nothing answers 5xx; every refusal is JSON with
a request id; every accepted envelope settles (counted, ignored, gated or dead-lettered with a
reason), none stays in the inbox; every canary is counted."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web

from adapters_in.http.app import build_app
from adapters_in.http.health import Health
from adapters_in.http.server import PulseRunner
from adapters_in.http.webhooks import WebhookEdge
from adapters_in.metrics import Metrics
from adapters_in.sources.aloware import AlowareSource
from adapters_in.sources.hubspot import HubSpotSource, signature_v3
from adapters_in.worker import InboxWorkers
from adapters_out.clock import SystemClock
from adapters_out.sqlite.inbox import SqliteDeadLetters, SqliteInbox
from adapters_out.sqlite.warehouse import SqliteWarehouse
from core.ingest import IngestConfig
from tests.integration.conftest import eventually
from tests.support.local import LocalStores, disposed_call, local_stores

pytestmark = pytest.mark.slow

REQUESTS = 2_500
CANARY_EVERY = 25
SEED = 20261201
WEIRD_STRINGS = [
    "",
    " ",
    "\ud800",
    "\udfff\ud800",
    "\x00",
    "é",
    "𝔘",
    "9" * 5_000,
    "-1",
    "1e400",
    "NaN",
    "0000-01-01 00:00:00",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "2025-02-30 10:00:00",
    "2025-11-05T17:22:28+14:00",
    "x" * 10_000,
    "<script>",
    "completed",
    "failed",
    "2",
    "1",
]
WEIRD_NUMBERS: list[Any] = [
    0,
    -1,
    1e19,
    -1e19,
    10**30,
    2**63,
    2**63 - 1,
    1.5,
    1e308,
    True,
    False,
    None,
]
ALOWARE_FIELDS = [
    "id",
    "user_id",
    "direction",
    "type",
    "disposition_status",
    "disposition_status2",
    "duration",
    "created_at",
    "talk_time",
    "customer_leg_status",
]


def weird_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(WEIRD_STRINGS)
    if roll < 0.7:
        return rng.choice(WEIRD_NUMBERS)
    if depth > 3:
        return None
    if roll < 0.85:
        return [weird_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(ALOWARE_FIELDS): weird_value(rng, depth + 1) for _ in range(rng.randint(0, 3))
    }


def dumps(value: Any) -> bytes:
    # Lone surrogates are legal JSON escapes; ensure_ascii writes them as \\udxxx.
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


@dataclass
class Fuzzed:
    path: str
    body: bytes
    headers: dict[str, str]


class Fuzzer:
    def __init__(
        self, rng: random.Random, aloware_secret: str, hubspot_secret: str, port: int
    ) -> None:
        self.rng, self.port = rng, port
        self.aloware_secret, self.hubspot_secret = aloware_secret, hubspot_secret

    def aloware_auth(self) -> dict[str, str]:
        roll = self.rng.random()
        if roll < 0.8:
            return {"Authorization": f"Bearer {self.aloware_secret}"}
        if roll < 0.9:
            return {"Authorization": "Bearer wrong"}
        return {}

    def hubspot_signed(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        if self.rng.random() < 0.1:
            timestamp = self.rng.choice(["9" * 5_000, "abc", "-5", "1"])
        url = f"http://127.0.0.1:{self.port}/webhooks/hubspot"
        return {
            "X-HubSpot-Signature-v3": signature_v3(
                self.hubspot_secret, "POST", url, body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        }

    def next(self, n: int) -> Fuzzed:
        rng = self.rng
        kind = rng.random()
        if kind < 0.45:  # a valid call with one to three fields replaced by weird values
            call = disposed_call(str(rng.randint(1, 10**6)))
            for _ in range(rng.randint(1, 3)):
                call["body"][rng.choice(ALOWARE_FIELDS)] = weird_value(rng)
            if rng.random() < 0.1:
                call = {"event": weird_value(rng), "body": call["body"]}
            return Fuzzed("/webhooks/aloware", dumps(call), self.aloware_auth())
        if kind < 0.6:  # any JSON at all
            return Fuzzed("/webhooks/aloware", dumps(weird_value(rng)), self.aloware_auth())
        if kind < 0.7:  # bytes that are not JSON, or JSON nested absurdly deep
            body = rng.choice([rng.randbytes(rng.randint(0, 200)), b"[" * 5_000, b'{"a":' * 2_000])
            return Fuzzed("/webhooks/aloware", body, self.aloware_auth())
        if kind < 0.9:  # HubSpot event arrays, correctly signed, with weird members
            events = [
                {
                    "eventId": weird_value(rng),
                    "subscriptionType": rng.choice(
                        ["ticket.creation", "object.creation", weird_value(rng)]
                    ),
                    "objectId": rng.choice([rng.randint(1, 10**9), weird_value(rng)]),
                    "objectTypeId": rng.choice(["0-49", "0-5", weird_value(rng)]),
                    "occurredAt": rng.choice([1762362142417, weird_value(rng)]),
                }
                for _ in range(rng.randint(0, 4))
            ]
            body = dumps(events if rng.random() < 0.9 else weird_value(rng))
            return Fuzzed("/webhooks/hubspot", body, self.hubspot_signed(body))
        path = rng.choice(
            [
                "/webhooks/nobody",
                "/webhooks/",
                "/admin/status",
                "/%ff",
                "/webhooks/aloware?x=\ud800",
            ]
        )
        return Fuzzed(path, dumps(weird_value(rng)), self.aloware_auth())


@dataclass
class World:
    port: int
    inbox: SqliteInbox
    warehouse: SqliteWarehouse
    workers: InboxWorkers
    aloware_secret: str
    hubspot_secret: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = SystemClock()
    aloware_secret, hubspot_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    sources = {
        "aloware": AlowareSource(auth="bearer", secret=aloware_secret),
        "hubspot": HubSpotSource(client_secret=hubspot_secret),
    }
    async with local_stores(tmp_path, sources) as stores:
        async with _serving(stores, sources, clock, aloware_secret, hubspot_secret) as world:
            yield world


@asynccontextmanager
async def _serving(
    stores: LocalStores, sources: dict[str, Any], clock: SystemClock, aloware: str, hubspot: str
) -> AsyncIterator[World]:
    inbox, ports = stores.inbox, stores.ports
    metrics = Metrics()
    config = IngestConfig(zone=ZoneInfo("America/New_York"), retry_base=timedelta(milliseconds=50))
    workers = InboxWorkers(ports, config, clock, metrics, take_wait=0.05)
    edge = WebhookEdge(sources, inbox, clock, metrics)
    runner = PulseRunner(
        build_app(edge, Health({"inbox": inbox}, metrics), 1 << 20), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    workers.start()
    try:
        yield World(runner.addresses[0][1], inbox, stores.warehouse, workers, aloware, hubspot)
    finally:
        await runner.cleanup()
        await workers.drain(budget_sec=2.0)


async def test_a_fuzz_run_answers_json_loses_nothing_and_counts_every_canary(world: World) -> None:
    rng = random.Random(SEED)
    fuzzer = Fuzzer(rng, world.aloware_secret, world.hubspot_secret, world.port)
    base = f"http://127.0.0.1:{world.port}"
    statuses: dict[int, int] = {}
    accepted, canaries, refusals = 0, set(), []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for n in range(REQUESTS):
            if n % CANARY_EVERY == 0:
                call_id = f"canary{n}"
                canaries.add(f"aloware:{call_id}")
                request = Fuzzed(
                    "/webhooks/aloware",
                    dumps(disposed_call(call_id)),
                    {"Authorization": f"Bearer {world.aloware_secret}"},
                )
            else:
                request = fuzzer.next(n)
            async with http.post(
                base + request.path, data=request.body, headers=request.headers
            ) as response:
                body = await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
                if response.status == 202:
                    accepted += 1
                else:
                    refusals.append((response.status, response.headers.get("X-Request-Id"), body))

    assert not [s for s in statuses if s >= 500], statuses
    for status, header_id, body in refusals:
        error = json.loads(body)["error"]
        assert error["request_id"] and error["request_id"] == header_id, (status, body)

    async def settled() -> bool:
        return (await world.inbox.stats()).depth == 0 and world.workers.acked == accepted

    assert await eventually(settled, within=60.0), (
        await world.inbox.stats(),
        world.workers.acked,
        accepted,
    )
    counted = {r["EventKey"] for r in await world.warehouse.rows("FactEvent")}
    assert canaries <= counted
    assert accepted > REQUESTS // 5 and len(refusals) > REQUESTS // 5  # the run exercised both
    letters = await SqliteDeadLetters(world.inbox).list(limit=10_000)
    assert letters and all(letter.reason for letter in letters)  # poison was accepted, and rests
