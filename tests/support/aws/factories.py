"""Contract-suite factories for the AWS adapters (registered in tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.dynamodb.ledger import DynamoLedger
from pulse.adapters_out.sqs.dead_letters import SqsDeadLetters
from pulse.adapters_out.sqs.inbox import SqsInbox
from tests.fakes import FakeClock
from tests.support.moto_server import dynamodb, new_queues, new_table, sqs


@asynccontextmanager
async def dynamodb_ledger(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    from tests.contract.conftest import LedgerUnderTest, moving

    ttl = timedelta(days=14)
    async with dynamodb() as client:
        table = await new_table(client)
        ledger = DynamoLedger(client, table, clock, ttl=ttl)

        @asynccontextmanager
        async def other_process() -> AsyncIterator[DynamoLedger]:
            yield DynamoLedger(client, table, clock, ttl=ttl)

        try:
            yield LedgerUnderTest(
                ledger, ttl, moving(clock), native_ttl=True, other_process=other_process
            )
        finally:
            await ledger.close()


@asynccontextmanager
async def sqs_inbox(tmp_path: Path, clock: FakeClock) -> AsyncIterator[object]:
    from tests.contract.conftest import InboxUnderTest

    # SQS keeps its own time: visibility passes for real, so keep it at SQS's 1 s minimum;
    # and SQS stamps each message by the wall clock, so the inbox reads that clock too.
    visibility = timedelta(seconds=1)

    async def pass_time(seconds: float) -> None:
        await asyncio.sleep(seconds + 0.2)

    async with sqs() as client:
        queue, dlq = await new_queues(client)
        # max_hold=0: nothing is extended, so an unacked delivery returns as the port promises
        # for a crashed worker.
        inbox = SqsInbox(
            client, queue, dlq, SystemClock(), visibility=visibility, max_hold=timedelta(0)
        )
        try:
            yield InboxUnderTest(inbox, SqsDeadLetters(inbox), visibility, pass_time)
        finally:
            await inbox.close()
