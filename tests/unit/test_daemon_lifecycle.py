"""`Daemon`: start steps unwind exactly what started; one drain budget covers workers and sinks."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from pulse.adapters_in.worker import DrainReport
from pulse.bootstrap.daemon import Daemon, StartFailed
from pulse.core.model import RosterSnapshot


class FakeWorkers:
    def __init__(self, drain_takes: float = 0.0) -> None:
        self.started = False
        self.drains: list[float] = []
        self.drain_takes = drain_takes

    def start(self) -> None:
        self.started = True

    async def drain(self, budget_sec: float) -> DrainReport:
        self.drains.append(budget_sec)
        await asyncio.sleep(min(self.drain_takes, budget_sec))
        return DrainReport(acked=3, in_flight=1, dead_lettered=0, cancelled=0)


class FakeScheduler:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.running = False
        self.runs: list[str] = []
        self.loaded = False

    def load(self) -> None:  # apscheduler's import, in a thread
        self.loaded = True

    def start(self) -> None:
        assert self.loaded, "started before it loaded"
        if self.fail:
            raise RuntimeError("the job store is locked")
        self.running = True

    def shutdown(self) -> None:
        self.running = False

    async def run_once(self, name: str, occurrence: str) -> bool:
        self.runs.append(name)
        return True


class FakeSink:
    def __init__(self) -> None:
        self.drains: list[float] = []

    async def drain(self, budget_sec: float) -> None:
        self.drains.append(budget_sec)


class FakeHousekeeping:
    def __init__(self) -> None:
        self.rounds = 0

    async def run(self) -> None:
        while True:
            self.rounds += 1
            await asyncio.sleep(3600)


class FakeRoster:
    async def snapshot(self) -> RosterSnapshot:
        return RosterSnapshot(agents=(), ring_group_id=None, count_everyone=False)


class FixedClock:
    def now(self) -> datetime:
        return datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def make_daemon(**parts: Any) -> Daemon:
    app = web.Application()

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    app.router.add_get("/healthz", healthz)
    defaults: dict[str, Any] = {
        "app": app,
        "workers": FakeWorkers(),
        "scheduler": FakeScheduler(),
        "sinks": {"sink": FakeSink()},
        "housekeeping": FakeHousekeeping(),
        "roster": FakeRoster(),
        "clock": FixedClock(),
        "drain_timeout_sec": 1.0,
    }
    defaults.update(parts)
    return Daemon(**defaults)


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_a_step_that_fails_unwinds_what_had_started_and_names_the_step() -> None:
    workers = FakeWorkers()
    daemon = make_daemon(workers=workers, scheduler=FakeScheduler(fail=True))
    with pytest.raises(StartFailed, match=r"^the scheduler: the job store is locked$"):
        await daemon.run("127.0.0.1", 0)
    assert daemon.port is not None and not daemon.started.is_set()  # it had listened …
    assert not port_is_open(daemon.port)  # … and stopped listening
    assert workers.started and workers.drains == [0]  # started workers were stopped


async def test_a_roster_that_fails_stops_the_start_before_anything_listens() -> None:
    class BrokenRoster:
        async def snapshot(self) -> RosterSnapshot:
            raise RuntimeError("Aloware answered 401")

    workers = FakeWorkers()
    daemon = make_daemon(roster=BrokenRoster(), workers=workers)
    with pytest.raises(StartFailed, match=r"^the roster: Aloware answered 401$"):
        await daemon.run("127.0.0.1", 0)
    assert daemon.port is None and not workers.started


async def test_drain_spends_one_budget_on_workers_then_sinks() -> None:
    workers = FakeWorkers(drain_takes=0.3)
    sink = FakeSink()
    scheduler = FakeScheduler()
    daemon = make_daemon(workers=workers, sinks={"sink": sink}, scheduler=scheduler)
    task = asyncio.create_task(daemon.run("127.0.0.1", 0))
    await asyncio.wait_for(daemon.started.wait(), 5)
    assert scheduler.running and port_is_open(daemon.port)
    loop = asyncio.get_running_loop()
    started = loop.time()
    daemon.stop_requested.set()
    assert await asyncio.wait_for(task, 5) == 0
    elapsed = loop.time() - started
    assert workers.drains[0] == pytest.approx(1.0, abs=0.1)
    (sink_budget,) = sink.drains
    assert sink_budget <= 1.0 - 0.3 + 0.05  # what the workers left, not a second full budget
    assert elapsed < 1.0 + 0.5
    assert not scheduler.running and not port_is_open(daemon.port)
    assert scheduler.runs == ["sync_agents"]  # the start-up roster refresh
