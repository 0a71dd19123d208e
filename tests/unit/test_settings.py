"""Settings fail loudly, once, at start: one readable line per problem, naming the variable."""

from __future__ import annotations

import secrets

import pytest

from pulse.bootstrap.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's tree
    for name in ("ALOWARE_SECRET", "HUBSPOT_CLIENT_SECRET", "ALOWARE_AUTH", "HUBSPOT_AUTH", "SINK"):
        monkeypatch.delenv(name, raising=False)


def test_missing_webhook_secrets_are_each_named_with_the_way_out() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings()
    lines = str(err.value).splitlines()
    assert any(
        "ALOWARE_SECRET is not set" in line and "ALOWARE_AUTH=none" in line for line in lines
    )
    assert any("HUBSPOT_CLIENT_SECRET is not set" in line for line in lines)


def test_every_bad_value_is_reported_on_its_own_line() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(
            aloware_auth="none", hubspot_auth="none", port=-1, business_timezone="Mars/Base"
        )
    lines = str(err.value).splitlines()
    assert any(line.startswith("PORT=-1:") for line in lines)
    assert any(line.startswith("BUSINESS_TIMEZONE=Mars/Base:") for line in lines)


def test_placeholder_secrets_are_refused() -> None:
    with pytest.raises(SettingsError, match="ALOWARE_SECRET is a placeholder"):
        load_settings(aloware_secret="changeme", hubspot_auth="none")


def test_basic_auth_needs_user_and_password() -> None:
    with pytest.raises(SettingsError, match="user:password"):
        load_settings(
            aloware_auth="basic", aloware_secret=secrets.token_hex(8), hubspot_auth="none"
        )


def test_powerbi_sink_names_every_missing_setting() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(aloware_auth="none", hubspot_auth="none", sink="powerbi")
    assert "POWERBI__TENANT_ID" in str(err.value) and "POWERBI__WORKSPACE_ID" in str(err.value)


def test_nested_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOALS__CALLS", "75")
    monkeypatch.setenv("ROSTER_AGENTS", '["42", "43"]')
    settings = load_settings(aloware_auth="none", hubspot_auth="none")
    assert settings.goals.CALLS == 75
    assert settings.roster_agents == ["42", "43"]


def test_fabric_sinks_name_what_they_lack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FABRIC__QUERY_URI", "ftp://cluster.example")
    with pytest.raises(SettingsError) as err:
        load_settings(aloware_auth="none", hubspot_auth="none", sink="fabric-eventhouse")
    lines = str(err.value).splitlines()
    assert any("FABRIC__TENANT_ID" in line and "FABRIC__DATABASE" in line for line in lines)
    assert any("FABRIC__QUERY_URI must be an https:// URL" in line for line in lines)

    with pytest.raises(SettingsError, match="FABRIC__EVENTSTREAM_CONNECTION_STRING"):
        load_settings(aloware_auth="none", hubspot_auth="none", sink="fabric-eventstream")
    key = secrets.token_urlsafe(16)
    monkeypatch.setenv(
        "FABRIC__EVENTSTREAM_CONNECTION_STRING", f"Endpoint=sb://x/;SharedAccessKey={key}"
    )
    with pytest.raises(SettingsError, match="lacks SharedAccessKeyName, EntityPath") as bad:
        load_settings(aloware_auth="none", hubspot_auth="none", sink="fabric-eventstream")
    assert key not in str(bad.value)  # the error never echoes the key


def test_a_sink_wait_longer_than_the_ledger_lease_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;"
    monkeypatch.setenv(
        "FABRIC__EVENTSTREAM_CONNECTION_STRING",
        f"{hub}SharedAccessKey={secrets.token_urlsafe(16)};EntityPath=es",
    )
    monkeypatch.setenv("FABRIC__APPEND_TIMEOUT_SEC", "100")  # 2 × (100 + 30) ≥ 240
    with pytest.raises(SettingsError, match=r"2 × \(FABRIC__APPEND_TIMEOUT_SEC \+ FABRIC__TIMEOUT"):
        load_settings(aloware_auth="none", hubspot_auth="none", sink="fabric-eventstream")

    monkeypatch.setenv("LEDGER_LEASE_SEC", "300")
    assert load_settings(aloware_auth="none", hubspot_auth="none", sink="fabric-eventstream")


def test_the_reconcile_reaches_back_less_far_than_the_ledger_remembers() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(aloware_auth="none", hubspot_auth="none", reconcile_days=14)
    assert "RECONCILE_DAYS (14) must be below LEDGER_TTL_DAYS (14)" in str(err.value)
    with pytest.raises(SettingsError, match=r"below DYNAMO_TTL_DAYS \(7\)"):
        load_settings(
            aloware_auth="none",
            hubspot_auth="none",
            ledger="dynamodb",
            dynamo_ttl_days=7,
            reconcile_days=7,
        )
    assert load_settings(aloware_auth="none", hubspot_auth="none").reconcile_days == 3


def test_a_bad_reconcile_schedule_is_named() -> None:
    with pytest.raises(SettingsError, match="RECONCILE_CRON: a crontab needs 5 fields"):
        load_settings(aloware_auth="none", hubspot_auth="none", reconcile_cron="nightly")
    with pytest.raises(SettingsError, match="RECONCILE_DAYS"):
        load_settings(aloware_auth="none", hubspot_auth="none", reconcile_days=0)


def test_ring_group_id_takes_several_ring_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RING_GROUP_ID", "8465, 8470,")
    settings = load_settings(aloware_auth="none", hubspot_auth="none")
    assert settings.ring_group_ids == ("8465", "8470")

    with pytest.raises(SettingsError, match="ROSTER=aloware needs RING_GROUP_ID"):
        load_settings(
            aloware_auth="none",
            hubspot_auth="none",
            roster="aloware",
            aloware_api_token="t0ken-" + secrets.token_hex(8),
            ring_group_id=" , ",
        )


def test_sinks_is_a_list_and_sink_its_one_item_spelling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SINKS", "local,powerbi")
    with pytest.raises(SettingsError) as err:
        load_settings(aloware_auth="none", hubspot_auth="none")
    assert "SINK=powerbi needs POWERBI__TENANT_ID" in str(err.value)  # each sink's own rules

    monkeypatch.setenv("SINKS", "local,fabric-eventhouse,local")
    with pytest.raises(SettingsError, match="SINKS names a sink twice"):
        load_settings(aloware_auth="none", hubspot_auth="none")

    monkeypatch.setenv("SINKS", "local,bogus")
    with pytest.raises(SettingsError, match="SINKS__1=bogus"):
        load_settings(aloware_auth="none", hubspot_auth="none")

    monkeypatch.setenv("SINKS", "local")
    monkeypatch.setenv("SINK", "powerbi")
    with pytest.raises(SettingsError, match="set SINK or SINKS, not both"):
        load_settings(aloware_auth="none", hubspot_auth="none")

    monkeypatch.delenv("SINK")
    one = load_settings(aloware_auth="none", hubspot_auth="none")
    monkeypatch.delenv("SINKS")
    monkeypatch.setenv("SINK", "local")
    alone = load_settings(aloware_auth="none", hubspot_auth="none")
    assert one.sink_names == alone.sink_names == ("local",) and one.sink == alone.sink == "local"
