"""DynamoDB throttles for a while: claims wait it out, none is lost, latency comes back."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from pulse.adapters_out.dynamodb.ledger import DynamoLedger
from tests.fakes import FakeClock
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.moto_server import dynamodb

LEASE = timedelta(seconds=120)


async def _timed_batch(ledger: DynamoLedger, keys: list[str]) -> float:
    started = time.perf_counter()
    claim = await ledger.claim(keys, LEASE)
    await ledger.commit(claim)
    assert len(claim.claimed) == len(keys)
    return time.perf_counter() - started


async def test_throttling_loses_no_claim_and_latency_recovers(
    proxy: FaultProxy, dynamo: Any, table: str, clock: FakeClock
) -> None:
    async with dynamodb(proxy.url) as one, dynamodb(proxy.url) as other:
        first, second = DynamoLedger(one, table, clock), DynamoLedger(other, table, clock)
        baseline = await _timed_batch(first, [f"warm:{i}" for i in range(40)])

        keys = [f"aloware:{i}" for i in range(80)]
        proxy.throttle_for(1.5)
        # Two replicas race for the same keys while DynamoDB throttles both.
        claims = await asyncio.gather(first.claim(keys, LEASE), second.claim(keys, LEASE))
        throttled = proxy.throttled
        await asyncio.gather(first.commit(claims[0]), second.commit(claims[1]))
        recovered = await _timed_batch(first, [f"after:{i}" for i in range(40)])

    winners = [set(c.claimed) for c in claims]
    assert throttled > 80
    assert winners[0].isdisjoint(winners[1])
    assert winners[0] | winners[1] == set(keys)
    again = await DynamoLedger(dynamo, table, clock).claim(keys, LEASE)
    assert set(again.done) == set(keys)
    assert recovered < max(3 * baseline, baseline + 0.5)
