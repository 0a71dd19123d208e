"""MSAL through the AAD emulator: one fetch, cached, AAD errors typed, invalidation refetches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pulse.adapters_out.powerbi.auth import PowerBIAuthError, ServicePrincipalAuth
from tests.emulators.aad import AuthorityRedirect
from tests.emulators.powerbi import PowerBIEmulator


def auth_for(
    emulator: PowerBIEmulator, session: AuthorityRedirect, **changes: str
) -> ServicePrincipalAuth:
    values: dict[str, Any] = {
        "tenant_id": emulator.tenant_id,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
    }
    values.update(changes)
    return ServicePrincipalAuth(**values, http_client=session)


async def test_a_token_is_fetched_once_then_served_from_msals_cache(
    emulator: PowerBIEmulator,
) -> None:
    session = AuthorityRedirect(emulator.url)
    auth = auth_for(emulator, session)

    tokens = {await auth.token() for _ in range(5)}

    assert len(tokens) == 1
    assert emulator.aad.issued == 1
    # the authority host is well known to MSAL: no instance discovery, only OIDC + token
    assert [url.split("/", 3)[-1] for _, url in session.calls] == [
        f"{emulator.tenant_id}/v2.0/.well-known/openid-configuration",
        f"{emulator.tenant_id}/oauth2/v2.0/token",
    ]
    await auth.close()


async def test_many_workers_on_a_cold_cache_cause_one_fetch(emulator: PowerBIEmulator) -> None:
    auth = auth_for(emulator, AuthorityRedirect(emulator.url))

    tokens = await asyncio.gather(*(auth.token() for _ in range(20)))

    assert len(set(tokens)) == 1
    assert emulator.aad.issued == 1
    await auth.close()


async def test_invalidate_drops_the_cached_token(emulator: PowerBIEmulator) -> None:
    auth = auth_for(emulator, AuthorityRedirect(emulator.url))
    first = await auth.token()

    await auth.invalidate(first)

    assert await auth.token() != first
    assert emulator.aad.issued == 2
    await auth.close()


async def test_a_wrong_secret_is_a_typed_error_with_aads_words(emulator: PowerBIEmulator) -> None:
    auth = auth_for(emulator, AuthorityRedirect(emulator.url), client_secret="rotated-away")

    with pytest.raises(PowerBIAuthError) as caught:
        await auth.token()

    assert caught.value.error == "invalid_client"
    assert "AADSTS7000215" in caught.value.description
    assert "AADSTS7000215" in str(caught.value) and "Trace ID" not in str(caught.value)
    await auth.close()


async def test_an_unknown_client_is_a_typed_error(emulator: PowerBIEmulator) -> None:
    auth = auth_for(emulator, AuthorityRedirect(emulator.url), client_id="someone-else")

    with pytest.raises(PowerBIAuthError) as caught:
        await auth.token()

    assert caught.value.error == "unauthorized_client"
    await auth.close()


async def test_an_unknown_tenant_fails_discovery_readably(emulator: PowerBIEmulator) -> None:
    auth = auth_for(emulator, AuthorityRedirect(emulator.url), tenant_id="no-such-tenant")

    with pytest.raises(PowerBIAuthError, match="invalid_authority"):
        await auth.token()
    await auth.close()


async def test_an_unreachable_authority_is_a_typed_error() -> None:
    auth = ServicePrincipalAuth(
        tenant_id="t",
        client_id="c",
        client_secret="s",
        http_client=AuthorityRedirect("http://127.0.0.1:9"),  # discard port: refused
    )

    with pytest.raises(PowerBIAuthError, match="unreachable"):
        await auth.token()
    await auth.close()
