"""How every AWS client of Pulse is opened (DynamoDB, SQS, Secrets Manager): one aiobotocore
session when given (the service model loads once), credentials from the default chain (ECS task
role, env) unless given, and a 3 s connect timeout; each technology adds its own retries, read
timeout and pool. aiobotocore is imported here, on first use, so a configuration without AWS
never loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiobotocore.session import AioSession


def open_client(
    service: str,
    region: str,
    endpoint_url: str | None,
    access_key_id: str | None,
    secret_access_key: str | None,
    session: AioSession | None,
    **config: Any,
) -> Any:
    """The client's async context manager; `config`: AioConfig options beyond the connect timeout."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session

    return (session or get_session()).create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=AioConfig(connect_timeout=3, **config),
    )
