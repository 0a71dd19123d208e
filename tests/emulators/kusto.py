"""A Fabric Eventhouse (Kusto REST) emulator on 127.0.0.1: streaming ingest, the management
commands Pulse sends, Entra ID tokens with Kusto's scope, limits and faults.

It keeps each table's rows as a dict per row, checks every MultiJSON line against the JSON
mapping named in the request and the column types, and answers errors shaped like Kusto's
(`{"error": {"code", "message", "@type", "@message", "@permanent"}}`). It does not evaluate
KQL queries (no Kusto engine runs here): stored functions are kept as text, and tests read
the tables the functions read.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.emulators.aad import KUSTO_SCOPE, TokenIssuer
from tests.emulators.clock import RealTime
from tests.emulators.faults import Served

KQL_TYPES = ("long", "real", "bool", "datetime", "string", "int", "dynamic")
STREAMING_LIMIT_BYTES = 4 * 1024 * 1024  # "Streaming ingestion: 4 MB per request"


@dataclass
class KustoTable:
    name: str
    columns: dict[str, str]  # name -> KQL type, in order
    mappings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    streaming: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)

    def schema(self) -> str:
        return ", ".join(f"{n}:{t}" for n, t in self.columns.items())


@dataclass
class KustoFaults:
    storm_429: int = 0  # next N ingest requests answer 429
    retry_after: int = 1
    errors_5xx: int = 0  # next N ingest requests answer 503
    drop_before: int = 0  # next N ingests: connection closed, rows not stored
    drop_after: int = 0  # next N ingests: rows stored, then the connection closed
    max_request_bytes: int = STREAMING_LIMIT_BYTES  # lower it to make Pulse split


@dataclass
class KustoCounters:
    ingest_requests: int = 0
    ingested_rows: int = 0
    gzipped: int = 0
    request_sizes: list[int] = field(default_factory=list)  # uncompressed bytes per ingest
    throttled: int = 0
    injected_5xx: int = 0
    dropped: int = 0
    rejected: int = 0
    too_large: int = 0
    token_expired: int = 0
    commands: list[str] = field(default_factory=list)  # every management command, verbatim
    client_request_ids: list[str] = field(default_factory=list)


class KustoError(Exception):
    def __init__(self, status: int, code: str, message: str, permanent: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.permanent = status, code, message, permanent

    def response(self) -> web.Response:
        body = {
            "error": {
                "code": self.code,
                "message": "Request is invalid and cannot be executed.",
                "@type": f"Kusto.Data.Exceptions.{self.code.split('_')[-1]}Exception",
                "@message": self.message,
                "@permanent": self.permanent,
            }
        }
        return web.json_response(body, status=self.status)


def _bad(message: str, code: str = "BadRequest_SyntaxError") -> KustoError:
    return KustoError(400, code, message)


def _not_found(kind: str, name: str) -> KustoError:
    return KustoError(
        400, "BadRequest_EntityNotFound", f"Entity ID '{name}' of kind '{kind}' was not found."
    )


def _v1(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {
        "Tables": [
            {
                "TableName": "Table_0",
                "Columns": [{"ColumnName": c, "DataType": "String"} for c in columns],
                "Rows": rows,
            }
        ]
    }


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def type_problem(kind: str, value: Any) -> str | None:
    """None when Kusto stores `value` in a column of `kind` as that value, else why not. Kusto
    itself would store a null for a value it cannot convert: the emulator refuses instead, so a
    silent loss of data cannot pass a test."""
    if value is None:
        return None
    if kind in ("long", "int"):
        ok = type(value) is int and -(2**63) <= value < 2**63
    elif kind == "real":
        ok = type(value) in (int, float) and math.isfinite(value)
    elif kind == "bool":
        ok = type(value) is bool
    elif kind == "datetime":
        ok = _is_datetime(value)
    elif kind == "string":
        ok = isinstance(value, str)
    else:
        ok = True
    return None if ok else f"{value!r:.60} is not a {kind}"


# --- KQL literals (what `.set-or-replace … <| datatable(…)[…]` carries) ----------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<typed>(?:long|real|bool|datetime|int|string)\((?P<inner>[^)]*)\))
      | (?P<bool>true|false)
      | (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    )\s*(?:,|$)""",
    re.VERBOSE,
)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _string(text: str) -> str:
    out, chars = [], iter(text[1:-1])
    for ch in chars:
        out.append(_UNESCAPE.get(next(chars), "?") if ch == "\\" else ch)
    return "".join(out)


def parse_literals(text: str) -> list[Any]:
    values: list[Any] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad(f"cannot parse a literal at {text[position : position + 40]!r}")
        position = match.end()
        if match["string"] is not None:
            values.append(_string(match["string"]))
        elif match["typed"] is not None:
            inner = match["inner"].strip()
            kind = match["typed"].split("(")[0]
            if inner == "null":
                values.append(None)
            elif kind == "datetime":
                values.append(inner)
            elif kind in ("long", "int"):
                values.append(int(inner))
            elif kind == "real":
                values.append(float(inner))
            else:
                values.append(inner)
        elif match["bool"] is not None:
            values.append(match["bool"] == "true")
        else:
            number = match["number"]
            values.append(float(number) if any(c in number for c in ".eE") else int(number))
    return values


def parse_schema(text: str) -> dict[str, str]:
    columns: dict[str, str] = {}
    for part in text.split(","):
        name, sep, kind = part.strip().partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()):
            raise _bad(f"bad column declaration {part.strip()!r}")
        if kind.strip() not in KQL_TYPES:
            raise _bad(f"unknown type {kind.strip()!r}")
        columns[name.strip()] = kind.strip()
    return columns


_COMMANDS = {
    "create_merge": re.compile(r"^\.create-merge table (\w+) \((.*)\)$", re.S),
    "mapping": re.compile(
        r"^\.create-or-alter table (\w+) ingestion json mapping \"([^\"]+)\" '(.*)'$", re.S
    ),
    "streaming": re.compile(r"^\.alter table (\w+) policy streamingingestion enable$"),
    "clear": re.compile(r"^\.clear table (\w+) data$"),
    "set_or_replace": re.compile(r"^\.set-or-replace (\w+) <\| datatable\((.*?)\)\[(.*)\]$", re.S),
    "function": re.compile(
        r"^\.create-or-alter function with \((.*?)\) (\w+)(\([^)]*\)) \{\n(.*)\n\}$", re.S
    ),
    "show_schema": re.compile(r"^\.show database cslschema$"),
    "show_functions": re.compile(r"^\.show functions$"),
}


class KustoEmulator(Served):
    """One Eventhouse query endpoint holding one KQL database, plus Entra ID on the same port."""

    def __init__(
        self,
        *,
        database: str = "PulseDB",
        timebase: Any = None,
        tenant_id: str = "00000000-0000-0000-0000-00000000c057",
        client_id: str = "99999999-8888-7777-6666-555555555555",
        client_secret: str = "kusto-emulator-client-secret",
    ) -> None:
        self.database = database
        self.time = timebase or RealTime()
        self.aad = TokenIssuer(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            timebase=self.time,
            scopes=(KUSTO_SCOPE,),
        )
        self.tables: dict[str, KustoTable] = {}
        self.functions: dict[str, dict[str, str]] = {}
        self.faults = KustoFaults()
        self.counters = KustoCounters()

    def add_routes(self, app: web.Application) -> None:
        self.aad.add_routes(app)
        app.router.add_post("/v1/rest/ingest/{database}/{table}", self._ingest)
        app.router.add_post("/v1/rest/mgmt", self._mgmt)

    # --- what tests read ----------------------------------------------------------------------

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.tables[table].rows) if table in self.tables else []

    def key_counts(self, table: str, column: str) -> Counter[Any]:
        return Counter(r.get(column) for r in self.rows(table))

    # --- plumbing -----------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> None:
        self.counters.client_request_ids.append(request.headers.get("x-ms-client-request-id", ""))
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise KustoError(401, "Unauthorized", "No bearer token in the request")
        status = self.aad.status(header.removeprefix("Bearer "))
        if status == "expired":
            self.counters.token_expired += 1
            raise KustoError(401, "Unauthorized", "The token is expired", permanent=False)
        if status != "valid":
            raise KustoError(401, "Unauthorized", "The token is not valid for this cluster")

    def _database(self, name: str) -> None:
        if name != self.database:
            raise _not_found("Database", name)

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        try:
            self._authorize(request)
            self._database(request.match_info["database"])
            response = await self._ingest_checked(request)
        except KustoError as exc:
            if exc.status == 400:
                self.counters.rejected += 1
            return exc.response()
        return response

    async def _ingest_checked(self, request: web.Request) -> web.StreamResponse:
        self.counters.ingest_requests += 1
        faults = self.faults
        if faults.storm_429 > 0:
            faults.storm_429 -= 1
            self.counters.throttled += 1
            response = KustoError(429, "TooManyRequests", "throttled", permanent=False).response()
            response.headers["Retry-After"] = str(faults.retry_after)
            return response
        if faults.errors_5xx > 0:
            faults.errors_5xx -= 1
            self.counters.injected_5xx += 1
            return KustoError(503, "ServiceUnavailable", "injected", permanent=False).response()
        if faults.drop_before > 0:
            faults.drop_before -= 1
            return self._drop(request)
        raw = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            self.counters.gzipped += 1
            if raw[:2] == b"\x1f\x8b":  # aiohttp has usually inflated it already
                raw = gzip.decompress(raw)
        if request.query.get("streamFormat") != "MultiJSON":
            raise _bad("streamFormat must be MultiJSON for this mapping")
        table = self.tables.get(request.match_info["table"])
        if table is None:
            raise _not_found("Table", request.match_info["table"])
        mapping = table.mappings.get(request.query.get("mappingName", ""))
        if mapping is None:
            raise KustoError(
                400,
                "BadRequest_MappingReferenceWasNotFound",
                f"Mapping reference '{request.query.get('mappingName')}' of kind 'Json' "
                f"was not found for table '{table.name}'.",
            )
        if not table.streaming:
            raise KustoError(
                400,
                "BadRequest_StreamingIngestionPolicyNotEnabled",
                f"Streaming ingestion policy is not enabled for table '{table.name}'.",
            )
        self.counters.request_sizes.append(len(raw))
        if len(raw) > faults.max_request_bytes:
            self.counters.too_large += 1
            raise KustoError(
                413,
                "RequestEntityTooLarge",
                f"Request body of {len(raw)} bytes exceeds {faults.max_request_bytes}",
                permanent=False,
            )
        rows = [self._row(table, mapping, line) for line in raw.split(b"\n") if line.strip()]
        table.rows.extend(rows)
        self.counters.ingested_rows += len(rows)
        if faults.drop_after > 0:
            faults.drop_after -= 1
            return self._drop(request)
        return web.Response(status=200)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        self.counters.dropped += 1
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=500)  # never reaches the client

    @staticmethod
    def _row(table: KustoTable, mapping: list[dict[str, Any]], line: bytes) -> dict[str, Any]:
        try:
            document = json.loads(line)
        except ValueError:
            raise _bad(f"a MultiJSON line is not JSON: {line[:60]!r}") from None
        if not isinstance(document, dict):
            raise _bad("a MultiJSON line is not a JSON object")
        mapped = {m["Properties"]["Path"].removeprefix("$."): m["column"] for m in mapping}
        unknown = set(document) - set(mapped)
        if unknown:
            raise _bad(f"properties not in the mapping: {sorted(unknown)}")
        row: dict[str, Any] = {}
        for path, column in mapped.items():
            value = document.get(path)
            problem = type_problem(table.columns[column], value)
            if problem:
                raise _bad(f"{table.name}[{column}]: {problem}", "BadRequest_InvalidData")
            row[column] = value
        return row

    async def _command_body(self, request: web.Request) -> str:
        self._authorize(request)
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("csl"), str):
            raise _bad('the body must be {"db": …, "csl": …}')
        self._database(str(body.get("db")))
        return str(body["csl"])

    async def _mgmt(self, request: web.Request) -> web.Response:
        try:
            csl = (await self._command_body(request)).strip()
            self.counters.commands.append(csl)
            return web.json_response(self._run(csl))
        except KustoError as exc:
            return exc.response()

    def _run(self, csl: str) -> dict[str, Any]:
        for name, pattern in _COMMANDS.items():
            match = pattern.match(csl)
            if match:
                result: dict[str, Any] = getattr(self, f"_cmd_{name}")(*match.groups())
                return result
        raise _bad(f"the emulator does not know the command {csl[:80]!r}")

    def _table(self, name: str) -> KustoTable:
        table = self.tables.get(name)
        if table is None:
            raise _not_found("Table", name)
        return table

    def _cmd_create_merge(self, name: str, schema: str) -> dict[str, Any]:
        columns = parse_schema(schema)
        table = self.tables.setdefault(name, KustoTable(name, {}))
        for column, kind in columns.items():
            have = table.columns.get(column)
            if have is not None and have != kind:
                raise _bad(f"column {column} is {have}, cannot merge as {kind}")
            table.columns.setdefault(column, kind)
        return _v1(["TableName", "Schema"], [[name, table.schema()]])

    def _cmd_mapping(self, name: str, mapping: str, text: str) -> dict[str, Any]:
        table = self._table(name)
        entries = json.loads(text)
        for entry in entries:
            if entry.get("column") not in table.columns:
                raise _bad(f"mapping column {entry.get('column')!r} is not in {name}")
            if not str(entry.get("Properties", {}).get("Path", "")).startswith("$."):
                raise _bad("a JSON mapping path must start with $.")
        table.mappings[mapping] = entries
        return _v1(["Name", "Kind", "Mapping"], [[mapping, "Json", text]])

    def _cmd_streaming(self, name: str) -> dict[str, Any]:
        self._table(name).streaming = True
        return _v1(["PolicyName", "EntityName"], [["StreamingIngestionPolicy", name]])

    def _cmd_clear(self, name: str) -> dict[str, Any]:
        self._table(name).rows.clear()
        return _v1(["Status"], [["Success"]])

    def _cmd_set_or_replace(self, name: str, schema: str, values: str) -> dict[str, Any]:
        table = self._table(name)
        columns = parse_schema(schema)
        if list(columns) != list(table.columns):
            raise _bad(f"datatable columns {list(columns)} differ from {name}'s")
        literals = parse_literals(values)
        if len(literals) % len(columns):
            raise _bad("datatable values do not fill whole rows")
        rows = []
        width = len(columns)
        for start in range(0, len(literals), width):
            row = dict(zip(columns, literals[start : start + width], strict=True))
            for column, kind in columns.items():
                if kind == "string" and row[column] is None:
                    row[column] = ""
                problem = type_problem(kind, row[column])
                if problem:
                    raise _bad(f"{name}[{column}]: {problem}")
            rows.append(row)
        table.rows[:] = rows  # one transaction: a reader sees the old rows or the new
        return _v1(["ExtentId", "RowCount"], [["emulated", len(rows)]])

    def _cmd_function(self, options: str, name: str, parameters: str, body: str) -> dict[str, Any]:
        if not body.strip():
            raise _bad(f"function {name} has an empty body")
        self.functions[name] = {"Name": name, "Parameters": parameters, "Body": body}
        return _v1(["Name", "Parameters", "Body"], [[name, parameters, body]])

    def _cmd_show_schema(self) -> dict[str, Any]:
        return _v1(
            ["TableName", "Schema", "DatabaseName", "Folder", "DocString"],
            [[t.name, t.schema(), self.database, "", ""] for t in self.tables.values()],
        )

    def _cmd_show_functions(self) -> dict[str, Any]:
        return _v1(
            ["Name", "Parameters", "Body", "Folder", "DocString"],
            [[f["Name"], f["Parameters"], f["Body"], "Pulse", ""] for f in self.functions.values()],
        )
