"""OpenTelemetry's API, imported on first use rather than at start-up.

Importing it loads its context, which scans every installed distribution's entry points: about
a twentieth of the daemon's cold start. With the tracer here, `pulse serve` answers `/readyz`
before that: the edge imports the API only when it exports traces, the workers on their first
batch. What it traces, and to which provider, is unchanged: a tracer got before
`trace.set_tracer_provider` follows the provider set later, as OpenTelemetry's own does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from opentelemetry.trace import Span, Tracer


class LazyTracer:
    """`trace.get_tracer(name)`, got on the first span."""

    __slots__ = ("_tracer", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._tracer: Tracer | None = None

    def start_as_current_span(self, name: str, **kwargs: Any) -> AbstractContextManager[Span]:
        if self._tracer is None:
            from opentelemetry import trace

            self._tracer = trace.get_tracer(self.name)
        return self._tracer.start_as_current_span(name, **kwargs)
