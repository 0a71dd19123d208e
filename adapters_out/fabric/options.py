"""What the Fabric adapters read from settings (FABRIC__*), as a protocol the settings model meets."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class FabricOptions(Protocol):
    """Read-only view of `bootstrap.settings.FabricSettings` (adapters never import bootstrap)."""

    # Eventhouse (Kusto) and the Entra app that may write to it
    @property
    def tenant_id(self) -> str | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def client_secret(self) -> SecretStr | None: ...
    @property
    def authority_host(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def query_uri(self) -> str | None: ...
    @property
    def database(self) -> str | None: ...
    @property
    def mapping_name(self) -> str: ...
    @property
    def max_request_bytes(self) -> int: ...
    @property
    def gzip_min_bytes(self) -> int: ...
    @property
    def inline_replace_max_bytes(self) -> int: ...
    # Eventstream custom endpoint
    @property
    def eventstream_connection_string(self) -> SecretStr | None: ...
    @property
    def eventstream_max_request_bytes(self) -> int: ...
    @property
    def sas_ttl_sec(self) -> float: ...
    @property
    def sas_renew_before_sec(self) -> float: ...
    # both
    @property
    def timeout_sec(self) -> float: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def append_timeout_sec(self) -> float: ...
    @property
    def retry_base_sec(self) -> float: ...
    @property
    def retry_cap_sec(self) -> float: ...


def eventhouse_required(options: FabricOptions) -> tuple[str, str, str, str, str]:
    """(tenant, client, secret, query URI, database), or ValueError naming what is missing."""
    secret = options.client_secret.get_secret_value() if options.client_secret else None
    values = {
        "FABRIC__TENANT_ID": options.tenant_id,
        "FABRIC__CLIENT_ID": options.client_id,
        "FABRIC__CLIENT_SECRET": secret,
        "FABRIC__QUERY_URI": options.query_uri,
        "FABRIC__DATABASE": options.database,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"the Eventhouse sink needs {', '.join(missing)}")
    tenant, client, secret_, uri, database = (str(v) for v in values.values())
    return tenant, client, secret_, uri, database
