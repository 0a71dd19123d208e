"""`pulse dataset ensure|show` and `pulse check` with a Fabric sink chosen by settings alone:
the real CLI entry point, settings from the environment, the container picking the adapter."""

from __future__ import annotations

import asyncio

import pytest

from pulse.bootstrap import main
from pulse.bootstrap.container import Container
from pulse.core.schema import TABLES
from tests.emulators.aad import AuthorityRedirect, rerouted
from tests.emulators.eventhubs import EventHubsEmulator
from tests.emulators.kusto import KustoEmulator


@pytest.fixture(autouse=True)
def _embedded_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # DATA_DIR=data below it, no developer .env
    monkeypatch.setenv("ALOWARE_AUTH", "none")
    monkeypatch.setenv("HUBSPOT_AUTH", "none")


def eventhouse_env(monkeypatch: pytest.MonkeyPatch, kusto: KustoEmulator) -> None:
    monkeypatch.setenv("SINK", "fabric-eventhouse")
    monkeypatch.setenv("FABRIC__TENANT_ID", kusto.aad.tenant_id)
    monkeypatch.setenv("FABRIC__CLIENT_ID", kusto.aad.client_id)
    monkeypatch.setenv("FABRIC__CLIENT_SECRET", kusto.aad.client_secret)
    monkeypatch.setenv("FABRIC__QUERY_URI", kusto.url)
    monkeypatch.setenv("FABRIC__DATABASE", kusto.database)


async def run_cli(argv: list[str], authority: str | None = None) -> int:
    """`pulse …` as the console script runs it (its own event loop, in a thread here so the
    emulators keep serving on this one)."""

    def call() -> int:
        if authority is None:
            return main.main(argv)
        session = AuthorityRedirect(authority)
        try:
            with Container.eventhouse_auth.override(rerouted(Container.eventhouse_auth, session)):
                return main.main(argv)
        finally:
            session.close()

    return await asyncio.to_thread(call)


async def test_dataset_ensure_sets_up_the_kql_database_from_settings_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with KustoEmulator() as kusto:
        eventhouse_env(monkeypatch, kusto)

        assert await run_cli(["dataset", "ensure"], kusto.url) == 0
        ensured = capsys.readouterr().out
        assert await run_cli(["dataset", "show"], kusto.url) == 0
        shown = capsys.readouterr().out
        assert await run_cli(["check"], kusto.url) == 0
        checked = capsys.readouterr().out

    assert set(kusto.tables) == {t.name for t in TABLES}
    assert f"KQL database '{kusto.database}' ensured" in ensured
    assert "schema matches the code" in shown
    assert "  ok    sink" in checked and "SINK = fabric-eventhouse" in checked
    assert kusto.aad.client_secret not in checked  # masked


async def test_dataset_ensure_without_access_says_what_to_grant(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with KustoEmulator() as kusto:
        eventhouse_env(monkeypatch, kusto)
        monkeypatch.setenv("FABRIC__DATABASE", "SomeoneElsesDB")

        code = await run_cli(["dataset", "ensure"], kusto.url)

    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pulse:")]
    assert code == 1
    assert len(said) == 1 and said[0].startswith("pulse: dataset ensure:")
    assert "no KQL database SomeoneElsesDB" in said[0] and "FABRIC__DATABASE" in said[0]


async def test_eventstream_dataset_ensure_checks_the_connection_string_and_says_how_to_route(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = EventHubsEmulator()
    monkeypatch.setenv("SINK", "fabric-eventstream")
    monkeypatch.setenv("FABRIC__EVENTSTREAM_CONNECTION_STRING", hub.connection_string)

    assert await run_cli(["dataset", "ensure"]) == 0

    out = capsys.readouterr().out
    assert f"https://{hub.namespace}/{hub.entity}/messages" in out
    assert "route events by PulseTable" in out
    assert hub.key not in out


async def test_report_with_a_cloud_sink_says_where_the_numbers_are_instead_of_an_empty_table(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = EventHubsEmulator()
    monkeypatch.setenv("SINK", "fabric-eventstream")
    monkeypatch.setenv("FABRIC__EVENTSTREAM_CONNECTION_STRING", hub.connection_string)

    assert await run_cli(["report", "--date", "2025-11-05"]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "SINK=fabric-eventstream writes elsewhere" in captured.err


async def test_dataset_ensure_and_check_act_on_each_of_several_sinks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with KustoEmulator() as kusto:
        eventhouse_env(monkeypatch, kusto)
        monkeypatch.delenv("SINK")
        monkeypatch.setenv("SINKS", "local,fabric-eventhouse")

        assert await run_cli(["dataset", "ensure"], kusto.url) == 0
        ensured = capsys.readouterr().out
        assert await run_cli(["check"], kusto.url) == 0
        checked = capsys.readouterr().out

    assert set(kusto.tables) == {t.name for t in TABLES}  # the second sink's dataset too
    assert "== local\nSINK=local needs no dataset" in ensured
    assert f"== fabric-eventhouse\nKQL database '{kusto.database}' ensured" in ensured
    assert "  ok    sink:local" in checked and "  ok    sink:fabric-eventhouse" in checked
    assert "SINKS=local,fabric-eventhouse" in checked
