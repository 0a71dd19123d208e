"""The DynamoDB ledger over moto's wire protocol: claims, leases, TTL, errors, concurrency."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.dynamodb.client import (
    Backoff,
    DynamoPermanentError,
    DynamoTransientError,
)
from pulse.adapters_out.dynamodb.ledger import DynamoLedger
from pulse.core.errors import PermanentError, TransientError
from tests.fakes import FakeClock
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.moto_server import REGION, dynamodb, new_table

LEASE = timedelta(seconds=120)
REPO = Path(__file__).resolve().parents[3]


async def _item(client: Any, table: str, key: str) -> dict[str, Any] | None:
    answer = await client.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True)
    item: dict[str, Any] | None = answer.get("Item")
    return item


async def test_a_new_key_is_claimed_then_done_for_everyone_after_commit(
    dynamo: Any, table: str, clock: FakeClock
) -> None:
    ours, theirs = DynamoLedger(dynamo, table, clock), DynamoLedger(dynamo, table, clock)

    claim = await ours.claim(["aloware:1", "aloware:2"], LEASE)
    in_flight = await theirs.claim(["aloware:1", "aloware:3"], LEASE)
    await ours.commit(claim)
    after = await theirs.claim(["aloware:1", "aloware:2"], LEASE)

    assert claim.claimed == ("aloware:1", "aloware:2")
    assert in_flight.busy == ("aloware:1",) and in_flight.claimed == ("aloware:3",)
    assert after.done == ("aloware:1", "aloware:2") and not after.claimed


async def test_a_key_given_twice_in_one_batch_is_claimed_once(
    dynamo: Any, table: str, clock: FakeClock
) -> None:
    claim = await DynamoLedger(dynamo, table, clock).claim(["k:1", "k:1", "k:2"], LEASE)
    assert claim.claimed == ("k:1", "k:2")


async def test_commit_sets_done_and_ttl_in_epoch_seconds(
    dynamo: Any, table: str, clock: FakeClock
) -> None:
    ledger = DynamoLedger(dynamo, table, clock, ttl=timedelta(days=14))
    claim = await ledger.claim(["hubspot:ticket:7"], LEASE)
    await ledger.commit(claim)

    item = await _item(dynamo, table, "hubspot:ticket:7")
    assert item is not None
    assert item["state"]["S"] == "DONE"
    assert item["claim_token"]["S"] == claim.token
    assert int(item["expires_at"]["N"]) == int(clock.now().timestamp()) + 14 * 86_400
    assert "lease_until" not in item
    ttl = await dynamo.describe_time_to_live(TableName=table)
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"


async def test_release_deletes_only_our_own_pending_claim(
    dynamo: Any, table: str, clock: FakeClock
) -> None:
    ours, theirs = DynamoLedger(dynamo, table, clock), DynamoLedger(dynamo, table, clock)
    mine = await ours.claim(["k:mine", "k:done"], LEASE)
    await ours.commit(mine, ["k:done"])
    other = await theirs.claim(["k:other"], LEASE)

    forged = type(mine)(token=mine.token, claimed=("k:mine", "k:done", "k:other"))
    await ours.release(forged)

    assert await _item(dynamo, table, "k:mine") is None
    done = await _item(dynamo, table, "k:done")
    assert done is not None and done["state"]["S"] == "DONE"
    held = await _item(dynamo, table, "k:other")
    assert held is not None and held["claim_token"]["S"] == other.token


async def test_an_abandoned_claim_is_taken_over_after_its_lease_not_before(
    dynamo: Any, table: str, clock: FakeClock
) -> None:
    crashed, survivor = DynamoLedger(dynamo, table, clock), DynamoLedger(dynamo, table, clock)
    abandoned = await crashed.claim(["aloware:42"], timedelta(seconds=30))

    clock.advance(29)
    before = await survivor.claim(["aloware:42"], LEASE)
    clock.advance(2)
    after = await survivor.claim(["aloware:42"], LEASE)
    await crashed.commit(abandoned)  # the old owner wakes up: too late, no longer its key
    await survivor.commit(after)

    assert before.busy == ("aloware:42",)
    assert after.claimed == ("aloware:42",)
    assert crashed.lost_commits == 1
    item = await _item(dynamo, table, "aloware:42")
    assert item is not None and item["claim_token"]["S"] == after.token


@pytest.mark.slow
async def test_a_claim_held_by_a_killed_process_is_free_after_its_lease(
    moto_url: str, dynamo: Any, table: str
) -> None:
    lease_sec = 3.0
    child = textwrap.dedent(
        f"""
        import asyncio, sys
        from contextlib import asynccontextmanager
        from datetime import timedelta
        from pulse.adapters_out.clock import SystemClock
        from pulse.adapters_out.dynamodb.client import dynamodb_client
        from pulse.adapters_out.dynamodb.ledger import DynamoLedger

        async def main():
            opened = asynccontextmanager(dynamodb_client)(
                {REGION!r}, {moto_url!r}, access_key_id="testing", secret_access_key="testing"
            )
            async with opened as client:
                ledger = DynamoLedger(client, {table!r}, SystemClock())
                claim = await ledger.claim(["aloware:crash"], timedelta(seconds={lease_sec}))
                print("claimed" if claim.claimed else "not claimed", flush=True)
                await asyncio.sleep(3600)  # killed here: between claim and commit

        asyncio.run(main())
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", child, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=20)
    killed_at = time.monotonic()
    process.send_signal(signal.SIGKILL)
    await process.wait()
    assert line.decode().strip() == "claimed"

    survivor = DynamoLedger(dynamo, table, SystemClock())
    before = await survivor.claim(["aloware:crash"], LEASE)
    await asyncio.sleep(max(0.0, lease_sec + 0.3 - (time.monotonic() - killed_at)))
    after = await survivor.claim(["aloware:crash"], LEASE)

    assert before.busy == ("aloware:crash",)
    assert after.claimed == ("aloware:crash",)


async def test_claims_of_a_batch_go_out_side_by_side(
    proxy: FaultProxy, table: str, clock: FakeClock
) -> None:
    async with dynamodb(proxy.url) as client:
        ledger = DynamoLedger(client, table, clock, concurrency=16)
        claim = await ledger.claim([f"k:{i}" for i in range(100)], LEASE)

    assert len(claim.claimed) == 100
    assert 4 < proxy.max_in_flight <= 16


async def test_a_claim_whose_answer_was_lost_is_still_ours(
    proxy: FaultProxy, table: str, clock: FakeClock
) -> None:
    async with dynamodb(proxy.url) as client:
        ledger = DynamoLedger(client, table, clock, backoff=Backoff(base_sec=0.01))
        proxy.lose_answers = 1  # the put lands, its answer says "throttled"; the retry loses
        claim = await ledger.claim(["aloware:lost"], LEASE)

    assert claim.claimed == ("aloware:lost",)
    assert proxy.throttled == 1


async def test_a_missing_table_is_a_permanent_error(dynamo: Any, clock: FakeClock) -> None:
    ledger = DynamoLedger(dynamo, "no-such-table", clock)
    with pytest.raises(DynamoPermanentError) as raised:
        await ledger.claim(["k:1"], LEASE)
    assert isinstance(raised.value, PermanentError)
    with pytest.raises(PermanentError):
        await ledger.ping()


async def test_an_unreachable_endpoint_is_a_transient_error(clock: FakeClock) -> None:
    async with dynamodb("http://127.0.0.1:9") as client:
        ledger = DynamoLedger(
            client, "pulse", clock, backoff=Backoff(base_sec=0.01, transient_attempts=2)
        )
        with pytest.raises(DynamoTransientError) as raised:
            await ledger.claim(["k:1"], LEASE)
    assert isinstance(raised.value, TransientError)


async def test_purge_is_left_to_native_ttl(dynamo: Any, table: str, clock: FakeClock) -> None:
    assert await DynamoLedger(dynamo, table, clock).purge_expired() == 0


async def test_a_fresh_table_serves_a_second_process_sharing_it(
    moto_url: str, clock: FakeClock
) -> None:
    async with dynamodb(moto_url) as first, dynamodb(moto_url) as second:
        table = await new_table(first)
        claim = await DynamoLedger(first, table, clock).claim(["k:shared"], LEASE)
        seen = await DynamoLedger(second, table, clock).claim(["k:shared"], LEASE)
    assert claim.claimed == ("k:shared",) and seen.busy == ("k:shared",)
