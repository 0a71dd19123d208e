"""Fixtures of the replica tests: every replica a test starts is killed when it ends."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from tests.support.aws.replicas import Replica


@pytest.fixture
def replicas() -> Iterable[list[Replica]]:
    """The test appends the replicas it starts; a failed test leaves no daemon behind."""
    made: list[Replica] = []
    yield made
    for replica in made:
        replica.kill_all()
