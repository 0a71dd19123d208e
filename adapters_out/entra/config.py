"""The Entra ID app a push sink signs in as: checked values, built by bootstrap from settings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class EntraConfig:
    """One service principal and the scope it asks for (DESIGN §4 "Auth"); the authority is
    `{authority_host}/{tenant_id}`, MSAL's own HTTP calls time out after `timeout_sec`."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str
    authority_host: str
    timeout_sec: float
