"""The Inbox port's contract, run over every inbox adapter (see conftest INBOX_FACTORIES)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.contract.conftest import InboxUnderTest, envelope


async def test_a_put_envelope_is_taken_whole_and_gone_once_acked(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    sent = envelope("r-1", body=b'{"caf\xc3\xa9": "\x00raw"}')
    await inbox.put(sent)

    (delivery,) = await inbox.take(10, wait=0)
    assert delivery.envelope == sent
    assert delivery.attempt == 1
    assert delivery.envelope.received_at.utcoffset() == timedelta(0)

    await inbox.ack([delivery.receipt])
    await inbox_under_test.pass_time(inbox_under_test.visibility.total_seconds() + 1)
    assert await inbox.take(10, wait=0) == []
    assert (await inbox.stats()).depth == 0


async def test_take_hands_out_at_most_max_items_oldest_first(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    for i in range(5):
        await inbox.put(envelope(f"r-{i}"))

    first = await inbox.take(3, wait=0)
    rest = await inbox.take(10, wait=0)

    assert [d.envelope.request_id for d in first] == ["r-0", "r-1", "r-2"]
    assert [d.envelope.request_id for d in rest] == ["r-3", "r-4"]
    assert len({d.receipt for d in first + rest}) == 5


async def test_a_taken_envelope_is_hidden_until_its_visibility_timeout_passes(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))
    (first,) = await inbox.take(10, wait=0)

    assert await inbox.take(10, wait=0) == []

    await inbox_under_test.pass_time(inbox_under_test.visibility.total_seconds() + 1)
    (again,) = await inbox.take(10, wait=0.5)
    assert again.envelope.request_id == "r-1"
    assert again.attempt == 2
    assert again.receipt != first.receipt


async def test_retry_gives_an_envelope_back_after_the_delay(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))
    (first,) = await inbox.take(10, wait=0)

    await inbox.retry([first.receipt], timedelta(seconds=1))
    assert await inbox.take(10, wait=0) == []

    await inbox_under_test.pass_time(1.5)
    (again,) = await inbox.take(10, wait=0.5)
    assert again.envelope.request_id == "r-1"
    assert again.attempt == 2


async def test_retry_without_delay_makes_it_visible_at_once(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))
    (first,) = await inbox.take(10, wait=0)

    await inbox.retry([first.receipt], timedelta(0))

    (again,) = await inbox.take(10, wait=0.5)
    assert again.envelope.request_id == "r-1"


async def test_a_stale_receipt_cannot_ack_the_newer_delivery(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))
    (stale,) = await inbox.take(10, wait=0)
    await inbox_under_test.pass_time(inbox_under_test.visibility.total_seconds() + 1)
    (current,) = await inbox.take(10, wait=0.5)

    await inbox.ack([stale.receipt])

    assert (await inbox.stats()).depth == 1
    await inbox_under_test.pass_time(inbox_under_test.visibility.total_seconds() + 1)
    (third,) = await inbox.take(10, wait=0.5)
    assert third.envelope.request_id == "r-1"
    await inbox.ack([third.receipt])
    assert (await inbox.stats()).depth == 0
    assert current.receipt != third.receipt


async def test_acking_an_unknown_receipt_is_harmless(inbox_under_test: InboxUnderTest) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))

    await inbox.ack(["no-such-receipt", "42:deadbeef"])
    await inbox.ack([])

    assert (await inbox.stats()).depth == 1


async def test_take_with_nothing_ready_returns_empty_after_waiting(
    inbox_under_test: InboxUnderTest,
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await inbox_under_test.inbox.take(10, wait=0.2) == []
    assert loop.time() - started >= 0.15


async def test_a_waiting_take_wakes_up_when_an_envelope_is_put(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    loop = asyncio.get_running_loop()
    started = loop.time()
    taker = asyncio.create_task(inbox.take(10, wait=5))
    await asyncio.sleep(0.05)

    await inbox.put(envelope("r-1"))
    deliveries = await asyncio.wait_for(taker, timeout=2)

    assert [d.envelope.request_id for d in deliveries] == ["r-1"]
    assert loop.time() - started < 1


async def test_concurrent_puts_all_land_and_each_returns_once_stored(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox

    await asyncio.gather(*(inbox.put(envelope(f"r-{i}")) for i in range(25)))

    assert (await inbox.stats()).depth == 25
    taken = await inbox.take(100, wait=0)
    assert sorted(d.envelope.request_id for d in taken) == sorted(f"r-{i}" for i in range(25))


async def test_stats_count_what_is_not_yet_acked_and_its_age(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    empty = await inbox.stats()
    assert (empty.depth, empty.oldest_age_sec, empty.dead_letters) == (0, 0.0, 0)

    await inbox.put(envelope("r-1"))
    await inbox.put(envelope("r-2"))
    await inbox.take(1, wait=0)
    await inbox_under_test.pass_time(2)

    stats = await inbox.stats()
    assert stats.depth == 2
    assert stats.oldest_age_sec >= 2
    assert stats.dead_letters == 0


async def test_ping_answers(inbox_under_test: InboxUnderTest) -> None:
    await inbox_under_test.inbox.ping()


async def test_an_extended_delivery_stays_hidden_and_its_receipt_still_acks(
    inbox_under_test: InboxUnderTest,
) -> None:
    inbox = inbox_under_test.inbox
    await inbox.put(envelope("r-1"))
    (held,) = await inbox.take(10, wait=0)
    visibility = inbox_under_test.visibility.total_seconds()

    await inbox.extend([held.receipt], timedelta(seconds=visibility + 3))
    await inbox_under_test.pass_time(visibility + 1)
    assert await inbox.take(10, wait=0) == []  # past its visibility, still held

    await inbox.ack([held.receipt])
    await inbox_under_test.pass_time(visibility + 3)
    assert await inbox.take(10, wait=0) == []
    assert (await inbox.stats()).depth == 0
