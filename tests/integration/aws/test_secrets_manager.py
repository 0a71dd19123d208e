"""The Secrets Manager source on moto: AWSCURRENT and AWSPREVIOUS cached, refreshed, the previous
refused once its window ends, a failed refresh keeping the last values, and no value logged."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from pulse.adapters_out.secrets.aws import (
    SecretsManagerSecrets,
    SecretUnavailable,
    secretsmanager_client,
)
from pulse.adapters_out.secrets.static import StaticSecrets
from pulse.ports.secrets import Credential
from tests.support.moto_server import CREDENTIALS, REGION, unique

ALOWARE = Credential.ALOWARE_SECRET


class Dial:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
async def manager(moto_url: str) -> AsyncIterator[Any]:
    opened = asynccontextmanager(secretsmanager_client)(REGION, moto_url, **CREDENTIALS)
    async with opened as client:
        yield client


async def test_a_rotation_is_seen_on_refresh_and_the_previous_lasts_only_its_window(
    manager: Any,
) -> None:
    old, new = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    secret_id = unique("pulse/aloware")
    await manager.create_secret(Name=secret_id, SecretString=old)
    dial = Dial(0)
    source = SecretsManagerSecrets(manager, {ALOWARE: secret_id}, 1, 60, now=dial)
    await source.refresh()
    assert source.accepted(ALOWARE) == (old,)

    await manager.put_secret_value(SecretId=secret_id, SecretString=new)
    assert source.current(ALOWARE) == old  # cached until the next refresh
    await source.refresh()
    created = (await manager.get_secret_value(SecretId=secret_id))["CreatedDate"].timestamp()

    dial.seconds = created + 59
    assert source.current(ALOWARE) == new
    assert source.accepted(ALOWARE) == (new, old)
    dial.seconds = created + 60
    assert source.accepted(ALOWARE) == (new,)


async def test_a_failed_refresh_keeps_the_last_values_and_names_no_value(
    manager: Any, caplog: pytest.LogCaptureFixture
) -> None:
    value = secrets.token_urlsafe(32)
    secret_id = unique("pulse/admin")
    await manager.create_secret(Name=secret_id, SecretString=value)
    source = SecretsManagerSecrets(manager, {Credential.ADMIN_HMAC_SECRET: secret_id}, 0.05, 60)
    await source.refresh()
    await manager.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)

    with pytest.raises(SecretUnavailable, match=f"ADMIN_HMAC_SECRET: secret '{secret_id}'"):
        await source.refresh()
    with caplog.at_level(logging.INFO, logger="pulse.secrets"):
        refreshing = asyncio.create_task(source.keep_fresh())
        await asyncio.sleep(0.3)
        refreshing.cancel()
        await asyncio.gather(refreshing, return_exceptions=True)
    assert "secrets not refreshed, last values kept" in caplog.text
    assert source.current(Credential.ADMIN_HMAC_SECRET) == value
    assert value not in caplog.text


async def test_an_unknown_secret_id_stops_the_first_read(manager: Any) -> None:
    source = SecretsManagerSecrets(manager, {ALOWARE: unique("pulse/missing")}, 1, 60)
    with pytest.raises(SecretUnavailable, match=r"ALOWARE_SECRET: secret .*ResourceNotFound"):
        await source.refresh()


async def test_a_credential_without_an_id_comes_from_the_environment(manager: Any) -> None:
    token = secrets.token_urlsafe(24)
    fallback = StaticSecrets({Credential.HUBSPOT_ACCESS_TOKEN: token}, {}, 0)
    source = SecretsManagerSecrets(manager, {}, 1, 60, fallback=fallback)
    await source.refresh()
    assert source.current(Credential.HUBSPOT_ACCESS_TOKEN) == token
    assert source.accepted(ALOWARE) == ()
