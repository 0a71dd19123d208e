"""Lambda mode on moto (DESIGN §9): the edge handler takes API Gateway's documented proxy events
(REST API v1, HTTP API v2) into the SQS inbox; the worker handler, fed from that queue the way
an event source mapping feeds it, reports exactly the records to retry."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from pulse.adapters_in.sources.hubspot import signature_v3
from pulse.adapters_out.aws_infra import create_infra
from pulse.adapters_out.sqs.queue import decode
from pulse.bootstrap import lambda_handler
from tests.emulators.faults import Fault
from tests.emulators.hubspot import HubSpotEmulator
from tests.support.local import disposed_call
from tests.support.moto_server import CREDENTIALS, REGION, unique

SPECS = Path(__file__).parents[2] / "specs" / "aws"
HOST = "abc123.execute-api.us-east-1.amazonaws.com"
EMAIL = "88120045123"  # the email the HubSpot emulator knows (its vendored sample)
HOLD_SEC = 2  # INBOX_VISIBILITY_SEC: how long a held record stays hidden


def spec(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SPECS / name).read_text())
    event.pop("_meta")
    return event


class ServedInThread:
    """The HubSpot emulator on a loop of its own: the Lambda runtime owns the test's loop."""

    def __init__(self, emulator: HubSpotEmulator) -> None:
        self.emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> HubSpotEmulator:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.emulator.__aenter__(), self._loop).result(10)
        return self.emulator

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.__aexit__(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Environment:
    sqs: Any
    queue_url: str
    dlq_url: str
    aloware_secret: str
    hubspot_secret: str
    crm: HubSpotEmulator
    warehouse: Path

    # --- API Gateway ---------------------------------------------------------------------------

    def v2_event(self, source: str, body: bytes, *, base64_body: bool = False) -> dict[str, Any]:
        """The documented HTTP API event, carrying `body` to /webhooks/{source}, signed."""
        event = spec("apigateway-http-api-v2-event.json")
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/webhooks/{source}"
        event["pathParameters"] = {"source": source}
        headers = event["headers"]
        headers["content-length"] = str(len(body))
        if source == "aloware":
            headers["authorization"] = f"Bearer {self.aloware_secret}"
        else:
            del headers["authorization"]
            stamp = str(int(time.time() * 1000))
            url = f"https://{HOST}/webhooks/{source}"
            headers["x-hubspot-signature-v3"] = signature_v3(
                self.hubspot_secret, "POST", url, body, stamp
            )
            headers["x-hubspot-request-timestamp"] = stamp
        event["isBase64Encoded"] = base64_body
        event["body"] = base64.b64encode(body).decode() if base64_body else body.decode()
        return event

    def v1_event(self, signature: str | None = None) -> dict[str, Any]:
        """The documented REST API event (stage `prod`, base64 body), signed for the URL the
        client called, or carrying `signature`."""
        event = spec("apigateway-rest-v1-event.json")
        body = base64.b64decode(event["body"])
        stamp = str(int(time.time() * 1000))
        url = f"https://{HOST}/prod/webhooks/hubspot"
        signed = signature or signature_v3(self.hubspot_secret, "POST", url, body, stamp)
        for headers in (event["headers"], event["multiValueHeaders"]):
            many = headers is event["multiValueHeaders"]
            headers["X-HubSpot-Signature-v3"] = [signed] if many else signed
            headers["X-HubSpot-Request-Timestamp"] = [stamp] if many else stamp
        return event

    def post(self, event: dict[str, Any]) -> dict[str, Any]:
        answer = lambda_handler.edge(event, None)
        assert answer["headers"]["Content-Type"] == "application/json"
        return answer

    def post_all(self, bodies: list[tuple[str, bytes]]) -> None:
        for source, body in bodies:
            assert self.post(self.v2_event(source, body))["statusCode"] == 202

    # --- the event source mapping ------------------------------------------------------------

    def received(self, queue_url: str, wanted: int, visibility: int = 30) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        for _ in range(5):
            answer = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, wanted - len(messages)),
                WaitTimeSeconds=1,
                VisibilityTimeout=visibility,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages += answer.get("Messages", [])
            if len(messages) >= wanted:
                break
        return messages

    def deliver(self, wanted: int) -> tuple[list[dict[str, Any]], list[str]]:
        """What the mapping does: receive up to 10 records, invoke the worker, delete those it
        did not report. The batch's messages, and the ids reported."""
        messages = self.received(self.queue_url, wanted)
        assert len(messages) == wanted, f"{len(messages)} of {wanted} messages on the queue"
        reported = self.invoke(sqs_event(messages))
        for message in messages:
            if message["MessageId"] not in reported:
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return messages, reported

    def invoke(self, event: dict[str, Any]) -> list[str]:
        answer = lambda_handler.worker(event, None)
        return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]

    def counted(self) -> list[str]:
        with sqlite3.connect(self.warehouse) as db:
            return sorted(row[0] for row in db.execute('SELECT "EventKey" FROM "FactEvent"'))

    def depth(self, queue_url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        answer = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
        return sum(int(v) for v in answer["Attributes"].values())


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The documented SQS event, one record per received message."""
    (template,) = spec("sqs-event.json")["Records"]
    records = []
    for message in messages:
        record = copy.deepcopy(template)
        record.update(
            messageId=message["MessageId"],
            receiptHandle=message["ReceiptHandle"],
            body=message["Body"],
            md5OfBody=message["MD5OfBody"],
            messageAttributes={},
        )
        record["attributes"].update(
            ApproximateReceiveCount=message["Attributes"]["ApproximateReceiveCount"],
            SentTimestamp=message["Attributes"]["SentTimestamp"],
        )
        records.append(record)
    return {"Records": records}


@pytest.fixture
def env(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Environment]:
    queue, table = unique("pulse-inbox"), unique("pulse")
    dlq = f"{queue}-dlq"
    asyncio.run(
        create_infra(
            region=REGION,
            endpoint_url=moto_url,
            table=table,
            queue=queue,
            dead_letter_queue=dlq,
            visibility_sec=30,
            **CREDENTIALS,
        )
    )
    sqs = boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id=CREDENTIALS["access_key_id"],
        aws_secret_access_key=CREDENTIALS["secret_access_key"],
    )
    aloware_secret, hubspot_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    emulator = HubSpotEmulator()
    with ServedInThread(emulator) as crm:
        for name, value in {
            "INBOX": "sqs",
            "LEDGER": "dynamodb",
            "SINK": "local",
            "DATA_DIR": str(tmp_path),
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret_access_key"],
            "SQS_QUEUE": queue,
            "SQS_DLQ": dlq,
            "DYNAMO_TABLE": table,
            "INBOX_VISIBILITY_SEC": str(HOLD_SEC),
            "ALOWARE_SECRET": aloware_secret,
            "HUBSPOT_CLIENT_SECRET": hubspot_secret,
            "CRM": "hubspot",
            "HUBSPOT_BASE_URL": crm.base_url,
            "HUBSPOT_ACCESS_TOKEN": crm.token,
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)  # no .env of the developer's is read
        urls = [sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in (queue, dlq)]
        try:
            yield Environment(
                sqs, *urls, aloware_secret, hubspot_secret, crm, tmp_path / "warehouse.sqlite"
            )
        finally:
            if lambda_handler._runtime is not None:
                lambda_handler._runtime.close()
                lambda_handler._runtime = None


def calls(*ids: str) -> list[tuple[str, bytes]]:
    return [("aloware", json.dumps(disposed_call(i)).encode()) for i in ids]


def email_created(object_id: str) -> tuple[str, bytes]:
    """HubSpot's documented email-created webhook, for `object_id`."""
    raw = json.loads(
        (SPECS.parent / "webhooks" / "hubspot-v3-email-object-creation.json").read_text()
    )
    events = json.loads(raw["raw_body"])
    events[0]["objectId"] = int(object_id)
    return ("hubspot", json.dumps(events).encode())


# --- edge --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("base64_body", [False, True])
def test_the_http_api_event_is_stored_on_the_queue_and_answered_202(
    env: Environment, base64_body: bool
) -> None:
    ((source, body),) = calls("54363660")
    answer = env.post(env.v2_event(source, body, base64_body=base64_body))

    assert answer["statusCode"] == 202
    rid = json.loads(answer["body"])["request_id"]
    assert answer["headers"]["X-Request-Id"] == rid
    (message,) = env.received(env.queue_url, 1)
    envelope = decode(message["Body"])
    assert (envelope.request_id, envelope.source, envelope.body) == (rid, "aloware", body)


@pytest.mark.slow
def test_the_rest_api_event_is_authenticated_on_the_url_the_client_called(
    env: Environment,
) -> None:
    event = env.v1_event()
    answer = env.post(event)

    assert answer["statusCode"] == 202, answer["body"]
    (message,) = env.received(env.queue_url, 1)
    envelope = decode(message["Body"])
    assert envelope.body == base64.b64decode(event["body"])
    assert (
        envelope.headers["x-hubspot-request-timestamp"]
        == event["headers"]["X-HubSpot-Request-Timestamp"]
    )


@pytest.mark.slow
def test_a_bad_signature_is_refused_with_401_json_and_nothing_is_queued(env: Environment) -> None:
    forged = base64.b64encode(secrets.token_bytes(32)).decode()
    event = env.v1_event(signature=forged)
    event["headers"]["X-Request-Id"] = "trace-401"

    answer = env.post(event)

    assert answer["statusCode"] == 401
    error = json.loads(answer["body"])["error"]
    assert error["code"] == "unauthorized" and error["request_id"] == "trace-401"
    assert forged not in answer["body"]
    assert env.depth(env.queue_url) == 0


@pytest.mark.slow
def test_edge_refusals_are_the_daemons_json_errors(env: Environment) -> None:
    ((_, body),) = calls("1")
    unknown = env.v2_event("aloware", body)
    unknown["pathParameters"] = {"source": "zendesk"}
    not_json = env.v2_event("aloware", b"{not json")
    get = env.v2_event("aloware", body)
    get["requestContext"]["http"]["method"] = "GET"
    bad_base64 = env.v2_event("aloware", body)
    bad_base64["isBase64Encoded"] = True

    answers = [env.post(e) for e in (unknown, not_json, get, bad_base64, {"nonsense": 1})]

    assert [a["statusCode"] for a in answers] == [404, 400, 405, 400, 400]
    assert answers[2]["headers"]["Allow"] == "POST"
    for answer in answers:
        error = json.loads(answer["body"])["error"]
        assert error["request_id"] == answer["headers"]["X-Request-Id"]
    assert env.depth(env.queue_url) == 0


@pytest.mark.slow
def test_the_container_is_built_once_per_execution_environment(env: Environment) -> None:
    env.post_all(calls("1", "2"))
    runtime = lambda_handler._runtime
    assert runtime is not None
    assert runtime.container.sqs.initialized
    assert not runtime.container.dynamodb.initialized  # the edge opens only what it stores in
    env.invoke({"Records": []})

    assert lambda_handler._runtime is runtime
    edge, worker = runtime._parts["lambda_edge"], runtime._parts["lambda_worker"]
    assert worker.batch_of.args[0] is edge.intake.inbox  # one SQS inbox, one client


# --- worker ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_transient_poison_alone_is_reported_and_counts_once_when_retried(
    env: Environment,
) -> None:
    ids = [str(54363660 + n) for n in range(8)]
    env.post_all([*calls(*ids), *calls(ids[0]), email_created(EMAIL)])  # 10: a repeat, a poison
    env.invoke({"Records": []})  # the environment is warm: the batch below runs in milliseconds
    # HubSpot throttles every lookup of the poison's email until our retries are spent
    env.crm.faults.add(*[Fault(429, {"Retry-After": "0.01"})] * 4)

    batch, reported = env.deliver(10)

    (poison,) = [m["MessageId"] for m in batch if decode(m["Body"]).source == "hubspot"]
    assert reported == [poison]
    assert env.counted() == sorted(f"aloware:{i}" for i in ids)

    # The CRM's breaker is open: a fresh batch is handed back whole, without being run.
    env.post_all(calls("99"))
    _, reported = env.deliver(1)
    assert len(reported) == 1
    assert env.counted() == sorted(f"aloware:{i}" for i in ids)

    # Both come back after the hold; the breaker's probe runs them and each counts once.
    time.sleep(HOLD_SEC + 0.5)
    retried = env.received(env.queue_url, 2)
    event = sqs_event(retried)
    assert sorted(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"]) == [
        "2",
        "2",
    ]
    assert env.invoke(event) == []
    assert env.invoke(event) == []  # the mapping redelivers a batch (a timeout): nothing new
    expected = sorted([*(f"aloware:{i}" for i in [*ids, "99"]), f"hubspot:email:{EMAIL}"])
    assert env.counted() == expected
    assert env.depth(env.dlq_url) == 0


@pytest.mark.slow
def test_a_permanent_poison_is_dead_lettered_with_its_reason_and_not_reported(
    env: Environment,
) -> None:
    ids = [str(54363660 + n) for n in range(8)]
    unknown_email = "99999999999"  # HubSpot answers 404: no such email
    env.post_all([*calls(*ids), *calls(ids[0]), email_created(unknown_email)])

    _, reported = env.deliver(10)

    assert reported == []
    assert env.counted() == sorted(f"aloware:{i}" for i in ids)
    assert env.depth(env.queue_url) == 0
    (letter,) = env.received(env.dlq_url, 1)
    assert decode(letter["Body"]).source == "hubspot"
    reason = letter["MessageAttributes"]["reason"]["StringValue"]
    assert f"crm has no email {unknown_email}" in reason


@pytest.mark.slow
def test_a_foreign_message_is_dead_lettered_and_not_reported(env: Environment) -> None:
    env.sqs.send_message(QueueUrl=env.queue_url, MessageBody="not an envelope")

    _, reported = env.deliver(1)

    assert reported == []
    (letter,) = env.received(env.dlq_url, 1)
    assert letter["Body"] == "not an envelope"
    assert "not a Pulse envelope" in letter["MessageAttributes"]["reason"]["StringValue"]
