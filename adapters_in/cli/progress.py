"""A progress line on stderr for long CLI commands (only on a terminal: logs stay clean)."""

from __future__ import annotations

import sys

WIDTH = 30


def progress_bar(done: int, total: int) -> None:
    if not sys.stderr.isatty():
        return
    filled = WIDTH * min(done, total) // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r  [{'#' * filled}{'.' * (WIDTH - filled)}] {done:,}/{total:,}{end}")
    sys.stderr.flush()
