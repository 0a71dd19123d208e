"""Fault benchmark: one row per fault of the whole-daemon proof, from one run.

Two real `pulse serve` replicas on moto's SQS and DynamoDB (through a fault proxy), SINK=powerbi
against the Power BI emulator, events delivered 1-6 times, faults one after another (the
scenario of tests/e2e/aws/test_outages.py). Prints a Markdown table: deliveries accepted,
distinct events, counted, lost, doubled (rows past the first, which DISTINCTCOUNT ignores),
dead-lettered, 429s Pulse caused, seconds from the fault's end until every event counted.

Run: `.venv/bin/python -m bench.faults [--outage-sec 90] [--throttle-sec 60]` (about 6 minutes
with the defaults; every address is 127.0.0.1)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ledger import moto_process
from tests.emulators.clock import ScaledTime
from tests.emulators.powerbi import PowerBIEmulator
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.aws.fault_scenario import HEADER, FaultRun


async def run(outage_sec: float, throttle_sec: float) -> None:
    with moto_process() as moto, tempfile.TemporaryDirectory() as home:
        proxy = FaultProxy(moto)
        await proxy.start()
        async with PowerBIEmulator(timebase=ScaledTime(1.0)) as emulator:
            faults = FaultRun(Path(home), moto, proxy, emulator, outage_sec, throttle_sec)
            try:
                await faults.start()
                await faults.outage_with_a_kill()
                await faults.storm_and_expired_tokens()
                await faults.dynamodb_throttling()
                await faults.poison()
            finally:
                faults.stop()
                await proxy.close()
    print(f"outage {outage_sec:g} s, DynamoDB throttling {throttle_sec:g} s, two replicas\n")
    print(HEADER)
    for row in faults.rows:
        print(row.line())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outage-sec", type=float, default=90.0)
    parser.add_argument("--throttle-sec", type=float, default=60.0)
    args = parser.parse_args()
    asyncio.run(run(args.outage_sec, args.throttle_sec))


if __name__ == "__main__":
    main()
