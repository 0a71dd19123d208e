"""Where credentials come from (SECRETS_SOURCE) and how long a previous value stays accepted."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from pulse.ports.secrets import Credential

# Inbound credentials: a sender may sign with the old value while its side is being rotated.
INBOUND = (
    Credential.ALOWARE_SECRET,
    Credential.HUBSPOT_CLIENT_SECRET,
    Credential.ADMIN_HMAC_SECRET,
)


class SecretsManagerIds(BaseModel):
    """SECRETS__*: Secrets Manager ids (names or ARNs) per credential, and the cache's TTL.
    Here as in settings.py, the docstring under a field is its meaning (`setting_fields`)."""

    ttl_sec: float = Field(300, gt=0, description="How often Secrets Manager is re-read")
    previous_valid_sec: float = Field(
        86_400,
        ge=0,
        description="How long a previous inbound secret stays accepted after a rotation",
    )
    aloware_secret_id: str | None = None
    """Secrets Manager id of ALOWARE_SECRET (SECRETS_SOURCE=aws)"""
    hubspot_client_secret_id: str | None = None
    """Secrets Manager id of HUBSPOT_CLIENT_SECRET"""
    admin_hmac_secret_id: str | None = None
    """Secrets Manager id of ADMIN_HMAC_SECRET"""
    powerbi_client_secret_id: str | None = None
    """Secrets Manager id of POWERBI__CLIENT_SECRET"""
    hubspot_access_token_id: str | None = None
    """Secrets Manager id of HUBSPOT_ACCESS_TOKEN"""
    aloware_api_token_id: str | None = None
    """Secrets Manager id of ALOWARE_API_TOKEN"""

    def ids(self) -> dict[Credential, str]:
        given = {
            Credential.ALOWARE_SECRET: self.aloware_secret_id,
            Credential.HUBSPOT_CLIENT_SECRET: self.hubspot_client_secret_id,
            Credential.ADMIN_HMAC_SECRET: self.admin_hmac_secret_id,
            Credential.POWERBI_CLIENT_SECRET: self.powerbi_client_secret_id,
            Credential.HUBSPOT_ACCESS_TOKEN: self.hubspot_access_token_id,
            Credential.ALOWARE_API_TOKEN: self.aloware_api_token_id,
        }
        return {credential: id_ for credential, id_ in given.items() if id_}


class SecretSourceSettings(BaseModel):
    """SECRETS_SOURCE=env (values read once, `*_PREVIOUS` for a rotation) or aws."""

    model_config = ConfigDict(defer_build=True)  # a base of `Settings`, never validated alone

    secrets_source: Literal["env", "aws"] = "env"
    """env: every secret from the environment; aws: from Secrets Manager, refreshed"""
    secrets: SecretsManagerIds = SecretsManagerIds()
    aloware_secret_previous: SecretStr | None = Field(
        None, description="The previous ALOWARE_SECRET, accepted for SECRETS__PREVIOUS_VALID_SEC"
    )
    hubspot_client_secret_previous: SecretStr | None = None
    """The previous HUBSPOT_CLIENT_SECRET, accepted for SECRETS__PREVIOUS_VALID_SEC"""
    admin_hmac_secret_previous: SecretStr | None = None
    """The previous ADMIN_HMAC_SECRET, accepted for SECRETS__PREVIOUS_VALID_SEC"""

    def supplied(self, credential: Credential) -> bool:
        """True when Secrets Manager holds this credential (its env variable may stay unset)."""
        return self.secrets_source == "aws" and credential in self.secrets.ids()

    def previous_values(self) -> dict[Credential, str | None]:
        given = (
            self.aloware_secret_previous,
            self.hubspot_client_secret_previous,
            self.admin_hmac_secret_previous,
        )
        return {
            credential: value.get_secret_value() if value is not None else None
            for credential, value in zip(INBOUND, given, strict=True)
        }

    def secret_source_problems(self) -> list[str]:
        previous = [f"{c}_PREVIOUS" for c, value in self.previous_values().items() if value]
        if self.secrets_source == "aws":
            found = [] if self.secrets.ids() else ["SECRETS_SOURCE=aws needs SECRETS__*_ID"]
            found += [
                f"{name} is for SECRETS_SOURCE=env: with aws the AWSPREVIOUS version is used"
                for name in previous
            ]
            return found
        return ["SECRETS__*_ID are for SECRETS_SOURCE=aws"] if self.secrets.ids() else []
