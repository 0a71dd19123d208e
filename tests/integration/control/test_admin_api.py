"""The signed admin API: every way a request can be wrong is refused, audited and writes nothing."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from pulse.adapters_in.http.admin import auth as admin_auth
from pulse.adapters_in.http.admin.api import AdminApi
from pulse.adapters_in.http.middleware import edge_middleware
from pulse.core.model import RosterAgent, RosterSnapshot
from tests.fakes import FakeClock, World, config

ClientMaker = Callable[..., Awaitable[TestClient[Any, Any]]]

SHIFTS = {
    "version": 1,
    "shifts": [
        {"name": "Day", "start": "08:00", "end": "20:00"},
        {"name": "Night", "start": "20:00", "end": "08:00"},
    ],
}
METRICS = {
    "version": 1,
    "metrics": [{"metricId": "CALLS", "defaultGoal": 60, "yellowFloorPct": 0.8}],
}


class FakeNonces:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def remember(self, nonce: str, ttl: timedelta) -> bool:
        if nonce in self.seen:
            return False
        self.seen.add(nonce)
        return True


class Admin:
    """An admin app over fakes, and a client that signs like `pulse admin call`."""

    def __init__(self, client: TestClient[Any, Any], world: World, secret: str) -> None:
        self.client, self.world, self.secret = client, world, secret

    def headers(self, method: str, path: str, body: bytes, **changes: Any) -> dict[str, str]:
        now = changes.pop("now", self.world.clock.now().timestamp())
        headers = admin_auth.signed_headers(
            changes.pop("secret", self.secret), method, path, body, now
        )
        headers.update(changes.pop("extra", {}))
        return headers

    async def call(
        self, method: str, path: str, payload: Any = None, **changes: Any
    ) -> tuple[int, dict[str, Any]]:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = changes.pop("headers", None) or self.headers(method, path, body, **changes)
        response = await self.client.request(method, path, data=body, headers=headers)
        return response.status, await response.json()


@pytest.fixture
def make_admin(aiohttp_client: ClientMaker) -> Callable[..., Awaitable[Admin]]:
    async def make(**options: Any) -> Admin:
        world = World(RosterSnapshot((RosterAgent("2", "John", "john@example.test"),), "8465"))
        secret = secrets.token_urlsafe(32)
        api = AdminApi(world.ports, config(), FakeNonces(), secret, **options)
        app = web.Application(middlewares=[edge_middleware], client_max_size=1 << 20)
        api.register(app)
        return Admin(await aiohttp_client(app), world, secret)

    return make


async def test_a_signed_request_is_accepted_and_applied(make_admin: Any) -> None:
    admin = await make_admin()

    status, answer = await admin.call("PUT", "/admin/dim-shift", SHIFTS)

    assert status == 200 and answer["outcome"] == "applied" and answer["version"] == 1
    assert sorted(admin.world.sink.tables["DimShift"]) == ["ALLDAY", "DAY", "NIGHT", "UNASSIGNED"]
    assert admin.world.audit.records[-1].who == "admin@127.0.0.1"


async def test_dry_run_shows_the_diff_and_writes_nothing(make_admin: Any) -> None:
    admin = await make_admin()

    status, answer = await admin.call("PUT", "/admin/dim-metric/2026-11?dryRun=true", METRICS)

    assert status == 200 and answer["dryRun"] is True and answer["changes"]
    assert admin.world.wrote_nothing()


async def test_every_write_route_answers(make_admin: Any) -> None:
    admin = await make_admin()
    assert (await admin.call("POST", "/admin/dim-agent/sync"))[1]["counts"]["active"] == 1
    assert (await admin.call("POST", "/admin/dim-date/extend"))[1]["counts"]["pushed"] == 62
    status, answer = await admin.call("GET", "/admin/audit?limit=5")
    assert status == 200 and [r["action"] for r in answer["records"]] == [
        "extend_dates",
        "sync_agents",
    ]
    status, answer = await admin.call("GET", "/admin/status")
    assert status == 200 and answer["documents"][0]["document"] == "dim_agent"


def _tamper_body(admin: Admin, body: bytes) -> dict[str, Any]:
    return {"headers": admin.headers("PUT", "/admin/dim-shift", body + b" ")}


REJECTIONS: dict[str, tuple[Callable[[Admin, bytes], dict[str, Any]], int, str]] = {
    "wrong secret": (lambda a, b: {"secret": secrets.token_urlsafe(32)}, 401, "bad_signature"),
    "stale timestamp": (
        lambda a, b: {"now": a.world.clock.now().timestamp() - 301},
        401,
        "stale_timestamp",
    ),
    "future timestamp": (
        lambda a, b: {"now": a.world.clock.now().timestamp() + 301},
        401,
        "stale_timestamp",
    ),
    "tampered body": (_tamper_body, 401, "bad_signature"),
    "tampered path": (
        lambda a, b: {"headers": a.headers("PUT", "/admin/dim-shift?dryRun=true", b)},
        401,
        "bad_signature",
    ),
    "missing headers": (
        lambda a, b: {"headers": {"X-Pulse-Nonce": "n" * 16}},
        401,
        "missing_signature",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
async def test_a_bad_request_is_rejected_audited_and_writes_nothing(
    make_admin: Any, case: str
) -> None:
    admin = await make_admin()
    body = json.dumps(SHIFTS).encode()
    changes, expected_status, code = REJECTIONS[case]

    status, answer = await admin.call("PUT", "/admin/dim-shift", SHIFTS, **changes(admin, body))

    assert (status, answer["error"]["code"]) == (expected_status, code)
    assert admin.world.wrote_nothing()
    assert [r.outcome for r in admin.world.audit.records] == [f"rejected: {code}"]


async def test_a_replayed_nonce_is_rejected(make_admin: Any) -> None:
    admin = await make_admin()
    body = json.dumps(SHIFTS).encode()
    headers = admin.headers("PUT", "/admin/dim-shift", body)
    assert (await admin.call("PUT", "/admin/dim-shift", SHIFTS, headers=headers))[0] == 200
    writes = admin.world.sink.writes

    status, answer = await admin.call("PUT", "/admin/dim-shift", SHIFTS, headers=headers)

    assert (status, answer["error"]["code"]) == (401, "replayed_nonce")
    assert admin.world.sink.writes == writes
    assert admin.world.audit.records[-1].outcome == "rejected: replayed_nonce"


async def test_a_caller_outside_the_allow_list_is_forbidden(make_admin: Any) -> None:
    admin = await make_admin(allowlist=admin_auth.parse_networks(["10.0.0.0/8"]))

    status, answer = await admin.call("PUT", "/admin/dim-shift", SHIFTS)

    assert (status, answer["error"]["code"]) == (403, "ip_not_allowed")
    assert admin.world.wrote_nothing()
    assert admin.world.audit.records[-1].outcome == "rejected: ip_not_allowed"


async def test_forwarded_for_counts_only_from_a_trusted_proxy(make_admin: Any) -> None:
    allow = admin_auth.parse_networks(["10.0.0.0/8"])
    forged = {"extra": {"X-Forwarded-For": "10.1.2.3"}}
    untrusting = await make_admin(allowlist=allow)
    assert (await untrusting.call("PUT", "/admin/dim-shift", SHIFTS, **forged))[0] == 403

    behind_proxy = await make_admin(
        allowlist=allow, trusted_proxies=admin_auth.parse_networks(["127.0.0.1/32"])
    )
    status, _ = await behind_proxy.call("PUT", "/admin/dim-shift", SHIFTS, **forged)
    assert status == 200
    assert behind_proxy.world.audit.records[-1].who == "admin@10.1.2.3"


async def test_validation_errors_name_the_field(make_admin: Any) -> None:
    admin = await make_admin()
    bad = {
        "version": 1,
        "metrics": [{"metricId": "CALLS", "defaultGoal": -1, "yellowFloorPct": 0.5}],
    }

    status, answer = await admin.call("PUT", "/admin/dim-metric/2026-11", bad)

    assert status == 400
    assert (
        answer["error"]["message"]
        == "metrics[0].defaultGoal: Input should be greater than or equal to 0"
    )
    status, answer = await admin.call(
        "PUT", "/admin/dim-shift", {**SHIFTS, "shifts": SHIFTS["shifts"][:1]}
    )
    assert status == 400 and "Mon 20:00–Tue 08:00 is not covered" in answer["error"]["message"]
    assert admin.world.sink.writes == 0


async def test_a_stale_version_is_a_conflict(make_admin: Any) -> None:
    admin = await make_admin()
    await admin.call("PUT", "/admin/dim-metric/2026-11", METRICS)
    other = {
        "version": 1,
        "metrics": [{"metricId": "CALLS", "defaultGoal": 1, "yellowFloorPct": 0.8}],
    }

    status, answer = await admin.call("PUT", "/admin/dim-metric/2026-11", other)

    assert status == 409 and answer["error"]["code"] == "stale_version"
    assert "version: 1 is not newer than the applied version 1" in answer["error"]["message"]


def test_client_ip_takes_the_nearest_untrusted_hop() -> None:
    proxies = admin_auth.parse_networks(["10.0.0.0/8"])
    assert admin_auth.client_ip("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.7", proxies) == "1.2.3.4"
    assert admin_auth.client_ip("8.8.8.8", "1.2.3.4", proxies) == "8.8.8.8"


async def test_a_timestamp_of_thousands_of_digits_is_a_401_and_audited(make_admin: Any) -> None:
    admin = await make_admin()
    headers = admin.headers("POST", "/admin/dim-agent/sync", b"")
    headers["X-Pulse-Timestamp"] = "9" * 5_000

    status, answer = await admin.call("POST", "/admin/dim-agent/sync", headers=headers)

    assert status == 401 and answer["error"]["code"] == "bad_timestamp"
    assert answer["error"]["request_id"]
    assert [r.outcome for r in admin.world.audit.records] == ["rejected: bad_timestamp"]
    assert admin.world.wrote_nothing()


# --- the file pulse applies, versions and rollback -------------------------------------------


async def test_the_file_pulse_metrics_apply_takes_is_accepted_and_sent_again_is_unchanged(
    make_admin: Any,
) -> None:
    admin = await make_admin()
    file = {"month": "2026-11", **METRICS}

    applied = await admin.call("PUT", "/admin/dim-metric/2026-11", file)
    again = await admin.call("PUT", "/admin/dim-metric/2026-11", file)

    assert (applied[0], applied[1]["outcome"]) == (200, "applied")
    assert (again[0], again[1]["outcome"], again[1]["version"]) == (200, "unchanged", 1)
    assert admin.world.sink.writes == 1
    assert [r.outcome for r in admin.world.audit.records] == ["applied", "unchanged"]


async def test_a_body_naming_another_month_than_its_path_is_refused(make_admin: Any) -> None:
    admin = await make_admin()

    status, answer = await admin.call(
        "PUT", "/admin/dim-metric/2026-11", {"month": "2026-12", **METRICS}
    )

    assert (status, answer["error"]["code"]) == (400, "invalid")
    assert answer["error"]["message"] == "month: the body says 2026-12 but the path 2026-11"
    assert answer["error"]["request_id"] and admin.world.wrote_nothing()


def _goals(version: int, calls: float) -> dict[str, Any]:
    return {
        "version": version,
        "metrics": [{"metricId": "CALLS", "defaultGoal": calls, "yellowFloorPct": 0.8}],
    }


async def test_metrics_versions_are_listed_and_one_rolled_back_to_as_a_new_version(
    make_admin: Any,
) -> None:
    admin = await make_admin()
    await admin.call("PUT", "/admin/dim-metric/2026-11", _goals(1, 60))
    await admin.call("PUT", "/admin/dim-metric/2026-11", _goals(2, 5))

    status, listed = await admin.call("GET", "/admin/dim-metric/2026-11/versions")

    assert status == 200 and listed["document"] == "dim_metric:2026-11"
    assert [(v["version"], v["appliedBy"], v["current"]) for v in listed["versions"]] == [
        (1, "admin@127.0.0.1", False),
        (2, "admin@127.0.0.1", True),
    ]
    audited = [r.payload_hash for r in admin.world.audit.records]
    assert [v["payloadHash"] for v in listed["versions"]] == audited
    assert listed["versions"][0]["counts"]["changed"] == 1

    dry = await admin.call("POST", "/admin/dim-metric/2026-11/rollback?dryRun=true", {"to": 1})
    writes = admin.world.sink.writes
    rolled = await admin.call("POST", "/admin/dim-metric/2026-11/rollback", {"to": 1})

    assert (dry[0], dry[1]["outcome"], dry[1]["version"]) == (200, "dry_run", 3)
    assert "~ 2026-11:CALLS (DefaultGoal: 5.0 → 60.0, Version: 2 → 3)" in dry[1]["changes"]
    assert (rolled[0], rolled[1]["action"], rolled[1]["outcome"]) == (
        200,
        "rollback_metrics",
        "applied",
    )
    assert admin.world.sink.writes == writes + 1
    row = admin.world.sink.tables["DimMetric"]["2026-11:CALLS"]
    assert (row.DefaultGoal, row.Version) == (60, 3)  # type: ignore[union-attr]
    listed = (await admin.call("GET", "/admin/dim-metric/2026-11/versions"))[1]
    assert listed["versions"][-1]["restoredFrom"] == 1


async def test_shift_versions_roll_back_and_an_unknown_version_is_a_404(make_admin: Any) -> None:
    admin = await make_admin()
    assert (await admin.call("GET", "/admin/dim-shift/versions"))[1]["versions"] == []
    await admin.call("PUT", "/admin/dim-shift", SHIFTS)
    later = {**SHIFTS, "version": 2, "allowUnassigned": True, "shifts": SHIFTS["shifts"][:1]}
    await admin.call("PUT", "/admin/dim-shift", later)

    unknown = await admin.call("POST", "/admin/dim-shift/rollback", {"to": 9})
    rolled = await admin.call("POST", "/admin/dim-shift/rollback", {"to": 1})

    assert (unknown[0], unknown[1]["error"]["code"]) == (404, "unknown_version")
    assert unknown[1]["error"]["message"] == "dim_shift has no version 9: its versions are v1, v2"
    assert unknown[1]["error"]["request_id"]
    assert (rolled[0], rolled[1]["version"]) == (200, 3)
    assert {"DAY", "NIGHT"} <= set(admin.world.sink.tables["DimShift"])
    versions = (await admin.call("GET", "/admin/dim-shift/versions"))[1]["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"to": 0}, "to: Input should be greater than or equal to 1"),
        ({}, "to: Field required"),
        ({"to": 1, "month": "2026-11"}, "month: Extra inputs are not permitted"),
    ],
)
async def test_a_bad_rollback_body_names_the_field(
    make_admin: Any, body: dict[str, Any], message: str
) -> None:
    admin = await make_admin()
    await admin.call("PUT", "/admin/dim-metric/2026-11", _goals(1, 60))
    writes = admin.world.sink.writes

    status, answer = await admin.call("POST", "/admin/dim-metric/2026-11/rollback", body)

    assert (status, answer["error"]["message"]) == (400, message)
    assert admin.world.sink.writes == writes


async def test_versions_and_rollback_need_a_signature(make_admin: Any) -> None:
    admin = await make_admin()
    await admin.call("PUT", "/admin/dim-shift", SHIFTS)
    unsigned = {"headers": {"Content-Type": "application/json"}}

    listed = await admin.call("GET", "/admin/dim-shift/versions", **unsigned)
    rolled = await admin.call("POST", "/admin/dim-shift/rollback", {"to": 1}, **unsigned)

    assert (listed[0], rolled[0]) == (401, 401)
    assert [r.outcome for r in admin.world.audit.records[-2:]] == [
        "rejected: missing_signature"
    ] * 2


# --- incidents (issue 13 §1) ---------------------------------------------------------------------


class _Offered:
    def __init__(self) -> None:
        self.transitions: list[Any] = []

    def offer(self, transition: Any) -> None:
        self.transitions.append(transition)


async def test_incidents_are_listed_acked_and_resolved_by_signed_requests(
    make_admin: Any, tmp_path: Any
) -> None:
    from pulse.adapters_in.incidents import IncidentMonitor
    from pulse.adapters_out.sqlite.control import open_control_db
    from pulse.adapters_out.sqlite.incidents import SqliteIncidentStore
    from pulse.core.incidents import IncidentRules

    db = open_control_db(tmp_path / "control.sqlite")
    alerts = _Offered()
    monitor = IncidentMonitor(SqliteIncidentStore(db), FakeClock(), IncidentRules(2), alerts)
    admin = await make_admin(incidents=monitor)
    monitor.clock = admin.world.clock  # the signed requests' clock
    monitor.note({"powerbi:429": (2, "throttled"), "dynamodb:throttled": (1, "slow")})
    await monitor.round()
    try:
        status, answer = await admin.call("GET", "/admin/incidents")
        assert status == 200
        (listed,) = answer["incidents"]
        assert (listed["signature"], listed["count"], listed["state"]) == ("powerbi:429", 2, "open")

        status, acked = await admin.call("POST", f"/admin/incidents/{listed['id']}/ack", {})
        assert status == 200 and acked["ackedBy"] == "admin@127.0.0.1" and acked["state"] == "open"
        status, done = await admin.call(
            "POST", f"/admin/incidents/{listed['id']}/ack", {"resolve": True}
        )
        assert status == 200 and done["state"] == "resolved"
        assert [t.change.value for t in alerts.transitions] == ["opened", "resolved"]

        assert (await admin.call("GET", "/admin/incidents?state=open"))[1]["incidents"] == []
        status, missing = await admin.call("POST", "/admin/incidents/nope/ack", {})
        assert (status, missing["error"]["code"]) == (404, "unknown_incident")
        status, bad = await admin.call("GET", "/admin/incidents?state=sideways")
        assert (status, bad["error"]["code"]) == (400, "invalid")
    finally:
        await db.close()


async def test_an_unsigned_incidents_request_is_refused(make_admin: Any) -> None:
    admin = await make_admin()
    response = await admin.client.get("/admin/incidents")
    assert response.status == 401
