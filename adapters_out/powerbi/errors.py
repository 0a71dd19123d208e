"""Power BI failures, typed: throttled/unavailable/misconfigured wait and retry; rejected dead-letters."""

from __future__ import annotations

from pulse.adapters_out.entra.tokens import EntraAuthError
from pulse.core.errors import SinkPermanentError, SinkTransientError


class PowerBIUnavailable(SinkTransientError):
    """5xx, timeout or connection error. `maybe_landed`: the request may have been applied."""

    dependency = "powerbi"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int | None = None, maybe_landed: bool = False):
        super().__init__(message)
        self.status = status
        self.maybe_landed = maybe_landed


class PowerBIThrottled(PowerBIUnavailable):
    """429: Power BI asks us to wait `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message, status=429)
        self.retry_after = retry_after


class PowerBIAuthError(EntraAuthError):
    """Microsoft Entra ID gave no token for the Power BI scope (transient: see EntraAuthError)."""

    dependency = "powerbi"  # its incidents' signature (core.incidents)


class PowerBIAccessDenied(SinkTransientError):
    """401/403/404 that no retry fixes until an operator acts; the message says what to do."""

    dependency = "powerbi"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int, code: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code


class PowerBIRejected(SinkPermanentError):
    """400: Power BI refused the request for good; `body` is Power BI's error, verbatim."""

    dependency = "powerbi"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int, body: str):
        super().__init__(f"{message}: HTTP {status}: {body}")
        self.status = status
        self.body = body


class PowerBIFeatureDeprecated(SinkPermanentError):
    """FeatureDeprecatedError: creating push semantic models is no longer allowed."""
