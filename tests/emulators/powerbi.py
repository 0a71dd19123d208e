"""A Power BI push-dataset emulator on 127.0.0.1: InGroup operations, swagger checks, DESIGN §4 limits, faults."""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.emulators import swagger
from tests.emulators.aad import TokenIssuer
from tests.emulators.clock import RealTime
from tests.emulators.faults import Served

GROUP = "/v1.0/myorg/groups/{groupId}"
COLUMN_TYPES = ("Int64", "Double", "Boolean", "DateTime", "String")  # DESIGN §4, exact spelling
_RETENTION = swagger.parameter_enum(
    "/v1.0/myorg/groups/{groupId}/datasets", "post", "defaultRetentionPolicy"
)


@dataclass(frozen=True, slots=True)
class Limits:
    """Microsoft's push semantic model limits (DESIGN §4), per dataset."""

    max_rows_per_request: int = 10_000
    requests_per_minute: int = 120
    requests_per_hour_large: int = 120
    large_table_rows: int = 250_000
    rows_per_hour: int = 1_000_000
    max_pending: int = 5
    max_tables: int = 75
    max_columns: int = 75
    max_relationships: int = 75
    max_string_chars: int = 4_000
    max_rows_retention_none: int = 5_000_000
    max_rows_basic_fifo: int = 200_000


@dataclass
class Faults:
    """Knobs a test turns; each counts down or lasts until an emulated instant."""

    storm_429: int = 0  # next N PostRows answer 429 whatever the budget
    storm_retry_after: int = 1
    errors_5xx: int = 0  # next N Power BI calls answer 5xx
    outage_until: float = -math.inf  # every Power BI call answers 5xx until then
    status_5xx: int = 503
    slow_sec: float = 0.0  # emulated delay before each PostRows is processed
    drop_before: int = 0  # next N PostRows: connection closed, rows not stored
    drop_after: int = 0  # next N PostRows: rows stored, then the connection closed
    deprecate_creation: bool = False  # PostDataset answers FeatureDeprecatedError
    deny: str | None = None  # "tenant_switch" (401) or "not_member" (403)


@dataclass
class Counters:
    received_sizes: list[int] = field(default_factory=list)  # every PostRows body seen
    accepted_requests: int = 0
    accepted_rows: int = 0
    throttled_by_limit: Counter[str] = field(default_factory=Counter)  # 429s Pulse caused
    throttled_by_storm: int = 0
    injected_5xx: int = 0
    dropped: int = 0
    token_expired: int = 0
    rejected_400: int = 0
    max_pending_seen: int = 0
    accepted_at: list[tuple[float, int]] = field(default_factory=list)  # (emulated time, rows)

    @property
    def throttled_by_limits(self) -> int:
        return sum(self.throttled_by_limit.values())


def _pbi_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """Shaped like Power BI's: {"error": {"code", "message", "pbi.error": {...}}}."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "pbi.error": {
                "code": code,
                "parameters": {},
                "details": [{"code": "Message", "detail": {"type": 1, "value": message}}],
                "exceptionCulprit": 1,
            },
        }
    }
    return web.json_response(body, status=status, headers=headers)


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _checker(data_type: str, max_chars: int) -> Callable[[Any], str | None]:
    """value → None when Power BI would store it in a column of `data_type`, else why not."""
    if data_type == "Int64":
        return lambda v: None if type(v) is int and -(2**63) <= v < 2**63 else "not an Int64"
    if data_type == "Double":
        return lambda v: None if type(v) in (int, float) and math.isfinite(v) else "not a Double"
    if data_type == "Boolean":
        return lambda v: None if type(v) is bool else "not a Boolean"
    if data_type == "DateTime":
        return lambda v: (
            None if isinstance(v, str) and _is_datetime(v) else "not an ISO 8601 DateTime"
        )
    return lambda v: (
        ("not a String" if not isinstance(v, str) else f"longer than {max_chars} characters")
        if not isinstance(v, str) or len(v) > max_chars
        else None
    )


@dataclass
class EmulatedTable:
    name: str
    columns: list[dict[str, Any]]
    measures: list[dict[str, Any]]
    keep_rows: bool = True
    rows: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0
    keys: Counter[Any] = field(
        default_factory=Counter
    )  # first column's values, when rows aren't kept
    checkers: dict[str, Callable[[Any], str | None]] = field(default_factory=dict)

    def define(
        self, columns: list[dict[str, Any]], measures: list[dict[str, Any]], max_chars: int
    ) -> None:
        gone = {c["name"] for c in self.columns} - {c["name"] for c in columns}
        self.columns, self.measures = columns, measures
        self.checkers = {c["name"]: _checker(c["dataType"], max_chars) for c in columns}
        if gone:  # PutTable without a column drops its data, as Power BI does
            for row in self.rows:
                for name in gone:
                    row.pop(name, None)

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.count += len(rows)
        if self.keep_rows:
            self.rows.extend(rows)
        else:
            key = self.columns[0]["name"]
            self.keys.update(r.get(key) for r in rows)

    def keep_last(self, limit: int) -> None:
        """basicFIFO retention: the oldest rows go, silently."""
        if self.count > limit:
            del self.rows[: max(0, len(self.rows) - limit)]
            self.count = limit

    def clear(self) -> None:
        self.rows.clear()
        self.keys.clear()
        self.count = 0

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "columns": self.columns}
        if self.measures:
            out["measures"] = self.measures
        return out


@dataclass
class EmulatedDataset:
    id: str
    name: str
    retention: str
    tables: dict[str, EmulatedTable]
    relationships: list[dict[str, Any]]
    accepted: deque[tuple[float, int]] = field(default_factory=deque)  # last hour's PostRows
    pending: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "addRowsAPIEnabled": True,
            "configuredBy": "pulse-service-principal",
            "isRefreshable": False,
            "isEffectiveIdentityRequired": False,
            "isEffectiveIdentityRolesRequired": False,
            "isOnPremGatewayRequired": False,
        }


class PowerBIEmulator(Served):
    """Serves the AAD token flow and Power BI's InGroup push operations on one local port.

    Rejects what Power BI would (bodies checked against the swagger, rows type-checked
    against declared columns, > 10,000 rows, strings > 4,000 chars) and, where Microsoft's
    documentation is silent, is stricter (unknown properties and row columns, column types
    spelled other than DESIGN §4's five). Every DESIGN §4 budget answers 429 + Retry-After;
    those 429s are counted apart from the ones a fault knob injects.
    """

    def __init__(
        self,
        *,
        timebase: Any = None,
        tenant_id: str = "00000000-0000-0000-0000-000000007e57",
        client_id: str = "11111111-2222-3333-4444-555555555555",
        client_secret: str = "emulator-client-secret",
        workspace_id: str = "f089354e-8366-4e18-aea3-4cb4a3a50b48",
        limits: Limits | None = None,
        keep_rows: bool = True,
    ) -> None:
        self.time = timebase or RealTime()
        self.workspace_id = workspace_id
        self.limits = limits or Limits()
        self.keep_rows = keep_rows
        self.aad = TokenIssuer(
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            timebase=self.time,
        )
        self.datasets: dict[str, EmulatedDataset] = {}
        self.faults = Faults()
        self.counters = Counters()
        self.calls: Counter[str] = Counter()

    # --- lifecycle --------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.aad.add_routes(app)
        app.router.add_get(f"{GROUP}/datasets", self._get_datasets)
        app.router.add_post(f"{GROUP}/datasets", self._post_dataset)
        app.router.add_get(f"{GROUP}/datasets/{{datasetId}}/tables", self._get_tables)
        app.router.add_put(f"{GROUP}/datasets/{{datasetId}}/tables/{{tableName}}", self._put_table)
        app.router.add_post(
            f"{GROUP}/datasets/{{datasetId}}/tables/{{tableName}}/rows", self._post_rows
        )
        app.router.add_delete(
            f"{GROUP}/datasets/{{datasetId}}/tables/{{tableName}}/rows", self._delete_rows
        )
        app.router.add_route("*", "/v1.0/myorg/datasets{tail:.*}", self._my_workspace)

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/v1.0/myorg"

    @property
    def tenant_id(self) -> str:
        return self.aad.tenant_id

    @property
    def client_id(self) -> str:
        return self.aad.client_id

    @property
    def client_secret(self) -> str:
        return self.aad.client_secret

    # --- what tests read ----------------------------------------------------------------------

    def dataset(self, dataset_id: str | None = None, *, name: str | None = None) -> EmulatedDataset:
        if dataset_id is not None:
            return self.datasets[dataset_id]
        matches = [d for d in self.datasets.values() if name is None or d.name == name]
        if len(matches) != 1:
            raise LookupError(f"{len(matches)} datasets match {name!r}")
        return matches[0]

    def rows(self, table: str, dataset_id: str | None = None) -> list[dict[str, Any]]:
        return list(self.dataset(dataset_id).tables[table].rows)

    def key_counts(self, table: str, column: str, dataset_id: str | None = None) -> Counter[Any]:
        """How often each value of `column` was stored (raw rows, duplicates included)."""
        stored = self.dataset(dataset_id).tables[table]
        if stored.keep_rows:
            return Counter(r.get(column) for r in stored.rows)
        return Counter(stored.keys)

    def seed_rows(self, table: str, count: int, dataset_id: str | None = None) -> None:
        """Pretend `table` already holds `count` rows (to start in the 250k regime)."""
        self.dataset(dataset_id).tables[table].count += count

    def create_dataset(self, body: dict[str, Any], retention: str = "None") -> EmulatedDataset:
        """Create directly (a dataset made earlier by someone else, e.g. an older Pulse)."""
        problems = self._dataset_problems(body)
        if problems:
            raise ValueError(problems)
        return self._store_dataset(body, retention)

    # --- plumbing -----------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _pbi_error(401, "PowerBINotAuthorizedException", "No bearer token")
        status = self.aad.status(header.removeprefix("Bearer "))
        if status == "expired":
            self.counters.token_expired += 1
            return _pbi_error(
                403, "TokenExpired", "Access token has expired, resubmit with a new access token"
            )
        if status != "valid":
            return _pbi_error(403, "PowerBINotAuthorizedException", "Invalid access token")
        if self.faults.deny == "tenant_switch":
            return _pbi_error(
                401,
                "ServicePrincipalIsNotAllowedByTenantAdminSwitch",
                "Service principals are not allowed to use Fabric APIs in this tenant",
            )
        if request.match_info.get("groupId") != self.workspace_id:
            return _pbi_error(404, "PowerBIEntityNotFound", "Workspace not found")
        if self.faults.deny == "not_member":
            return _pbi_error(403, "PowerBINotAuthorizedException", "Not a member of the workspace")
        return None

    def _outage(self) -> web.Response | None:
        if self.faults.errors_5xx > 0 or self.time.monotonic() < self.faults.outage_until:
            self.faults.errors_5xx = max(0, self.faults.errors_5xx - 1)
            self.counters.injected_5xx += 1
            status = self.faults.status_5xx
            return _pbi_error(
                status, "ServiceUnavailable", "The service is temporarily unavailable"
            )
        return None

    def _bad_request(self, message: str, code: str = "InvalidRequest") -> web.Response:
        self.counters.rejected_400 += 1
        return _pbi_error(400, code, message)

    async def _json(self, request: web.Request) -> tuple[Any, web.Response | None]:
        try:
            return await request.json(), None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None, self._bad_request("The request body is not valid JSON")

    def _find(self, request: web.Request) -> tuple[EmulatedDataset | None, web.Response | None]:
        dataset = self.datasets.get(request.match_info["datasetId"])
        if dataset is None:
            return None, _pbi_error(404, "ItemNotFound", "Dataset not found")
        return dataset, None

    # --- dataset definitions ------------------------------------------------------------------

    def _table_problems(self, table: Any, where: str) -> list[str]:
        problems: list[str] = []
        if not isinstance(table, dict):
            return problems
        columns = table.get("columns") or []
        if isinstance(columns, list):
            if len(columns) > self.limits.max_columns:
                problems.append(
                    f"{where}: {len(columns)} columns (at most {self.limits.max_columns})"
                )
            names = [c.get("name") for c in columns if isinstance(c, dict)]
            if len(names) != len(set(names)):
                problems.append(f"{where}: duplicate column names")
            for i, column in enumerate(columns):
                if isinstance(column, dict) and "dataType" in column:
                    if column["dataType"] not in COLUMN_TYPES:
                        problems.append(
                            f"{where}.columns[{i}].dataType: {column['dataType']!r} is not one of {COLUMN_TYPES}"
                        )
        measures = table.get("measures") or []
        names = [m.get("name") for m in measures if isinstance(m, dict)]
        if len(names) != len(set(names)):
            problems.append(f"{where}: duplicate measure names")
        return problems

    def _dataset_problems(self, body: Any) -> list[str]:
        problems = swagger.validate(body, "CreateDatasetRequest")
        if problems or not isinstance(body, dict):
            return problems
        tables = body["tables"]
        if len(tables) > self.limits.max_tables:
            problems.append(f"{len(tables)} tables (at most {self.limits.max_tables})")
        names = [t["name"] for t in tables]
        if len(names) != len(set(names)):
            problems.append("duplicate table names")
        for i, table in enumerate(tables):
            problems += self._table_problems(table, f"tables[{i}]")
        relationships = body.get("relationships", [])
        if len(relationships) > self.limits.max_relationships:
            problems.append(
                f"{len(relationships)} relationships (at most {self.limits.max_relationships})"
            )
        columns = {(t["name"], c["name"]) for t in tables for c in t["columns"]}
        for i, rel in enumerate(relationships):
            for side in ("from", "to"):
                ref = (rel[f"{side}Table"], rel[f"{side}Column"])
                if ref not in columns:
                    problems.append(
                        f"relationships[{i}]: {side} column {ref[0]}[{ref[1]}] does not exist"
                    )
        return problems

    def _store_dataset(self, body: dict[str, Any], retention: str) -> EmulatedDataset:
        dataset = EmulatedDataset(
            id=str(uuid.uuid4()),
            name=body["name"],
            retention=retention,
            tables={},
            relationships=list(body.get("relationships", [])),
        )
        for table in body["tables"]:
            stored = EmulatedTable(table["name"], [], [], keep_rows=self.keep_rows)
            stored.define(table["columns"], table.get("measures", []), self.limits.max_string_chars)
            dataset.tables[table["name"]] = stored
        self.datasets[dataset.id] = dataset
        return dataset

    # --- handlers -----------------------------------------------------------------------------

    async def _my_workspace(self, request: web.Request) -> web.Response:
        # A service principal cannot use "My workspace" (DESIGN §4).
        self.calls["my_workspace"] += 1
        return web.json_response({"Message": "API is not accessible for application"}, status=403)

    async def _get_datasets(self, request: web.Request) -> web.Response:
        self.calls["GetDatasetsInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        return web.json_response(
            {
                "@odata.context": f"{self.api_base_url}/groups/{self.workspace_id}/$metadata#datasets",
                "value": [d.summary() for d in self.datasets.values()],
            }
        )

    async def _post_dataset(self, request: web.Request) -> web.Response:
        self.calls["PostDatasetInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        retention = request.query.get("defaultRetentionPolicy", "None")
        if retention not in _RETENTION:
            return self._bad_request(
                f"defaultRetentionPolicy {retention!r} is not one of {_RETENTION}"
            )
        if self.faults.deprecate_creation:
            return _pbi_error(
                403,
                "FeatureDeprecatedError",
                "Creation of push semantic models is deprecated. We recommend exploring "
                "Real-Time Intelligence in Microsoft Fabric.",
            )
        body, bad = await self._json(request)
        if bad:
            return bad
        problems = self._dataset_problems(body)
        if problems:
            return self._bad_request("; ".join(problems))
        dataset = self._store_dataset(body, retention)
        return web.json_response(
            {"id": dataset.id, "name": dataset.name, "defaultRetentionPolicy": retention},
            status=201,
        )

    async def _get_tables(self, request: web.Request) -> web.Response:
        self.calls["GetTablesInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        dataset, missing = self._find(request)
        if missing or dataset is None:
            return missing or web.Response(status=500)
        return web.json_response({"value": [t.body() for t in dataset.tables.values()]})

    async def _put_table(self, request: web.Request) -> web.Response:
        self.calls["PutTableInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        dataset, missing = self._find(request)
        if missing or dataset is None:
            return missing or web.Response(status=500)
        body, bad = await self._json(request)
        if bad:
            return bad
        name = request.match_info["tableName"]
        problems = swagger.validate(body, "Table") + self._table_problems(body, "table")
        if not problems and body["name"] != name:
            problems.append(f"table name {body['name']!r} differs from {name!r} in the URL")
        if (
            not problems
            and name not in dataset.tables
            and len(dataset.tables) >= self.limits.max_tables
        ):
            problems.append(f"the dataset already has {self.limits.max_tables} tables")
        if problems:
            return self._bad_request("; ".join(problems))
        table = dataset.tables.setdefault(
            name, EmulatedTable(name, [], [], keep_rows=self.keep_rows)
        )
        table.define(body["columns"], body.get("measures", []), self.limits.max_string_chars)
        return web.json_response({"name": name})

    async def _delete_rows(self, request: web.Request) -> web.Response:
        self.calls["DeleteRowsInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        dataset, missing = self._find(request)
        if missing or dataset is None:
            return missing or web.Response(status=500)
        table = dataset.tables.get(request.match_info["tableName"])
        if table is None:
            return _pbi_error(404, "ItemNotFound", "Table not found")
        table.clear()
        return web.Response(status=200)

    async def _post_rows(self, request: web.Request) -> web.StreamResponse:
        self.calls["PostRowsInGroup"] += 1
        refusal = self._auth(request) or self._outage()
        if refusal:
            return refusal
        dataset, missing = self._find(request)
        if missing or dataset is None:
            return missing or web.Response(status=500)
        table = dataset.tables.get(request.match_info["tableName"])
        if table is None:
            return _pbi_error(404, "ItemNotFound", "Table not found")
        faults = self.faults
        if faults.drop_before > 0:
            faults.drop_before -= 1
            self.counters.dropped += 1
            return self._drop(request)
        if faults.storm_429 > 0:
            faults.storm_429 -= 1
            self.counters.throttled_by_storm += 1
            return _pbi_error(
                429,
                "TooManyRequests",
                "Rate limit exceeded",
                **{"Retry-After": str(faults.storm_retry_after)},
            )
        if dataset.pending >= self.limits.max_pending:
            return self._throttle("pending", 1)
        dataset.pending += 1
        self.counters.max_pending_seen = max(self.counters.max_pending_seen, dataset.pending)
        try:
            if faults.slow_sec > 0:
                await self.time.sleep(faults.slow_sec)
            body, bad = await self._json(request)
            if bad:
                return bad
            if isinstance(body, dict) and isinstance(body.get("rows"), list):
                self.counters.received_sizes.append(len(body["rows"]))
            problems = swagger.validate(body, "PostRowsRequest")
            if not problems and "rows" not in body:
                problems.append("PostRowsRequest.rows: required")
            if problems:
                return self._bad_request("; ".join(problems))
            rows: list[Any] = body["rows"]
            if len(rows) > self.limits.max_rows_per_request:
                return self._bad_request(
                    f"{len(rows)} rows in one request; the limit is {self.limits.max_rows_per_request}",
                    "TooManyRowsInRequest",
                )
            problem = self._row_problem(table, rows)
            if problem:
                return self._bad_request(problem)
            throttled = self._budget_refusal(dataset, len(rows))
            if throttled:
                return throttled
            if (
                dataset.retention == "None"
                and table.count + len(rows) > self.limits.max_rows_retention_none
            ):
                return self._bad_request(
                    f"table {table.name} would exceed {self.limits.max_rows_retention_none} rows"
                )
            now = self.time.monotonic()
            table.add(rows)
            if dataset.retention == "basicFIFO":
                table.keep_last(self.limits.max_rows_basic_fifo)
            dataset.accepted.append((now, len(rows)))
            self.counters.accepted_requests += 1
            self.counters.accepted_rows += len(rows)
            self.counters.accepted_at.append((now, len(rows)))
        finally:
            dataset.pending -= 1
        if faults.drop_after > 0:
            faults.drop_after -= 1
            self.counters.dropped += 1
            return self._drop(request)
        return web.Response(status=200)

    def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=200)  # never reaches the client

    def _row_problem(self, table: EmulatedTable, rows: list[Any]) -> str | None:
        checkers = table.checkers
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                return f"rows[{i}]: expected an object"
            for name, value in row.items():
                check = checkers.get(name)
                if check is None:
                    return f"rows[{i}]: table {table.name} has no column {name!r}"
                if value is not None:
                    why = check(value)
                    if why:
                        return f"rows[{i}].{name}: {value!r:.60} is {why}"
        return None

    def _throttle(self, limit: str, retry_after: float) -> web.Response:
        self.counters.throttled_by_limit[limit] += 1
        return _pbi_error(
            429,
            "TooManyRequests",
            f"Rate limit exceeded ({limit})",
            **{"Retry-After": str(max(1, math.ceil(retry_after)))},
        )

    def _budget_refusal(self, dataset: EmulatedDataset, rows: int) -> web.Response | None:
        """Sliding windows: a request accepted at t counts in (t, t + window]."""
        now = self.time.monotonic()
        accepted = dataset.accepted
        while accepted and accepted[0][0] <= now - 3_600:
            accepted.popleft()
        limits = self.limits
        last_minute = [t for t, _ in accepted if t > now - 60]
        if len(last_minute) >= limits.requests_per_minute:
            return self._throttle("per_minute", last_minute[0] + 60 - now)
        large = any(t.count >= limits.large_table_rows for t in dataset.tables.values())
        if large and len(accepted) >= limits.requests_per_hour_large:
            return self._throttle("per_hour_large", accepted[0][0] + 3_600 - now)
        in_hour = sum(n for _, n in accepted)
        if in_hour + rows > limits.rows_per_hour:
            excess, freed = in_hour + rows - limits.rows_per_hour, 0
            for t, n in accepted:
                freed += n
                if freed >= excess:
                    return self._throttle("rows_per_hour", t + 3_600 - now)
        return None
