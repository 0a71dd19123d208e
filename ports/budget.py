"""Where replicas keep one sink budget's shared state (DESIGN §4 "One budget across replicas")."""

from __future__ import annotations

from typing import Any, Protocol


class BudgetStore(Protocol):
    async def read(self, name: str) -> tuple[dict[str, Any] | None, int]:
        """The budget's state and its version (0: never written)."""
        ...

    async def write(self, name: str, state: dict[str, Any], version: int) -> bool:
        """Store `state` as version `version + 1` if the stored version is still `version`;
        False when another replica wrote first (read again and retry)."""
        ...
