"""Where credentials come from: read at use, so a rotated value takes effect without a restart."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Credential(StrEnum):
    """Each credential, named by the setting that holds it when it comes from the environment."""

    ALOWARE_SECRET = "ALOWARE_SECRET"
    HUBSPOT_CLIENT_SECRET = "HUBSPOT_CLIENT_SECRET"
    ADMIN_HMAC_SECRET = "ADMIN_HMAC_SECRET"
    POWERBI_CLIENT_SECRET = "POWERBI__CLIENT_SECRET"
    HUBSPOT_ACCESS_TOKEN = "HUBSPOT_ACCESS_TOKEN"
    ALOWARE_API_TOKEN = "ALOWARE_API_TOKEN"


class SecretSource(Protocol):
    def current(self, credential: Credential) -> str | None:
        """The value to send (outbound) or to expect first (inbound); None when unset."""
        ...

    def accepted(self, credential: Credential) -> tuple[str, ...]:
        """Inbound: the current value, then the previous one while its rotation window lasts."""
        ...
