"""The edge's per-request line, written without a log record, reads exactly as the record
`log.info("request", extra={"fields": …})` would through the JSON formatter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from pulse.bootstrap import logs


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> logs.BufferedJsonHandler:
    handler = logs.BufferedJsonHandler(io.StringIO(), flush_sec=3600)
    monkeypatch.setattr(logs, "_handler", handler)
    yield handler
    handler.close()


def test_the_line_is_the_record_s(
    handler: logs.BufferedJsonHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs.time, "time", lambda: 1764606366.1234)
    write = logs.access_lines()
    assert write is not None
    path = '/webhooks/alo"ware\\ é'  # what a JSON string must escape
    logger = logging.getLogger("pulse.http")
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        write("rid-1", "POST", path, 202, 1.5)
    finally:
        logger.setLevel(level)
    record = logging.LogRecord("pulse.http", logging.INFO, __file__, 1, "request", None, None)
    record.created = 1764606366.1234
    record.fields = {
        "request_id": "rid-1",
        "method": "POST",
        "path": path,
        "status": 202,
        "ms": 1.5,
    }
    handler.flush()
    written = handler.stream.getvalue().splitlines()
    assert written == [logs.JsonFormatter().format(record)]
    assert json.loads(written[0])["path"] == path


def test_nothing_is_written_while_the_logger_is_above_info(
    handler: logs.BufferedJsonHandler,
) -> None:
    write = logs.access_lines()
    assert write is not None
    logger = logging.getLogger("pulse.http")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        write("rid-2", "POST", "/webhooks/aloware", 202, 1.0)
    finally:
        logger.setLevel(level)
    handler.flush()
    assert handler.stream.getvalue() == ""
