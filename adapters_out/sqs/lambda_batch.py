"""The inbox of one Lambda invocation: the SQS records an event source mapping handed over.

The mapping (FunctionResponseTypes: ReportBatchItemFailures) deletes every record the function
does not report, so an ack only marks a record done; a retry or a hold reports it, and sets
its visibility so it comes back after the backoff (or the hold) rather than the queue's
timeout."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from pulse.adapters_out.sqs.dead_letters import bury
from pulse.adapters_out.sqs.inbox import MAX_VISIBILITY_SEC, SqsInbox
from pulse.adapters_out.sqs.queue import decode
from pulse.core.model import Delivery, IngestEnvelope
from pulse.ports.inbox import InboxStats

log = logging.getLogger("pulse.sqs")


class LambdaBatch:
    """Inbox port over one event's records; receipts are the records' message ids (what
    `batchItemFailures` names). Everything else goes to `inbox`, the queue the edge fills."""

    def __init__(self, inbox: SqsInbox, records: Sequence[Mapping[str, Any]]) -> None:
        self._inbox = inbox
        # SQS is at-least-once: one event can carry a message twice; one delivery per id.
        self._records = {str(r["messageId"]): r for r in records}
        self._done: set[str] = set()

    @property
    def max_body_bytes(self) -> int:
        return self._inbox.max_body_bytes

    async def deliveries(self) -> list[Delivery]:
        """The records as deliveries; one that is not an envelope goes to the DLQ at once."""
        found: list[Delivery] = []
        for message_id, record in self._records.items():
            attempt = int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
            try:
                envelope = decode(str(record["body"]))
            except ValueError as exc:
                await self._bury(message_id, str(record["body"]), str(exc), attempt)
                continue
            found.append(Delivery(envelope, message_id, attempt))
        return found

    def failures(self) -> list[str]:
        """The message ids to report in `batchItemFailures`: every record not settled."""
        return [message_id for message_id in self._records if message_id not in self._done]

    # --- Inbox port ---------------------------------------------------------------------------

    async def put(self, envelope: IngestEnvelope) -> None:
        await self._inbox.put(envelope)

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        return []  # the event source mapping hands the records over; nothing is taken

    async def ack(self, receipts: Sequence[str]) -> None:
        self._done.update(r for r in receipts if r in self._records)

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        self._done.difference_update(receipts)
        await self._hide(receipts, delay)

    async def extend(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        self._done.difference_update(receipts)
        await self._hide(receipts, hidden_for)

    async def stats(self) -> InboxStats:
        return await self._inbox.stats()

    async def ping(self) -> None:
        await self._inbox.ping()

    async def close(self) -> None:
        return None  # the queue's client belongs to the execution environment

    async def _hide(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        """Best effort: a record whose visibility did not change still comes back, after the
        queue's visibility timeout."""
        seconds = max(0, min(MAX_VISIBILITY_SEC, math.ceil(hidden_for.total_seconds())))
        handles = [self._records[r]["receiptHandle"] for r in receipts if r in self._records]
        if not handles:
            return
        try:
            failed = await self._inbox.queue.change_visibility(handles, seconds)
        except Exception:
            log.exception("could not set the visibility of records to retry")
            return
        if failed:
            log.warning("visibility change failed", extra={"fields": {"records": len(failed)}})

    async def _bury(self, message_id: str, body: str, reason: str, attempt: int) -> None:
        """Not reported once on the DLQ, so the mapping deletes it."""
        await bury(self._inbox.dead_letter_queue, body, reason, self._inbox.clock.now(), attempt)
        self._done.add(message_id)
