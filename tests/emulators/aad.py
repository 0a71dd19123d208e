"""A Microsoft Entra ID (AAD v2) stand-in for MSAL's client-credentials flow, and the session to reach it."""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import requests
from aiohttp import web
from dependency_injector import providers

from pulse.adapters_out.entra.config import EntraConfig
from pulse.adapters_out.entra.tokens import ServicePrincipalAuth
from tests.emulators.clock import RealTime

AUTHORITY_HOST = "https://login.microsoftonline.com"
POWERBI_SCOPE = "https://analysis.windows.net/powerbi/api/.default"
KUSTO_SCOPE = "https://kusto.kusto.windows.net/.default"


class AuthorityRedirect(requests.Session):
    """MSAL's `http_client` in tests: https://login.microsoftonline.com → the local emulator.

    MSAL insists on an https authority, and for that well-known host it skips instance
    discovery, so it only asks for the tenant's OIDC configuration and then the token.
    """

    def __init__(self, emulator_url: str) -> None:
        super().__init__()
        self._target = emulator_url.rstrip("/")
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        verb = method.decode() if isinstance(method, bytes) else method
        text = url.decode() if isinstance(url, bytes) else url
        if text.startswith(AUTHORITY_HOST):
            text = self._target + text[len(AUTHORITY_HOST) :]
        self.calls.append((verb, text))
        kwargs.setdefault("timeout", 10)
        return super().request(verb, text, *args, **kwargs)


@asynccontextmanager
async def signed_in(
    emulator_url: str, kind: type[ServicePrincipalAuth], config: EntraConfig
) -> AsyncIterator[ServicePrincipalAuth]:
    """The Entra ID client a sink built without the container uses, its sign-in answered by
    the emulator at `emulator_url`; close the sink inside the block."""
    session = AuthorityRedirect(emulator_url)
    auth = kind.from_config(config, http_client=session)
    try:
        yield auth
    finally:
        await auth.close()
        session.close()


def rerouted(auth: providers.Resource[Any], session: AuthorityRedirect) -> providers.Provider[Any]:
    """What to override the container's `powerbi_auth` or `eventhouse_auth` with: the same
    client from the same config, signing in through `session` (the one external edge a daemon
    test replaces). The test closes `session` after the container's shutdown, so the sinks
    drain while it is open, as they do before the real client closes."""
    # args: kind, config; Object, because the container deep-copies plain values it is given
    return providers.Singleton(_through, *auth.args, http_client=providers.Object(session))


def _through(
    kind: type[ServicePrincipalAuth], config: EntraConfig, http_client: AuthorityRedirect
) -> ServicePrincipalAuth:
    return kind.from_config(config, http_client=http_client)


def _aad_error(status: int, error: str, code: int, text: str) -> web.Response:
    description = f"AADSTS{code}: {text}\r\nTrace ID: 00000000-0000-0000-0000-000000000000"
    body = {"error": error, "error_description": description, "error_codes": [code]}
    return web.json_response(body, status=status)


class TokenIssuer:
    """Issues opaque bearer tokens for one tenant/client/secret; knows which are still valid."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        timebase: Any = None,
        lifetime_sec: float = 3_599,
        scopes: tuple[str, ...] = (POWERBI_SCOPE,),
    ) -> None:
        self.scopes = scopes
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self._time = timebase or RealTime()
        self.lifetime_sec = lifetime_sec
        self._expires: dict[str, float] = {}
        self.issued = 0
        self.discovery_calls = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._oidc)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/common/discovery/instance", self._instance_discovery)

    def status(self, token: str) -> str:
        """'valid', 'expired' or 'unknown'."""
        expires = self._expires.get(token)
        if expires is None:
            return "unknown"
        return "valid" if self._time.monotonic() < expires else "expired"

    def expire_all(self) -> None:
        """Every token issued so far is now expired (MSAL still has them cached)."""
        for token in self._expires:
            self._expires[token] = -math.inf

    async def _oidc(self, request: web.Request) -> web.Response:
        self.discovery_calls += 1
        tenant = request.match_info["tenant"]
        if tenant != self.tenant_id:
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        base = f"{AUTHORITY_HOST}/{tenant}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )

    async def _instance_discovery(self, request: web.Request) -> web.Response:
        # Not reached for login.microsoftonline.com; answered in case MSAL's rules change.
        return web.json_response(
            {
                "tenant_discovery_endpoint": f"{AUTHORITY_HOST}/{self.tenant_id}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        posted = await request.post()
        form = {key: str(value) for key, value in posted.items()}
        if tenant != self.tenant_id:
            return _aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return _aad_error(
                400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        if form.get("client_id") != self.client_id:
            return _aad_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id')}' was not found in the directory.",
            )
        if form.get("client_secret") != self.client_secret:
            return _aad_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID.",
            )
        if form.get("scope") not in self.scopes:
            return _aad_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource identifier.",
            )
        token = "emu-" + secrets.token_urlsafe(24)
        self._expires[token] = self._time.monotonic() + self.lifetime_sec
        self.issued += 1
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": int(self.lifetime_sec),
                "ext_expires_in": int(self.lifetime_sec),
                "access_token": token,
            }
        )
