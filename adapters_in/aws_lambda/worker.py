"""An SQS event source mapping → `process_batch`: the records the mapping should hand back are
returned as `batchItemFailures` (FunctionResponseTypes: ReportBatchItemFailures)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pulse.adapters_in.worker import InboxWorkers
from pulse.core.model import Delivery
from pulse.ports.inbox import Inbox


class RecordBatch(Inbox, Protocol):
    """The inbox of one invocation: its records as deliveries, and those still owed."""

    async def deliveries(self) -> list[Delivery]: ...

    def failures(self) -> list[str]:
        """The message ids of the records not settled: to retry."""
        ...


@dataclass(frozen=True, slots=True)
class LambdaWorker:
    """`worker(event, context)`. Permanent failures are dead-lettered with their reason and
    settle (the mapping deletes them); transient ones are reported, each record's visibility
    set to its backoff; while a dependency's breaker is open the whole batch is reported
    without being run, until the breaker's probe is due."""

    workers: InboxWorkers
    """The daemon's batch logic: bisecting, MAX_ATTEMPTS, breakers, metrics, incidents."""
    batch_of: Callable[[Sequence[Mapping[str, Any]]], RecordBatch]

    async def handle(self, event: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
        batch = self.batch_of(list(event.get("Records") or ()))
        await self.workers.over(batch).run_handed(await batch.deliveries())
        return {"batchItemFailures": [{"itemIdentifier": i} for i in batch.failures()]}
