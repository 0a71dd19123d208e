"""The real daemon (container + `Daemon.run`, as `pulse serve` runs it) with SINK=powerbi on the emulator.

Only two providers are overridden, both true external edges: the Entra ID client
(`powerbi_auth`, rerouted to the local Entra ID emulator) and the time the limiter shares
with the emulator (`timebase`, compressed). Everything else (edge, SQLite inbox and ledger,
workers, scheduler, batcher, row-count store) is what production builds from the same
settings.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from dependency_injector import providers

from pulse.adapters_out.powerbi.auth import ServicePrincipalAuth
from pulse.adapters_out.powerbi.dataset import ensure_dataset
from pulse.adapters_out.powerbi.sink import PowerBISink
from pulse.bootstrap.container import Container
from pulse.bootstrap.daemon import Daemon
from pulse.bootstrap.settings import Settings
from tests.emulators.aad import AuthorityRedirect, rerouted, signed_in
from tests.emulators.kusto import KustoEmulator
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.powerbi.harness import settings_for

SAMPLE = Path(__file__).parents[2] / "specs" / "webhooks" / "aloware-call-disposed.json"
AGENT = "42"  # the sample's user_id; the static roster counts only this agent
START_TIMEOUT_SEC = 20.0


def aloware_call(communication_id: int) -> bytes:
    """The captured dispositioned-call webhook with its own communication id."""
    payload = json.loads(SAMPLE.read_text())["body"]
    payload["body"]["id"] = str(communication_id)
    return json.dumps(payload).encode()


def daemon_settings(
    emulator: PowerBIEmulator,
    data_dir: Path,
    *,
    powerbi: dict[str, Any] | None = None,
    **values: Any,
) -> Settings:
    """What an operator sets: SINK=powerbi, POWERBI__* pointing the API base URL at the emulator."""
    chosen: dict[str, Any] = {
        "data_dir": data_dir,
        "sink": "powerbi",
        "inbox": "sqlite",
        "ledger": "sqlite",
        "roster": "static",
        "crm": "static",
        "roster_agents": [AGENT],
        "aloware_auth": "bearer",
        "aloware_secret": secrets.token_hex(16),
        "hubspot_auth": "none",
        "business_timezone": "UTC",
        "otel_exporter_otlp_endpoint": None,
        "admin_hmac_secret": None,
        "powerbi": settings_for(emulator, **(powerbi or {})),
    }
    chosen.update(values)
    return Settings(_env_file=None, **chosen)  # type: ignore[call-arg]


@dataclass
class RunningDaemon:
    daemon: Daemon
    container: Container
    settings: Settings
    url: str

    async def sink(self) -> PowerBISink:
        sink = await self.container.sink()  # type: ignore[misc]
        assert isinstance(sink, PowerBISink)
        return sink

    async def post_aloware(
        self, ids: Iterable[int], *, concurrency: int = 48
    ) -> tuple[list[int], list[int]]:
        """POST one webhook per id with bounded concurrency over keep-alive connections;
        returns (ids answered 202, ids refused or unanswered)."""
        assert self.settings.aloware_secret is not None
        headers = {
            "Authorization": f"Bearer {self.settings.aloware_secret.get_secret_value()}",
            "Content-Type": "application/json",
        }
        pending = iter(ids)
        accepted: list[int] = []
        refused: list[int] = []
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            self.url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
        ) as http:

            async def poster() -> None:
                for n in pending:
                    try:
                        async with http.post(
                            "/webhooks/aloware", data=aloware_call(n), headers=headers
                        ) as response:
                            await response.read()
                            (accepted if response.status == 202 else refused).append(n)
                    except (aiohttp.ClientError, TimeoutError):
                        refused.append(n)

            await asyncio.gather(*(poster() for _ in range(concurrency)))
        return accepted, refused

    async def stop(self) -> None:
        self.daemon.stop_requested.set()


async def ensure_with(emulator: PowerBIEmulator, settings: Settings) -> None:
    """`pulse dataset ensure` with these settings (its own process: its own sign-in)."""
    config = settings.powerbi.config()
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        await ensure_dataset(config, auth)


@asynccontextmanager
async def powerbi_daemon(
    emulator: PowerBIEmulator,
    settings: Settings,
    *,
    ensure: bool = True,
    eventhouse: KustoEmulator | None = None,
) -> AsyncIterator[RunningDaemon]:
    """`pulse dataset ensure`, then the daemon on a free port; on exit, SIGTERM's path (drain)
    and the container's shutdown, as `pulse serve` does. With `eventhouse` (SINKS names
    fabric-eventhouse too), that sink signs in at its emulator's Entra ID."""
    if ensure:
        await ensure_with(emulator, settings)
    session = AuthorityRedirect(emulator.url)
    kusto_session = AuthorityRedirect(eventhouse.url) if eventhouse is not None else None
    container = Container(settings=settings)
    container.powerbi_auth.override(rerouted(container.powerbi_auth, session))
    if kusto_session is not None:
        container.eventhouse_auth.override(rerouted(container.eventhouse_auth, kusto_session))
    container.timebase.override(providers.Object(emulator.time))
    daemon = await container.daemon()
    task = asyncio.create_task(daemon.run("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + START_TIMEOUT_SEC
        while not daemon.started.is_set():  # listening, and every start step done
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the daemon returned before it started")
            assert time.monotonic() < deadline, "the daemon did not start"
            await asyncio.sleep(0.02)
        yield RunningDaemon(daemon, container, settings, f"http://127.0.0.1:{daemon.port}")
        daemon.stop_requested.set()
        assert await asyncio.wait_for(task, settings.drain_timeout_sec + 30) == 0
    finally:
        if not task.done():
            daemon.stop_requested.set()
            await asyncio.wait({task}, timeout=settings.drain_timeout_sec + 30)
            task.cancel()
        closing = container.shutdown_resources()
        if closing is not None:
            await closing
        session.close()
        if kusto_session is not None:
            kusto_session.close()
