"""The idempotency ledger: claim, commit, release (DESIGN §2 "Exactly once")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to one `claim` call.

    `claimed`: keys now PENDING under `token` (ours to push, then commit or release);
    `done`: keys already DONE (duplicates); `busy`: PENDING under someone else's live lease.
    """

    token: str
    claimed: tuple[str, ...]
    done: tuple[str, ...] = ()
    busy: tuple[str, ...] = ()


class Ledger(Protocol):
    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        """Conditional put per key: new, or PENDING with an expired lease."""
        ...

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        """Mark claimed keys (all, or `keys`) DONE and set their TTL; `forever` keeps them
        with no TTL (dimension rows pushed once must never be pushed again)."""
        ...

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        """Delete our own PENDING claims (all, or `keys`) so another attempt can take them."""
        ...

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        """The keys among these that are DONE (counted already); reads only, so a dry run
        can tell what is missing without claiming anything."""
        ...

    async def purge_expired(self) -> int:
        """Drop DONE keys past their TTL; returns how many (stores with native TTL return 0)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
