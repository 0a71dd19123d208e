"""Liveness, readiness and metrics routes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pulse.adapters_in.breakers import Breakers
from pulse.adapters_in.incidents import IncidentMonitor
from pulse.adapters_in.intake import StoreHealth
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.scheduler import JobBoard
from pulse.adapters_in.worker import InboxWorkers
from pulse.core.lanes import SinkLane
from pulse.ports.health import Pingable
from pulse.ports.inbox import Inbox

PING_TIMEOUT_SEC = 3.0


@dataclass(frozen=True, slots=True)
class Health:
    dependencies: Mapping[str, Pingable]
    metrics: Metrics
    checks: Mapping[str, Callable[[], Awaitable[None]]] = field(default_factory=dict)
    """Extra readiness checks (inbox not wedged, workers alive): raise to fail."""
    sinks: Callable[[], Mapping[str, str]] | None = None
    """Each sink's breaker state (`closed`, `open`, `half_open`): shown, never failing, since
    a sink that is down has its share held while the edge keeps storing."""
    elsewhere: Callable[[], Awaitable[Sequence[str]]] | None = None
    """The `/metrics` pages of the daemon's other edge processes (EDGE_PROCESSES), added in."""

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
        body: dict[str, Any] = {"ok": ok, "failing": failing}
        if self.sinks is not None:
            body["sinks"] = dict(self.sinks())
        return web.json_response(body, status=503 if failing else 200)

    async def metrics_text(self, request: web.Request) -> web.Response:
        pages = await self.elsewhere() if self.elsewhere is not None else ()
        return web.Response(text=self.metrics.render(pages), content_type="text/plain")


INBOX_WEDGED_AFTER_SEC = 600


def readiness_checks(
    inbox: Inbox, storing: StoreHealth, workers: InboxWorkers
) -> dict[str, Callable[[], Awaitable[None]]]:
    """The daemon's own readiness beyond the inbox's ping: it stores what the edge accepts,
    it flows (its oldest item waits less than ten minutes), every worker is alive. A failed
    job (a dimension sync during a sink outage) shows on /admin/status and /metrics instead:
    it must not take the edge out of the load balancer."""

    async def inbox_flowing() -> None:
        stats = await inbox.stats()
        if stats.depth and stats.oldest_age_sec > INBOX_WEDGED_AFTER_SEC:
            raise RuntimeError(f"oldest item waits {stats.oldest_age_sec:.0f} s")

    async def workers_alive() -> None:
        if workers.alive < workers.count:
            raise RuntimeError(f"{workers.alive}/{workers.count} workers alive")

    return {
        "inbox_storing": storing.check,
        "inbox_flowing": inbox_flowing,
        "workers": workers_alive,
    }


def sink_states(breakers: Breakers, lanes: Sequence[SinkLane]) -> Callable[[], dict[str, str]]:
    """Each sink by name, with its breaker's state."""

    def states() -> dict[str, str]:
        found = breakers.by_dependency
        return {
            lane.name: found[lane.dependency].state.value if lane.dependency in found else "closed"
            for lane in lanes
        }

    return states


@dataclass(frozen=True, slots=True)
class OperatorStatus:
    """The live state an operator asks `GET /admin/status` for."""

    jobs: JobBoard
    breakers: Breakers
    inbox: Inbox
    incidents: IncidentMonitor | None = None

    async def snapshot(self) -> dict[str, Any]:
        try:
            stats = await self.inbox.stats()
            inbox: dict[str, Any] = {
                "depth": stats.depth,
                "oldestAgeSec": round(stats.oldest_age_sec, 1),
                "deadLetters": stats.dead_letters,
            }
        except Exception as exc:
            inbox = {"error": f"{type(exc).__name__}: {exc}"}
        return {
            "jobs": self.jobs.as_dict(),
            "breakers": self.breakers.as_dict(),
            "backpressure": not self.breakers.intake_open,
            "inbox": inbox,
            **(await self._incidents()),
        }

    async def _incidents(self) -> dict[str, Any]:
        if self.incidents is None:
            return {}
        try:
            found: Any = [i.as_dict() for i in await self.incidents.store.open()]
        except Exception as exc:
            found = {"error": f"{type(exc).__name__}: {exc}"}
        return {"incidents": found}
