"""The aiobotocore SQS client, its retry policy, and how its errors become Pulse's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pulse.adapters_out.aws_client import open_client
from pulse.core.errors import PermanentError, TransientError

if TYPE_CHECKING:  # aiobotocore loads only when this store is configured (cold start)
    from aiobotocore.session import AioSession
    from botocore.exceptions import ClientError

# SQS throttles per API action; "OverLimit" is the in-flight message quota, which drains.
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "RequestThrottled", "OverLimit", "KmsThrottled"}
)

SqsClient = Any
"""An aiobotocore SQS client (untyped: its methods are generated from the service model)."""


class SqsTransientError(TransientError):
    """SQS did not answer, throttled, or answered 5xx, after our retries."""


class SqsPermanentError(PermanentError):
    """SQS refused the request for good (missing queue, access denied, message too large)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter")."""

    attempts: int = 6
    base_sec: float = 0.05
    cap_sec: float = 2.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_sec, self.base_sec * 2**attempt))


async def sqs_client(
    region: str,
    endpoint_url: str | None = None,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    max_pool_connections: int = 32,
    session: AioSession | None = None,
) -> AsyncIterator[SqsClient]:
    """Open one client for the process (a container Resource); credentials from the default
    chain (ECS task role, env) unless given. A shared `session` saves reloading the
    service model per client."""
    opened = open_client(
        "sqs",
        region,
        endpoint_url,
        access_key_id,
        secret_access_key,
        session,
        retries={"total_max_attempts": 1, "mode": "standard"},  # we own retries (`call`)
        # Long polls hold a request open up to MAX_WAIT_SEC; the read timeout must outlast it.
        read_timeout=30,
        max_pool_connections=max_pool_connections,
    )
    async with opened as client:
        yield client


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


async def call(
    operation: Callable[..., Awaitable[dict[str, Any]]], backoff: Backoff, **params: Any
) -> dict[str, Any]:
    """Run one SQS operation, retrying throttling, 5xx and lost connections.

    A retried send may enqueue twice; the ledger turns the repeat into a duplicate.
    """
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    attempt = 0
    while True:
        try:
            return await operation(**params)
        except ClientError as exc:
            code = error_code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code not in THROTTLING_CODES and status < 500:
                raise SqsPermanentError(f"{code}: {exc}") from exc
            if attempt + 1 >= backoff.attempts:
                raise SqsTransientError(f"{code or status} after {attempt + 1} attempts") from exc
        except (TimeoutError, ConnectionError, HTTPClientError) as exc:
            if attempt + 1 >= backoff.attempts:
                raise SqsTransientError(f"sqs unreachable: {exc!r}") from exc
        await asyncio.sleep(backoff.delay(attempt))
        attempt += 1
