"""The embedded roster and CRM files: accepted shapes, allow-all mode and readable errors."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pulse.adapters_out.static.crm import StaticCrmDirectory
from pulse.adapters_out.static.roster import StaticRoster
from pulse.core.model import RosterAgent

SPECS = Path(__file__).resolve().parents[1] / "specs" / "webhooks"


def write(path: Path, document: object) -> Path:
    path.write_text(json.dumps(document))
    return path


async def test_no_agents_and_no_file_counts_everyone() -> None:
    snapshot = await StaticRoster(agent_ids=[], file=None, ring_group_id="8465").snapshot()

    assert snapshot.count_everyone
    assert (snapshot.agents, snapshot.ring_group_id) == ((), "8465")


async def test_agent_ids_alone_make_a_roster_named_by_id() -> None:
    snapshot = await StaticRoster(agent_ids=["2", " 3 ", ""]).snapshot()

    assert not snapshot.count_everyone
    assert snapshot.agents == (RosterAgent("2", "2"), RosterAgent("3", "3"))


async def test_the_aloware_ring_group_sample_is_a_roster_file() -> None:
    roster = StaticRoster([], SPECS / "aloware-api-ring-group-availability-response.json", "8465")

    snapshot = await roster.snapshot()

    assert snapshot.agents == (
        RosterAgent("2", "John Agent", "john.agent@example.test"),
        RosterAgent("3", "Jane Agent", "jane.agent@example.test"),
    )


async def test_the_aloware_users_sample_is_a_roster_file() -> None:
    snapshot = await StaticRoster([], SPECS / "aloware-api-users-response.json").snapshot()

    assert [a.agent_id for a in snapshot.agents] == ["1"]


async def test_an_unwrapped_test_results_file_with_numeric_ids(tmp_path: Path) -> None:
    file = write(tmp_path / "r.json", {"test_results": [{"id": 7, "name": "Ann"}]})

    snapshot = await StaticRoster([], file).snapshot()

    assert snapshot.agents == (RosterAgent("7", "Ann"),)


async def test_ids_from_settings_join_the_file_agents(tmp_path: Path) -> None:
    file = write(tmp_path / "r.json", [{"id": "2", "name": "John", "email": "j@example.test"}])

    snapshot = await StaticRoster(["2", "5"], file).snapshot()

    assert [(a.agent_id, a.name) for a in snapshot.agents] == [("2", "John"), ("5", "5")]


async def test_an_empty_roster_file_counts_no_one(tmp_path: Path) -> None:
    snapshot = await StaticRoster([], write(tmp_path / "r.json", [])).snapshot()

    assert (snapshot.agents, snapshot.count_everyone) == ((), False)


async def test_a_changed_roster_file_is_read_again(tmp_path: Path) -> None:
    file = write(tmp_path / "r.json", [{"id": 1}])
    roster = StaticRoster([], file)
    write(file, [{"id": 1}, {"id": 2}])
    os.utime(file, ns=(0, file.stat().st_mtime_ns + 1_000_000))

    snapshot = await roster.snapshot()

    assert [a.agent_id for a in snapshot.agents] == ["1", "2"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"agents": []}), "expected a list"),
        (json.dumps([{"name": "No Id"}]), "agent #1 has no usable id"),
        (json.dumps([{"id": True}]), "no usable id"),
        (json.dumps([{"id": 1, "email": 5}]), "email must be a string"),
        (json.dumps(["2"]), "is not an object"),
    ],
)
def test_a_bad_roster_file_is_named_with_its_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    file = tmp_path / "roster.json"
    file.write_text(content)

    with pytest.raises(ValueError, match=problem) as error:
        StaticRoster([], file)

    assert str(file) in str(error.value)


def test_a_missing_roster_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"roster file .*missing\.json: cannot read it"):
        StaticRoster([], tmp_path / "missing.json")


async def test_no_crm_file_knows_no_object() -> None:
    assert await StaticCrmDirectory(None).lookup("email", "1") is None


async def test_crm_file_values_are_normalised(tmp_path: Path) -> None:
    file = write(
        tmp_path / "crm.json",
        {
            "emails": {"1": {"owner_id": 6166860, "created_at": "2025-11-05T17:16:50.977Z"}},
            "tickets": {
                "2": {"owner_email": "a@example.test", "created_at": "2025-11-05T18:00:00"}
            },
        },
    )
    crm = StaticCrmDirectory(file)

    email = await crm.lookup("email", "1")
    ticket = await crm.lookup("ticket", "2")

    assert email is not None and email.owner_id == "6166860"
    assert email.created_at == datetime(2025, 11, 5, 17, 16, 50, 977_000, tzinfo=UTC)
    assert ticket is not None and ticket.created_at == datetime(2025, 11, 5, 18, tzinfo=UTC)
    assert (ticket.owner_id, ticket.direction, ticket.status) == (None, None, None)


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ([], "expected"),
        ({"contacts": {}}, "unknown section"),
        ({"emails": []}, "emails must map object ids"),
        ({"emails": {"1": "x"}}, "email 1 is not an object"),
        ({"tickets": {"9": {"status": ["OPEN"]}}}, "ticket 9: status must be a string"),
        ({"emails": {"1": {"created_at": "yesterday"}}}, "not ISO-8601"),
    ],
)
def test_a_bad_crm_file_is_named_with_its_problem(
    tmp_path: Path, document: object, problem: str
) -> None:
    file = write(tmp_path / "crm.json", document)

    with pytest.raises(ValueError, match=problem) as error:
        StaticCrmDirectory(file)

    assert str(file) in str(error.value)


async def test_the_crm_file_lists_what_was_created_in_a_window_oldest_first(
    tmp_path: Path,
) -> None:
    crm = StaticCrmDirectory(
        write(
            tmp_path / "crm.json",
            {
                "emails": {
                    "2": {"owner_email": "a@example.test", "created_at": "2025-11-05T18:00:00Z"},
                    "1": {"owner_email": "a@example.test", "created_at": "2025-11-05T17:00:00Z"},
                    "3": {"owner_email": "a@example.test", "created_at": "2025-11-07T09:00:00Z"},
                    "4": {"owner_email": "a@example.test"},
                },
                "tickets": {"9": {"created_at": "2025-11-05T17:30:00Z"}},
            },
        )
    )
    since, until = datetime(2025, 11, 5, tzinfo=UTC), datetime(2025, 11, 6, tzinfo=UTC)

    pages = [page async for page in crm.created("email", since, until)]

    assert [[o.object_id for o in p.objects] for p in pages] == [["1", "2"]]
    assert pages[0].expected == 2
