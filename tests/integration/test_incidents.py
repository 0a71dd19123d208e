"""Incidents end to end on the real SQLite stores: failures noted by workers and requests by the
edge become incidents, silences open and resolve on the injected clock, and alerts reach a
receiver on 127.0.0.1 over HTTP without ever holding up ingest."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from pulse.adapters_in.breakers import Breakers
from pulse.adapters_in.http.middleware import edge_middleware
from pulse.adapters_in.http.webhooks import WebhookEdge
from pulse.adapters_in.incidents import IncidentMonitor, SilenceRules
from pulse.adapters_in.intake import WebhookIntake
from pulse.adapters_in.metrics import Metrics
from pulse.adapters_in.sources.aloware import AlowareSource
from pulse.adapters_in.worker import InboxWorkers
from pulse.adapters_out.alerts.webhook import WebhookAlerts
from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.powerbi.errors import PowerBIThrottled
from pulse.adapters_out.sqlite.control import open_control_db
from pulse.adapters_out.sqlite.db import Database
from pulse.adapters_out.sqlite.incidents import SqliteIncidentStore
from pulse.bootstrap.logs import setup_logging
from pulse.core.incidents import Change, IncidentRules, State, Transition
from pulse.core.ingest import IngestConfig
from pulse.core.silence import parse_business_hours
from tests.emulators.alerts import AlertReceiver
from tests.emulators.faults import Fault
from tests.fakes import FakeClock
from tests.support.local import call_envelope, disposed_call, local_stores
from tests.support.outage_sink import OutageSink

MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
RULES = IncidentRules(threshold=3, resolve_after=timedelta(minutes=10))


class RecordedAlerts:
    def __init__(self) -> None:
        self.offered: list[Transition] = []

    def offer(self, transition: Transition) -> None:
        self.offered.append(transition)


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[Database]:
    db = open_control_db(tmp_path / "control.sqlite")
    yield db
    await db.close()


def monitor(db: Database, clock: FakeClock, alerts: object, **silence: float) -> IncidentMonitor:
    rules = None
    if silence:
        limits = {source: timedelta(minutes=m) for source, m in silence.items()}
        rules = SilenceRules(limits, parse_business_hours("Mon-Fri 08:00-18:00", UTC))
    return IncidentMonitor(SqliteIncidentStore(db), clock, RULES, alerts, rules)  # type: ignore[arg-type]


# --- failures → one incident, resolved when quiet ------------------------------------------------


async def test_failures_past_the_threshold_open_one_incident_alerted_once_then_resolve(
    control: Database,
) -> None:
    clock, alerts = FakeClock(MONDAY_9), RecordedAlerts()
    replica_a, replica_b = monitor(control, clock, alerts), monitor(control, clock, alerts)

    replica_a.note({"powerbi:429": (2, "429 Retry-After 30")})
    replica_b.note({"powerbi:429": (2, "429 Retry-After 31")})
    await asyncio.gather(replica_a.round(), replica_b.round())
    clock.advance(60)
    replica_a.note_one("powerbi:429", "429 again")
    await replica_a.round()

    assert [t.change for t in alerts.offered] == [Change.OPENED]
    (listed,) = await replica_b.store.recent()
    assert (listed.signature, listed.count, listed.state) == ("powerbi:429", 5, State.OPEN)

    clock.advance(10 * 60)
    await asyncio.gather(replica_a.round(), replica_b.round())

    assert [t.change for t in alerts.offered] == [Change.OPENED, Change.RESOLVED]
    assert alerts.offered[1].incident.resolved_by == "quiet"


# --- silence ----------------------------------------------------------------------------------


async def test_no_aloware_request_for_the_limit_in_business_hours_opens_and_the_next_resolves(
    control: Database,
) -> None:
    clock, alerts = FakeClock(MONDAY_9), RecordedAlerts()
    edge_side = monitor(control, clock, alerts, aloware=30)
    await edge_side.round()  # started: nothing seen yet
    clock.advance(29 * 60)
    assert await edge_side.round() == []

    clock.advance(60)
    (opened,) = await edge_side.round()
    assert (opened.change, opened.incident.signature) == (Change.OPENED, "silence:aloware")
    assert "no aloware request for 30 min of business hours" in opened.incident.sample
    clock.advance(15 * 60)
    assert await edge_side.round() == []  # still silent: opened once, not again

    edge_side.saw("aloware")
    (resolved,) = await edge_side.round()

    assert (resolved.change, resolved.incident.resolved_by) == (Change.RESOLVED, "request")
    assert await edge_side.store.open() == []


async def test_a_silent_weekend_is_no_silence(control: Database) -> None:
    saturday = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    clock, alerts = FakeClock(saturday), RecordedAlerts()
    watcher = monitor(control, clock, alerts, aloware=30)
    watcher.saw("aloware")
    await watcher.round()
    clock.advance(8 * 3600)

    assert await watcher.round() == []


async def test_a_request_seen_by_another_replica_keeps_this_one_from_alarming(
    control: Database,
) -> None:
    clock, alerts = FakeClock(MONDAY_9), RecordedAlerts()
    quiet_replica = monitor(control, clock, alerts, hubspot=30)
    busy_replica = monitor(control, clock, alerts, hubspot=30)
    await quiet_replica.round()
    clock.advance(25 * 60)
    busy_replica.saw("hubspot")
    await busy_replica.round()
    clock.advance(25 * 60)

    assert await quiet_replica.round() == []


async def test_the_last_request_of_each_source_is_a_gauge_with_help_and_type(
    control: Database,
) -> None:
    clock, metrics = FakeClock(MONDAY_9), Metrics()
    watcher = monitor(control, clock, RecordedAlerts())
    metrics.gauge_source(watcher.gauges)
    watcher.saw("aloware")

    text = metrics.render()

    assert "# TYPE pulse_last_event_timestamp_seconds gauge" in text
    assert "# HELP pulse_last_event_timestamp_seconds " in text
    assert metrics.value("last_event_timestamp_seconds", source="aloware") == MONDAY_9.timestamp()
    assert "# TYPE pulse_incidents_open gauge" in text  # declared before any incident opens


# --- alerts over HTTP -------------------------------------------------------------------------


def _opened() -> Transition:
    from pulse.core.incidents import observed

    return Transition(Change.OPENED, observed(None, "powerbi:5xx", 5, "502", MONDAY_9, RULES))


async def test_an_alert_is_retried_after_a_failure_and_the_url_never_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    setup_logging("DEBUG")  # the daemon's own logging, at its most talkative
    root.addHandler(caplog.handler)  # setup_logging replaced the root's handlers
    caplog.handler.setLevel(logging.DEBUG)
    async with AlertReceiver() as receiver, httpx.AsyncClient(timeout=2) as client:
        receiver.faults.add(Fault(500), Fault(429, {"Retry-After": "0"}))
        alerts = WebhookAlerts(client, receiver.webhook_url, "slack", backoff_base_sec=0.01)
        sender = asyncio.create_task(alerts.run())
        alerts.offer(_opened())
        await _until(lambda: alerts.sent == 1)
        sender.cancel()

    assert receiver.attempts == 3 and alerts.sent == 1
    (body,) = receiver.received
    assert body["text"] == "[pulse] incident opened: powerbi:5xx (5×)"
    logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    assert receiver.path not in logged


async def test_a_hanging_receiver_holds_up_neither_the_monitor_nor_the_alerts_queue(
    control: Database,
) -> None:
    async with AlertReceiver() as receiver, httpx.AsyncClient(timeout=30) as client:
        receiver.hang = True
        alerts = WebhookAlerts(client, receiver.webhook_url, "json", queue_size=5)
        sender = asyncio.create_task(alerts.run())
        watcher = monitor(control, FakeClock(MONDAY_9), alerts)
        try:
            started = time.perf_counter()
            for n in range(20):
                watcher.note({f"fabric:timeout-{n}": (3, "no answer")})
                await watcher.round()
            elapsed = time.perf_counter() - started
        finally:
            sender.cancel()

    assert elapsed < 2.0  # 20 rounds, each opening an incident, while the receiver hangs
    assert receiver.attempts == 1
    assert alerts.waiting == 5 and alerts.dropped == 14  # bounded: one in flight, five queued


async def test_with_the_alert_receiver_hanging_the_edge_answers_and_the_workers_count_promptly(
    tmp_path: Path, control: Database, aiohttp_client: Any
) -> None:
    source = AlowareSource("none", None)
    async with (
        local_stores(tmp_path, {"aloware": source}) as stores,
        AlertReceiver() as receiver,
        httpx.AsyncClient(timeout=30) as client,
    ):
        receiver.hang = True
        alerts = WebhookAlerts(client, receiver.webhook_url, "teams")
        watcher = IncidentMonitor(
            SqliteIncidentStore(control), SystemClock(), RULES, alerts, check_every_sec=0.05
        )
        metrics = Metrics()
        intake = WebhookIntake(
            {"aloware": source}, stores.inbox, SystemClock(), metrics, activity=watcher.saw
        )
        edge = WebhookEdge(intake)
        app = web.Application(middlewares=[edge_middleware])
        app.router.add_post("/webhooks/{source}", edge.receive)
        http = await aiohttp_client(app)
        workers = InboxWorkers(
            stores.ports,
            IngestConfig(zone=UTC),
            SystemClock(),
            metrics,
            take_wait=0.05,
            incidents=watcher,
        )
        background = [asyncio.create_task(alerts.run()), asyncio.create_task(watcher.run())]
        workers.start()
        try:
            bad = [disposed_call(f"bad-{n}", created_at="yesterday") for n in range(3)]
            good = [disposed_call(f"call-{n}") for n in range(20)]
            answers = []
            for body in [*bad, *good]:
                started = time.perf_counter()
                response = await http.post("/webhooks/aloware", json=body)
                answers.append((response.status, time.perf_counter() - started))
            await _until(lambda: receiver.attempts >= 1)  # the open alert is stuck in the receiver
            await _until(lambda: stores.settled())
            counted = await stores.counted()
        finally:
            await workers.drain(1)
            for task in background:
                task.cancel()

    assert all(status == 202 for status, _ in answers)
    assert max(seconds for _, seconds in answers) < 0.5
    assert counted == {f"aloware:call-{n}" for n in range(20)}
    (incident,) = await watcher.store.open()
    assert (incident.signature, incident.count) == ("parse:aloware:bad_created_at", 3)


async def _until(check: Any) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_alerts_past_the_rate_wait_for_the_minute_to_pass() -> None:
    now = [1000.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    async with AlertReceiver() as receiver, httpx.AsyncClient(timeout=2) as client:
        alerts = WebhookAlerts(
            client,
            receiver.webhook_url,
            "json",
            max_per_minute=2,
            monotonic=lambda: now[0],
            sleep=sleep,
        )
        sender = asyncio.create_task(alerts.run())
        for _ in range(3):
            alerts.offer(_opened())
        await _until(lambda: alerts.sent == 3)
        sender.cancel()

    assert waits == [60.0]  # the third waited out the minute the first two opened
    assert len(receiver.received) == 3


async def test_admin_status_lists_the_open_incidents(control: Database) -> None:
    from pulse.adapters_in.http.health import OperatorStatus
    from pulse.adapters_in.scheduler import JobBoard
    from tests.fakes import FakeInbox

    clock = FakeClock(MONDAY_9)
    watcher = monitor(control, clock, RecordedAlerts())
    watcher.note({"hubspot-crm:401": (3, "HubSpot refused the private-app token (401)")})
    await watcher.round()
    status = OperatorStatus(JobBoard(Metrics()), Breakers(clock), FakeInbox(), watcher)

    snapshot = await status.snapshot()

    (shown,) = snapshot["incidents"]
    assert (shown["signature"], shown["state"], shown["count"]) == ("hubspot-crm:401", "open", 3)


class FlakyStore:
    """An incident store whose writes fail while `down`, as a throttled control table would."""

    def __init__(self, store: SqliteIncidentStore) -> None:
        self.store, self.down = store, True

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in ("save", "saw"):

            async def guarded(*args: Any) -> Any:
                if self.down:
                    raise RuntimeError("control store unavailable")
                return await attr(*args)

            return guarded
        return attr


async def test_what_a_round_could_not_record_is_recorded_by_the_next(control: Database) -> None:
    clock, alerts = FakeClock(MONDAY_9), RecordedAlerts()
    store = FlakyStore(SqliteIncidentStore(control))
    watcher = IncidentMonitor(store, clock, RULES, alerts)  # type: ignore[arg-type]
    watcher.note({"powerbi:5xx": (2, "502"), "fabric:429": (3, "429")})
    watcher.saw("aloware")
    with pytest.raises(RuntimeError):
        await watcher.round()

    store.down = False
    await watcher.round()

    assert sorted(t.incident.signature for t in alerts.offered) == ["fabric:429"]
    assert {i.signature: i.count for i in await store.store.recent()} == {"fabric:429": 3}
    head, _ = await store.store.head("powerbi:5xx")
    assert head is not None and head.count == 2  # pending: kept, below the threshold
    assert await store.store.last_seen() == {"aloware": MONDAY_9}


class ThrottledSink(OutageSink):
    """The warehouse behind a switch that, while down, answers as Power BI's 429 does."""

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            raise PowerBIThrottled("PostRows throttled: HTTP 429", retry_after=1)


async def test_a_power_bi_429_outage_opens_powerbi_429_and_resolves_after_recovery(
    tmp_path: Path, control: Database
) -> None:
    source = AlowareSource("none", None)
    alerts = RecordedAlerts()
    quick = IncidentRules(threshold=3, resolve_after=timedelta(milliseconds=600))
    async with local_stores(tmp_path, {"aloware": source}, sink=ThrottledSink) as stores:
        sink = stores.ports.sink
        assert isinstance(sink, ThrottledSink)
        clock = SystemClock()
        watcher = IncidentMonitor(SqliteIncidentStore(control), clock, quick, alerts)
        breakers = Breakers(clock, first_cooldown=timedelta(milliseconds=100))
        workers = InboxWorkers(
            stores.ports,
            IngestConfig(zone=UTC),
            clock,
            Metrics(),
            take_wait=0.05,
            breakers=breakers,
            incidents=watcher,
        )
        sink.down = True
        for n in range(5):
            await stores.inbox.put(call_envelope(f"r{n}", f"call-{n}"))
        workers.start()
        try:
            await _until(lambda: sink.refused >= 2)
            await watcher.round()
            assert [(t.change, t.incident.signature) for t in alerts.offered] == [
                (Change.OPENED, "powerbi:429")
            ]
            sink.down = False
            await _until(stores.settled)
            await watcher.round()  # records any probe that failed before the sink came back
            await asyncio.sleep(0.7)
            await watcher.round()
        finally:
            await workers.drain(1)

    assert [(t.change, t.incident.signature) for t in alerts.offered] == [
        (Change.OPENED, "powerbi:429"),
        (Change.RESOLVED, "powerbi:429"),
    ]
    assert alerts.offered[1].incident.resolved_by == "quiet"


async def test_requests_wake_the_monitor_only_to_end_an_open_silence(control: Database) -> None:
    clock = FakeClock(MONDAY_9)
    watcher = monitor(control, clock, RecordedAlerts(), aloware=30)
    await watcher.round()
    watcher.saw("aloware")
    assert not watcher._wake.is_set()  # busy traffic: no round per request

    clock.advance(31 * 60)
    watcher._seen.clear()
    await watcher.round()  # the silence opens
    watcher.saw("aloware")

    assert watcher._wake.is_set()
