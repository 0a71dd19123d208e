"""Provisioning: the inbox queue and its DLQ, joined by a redrive policy, created idempotently."""

from __future__ import annotations

import json
from typing import Any

from adapters_out.sqs.client import Backoff, SqsClient, SqsPermanentError, call, error_code
from adapters_out.sqs.queue import SQS_MESSAGE_LIMIT

RETENTION_SEC = 1_209_600  # 14 days, SQS's maximum: an outage of the sink must not lose events
_BACKOFF = Backoff()


async def ensure_queues(
    client: SqsClient,
    queue: str,
    dead_letter_queue: str,
    *,
    max_receive_count: int,
    visibility_sec: int,
    dry_run: bool,
) -> list[str]:
    """Create the DLQ, then the queue redriving into it; fix a drifted redrive policy."""
    lines: list[str] = []
    dlq_url = await _url(client, dead_letter_queue)
    if dlq_url is None:
        if dry_run:
            lines.append(f"sqs queue {dead_letter_queue}: would create (dead letters, 14 days)")
        else:
            dlq_url = await _create(client, dead_letter_queue, {})
            lines.append(f"sqs queue {dead_letter_queue}: created (dead letters, 14 days)")
    else:
        lines.append(f"sqs queue {dead_letter_queue}: exists")

    dlq_arn = "<arn of the new dead-letter queue>"
    if dlq_url is not None:
        attrs = await call(
            client.get_queue_attributes, _BACKOFF, QueueUrl=dlq_url, AttributeNames=["QueueArn"]
        )
        dlq_arn = attrs["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    described = f"redrive to {dead_letter_queue} after {max_receive_count} receives"

    url = await _url(client, queue)
    if url is None:
        if dry_run:
            lines.append(f"sqs queue {queue}: would create ({described})")
            return lines
        await _create(
            client,
            queue,
            {"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": str(visibility_sec)},
        )
        lines.append(f"sqs queue {queue}: created ({described})")
        return lines

    attrs = await call(
        client.get_queue_attributes, _BACKOFF, QueueUrl=url, AttributeNames=["RedrivePolicy"]
    )
    current = json.loads(attrs.get("Attributes", {}).get("RedrivePolicy", "{}"))
    if (
        current.get("deadLetterTargetArn") == dlq_arn
        and int(current.get("maxReceiveCount", 0)) == max_receive_count
    ):
        lines.append(f"sqs queue {queue}: exists ({described})")
    elif dry_run:
        lines.append(f"sqs queue {queue}: exists; would set {described}")
    else:
        await call(
            client.set_queue_attributes,
            _BACKOFF,
            QueueUrl=url,
            Attributes={"RedrivePolicy": json.dumps(redrive)},
        )
        lines.append(f"sqs queue {queue}: exists; set {described}")
    return lines


async def _url(client: SqsClient, name: str) -> str | None:
    try:
        answer = await call(client.get_queue_url, _BACKOFF, QueueName=name)
    except SqsPermanentError as exc:
        cause = exc.__cause__
        code = error_code(cause) if cause is not None and hasattr(cause, "response") else ""
        if "NonExistentQueue" in code or "QueueDoesNotExist" in code:
            return None
        raise
    return str(answer["QueueUrl"])


async def _create(client: SqsClient, name: str, attributes: dict[str, Any]) -> str:
    answer = await call(
        client.create_queue,
        _BACKOFF,
        QueueName=name,
        Attributes={
            "MessageRetentionPeriod": str(RETENTION_SEC),
            "MaximumMessageSize": str(SQS_MESSAGE_LIMIT),
            **attributes,
        },
    )
    return str(answer["QueueUrl"])
