"""One scheduler replica in its own process (run by test_scheduler): every-second job, shared leases."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import UTC
from pathlib import Path

from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.scheduler import ControlScheduler, Job, JobBoard
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.sqlite.control import SqliteJobLease, open_control_db
from pulse.core.control import Caller, Summary


async def main(db_path: Path, runs_file: Path, seconds: float) -> None:
    db = open_control_db(db_path)
    clock = SystemClock()
    occurrences: list[str] = []

    async def job(caller: Caller) -> Summary:
        start = time.time()
        await asyncio.sleep(0.3)  # long enough that a concurrent run would overlap
        with runs_file.open("a") as out:
            out.write(json.dumps({"pid": os.getpid(), "start": start, "end": time.time()}) + "\n")
        return Summary("tick", "applied", False, {}, time.time() - start)

    board = JobBoard(Metrics())
    scheduler = ControlScheduler(
        [Job("tick", "* * * * * *", job)], SqliteJobLease(db, clock), clock, UTC, board
    )
    scheduler.start()
    await asyncio.sleep(seconds)
    scheduler.shutdown()
    occurrences = [run.occurrence for run in board.last.values()]
    print(
        json.dumps(
            {
                "runs": board.metrics.value("job_runs_total", job="tick", outcome="ok"),
                "last": occurrences,
            }
        )
    )
    await db.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])))
