"""SECRETS_SOURCE's rules: with aws a credential's id stands in for its variable; the
`*_PREVIOUS` values belong to env (aws has AWSPREVIOUS)."""

from __future__ import annotations

import secrets

import pytest

from pulse.bootstrap.settings import SettingsError, load_settings
from pulse.ports.secrets import Credential


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the developer's tree
    for name in ("ALOWARE_SECRET", "HUBSPOT_CLIENT_SECRET", "ALOWARE_AUTH", "HUBSPOT_AUTH"):
        monkeypatch.delenv(name, raising=False)


def test_with_aws_a_secret_id_stands_in_for_the_webhook_secrets() -> None:
    settings = load_settings(
        secrets_source="aws",
        secrets={"aloware_secret_id": "pulse/aloware", "hubspot_client_secret_id": "pulse/hs"},
    )
    assert settings.secrets.ids() == {
        Credential.ALOWARE_SECRET: "pulse/aloware",
        Credential.HUBSPOT_CLIENT_SECRET: "pulse/hs",
    }


def test_with_env_a_missing_secret_is_still_named_even_when_an_id_is_given() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(secrets={"aloware_secret_id": "pulse/aloware"}, hubspot_auth="none")
    assert "ALOWARE_SECRET is not set" in str(err.value)
    assert "SECRETS__*_ID are for SECRETS_SOURCE=aws" in str(err.value)


def test_aws_without_any_secret_id_is_refused() -> None:
    with pytest.raises(SettingsError, match="SECRETS_SOURCE=aws needs SECRETS__"):
        load_settings(secrets_source="aws", aloware_auth="none", hubspot_auth="none")


def test_a_previous_value_is_refused_with_aws_which_keeps_its_own() -> None:
    with pytest.raises(SettingsError, match="ALOWARE_SECRET_PREVIOUS is for SECRETS_SOURCE=env"):
        load_settings(
            secrets_source="aws",
            secrets={"aloware_secret_id": "pulse/aloware"},
            aloware_secret_previous=secrets.token_urlsafe(24),
            hubspot_auth="none",
        )


def test_previous_values_are_read_from_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    old = secrets.token_urlsafe(24)
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET_PREVIOUS", old)
    monkeypatch.setenv("SECRETS__PREVIOUS_VALID_SEC", "90")
    settings = load_settings(aloware_auth="none", hubspot_client_secret=secrets.token_urlsafe(24))
    assert settings.previous_values()[Credential.HUBSPOT_CLIENT_SECRET] == old
    assert settings.secrets.previous_valid_sec == 90


def test_the_container_serves_current_and_previous_from_the_environment() -> None:
    from pulse.bootstrap.container import env_secrets

    current, old = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    settings = load_settings(
        hubspot_auth="none", aloware_secret=current, aloware_secret_previous=old
    )
    assert env_secrets(settings).accepted(Credential.ALOWARE_SECRET) == (current, old)
    closed = load_settings(
        hubspot_auth="none",
        aloware_secret=current,
        aloware_secret_previous=old,
        secrets={"previous_valid_sec": 0},
    )
    assert env_secrets(closed).accepted(Credential.ALOWARE_SECRET) == (current,)
