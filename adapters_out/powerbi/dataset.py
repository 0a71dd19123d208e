"""`pulse dataset ensure|show`: create the push dataset once, compare it with the code, fix what is safe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from pulse.adapters_out.entra.tokens import TokenProvider
from pulse.adapters_out.powerbi.client import PowerBIClient
from pulse.adapters_out.powerbi.config import PowerBIConfig
from pulse.adapters_out.powerbi.errors import PowerBIAccessDenied
from pulse.adapters_out.powerbi.schema import (
    MEASURE_TABLE,
    MEASURES,
    RELATIONSHIPS,
    dataset_body,
    table_body,
)
from pulse.core.schema import TABLES

_TYPE_ALIASES = {"bool": "boolean", "int": "int64", "string": "string"}


def _type(name: str) -> str:
    lowered = name.lower()
    return _TYPE_ALIASES.get(lowered, lowered)


async def find_dataset(client: PowerBIClient, name: str) -> dict[str, Any] | None:
    """The workspace's dataset called `name`; None when absent; an error when ambiguous."""
    matches = [d for d in await client.list_datasets() if d.get("name") == name]
    if len(matches) > 1:
        ids = ", ".join(str(d.get("id")) for d in matches)
        raise PowerBIAccessDenied(
            f"workspace {client.workspace_id} holds {len(matches)} datasets named {name!r} "
            f"({ids}): set POWERBI__DATASET_ID to the one Pulse should use.",
            status=409,
            code="AmbiguousDatasetName",
        )
    return matches[0] if matches else None


async def resolve_dataset_id(client: PowerBIClient, dataset_id: str | None, name: str) -> str:
    if dataset_id:
        return dataset_id
    found = await find_dataset(client, name)
    if found is None:
        raise PowerBIAccessDenied(
            f"no dataset named {name!r} in workspace {client.workspace_id}: run "
            "`pulse dataset ensure`, then set POWERBI__DATASET_ID to the id it prints.",
            status=404,
            code="DatasetNotFound",
        )
    return str(found["id"])


@dataclass(frozen=True, slots=True)
class TablePlan:
    """How one remote table differs from the definition, and the safe PutTable body if any."""

    name: str
    changes: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    put_body: dict[str, Any] | None = None


def plan_table(wanted: dict[str, Any], remote: dict[str, Any] | None) -> TablePlan:
    """Merge rather than overwrite: columns and measures Power BI has but the code does not
    are kept (PutTable without them would drop their data); a type conflict is reported and
    left as Power BI has it, because changing a type needs the table rebuilt."""
    name = str(wanted["name"])
    if remote is None:
        return TablePlan(name, (f"add table {name}",), (), wanted)
    if "columns" not in remote:
        return TablePlan(
            name, (), (f"{name}: Power BI listed no columns; not compared, left untouched",)
        )
    columns = _merge_columns(name, wanted["columns"], remote.get("columns", []))
    measures = _merge_measures(name, wanted.get("measures", []), remote.get("measures", []) or [])
    changes = (*columns.changes, *measures.changes)
    drift = (*columns.drift, *measures.drift)
    if not changes:
        return TablePlan(name, (), drift)
    body: dict[str, Any] = {"name": name, "columns": columns.merged}
    if measures.merged:
        body["measures"] = measures.merged
    return TablePlan(name, changes, drift, body)


@dataclass(slots=True)
class _Merge:
    """Columns or measures for PutTable (the code's, with what only Power BI has kept), what
    that changes, and the differences left as they are."""

    merged: list[dict[str, Any]] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def _merge_columns(
    table: str, wanted: list[dict[str, Any]], remote: list[dict[str, Any]]
) -> _Merge:
    merge = _Merge()
    remote_by_name = {str(c["name"]): c for c in remote}
    for column in wanted:
        have = remote_by_name.get(column["name"])
        if have is None:
            merge.changes.append(f"{table}: add column {column['name']} ({column['dataType']})")
            merge.merged.append(column)
        elif _type(str(have.get("dataType", ""))) != _type(column["dataType"]):
            merge.drift.append(
                f"{table}[{column['name']}] is {have.get('dataType')} in Power BI, the code says "
                f"{column['dataType']}: left as is (changing a column type needs the table rebuilt)"
            )
            merge.merged.append({**column, "dataType": have.get("dataType")})
        else:
            merge.merged.append(column)
    wanted_names = {str(c["name"]) for c in wanted}
    for extra, column in remote_by_name.items():
        if extra not in wanted_names:
            merge.drift.append(f"{table}[{extra}] is not in the code: kept, with its data")
            merge.merged.append({"name": extra, "dataType": column.get("dataType")})
    return merge


def _merge_measures(
    table: str, wanted: list[dict[str, Any]], remote: list[dict[str, Any]]
) -> _Merge:
    merge = _Merge()
    remote_by_name = {str(m["name"]): m for m in remote}
    for measure in wanted:
        have = remote_by_name.get(measure["name"])
        if have is None:
            merge.changes.append(f"{table}: add measure [{measure['name']}]")
        elif _measure_differs(have, measure):
            merge.changes.append(f"{table}: update measure [{measure['name']}]")
        merge.merged.append(measure)
    wanted_names = {m["name"] for m in wanted}
    for extra, measure in remote_by_name.items():
        if extra not in wanted_names:
            merge.drift.append(f"{table}: measure [{extra}] is not in the code: kept")
            merge.merged.append(measure)
    return merge


def _measure_differs(have: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return _norm(have.get("expression")) != _norm(wanted["expression"]) or have.get(
        "formatString"
    ) != wanted.get("formatString")


def _norm(expression: Any) -> str:
    return " ".join(str(expression or "").split())


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """What `ensure` did or `show` found, printable line by line."""

    dataset_id: str
    dataset_name: str
    workspace_id: str
    created: bool = False
    found_by_name: bool = False
    applied: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()  # show: what ensure would change
    drift: tuple[str, ...] = ()  # reported, not fixed
    tables: tuple[str, ...] = ()  # show: what Power BI has
    notes: tuple[str, ...] = field(default=())

    def lines(self) -> list[str]:
        verb = "created" if self.created else "found"
        out = [
            f"dataset {self.dataset_name!r} {verb}: {self.dataset_id} (workspace {self.workspace_id})"
        ]
        if self.created or self.found_by_name:
            out.append(f"  put this in your settings: POWERBI__DATASET_ID={self.dataset_id}")
        out += [f"  table {t}" for t in self.tables]
        out += [f"  applied: {c}" for c in self.applied]
        out += [f"  would apply: {c}" for c in self.pending]
        out += [f"  drift: {d}" for d in self.drift]
        out += [f"  note: {n}" for n in self.notes]
        if not (self.applied or self.pending or self.drift or self.created):
            out.append("  schema matches the code")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


_RELATIONSHIP_NOTE = (
    f"{len(RELATIONSHIPS)} relationships are set when the dataset is created; the push API "
    "can neither list nor add them, so an existing dataset's are not verified"
)


async def _compare(
    client: PowerBIClient, dataset_id: str
) -> tuple[list[TablePlan], list[str], list[dict[str, Any]]]:
    remote_tables = await client.get_tables(dataset_id)
    by_name = {str(t.get("name")): t for t in remote_tables}
    plans = [plan_table(table_body(t), by_name.get(t.name)) for t in TABLES]
    wanted = {t.name for t in TABLES}
    drift = [f"table {n} is not in the code: left untouched" for n in by_name if n not in wanted]
    for relationship in RELATIONSHIPS:
        missing = [t for t in (relationship.from_table, relationship.to_table) if t not in by_name]
        if missing:
            drift.append(
                f"relationship {relationship} cannot be added to an existing push dataset "
                "(the API sets relationships only at creation): add it in the model, or "
                "recreate the dataset and re-push its rows"
            )
    return plans, drift, remote_tables


async def ensure(
    client: PowerBIClient, *, dataset_id: str | None, dataset_name: str
) -> DatasetReport:
    """Create the dataset (retention None) when absent, then bring tables, columns and
    measures in line with the code through PutTable. Never drops a column, measure or table."""
    found_by_name = False
    if dataset_id:
        ids = {str(d.get("id")) for d in await client.list_datasets()}
        if dataset_id not in ids:
            raise PowerBIAccessDenied(
                f"POWERBI__DATASET_ID={dataset_id} is not a dataset of workspace "
                f"{client.workspace_id} (or the service principal cannot see it): fix the id, "
                "or unset it to let `pulse dataset ensure` find or create "
                f"{dataset_name!r}.",
                status=404,
                code="DatasetNotFound",
            )
    else:
        found = await find_dataset(client, dataset_name)
        if found is None:
            created = await client.post_dataset(dataset_body(dataset_name), retention="None")
            return DatasetReport(
                str(created["id"]),
                dataset_name,
                client.workspace_id,
                created=True,
                applied=(
                    f"created with {len(TABLES)} tables, {len(MEASURES)} measures on "
                    f"{MEASURE_TABLE}, {len(RELATIONSHIPS)} relationships, retention None",
                ),
            )
        dataset_id, found_by_name = str(found["id"]), True

    plans, drift, _ = await _compare(client, dataset_id)
    applied: list[str] = []
    for plan in plans:
        drift.extend(plan.drift)
        if plan.put_body is not None:
            await client.put_table(dataset_id, plan.put_body)
            applied.extend(plan.changes)
    return DatasetReport(
        dataset_id,
        dataset_name,
        client.workspace_id,
        found_by_name=found_by_name,
        applied=tuple(applied),
        drift=tuple(drift),
        notes=(_RELATIONSHIP_NOTE,),
    )


async def show(
    client: PowerBIClient, *, dataset_id: str | None, dataset_name: str
) -> DatasetReport:
    """What Power BI has, and what `ensure` would change (nothing is written)."""
    resolved = await resolve_dataset_id(client, dataset_id, dataset_name)
    plans, drift, remote_tables = await _compare(client, resolved)
    tables = []
    for table in remote_tables:
        columns = ", ".join(
            f"{c.get('name')}:{c.get('dataType')}" for c in table.get("columns", []) or []
        )
        measures = ", ".join(f"[{m.get('name')}]" for m in table.get("measures", []) or [])
        tables.append(
            f"{table.get('name')}({columns})" + (f" measures {measures}" if measures else "")
        )
    return DatasetReport(
        resolved,
        dataset_name,
        client.workspace_id,
        found_by_name=dataset_id is None,
        pending=tuple(c for p in plans for c in p.changes),
        drift=tuple(drift) + tuple(d for p in plans for d in p.drift),
        tables=tuple(tables),
        notes=(_RELATIONSHIP_NOTE,),
    )


# --- for the CLI: a client on the configured workspace, run, close ----------------------------

T = TypeVar("T")


async def _with_client(
    config: PowerBIConfig,
    tokens: TokenProvider,
    run: Callable[[PowerBIClient], Awaitable[T]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> T:
    client = PowerBIClient.from_config(config, tokens, transport=transport)
    try:
        return await run(client)
    finally:
        await client.aclose()


async def ensure_dataset(
    config: PowerBIConfig, tokens: TokenProvider, **kwargs: Any
) -> DatasetReport:
    """`pulse dataset ensure`: print `str(report)`; exit non-zero on a raised PulseError."""
    return await _with_client(
        config,
        tokens,
        lambda c: ensure(c, dataset_id=config.dataset_id, dataset_name=config.dataset_name),
        **kwargs,
    )


async def show_dataset(
    config: PowerBIConfig, tokens: TokenProvider, **kwargs: Any
) -> DatasetReport:
    """`pulse dataset show`: print `str(report)`."""
    return await _with_client(
        config,
        tokens,
        lambda c: show(c, dataset_id=config.dataset_id, dataset_name=config.dataset_name),
        **kwargs,
    )


class PowerBIDatasetTool:
    """`pulse dataset ensure|show` with SINK=powerbi: each returns the report as printable text;
    Power BI's refusals raise typed errors (PulseError) whose message is one sentence."""

    def __init__(self, config: PowerBIConfig, tokens: TokenProvider) -> None:
        self._config = config
        self._tokens = tokens

    async def ensure(self) -> str:
        return str(await ensure_dataset(self._config, self._tokens))

    async def show(self) -> str:
        return str(await show_dataset(self._config, self._tokens))
