"""The Eventstream sink (ports.sink.Sink, SINK=fabric-eventstream): Event Hubs HTTPS batch send
to an Eventstream custom endpoint. A 201 means Event Hubs enqueued the batch, so the ledger's
commit means "handed to Fabric"; the Eventstream routes each event by its `PulseTable`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from pulse.adapters_out.fabric.config import EventstreamConfig
from pulse.adapters_out.fabric.errors import (
    FabricAccessDenied,
    FabricRejected,
    FabricThrottled,
    FabricTooLarge,
    FabricUnavailable,
)
from pulse.adapters_out.fabric.kusto import retry_after_seconds
from pulse.adapters_out.fabric.sas import EventHubTarget, SasTokens
from pulse.adapters_out.fabric.sending import Framing, Sender, post
from pulse.adapters_out.push.admission import Admission
from pulse.adapters_out.push.http import http_client
from pulse.adapters_out.push.rows import ENCODE, RowEncoder
from pulse.core.model import DimRow, FactEvent, Row
from pulse.core.schema import BY_NAME, FACT_EVENT, Table, table_of

BATCH_CONTENT_TYPE = "application/vnd.microsoft.servicebus.json"
BATCH = Framing(open=b"[", sep=b",", close=b"]")
MAX_STRING_CHARS = 100_000  # an event is at most 1 MB; the request limit bounds it anyway
_BODY_EXCERPT = 2_000

# What each event's body carries besides the row's columns (documented in the README).
TABLE_FIELD = "PulseTable"  # FactEvent, DimAgent, … : the Eventstream routes on it
OP_FIELD = "PulseOp"  # append (facts), upsert, replace (a marker), replace-row
REPLACE_FIELD = "PulseReplaceId"  # ties a replace's rows to its marker
REPLACE_ROWS_FIELD = "PulseReplaceRows"


class EventstreamSink:
    """Each row is one event: its body is the row as JSON plus `PulseTable` and `PulseOp`;
    the same two go in the event's UserProperties. Event Hubs keeps no table, so a dimension
    `replace` sends a marker event then the rows, tagged with one `PulseReplaceId`: at the
    destination, a dimension's rows are those of its latest complete replace, then later
    upserts (latest per key). Facts repeat harmlessly: readers count distinct EventKeys."""

    def __init__(
        self,
        target: EventHubTarget,
        sender: Sender,
        tokens: SasTokens,
        *,
        timeout_sec: float = 30.0,
        max_connections: int = 6,
        drain_timeout_sec: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.target = target
        self.sender = sender
        self.tokens = tokens
        self._drain_timeout = drain_timeout_sec
        self._encoder = RowEncoder(max_string_chars=MAX_STRING_CHARS, sink="Eventstream")
        self._http = http_client(
            timeout_sec=timeout_sec,
            max_connections=max_connections,
            keepalive_expiry=5.0,  # httpx's default, which this client always had
            transport=transport,
        )
        self._gate = Admission("Eventstream")

    @classmethod
    def from_config(
        cls,
        config: EventstreamConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        drain_timeout_sec: float = 10.0,
    ) -> EventstreamSink:
        tokens = SasTokens(
            config.target, ttl_sec=config.sas_ttl_sec, renew_before_sec=config.sas_renew_before_sec
        )
        return cls(
            config.target,
            Sender.from_policy(config.sending, config.max_request_bytes, BATCH),
            tokens,
            timeout_sec=config.timeout_sec,
            max_connections=config.sending.max_concurrency + 2,
            drain_timeout_sec=drain_timeout_sec,
            transport=transport,
        )

    # --- Sink port --------------------------------------------------------------------------

    async def append(self, facts: Sequence[FactEvent]) -> None:
        events = [self._event(f, FACT_EVENT, "append") for f in facts]
        async with self._gate.admitted():
            await self.sender.send(events, self._post)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        events = [self._event(r, table_of(r), "upsert") for r in rows]
        async with self._gate.admitted():
            await self.sender.send(events, self._post)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        definition = BY_NAME.get(table)
        if definition is None or definition is FACT_EVENT:
            raise FabricRejected("replace", status=400, body=f"no dimension table {table!r}")
        replace_id = str(uuid.uuid4())
        marker = {
            TABLE_FIELD: table,
            OP_FIELD: "replace",
            REPLACE_FIELD: replace_id,
            REPLACE_ROWS_FIELD: len(rows),
        }
        extra = {REPLACE_FIELD: replace_id}
        events = [self._wrap(marker, table, "replace")]
        for row in rows:
            if table_of(row) is not definition:
                raise FabricRejected(
                    "replace", status=400, body=f"a {type(row).__name__} row cannot go to {table}"
                )
            events.append(self._event(row, definition, "replace-row", extra))
        async with self._gate.admitted():
            # Event Hubs keeps order within a partition only; the marker's row count lets a
            # reader tell a complete replace from one still arriving.
            await self.sender.send(events, self._post)

    async def ping(self) -> None:
        """The connection string parses and signs; the namespace answers over HTTPS."""
        async with self._gate.admitted():
            self.tokens.token()
            try:
                await self._http.get(f"https://{self.target.host}/", timeout=10.0)
            except httpx.HTTPError as exc:
                raise FabricUnavailable(
                    f"Eventstream endpoint {self.target.host} unreachable: {exc!r}"
                ) from exc

    async def drain(self, budget_sec: float) -> None:
        """Refuse new calls and let admitted ones finish within the budget."""
        await self._gate.close(budget_sec)

    async def close(self) -> None:
        try:
            await self.drain(0.0 if self._gate.closing else self._drain_timeout)
        finally:
            await self._http.aclose()

    # --- plumbing ---------------------------------------------------------------------------

    def _event(self, row: Row, table: Table, op: str, extra: dict[str, Any] | None = None) -> bytes:
        body = {TABLE_FIELD: table.name, OP_FIELD: op, **(extra or {})}
        body.update(self._encoder.values(row, table))
        return self._wrap(body, table.name, op)

    @staticmethod
    def _wrap(body: dict[str, Any], table: str, op: str) -> bytes:
        # Batch format: [{"Body": "<text>", "UserProperties": {…}}, …]; the body is the JSON text.
        return ENCODE(
            {"Body": ENCODE(body), "UserProperties": {TABLE_FIELD: table, OP_FIELD: op}}
        ).encode()

    async def _post(self, body: bytes, events: int) -> None:
        what = f"send {events} events to {self.target.host}/{self.target.entity_path}"
        for attempt in (1, 2):
            headers = {"Authorization": self.tokens.token(), "Content-Type": BATCH_CONTENT_TYPE}
            response = await post(
                self._http, self.target.send_url, what, content=body, headers=headers
            )
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate()  # clock skew or a just-expired token: sign anew once
                continue
            _raise_for(response, what, self.target)
            return


def _raise_for(response: httpx.Response, what: str, target: EventHubTarget) -> None:
    status = response.status_code
    if status in (200, 201):
        return
    text = response.text[:_BODY_EXCERPT]
    if status == 429 or (status == 503 and "ServerBusy" in text):
        raise FabricThrottled(
            f"{what}: throttled by Event Hubs ({status}) {text}".strip(),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            status=status,
        )
    if status >= 500 or status == 408:
        raise FabricUnavailable(f"{what}: Event Hubs answered {status}: {text}", status=status)
    if status == 413 or (status == 403 and "exceeds the limit" in text):
        # 413, or the documented "403 quota exceeded or message too large"
        raise FabricTooLarge(f"{what}: Event Hubs answered {status}: {text}")
    if status in (401, 403, 404):
        raise FabricAccessDenied(
            f"{what}: Event Hubs refused the signature or the entity (HTTP {status}): check "
            f"FABRIC__EVENTSTREAM_CONNECTION_STRING (key {target.key_name!r}, entity "
            f"{target.entity_path!r}) against the custom endpoint's Keys tab: {text}",
            status=status,
        )
    raise FabricRejected(what, status=status, body=text)


class EventstreamDataset:
    """`pulse dataset ensure|show` for SINK=fabric-eventstream: an Eventstream has no schema to
    create; this checks the connection string signs and says how to route the events."""

    def __init__(self, config: EventstreamConfig) -> None:
        self._config = config

    def _describe(self, verb: str) -> str:
        config = self._config
        target = config.target
        tokens = SasTokens(
            target, ttl_sec=config.sas_ttl_sec, renew_before_sec=config.sas_renew_before_sec
        )
        tokens.token()
        return "\n".join(
            [
                f"Eventstream custom endpoint {verb}: {target.send_url} (key {target.key_name!r})",
                f"  a SAS token signs (valid {config.sas_ttl_sec:.0f} s, renewed "
                f"{config.sas_renew_before_sec:.0f} s before expiry)",
                f"  note: nothing to create on the Eventstream side; route events by "
                f"{TABLE_FIELD} (FactEvent, DimAgent, DimDate, DimMetric, DimShift) to their "
                "destination tables",
                "  note: for an Eventhouse destination, run `pulse dataset ensure` once with "
                "SINK=fabric-eventhouse to create the tables and the KQL functions",
            ]
        )

    async def ensure(self) -> str:
        return self._describe("checked")

    async def show(self) -> str:
        return self._describe("configured")
