"""Fixtures of the end-to-end tests: the real `pulse serve` on its embedded defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.serve import Pulse


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Pulse]:
    env = Pulse(tmp_path)
    env.write_files()
    yield env
    for proc in env.procs:  # only ours, by handle: a failed test must not leave a daemon behind
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
