"""JSON-lines logging: one object per line, structured fields from `extra={"fields": {...}}`.

A log call on the event loop only builds a record and appends it to a buffer; a writer thread
formats the buffered records as JSON and writes them in one `write` every `FLUSH_SEC`, so the
per-request line costs the loop neither a `json.dumps` nor a blocking write to stderr. Records
still buffered are written at exit and when logging is set up again.
"""

from __future__ import annotations

import atexit
import collections
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TextIO

FLUSH_SEC = 0.05
FORMAT_CHUNK = 32  # lines formatted between two chances for the loop's thread to run


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # a second and its "YYYY-MM-DDTHH:MM:SS", UTC

    def timestamp(self, created: float) -> str:
        """ISO 8601 to the millisecond, UTC: a busy second's lines share one date formatting."""
        second = int(created)
        micro = round((created - second) * 1_000_000)  # as `datetime.fromtimestamp` rounds
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached, prefix = self._second
        if second != cached:
            prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, prefix)  # one assignment: safe from two threads
        return f"{prefix}.{micro // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": self.timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        return json.dumps(line, default=str)


class BufferedJsonHandler(logging.Handler):
    """Appends records to a buffer (no lock, no wake-up); a daemon thread formats and writes."""

    def __init__(self, stream: TextIO, flush_sec: float = FLUSH_SEC) -> None:
        super().__init__()
        self.stream = stream
        self.flush_sec = flush_sec
        self.formatter: logging.Formatter = JsonFormatter()
        self._records: collections.deque[logging.LogRecord | str] = collections.deque()
        self._stop = threading.Event()
        self._write_lock = threading.Lock()  # the writer thread vs a flush at close
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        # Settle now what could change or pin memory later: arguments may be mutated after the
        # call, and a traceback keeps every frame alive.
        if record.args:
            record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = self.formatter.formatException(record.exc_info)
            record.exc_info = None
        self._records.append(record)

    def append_line(self, line: str) -> None:
        """A line already formatted (`access_lines`), written with the next batch."""
        self._records.append(line)

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: deque is thread-safe
        if self.filter(record):
            self.emit(record)
            return True
        return False

    def _run(self) -> None:
        while not self._stop.wait(self.flush_sec):
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            lines = []
            while self._records:
                record = self._records.popleft()
                if isinstance(record, str):
                    lines.append(record)
                    continue
                try:
                    lines.append(self.format(record))
                except Exception:
                    self.handleError(record)
                if len(lines) % FORMAT_CHUNK == 0:
                    # Let the loop's thread have the interpreter: formatting a busy second's
                    # lines in one go held it for milliseconds, and a request waited that long.
                    time.sleep(0)
            if lines:
                try:
                    self.stream.write("\n".join(lines) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # stderr closed or gone: nowhere left to report
                    pass

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.flush()
        super().close()


_handler: BufferedJsonHandler | None = None


def _close_handler() -> None:
    global _handler
    if _handler is not None:
        _handler.close()
        _handler = None


def flush_logs() -> None:
    """Write what is buffered now: a Lambda environment is frozen between invocations, and its
    writer thread with it."""
    if _handler is not None:
        _handler.flush()


AccessLine = Callable[[str, str, str, int, float], None]


def access_lines(logger_name: str = "pulse.http") -> AccessLine | None:
    """A writer of the edge's line for each answered request (request id, method, path, status,
    ms): the JSON line `logger.info("request", extra={"fields": …})` writes through this
    module's handler, built without a LogRecord, which cost the loop about 6 µs a request and
    its formatting about 11 more. None before `setup_logging`."""
    handler = _handler
    if handler is None:
        return None
    logger = logging.getLogger(logger_name)
    formatter = JsonFormatter()  # its own: its date cache is the loop's
    text = json.encoder.encode_basestring_ascii  # what json.dumps does to a str

    def write(request_id: str, method: str, path: str, status: int, ms: float) -> None:
        if logger.isEnabledFor(logging.INFO):
            handler.append_line(
                f'{{"ts": "{formatter.timestamp(time.time())}", "level": "info", '
                f'"logger": {text(logger_name)}, "msg": "request", '
                f'"request_id": {text(request_id)}, "method": {text(method)}, '
                f'"path": {text(path)}, "status": {status:d}, "ms": {ms!r}}}'
            )

    return write


def setup_logging(level: str = "INFO") -> None:
    global _handler
    _close_handler()
    _handler = BufferedJsonHandler(sys.stderr)
    # The documented optimisations for what the JSON lines never show: the caller's file and line
    # (a stack walk per call), thread, process and multiprocessing names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [_handler]
    root.setLevel(level)
    # aiohttp's access log would duplicate ours; its server errors still reach the root.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # httpx and httpcore log every request's full URL at INFO: ALERT_WEBHOOK_URL is a secret, and
    # it is noise on a CLI's stderr (`pulse admin call`).
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


atexit.register(_close_handler)
