"""One sink's share of the ledger: every key under `<sink>/` in the one store (DESIGN §9).

With several sinks each counts its events exactly once on its own: `powerbi/aloware:123` DONE
says nothing of `fabric-eventhouse/aloware:123`. The first sink listed keeps the plain keys
(`aloware:123`), so adding a sink beside the one a deployment runs recounts nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from pulse.ports.ledger import Claim, Ledger


class NamespacedLedger:
    """`Ledger` over another, each key prefixed with `prefix`; the store is the inner ledger's
    to close (the sinks share it)."""

    def __init__(self, ledger: Ledger, prefix: str) -> None:
        self._ledger = ledger
        self.prefix = prefix

    def _in(self, keys: Sequence[str]) -> list[str]:
        return [self.prefix + key for key in keys]

    def _out(self, keys: Sequence[str]) -> tuple[str, ...]:
        return tuple(key.removeprefix(self.prefix) for key in keys)

    def _inner(self, claim: Claim) -> Claim:
        return Claim(
            claim.token,
            tuple(self._in(claim.claimed)),
            tuple(self._in(claim.done)),
            tuple(self._in(claim.busy)),
        )

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        found = await self._ledger.claim(self._in(keys), lease)
        return Claim(
            found.token, self._out(found.claimed), self._out(found.done), self._out(found.busy)
        )

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        chosen = None if keys is None else self._in(keys)
        await self._ledger.commit(self._inner(claim), chosen, forever=forever)

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        await self._ledger.release(self._inner(claim), None if keys is None else self._in(keys))

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        return frozenset(self._out(tuple(await self._ledger.done_among(self._in(keys)))))

    async def purge_expired(self) -> int:
        return await self._ledger.purge_expired()  # the store's, every namespace at once

    async def ping(self) -> None:
        await self._ledger.ping()

    async def close(self) -> None:
        """Nothing: the store is shared, and closed once by whoever opened it."""
