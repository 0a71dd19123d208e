"""Fixtures for the Power BI tests: emulators on chosen clocks, raw API access, fact factories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from pulse.core.model import DateKey, EventKey, FactEvent, MetricID
from tests.emulators.aad import POWERBI_SCOPE
from tests.emulators.clock import ManualTime, ScaledTime
from tests.emulators.powerbi import PowerBIEmulator

BASE = datetime(2025, 11, 5, 17, 0, tzinfo=UTC)


def fact(n: int, *, agent: str = "2", metric: MetricID = MetricID.CALLS) -> FactEvent:
    occurred = BASE + timedelta(seconds=n)
    return FactEvent(
        EventKey=EventKey(f"aloware:{n}"),
        Source="aloware",
        MetricID=metric,
        AgentKey=agent,
        DateKey=DateKey(20251105),
        ShiftKey="ALLDAY",
        OccurredAtUtc=occurred,
        OccurredAtLocal=(occurred - timedelta(hours=5)).replace(tzinfo=None),
        MetricMonthKey=f"2025-11:{metric.value}",
        DurationSec=42 if metric is MetricID.CALLS else None,
    )


def facts(start: int, count: int) -> list[FactEvent]:
    return [fact(n) for n in range(start, start + count)]


@pytest.fixture
def manual_time() -> ManualTime:
    return ManualTime()


@pytest.fixture
async def emulator(manual_time: ManualTime) -> AsyncIterator[PowerBIEmulator]:
    """An emulator whose clock only moves when the test says so."""
    async with PowerBIEmulator(timebase=manual_time) as emu:
        yield emu


@pytest.fixture
async def fast_emulator() -> AsyncIterator[PowerBIEmulator]:
    """An emulator (and the sinks built on it) running 50 emulated seconds per real second."""
    async with PowerBIEmulator(timebase=ScaledTime(50)) as emu:
        yield emu


@dataclass
class RawApi:
    """Direct HTTP to the emulator with a valid token, to prove what it refuses."""

    emulator: PowerBIEmulator
    http: httpx.AsyncClient
    token: str

    @property
    def group(self) -> str:
        return f"/v1.0/myorg/groups/{self.emulator.workspace_id}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        bearer = self.token if token is None else token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        if not path.startswith("/"):
            path = f"{self.group}/{path}"
        return await self.http.request(
            method, path, json=json, content=content, params=params, headers=headers
        )


@pytest.fixture
async def api(emulator: PowerBIEmulator) -> AsyncIterator[RawApi]:
    emulator.aad.lifetime_sec = 30 * 86_400  # tests below move the clock by hours
    async with httpx.AsyncClient(base_url=emulator.url, timeout=10) as http:
        answer = await http.post(
            f"/{emulator.tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": emulator.client_id,
                "client_secret": emulator.client_secret,
                "scope": POWERBI_SCOPE,
            },
        )
        answer.raise_for_status()
        emulator.aad.lifetime_sec = 3_599
        yield RawApi(emulator, http, answer.json()["access_token"])
