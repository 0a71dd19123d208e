"""The inbox on SQS: the edge sends envelopes, workers long-poll and ack, the DLQ keeps poison."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pulse.adapters_out.sqs.client import Backoff, SqsClient
from pulse.adapters_out.sqs.dead_letters import bury
from pulse.adapters_out.sqs.queue import (
    MAX_BATCH,
    SQS_MESSAGE_LIMIT,
    EnvelopeTooLarge,
    Message,
    SqsQueue,
    decode,
    encode,
    max_body_bytes,
)
from pulse.core.model import Delivery, IngestEnvelope
from pulse.ports.clock import Clock
from pulse.ports.inbox import InboxStats

log = logging.getLogger("pulse.sqs")

# SQS allows 20 s; 10 keeps a worker parked in a long poll inside the default drain budget.
MAX_WAIT_SEC = 10
MAX_VISIBILITY_SEC = 43_200  # SQS: 12 hours
SUPERSEDED_KEPT = 10_000
FORGET_HELD_SEC = 3_600


@dataclass(slots=True)
class _Held:
    message_id: str
    taken_at: datetime  # by the inbox's clock, for the hold limit
    sent_at: float  # epoch seconds the message first entered the queue (SQS's clock)


class SqsInbox:
    """Inbox port over an SQS standard queue whose redrive policy feeds `dead_letter_queue`.

    Deliveries stay hidden while this process holds them: a background task extends their
    visibility (up to `max_hold`), so a long batch is not redelivered to another replica,
    while a crashed process's deliveries come back after `visibility`.
    """

    def __init__(
        self,
        client: SqsClient,
        queue: str,
        dead_letter_queue: str,
        clock: Clock,
        *,
        visibility: timedelta = timedelta(seconds=60),
        max_hold: timedelta = timedelta(minutes=15),
        message_limit: int = SQS_MESSAGE_LIMIT,
        backoff: Backoff | None = None,
    ) -> None:
        backoff = backoff or Backoff()
        self.queue = SqsQueue(client, queue, backoff)
        self.dead_letter_queue = SqsQueue(client, dead_letter_queue, backoff)
        self.clock = clock
        self._visibility = max(1, math.ceil(visibility.total_seconds()))
        self._max_hold = max_hold
        # Long past the hold a delivery has been redelivered elsewhere; until then it still
        # counts as ours for `stats` and for spotting a stale receipt.
        self._forget_after = max_hold + timedelta(seconds=self._visibility + FORGET_HELD_SEC)
        self.message_limit = message_limit
        self._held: dict[str, _Held] = {}
        self._latest: dict[str, str] = {}  # message id -> the receipt of its latest delivery here
        # Receipts of deliveries this process has since received again: acking one must not
        # delete the newer delivery (SQS may honour a stale receipt). Bounded, oldest dropped.
        self._superseded: dict[str, None] = {}
        # Held while visibility changes are in flight, so a retry's short delay is never
        # overwritten by an extension that was sent just before it.
        self._visibility_lock = asyncio.Lock()
        self._extender: asyncio.Task[None] | None = None

    @property
    def max_body_bytes(self) -> int:
        return max_body_bytes(self.message_limit)

    # --- Inbox port ---------------------------------------------------------------------------

    async def put(self, envelope: IngestEnvelope) -> None:
        body = encode(envelope)
        size = len(body.encode())
        if size > self.message_limit:
            raise EnvelopeTooLarge(
                f"envelope of {size} bytes exceeds the SQS message limit of {self.message_limit}"
                f" (bodies up to {self.max_body_bytes} bytes fit)"
            )
        await self._find_queues()
        await self.queue.send(body)

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        if max_items <= 0:
            return []
        await self._find_queues()
        self._start_extender()
        wait_sec = max(0, min(MAX_WAIT_SEC, math.ceil(wait)))
        messages = await self.queue.receive(min(MAX_BATCH, max_items), wait_sec, self._visibility)
        if len(messages) == MAX_BATCH and max_items > MAX_BATCH:
            # A full page says more are waiting: fill the batch with short polls side by side.
            rest = max_items - MAX_BATCH
            sizes = [min(MAX_BATCH, rest - i) for i in range(0, rest, MAX_BATCH)][:9]
            pages = await asyncio.gather(
                *(self.queue.receive(n, 0, self._visibility) for n in sizes)
            )
            messages += [m for page in pages for m in page]
        deliveries: list[Delivery] = []
        for message in _one_copy_each(messages):
            try:
                envelope = decode(message.body)
            except ValueError as exc:
                await self._bury(message, str(exc))
                continue
            self._hold(message)
            deliveries.append(Delivery(envelope, message.receipt, message.receive_count))
        return deliveries

    async def ack(self, receipts: Sequence[str]) -> None:
        receipts = [r for r in receipts if r not in self._superseded]
        for receipt in receipts:
            self._release(receipt)
        if not receipts:
            return
        await self._find_queues()
        failed = await self.queue.delete_batch(receipts)
        if failed:
            # Those come back after their visibility; the ledger answers them as duplicates.
            log.warning("ack failed", extra={"fields": {"receipts": len(failed)}})

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        seconds = max(0, min(MAX_VISIBILITY_SEC, math.ceil(delay.total_seconds())))
        await self._find_queues()
        receipts = [r for r in receipts if r not in self._superseded]
        async with self._visibility_lock:
            for receipt in receipts:
                self._release(receipt)
            await self.queue.change_visibility(receipts, seconds)

    async def extend(self, receipts: Sequence[str], hidden_for: timedelta) -> None:
        """Hidden `hidden_for` more; held anew, so the extender keeps them for `max_hold` more."""
        seconds = max(0, min(MAX_VISIBILITY_SEC, math.ceil(hidden_for.total_seconds())))
        receipts = [r for r in receipts if r in self._held]
        if not receipts:
            return
        now = self.clock.now()
        for receipt in receipts:
            self._held[receipt].taken_at = now
        await self._find_queues()
        async with self._visibility_lock:
            failed = await self.queue.change_visibility(receipts, seconds)
        for receipt in failed:
            self._release(receipt)

    async def stats(self) -> InboxStats:
        await self._find_queues()
        queued, dead = await asyncio.gather(
            self.queue.counts(
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ),
            self.dead_letter_queue.counts(
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
            ),
        )
        # SQS exposes the oldest message's age only as a CloudWatch metric; what we can see is
        # the oldest delivery this process holds, by SQS's own (wall) clock.
        now = self.clock.now().timestamp()
        oldest = max((now - h.sent_at for h in self._held.values() if h.sent_at), default=0.0)
        return InboxStats(
            depth=sum(queued.values()),
            oldest_age_sec=max(0.0, oldest),
            dead_letters=sum(dead.values()),
        )

    async def ping(self) -> None:
        await self._find_queues()
        await asyncio.gather(self.queue.arn(), self.dead_letter_queue.arn())

    async def close(self) -> None:
        """Stop extending; what we still hold comes back after its visibility timeout."""
        if self._extender is not None:
            self._extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._extender
            self._extender = None

    async def _find_queues(self) -> None:
        """Both queues, or a permanent error naming the missing one, before any other call."""
        await self.queue.url()
        await self.dead_letter_queue.url()

    async def _bury(self, message: Message, reason: str) -> None:
        await bury(
            self.dead_letter_queue, message.body, reason, self.clock.now(), message.receive_count
        )
        await self.queue.delete(message.receipt)

    # --- visibility while a batch is in flight ------------------------------------------------

    def _hold(self, message: Message) -> None:
        receipt = message.receipt
        earlier = self._latest.get(message.message_id)
        if earlier is not None and earlier != receipt:
            self._held.pop(earlier, None)
            self._superseded[earlier] = None
            if len(self._superseded) > SUPERSEDED_KEPT:
                del self._superseded[next(iter(self._superseded))]
        self._latest[message.message_id] = receipt
        self._held[receipt] = _Held(message.message_id, self.clock.now(), message.sent_ms / 1000)

    def _release(self, receipt: str) -> None:
        held = self._held.pop(receipt, None)
        if held is not None and self._latest.get(held.message_id) == receipt:
            del self._latest[held.message_id]

    def _start_extender(self) -> None:
        if self._extender is None or self._extender.done():
            self._extender = asyncio.create_task(self._extend_forever(), name="sqs-visibility")

    async def _extend_forever(self) -> None:
        interval = max(0.2, self._visibility / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.extend_held()
            except Exception:
                log.exception("visibility extension failed")

    async def extend_held(self) -> None:
        """Push back the visibility of every delivery held for less than `max_hold`."""
        now = self.clock.now()
        for receipt, held in list(self._held.items()):
            if now - held.taken_at > self._forget_after:
                self._release(receipt)
        await self._find_queues()
        async with self._visibility_lock:
            receipts = [r for r, h in self._held.items() if now - h.taken_at < self._max_hold]
            failed = await self.queue.change_visibility(receipts, self._visibility)
        for receipt in failed:  # deleted or redelivered meanwhile: no longer ours
            self._release(receipt)


def _one_copy_each(messages: list[Message]) -> list[Message]:
    """SQS is at-least-once: one receive can carry a message twice. One delivery per message
    id (the last copy: its receipt is the one SQS honours), so a copy can never settle the
    other early (a "repeat within batch" ack would delete what the first copy still owes)."""
    latest = {message.message_id: message for message in messages}
    return list(latest.values())
