"""The DeadLetters port's contract, run over every inbox adapter (see conftest INBOX_FACTORIES)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from pulse.core.dead_letters import DeadLetterFilter
from pulse.core.model import Delivery
from pulse.ports.inbox import DeadLetter
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


# --- by filter: source, reason, the time window (an incident's), paging, the retention purge --


async def letters_either_side(under_test: InboxUnderTest) -> tuple[datetime, list[str]]:
    """Three letters, two before an instant and one after it: (that instant, their request ids).

    r-old (aloware, "unparseable: no id") and r-hub (hubspot, "sink rejected: 400") die first,
    r-new (aloware, "Unparseable: bad time") a second later; the instant lies between."""
    await dead_letter(under_test, "r-old", "unparseable: no id")
    hub = dataclasses.replace(envelope("r-hub", b'{"id": 9}'), source="hubspot")
    await under_test.inbox.put(hub)
    (delivery,) = await under_test.inbox.take(1, wait=0.5)
    await under_test.dead_letters.add(delivery, "sink rejected: 400")
    await under_test.inbox.ack([delivery.receipt])
    await under_test.pass_time(1)
    await dead_letter(under_test, "r-new", "Unparseable: bad time")
    by_id = {x.envelope.request_id: x for x in await under_test.dead_letters.list()}
    first_two = max(by_id["r-old"].dead_at, by_id["r-hub"].dead_at)
    instant = first_two + (by_id["r-new"].dead_at - first_two) / 2
    return instant, ["r-old", "r-hub", "r-new"]


def ids(letters: list[DeadLetter]) -> list[str]:
    return sorted(letter.envelope.request_id for letter in letters)


async def test_list_and_count_keep_only_what_the_filter_names(
    inbox_under_test: InboxUnderTest,
) -> None:
    instant, _ = await letters_either_side(inbox_under_test)
    store = inbox_under_test.dead_letters
    cases = {
        DeadLetterFilter(source="hubspot"): ["r-hub"],
        DeadLetterFilter(reason="UNPARSEABLE"): ["r-new", "r-old"],
        DeadLetterFilter(reason="bad time"): ["r-new"],
        DeadLetterFilter(since=instant): ["r-new"],
        DeadLetterFilter(until=instant): ["r-hub", "r-old"],
        DeadLetterFilter(source="aloware", until=instant): ["r-old"],
        DeadLetterFilter(source="nobody"): [],
        DeadLetterFilter(): ["r-hub", "r-new", "r-old"],
    }
    for where, expected in cases.items():
        assert ids(await store.list(where=where)) == expected, where.describe()
        assert await store.count(where) == len(expected), where.describe()
    assert await store.count() == 3


async def test_list_pages_oldest_first_with_an_offset(inbox_under_test: InboxUnderTest) -> None:
    await letters_either_side(inbox_under_test)
    store = inbox_under_test.dead_letters

    first_page = await store.list(limit=2)
    second_page = await store.list(limit=2, offset=2)

    assert ids(first_page) == ["r-hub", "r-old"]
    assert ids(second_page) == ["r-new"]
    assert await store.list(limit=2, offset=3) == []


async def test_replay_of_an_incident_window_moves_only_what_died_inside_it(
    inbox_under_test: InboxUnderTest,
) -> None:
    instant, _ = await letters_either_side(inbox_under_test)
    store = inbox_under_test.dead_letters

    replayed = await store.replay(where=DeadLetterFilter(source="aloware", until=instant))

    assert replayed == 1
    assert ids(await store.list()) == ["r-hub", "r-new"]
    (delivery,) = await inbox_under_test.inbox.take(10, wait=0.5)
    assert delivery.envelope.request_id == "r-old"


async def test_replay_of_chosen_ids_also_honours_the_filter(
    inbox_under_test: InboxUnderTest,
) -> None:
    await letters_either_side(inbox_under_test)

    replayed = await inbox_under_test.dead_letters.replay(
        ["r-old", "r-hub"], where=DeadLetterFilter(source="hubspot")
    )

    assert replayed == 1
    assert ids(await inbox_under_test.dead_letters.list()) == ["r-new", "r-old"]


async def test_purge_deletes_for_good_only_the_letters_dead_before_the_cutoff(
    inbox_under_test: InboxUnderTest,
) -> None:
    instant, _ = await letters_either_side(inbox_under_test)
    store = inbox_under_test.dead_letters

    purged = await store.purge(instant)

    assert purged == 2
    assert ids(await store.list()) == ["r-new"]
    assert await store.purge(instant) == 0
    assert await store.replay() == 1  # the purged ones do not come back
    (delivery,) = await inbox_under_test.inbox.take(10, wait=0.5)
    assert delivery.envelope.request_id == "r-new"
