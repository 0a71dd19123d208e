"""The HTTP client every push sink talks through: one keep-alive pool per API, one timeout."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

CONNECT_TIMEOUT_SEC = 10.0


def http_client(
    *,
    timeout_sec: float,
    max_connections: int,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    keepalive_expiry: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """Every connection kept alive (`max_connections` of them, so a burst reuses warm TLS
    sessions); connecting may take at most 10 s of `timeout_sec`. `transport` is for tests."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_sec, connect=min(CONNECT_TIMEOUT_SEC, timeout_sec)),
        limits=httpx.Limits(
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
        ),
        headers=headers,
        transport=transport,
    )
