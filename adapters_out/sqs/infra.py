"""Provisioning: the inbox queue and its DLQ, joined by a redrive policy, created idempotently."""

from __future__ import annotations

import json
from typing import Any

from pulse.adapters_out.sqs.client import Backoff, SqsClient, SqsPermanentError, call, error_code
from pulse.adapters_out.sqs.queue import SQS_MESSAGE_LIMIT

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
    dead_letter_retention_days: int = 14,
) -> list[str]:
    """Create the DLQ, then the queue redriving into it; fix a drifted redrive policy or DLQ
    retention (DEAD_LETTER_RETENTION_DAYS, at most SQS's 14 days)."""
    retention_sec = min(RETENTION_SEC, dead_letter_retention_days * 86_400)
    dlq_arn, dlq_line = await _ensure_dead_letter_queue(
        client, dead_letter_queue, retention_sec, dry_run
    )
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    # A backstop for a message that keeps crashing processes: outages hold deliveries.
    described = f"redrive to {dead_letter_queue} after {max_receive_count} receives, crash backstop"
    url = await _url(client, queue)
    if url is None:
        if dry_run:
            return [dlq_line, f"sqs queue {queue}: would create ({described})"]
        await _create(
            client,
            queue,
            {"RedrivePolicy": json.dumps(redrive), "VisibilityTimeout": str(visibility_sec)},
        )
        return [dlq_line, f"sqs queue {queue}: created ({described})"]
    return [dlq_line, await _ensure_redrive(client, queue, url, redrive, described, dry_run)]


async def _ensure_dead_letter_queue(
    client: SqsClient, name: str, retention_sec: int, dry_run: bool
) -> tuple[str, str]:
    """The DLQ's ARN (a placeholder when a dry run would create it) and what was done. SQS
    drops a DLQ message `retention_sec` after it was first sent (for one its redrive moved:
    after it was first sent to the main queue)."""
    kept = f"dead letters, {retention_sec // 86_400:g} days"
    url = await _url(client, name)
    if url is None and dry_run:
        return "<arn of the new dead-letter queue>", f"sqs queue {name}: would create ({kept})"
    if url is None:
        url = await _create(client, name, {"MessageRetentionPeriod": str(retention_sec)})
        line = f"sqs queue {name}: created ({kept})"
    else:
        line = f"sqs queue {name}: exists"
    attrs = await call(
        client.get_queue_attributes,
        _BACKOFF,
        QueueUrl=url,
        AttributeNames=["QueueArn", "MessageRetentionPeriod"],
    )
    found = attrs["Attributes"]
    if int(found.get("MessageRetentionPeriod", retention_sec)) != retention_sec:
        if dry_run:
            line += f"; would set {kept}"
        else:
            await call(
                client.set_queue_attributes,
                _BACKOFF,
                QueueUrl=url,
                Attributes={"MessageRetentionPeriod": str(retention_sec)},
            )
            line += f"; set {kept}"
    return str(found["QueueArn"]), line


async def _ensure_redrive(
    client: SqsClient,
    queue: str,
    url: str,
    redrive: dict[str, Any],
    described: str,
    dry_run: bool,
) -> str:
    """An existing queue keeps its redrive policy when it matches, else gets `redrive`."""
    attrs = await call(
        client.get_queue_attributes, _BACKOFF, QueueUrl=url, AttributeNames=["RedrivePolicy"]
    )
    current = json.loads(attrs.get("Attributes", {}).get("RedrivePolicy", "{}"))
    if (
        current.get("deadLetterTargetArn") == redrive["deadLetterTargetArn"]
        and int(current.get("maxReceiveCount", 0)) == redrive["maxReceiveCount"]
    ):
        return f"sqs queue {queue}: exists ({described})"
    if dry_run:
        return f"sqs queue {queue}: exists; would set {described}"
    await call(
        client.set_queue_attributes,
        _BACKOFF,
        QueueUrl=url,
        Attributes={"RedrivePolicy": json.dumps(redrive)},
    )
    return f"sqs queue {queue}: exists; set {described}"


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
