"""The DeadLetters port's contract, run over every inbox adapter (see conftest INBOX_FACTORIES)."""

from __future__ import annotations

from core.model import Delivery
from tests.contract.conftest import InboxUnderTest, envelope


async def dead_letter(under_test: InboxUnderTest, request_id: str, reason: str) -> Delivery:
    """Take an envelope through the inbox and dead-letter it, as a worker does (add, then ack)."""
    await under_test.inbox.put(envelope(request_id))
    (delivery,) = await under_test.inbox.take(1, wait=0.5)
    await under_test.dead_letters.add(delivery, reason)
    await under_test.inbox.ack([delivery.receipt])
    return delivery


async def test_a_dead_letter_keeps_the_envelope_and_the_reason(
    inbox_under_test: InboxUnderTest,
) -> None:
    delivery = await dead_letter(inbox_under_test, "r-1", "unparseable: no id")

    (letter,) = await inbox_under_test.dead_letters.list()

    assert letter.envelope == delivery.envelope
    assert letter.reason == "unparseable: no id"
    assert letter.attempts == delivery.attempt
    assert letter.dead_at.tzinfo is not None
    assert (await inbox_under_test.inbox.stats()).dead_letters == 1


async def test_adding_the_same_envelope_twice_keeps_one_letter(
    inbox_under_test: InboxUnderTest,
) -> None:
    delivery = await dead_letter(inbox_under_test, "r-1", "sink rejected: 400")

    await inbox_under_test.dead_letters.add(delivery, "sink rejected: 400 again")

    letters = await inbox_under_test.dead_letters.list()
    assert [letter.envelope.request_id for letter in letters] == ["r-1"]


async def test_two_envelopes_sharing_a_caller_chosen_request_id_are_both_kept(
    inbox_under_test: InboxUnderTest,
) -> None:
    # The edge honours an incoming X-Request-Id, so two different requests may carry one id.
    for body in (b'{"id": 1}', b'{"id": 2}'):
        await inbox_under_test.inbox.put(envelope("same-id", body))
    deliveries = await inbox_under_test.inbox.take(2, wait=0.5)
    for delivery in deliveries:
        await inbox_under_test.dead_letters.add(delivery, "unparseable")
    await inbox_under_test.inbox.ack([d.receipt for d in deliveries])

    letters = await inbox_under_test.dead_letters.list()

    assert sorted(letter.envelope.body for letter in letters) == [b'{"id": 1}', b'{"id": 2}']


async def test_list_honours_its_limit(inbox_under_test: InboxUnderTest) -> None:
    for i in range(3):
        await dead_letter(inbox_under_test, f"r-{i}", "unparseable")

    assert len(await inbox_under_test.dead_letters.list(limit=2)) == 2
    assert len(await inbox_under_test.dead_letters.list()) == 3


async def test_replay_puts_every_letter_back_into_the_inbox_as_a_fresh_item(
    inbox_under_test: InboxUnderTest,
) -> None:
    first = await dead_letter(inbox_under_test, "r-1", "unparseable")
    await dead_letter(inbox_under_test, "r-2", "unparseable")

    replayed = await inbox_under_test.dead_letters.replay()

    assert replayed == 2
    assert await inbox_under_test.dead_letters.list() == []
    deliveries = await inbox_under_test.inbox.take(10, wait=0.5)
    assert sorted(d.envelope.request_id for d in deliveries) == ["r-1", "r-2"]
    again = next(d for d in deliveries if d.envelope.request_id == "r-1")
    assert again.envelope == first.envelope
    assert (await inbox_under_test.inbox.stats()).dead_letters == 0


async def test_replay_of_chosen_ids_moves_only_those(inbox_under_test: InboxUnderTest) -> None:
    await dead_letter(inbox_under_test, "r-1", "unparseable")
    await dead_letter(inbox_under_test, "r-2", "unparseable")

    replayed = await inbox_under_test.dead_letters.replay(["r-2", "not-a-letter"])

    assert replayed == 1
    assert [x.envelope.request_id for x in await inbox_under_test.dead_letters.list()] == ["r-1"]
    (delivery,) = await inbox_under_test.inbox.take(10, wait=0.5)
    assert delivery.envelope.request_id == "r-2"


async def test_replay_with_nothing_dead_replays_nothing(inbox_under_test: InboxUnderTest) -> None:
    assert await inbox_under_test.dead_letters.replay() == 0
    assert await inbox_under_test.dead_letters.replay(["r-1"]) == 0
