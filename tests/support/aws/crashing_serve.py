"""`pulse serve` that SIGKILLs itself in the middle of a batch: `python -m tests.support.aws.crashing_serve`.

Settings come from the environment exactly as for `pulse serve` (SINK=local). One provider
is overridden: the sink becomes the real local warehouse behind a wrapper that, at the first
fact append carrying at least PULSE_TEST_CRASH_MIN_FACTS facts (after PULSE_TEST_CRASH_SKIP
appends went through normally), writes that batch's EventKeys to PULSE_TEST_CRASH_NOTE and
kills its own process with SIGKILL:

- PULSE_TEST_CRASH_POINT=claimed: before the rows reach the sink. The batch's keys are claimed
  in the ledger (PENDING, under a lease) and never committed.
- PULSE_TEST_CRASH_POINT=accepted: once the sink has accepted (and stored) the rows, before
  the ledger commit: the documented post-accept window.

No hook lives in product code: the rest is `bootstrap.main.main(["serve"])`.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from dependency_injector import providers

from pulse.bootstrap import main
from pulse.bootstrap.container import Container
from pulse.core.model import DimRow, FactEvent
from pulse.ports.sink import Sink

CRASH_POINT = "PULSE_TEST_CRASH_POINT"
CRASH_SKIP = "PULSE_TEST_CRASH_SKIP"
CRASH_MIN_FACTS = "PULSE_TEST_CRASH_MIN_FACTS"
CRASH_NOTE = "PULSE_TEST_CRASH_NOTE"
POINTS = ("claimed", "accepted")


class CrashingSink:
    """The real sink, except for one append: the process dies there, as in a power cut."""

    def __init__(self, inner: Sink, point: str, skip: int, min_facts: int, note: Path) -> None:
        if point not in POINTS:
            raise ValueError(f"{CRASH_POINT} must be one of {POINTS}, not {point!r}")
        self.inner = inner
        self.point = point
        self.skip = skip
        self.min_facts = min_facts
        self.note = note
        self.appends = 0

    async def append(self, facts: Sequence[FactEvent]) -> None:
        self.appends += 1
        armed = self.appends > self.skip and len(facts) >= self.min_facts
        if armed and self.point == "claimed":
            self._die(facts)
        await self.inner.append(facts)
        if armed and self.point == "accepted":
            self._die(facts)

    def _die(self, facts: Sequence[FactEvent]) -> None:
        with self.note.open("w") as out:
            out.write("".join(f"{f.EventKey}\n" for f in facts))
            out.flush()
            os.fsync(out.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    async def upsert(self, rows: Sequence[DimRow]) -> None:
        await self.inner.upsert(rows)

    async def replace(self, table: str, rows: Sequence[DimRow]) -> None:
        await self.inner.replace(table, rows)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        """The warehouse is the container's resource: it closes it."""


def run() -> int:
    crashing = providers.Singleton(
        CrashingSink,
        Container.warehouse,  # SINK=local: the real sink, still opened and closed by the container
        os.environ[CRASH_POINT],
        int(os.environ.get(CRASH_SKIP, "0")),
        int(os.environ.get(CRASH_MIN_FACTS, "1")),
        Path(os.environ[CRASH_NOTE]),
    )
    with Container.sink.override(crashing):
        return main.main(["serve"])


if __name__ == "__main__":
    sys.exit(run())
