"""One run of faults through the whole production stack, one after another on one queue: two
real `pulse serve` replicas on moto's SQS and DynamoDB (through a fault proxy), SINK=powerbi
against the Power BI emulator, events delivered 1-6 times. Each fault gives one `FaultRow`;
tests/e2e/aws/test_outages.py asserts on them and bench/faults.py prints them."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.aws.replicas import Replica, SharedStores, deliveries, post_all, wait_async
from tests.support.local import disposed_call
from tests.support.powerbi.daemon import daemon_settings, ensure_with
from tests.support.powerbi.serve import EMULATOR_URL, TIME_FACTOR, TIME_ORIGIN

SERVE = "tests.support.powerbi.serve"
# Recovery after the 90 s outage is ~75 s on an idle machine (bench/faults.py); a 2-core host
# busy with other work has taken over 150 s, which is load, not loss: wait longer before failing.
SETTLE_SEC = 240.0
POISON = [
    disposed_call(call_id, **fields)
    for call_id, fields in (
        ("\ud800", {}),
        ("9001", {"duration": 1e19}),
        ("9002", {"created_at": "0001-01-01 00:00:00"}),
    )
]


@dataclass
class FaultRow:
    fault: str
    accepted: int  # deliveries answered 202
    events: int  # distinct events among them
    counted: int  # of those, in the dataset
    lost: int
    doubled: int  # events with more than one FactEvent row (DISTINCTCOUNT still counts 1)
    dead_lettered: int  # messages the DLQ gained
    caused_429: int  # 429s Pulse caused (budgets), not injected ones
    recover_sec: float  # from the fault's end to every event of it counted

    def line(self) -> str:
        return (
            f"| {self.fault} | {self.accepted:,} | {self.events:,} | {self.counted:,} | "
            f"{self.lost} | {self.doubled} | {self.dead_lettered} | {self.caused_429} | "
            f"{self.recover_sec:.1f} |"
        )


HEADER = (
    "| fault | deliveries accepted | events | counted | lost | doubled | dead-lettered "
    "| 429s caused | seconds to recover |\n|---|---|---|---|---|---|---|---|---|"
)


def powerbi_env(emulator: PowerBIEmulator) -> dict[str, str]:
    """SINK=powerbi settings of a replica on the emulator, on the emulator's clock."""
    assert isinstance(emulator.time, ScaledTime)
    return {
        "SINK": "powerbi",
        "POWERBI__TENANT_ID": emulator.tenant_id,
        "POWERBI__CLIENT_ID": emulator.client_id,
        "POWERBI__CLIENT_SECRET": emulator.client_secret,
        "POWERBI__WORKSPACE_ID": emulator.workspace_id,
        "POWERBI__API_BASE_URL": emulator.api_base_url,
        EMULATOR_URL: emulator.url,
        TIME_FACTOR: repr(emulator.time.factor),
        TIME_ORIGIN: repr(emulator.time.origin),
    }


@dataclass
class FaultRun:
    home: Path
    moto_url: str
    proxy: FaultProxy
    emulator: PowerBIEmulator
    outage_sec: float = 90.0
    throttle_sec: float = 60.0
    rows: list[FaultRow] = field(default_factory=list)
    during_outage: tuple[int, str] = (0, "")  # the /readyz status and /metrics page mid-outage
    replicas: list[Replica] = field(default_factory=list)
    _rng: random.Random = field(default_factory=lambda: random.Random(11))
    _next_id: int = 1

    async def start(self) -> None:
        assert isinstance(self.emulator.time, ScaledTime)
        await ensure_with(self.emulator, daemon_settings(self.emulator, self.home / "ensure"))
        direct = SharedStores(self.moto_url)
        direct.provision(self.home / "infra")  # blocking: straight to moto, not the proxy
        self.stores = replace(direct, endpoint=self.proxy.url)
        env = self._env()
        fast = {**env, "POWERBI__APPEND_TIMEOUT_SEC": "10"}  # parked 527 of 600 before
        self.replicas += [
            Replica("fast", self.home / "fast", self.stores, fast),
            Replica("default", self.home / "default", self.stores, env),
        ]
        for replica in self.replicas:
            replica.launch(SERVE)
        await asyncio.gather(*(r.wait_ready() for r in self.replicas))

    def stop(self) -> None:
        for replica in self.replicas:
            replica.kill_all()

    def _env(self) -> dict[str, str]:
        return {
            **powerbi_env(self.emulator),
            "POWERBI__TIMEOUT_SEC": "10",
            "SQS_MAX_RECEIVE_COUNT": "100",  # the product's default: a crash backstop
            "INBOX_VISIBILITY_SEC": "10",
        }

    # --- the faults ---------------------------------------------------------------------------

    async def outage_with_a_kill(self) -> FaultRow:
        """A Power BI 5xx outage; the replica with the short append timeout is SIGKILLed in
        the middle of it and restarted."""
        emulator = self.emulator
        ends = emulator.time.monotonic() + self.outage_sec
        emulator.faults.outage_until = ends

        async def during() -> tuple[int, set[str]]:
            accepted, keys = await self._send(200)
            await asyncio.sleep(max(0.0, self.outage_sec * 0.45 - self._elapsed(ends)))
            fast = self.replicas[0]
            self.during_outage = await self._health(fast.url)
            fast.kill_all()
            fast.launch(SERVE)
            await fast.wait_ready()
            more, more_keys = await self._send(100)
            await asyncio.sleep(max(0.0, ends - emulator.time.monotonic()))
            return accepted + more, keys | more_keys

        return await self._measure("Power BI 5xx outage + SIGKILL of a replica", during)

    async def storm_and_expired_tokens(self) -> FaultRow:
        async def during() -> tuple[int, set[str]]:
            self.emulator.faults.storm_429 = 40
            accepted, keys = await self._send(100)
            self.emulator.aad.expire_all()
            more, more_keys = await self._send(50)
            return accepted + more, keys | more_keys

        return await self._measure("429 storm, then every token expired", during)

    async def dynamodb_throttling(self) -> FaultRow:
        async def during() -> tuple[int, set[str]]:
            self.proxy.throttle_for(self.throttle_sec)
            started = time.monotonic()
            accepted, keys = await self._send(100)
            await asyncio.sleep(max(0.0, self.throttle_sec - (time.monotonic() - started)))
            assert self.proxy.throttled > 0
            return accepted, keys

        return await self._measure("DynamoDB throttling every call", during)

    async def poison(self) -> FaultRow:
        async def during() -> tuple[int, set[str]]:
            bodies = [json.dumps(p).encode() for p in POISON]
            statuses = await self._post_raw(self.replicas[1].url, bodies)
            assert statuses == [202] * len(POISON)
            accepted, keys = await self._send(50)
            return accepted + len(POISON), keys

        return await self._measure("poison among valid events", during)

    # --- measuring ----------------------------------------------------------------------------

    async def _measure(
        self, name: str, during: Callable[[], Awaitable[tuple[int, set[str]]]]
    ) -> FaultRow:
        dead_before = await self.dead_letters()
        throttled_before = self.emulator.counters.throttled_by_limits
        accepted, keys = await during()
        ended = time.monotonic()

        async def all_counted() -> bool:
            return keys <= set(self.counts())

        await wait_async(all_counted, SETTLE_SEC, f"every event of '{name}' counted")
        counts = self.counts()
        row = FaultRow(
            fault=name,
            accepted=accepted,
            events=len(keys),
            counted=sum(1 for k in keys if counts[k]),
            lost=sum(1 for k in keys if not counts[k]),
            doubled=sum(1 for k in keys if counts[k] > 1),
            dead_lettered=await self.dead_letters() - dead_before,
            caused_429=self.emulator.counters.throttled_by_limits - throttled_before,
            recover_sec=time.monotonic() - ended,
        )
        self.rows.append(row)
        return row

    def counts(self) -> Counter[str]:
        return Counter(r["EventKey"] for r in self.emulator.rows("FactEvent"))

    async def depth(self) -> tuple[int, int]:
        async with self.stores.depth_probe() as probe:
            return await probe()

    async def dead_letters(self) -> int:
        return (await self.depth())[1]

    def _elapsed(self, ends: float) -> float:
        return self.outage_sec - (ends - self.emulator.time.monotonic())

    async def _send(self, count: int) -> tuple[int, set[str]]:
        ids = list(range(self._next_id, self._next_id + count))
        self._next_id += count
        plan = deliveries(ids, len(self.replicas), 6, self._rng)
        urls = [r.url for r in self.replicas]
        failed = await post_all(urls, plan, self.stores.secret, concurrency=8)
        assert failed == [], failed[:5]  # every delivery answered 202, faults or not
        return len(plan), {f"aloware:{n}" for n in ids}

    async def _health(self, url: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/readyz") as ready:
                status = ready.status
            async with http.get(f"{url}/metrics") as metrics:
                return status, await metrics.text()

    async def _post_raw(self, url: str, bodies: list[bytes]) -> list[int]:
        headers = {"Authorization": f"Bearer {self.stores.secret}"}
        statuses = []
        async with aiohttp.ClientSession() as http:
            for body in bodies:
                async with http.post(f"{url}/webhooks/aloware", data=body, headers=headers) as r:
                    statuses.append(r.status)
        return statuses
