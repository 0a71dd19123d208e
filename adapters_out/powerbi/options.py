"""What the Power BI adapter reads from settings (POWERBI__*), as a protocol the settings model meets."""

from __future__ import annotations

from typing import Protocol

from pydantic import SecretStr


class PowerBIOptions(Protocol):
    """Read-only view of `bootstrap.settings.PowerBISettings` (adapters never import bootstrap)."""

    @property
    def tenant_id(self) -> str | None: ...
    @property
    def client_id(self) -> str | None: ...
    @property
    def client_secret(self) -> SecretStr | None: ...
    @property
    def workspace_id(self) -> str | None: ...
    @property
    def dataset_id(self) -> str | None: ...
    @property
    def dataset_name(self) -> str: ...
    @property
    def authority_host(self) -> str: ...
    @property
    def api_base_url(self) -> str: ...
    @property
    def scope(self) -> str: ...
    @property
    def timeout_sec(self) -> float: ...
    @property
    def max_rows_per_request(self) -> int: ...
    @property
    def requests_per_minute(self) -> int: ...
    @property
    def requests_per_hour_large(self) -> int: ...
    @property
    def large_table_rows(self) -> int: ...
    @property
    def rows_per_hour(self) -> int: ...
    @property
    def max_pending(self) -> int: ...
    @property
    def append_timeout_sec(self) -> float: ...


def required(options: PowerBIOptions) -> tuple[str, str, str, str]:
    """(tenant, client, secret, workspace), or ValueError naming what is missing."""
    secret = options.client_secret.get_secret_value() if options.client_secret else None
    values = {
        "POWERBI__TENANT_ID": options.tenant_id,
        "POWERBI__CLIENT_ID": options.client_id,
        "POWERBI__CLIENT_SECRET": secret,
        "POWERBI__WORKSPACE_ID": options.workspace_id,
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ValueError(f"the Power BI sink needs {', '.join(missing)}")
    tenant, client, secret_, workspace = values.values()
    assert tenant and client and secret_ and workspace
    return tenant, client, secret_, workspace
