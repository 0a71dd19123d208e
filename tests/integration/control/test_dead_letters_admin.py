"""`/admin/dead-letters`: list by filter a page at a time, replay by filter; signed and audited."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from aiohttp import web

from pulse.adapters_in.http.admin.api import AdminApi
from pulse.adapters_in.http.middleware import edge_middleware
from pulse.core.dead_letters import DeadLetterPorts
from pulse.core.model import Delivery, IngestEnvelope, RosterAgent, RosterSnapshot
from tests.fakes import FakeDeadLetters, World, config
from tests.integration.control.test_admin_api import Admin, ClientMaker, FakeNonces


class LetterAdmin(Admin):
    store: FakeDeadLetters

    async def kill(self, request_id: str, source: str, reason: str) -> None:
        body = b'{"lead_number": "+12025550142"}'
        envelope = IngestEnvelope(request_id, source, self.world.clock.now(), body, {})
        await self.store.add(Delivery(envelope, "receipt", 1), reason)


@pytest.fixture
async def admin(aiohttp_client: ClientMaker) -> LetterAdmin:
    world = World(RosterSnapshot((RosterAgent("2", "John", "john@example.test"),), "8465"))
    store = FakeDeadLetters(world.clock)
    secret = secrets.token_urlsafe(32)
    letters = DeadLetterPorts(store, world.audit, world.clock)
    api = AdminApi(world.ports, config(), FakeNonces(), secret, letters=letters)
    app = web.Application(middlewares=[edge_middleware])
    api.register(app)
    admin = LetterAdmin(await aiohttp_client(app), world, secret)
    admin.store = store
    return admin


async def an_incident(admin: LetterAdmin) -> tuple[str, str]:
    """One letter before an incident, two while it was open, one after: (opened, resolved)."""
    await admin.kill("r-before", "aloware", "unparseable: no id")
    admin.world.clock.advance(3600)
    opened = admin.world.clock.now()
    await admin.kill("r-during-1", "aloware", "powerbi: schema rejected")
    await admin.kill("r-during-2", "hubspot", "powerbi: schema rejected")
    admin.world.clock.advance(600)
    resolved = admin.world.clock.now()
    admin.world.clock.advance(60)
    await admin.kill("r-after", "aloware", "unparseable: bad time")
    return opened.isoformat(), resolved.isoformat()


async def test_the_list_is_filtered_paged_oldest_first_and_shows_no_body(
    admin: LetterAdmin,
) -> None:
    await an_incident(admin)

    status, page = await admin.call("GET", "/admin/dead-letters?reason=SCHEMA&limit=1&offset=1")

    assert status == 200
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)
    assert [x["requestId"] for x in page["deadLetters"]] == ["r-during-2"]
    assert set(page["deadLetters"][0]) == {
        "requestId",
        "source",
        "receivedAt",
        "reason",
        "deadAt",
        "attempts",
    }
    status, page = await admin.call("GET", "/admin/dead-letters?source=aloware")
    assert [x["requestId"] for x in page["deadLetters"]] == ["r-before", "r-during-1", "r-after"]


async def test_replaying_an_incident_window_previews_then_moves_only_those_and_audits(
    admin: LetterAdmin,
) -> None:
    opened, resolved = await an_incident(admin)
    window = {"since": opened, "until": resolved}

    status, dry = await admin.call("POST", "/admin/dead-letters/replay?dryRun=true", window)
    assert status == 200 and dry["dryRun"] is True
    assert dry["counts"] == {"matched": 2, "replayed": 0}
    assert sum("r-during-" in line for line in dry["changes"]) == 2
    assert admin.store.replayed == []

    status, done = await admin.call("POST", "/admin/dead-letters/replay", window)
    assert status == 200 and done["counts"] == {"matched": 2, "replayed": 2}
    assert sorted(d.envelope.request_id for d in admin.store.replayed) == [
        "r-during-1",
        "r-during-2",
    ]
    assert [(r.action, r.outcome, r.who) for r in admin.world.audit.records] == [
        ("replay_dead_letters", "dry_run", "admin@127.0.0.1"),
        ("replay_dead_letters", "applied", "admin@127.0.0.1"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/admin/dead-letters?since=yesterday", None),
        ("GET", "/admin/dead-letters?limit=many", None),
        ("GET", "/admin/dead-letters?since=2026-11-02&until=2026-11-01", None),
        ("POST", "/admin/dead-letters/replay", {"sources": "aloware"}),
        ("POST", "/admin/dead-letters/replay", {"until": "not a time"}),
    ],
)
async def test_a_malformed_filter_is_a_json_400_with_a_request_id_and_moves_nothing(
    admin: LetterAdmin, method: str, path: str, payload: Any
) -> None:
    await an_incident(admin)

    status, answer = await admin.call(method, path, payload)

    assert (status, answer["error"]["code"]) == (400, "invalid"), answer
    assert answer["error"]["request_id"]
    assert admin.store.replayed == [] and len(admin.store.letters) == 4


async def test_an_unsigned_replay_is_refused_and_audited(admin: LetterAdmin) -> None:
    await an_incident(admin)

    status, answer = await admin.call(
        "POST", "/admin/dead-letters/replay", {}, secret=secrets.token_urlsafe(32)
    )

    assert status == 401 and answer["error"]["code"] == "bad_signature"
    assert admin.store.replayed == []
    assert admin.world.audit.records[-1].outcome == "rejected: bad_signature"
