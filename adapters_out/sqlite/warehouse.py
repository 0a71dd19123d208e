"""The local star schema: the embedded sink, with the dashboard's daily arithmetic as a view."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pulse.adapters_out.sqlite.db import Database, run_script
from pulse.core.errors import SinkPermanentError, SinkTransientError
from pulse.core.model import DimRow, FactEvent, Row
from pulse.core.schema import BY_NAME, REFERENCES, TABLES, ColumnType, Orphan, Table

SQL_TYPES = {
    ColumnType.INT64: "INTEGER",
    ColumnType.DOUBLE: "REAL",
    ColumnType.BOOLEAN: "INTEGER",  # 0/1
    ColumnType.DATETIME: "TEXT",  # ISO-8601
    ColumnType.STRING: "TEXT",
}

# The Power BI measures of DESIGN §3 (Activities = DISTINCTCOUNT(EventKey), Goal, Attainment,
# Status) per date, agent and metric, so `pulse report` shows what a dashboard would. An agent
# has a goal on the workdays they were on the roster (ActiveFrom … ActiveTo; no ActiveTo: while
# Active), so a past day's numbers stay put when someone leaves: their own goal for the month
# (a DimMetric row with their AgentKey) or else the month's.
DAILY_METRIC_VIEW = """
DROP VIEW IF EXISTS fact_daily_metric;
CREATE VIEW fact_daily_metric AS
WITH counts AS (
    SELECT DateKey, AgentKey, MetricID, COUNT(DISTINCT EventKey) AS Count
    FROM FactEvent
    GROUP BY DateKey, AgentKey, MetricID
),
grid AS (
    SELECT d.DateKey, d.Date, a.AgentKey, a.AgentName, a.RingGroupId, m.MetricID,
           COALESCE(c.Count, 0) AS Count,
           (a.ActiveFrom IS NULL OR substr(a.ActiveFrom, 1, 10) <= d.Date)
           AND CASE WHEN a.ActiveTo IS NULL THEN a.Active
                    ELSE d.Date <= substr(a.ActiveTo, 1, 10) END AS OnRoster,
           d.IsWorkday, COALESCE(o.DefaultGoal, m.DefaultGoal) AS AgentGoal, m.YellowFloorPct
    FROM DimDate AS d
    JOIN DimMetric AS m
        ON m.Month = printf('%04d-%02d', d.Year, d.Month) AND COALESCE(m.AgentKey, '') = ''
    CROSS JOIN DimAgent AS a
    LEFT JOIN DimMetric AS o ON o.MetricMonthKey = m.MetricMonthKey || ':' || a.AgentKey
    LEFT JOIN counts AS c
        ON c.DateKey = d.DateKey AND c.AgentKey = a.AgentKey AND c.MetricID = m.MetricID
),
graded AS (
    SELECT *, CASE WHEN IsWorkday AND OnRoster THEN AgentGoal ELSE 0.0 END AS Goal
    FROM grid
    WHERE OnRoster OR Count > 0
)
SELECT DateKey, Date, AgentKey, AgentName, RingGroupId, MetricID, Count, Goal,
       CASE WHEN Goal > 0 THEN CAST(Count AS REAL) / Goal END AS Attainment,
       CASE
           WHEN Goal <= 0 THEN NULL
           WHEN CAST(Count AS REAL) / Goal >= 1 THEN 'Green'
           WHEN CAST(Count AS REAL) / Goal >= YellowFloorPct THEN 'Yellow'
           ELSE 'Red'
       END AS Status,
       YellowFloorPct
FROM graded;
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create_table(table: Table) -> str:
    columns = [
        f"{_quote(c.name)} {SQL_TYPES[c.type]}"
        + (" PRIMARY KEY" if c.name == table.key else "")
        + ("" if c.nullable else " NOT NULL")
        for c in table.columns
    ]
    return f"CREATE TABLE IF NOT EXISTS {_quote(table.name)} ({', '.join(columns)})"


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _values(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(_sql_value(getattr(row, name)) for name in table.column_names)


def _insert(table: Table, verb: str = "INSERT", tail: str = "") -> str:
    names = ", ".join(_quote(n) for n in table.column_names)
    marks = ", ".join("?" for _ in table.columns)
    return f"{verb} INTO {_quote(table.name)} ({names}) VALUES ({marks}){tail}"


def _insert_new(table: Table) -> str:
    return _insert(table, tail=f" ON CONFLICT ({_quote(table.key)}) DO NOTHING")


def _insert_or_replace(table: Table) -> str:
    return _insert(table, verb="INSERT OR REPLACE")


def _table_named(name: str) -> Table:
    table = BY_NAME.get(name)
    if table is None:
        raise ValueError(f"unknown table {name!r} (one of {', '.join(BY_NAME)})")
    return table


def _table_of(row: Row) -> Table:
    for table in TABLES:
        if isinstance(row, table.row_type):
            return table
    raise ValueError(f"not a star-schema row: {type(row).__name__}")


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SqliteWarehouse:
    """Sink port over a local SQLite star schema, plus the readers `pulse report` and tests use."""

    def __init__(self, path: Path) -> None:
        self.db = Database(path)
        self.db.submit(self._ensure_schema).result()

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        with self.db.transaction(conn):
            for table in TABLES:
                conn.execute(_create_table(table))
                # A column added to the schema since the file was made: add it, never drop data.
                present = {r[1] for r in conn.execute(f"PRAGMA table_info({_quote(table.name)})")}
                for column in table.columns:
                    if column.name not in present:
                        conn.execute(
                            f"ALTER TABLE {_quote(table.name)} ADD COLUMN"
                            f" {_quote(column.name)} {SQL_TYPES[column.type]}"
                        )
        run_script(conn, DAILY_METRIC_VIEW)  # views hold no data: always the current arithmetic

    # --- Sink port ----------------------------------------------------------------------------

    async def append(self, facts: Sequence[FactEvent]) -> None:
        # A repeated EventKey changes nothing; unlike OR IGNORE, a NOT NULL violation still fails.
        await self._write_grouped(facts, _insert_new)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        await self._write_grouped(rows, _insert_or_replace)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        target = _table_named(table)
        for row in rows:
            if not isinstance(row, target.row_type):
                raise ValueError(f"replace {table}: got a {type(row).__name__} row")
        values = [_values(target, row) for row in rows]

        def rewrite(conn: sqlite3.Connection) -> None:
            with self.db.transaction(conn):
                conn.execute(f"DELETE FROM {_quote(target.name)}")
                conn.executemany(_insert_or_replace(target), values)

        await self._write(rewrite)

    async def _write_grouped(self, rows: Sequence[Row], statement: Callable[[Table], str]) -> None:
        by_table: dict[str, tuple[Table, list[tuple[Any, ...]]]] = {}
        for row in rows:
            table = _table_of(row)
            by_table.setdefault(table.name, (table, []))[1].append(_values(table, row))
        if not by_table:
            return

        def write(conn: sqlite3.Connection) -> None:
            with self.db.transaction(conn):
                for table, values in by_table.values():
                    conn.executemany(statement(table), values)

        await self._write(write)

    async def _write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        """Run a write, speaking the port's errors: core releases its claims on either."""
        try:
            await self.db.run(fn)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full, I/O
            raise SinkTransientError(f"local warehouse {self.db.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # a constraint or type the schema rejects
            raise SinkPermanentError(f"local warehouse {self.db.path}: {exc}") from exc

    async def ping(self) -> None:
        await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def drain(self, budget_sec: float) -> None:
        """Every write is synchronous: nothing is buffered."""

    async def close(self) -> None:
        await self.db.close()

    # --- readers ------------------------------------------------------------------------------

    async def daily_metrics(
        self, date_key: int, agent: str | None = None, team: str | None = None
    ) -> list[dict[str, Any]]:
        """The `fact_daily_metric` rows of one business date, by AgentName then MetricID; of
        one agent, or of one ring group (`team`), when given."""
        query = "SELECT * FROM fact_daily_metric WHERE DateKey = ?"
        params: list[Any] = [date_key]
        if agent is not None:
            query += " AND AgentKey = ?"
            params.append(agent)
        if team is not None:
            query += " AND RingGroupId = ?"
            params.append(team)
        query += " ORDER BY AgentName, MetricID"
        return await self.db.run(lambda conn: _dicts(conn.execute(query, params)))

    async def orphans(self) -> list[Orphan]:
        """Keys facts carry that their dimension has no row for (`pulse check --integrity`)."""

        def find(conn: sqlite3.Connection) -> list[Orphan]:
            found = []
            for dim in REFERENCES:
                key, name = _quote(dim.key), _quote(dim.name)
                query = (
                    f"SELECT f.{key}, COUNT(*) FROM FactEvent AS f WHERE NOT EXISTS"
                    f" (SELECT 1 FROM {name} AS d WHERE d.{key} = f.{key})"
                    f" GROUP BY f.{key} ORDER BY f.{key}"
                )
                found += [Orphan(dim.name, dim.key, str(k), n) for k, n in conn.execute(query)]
            return found

        return await self.db.run(find)

    async def count(self, table: str) -> int:
        name = _quote(_table_named(table).name)
        (n,) = await self.db.run(
            lambda conn: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()
        )
        return int(n)

    async def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row as stored: DateTime as ISO-8601 text, Boolean as 0/1."""
        target = _table_named(table)
        query = f"SELECT * FROM {_quote(target.name)} ORDER BY {_quote(target.key)}"
        return await self.db.run(lambda conn: _dicts(conn.execute(query)))
