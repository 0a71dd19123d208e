"""Fixtures for the AWS adapters: fresh tables and queues on the session's moto server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes import FakeClock
from tests.support.aws.fault_proxy import FaultProxy
from tests.support.moto_server import dynamodb, new_queues, new_table, sqs


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def dynamo(moto_url: str) -> AsyncIterator[Any]:
    async with dynamodb(moto_url) as client:
        yield client


@pytest.fixture
async def table(dynamo: Any) -> str:
    return await new_table(dynamo)


@pytest.fixture
async def sqs_client(moto_url: str) -> AsyncIterator[Any]:
    async with sqs(moto_url) as client:
        yield client


@pytest.fixture
async def queues(sqs_client: Any) -> tuple[str, str]:
    return await new_queues(sqs_client, max_receive_count=2)


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(moto_url)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.close()
