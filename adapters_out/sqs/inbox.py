"""The inbox on SQS: the edge sends envelopes, workers long-poll and ack, the DLQ keeps poison."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters_out.sqs.client import (
    Backoff,
    SqsClient,
    SqsPermanentError,
    call,
)
from core import errors
from core.model import Delivery, IngestEnvelope
from ports.clock import Clock
from ports.inbox import DeadLetter, InboxStats

log = logging.getLogger("pulse.sqs")

SQS_MESSAGE_LIMIT = 262_144  # bytes per message, body and attributes (SQS quota)
ENVELOPE_RESERVE = 16_384  # room for the JSON fields, kept headers and dead-letter attributes
MAX_BATCH = 10  # messages per ReceiveMessage / entries per *Batch call (SQS limit)
# SQS allows 20 s; 10 keeps a worker parked in a long poll inside the default drain budget.
MAX_WAIT_SEC = 10
MAX_VISIBILITY_SEC = 43_200  # SQS: 12 hours
MAX_PAGES = 1_000  # dead-letter listing / replay: a bound, not an expectation
PAGE_HIDE_SEC = 30  # hides a dead-letter page while we page on, then shown again at once
REASON_MAX_CHARS = 1_000
SUPERSEDED_KEPT = 10_000
FORGET_HELD_SEC = 3_600


def max_body_bytes(message_limit: int = SQS_MESSAGE_LIMIT) -> int:
    """The largest raw webhook body whose envelope fits one SQS message (base64 costs 4/3):
    the edge's body limit when INBOX=sqs, so a bigger one gets a clear 413."""
    return (message_limit - ENVELOPE_RESERVE) * 3 // 4


class EnvelopeTooLarge(SqsPermanentError, errors.EnvelopeTooLarge):
    """The envelope does not fit one SQS message; the edge answers 413."""


def encode(envelope: IngestEnvelope) -> str:
    return json.dumps(
        {
            "v": 1,
            "request_id": envelope.request_id,
            "source": envelope.source,
            "received_at": envelope.received_at.isoformat(),
            "headers": envelope.headers,
            "body": base64.b64encode(envelope.body).decode("ascii"),
        },
        separators=(",", ":"),
    )


def decode(text: str) -> IngestEnvelope:
    """The envelope a message carries; ValueError when it is not one of ours."""
    try:
        doc = json.loads(text)
        return IngestEnvelope(
            request_id=str(doc["request_id"]),
            source=str(doc["source"]),
            received_at=datetime.fromisoformat(doc["received_at"]),
            body=base64.b64decode(doc["body"], validate=True),
            headers={str(k): str(v) for k, v in doc.get("headers", {}).items()},
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # json, base64, isoformat
        raise ValueError(f"not a Pulse envelope: {exc!r}") from None


@dataclass(slots=True)
class _Held:
    message_id: str
    taken_at: float  # monotonic, for the hold limit
    sent_at: float  # epoch seconds the message first entered the queue


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
        self._client = client
        self._names = (queue, dead_letter_queue)
        self._clock = clock
        self._visibility = max(1, math.ceil(visibility.total_seconds()))
        self._max_hold = max_hold.total_seconds()
        self.message_limit = message_limit
        self._backoff = backoff or Backoff()
        self._urls_known: tuple[str, str] | None = None
        self.max_receive_count: int | None = None
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
        main, _ = await self._urls()
        await self._call("send_message", QueueUrl=main, MessageBody=body)

    async def take(self, max_items: int, wait: float) -> list[Delivery]:
        if max_items <= 0:
            return []
        main, _ = await self._urls()
        self._start_extender()
        wait_sec = max(0, min(MAX_WAIT_SEC, math.ceil(wait)))
        messages = await self._receive(main, min(MAX_BATCH, max_items), wait_sec, self._visibility)
        if len(messages) == MAX_BATCH and max_items > MAX_BATCH:
            # A full page says more are waiting: fill the batch with short polls side by side.
            rest = max_items - MAX_BATCH
            sizes = [min(MAX_BATCH, rest - i) for i in range(0, rest, MAX_BATCH)][:9]
            pages = await asyncio.gather(
                *(self._receive(main, n, 0, self._visibility) for n in sizes)
            )
            messages += [m for page in pages for m in page]
        deliveries: list[Delivery] = []
        for message in messages:
            receipt = message["ReceiptHandle"]
            try:
                envelope = decode(message["Body"])
            except ValueError as exc:
                await self._bury(message, str(exc))
                continue
            attributes = message.get("Attributes", {})
            self._hold(receipt, message["MessageId"], int(attributes.get("SentTimestamp", 0)))
            attempt = int(attributes.get("ApproximateReceiveCount", 1))
            deliveries.append(Delivery(envelope, receipt, attempt))
        return deliveries

    async def ack(self, receipts: Sequence[str]) -> None:
        receipts = [r for r in receipts if r not in self._superseded]
        for receipt in receipts:
            self._release(receipt)
        if not receipts:
            return
        main, _ = await self._urls()
        failed = await self._batch(
            "delete_message_batch", main, [{"ReceiptHandle": r} for r in receipts]
        )
        if failed:
            # Those come back after their visibility; the ledger answers them as duplicates.
            log.warning("ack failed", extra={"fields": {"receipts": len(failed)}})

    async def retry(self, receipts: Sequence[str], delay: timedelta) -> None:
        seconds = max(0, min(MAX_VISIBILITY_SEC, math.ceil(delay.total_seconds())))
        main, _ = await self._urls()
        receipts = [r for r in receipts if r not in self._superseded]
        async with self._visibility_lock:
            for receipt in receipts:
                self._release(receipt)
            await self._set_visibility(main, receipts, seconds)

    async def stats(self) -> InboxStats:
        main, dlq = await self._urls()
        queued, dead = await asyncio.gather(
            self._attributes(
                main,
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ),
            self._attributes(
                dlq, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"
            ),
        )
        # SQS exposes the oldest message's age only as a CloudWatch metric; what we can see is
        # the oldest delivery this process holds, by SQS's own (wall) clock.
        now = time.time()
        oldest = max((now - h.sent_at for h in self._held.values() if h.sent_at), default=0.0)
        return InboxStats(
            depth=sum(queued.values()),
            oldest_age_sec=max(0.0, oldest),
            dead_letters=sum(dead.values()),
        )

    async def ping(self) -> None:
        main, dlq = await self._urls()
        await asyncio.gather(self._attributes(main, "QueueArn"), self._attributes(dlq, "QueueArn"))

    async def close(self) -> None:
        """Stop extending; what we still hold comes back after its visibility timeout."""
        if self._extender is not None:
            self._extender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._extender
            self._extender = None

    # --- visibility while a batch is in flight ------------------------------------------------

    def _hold(self, receipt: str, message_id: str, sent_ms: int) -> None:
        earlier = self._latest.get(message_id)
        if earlier is not None and earlier != receipt:
            self._held.pop(earlier, None)
            self._superseded[earlier] = None
            if len(self._superseded) > SUPERSEDED_KEPT:
                del self._superseded[next(iter(self._superseded))]
        self._latest[message_id] = receipt
        self._held[receipt] = _Held(message_id, time.monotonic(), sent_ms / 1000)

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
        now = time.monotonic()
        for receipt, held in list(self._held.items()):
            # Long past the hold it has been redelivered elsewhere; until then it still counts
            # as ours for `stats` and for spotting a stale receipt.
            if now - held.taken_at > self._max_hold + self._visibility + FORGET_HELD_SEC:
                self._release(receipt)
        main, _ = await self._urls()
        async with self._visibility_lock:
            receipts = [r for r, h in self._held.items() if now - h.taken_at < self._max_hold]
            failed = await self._set_visibility(main, receipts, self._visibility)
        for receipt in failed:  # deleted or redelivered meanwhile: no longer ours
            self._release(receipt)

    # --- SQS calls ----------------------------------------------------------------------------

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await call(getattr(self._client, operation), self._backoff, **params)

    async def _urls(self) -> tuple[str, str]:
        if self._urls_known is None:
            main, dlq = [await self._url(name) for name in self._names]
            policy = await self._call(
                "get_queue_attributes", QueueUrl=main, AttributeNames=["RedrivePolicy"]
            )
            redrive = policy.get("Attributes", {}).get("RedrivePolicy")
            if redrive:
                self.max_receive_count = int(json.loads(redrive)["maxReceiveCount"])
            self._urls_known = (main, dlq)
        return self._urls_known

    async def _url(self, name: str) -> str:
        if name.startswith(("https://", "http://")):
            return name
        try:
            answer = await self._call("get_queue_url", QueueName=name)
        except SqsPermanentError as exc:
            if "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
                raise SqsPermanentError(
                    f"queue {name!r} not found (run `pulse infra create`)"
                ) from exc
            raise SqsPermanentError(f"queue {name!r}: {exc}") from exc
        return str(answer["QueueUrl"])

    async def _receive(
        self, url: str, count: int, wait_sec: int, visibility_sec: int
    ) -> list[dict[str, Any]]:
        answer = await self._call(
            "receive_message",
            QueueUrl=url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_sec,
            VisibilityTimeout=visibility_sec,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        return messages

    async def _attributes(self, url: str, *names: str) -> dict[str, int]:
        answer = await self._call("get_queue_attributes", QueueUrl=url, AttributeNames=list(names))
        return {k: int(v) for k, v in answer.get("Attributes", {}).items() if k != "QueueArn"}

    async def _batch(
        self, operation: str, url: str, entries: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Run a *Batch call over entries, 10 at a time side by side; returns the failed entries."""
        chunks = [entries[i : i + MAX_BATCH] for i in range(0, len(entries), MAX_BATCH)]
        answers = await asyncio.gather(
            *(
                self._call(
                    operation,
                    QueueUrl=url,
                    Entries=[{"Id": str(i), **e} for i, e in enumerate(chunk)],
                )
                for chunk in chunks
            )
        )
        failed: list[dict[str, Any]] = []
        for chunk, answer in zip(chunks, answers, strict=True):
            failed += [chunk[int(f["Id"])] for f in answer.get("Failed", [])]
        return failed

    async def _set_visibility(self, url: str, receipts: Sequence[str], seconds: int) -> list[str]:
        entries = [{"ReceiptHandle": r, "VisibilityTimeout": seconds} for r in receipts]
        failed = await self._batch("change_message_visibility_batch", url, entries)
        return [f["ReceiptHandle"] for f in failed]

    async def send_dead(self, body: str, reason: str, attempts: int) -> None:
        """Keep a message body on the DLQ with why it is there (the caller deletes the original)."""
        _, dlq = await self._urls()
        await self._call(
            "send_message",
            QueueUrl=dlq,
            MessageBody=body,
            MessageAttributes={
                "reason": {
                    "DataType": "String",
                    "StringValue": reason[:REASON_MAX_CHARS] or "unspecified",
                },
                "dead_at": {"DataType": "String", "StringValue": self._clock.now().isoformat()},
                "attempts": {"DataType": "Number", "StringValue": str(attempts)},
            },
        )

    async def _bury(self, message: dict[str, Any], reason: str) -> None:
        """A message that is not an envelope cannot be a Delivery: straight to the DLQ."""
        attempts = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        await self.send_dead(message["Body"], reason, attempts)
        main, _ = await self._urls()
        await self._call("delete_message", QueueUrl=main, ReceiptHandle=message["ReceiptHandle"])
        log.warning("foreign message dead-lettered", extra={"fields": {"reason": reason}})


_PageHandler = Callable[[list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]


class SqsDeadLetters:
    """Dead letters are the DLQ's messages: ours (with a `reason` attribute) and those SQS's
    redrive policy moved there after `maxReceiveCount` receives."""

    def __init__(self, inbox: SqsInbox) -> None:
        self._inbox = inbox

    async def add(self, delivery: Delivery, reason: str) -> None:
        await self._inbox.send_dead(encode(delivery.envelope), reason, delivery.attempt)

    async def list(self, limit: int = 100) -> list[DeadLetter]:
        # A standard queue cannot refuse a second copy, so letters are one per distinct
        # envelope (the same envelope encodes to the same body; the newest copy wins).
        found: dict[str, DeadLetter] = {}

        async def keep(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for message in page:
                letter = self._dead_letter(message)
                known = found.get(message["Body"])
                if known is None or letter.dead_at >= known.dead_at:
                    found[message["Body"]] = letter
            return []

        await self._page(keep, stop=lambda: len(found) >= limit)
        return sorted(found.values(), key=lambda d: d.dead_at)[:limit]

    async def replay(self, request_ids: Sequence[str] | None = None) -> int:
        wanted = None if request_ids is None else set(request_ids)
        main, _ = await self._inbox._urls()
        replayed: set[str] = set()  # bodies (distinct envelopes) sent back to the main queue

        async def send_back(page: list[dict[str, Any]]) -> list[dict[str, Any]]:
            fresh: dict[str, dict[str, Any]] = {}
            copies: list[dict[str, Any]] = []
            for message in page:
                if wanted is not None:
                    if self._dead_letter(message).envelope.request_id not in wanted:
                        continue
                body = message["Body"]
                if body in replayed or body in fresh:
                    copies.append(message)
                else:
                    fresh[body] = message
            entries = [{"MessageBody": body} for body in fresh]
            failed = {
                f["MessageBody"]
                for f in await self._inbox._batch("send_message_batch", main, entries)
            }
            replayed.update(body for body in fresh if body not in failed)
            # Deleted from the DLQ only once safely back on the main queue (one copy each).
            return [m for m in (*fresh.values(), *copies) if m["Body"] in replayed]

        await self._page(send_back, stop=lambda: False)
        return len(replayed)

    async def _page(self, handle: _PageHandler, stop: Callable[[], bool]) -> None:
        """Walk the DLQ a page at a time (hiding each page so the next one advances); `handle`
        returns the messages to delete; the rest are made visible again at the end."""
        _, dlq = await self._inbox._urls()
        visible = await self._inbox._attributes(dlq, "ApproximateNumberOfMessages")
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
                page = await self._inbox._receive(dlq, MAX_BATCH, wait, PAGE_HIDE_SEC)
                if not page:
                    break
                seen.update(m["MessageId"] for m in page)
                done = await handle(page)
                done_ids = {m["MessageId"] for m in done}
                keep = [m for m in page if m["MessageId"] not in done_ids]
                shown_again += [m["ReceiptHandle"] for m in keep]
                if done:
                    await self._inbox._batch(
                        "delete_message_batch",
                        dlq,
                        [{"ReceiptHandle": m["ReceiptHandle"]} for m in done],
                    )
        finally:
            if shown_again:
                await self._inbox._set_visibility(dlq, shown_again, 0)

    def _dead_letter(self, message: dict[str, Any]) -> DeadLetter:
        attributes = message.get("Attributes", {})
        sent = datetime.fromtimestamp(int(attributes.get("SentTimestamp", 0)) / 1000, UTC)
        extra = {
            k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()
        }
        try:
            envelope = decode(message["Body"])
        except ValueError:
            envelope = IngestEnvelope(
                request_id=message["MessageId"],
                source="unknown",
                received_at=sent,
                body=message["Body"].encode(),
            )
        redriven = self._inbox.max_receive_count
        return DeadLetter(
            envelope=envelope,
            reason=extra.get("reason")
            or f"received {redriven or 'too many'} times without success (SQS redrive)",
            dead_at=datetime.fromisoformat(extra["dead_at"]) if "dead_at" in extra else sent,
            attempts=int(extra.get("attempts") or redriven or 0),
        )
