"""Microsoft Entra ID tokens for a service principal: one MSAL confidential client per process,
called off the event loop. Power BI and Fabric (Kusto) use it with their own scope."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, Self

from pulse.adapters_out.entra.config import EntraConfig
from pulse.core.errors import SinkTransientError

if TYPE_CHECKING:  # msal (and requests) load only when a Microsoft sink is configured
    import msal


class EntraAuthError(SinkTransientError):
    """Microsoft Entra ID gave no token; `error`/`description` are AAD's own (AADSTS…).

    Transient on purpose: a rotated secret must make events wait in the inbox, not dead-letter.
    """

    dependency = "entra"  # its incidents' signature (core.incidents): entra:auth

    def __init__(self, error: str, description: str, *, client_id: str = ""):
        first_line = description.strip().splitlines()[0] if description.strip() else ""
        who = f" for client {client_id}" if client_id else ""
        super().__init__(f"Microsoft Entra ID refused a token{who}: {error}: {first_line}")
        self.error = error
        self.description = description


class TokenProvider(Protocol):
    async def token(self) -> str:
        """A bearer token for the API (cached until it nears expiry)."""
        ...

    async def invalidate(self, token: str) -> None:
        """Forget `token` (the API called it expired) so the next call fetches anew."""
        ...


class ServicePrincipalAuth:
    """Client-credentials flow for a service principal (DESIGN §4 "Auth").

    MSAL is synchronous and reads its own cache (a token with < 5 min left is refetched), so
    every call goes through `asyncio.to_thread`; the lock makes a cache miss fetch once even
    when many workers ask at the same moment. Build one per process and scope.
    """

    error_type: type[EntraAuthError] = EntraAuthError

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        scope: str,
        authority_host: str = "https://login.microsoftonline.com",
        timeout_sec: float = 30.0,
        http_client: Any = None,
        current_secret: Callable[[], str | None] | None = None,
    ) -> None:
        """`current_secret`, when given, is read before each token: a rotated client secret
        rebuilds the MSAL client (its cached tokens go with it)."""
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._secret = client_secret
        self._scope = scope
        self._timeout = timeout_sec
        # Tests pass a requests.Session that maps the authority host to a local emulator;
        # production passes None and MSAL builds its own session with our timeout.
        self._http_client = http_client
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = asyncio.Lock()
        self._current_secret = current_secret

    @classmethod
    def from_config(
        cls,
        config: EntraConfig,
        *,
        http_client: Any = None,
        current_secret: Callable[[], str | None] | None = None,
    ) -> Self:
        """The one client for `config` (build it once per process and scope; close it last)."""
        return cls(
            tenant_id=config.tenant_id,
            client_id=config.client_id,
            client_secret=config.client_secret,
            scope=config.scope,
            authority_host=config.authority_host,
            timeout_sec=config.timeout_sec,
            http_client=http_client,
            current_secret=current_secret,
        )

    def _follow_rotation(self) -> None:
        """Drop the MSAL client built with a secret that has since been rotated."""
        secret = self._current_secret() if self._current_secret is not None else None
        if not secret or secret == self._secret:
            return
        self._secret = secret
        if self._app is not None and self._http_client is None:
            self._app.http_client.close()  # MSAL's own session; one handed in is the caller's
        self._app = None

    def _build(self) -> msal.ConfidentialClientApplication:
        # Construction performs OIDC tenant discovery over the network, hence off the loop.
        # login.microsoftonline.com (and the sovereign clouds) are hosts MSAL knows, so it
        # skips instance discovery; validate_authority stays on for a mistyped host.
        import msal

        return msal.ConfidentialClientApplication(
            self._client_id,
            client_credential=self._secret,
            authority=self._authority,
            http_client=self._http_client,
            timeout=None if self._http_client is not None else self._timeout,
        )

    async def token(self) -> str:
        import requests

        async with self._lock:
            self._follow_rotation()
            try:
                if self._app is None:
                    self._app = await asyncio.to_thread(self._build)
                app = self._app
                assert app is not None
                result: dict[str, Any] = await asyncio.to_thread(
                    app.acquire_token_for_client, scopes=[self._scope]
                )
            except requests.RequestException as exc:
                raise self.error_type(
                    "unreachable", f"{self._authority}: {exc}", client_id=self._client_id
                ) from exc
            except ValueError as exc:  # MSAL: tenant discovery failed (unknown tenant, bad host)
                raise self.error_type(
                    "invalid_authority", str(exc), client_id=self._client_id
                ) from exc
        # MSAL reports AAD errors in the result dict instead of raising.
        if "access_token" not in result:
            raise self.error_type(
                str(result.get("error", "no_token")),
                str(result.get("error_description", "")),
                client_id=self._client_id,
            )
        return str(result["access_token"])

    async def invalidate(self, token: str) -> None:
        async with self._lock:
            if self._app is None:
                return
            import msal

            cache = self._app.token_cache
            for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                if entry.get("secret") == token:
                    cache.remove_at(entry)

    async def close(self) -> None:
        if self._app is not None:
            self._app.http_client.close()
