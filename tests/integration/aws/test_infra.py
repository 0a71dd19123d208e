"""`pulse infra create`: table, TTL, queue, DLQ and redrive, idempotently; dry run writes nothing."""

from __future__ import annotations

import json
from typing import Any

from pulse.adapters_out.aws_infra import create_infra
from tests.support.moto_server import CREDENTIALS, REGION, unique


def _names() -> dict[str, Any]:
    queue = unique("pulse-inbox")
    return {
        "table": unique("pulse"),
        "queue": queue,
        "dead_letter_queue": f"{queue}-dlq",
        "max_receive_count": 4,
        "visibility_sec": 45,
    }


async def test_a_dry_run_says_what_it_would_create_and_creates_nothing(
    moto_url: str, dynamo: Any, sqs_client: Any
) -> None:
    names = _names()
    lines = await create_infra(
        region=REGION, endpoint_url=moto_url, dry_run=True, **names, **CREDENTIALS
    )

    assert lines == [
        f"dynamodb table {names['table']}: would create (pk: string hash key, PAY_PER_REQUEST)",
        f"dynamodb table {names['table']}: would enable TTL on expires_at",
        f"sqs queue {names['dead_letter_queue']}: would create (dead letters, 14 days)",
        f"sqs queue {names['queue']}: would create "
        f"(redrive to {names['dead_letter_queue']} after 4 receives, crash backstop)",
    ]
    tables = (await dynamo.list_tables())["TableNames"]
    queues = (await sqs_client.list_queues(QueueNamePrefix=names["queue"])).get("QueueUrls", [])
    assert names["table"] not in tables and queues == []


async def test_create_makes_everything_once_and_a_rerun_only_checks(
    moto_url: str, dynamo: Any, sqs_client: Any
) -> None:
    names = _names()
    first = await create_infra(region=REGION, endpoint_url=moto_url, **names, **CREDENTIALS)
    second = await create_infra(region=REGION, endpoint_url=moto_url, **names, **CREDENTIALS)

    assert [line.split(": ", 1)[1].split(" ")[0] for line in first] == [
        "created",
        "TTL",
        "created",
        "created",
    ]
    assert all("exists" in line or "TTL on expires_at enabled" in line for line in second)
    table = (await dynamo.describe_table(TableName=names["table"]))["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = (await dynamo.describe_time_to_live(TableName=names["table"]))["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")
    url = (await sqs_client.get_queue_url(QueueName=names["queue"]))["QueueUrl"]
    attrs = (await sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]))[
        "Attributes"
    ]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert redrive["maxReceiveCount"] == 4
    assert redrive["deadLetterTargetArn"].endswith(f":{names['dead_letter_queue']}")
    assert attrs["VisibilityTimeout"] == "45"


async def test_a_drifted_redrive_policy_is_put_right(moto_url: str, sqs_client: Any) -> None:
    names = _names()
    await create_infra(region=REGION, endpoint_url=moto_url, **names, **CREDENTIALS)
    names["max_receive_count"] = 9

    planned = await create_infra(
        region=REGION, endpoint_url=moto_url, dry_run=True, **names, **CREDENTIALS
    )
    applied = await create_infra(region=REGION, endpoint_url=moto_url, **names, **CREDENTIALS)

    assert planned[-1].endswith(
        f"would set redrive to {names['dead_letter_queue']} after 9 receives, crash backstop"
    )
    assert applied[-1].endswith(
        f"set redrive to {names['dead_letter_queue']} after 9 receives, crash backstop"
    )
    url = (await sqs_client.get_queue_url(QueueName=names["queue"]))["QueueUrl"]
    attrs = await sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    assert json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"] == 9


async def test_a_table_only_setup_touches_no_queue(moto_url: str) -> None:
    table = unique("pulse")
    lines = await create_infra(
        region=REGION, endpoint_url=moto_url, table=table, control_table=table, **CREDENTIALS
    )
    assert lines == [
        f"dynamodb table {table}: created (pk: string hash key, PAY_PER_REQUEST)",
        f"dynamodb table {table}: TTL enabled on expires_at",
    ]


async def test_the_dead_letter_queue_keeps_letters_the_retention_at_most_14_days(
    moto_url: str, sqs_client: Any
) -> None:
    names = _names()
    del names["table"]  # queues only

    async def retention() -> str:
        url = (await sqs_client.get_queue_url(QueueName=names["dead_letter_queue"]))["QueueUrl"]
        attrs = await sqs_client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["MessageRetentionPeriod"]
        )
        return str(attrs["Attributes"]["MessageRetentionPeriod"])

    created = await create_infra(
        region=REGION,
        endpoint_url=moto_url,
        dead_letter_retention_days=30,  # past what SQS keeps: its 14 days
        **names,
        **CREDENTIALS,
    )
    assert created[0] == f"sqs queue {names['dead_letter_queue']}: created (dead letters, 14 days)"
    assert await retention() == str(14 * 86_400)

    planned = await create_infra(
        region=REGION,
        endpoint_url=moto_url,
        dead_letter_retention_days=7,
        dry_run=True,
        **names,
        **CREDENTIALS,
    )
    applied = await create_infra(
        region=REGION, endpoint_url=moto_url, dead_letter_retention_days=7, **names, **CREDENTIALS
    )

    assert planned[0].endswith(": exists; would set dead letters, 7 days")
    assert applied[0].endswith(": exists; set dead letters, 7 days")
    assert await retention() == str(7 * 86_400)
