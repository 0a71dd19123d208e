"""The Aloware roster and HubSpot CRM adapters against their local emulators, faults included."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from pulse.adapters_out.aloware.roster import AlowareRoster
from pulse.adapters_out.hubspot.crm import HubSpotCrm
from pulse.core.errors import PermanentError, TransientError
from pulse.core.model import RosterAgent, RosterSnapshot
from tests.emulators.aloware import AlowareEmulator
from tests.emulators.faults import Fault, stall, throttled
from tests.emulators.hubspot import HubSpotEmulator
from tests.fakes import FakeClock, FakeRoster


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.5) as client:
        yield client


@pytest.fixture
async def aloware() -> AsyncIterator[AlowareEmulator]:
    async with AlowareEmulator() as emulator:
        yield emulator


@pytest.fixture
async def hubspot() -> AsyncIterator[HubSpotEmulator]:
    async with HubSpotEmulator() as emulator:
        yield emulator


def roster_of(
    emulator: AlowareEmulator,
    http: httpx.AsyncClient,
    clock: FakeClock | None = None,
    token: str | None = None,
) -> AlowareRoster:
    return AlowareRoster(
        http,
        emulator.base_url,
        token or emulator.token,
        "8465",
        clock or FakeClock(),
        backoff_sec=0.01,
    )


def crm_of(emulator: HubSpotEmulator, http: httpx.AsyncClient, **options: object) -> HubSpotCrm:
    return HubSpotCrm(
        http, emulator.base_url, emulator.token, FakeClock(), backoff_sec=0.01, **options
    )  # type: ignore[arg-type]


# ---- Aloware ---------------------------------------------------------------------------------


async def test_the_roster_is_the_ring_groups_test_results(
    aloware: AlowareEmulator, http: httpx.AsyncClient
) -> None:
    snapshot = await roster_of(aloware, http).fetch()

    assert snapshot.ring_group_id == "8465" and not snapshot.count_everyone
    assert [(a.agent_id, a.email) for a in snapshot.agents] == [
        ("2", "john.agent@example.test"),
        ("3", "jane.agent@example.test"),  # offline agents are still on the roster
    ]


async def test_several_ring_groups_make_one_roster_each_agent_in_their_first_group(
    aloware: AlowareEmulator, http: httpx.AsyncClient
) -> None:
    aloware.ring_groups["8470"] = [
        {"id": 9, "name": "Olga Ruiz", "email": "olga@example.test"},
        {"id": "3", "name": "Jane Agent", "email": "jane.agent@example.test"},  # in both
    ]
    roster = AlowareRoster(http, aloware.base_url, aloware.token, ("8465", "8470"), FakeClock())

    snapshot = await roster.fetch()

    assert [(a.agent_id, a.ring_group_id) for a in snapshot.agents] == [
        ("2", "8465"),
        ("3", "8465"),
        ("9", "8470"),
    ]
    assert snapshot.ring_group_id == "8465,8470"


async def test_5xx_429_and_timeouts_are_retried(
    aloware: AlowareEmulator, http: httpx.AsyncClient
) -> None:
    aloware.faults.add(Fault(503), throttled(0), stall(1.0))

    snapshot = await roster_of(aloware, http).fetch()

    assert len(snapshot.agents) == 2 and len(aloware.requests) == 4


async def test_a_persistent_outage_is_transient_and_the_gate_keeps_its_last_roster(
    aloware: AlowareEmulator, http: httpx.AsyncClient
) -> None:
    clock = FakeClock()
    roster = roster_of(aloware, http, clock)
    await roster.snapshot()
    aloware.faults.add(*[Fault(500)] * 4)

    with pytest.raises(TransientError, match="answered 500 after 4 attempt"):
        await roster.fetch()
    aloware.faults.add(*[Fault(500)] * 4)
    clock.advance(3600)
    assert len((await roster.snapshot()).agents) == 2


async def test_a_bad_token_is_a_clear_error_and_never_logged(
    aloware: AlowareEmulator, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # the daemon quiets it; the redaction holds
    wrong = "wrong-" + aloware.token

    with pytest.raises(PermanentError, match="ALOWARE_API_TOKEN") as caught:
        await roster_of(aloware, http, token=wrong).fetch()
    await roster_of(aloware, http).fetch()

    assert wrong not in str(caught.value)
    assert "api_token=***" in caplog.text
    assert aloware.token not in caplog.text and wrong not in caplog.text


async def test_sync_refreshes_the_cached_roster(
    aloware: AlowareEmulator, http: httpx.AsyncClient
) -> None:
    roster = roster_of(aloware, http)
    await roster.snapshot()
    newer = RosterSnapshot((RosterAgent("9", "Nina"),), "8465")

    await roster.refresh(newer)

    assert await roster.snapshot() == newer and len(aloware.requests) == 1


# ---- HubSpot ---------------------------------------------------------------------------------


async def test_an_email_is_looked_up_with_its_owners_lower_cased_email(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    email = await crm_of(hubspot, http).lookup("email", "88120045123")

    assert email is not None
    assert (email.owner_id, email.owner_email, email.direction, email.status) == (
        "6166860",
        "jsmith@example.test",
        "EMAIL",
        "SENT",
    )


async def test_objects_and_owners_are_cached(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    crm = crm_of(hubspot, http)
    await crm.lookup("ticket", "9001122471")
    await crm.lookup("ticket", "9001122471")
    await crm.lookup("email", "88120045123")

    assert hubspot.hits["/crm/v3/objects/tickets/9001122471"] == 1
    assert hubspot.hits["/crm/v3/owners/6166860"] == 1


async def test_unknown_objects_are_none_and_unknown_owners_have_no_email(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    hubspot.add_ticket("77", owner_id="404404")
    crm = crm_of(hubspot, http)

    assert await crm.lookup("ticket", "1") is None
    ticket = await crm.lookup("ticket", "77")
    assert ticket is not None and ticket.owner_email is None


async def test_429_with_retry_after_and_5xx_are_retried(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    hubspot.faults.add(throttled(0), Fault(502), stall(1.0))

    ticket = await crm_of(hubspot, http).lookup("ticket", "9001122471")

    assert ticket is not None and hubspot.hits["/crm/v3/objects/tickets/9001122471"] == 4


async def test_spent_retries_and_a_bad_token_are_transient(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    hubspot.faults.add(*[Fault(503)] * 4)
    with pytest.raises(TransientError, match="answered 503 after 4"):
        await crm_of(hubspot, http).lookup("ticket", "9001122471")

    bad = HubSpotCrm(http, hubspot.base_url, "not-the-token", FakeClock(), backoff_sec=0.01)
    with pytest.raises(TransientError, match="refused the private-app token"):
        await bad.lookup("ticket", "9001122471")


async def test_an_override_maps_an_owner_to_a_roster_agent(
    hubspot: HubSpotEmulator, http: httpx.AsyncClient
) -> None:
    class Overrides:
        async def get(self, owner: str) -> str | None:
            return {"6166860": "3"}.get(owner)

    roster = FakeRoster(RosterSnapshot((RosterAgent("3", "Jane", "Jane.Agent@example.test"),)))

    class Snapshotting:
        async def snapshot(self) -> RosterSnapshot:
            return await roster.fetch()

    crm = crm_of(
        hubspot, http, overrides=Overrides(), roster=Snapshotting(), owner_ttl=timedelta(0)
    )
    ticket = await crm.lookup("ticket", "9001122471")

    assert ticket is not None and ticket.owner_email == "jane.agent@example.test"
