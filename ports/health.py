"""What every outbound adapter offers the readiness probe and the lifecycle."""

from __future__ import annotations

from typing import Protocol


class Pingable(Protocol):
    async def ping(self) -> None:
        """Return when the dependency answers; raise with a readable message when it does not."""
        ...
