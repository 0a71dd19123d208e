"""`pulse infra create`: the DynamoDB table(s) and SQS queues Pulse needs, made idempotently."""

from __future__ import annotations

from contextlib import asynccontextmanager

from pulse.adapters_out.dynamodb.client import dynamodb_client
from pulse.adapters_out.dynamodb.infra import ensure_table
from pulse.adapters_out.sqs.client import sqs_client
from pulse.adapters_out.sqs.infra import ensure_queues


async def create_infra(
    *,
    region: str,
    endpoint_url: str | None = None,
    table: str | None = None,
    control_table: str | None = None,
    queue: str | None = None,
    dead_letter_queue: str | None = None,
    max_receive_count: int = 100,
    visibility_sec: int = 60,
    dead_letter_retention_days: int = 14,
    dry_run: bool = False,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> list[str]:
    """Create what is named (a table when `table`, queues when `queue`), report one line each.

    `dry_run` only reads: it says what exists and what would be created or changed.
    """
    lines: list[str] = []
    tables = [t for t in dict.fromkeys((table, control_table)) if t]
    if tables:
        opened = asynccontextmanager(dynamodb_client)(
            region,
            endpoint_url,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        async with opened as db:
            for name in tables:
                lines += await ensure_table(db, name, dry_run=dry_run)
    if queue:
        if not dead_letter_queue:
            raise ValueError("an SQS inbox needs a dead-letter queue name")
        opened_sqs = asynccontextmanager(sqs_client)(
            region,
            endpoint_url,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
        )
        async with opened_sqs as sqs:
            lines += await ensure_queues(
                sqs,
                queue,
                dead_letter_queue,
                max_receive_count=max_receive_count,
                visibility_sec=visibility_sec,
                dry_run=dry_run,
                dead_letter_retention_days=dead_letter_retention_days,
            )
    return lines
