"""Liveness, readiness and metrics routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from adapters_in.metrics import Metrics
from ports.health import Pingable

PING_TIMEOUT_SEC = 3.0


@dataclass(frozen=True, slots=True)
class Health:
    dependencies: Mapping[str, Pingable]
    metrics: Metrics
    checks: Mapping[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    """Extra readiness checks (inbox not wedged, workers alive): raise to fail."""

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        probes: dict[str, Callable[[], Awaitable[None]]] = {
            name: dep.ping for name, dep in self.dependencies.items()
        }
        probes.update(self.checks)
        results = await asyncio.gather(
            *(asyncio.wait_for(probe(), PING_TIMEOUT_SEC) for probe in probes.values()),
            return_exceptions=True,
        )
        ok, failing = [], {}
        for name, result in zip(probes, results, strict=True):
            if isinstance(result, BaseException):
                failing[name] = f"{type(result).__name__}({result})"
            else:
                ok.append(name)
        return web.json_response({"ok": ok, "failing": failing}, status=503 if failing else 200)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain")
