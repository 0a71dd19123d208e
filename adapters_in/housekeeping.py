"""Background upkeep while the daemon runs: inbox gauges for `/metrics`, the ledger's TTL purge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from pulse.adapters_in.metrics import Metrics
from pulse.ports.inbox import Inbox
from pulse.ports.ledger import Ledger

log = logging.getLogger("pulse.housekeeping")

PURGE_EVERY_SEC = 3600
GAUGES_EVERY_SEC = 15


class Housekeeping:
    """`run()` loops until cancelled; a failing round is logged and the next one tries again."""

    def __init__(self, inbox: Inbox, ledger: Ledger, metrics: Metrics) -> None:
        self._inbox = inbox
        self._ledger = ledger
        self._gauges: dict[str, float] = {}
        metrics.gauge_source(self._read_gauges)

    def _read_gauges(self) -> Iterator[tuple[str, dict[str, str], float]]:
        for name, value in self._gauges.items():
            yield f"inbox_{name}", {}, value

    async def run(self) -> None:
        since_purge = PURGE_EVERY_SEC
        while True:
            try:
                await self.round(purge=since_purge >= PURGE_EVERY_SEC)
            except Exception:
                log.exception("housekeeping failed")
            if since_purge >= PURGE_EVERY_SEC:
                since_purge = 0
            await asyncio.sleep(GAUGES_EVERY_SEC)
            since_purge += GAUGES_EVERY_SEC

    async def round(self, *, purge: bool) -> None:
        stats = await self._inbox.stats()
        self._gauges.update(
            depth=stats.depth,
            oldest_age_seconds=stats.oldest_age_sec,
            dead_letters=stats.dead_letters,
        )
        if purge:
            purged = await self._ledger.purge_expired()
            if purged:
                log.info("ledger purge", extra={"fields": {"purged": purged}})
