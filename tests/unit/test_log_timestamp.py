"""The JSON lines' `ts`: formatted once per second and reused, yet the same text
`datetime.isoformat(timespec="milliseconds")` gives for every instant."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pulse.bootstrap.logs import JsonFormatter


def test_every_instant_reads_as_datetime_writes_it() -> None:
    formatter = JsonFormatter()
    draw = random.Random(15)
    instants = [draw.uniform(1e9, 2e9) for _ in range(20_000)]
    instants += [1451191752.803, 1451191752.9999996, 1451191752.9995, 1700000000.0]
    for created in sorted(instants) + instants:  # in order (one second reused) and not
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert formatter.timestamp(created) == expected, created
