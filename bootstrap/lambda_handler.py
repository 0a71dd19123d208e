"""AWS Lambda entry points over the daemon's container (DESIGN §9): `edge` behind API Gateway,
`worker` on the SQS event source mapping. Handlers: `pulse.bootstrap.lambda_handler.edge`
and `pulse.bootstrap.lambda_handler.worker`."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # the container and its clients load on the first invocation, once
    from opentelemetry.sdk.trace import TracerProvider

    from pulse.bootstrap.container import Container

log = logging.getLogger("pulse.lambda")
T = TypeVar("T")


class LambdaRuntime:
    """One per execution environment: the settings (from the environment, as the daemon reads
    them), the container, its clients and one event loop, reused by every warm invocation."""

    def __init__(self, container: Container, tracing: TracerProvider | None = None) -> None:
        self.container = container
        self.loop = asyncio.new_event_loop()
        self._tracing = tracing
        self._parts: dict[str, Any] = {}

    @classmethod
    def from_environment(cls) -> LambdaRuntime:
        from pulse.bootstrap.launch import start_up_imports

        with start_up_imports():  # as the daemon's: no collection while the program loads
            from pulse.bootstrap.container import Container
            from pulse.bootstrap.logs import setup_logging
            from pulse.bootstrap.settings import SettingsError, load_settings, unknown_settings
            from pulse.bootstrap.telemetry import setup_tracing

        settings = load_settings()
        if settings.inbox != "sqs":
            raise SettingsError(
                f"INBOX={settings.inbox}: on Lambda the edge stores into SQS and the worker"
                " reads its event source mapping: set INBOX=sqs (and SQS_QUEUE, SQS_DLQ)"
            )
        setup_logging(settings.log_level)
        for line in unknown_settings(None, os.environ):
            log.warning(line)
        return cls(
            Container(settings=settings), setup_tracing(settings.otel_exporter_otlp_endpoint)
        )

    def edge(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._run("lambda_edge", lambda edge: edge.handle(event))

    def worker(self, event: dict[str, Any]) -> dict[str, Any]:
        return self._run("lambda_worker", lambda worker: worker.handle(event))

    def close(self) -> None:
        """Close the container's resources and the loop (tests; Lambda just ends the process)."""
        closing = self.container.shutdown_resources()
        if closing is not None:
            self.loop.run_until_complete(closing)
        self.loop.close()

    def _run(self, part: str, call: Callable[[Any], Awaitable[T]]) -> T:
        try:
            return self.loop.run_until_complete(self._called(part, call))
        finally:
            self._flush()

    async def _called(self, part: str, call: Callable[[Any], Awaitable[T]]) -> T:
        if part not in self._parts:
            built = getattr(self.container, part)()
            self._parts[part] = await built if inspect.isawaitable(built) else built
        return await call(self._parts[part])

    def _flush(self) -> None:
        from pulse.bootstrap.logs import flush_logs

        if self._tracing is not None:
            self._tracing.force_flush()
        flush_logs()


_runtime: LambdaRuntime | None = None


def runtime() -> LambdaRuntime:
    global _runtime
    if _runtime is None:
        _runtime = LambdaRuntime.from_environment()
    return _runtime


def edge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway (REST API or HTTP API proxy integration) → `POST /webhooks/{source}`."""
    return runtime().edge(event)


def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS event source mapping (ReportBatchItemFailures) → `{"batchItemFailures": […]}`."""
    return runtime().worker(event)
