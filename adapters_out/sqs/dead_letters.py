"""Dead letters on SQS: the DLQ's messages, listed and replayed a page at a time."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pulse.adapters_out.sqs.queue import MAX_BATCH, Message, SqsQueue, decode, encode
from pulse.core.dead_letters import DeadLetterFilter
from pulse.core.model import Delivery, IngestEnvelope
from pulse.ports.inbox import DeadLetter

if TYPE_CHECKING:
    from pulse.adapters_out.sqs.inbox import SqsInbox

log = logging.getLogger("pulse.sqs")

MAX_PAGES = 1_000  # dead-letter listing / replay: a bound, not an expectation
PAGE_HIDE_SEC = 30  # hides a dead-letter page while we page on, then shown again at once
REASON_MAX_CHARS = 1_000


def letter_attributes(reason: str, dead_at: datetime, attempts: int) -> dict[str, str | int]:
    """The message attributes that say why a body is on the DLQ (read back by `read_letter`)."""
    return {
        "reason": reason[:REASON_MAX_CHARS] or "unspecified",
        "dead_at": dead_at.isoformat(),
        "attempts": attempts,
    }


async def bury(
    dead_letter_queue: SqsQueue, body: str, reason: str, now: datetime, attempts: int
) -> None:
    """A message that is not an envelope cannot be a Delivery: its body straight to the DLQ,
    with the reason (the caller then deletes it, or lets the event source mapping)."""
    await dead_letter_queue.send(body, letter_attributes(reason, now, attempts))
    log.warning("foreign message dead-lettered", extra={"fields": {"reason": reason}})


def read_letter(message: Message, max_receive_count: int | None) -> DeadLetter:
    """A DLQ message as a dead letter; one SQS's redrive moved has no attributes of ours, so
    its reason and attempts come from the queue's `max_receive_count`."""
    sent = _sent_at(message)
    extra = message.attributes
    return DeadLetter(
        envelope=_envelope_of(message),
        reason=extra.get("reason")
        or f"received {max_receive_count or 'too many'} times without success (SQS redrive)",
        dead_at=datetime.fromisoformat(extra["dead_at"]) if "dead_at" in extra else sent,
        attempts=int(extra.get("attempts") or max_receive_count or 0),
    )


def _envelope_of(message: Message) -> IngestEnvelope:
    """The envelope the message carries, or (a foreign message) its body under its id."""
    try:
        return decode(message.body)
    except ValueError:
        return IngestEnvelope(
            request_id=message.message_id,
            source="unknown",
            received_at=_sent_at(message),
            body=message.body.encode(),
        )


def _matches(where: DeadLetterFilter, letter: DeadLetter) -> bool:
    return where.matches(letter.envelope.source, letter.reason, letter.dead_at)


def _sent_at(message: Message) -> datetime:
    return datetime.fromtimestamp(message.sent_ms / 1000, UTC)


_PageHandler = Callable[[list[Message]], Awaitable[list[Message]]]


class SqsDeadLetters:
    """Dead letters are the DLQ's messages: ours (with a `reason` attribute) and those SQS's
    redrive policy moved there after `maxReceiveCount` receives."""

    def __init__(self, inbox: SqsInbox) -> None:
        self._queue = inbox.queue
        self._dead_letter_queue = inbox.dead_letter_queue
        self._clock = inbox.clock

    async def add(self, delivery: Delivery, reason: str) -> None:
        attributes = letter_attributes(reason, self._clock.now(), delivery.attempt)
        await self._dead_letter_queue.send(encode(delivery.envelope), attributes)

    async def list(
        self, limit: int = 100, where: DeadLetterFilter | None = None, offset: int = 0
    ) -> list[DeadLetter]:
        wanted = max(0, offset) + max(0, limit)
        found = await self._distinct(where, stop_at=wanted)
        return sorted(found.values(), key=lambda d: d.dead_at)[max(0, offset) : wanted]

    async def count(self, where: DeadLetterFilter | None = None) -> int:
        return len(await self._distinct(where, stop_at=None))

    async def _distinct(
        self, where: DeadLetterFilter | None, stop_at: int | None
    ) -> dict[str, DeadLetter]:
        # A standard queue cannot refuse a second copy, so letters are one per distinct
        # envelope (the same envelope encodes to the same body; the newest copy wins).
        redriven = await self._queue.max_receive_count()
        found: dict[str, DeadLetter] = {}

        async def keep(page: list[Message]) -> list[Message]:
            for message in page:
                letter = read_letter(message, redriven)
                if where is not None and not _matches(where, letter):
                    continue
                known = found.get(message.body)
                if known is None or letter.dead_at >= known.dead_at:
                    found[message.body] = letter
            return []

        await self._page(keep, stop=lambda: stop_at is not None and len(found) >= stop_at)
        return found

    async def replay(
        self, request_ids: Sequence[str] | None = None, where: DeadLetterFilter | None = None
    ) -> int:
        wanted = None if request_ids is None else set(request_ids)
        await self._queue.url()  # the main queue must exist before anything leaves the DLQ
        redriven = await self._queue.max_receive_count()
        replayed: set[str] = set()  # bodies (distinct envelopes) sent back to the main queue

        def chosen(message: Message) -> bool:
            letter = read_letter(message, redriven)
            return (wanted is None or letter.envelope.request_id in wanted) and (
                where is None or _matches(where, letter)
            )

        async def send_back(page: list[Message]) -> list[Message]:
            fresh: dict[str, Message] = {}
            copies: list[Message] = []
            for message in filter(chosen, page):
                if message.body in replayed or message.body in fresh:
                    copies.append(message)
                else:
                    fresh[message.body] = message
            failed = await self._queue.send_batch(list(fresh))
            replayed.update(body for body in fresh if body not in failed)
            # Deleted from the DLQ only once safely back on the main queue (one copy each).
            return [m for m in (*fresh.values(), *copies) if m.body in replayed]

        await self._page(send_back, stop=lambda: False)
        return len(replayed)

    async def purge(self, dead_before: datetime) -> int:
        redriven = await self._queue.max_receive_count()
        expired = DeadLetterFilter(until=dead_before)
        purged: set[str] = set()

        async def delete(page: list[Message]) -> list[Message]:
            done = [m for m in page if _matches(expired, read_letter(m, redriven))]
            purged.update(m.body for m in done)
            return done

        await self._page(delete, stop=lambda: False)
        return len(purged)

    async def _page(self, handle: _PageHandler, stop: Callable[[], bool]) -> None:
        """Walk the DLQ a page at a time (hiding each page so the next one advances); `handle`
        returns the messages to delete; the rest are made visible again at the end."""
        dead_letter_queue = self._dead_letter_queue
        visible = await dead_letter_queue.counts("ApproximateNumberOfMessages")
        expected = visible.get("ApproximateNumberOfMessages", 0)
        seen: set[str] = set()
        shown_again: list[str] = []
        try:
            for _ in range(MAX_PAGES):
                if stop():
                    break
                # A long poll asks every SQS server, so its empty page means an empty queue;
                # once the (approximate) count is seen, a short poll only confirms the end.
                wait = 1 if len(seen) < expected else 0
                page = await dead_letter_queue.receive(MAX_BATCH, wait, PAGE_HIDE_SEC)
                if not page:
                    break
                seen.update(m.message_id for m in page)
                done = await handle(page)
                done_ids = {m.message_id for m in done}
                shown_again += [m.receipt for m in page if m.message_id not in done_ids]
                if done:
                    await dead_letter_queue.delete_batch([m.receipt for m in done])
        finally:
            if shown_again:
                await dead_letter_queue.change_visibility(shown_again, 0)
