"""Tokens for the Power BI API: the shared Entra service-principal client with Power BI's scope."""

from __future__ import annotations

from typing import Any

from pulse.adapters_out.entra import tokens as entra
from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.powerbi.errors import PowerBIAuthError

__all__ = ["PowerBIAuthError", "ServicePrincipalAuth", "TokenProvider"]

POWERBI_SCOPE = "https://analysis.windows.net/powerbi/api/.default"


class ServicePrincipalAuth(entra.ServicePrincipalAuth):
    """`adapters_out.entra.tokens.ServicePrincipalAuth` raising `PowerBIAuthError`."""

    error_type = PowerBIAuthError

    def __init__(self, *, scope: str = POWERBI_SCOPE, **kwargs: Any) -> None:
        super().__init__(scope=scope, **kwargs)
