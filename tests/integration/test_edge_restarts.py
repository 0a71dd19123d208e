"""An extra edge process that keeps exiting is started again less and less often (a setting
only it rejects must not become a fork loop); one that ran a while is started again soon."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pulse.adapters_in.metrics import Metrics
from pulse.bootstrap import edge_processes
from pulse.bootstrap.edge_processes import EdgeProcesses

EXITS_AT_ONCE = (sys.executable, "-c", "import sys; sys.exit(3)")


@pytest.fixture(autouse=True)
def _short_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(edge_processes, "RESTART_DELAY_SEC", 0.01)
    monkeypatch.setattr(edge_processes, "RESTART_DELAY_MAX_SEC", 0.08)


async def restarts_of(processes: EdgeProcesses, count: int) -> list[float]:
    processes.prepare()
    await processes.start("127.0.0.1", 0)
    try:
        for _ in range(500):
            if len(processes.delays) >= count:
                break
            await asyncio.sleep(0.02)
    finally:
        await processes.stop(5)
    return processes.delays[:count]


async def test_a_child_exiting_at_once_waits_twice_as_long_each_time_up_to_the_cap() -> None:
    delays = await restarts_of(EdgeProcesses(2, command=EXITS_AT_ONCE), 6)
    assert delays == [0.01, 0.02, 0.04, 0.08, 0.08, 0.08]


async def test_a_child_that_ran_a_while_is_started_again_after_the_first_delay() -> None:
    ticks = itertools.count(0, edge_processes.STEADY_SEC)  # each run lasts a minute
    delays = await restarts_of(
        EdgeProcesses(2, command=EXITS_AT_ONCE, clock=lambda: float(next(ticks))), 4
    )
    assert delays == [0.01, 0.01, 0.01, 0.01]


async def test_stop_leaves_no_child_and_no_folder() -> None:
    processes = EdgeProcesses(3, command=(sys.executable, "-c", "import time; time.sleep(60)"))
    processes.prepare()
    await processes.start("127.0.0.1", 0)
    run_dir = processes.run_dir
    assert run_dir is not None and run_dir.is_dir()
    await processes.stop(5)
    assert all(p.returncode is not None for p in processes._procs.values())
    assert not run_dir.exists()


def test_a_folder_left_by_a_killed_first_process_is_removed_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path
    monkeypatch.setattr(edge_processes.tempfile, "tempdir", str(folder))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, check=True, text=True)  # fmt: skip
    orphan = folder / "pulse-edge-old"
    orphan.mkdir()
    (orphan / "pid").write_text(gone.stdout.strip())
    alive = folder / "pulse-edge-alive"
    alive.mkdir()
    (alive / "pid").write_text(str(os.getpid()))
    other = folder / "pulse-edge-nopid"
    other.mkdir()

    processes = EdgeProcesses(2)
    socket = processes.prepare()

    assert not orphan.exists()
    assert alive.exists() and other.exists()  # a live first process's, and one not ours to judge
    assert socket.parent.parent == folder and (socket.parent / "pid").read_text() == str(
        os.getpid()
    )


async def test_the_silence_alarm_hears_each_source_the_other_processes_stored_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge_processes, "ACTIVITY_SEC", 0.01)
    rounds = []
    for received in ({"aloware": 2}, {"aloware": 2}, {"aloware": 3, "hubspot": 1}):
        page = Metrics()
        for source, count in received.items():
            page.inc("webhooks_received_total", count, source=source)
        rounds.append([page.render()])
    heard: list[list[str]] = []
    processes = EdgeProcesses(2, saw=lambda source: heard[-1].append(source))

    async def pages() -> list[str]:
        heard.append([])
        if not rounds:
            raise asyncio.CancelledError
        return rounds.pop(0)

    monkeypatch.setattr(processes, "pages", pages)
    with pytest.raises(asyncio.CancelledError):
        await processes.run()
    assert heard == [["aloware"], [], ["aloware", "hubspot"], []]
