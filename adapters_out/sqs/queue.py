"""One SQS queue, by name or URL: the calls the inbox and its dead letters make, and the
codec that carries an envelope in a message body."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pulse.adapters_out.sqs.client import Backoff, SqsClient, SqsPermanentError, call
from pulse.core import errors
from pulse.core.model import IngestEnvelope

SQS_MESSAGE_LIMIT = 262_144  # bytes per message, body and attributes (SQS quota)
ENVELOPE_RESERVE = 16_384  # room for the JSON fields, kept headers and dead-letter attributes
MAX_BATCH = 10  # messages per ReceiveMessage / entries per *Batch call (SQS limit)


# --- the codec ------------------------------------------------------------------------------


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


# --- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A received message, as the inbox and the dead letters read it."""

    message_id: str
    receipt: str
    body: str
    receive_count: int  # ApproximateReceiveCount (1 when SQS leaves it out)
    sent_ms: int  # SentTimestamp: epoch milliseconds by SQS's clock (0 when left out)
    attributes: Mapping[str, str]  # message attributes, by name: their string values

    @classmethod
    def received(cls, answer: Mapping[str, Any]) -> Message:
        system = answer.get("Attributes", {})
        return cls(
            message_id=answer["MessageId"],
            receipt=answer["ReceiptHandle"],
            body=answer["Body"],
            receive_count=int(system.get("ApproximateReceiveCount", 1)),
            sent_ms=int(system.get("SentTimestamp", 0)),
            attributes={
                name: value.get("StringValue", "")
                for name, value in answer.get("MessageAttributes", {}).items()
            },
        )


class SqsQueue:
    """An SQS queue's operations, each retried (`client.call`); its URL is looked up once.
    The *batch* methods take any number of entries (10 per request, side by side) and return
    those SQS did not take."""

    def __init__(self, client: SqsClient, name: str, backoff: Backoff | None = None) -> None:
        self.name = name
        self._client = client
        self._backoff = backoff or Backoff()
        self._url: str | None = name if name.startswith(("https://", "http://")) else None
        self._redrive_read = False
        self._max_receive_count: int | None = None

    async def url(self) -> str:
        """The queue's URL; a permanent error naming the queue when it does not exist."""
        if self._url is None:
            try:
                answer = await self._call("get_queue_url", QueueName=self.name)
            except SqsPermanentError as exc:
                if "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
                    raise SqsPermanentError(
                        f"queue {self.name!r} not found (run `pulse infra create`)"
                    ) from exc
                raise SqsPermanentError(f"queue {self.name!r}: {exc}") from exc
            self._url = str(answer["QueueUrl"])
        return self._url

    async def send(self, body: str, attributes: Mapping[str, str | int] | None = None) -> None:
        """One message; `attributes` become message attributes (an int is a Number)."""
        params: dict[str, Any] = {"QueueUrl": await self.url(), "MessageBody": body}
        if attributes:
            params["MessageAttributes"] = {
                name: {
                    "DataType": "Number" if isinstance(value, int) else "String",
                    "StringValue": str(value),
                }
                for name, value in attributes.items()
            }
        await self._call("send_message", **params)

    async def send_batch(self, bodies: Sequence[str]) -> set[str]:
        failed = await self._batch("send_message_batch", [{"MessageBody": b} for b in bodies])
        return {f["MessageBody"] for f in failed}

    async def receive(self, count: int, wait_sec: int, visibility_sec: int) -> list[Message]:
        """Up to `count` (≤ 10) messages, hidden for `visibility_sec`; a long poll when
        `wait_sec` > 0."""
        answer = await self._call(
            "receive_message",
            QueueUrl=await self.url(),
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_sec,
            VisibilityTimeout=visibility_sec,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            MessageAttributeNames=["All"],
        )
        return [Message.received(m) for m in answer.get("Messages", [])]

    async def delete(self, receipt: str) -> None:
        await self._call("delete_message", QueueUrl=await self.url(), ReceiptHandle=receipt)

    async def delete_batch(self, receipts: Sequence[str]) -> list[str]:
        failed = await self._batch("delete_message_batch", [{"ReceiptHandle": r} for r in receipts])
        return [f["ReceiptHandle"] for f in failed]

    async def change_visibility(self, receipts: Sequence[str], seconds: int) -> list[str]:
        """Hide these deliveries for `seconds` from now (0: visible again at once)."""
        entries = [{"ReceiptHandle": r, "VisibilityTimeout": seconds} for r in receipts]
        failed = await self._batch("change_message_visibility_batch", entries)
        return [f["ReceiptHandle"] for f in failed]

    async def counts(self, *names: str) -> dict[str, int]:
        """Numeric queue attributes (ApproximateNumberOfMessages…), by name."""
        return {k: int(v) for k, v in (await self._attributes(*names)).items()}

    async def arn(self) -> str:
        return (await self._attributes("QueueArn")).get("QueueArn", "")

    async def max_receive_count(self) -> int | None:
        """The redrive policy's maxReceiveCount (None without one); read once."""
        if not self._redrive_read:
            redrive = (await self._attributes("RedrivePolicy")).get("RedrivePolicy")
            if redrive:
                self._max_receive_count = int(json.loads(redrive)["maxReceiveCount"])
            self._redrive_read = True
        return self._max_receive_count

    # --- plumbing -----------------------------------------------------------------------------

    async def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        return await call(getattr(self._client, operation), self._backoff, **params)

    async def _attributes(self, *names: str) -> dict[str, str]:
        answer = await self._call(
            "get_queue_attributes", QueueUrl=await self.url(), AttributeNames=list(names)
        )
        attributes: dict[str, str] = answer.get("Attributes", {})
        return attributes

    async def _batch(
        self, operation: str, entries: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Run a *Batch call over entries, 10 at a time side by side; returns the failed entries."""
        if not entries:
            return []
        url = await self.url()
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
