"""The inbox's flush writes a batch in a few multi-row statements: every row, in order, once."""

from __future__ import annotations

import sqlite3

import pytest

from pulse.adapters_out.sqlite.inbox import SCHEMA, insert_rows


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 63, 64, 65, 127, 200, 1000])
def test_every_row_is_inserted_once_in_order(count: int) -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    rows = [
        (f"r{i}", "aloware", "2025-11-05T17:22:28+00:00", "{}", bytes([i % 256]) * i, i, i)
        for i in range(count)
    ]
    statements = []
    conn.set_trace_callback(statements.append)
    insert_rows(conn, rows)
    conn.set_trace_callback(None)
    stored = conn.execute(
        "SELECT request_id, source, received_at, headers, body, enqueued_at, visible_at"
        " FROM inbox ORDER BY id"
    ).fetchall()
    assert stored == rows
    # 64 rows a statement, then one statement per set bit of the rest: never one per row.
    inserts = [s for s in statements if s.startswith("INSERT")]
    assert len(inserts) == count // 64 + bin(count % 64).count("1")
