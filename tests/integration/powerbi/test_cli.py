"""`pulse dataset ensure|show` and `pulse check` with SINK=powerbi chosen by settings alone: the
real CLI entry point (`bootstrap.main.main`), settings from the environment, the container
picking the Power BI adapters. Only the Entra ID client is overridden (the container's
`powerbi_auth`, rerouted as tests/support/powerbi/serve.py does), so login.microsoftonline.com
reaches the emulator's Entra ID."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pulse.bootstrap import main
from pulse.bootstrap.container import Container
from pulse.core.schema import TABLES
from tests.emulators.aad import AuthorityRedirect, rerouted
from tests.emulators.powerbi import PowerBIEmulator


@pytest.fixture(autouse=True)
def _embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # DATA_DIR=data below it, no developer .env
    for name in ("SINK", "INBOX", "LEDGER", "POWERBI__DATASET_ID", "POWERBI__DATASET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALOWARE_AUTH", "none")
    monkeypatch.setenv("HUBSPOT_AUTH", "none")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")


def powerbi_env(monkeypatch: pytest.MonkeyPatch, emulator: PowerBIEmulator) -> None:
    """What an operator sets (docs/powerbi.md), the API base URL pointing at the emulator."""
    monkeypatch.setenv("SINK", "powerbi")
    monkeypatch.setenv("POWERBI__TENANT_ID", emulator.tenant_id)
    monkeypatch.setenv("POWERBI__CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("POWERBI__CLIENT_SECRET", emulator.client_secret)
    monkeypatch.setenv("POWERBI__WORKSPACE_ID", emulator.workspace_id)
    monkeypatch.setenv("POWERBI__API_BASE_URL", emulator.api_base_url)


async def run_cli(argv: list[str], emulator: PowerBIEmulator) -> int:
    """`pulse …` as the console script runs it (its own event loop, in a thread here so the
    emulator keeps serving on this one)."""

    def call() -> int:
        session = AuthorityRedirect(emulator.url)
        try:
            with Container.powerbi_auth.override(rerouted(Container.powerbi_auth, session)):
                return main.main(argv)
        finally:
            session.close()

    return await asyncio.to_thread(call)


def said(err: str) -> list[str]:
    """What `pulse` told the operator on stderr (JSON log lines left out)."""
    return [line for line in err.splitlines() if line and not line.startswith("{")]


async def test_dataset_ensure_show_and_check_with_sink_powerbi(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with PowerBIEmulator() as emulator:
        powerbi_env(monkeypatch, emulator)

        assert await run_cli(["check"], emulator) == 1  # no dataset yet
        unready = capsys.readouterr().out
        assert await run_cli(["dataset", "ensure"], emulator) == 0
        ensured = capsys.readouterr().out
        dataset = emulator.dataset(name="Pulse")
        assert await run_cli(["dataset", "show"], emulator) == 0
        shown = capsys.readouterr().out
        assert await run_cli(["dataset", "ensure"], emulator) == 0  # again: nothing to do
        again = capsys.readouterr().out
        assert await run_cli(["check"], emulator) == 0
        checked = capsys.readouterr().out

    sink_line = next(line for line in unready.splitlines() if "sink" in line)
    assert sink_line.startswith("  FAIL  sink") and "pulse dataset ensure" in sink_line

    assert len(emulator.datasets) == 1 and dataset.retention == "None"
    assert set(dataset.tables) == {t.name for t in TABLES}
    assert f"dataset 'Pulse' created: {dataset.id}" in ensured
    assert f"POWERBI__DATASET_ID={dataset.id}" in ensured

    assert f"dataset 'Pulse' found: {dataset.id}" in shown
    assert all(f"  table {t.name}(" in shown for t in TABLES)
    assert "schema matches the code" in shown and "would apply" not in shown
    assert f"found: {dataset.id}" in again and "applied:" not in again

    assert "SINK = powerbi" in checked
    assert "  ok    sink" in checked and "  FAIL  " not in checked
    assert emulator.client_secret not in checked  # masked
    assert emulator.calls["my_workspace"] == 0  # InGroup endpoints only


async def test_dataset_ensure_without_a_workspace_says_so_and_calls_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with PowerBIEmulator() as emulator:
        powerbi_env(monkeypatch, emulator)
        monkeypatch.delenv("POWERBI__WORKSPACE_ID")

        code = await run_cli(["dataset", "ensure"], emulator)

    captured = capsys.readouterr()
    assert code != 0
    assert said(captured.err) == [
        "pulse: configuration error:",
        "  SINK=powerbi needs POWERBI__WORKSPACE_ID",
    ]
    assert captured.out == ""
    assert sum(emulator.calls.values()) == 0 and not emulator.datasets


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("not_member", "Member"),
        ("tenant_switch", "ServicePrincipalIsNotAllowedByTenantAdminSwitch"),
        ("deprecated", "FeatureDeprecatedError"),
    ],
)
async def test_dataset_ensure_refused_by_power_bi_prints_one_sentence(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    expected: str,
) -> None:
    async with PowerBIEmulator() as emulator:
        powerbi_env(monkeypatch, emulator)
        if fault == "deprecated":
            emulator.faults.deprecate_creation = True
        else:
            emulator.faults.deny = fault

        code = await run_cli(["dataset", "ensure"], emulator)

    lines = said(capsys.readouterr().err)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("pulse: dataset ensure: ")
    assert expected in lines[0]
    assert not emulator.datasets
