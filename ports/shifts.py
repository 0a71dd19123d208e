"""Where ingest learns the shift rules in force (the ones an operator last applied)."""

from __future__ import annotations

from typing import Protocol

from pulse.core.model import ShiftRule


class ShiftRuleSource(Protocol):
    async def current(self) -> tuple[ShiftRule, ...] | None:
        """The applied rules, or None when none were ever applied (the SHIFTS setting rules)."""
        ...
