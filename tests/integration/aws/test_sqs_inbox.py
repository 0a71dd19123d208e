"""The SQS inbox and its DLQ over moto's wire protocol: batches, visibility, redrive, replay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pulse.adapters_out.sqs.client import SqsPermanentError
from pulse.adapters_out.sqs.dead_letters import SqsDeadLetters
from pulse.adapters_out.sqs.inbox import SqsInbox
from pulse.adapters_out.sqs.queue import SQS_MESSAGE_LIMIT, EnvelopeTooLarge, max_body_bytes
from pulse.core.errors import PermanentError
from pulse.core.model import IngestEnvelope
from tests.fakes import FakeClock


def envelope(request_id: str, body: bytes = b'{"id": 1}') -> IngestEnvelope:
    return IngestEnvelope(
        request_id=request_id,
        source="aloware",
        received_at=datetime(2025, 11, 5, 17, 0, tzinfo=UTC),
        body=body,
        headers={"content-type": "application/json"},
    )


@pytest.fixture
async def inbox(
    sqs_client: Any, queues: tuple[str, str], clock: FakeClock
) -> AsyncIterator[SqsInbox]:
    queue, dlq = queues
    box = SqsInbox(sqs_client, queue, dlq, clock, visibility=timedelta(seconds=1))
    yield box
    await box.close()


async def _take_all(box: SqsInbox, wanted: int, tries: int = 6) -> list[Any]:
    """Take until `wanted` distinct envelopes came (a standard queue may deliver one twice)."""
    taken: dict[str, Any] = {}
    for _ in range(tries):
        for delivery in await box.take(max(1, wanted - len(taken)), wait=1):
            taken[delivery.envelope.request_id] = delivery
        if len(taken) >= wanted:
            break
    return list(taken.values())


async def test_an_envelope_comes_back_whole_and_is_gone_once_acked(inbox: SqsInbox) -> None:
    sent = envelope("req-1", body=bytes(range(256)))
    await inbox.put(sent)

    [delivery] = await inbox.take(10, wait=1)
    await inbox.ack([delivery.receipt])
    await asyncio.sleep(1.2)

    assert delivery.envelope == sent
    assert delivery.attempt == 1
    assert await inbox.take(10, wait=0) == []
    assert (await inbox.stats()).depth == 0


async def test_a_take_fills_batches_past_the_sqs_page_of_ten(inbox: SqsInbox) -> None:
    await asyncio.gather(*(inbox.put(envelope(f"req-{i}")) for i in range(25)))

    first = await inbox.take(25, wait=1)
    seen = {d.envelope.request_id for d in first}
    rest = await _take_all(inbox, 25 - len(seen)) if len(seen) < 25 else []

    assert len(first) > 10
    assert seen | {d.envelope.request_id for d in rest} == {f"req-{i}" for i in range(25)}


async def test_a_retried_delivery_returns_after_its_delay_with_its_attempt_counted(
    inbox: SqsInbox,
) -> None:
    await inbox.put(envelope("req-1"))
    [first] = await inbox.take(10, wait=1)

    await inbox.retry([first.receipt], timedelta(seconds=1))
    assert await inbox.take(10, wait=0) == []
    [second] = await inbox.take(10, wait=2)

    assert second.envelope.request_id == "req-1"
    assert second.attempt == 2


async def test_a_long_batch_stays_hidden_while_held_and_returns_after_a_crash(
    sqs_client: Any, queues: tuple[str, str], clock: FakeClock
) -> None:
    queue, dlq = queues
    worker = SqsInbox(sqs_client, queue, dlq, clock, visibility=timedelta(seconds=2))
    other = SqsInbox(sqs_client, queue, dlq, clock, visibility=timedelta(seconds=2))
    await worker.put(envelope("req-slow"))
    assert len(await worker.take(10, wait=1)) == 1

    await asyncio.sleep(3.5)  # past its visibility timeout: the extender keeps it ours
    stolen = await other.take(10, wait=0)
    await worker.close()  # the worker dies: nothing extends it any more
    back = await other.take(10, wait=4)
    await other.close()

    assert stolen == []
    assert [d.envelope.request_id for d in back] == ["req-slow"]
    assert back[0].attempt == 2


async def test_a_poison_message_is_redriven_to_the_dlq_and_listed(
    inbox: SqsInbox, clock: FakeClock
) -> None:
    await inbox.put(envelope("req-poison"))
    for _ in range(2):  # maxReceiveCount = 2 in these tests
        [delivery] = await inbox.take(10, wait=2)
        await inbox.retry([delivery.receipt], timedelta(0))
    assert await inbox.take(10, wait=1) == []  # third receive: SQS moved it to the DLQ

    letters = await SqsDeadLetters(inbox).list()

    assert [d.envelope.request_id for d in letters] == ["req-poison"]
    assert "SQS redrive" in letters[0].reason
    assert letters[0].attempts == 2
    assert (await inbox.stats()).dead_letters == 1


async def test_a_dead_letter_keeps_its_reason_and_replays_by_request_id(
    inbox: SqsInbox, clock: FakeClock
) -> None:
    dead_letters = SqsDeadLetters(inbox)
    for request_id in ("req-a", "req-b", "req-c"):
        await inbox.put(envelope(request_id))
    deliveries = await _take_all(inbox, 3)
    for delivery in deliveries:
        await dead_letters.add(delivery, f"unparseable: {delivery.envelope.request_id}")
    await inbox.ack([d.receipt for d in deliveries])

    listed = await dead_letters.list()
    listed_again = await dead_letters.list()  # listing leaves them in place
    replayed = await dead_letters.replay(["req-b"])
    remaining = await dead_letters.list()
    back = await inbox.take(10, wait=1)

    assert sorted(d.reason for d in listed) == [
        "unparseable: req-a",
        "unparseable: req-b",
        "unparseable: req-c",
    ]
    assert listed[0].dead_at == clock.now() and listed[0].attempts == 1
    assert len(listed_again) == 3
    assert replayed == 1
    assert sorted(d.envelope.request_id for d in remaining) == ["req-a", "req-c"]
    assert [d.envelope for d in back] == [envelope("req-b")]


async def test_replay_of_everything_empties_the_dlq(inbox: SqsInbox) -> None:
    dead_letters = SqsDeadLetters(inbox)
    for i in range(12):
        await inbox.put(envelope(f"req-{i}"))
    deliveries = await _take_all(inbox, 12)
    await asyncio.gather(*(dead_letters.add(d, "sink rejected") for d in deliveries))
    await inbox.ack([d.receipt for d in deliveries])

    assert await dead_letters.replay() == 12
    assert await dead_letters.list() == []
    assert len(await _take_all(inbox, 12)) == 12


async def test_an_envelope_too_big_for_sqs_is_refused_with_the_limit(inbox: SqsInbox) -> None:
    limit = max_body_bytes()
    await inbox.put(envelope("req-fits", body=b"x" * limit))
    with pytest.raises(EnvelopeTooLarge) as raised:
        await inbox.put(envelope("req-big", body=b"x" * (SQS_MESSAGE_LIMIT * 3 // 4)))

    assert isinstance(raised.value, PermanentError)
    assert str(limit) in str(raised.value)
    assert inbox.max_body_bytes == limit
    [delivery] = await inbox.take(10, wait=1)
    assert len(delivery.envelope.body) == limit


async def test_a_message_that_is_not_an_envelope_goes_to_the_dlq(
    inbox: SqsInbox, sqs_client: Any, queues: tuple[str, str]
) -> None:
    url = (await sqs_client.get_queue_url(QueueName=queues[0]))["QueueUrl"]
    await sqs_client.send_message(QueueUrl=url, MessageBody="hello")
    await inbox.put(envelope("req-ok"))

    taken = await _take_all(inbox, 1)
    letters = await SqsDeadLetters(inbox).list()

    assert [d.envelope.request_id for d in taken] == ["req-ok"]
    assert len(letters) == 1 and letters[0].reason.startswith("not a Pulse envelope")
    assert letters[0].envelope.body == b"hello"


async def test_stats_count_what_waits_and_what_is_dead(inbox: SqsInbox) -> None:
    for i in range(3):
        await inbox.put(envelope(f"req-{i}"))
    stats = await inbox.stats()
    assert stats.depth == 3 and stats.dead_letters == 0
    await inbox.ping()


async def test_a_missing_queue_is_a_permanent_error_naming_it(
    sqs_client: Any, clock: FakeClock
) -> None:
    box = SqsInbox(sqs_client, "no-such-queue", "no-such-dlq", clock)
    with pytest.raises(SqsPermanentError, match="no-such-queue"):
        await box.ping()


async def test_one_message_twice_in_a_batch_is_counted_once_after_a_transient_failure(
    proxy: Any, tmp_path: Any
) -> None:
    import json as _json
    from zoneinfo import ZoneInfo

    from pulse.adapters_in.sources.aloware import AlowareSource
    from pulse.adapters_out.clock import SystemClock
    from pulse.adapters_out.sqlite.ledger import SqliteLedger
    from pulse.adapters_out.sqlite.warehouse import SqliteWarehouse
    from pulse.adapters_out.static.crm import StaticCrmDirectory
    from pulse.adapters_out.static.roster import StaticRoster
    from pulse.core.ingest import IngestConfig, IngestPorts, Status, process_batch
    from tests.support.moto_server import new_queues, sqs
    from tests.support.outage_sink import OutageSink

    clock = SystemClock()
    call = {
        "event": "OutboundPhoneCall-DispositionCompleted",
        "body": {
            "id": "77",
            "user_id": "42",
            "direction": "2",
            "type": "1",
            "disposition_status": "completed",
            "created_at": "2025-11-05 17:22:28",
        },
    }
    (tmp_path / "crm.json").write_text("{}")
    async with sqs(proxy.url) as client:
        queue, dlq = await new_queues(client, max_receive_count=5)
        box = SqsInbox(client, queue, dlq, clock, visibility=timedelta(seconds=1))
        ledger = SqliteLedger(tmp_path / "ledger.sqlite", clock)
        warehouse = SqliteWarehouse(tmp_path / "warehouse.sqlite")
        sink = OutageSink(warehouse)
        ports = IngestPorts(
            parsers={"aloware": AlowareSource(auth="none", secret=None)},
            inbox=box,
            dead_letters=SqsDeadLetters(box),
            ledger=ledger,
            sink=sink,  # type: ignore[arg-type]
            roster=StaticRoster(agent_ids=["42"]),
            crm=StaticCrmDirectory(tmp_path / "crm.json"),
        )
        config = IngestConfig(zone=ZoneInfo("UTC"), retry_base=timedelta(milliseconds=100))
        try:
            await box.put(
                IngestEnvelope("r77", "aloware", clock.now(), _json.dumps(call).encode(), {})
            )
            proxy.duplicate_receives = 1
            sink.down = True
            first = await box.take(10, wait=2)
            outcome = await process_batch(first, ports, config, clock.now())
            assert proxy.duplicate_receives == 0  # the receive did carry the message twice
            assert [e.status for e in outcome.envelopes] == [Status.RETRY]

            sink.down = False
            again: list[Any] = []
            for _ in range(10):
                again = await box.take(10, wait=1)
                if again:
                    break
            outcome = await process_batch(again, ports, config, clock.now())
            assert [e.status for e in outcome.envelopes] == [Status.ACCEPTED]
            rows = await warehouse.rows("FactEvent")
            assert [r["EventKey"] for r in rows] == ["aloware:77"]
            await asyncio.sleep(1.2)
            assert await box.take(10, wait=1) == []  # deleted once settled, not before
        finally:
            await box.close()
            await ledger.close()
            await warehouse.close()
