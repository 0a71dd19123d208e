"""Builds the Power BI sink against the emulator the way the container builds it from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from pulse.adapters_out.powerbi.auth import ServicePrincipalAuth
from pulse.adapters_out.powerbi.dataset import ensure_dataset
from pulse.adapters_out.powerbi.sink import PowerBISink
from pulse.bootstrap.settings import PowerBISettings
from pulse.ports.control import RowCounts
from tests.emulators.aad import signed_in
from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.fakes import FakeClock


def settings_for(emulator: PowerBIEmulator, **overrides: Any) -> PowerBISettings:
    """POWERBI__* as an operator would set them, pointing the API base URL at the emulator.
    The authority host stays login.microsoftonline.com: `signed_in` reroutes it."""
    values: dict[str, Any] = {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "client_secret": SecretStr(emulator.client_secret),
        "workspace_id": emulator.workspace_id,
        "api_base_url": emulator.api_base_url,
        "timeout_sec": 10,
    }
    values.update(overrides)
    return PowerBISettings(**values)


class FakeRowCounts:
    """Table sizes in memory (the RowCounts a daemon keeps beside its ledger): `rows` says what
    the tables held at start, and then what the sink counted."""

    def __init__(self, rows: Mapping[str, int] | None = None) -> None:
        self.rows = dict(rows or {})

    async def add(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows

    async def set(self, table: str, rows: int) -> None:
        self.rows[table] = rows

    async def get_all(self) -> dict[str, int]:
        return dict(self.rows)


@asynccontextmanager
async def powerbi_sink(
    emulator: PowerBIEmulator,
    *,
    ensure: bool = True,
    row_counts: RowCounts | None = None,
    drain_timeout_sec: float = 10.0,
    **overrides: Any,
) -> AsyncIterator[PowerBISink]:
    """A sink on the emulator's clock; `ensure` first runs `pulse dataset ensure`'s code
    (signed in on its own, as that command's process is)."""
    config = settings_for(emulator, **overrides).config()
    if ensure:
        async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
            await ensure_dataset(config, auth)
    async with signed_in(emulator.url, ServicePrincipalAuth, config.entra) as auth:
        sink = PowerBISink.from_config(
            config,
            auth,
            row_counts=row_counts,
            drain_timeout_sec=drain_timeout_sec,
            timebase=emulator.time,
        )
        try:
            yield sink
        finally:
            await sink.close()


@asynccontextmanager
async def powerbi_sink_under_test(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    """Contract-suite factory (registered in tests/contract/conftest.py SINK_FACTORIES):
    the sink against a fresh emulator; a reader sees the rows the emulator stored."""
    from tests.contract.conftest import SinkUnderTest

    # 20 emulated seconds per real one: the limiter's 0.5 s spacing costs the suite 25 ms
    async with PowerBIEmulator(timebase=ScaledTime(20)) as emulator, powerbi_sink(emulator) as sink:

        async def rows(table: str) -> list[dict[str, Any]]:
            return emulator.rows(table)

        yield SinkUnderTest(sink, rows)
