"""The Power BI REST client: InGroup push-dataset operations only, with typed errors."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.powerbi.config import PowerBIConfig
from pulse.adapters_out.powerbi.errors import (
    PowerBIAccessDenied,
    PowerBIFeatureDeprecated,
    PowerBIRejected,
    PowerBIThrottled,
    PowerBIUnavailable,
)
from pulse.adapters_out.push.http import http_client

DEFAULT_RETRY_AFTER_SEC = 60.0  # Power BI always sends Retry-After on 429; this is a safety net
_BODY_EXCERPT = 2_000


class PowerBIClient:
    """One keep-alive `httpx.AsyncClient` for one workspace.

    A service principal cannot use "My workspace", so every path is
    `groups/{workspaceId}/datasets/…` (DESIGN §4). Bodies use the swagger's property names
    verbatim (`name`, `tables`, `columns`, `dataType`, `rows`…): they are case-sensitive.
    """

    def __init__(
        self,
        *,
        api_base_url: str,
        workspace_id: str,
        tokens: TokenProvider,
        timeout_sec: float = 30.0,
        max_connections: int = 10,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.workspace_id = workspace_id
        self._tokens = tokens
        self._group = f"groups/{quote(workspace_id, safe='')}"
        self._http = http_client(
            base_url=api_base_url.rstrip("/") + "/",
            timeout_sec=timeout_sec,
            max_connections=max_connections,
            headers={"Accept": "application/json"},
            transport=transport,
        )

    @classmethod
    def from_config(
        cls,
        config: PowerBIConfig,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> PowerBIClient:
        """The client for the configured workspace (`aclose()` it; `tokens` is the caller's)."""
        return cls(
            api_base_url=config.api_base_url,
            workspace_id=config.workspace_id,
            tokens=tokens,
            timeout_sec=config.timeout_sec,
            # the batcher's PostRows plus the odd DeleteRows / GET beside them
            max_connections=config.budgets.max_pending + 5,
            transport=transport,
        )

    # --- operations (swagger operationIds in the comments) --------------------------------

    async def list_datasets(self) -> list[dict[str, Any]]:
        # Datasets_GetDatasetsInGroup
        response = await self._request("GET", f"{self._group}/datasets", what="list datasets")
        return list(response.json().get("value", []))

    async def post_dataset(
        self, definition: Mapping[str, Any], *, retention: str = "None"
    ) -> dict[str, Any]:
        # Datasets_PostDatasetInGroup; retention "None" keeps history (basicFIFO drops rows
        # past ~200,000 silently, DESIGN §4), so FactEvent is created with "None".
        response = await self._request(
            "POST",
            f"{self._group}/datasets",
            body=definition,
            params={"defaultRetentionPolicy": retention},
            what=f"create dataset {definition.get('name')!r}",
        )
        return dict(response.json())

    async def get_tables(self, dataset_id: str) -> list[dict[str, Any]]:
        # Datasets_GetTablesInGroup
        response = await self._request(
            "GET", f"{self._dataset(dataset_id)}/tables", what=f"list tables of {dataset_id}"
        )
        return list(response.json().get("value", []))

    async def put_table(self, dataset_id: str, table: Mapping[str, Any]) -> None:
        # Datasets_PutTableInGroup
        name = str(table["name"])
        await self._request(
            "PUT",
            f"{self._dataset(dataset_id)}/tables/{quote(name, safe='')}",
            body=table,
            what=f"PutTable {name}",
        )

    async def post_rows(self, dataset_id: str, table: str, encoded_rows: Sequence[str]) -> None:
        """Datasets_PostRowsInGroup. Rows arrive as JSON objects already encoded (by the
        caller's coroutine, see schema.encode_row), so a 10,000-row body is one join."""
        body = ('{"rows":[' + ",".join(encoded_rows) + "]}").encode()
        await self._request(
            "POST",
            f"{self._dataset(dataset_id)}/tables/{quote(table, safe='')}/rows",
            content=body,
            what=f"PostRows {table} ({len(encoded_rows)} rows)",
        )

    async def delete_rows(self, dataset_id: str, table: str) -> None:
        # Datasets_DeleteRowsInGroup: deletes every row of the table (there is no filter).
        await self._request(
            "DELETE",
            f"{self._dataset(dataset_id)}/tables/{quote(table, safe='')}/rows",
            what=f"DeleteRows {table}",
        )

    async def check_token(self) -> None:
        await self._tokens.token()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing -----------------------------------------------------------------------------

    def _dataset(self, dataset_id: str) -> str:
        return f"{self._group}/datasets/{quote(dataset_id, safe='')}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        for attempt in (1, 2):
            token = await self._tokens.token()
            headers["Authorization"] = f"Bearer {token}"
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise PowerBIUnavailable(f"{what}: cannot connect: {exc!r}") from exc
            except httpx.TimeoutException as exc:
                raise PowerBIUnavailable(
                    f"{what}: no answer in time: {exc!r}", maybe_landed=True
                ) from exc
            except httpx.TransportError as exc:  # dropped connection after the request went out
                raise PowerBIUnavailable(
                    f"{what}: connection lost: {exc!r}", maybe_landed=True
                ) from exc
            if (
                response.status_code == 403
                and _error_code(response) == "TokenExpired"
                and attempt == 1
            ):
                # DESIGN §4: drop the cached token once and retry with a fresh one.
                await self._tokens.invalidate(token)
                continue
            _raise_for(response, what, self.workspace_id)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _error_code(response: httpx.Response) -> str:
    """Power BI's error code: `{"error": {"code": …}}` (some gateways send `{"code": …}`)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    error = payload.get("error")
    if isinstance(error, dict):
        pbi = error.get("pbi.error")
        code = error.get("code") or (pbi.get("code") if isinstance(pbi, dict) else "")
        return str(code or "")
    return str(payload.get("code") or payload.get("Message") or "")


def retry_after_seconds(value: str | None, now: float | None = None) -> float:
    """Retry-After as seconds: delta-seconds, or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return DEFAULT_RETRY_AFTER_SEC
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SEC
    return max(0.0, when - (time.time() if now is None else now))


def _raise_for(response: httpx.Response, what: str, workspace_id: str) -> None:
    status = response.status_code
    if status < 300:
        return
    body = response.text[:_BODY_EXCERPT]
    code = _error_code(response)
    if status == 429:
        raise PowerBIThrottled(
            f"{what}: throttled by Power BI (429)",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500 or status == 408:
        raise PowerBIUnavailable(f"{what}: Power BI answered {status}: {body}", status=status)
    if code == "FeatureDeprecatedError":
        raise PowerBIFeatureDeprecated(
            f"{what}: Power BI no longer allows creating push semantic models "
            "(FeatureDeprecatedError, DESIGN §4): set POWERBI__DATASET_ID to an existing "
            "dataset, or move to SINK=fabric-eventhouse."
        )
    if status in (401, 403, 404):
        raise PowerBIAccessDenied(
            f"{what}: {_access_sentence(status, code, workspace_id)} (HTTP {status} {code})".strip(),
            status=status,
            code=code,
        )
    raise PowerBIRejected(what, status=status, body=body)


def _access_sentence(status: int, code: str, workspace_id: str) -> str:
    if code == "TokenExpired":
        return "Power BI rejected a freshly fetched token as expired; check the host clock."
    if code == "ServicePrincipalIsNotAllowedByTenantAdminSwitch" or (
        status == 401 and code == "PowerBINotAuthorizedException"
    ):
        return (
            "the service principal may not call Power BI APIs: a Fabric admin must enable the "
            'tenant setting "Service principals can use Fabric APIs" for it (or its group).'
        )
    if status == 404:
        return (
            f"workspace {workspace_id} or the dataset was not found, or the service principal "
            "is not a member of that workspace: add it as Member (or Contributor), and run "
            "`pulse dataset ensure`."
        )
    return (
        f"the service principal lacks permission in workspace {workspace_id}: add it to the "
        "workspace as Member (or Contributor)."
    )
