"""The Roster and CrmDirectory ports' contracts, run over every directory adapter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pulse.core.model import CrmObject, RosterAgent
from tests.contract.conftest import CrmFactory, RosterFactory

AGENTS = [
    RosterAgent("2", "John Agent", "john.agent@example.test"),
    RosterAgent("3", "Jane Agent", "Jane.Agent@Example.test"),
]

EMAIL = CrmObject(
    object_type="email",
    object_id="88120045123",
    owner_id="6166860",
    owner_email="john.agent@example.test",
    direction="EMAIL",
    status="SENT",
    created_at=datetime(2025, 11, 5, 17, 16, 50, 977_000, tzinfo=UTC),
)
TICKET = CrmObject(
    object_type="ticket",
    object_id="501",
    owner_id="6166861",
    owner_email="jane.agent@example.test",
    created_at=datetime(2025, 11, 5, 18, 0, tzinfo=UTC),
)


async def test_the_roster_holds_the_ring_group_agents(
    roster_factory: RosterFactory, tmp_path: Path
) -> None:
    async with roster_factory(tmp_path, AGENTS) as roster:
        snapshot = await roster.snapshot()

    assert not snapshot.count_everyone
    assert sorted(a.agent_id for a in snapshot.agents) == ["2", "3"]
    john_by_id = snapshot.by_id("2")
    assert john_by_id is not None
    assert (john_by_id.agent_id, john_by_id.name, john_by_id.email) == (
        AGENTS[0].agent_id,
        AGENTS[0].name,
        AGENTS[0].email,
    )
    assert snapshot.by_id("99") is None
    john = snapshot.by_email("JOHN.AGENT@example.test")
    assert john is not None and john.agent_id == "2"


async def test_the_roster_answers_the_same_twice(
    roster_factory: RosterFactory, tmp_path: Path
) -> None:
    async with roster_factory(tmp_path, AGENTS) as roster:
        first, second = await roster.snapshot(), await roster.snapshot()

    assert first.agents == second.agents


async def test_the_crm_finds_emails_and_tickets_with_their_owner(
    crm_factory: CrmFactory, tmp_path: Path
) -> None:
    async with crm_factory(tmp_path, [EMAIL, TICKET]) as crm:
        email = await crm.lookup("email", "88120045123")
        ticket = await crm.lookup("ticket", "501")

    assert email == EMAIL
    assert ticket is not None
    assert (ticket.object_type, ticket.owner_email) == ("ticket", "jane.agent@example.test")


async def test_the_crm_knows_nothing_of_unknown_objects(
    crm_factory: CrmFactory, tmp_path: Path
) -> None:
    async with crm_factory(tmp_path, [EMAIL]) as crm:
        assert await crm.lookup("email", "404") is None
        assert await crm.lookup("ticket", "88120045123") is None
