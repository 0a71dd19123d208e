"""The scheduler: jobs fire on cron, take the lease first, and run once across replicas."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.scheduler import ControlScheduler, Job, JobBoard
from pulse.core.control import Caller, Summary
from tests.fakes import FakeClock, FakeLeases

ROOT = Path(__file__).parents[3]


def scheduler(
    run: object, clock: FakeClock, leases: FakeLeases | None = None, replica: str = "a"
) -> ControlScheduler:
    return ControlScheduler(
        [Job("sync_agents", "15 2 * * *", run)],  # type: ignore[arg-type]
        leases or FakeLeases(),
        clock,
        UTC,
        JobBoard(Metrics()),
        replica=replica,
    )


async def test_a_firing_takes_the_lease_of_its_occurrence_and_a_second_replica_skips_it() -> None:
    runs: list[Caller] = []

    async def job(caller: Caller) -> Summary:
        runs.append(caller)
        return Summary("sync_agents", "applied", False, {"rows": 2}, 0.1)

    leases = FakeLeases()
    clock = FakeClock(datetime(2026, 11, 6, 2, 15, 3, tzinfo=UTC))
    first, second = scheduler(job, clock, leases, "a"), scheduler(job, clock, leases, "b")

    assert await first.fire("sync_agents") is True
    clock.advance(40)  # a late replica, still within the misfire grace
    assert await second.fire("sync_agents") is False

    assert len(runs) == 1 and runs[0].who == "scheduler"
    assert leases.taken == ["job:sync_agents:2026-11-06T02:15:00+00:00"]
    assert first.board.as_dict()["sync_agents"]["ok"] is True
    clock.advance(timedelta(days=1).total_seconds())
    assert await second.fire("sync_agents") is True  # the next night is a new occurrence


async def test_a_failed_run_is_recorded_for_readiness_and_metrics() -> None:
    async def job(caller: Caller) -> Summary:
        raise RuntimeError("aloware down")

    s = scheduler(job, FakeClock(datetime(2026, 11, 6, 2, 15, tzinfo=UTC)))
    await s.fire("sync_agents")

    last = s.board.as_dict()["sync_agents"]
    assert last["ok"] is False and last["detail"] == "RuntimeError: aloware down"
    assert s.board.metrics.value("job_runs_total", job="sync_agents", outcome="failed") == 1


async def test_jobs_fire_on_a_short_cron_in_the_running_loop() -> None:
    fired = asyncio.Event()

    async def job(caller: Caller) -> Summary:
        fired.set()
        return Summary("tick", "applied", False, {}, 0.0)

    from pulse.adapters_out.clock import SystemClock

    s = ControlScheduler(
        [Job("tick", "* * * * * *", job)], FakeLeases(), SystemClock(), UTC, JobBoard(Metrics())
    )
    s.start()
    try:
        await asyncio.wait_for(fired.wait(), 3)
    finally:
        s.shutdown()


@pytest.mark.slow
def test_two_scheduler_processes_never_run_the_same_job_concurrently(tmp_path: Path) -> None:
    runs_file = tmp_path / "runs.jsonl"
    command = [
        sys.executable,
        "-m",
        "tests.support.scheduler_replica",
        str(tmp_path / "control.sqlite"),
        str(runs_file),
        "3.5",
    ]
    replicas = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=30)[0]) for p in replicas]

    runs = sorted(
        (json.loads(line) for line in runs_file.read_text().splitlines()), key=lambda r: r["start"]
    )
    assert 2 <= len(runs) <= 5  # about one per second, never one per replica per second
    assert sum(o["runs"] for o in outputs) == len(runs)
    for earlier, later in itertools.pairwise(runs):
        assert later["start"] >= earlier["end"], "two runs overlapped"
