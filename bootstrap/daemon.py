"""The process lifecycle: start in steps that each register their stop, serve, drain once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import web

from pulse.adapters_in.housekeeping import Housekeeping
from pulse.adapters_in.http.server import PulseRunner
from pulse.adapters_in.scheduler import ControlScheduler
from pulse.adapters_in.worker import DrainReport, InboxWorkers
from pulse.bootstrap.edge_processes import EdgeProcesses
from pulse.ports.clock import Clock
from pulse.ports.directory import Roster
from pulse.ports.sink import FactSink

log = logging.getLogger("pulse.daemon")

SITE_SHUTDOWN_SEC = 5.0  # requests being stored when SIGTERM comes get this long to finish


class Background(Protocol):
    """A loop the daemon runs beside the workers until stop (incident monitor, alert sender)."""

    async def run(self) -> None: ...


class StartFailed(Exception):
    """A start step failed; `str()` is the one line `pulse serve` prints before exiting 2."""


class Daemon:
    """One loop runs the HTTP site, the inbox workers, the scheduler and housekeeping.

    The container builds every part; the daemon only starts and stops them. `run` starts them
    one step at a time, each step registering its own stop, so a failure at any step unwinds
    exactly what had started. SIGTERM/SIGINT then `drain` within one budget."""

    def __init__(
        self,
        *,
        app: web.Application,
        workers: InboxWorkers,
        scheduler: ControlScheduler,
        sinks: Mapping[str, FactSink],
        housekeeping: Housekeeping,
        roster: Roster,
        clock: Clock,
        drain_timeout_sec: float,
        describe: Mapping[str, Any] | None = None,
        background: Sequence[Background] = (),
        edge_processes: EdgeProcesses | None = None,
    ) -> None:
        self.app = app
        self.workers = workers
        self.scheduler = scheduler
        self.sinks = sinks
        self.housekeeping = housekeeping
        self.roster = roster
        self.clock = clock
        self.drain_timeout_sec = drain_timeout_sec
        self.describe = dict(describe or {})
        self.background = tuple(background)
        self.edge_processes = edge_processes
        self.stop_requested = asyncio.Event()
        self.started = asyncio.Event()  # set once every start step has run
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    async def run(self, host: str, port: int) -> int:
        async with contextlib.AsyncExitStack() as started:
            await self.start(started, host, port)
            await self.stop_requested.wait()
            report = await self.drain(self.drain_timeout_sec)
        log.info(report.line(), extra={"fields": dataclasses.asdict(report)})
        return 0

    async def start(self, started: contextlib.AsyncExitStack, host: str, port: int) -> None:
        """Each step registers its stop on `started`; a failing step raises `StartFailed`."""
        async with _step("the roster"):
            if (await self.roster.snapshot()).count_everyone:
                log.warning(
                    "roster is empty: every agent counts "
                    "(set ROSTER_AGENTS, ROSTER_FILE or ROSTER=aloware)"
                )
        async with _step(f"listening on {host}:{port}"):
            self._runner = PulseRunner(
                self.app,
                access_log=None,
                shutdown_timeout=min(SITE_SHUTDOWN_SEC, self.drain_timeout_sec),
            )
            await self._runner.setup()
            started.push_async_callback(self._runner.cleanup)
            several = self._several_edges()
            await web.TCPSite(self._runner, host, port, reuse_port=several or None).start()
            self.port = _bound_port(self._runner, port)
        if self.edge_processes is not None and several:
            extra = self.edge_processes
            async with _step(f"{extra.extra} more edge processes"):
                await web.UnixSite(self._runner, str(extra.prepare())).start()
                await extra.start(host, self.port)
                started.push_async_callback(extra.stop, 0)  # a no-op once stopped
        self.workers.start()
        started.push_async_callback(self.workers.drain, 0)  # a no-op once drained
        async with _step("the scheduler"):
            # apscheduler and the triggers load in a thread while the edge already answers:
            # storing webhooks (what /readyz reports) does not wait for the nightly jobs'
            # library; a crontab it cannot read still stops the start here (exit 2).
            await asyncio.to_thread(self.scheduler.load)
            self.scheduler.start()
            started.callback(self.scheduler.shutdown)
        # The roster refresh at start-up; replicas starting in the same minute run it once.
        occurrence = f"startup-{self.clock.now():%Y-%m-%dT%H:%M}"
        self._tasks = [
            asyncio.create_task(self.scheduler.run_once("sync_agents", occurrence)),
            asyncio.create_task(self.housekeeping.run()),
            *(asyncio.create_task(part.run()) for part in self.background),
        ]
        started.push_async_callback(self._cancel_tasks)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
            started.callback(loop.remove_signal_handler, sig)
        self.started.set()
        log.info(
            "listening", extra={"fields": {"url": f"http://{host}:{self.port}", **self.describe}}
        )

    async def drain(self, budget_sec: float) -> DrainReport:
        """Stop intake (requests being stored finish), stop the scheduler, let batches in
        progress finish, then flush what the sinks buffer: all within `budget_sec` in total."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget_sec

        def left() -> float:
            return max(0.0, deadline - loop.time())

        log.info("stopping: no new requests; draining")
        if self.edge_processes is not None and self._several_edges():
            await self.edge_processes.stop(left())  # each finishes what it is storing
        if self._runner is not None:
            await self._runner.cleanup()
        self.scheduler.shutdown()
        await self._cancel_tasks()
        report = await self.workers.drain(left())
        for name, sink in self.sinks.items():
            try:
                await sink.drain(left())
            except Exception:
                log.exception("sink drain failed", extra={"fields": {"sink": name}})
        return report

    def _several_edges(self) -> bool:
        """EDGE_PROCESSES > 1: the port is shared with the extra edge processes."""
        return self.edge_processes is not None and self.edge_processes.enabled

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _step(what: str) -> AsyncIterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartFailed(f"{what}: the address is already in use") from exc
        raise StartFailed(f"{what}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise StartFailed(f"{what}: {exc}") from exc


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
