"""Kusto REST for an Eventhouse (DESIGN §8): streaming ingest, management commands, queries."""

from __future__ import annotations

import email.utils
import gzip
import json
import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.fabric import sending
from pulse.adapters_out.fabric.config import EventhouseConfig
from pulse.adapters_out.fabric.errors import (
    FabricAccessDenied,
    FabricRejected,
    FabricThrottled,
    FabricTooLarge,
    FabricUnavailable,
)
from pulse.adapters_out.push.http import http_client

_BODY_EXCERPT = 2_000
# Kusto error codes that mean "not set up yet" rather than "this data is bad": the events wait
# in the inbox until an operator runs `pulse dataset ensure`, instead of dead-lettering.
_NOT_SET_UP = (
    "EntityNotFound",
    "MappingReferenceWasNotFound",
    "StreamingIngestionPolicyNotEnabled",
)


class KustoClient:
    """One keep-alive `httpx.AsyncClient` for one KQL database. Every call carries
    `x-ms-client-request-id` (Kusto's correlation id, quoted in its errors and logs)."""

    def __init__(
        self,
        *,
        query_uri: str,
        database: str,
        tokens: TokenProvider,
        gzip_min_bytes: int = 8_192,
        timeout_sec: float = 30.0,
        max_connections: int = 8,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.query_uri = query_uri.rstrip("/")
        self.database = database
        self._tokens = tokens
        self._gzip_min = gzip_min_bytes
        self._http = http_client(
            base_url=self.query_uri + "/",
            timeout_sec=timeout_sec,
            max_connections=max_connections,
            headers={"Accept": "application/json", "x-ms-app": "Pulse"},
            transport=transport,
        )

    @classmethod
    def from_config(
        cls,
        config: EventhouseConfig,
        tokens: TokenProvider,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> KustoClient:
        """The client for the configured database (`aclose()` it; `tokens` is the caller's)."""
        return cls(
            query_uri=config.query_uri,
            database=config.database,
            tokens=tokens,
            gzip_min_bytes=config.gzip_min_bytes,
            timeout_sec=config.timeout_sec,
            max_connections=config.sending.max_concurrency + 2,
            transport=transport,
        )

    async def ingest(self, table: str, mapping: str, body: bytes, rows: int) -> None:
        """Streaming ingestion of MultiJSON (one JSON object per line); gzip when it pays."""
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if len(body) >= self._gzip_min:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        await self._request(
            f"v1/rest/ingest/{quote(self.database, safe='')}/{quote(table, safe='')}",
            content=body,
            headers=headers,
            params={"streamFormat": "MultiJSON", "mappingName": mapping},
            kind="ingest",
            what=f"ingest {rows} rows into {table}",
        )

    async def mgmt(self, csl: str) -> list[dict[str, Any]]:
        """A management command; the primary result's rows as column → value."""
        return await self._command("v1/rest/mgmt", csl, "mgmt")

    async def check_token(self) -> None:
        await self._tokens.token()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _command(self, path: str, csl: str, kind: str) -> list[dict[str, Any]]:
        body = json.dumps({"db": self.database, "csl": csl}).encode()
        first_line = csl.strip().splitlines()[0][:120]
        response = await self._request(
            path,
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            kind=kind,
            what=f"{kind} {first_line!r}",
        )
        return primary_rows(response.json())

    async def _request(
        self,
        path: str,
        *,
        content: bytes,
        headers: dict[str, str],
        kind: str,
        what: str,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        for attempt in (1, 2):
            token = await self._tokens.token()
            request_id = f"Pulse.{kind};{uuid.uuid4()}"
            sent = {
                **headers,
                "Authorization": f"Bearer {token}",
                "x-ms-client-request-id": request_id,
            }
            response = await sending.post(
                self._http, path, what, content=content, headers=sent, params=params
            )
            if response.status_code == 401 and attempt == 1:
                # an expired or revoked token: drop it once and retry with a fresh one
                await self._tokens.invalidate(token)
                continue
            raise_for(response, what, request_id, self.database)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def primary_rows(payload: Any) -> list[dict[str, Any]]:
    """Kusto v1 response: {"Tables": [{"Columns": [{"ColumnName"…}], "Rows": [[…]]}, …]}."""
    tables = payload.get("Tables") if isinstance(payload, dict) else None
    if not tables:
        return []
    first = tables[0]
    names = [c["ColumnName"] for c in first.get("Columns", [])]
    return [dict(zip(names, row, strict=True)) for row in first.get("Rows", [])]


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        payload = response.json()
    except ValueError:
        return "", response.text[:_BODY_EXCERPT]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message = error.get("@message") or error.get("message") or ""
        return str(error.get("code") or ""), str(message)[:_BODY_EXCERPT]
    return "", response.text[:_BODY_EXCERPT]


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def raise_for(response: httpx.Response, what: str, request_id: str, database: str) -> None:
    status = response.status_code
    if status < 300:
        return
    code, message = _error(response)
    where = f"{what} (request {request_id})"
    if status == 429:
        raise FabricThrottled(
            f"{where}: throttled by Kusto (429) {message}".strip(),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500 or status == 408:
        raise FabricUnavailable(f"{where}: Kusto answered {status}: {message}", status=status)
    if status == 413:
        raise FabricTooLarge(f"{where}: Kusto answered 413: {message}")
    if "of kind 'Database'" in message:
        raise FabricAccessDenied(
            f"{where}: there is no KQL database {database} the service principal can see "
            f"({code or status}): check FABRIC__DATABASE and the principal's role on it.",
            status=status,
        )
    if any(marker in code for marker in _NOT_SET_UP) or status == 404:
        raise FabricAccessDenied(
            f"{where}: database {database} is not set up for Pulse ({code or status}: "
            f"{message}): run `pulse dataset ensure` with SINK=fabric-eventhouse.",
            status=status,
        )
    if status in (401, 403):
        raise FabricAccessDenied(
            f"{where}: the service principal may not do this in database {database} "
            f"(HTTP {status} {code}): grant it the Ingestor role (and Admin for `pulse "
            "dataset ensure`) on the KQL database.",
            status=status,
        )
    raise FabricRejected(where, status=status, body=f"{code}: {message}" if code else message)
