"""The aiobotocore DynamoDB client, its retry policy, and how its errors become Pulse's."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulse.adapters_out.aws_client import open_client
from pulse.core.errors import PermanentError, TransientError

if TYPE_CHECKING:  # aiobotocore loads only when this store is configured (cold start)
    from aiobotocore.session import AioSession

log = logging.getLogger("pulse.dynamodb")

# DynamoDB's documented throttling answers; RequestLimitExceeded is the account-level one.
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"}
)
# Server-side hiccups worth another try; everything else (validation, access, missing table)
# will not pass by waiting.
SERVER_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionConflictException"}
)

DynamoClient = Any
"""An aiobotocore DynamoDB client (untyped: its methods are generated from the service model)."""


class DynamoTransientError(TransientError):
    """DynamoDB did not answer, or answered 5xx, after our retries."""

    dependency = "dynamodb"  # its incidents' signature (core.incidents)


class DynamoThrottled(DynamoTransientError):
    """DynamoDB kept throttling past our retry budget."""


class DynamoPermanentError(PermanentError):
    """DynamoDB refused the request for good (missing table, access denied, bad request)."""

    dependency = "dynamodb"  # its incidents' signature (core.incidents)


class ConditionFailed(Exception):
    """A conditional write lost; `item` is the item that made it lose, when DynamoDB said."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("conditional check failed")
        self.item = item


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""

    throttle_budget_sec: float = 10.0  # how long throttling may stall one call before it fails
    base_sec: float = 0.05
    cap_sec: float = 2.0
    transient_attempts: int = 4  # 5xx and lost connections: a few tries, then TransientError

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_sec, self.base_sec * 2**attempt))


async def dynamodb_client(
    region: str,
    endpoint_url: str | None = None,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    max_pool_connections: int = 64,
    session: AioSession | None = None,
) -> AsyncIterator[DynamoClient]:
    """Open one client for the process (a container Resource); credentials from the default
    chain (ECS task role, env) unless given. A shared `session` saves reloading the
    service model per client."""
    opened = open_client(
        "dynamodb",
        region,
        endpoint_url,
        access_key_id,
        secret_access_key,
        session,
        # We own retries (`call`), so a throttled claim is retried once, with our budget.
        retries={"total_max_attempts": 1, "mode": "standard"},
        read_timeout=10,
        max_pool_connections=max_pool_connections,
    )
    async with opened as client:
        yield client


async def call(
    operation: Callable[..., Awaitable[dict[str, Any]]], backoff: Backoff, **params: Any
) -> dict[str, Any]:
    """Run one DynamoDB operation: retry throttling and 5xx, raise ConditionFailed or a typed error.

    Every write Pulse makes is conditional on its own token or idempotent, so a retry after a
    lost answer is safe; the callers recognise their own earlier write.
    """
    started = time.monotonic()
    attempt = failures = 0
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    while True:
        delay = backoff.delay(attempt)
        try:
            return await operation(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code == "ConditionalCheckFailedException":
                raise ConditionFailed(exc.response.get("Item")) from None
            if code in THROTTLING_CODES:
                if time.monotonic() - started + delay > backoff.throttle_budget_sec:
                    raise DynamoThrottled(f"{code} for {attempt + 1} attempts") from exc
            elif code in SERVER_CODES or status >= 500:
                failures += 1
                if failures >= backoff.transient_attempts:
                    raise DynamoTransientError(f"{code or status}: {exc}") from exc
            else:
                raise DynamoPermanentError(f"{code}: {exc}") from exc
        except (TimeoutError, ConnectionError, HTTPClientError) as exc:
            failures += 1
            if failures >= backoff.transient_attempts:
                raise DynamoTransientError(f"dynamodb unreachable: {exc!r}") from exc
        await asyncio.sleep(delay)
        attempt += 1


async def ensure_active(client: DynamoClient, table: str, backoff: Backoff) -> None:
    """The table exists and takes writes (for /readyz and `pulse check`)."""
    try:
        answer = await call(client.describe_table, backoff, TableName=table)
    except DynamoPermanentError as exc:
        if "ResourceNotFoundException" in str(exc):
            raise DynamoPermanentError(
                f"table {table!r} not found (run `pulse infra create`)"
            ) from exc
        raise
    status = answer["Table"]["TableStatus"]
    if status not in ("ACTIVE", "UPDATING"):
        raise DynamoPermanentError(f"table {table} is {status}")
