"""Provisioning: the Pulse table (PAY_PER_REQUEST, TTL on `expires_at`), created idempotently."""

from __future__ import annotations

from pulse.adapters_out.dynamodb.client import Backoff, DynamoClient, DynamoPermanentError, call

TTL_ATTRIBUTE = "expires_at"
_BACKOFF = Backoff()


async def ensure_table(client: DynamoClient, table: str, *, dry_run: bool) -> list[str]:
    """Create `table` and its TTL unless present; one line per thing checked or done."""
    lines: list[str] = []
    try:
        answer = await call(client.describe_table, _BACKOFF, TableName=table)
    except DynamoPermanentError as exc:
        if "ResourceNotFoundException" not in str(exc):
            raise
        if dry_run:
            return [
                f"dynamodb table {table}: would create (pk: string hash key, PAY_PER_REQUEST)",
                f"dynamodb table {table}: would enable TTL on {TTL_ATTRIBUTE}",
            ]
        await call(
            client.create_table,
            _BACKOFF,
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        await client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        lines.append(f"dynamodb table {table}: created (pk: string hash key, PAY_PER_REQUEST)")
    else:
        keys = {k["AttributeName"]: k["KeyType"] for k in answer["Table"]["KeySchema"]}
        if keys != {"pk": "HASH"}:
            raise DynamoPermanentError(
                f"dynamodb table {table} exists with key schema {keys}; Pulse needs pk (HASH) only"
            )
        mode = answer["Table"].get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        lines.append(f"dynamodb table {table}: exists ({answer['Table']['TableStatus']}, {mode})")

    ttl = await call(client.describe_time_to_live, _BACKOFF, TableName=table)
    spec = ttl.get("TimeToLiveDescription", {})
    status, attribute = spec.get("TimeToLiveStatus", "DISABLED"), spec.get("AttributeName")
    if status in ("ENABLED", "ENABLING") and attribute == TTL_ATTRIBUTE:
        lines.append(f"dynamodb table {table}: TTL on {TTL_ATTRIBUTE} {status.lower()}")
    elif status in ("ENABLED", "ENABLING"):
        raise DynamoPermanentError(
            f"dynamodb table {table} has TTL on {attribute!r}; Pulse needs it on {TTL_ATTRIBUTE}"
        )
    elif dry_run:
        lines.append(f"dynamodb table {table}: would enable TTL on {TTL_ATTRIBUTE}")
    else:
        await call(
            client.update_time_to_live,
            _BACKOFF,
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
        )
        lines.append(f"dynamodb table {table}: TTL enabled on {TTL_ATTRIBUTE}")
    return lines
