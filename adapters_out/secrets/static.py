"""Secrets read once from the environment; a `*_PREVIOUS` value is accepted until its window ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from pulse.ports.secrets import Credential


class StaticSecrets:
    """`previous_until` is on the `now` clock (monotonic seconds): the window counts from start."""

    def __init__(
        self,
        current: Mapping[Credential, str | None],
        previous: Mapping[Credential, str | None],
        previous_until: float,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._current = {k: v for k, v in current.items() if v}
        self._previous = {k: v for k, v in previous.items() if v}
        self._previous_until = previous_until
        self._now = now

    def __repr__(self) -> str:
        return f"StaticSecrets({sorted(self._current)})"

    def current(self, credential: Credential) -> str | None:
        return self._current.get(credential)

    def accepted(self, credential: Credential) -> tuple[str, ...]:
        current = self._current.get(credential)
        if current is None:
            return ()
        previous = self._previous.get(credential)
        if previous is None or previous == current or self._now() >= self._previous_until:
            return (current,)
        return (current, previous)
