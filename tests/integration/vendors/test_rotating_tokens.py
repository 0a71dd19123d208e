"""Outbound credentials read at use: after a rotation the next request carries the new value,
with no restart (Entra client secret, HubSpot private-app token, Aloware API token)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from pulse.adapters_out.aloware.roster import AlowareRoster
from pulse.adapters_out.hubspot.crm import HubSpotCrm
from pulse.adapters_out.powerbi.auth import ServicePrincipalAuth
from tests.emulators.aad import AuthorityRedirect
from tests.emulators.aloware import AlowareEmulator
from tests.emulators.hubspot import HubSpotEmulator
from tests.emulators.powerbi import PowerBIEmulator
from tests.fakes import FakeClock


class Vault:
    """The secret source's current value for one credential, as a test rotates it."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self) -> str:
        return self.value


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=2) as client:
        yield client


async def test_a_rotated_entra_client_secret_rebuilds_the_msal_client(
    emulator: PowerBIEmulator,
) -> None:
    vault = Vault(emulator.aad.client_secret)
    auth = ServicePrincipalAuth(
        tenant_id=emulator.tenant_id,
        client_id=emulator.client_id,
        client_secret=vault.value,
        http_client=AuthorityRedirect(emulator.url),
        current_secret=vault,
    )
    first = await auth.token()

    vault.value = emulator.aad.client_secret = secrets.token_urlsafe(32)
    emulator.aad.expire_all()  # AAD revokes what the old secret was given
    second = await auth.token()

    assert second != first and emulator.aad.issued == 2
    assert emulator.aad.status(second) == "valid"
    await auth.close()


async def test_a_rotated_hubspot_token_is_sent_from_the_next_request(
    http: httpx.AsyncClient,
) -> None:
    async with HubSpotEmulator() as hubspot:
        vault = Vault(hubspot.token)
        crm = HubSpotCrm(http, hubspot.base_url, vault, FakeClock(), backoff_sec=0.01)
        assert await crm.lookup("email", "88120045123") is not None

        vault.value = hubspot.token = secrets.token_urlsafe(24)
        assert await crm.lookup("ticket", "9001122471") is not None


async def test_a_rotated_aloware_token_is_sent_from_the_next_fetch(
    http: httpx.AsyncClient,
) -> None:
    async with AlowareEmulator() as aloware:
        vault = Vault(aloware.token)
        roster = AlowareRoster(http, aloware.base_url, vault, "8465", FakeClock(), backoff_sec=0.01)
        assert len((await roster.fetch()).agents) == 2

        vault.value = aloware.token = secrets.token_urlsafe(24)
        assert len((await roster.fetch()).agents) == 2
