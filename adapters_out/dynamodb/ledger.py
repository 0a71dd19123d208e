"""The idempotency ledger on DynamoDB: conditional claims shared by every replica (DESIGN §2)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from pulse.adapters_out.dynamodb.client import (
    Backoff,
    ConditionFailed,
    DynamoClient,
    call,
    ensure_active,
)
from pulse.ports.clock import Clock
from pulse.ports.ledger import Claim

log = logging.getLogger("pulse.dynamodb")

PENDING = "PENDING"
DONE = "DONE"

_CLAIMABLE = "attribute_not_exists(pk) OR (#s = :pending AND lease_until < :now)"


class _Verdict(Enum):
    CLAIMED = "claimed"
    DONE = "done"
    BUSY = "busy"


def _number(value: float) -> dict[str, str]:
    return {"N": f"{value:.3f}"}


class DynamoLedger:
    """Ledger items `{pk, state, lease_until, claim_token, seen_at, expires_at}`, TTL on `expires_at`.

    Event keys always contain ':' (`aloware:…`, `dim:…`), so they never meet the control
    plane's `ctl#…` items on a shared table.
    """

    def __init__(
        self,
        client: DynamoClient,
        table: str,
        clock: Clock,
        *,
        ttl: timedelta = timedelta(days=14),
        concurrency: int = 32,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._table = table
        self._clock = clock
        self._ttl = ttl
        self._backoff = backoff or Backoff()
        # One bound per process, shared by every worker, below the client's connection pool.
        self._slots = asyncio.Semaphore(concurrency)
        self.lost_commits = 0
        # Keys DONE for good (dimension rows, committed `forever`) never change again: once
        # seen they are answered from memory, sparing a conditional put (and its write unit)
        # per key per batch.
        self._kept: set[str] = set()

    async def claim(self, keys: Sequence[str], lease: timedelta) -> Claim:
        token = uuid.uuid4().hex
        unique = [key for key in dict.fromkeys(keys) if key not in self._kept]
        kept = tuple(key for key in dict.fromkeys(keys) if key in self._kept)
        now = self._clock.now()
        results = await asyncio.gather(
            *(self._claim_one(key, token, now, lease) for key in unique), return_exceptions=True
        )
        verdicts: dict[_Verdict, list[str]] = {v: [] for v in _Verdict}
        failure: BaseException | None = None
        for key, result in zip(unique, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
            else:
                verdicts[result].append(key)
        claim = Claim(
            token=token,
            claimed=tuple(verdicts[_Verdict.CLAIMED]),
            done=(*kept, *verdicts[_Verdict.DONE]),
            busy=tuple(verdicts[_Verdict.BUSY]),
        )
        if failure is not None:
            # Do not leave half a batch leased for `lease`: give back what we did take.
            try:
                await self.release(claim)
            except Exception:
                log.warning("could not release a failed claim; its lease will run out")
            raise failure
        return claim

    async def _claim_one(self, key: str, token: str, now: datetime, lease: timedelta) -> _Verdict:
        at = now.timestamp()
        item = {
            "pk": {"S": key},
            "state": {"S": PENDING},
            "lease_until": _number(at + lease.total_seconds()),
            "claim_token": {"S": token},
            "seen_at": {"S": now.isoformat()},
            # An abandoned claim nobody retakes is collected by TTL like a done one.
            "expires_at": {"N": str(int(at + self._ttl.total_seconds()))},
        }
        for _ in range(3):
            try:
                async with self._slots:
                    await call(
                        self._client.put_item,
                        self._backoff,
                        TableName=self._table,
                        Item=item,
                        ConditionExpression=_CLAIMABLE,
                        ExpressionAttributeNames={"#s": "state"},
                        ExpressionAttributeValues={":pending": {"S": PENDING}, ":now": _number(at)},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    )
                return _Verdict.CLAIMED
            except ConditionFailed as lost:
                holder = lost.item if lost.item is not None else await self._read(key)
            if holder is None:
                continue  # released or expired between our put and our read: try again
            if holder.get("state", {}).get("S") == DONE:
                if "expires_at" not in holder:
                    self._kept.add(key)
                return _Verdict.DONE
            if holder.get("claim_token", {}).get("S") == token:
                return _Verdict.CLAIMED  # our earlier attempt landed; only its answer was lost
            return _Verdict.BUSY
        return _Verdict.BUSY

    async def _read(self, key: str) -> dict[str, Any] | None:
        async with self._slots:
            answer = await call(
                self._client.get_item,
                self._backoff,
                TableName=self._table,
                Key={"pk": {"S": key}},
                ConsistentRead=True,
            )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    async def commit(
        self, claim: Claim, keys: Sequence[str] | None = None, *, forever: bool = False
    ) -> None:
        now = self._clock.now().timestamp()
        expires = None if forever else str(int(now + self._ttl.total_seconds()))
        committed = claim.claimed if keys is None else keys
        await self._each(committed, self._commit_one, claim, expires)
        if forever:  # the rows are in the sink (commit follows the push): never claim them again
            self._kept.update(committed)

    async def _commit_one(self, key: str, claim: Claim, expires: str | None) -> None:
        values = {":done": {"S": DONE}, ":token": {"S": claim.token}}
        if expires is None:  # kept for good: TTL never sweeps an item without `expires_at`
            update = "SET #s = :done REMOVE lease_until, expires_at"
        else:
            update = "SET #s = :done, expires_at = :exp REMOVE lease_until"
            values[":exp"] = {"N": expires}
        try:
            async with self._slots:
                await call(
                    self._client.update_item,
                    self._backoff,
                    TableName=self._table,
                    Key={"pk": {"S": key}},
                    UpdateExpression=update,
                    ConditionExpression="claim_token = :token",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues=values,
                )
        except ConditionFailed:
            # Our lease ran out and another replica took the key over: it will push and commit
            # again; the repeat is the documented post-accept window, closed by EventKey.
            self.lost_commits += 1
            log.warning("claim lost before commit", extra={"fields": {"key": key}})

    async def release(self, claim: Claim, keys: Sequence[str] | None = None) -> None:
        await self._each(claim.claimed if keys is None else keys, self._release_one, claim)

    async def _release_one(self, key: str, claim: Claim) -> None:
        try:
            async with self._slots:
                await call(
                    self._client.delete_item,
                    self._backoff,
                    TableName=self._table,
                    Key={"pk": {"S": key}},
                    ConditionExpression="claim_token = :token AND #s = :pending",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={
                        ":token": {"S": claim.token},
                        ":pending": {"S": PENDING},
                    },
                )
        except ConditionFailed:
            pass  # no longer ours (taken over, or already released): nothing to give back

    async def _each(self, keys: Sequence[str], one: Any, *args: Any) -> None:
        results = await asyncio.gather(*(one(k, *args) for k in keys), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def done_among(self, keys: Sequence[str]) -> frozenset[str]:
        wanted = list(dict.fromkeys(keys))
        items = await asyncio.gather(*(self._read(key) for key in wanted))
        return frozenset(
            key
            for key, item in zip(wanted, items, strict=True)
            if item is not None and item.get("state", {}).get("S") == DONE
        )

    async def purge_expired(self) -> int:
        return 0  # DynamoDB's TTL deletes expired items itself

    async def ping(self) -> None:
        await ensure_active(self._client, self._table, self._backoff)

    async def close(self) -> None:
        """The client belongs to the container; nothing of ours stays open."""
