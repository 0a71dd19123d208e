"""How a control-plane command ends: its summary on stdout, a failure as one line and an exit code."""

from __future__ import annotations

import sys

from pulse.core.control import Busy, Summary
from pulse.core.errors import PulseError, ValidationFailed


def print_summary(summary: Summary) -> None:
    print(summary.line())
    for line in summary.changes:
        print(f"  {line}")


def failed(exc: PulseError) -> int:
    """One line on stderr; 2 when the call was refused (bad input, another run holds the
    lease), 1 when it failed."""
    if isinstance(exc, ValidationFailed | Busy):
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    print(f"pulse: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1
