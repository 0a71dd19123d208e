"""Fabric failures, typed like Power BI's: throttled/unavailable/denied wait and retry; rejected
dead-letters with Fabric's own error text."""

from __future__ import annotations

from pulse.core.errors import SinkPermanentError, SinkTransientError


class FabricUnavailable(SinkTransientError):
    """5xx, timeout or connection error (after the sink's retries). `maybe_landed`: the last
    request may have been applied (the read side deduplicates on EventKey)."""

    dependency = "fabric"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int | None = None, maybe_landed: bool = False):
        super().__init__(message)
        self.status = status
        self.maybe_landed = maybe_landed


class FabricThrottled(FabricUnavailable):
    """429 (or Event Hubs' 503 ServerBusy): wait `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None, status: int = 429):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class FabricTooLarge(SinkTransientError):
    """413: the service's request limit is lower than ours; the sender splits and resends."""

    dependency = "fabric"  # its incidents' signature (core.incidents)


class FabricAccessDenied(SinkTransientError):
    """401/403/404 that no retry fixes until an operator acts; the message says what to do."""

    dependency = "fabric"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.status = status


class FabricRejected(SinkPermanentError):
    """400: Fabric refused the request for good; `body` is its error, verbatim."""

    dependency = "fabric"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int, body: str):
        super().__init__(f"{message}: HTTP {status}: {body}")
        self.status = status
        self.body = body
