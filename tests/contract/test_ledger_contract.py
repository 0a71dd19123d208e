"""The Ledger port's contract (DESIGN §2 "Exactly once"), run over every ledger adapter."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.contract.conftest import LedgerUnderTest

LEASE = timedelta(seconds=120)


async def test_new_keys_are_claimed_under_a_fresh_token(ledger_under_test: LedgerUnderTest) -> None:
    ledger = ledger_under_test.ledger

    first = await ledger.claim(["aloware:1", "aloware:2"], LEASE)
    second = await ledger.claim(["aloware:3"], LEASE)

    assert sorted(first.claimed) == ["aloware:1", "aloware:2"]
    assert (first.done, first.busy) == ((), ())
    assert first.token and second.token and first.token != second.token


async def test_a_committed_key_is_a_duplicate(ledger_under_test: LedgerUnderTest) -> None:
    ledger = ledger_under_test.ledger
    claim = await ledger.claim(["aloware:1"], LEASE)
    await ledger.commit(claim)

    again = await ledger.claim(["aloware:1"], LEASE)

    assert (again.claimed, again.done, again.busy) == ((), ("aloware:1",), ())


async def test_a_committed_key_stays_done_after_its_lease_would_have_run_out(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["aloware:1"], LEASE))
    await ledger_under_test.pass_time(LEASE.total_seconds() * 3)

    again = await ledger.claim(["aloware:1"], LEASE)

    assert again.done == ("aloware:1",)


async def test_a_key_under_a_live_lease_is_busy_for_another_claimer(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.claim(["aloware:1"], LEASE)
    await ledger_under_test.pass_time(LEASE.total_seconds() / 2)

    other = await ledger.claim(["aloware:1"], LEASE)

    assert (other.claimed, other.done, other.busy) == ((), (), ("aloware:1",))


async def test_an_expired_lease_is_taken_over(ledger_under_test: LedgerUnderTest) -> None:
    ledger = ledger_under_test.ledger
    crashed = await ledger.claim(["aloware:1"], LEASE)
    await ledger_under_test.pass_time(LEASE.total_seconds() + 1)

    takeover = await ledger.claim(["aloware:1"], LEASE)

    assert takeover.claimed == ("aloware:1",)
    assert takeover.token != crashed.token


async def test_one_claim_sorts_new_done_and_busy_keys(ledger_under_test: LedgerUnderTest) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["done"], LEASE))
    await ledger.claim(["busy"], LEASE)

    mixed = await ledger.claim(["new", "done", "busy"], LEASE)

    assert (mixed.claimed, mixed.done, mixed.busy) == (("new",), ("done",), ("busy",))


async def test_done_among_names_only_committed_keys_and_claims_nothing(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["done"], LEASE))
    await ledger.claim(["busy"], LEASE)

    found = await ledger.done_among(["new", "done", "busy", "done"])
    after = await ledger.claim(["new"], LEASE)

    assert found == frozenset({"done"})
    assert after.claimed == ("new",)  # the read left "new" unclaimed


async def test_a_key_given_twice_in_one_call_is_claimed_once(
    ledger_under_test: LedgerUnderTest,
) -> None:
    claim = await ledger_under_test.ledger.claim(["aloware:1", "aloware:1"], LEASE)

    assert claim.claimed == ("aloware:1",)
    assert (claim.done, claim.busy) == ((), ())


async def test_claiming_no_keys_claims_nothing(ledger_under_test: LedgerUnderTest) -> None:
    claim = await ledger_under_test.ledger.claim([], LEASE)

    assert (claim.claimed, claim.done, claim.busy) == ((), (), ())


async def test_of_concurrent_claims_of_one_key_exactly_one_wins(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger

    claims = await asyncio.gather(*(ledger.claim(["aloware:1"], LEASE) for _ in range(8)))

    assert sum(len(c.claimed) for c in claims) == 1
    assert sum(len(c.busy) for c in claims) == 7


async def test_release_lets_another_attempt_claim_the_key(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    claim = await ledger.claim(["aloware:1"], LEASE)

    await ledger.release(claim)

    assert (await ledger.claim(["aloware:1"], LEASE)).claimed == ("aloware:1",)


async def test_release_never_deletes_someone_elses_claim(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    slow = await ledger.claim(["aloware:1"], LEASE)
    await ledger_under_test.pass_time(LEASE.total_seconds() + 1)
    takeover = await ledger.claim(["aloware:1"], LEASE)

    await ledger.release(slow)

    assert (await ledger.claim(["aloware:1"], LEASE)).busy == ("aloware:1",)
    await ledger.commit(takeover)
    assert (await ledger.claim(["aloware:1"], LEASE)).done == ("aloware:1",)


async def test_release_never_undoes_a_commit(ledger_under_test: LedgerUnderTest) -> None:
    ledger = ledger_under_test.ledger
    claim = await ledger.claim(["aloware:1"], LEASE)
    await ledger.commit(claim)

    await ledger.release(claim)

    assert (await ledger.claim(["aloware:1"], LEASE)).done == ("aloware:1",)


async def test_a_claim_that_lost_its_lease_cannot_commit_the_new_holders_key(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    slow = await ledger.claim(["aloware:1"], LEASE)
    await ledger_under_test.pass_time(LEASE.total_seconds() + 1)
    takeover = await ledger.claim(["aloware:1"], LEASE)

    await ledger.commit(slow)

    assert (await ledger.claim(["aloware:1"], LEASE)).busy == ("aloware:1",)
    await ledger.release(takeover)
    assert (await ledger.claim(["aloware:1"], LEASE)).claimed == ("aloware:1",)


async def test_commit_and_release_can_settle_part_of_a_claim(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    claim = await ledger.claim(["pushed", "failed", "later"], LEASE)

    await ledger.commit(claim, ["pushed"])
    await ledger.release(claim, ["failed"])

    after = await ledger.claim(["pushed", "failed", "later"], LEASE)
    assert (after.claimed, after.done, after.busy) == (("failed",), ("pushed",), ("later",))


async def test_a_done_key_is_kept_for_its_ttl_then_purged(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["aloware:1"], LEASE))
    await ledger.claim(["in-flight"], LEASE)

    await ledger_under_test.pass_time(ledger_under_test.ttl.total_seconds() - 60)
    assert await ledger.purge_expired() == 0
    assert (await ledger.claim(["aloware:1"], LEASE)).done == ("aloware:1",)

    await ledger_under_test.pass_time(120)
    if ledger_under_test.native_ttl:
        # The store deletes expired items itself, some time later; until then the key
        # still reads as done (never as claimable twice), and purge has nothing to do.
        assert await ledger.purge_expired() == 0
        assert (await ledger.claim(["aloware:1"], LEASE)).done == ("aloware:1",)
        return
    assert await ledger.purge_expired() == 1  # the done key only; a PENDING claim has no TTL
    assert (await ledger.claim(["aloware:1"], LEASE)).claimed == ("aloware:1",)


async def test_a_key_committed_forever_outlives_the_ttl(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["dim:DimDate:20251105"], LEASE), forever=True)

    await ledger_under_test.pass_time(ledger_under_test.ttl.total_seconds() + 120)
    await ledger.purge_expired()

    assert (await ledger.claim(["dim:DimDate:20251105"], LEASE)).done == ("dim:DimDate:20251105",)
    assert ledger_under_test.other_process is not None
    async with ledger_under_test.other_process() as restarted:  # the store kept it, not a cache
        kept = await restarted.claim(["dim:DimDate:20251105", "dim:DimDate:20251106"], LEASE)
    assert kept.done == ("dim:DimDate:20251105",)
    assert kept.claimed == ("dim:DimDate:20251106",)


async def test_keys_kept_forever_and_keys_with_a_ttl_are_told_apart_by_another_process(
    ledger_under_test: LedgerUnderTest,
) -> None:
    ledger = ledger_under_test.ledger
    await ledger.commit(await ledger.claim(["dim:DimDate:20251105"], LEASE), forever=True)
    await ledger.commit(await ledger.claim(["aloware:1"], LEASE))
    assert ledger_under_test.other_process is not None

    async with ledger_under_test.other_process() as other:
        first = await other.claim(["dim:DimDate:20251105", "aloware:1"], LEASE)
        await ledger_under_test.pass_time(ledger_under_test.ttl.total_seconds() + 120)
        await other.purge_expired()
        await ledger.purge_expired()
        later = await other.claim(["dim:DimDate:20251105", "aloware:1"], LEASE)

    assert set(first.done) == {"dim:DimDate:20251105", "aloware:1"}
    assert "dim:DimDate:20251105" in later.done  # remembered for good, by store and process
    if not ledger_under_test.native_ttl:  # DynamoDB's TTL sweeps when it likes (up to days)
        assert later.done == ("dim:DimDate:20251105",)
        assert later.claimed == ("aloware:1",)  # a TTL key is never cached past its expiry


async def test_ping_answers(ledger_under_test: LedgerUnderTest) -> None:
    await ledger_under_test.ledger.ping()


async def test_two_sinks_count_the_same_key_apart_in_one_store(
    ledger_under_test: LedgerUnderTest,
) -> None:
    """SINKS=powerbi,fabric-eventhouse: each sink's namespace of the one store counts on its
    own; a key DONE for one sink is new for the other, and one's release leaves the other's."""
    from pulse.adapters_out.ledger_namespace import NamespacedLedger

    store = ledger_under_test.ledger
    powerbi, fabric = NamespacedLedger(store, "powerbi/"), NamespacedLedger(store, "fabric/")
    await powerbi.commit(await powerbi.claim(["aloware:1"], LEASE))
    pending = await fabric.claim(["aloware:1", "aloware:2"], LEASE)
    assert sorted(pending.claimed) == ["aloware:1", "aloware:2"]
    await fabric.release(pending)

    assert await powerbi.done_among(["aloware:1", "aloware:2"]) == {"aloware:1"}
    assert await fabric.done_among(["aloware:1", "aloware:2"]) == frozenset()
    assert await store.done_among(["aloware:1"]) == frozenset()  # the plain key is the first sink's
    again = await powerbi.claim(["aloware:1", "aloware:2"], LEASE)
    assert (again.claimed, again.done) == (("aloware:2",), ("aloware:1",))
