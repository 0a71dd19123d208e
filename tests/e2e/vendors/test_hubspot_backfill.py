"""The webhook gap closed, end to end: the real daemon (CRM=hubspot on the emulator) receives
signed webhooks for half of a week's emails and tickets; `pulse backfill hubspot` (its own
process, on the same DATA_DIR) counts the other half, a repeat adds nothing, and the nightly
reconcile inside the daemon reports the gap on /metrics and /admin/status."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pulse.adapters_in.http.admin.auth import signed_headers
from pulse.bootstrap.settings import Settings
from tests.e2e.vendors.test_hubspot import Sender, counters, select, serve
from tests.emulators.hubspot import HubSpotEmulator

pytestmark = pytest.mark.slow

SMITH_OWNER = "6166860"  # the emulator's sample owner: jsmith@example.test
SETTLE_TIMEOUT_SEC = 30.0
ROOT = Path(__file__).resolve().parents[3]


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Created:
    subscription: str
    object_id: int
    at: datetime

    @property
    def key(self) -> str:
        kind = "email" if self.subscription == "object.creation" else "ticket"
        return f"hubspot:{kind}:{self.object_id}"

    def webhook(self) -> bytes:
        item: dict[str, Any] = {
            "eventId": 5_000 + self.object_id,
            "subscriptionId": 3849706,
            "portalId": 21508821,
            "appId": 3715530,
            "occurredAt": int(self.at.timestamp() * 1000),
            "subscriptionType": self.subscription,
            "attemptNumber": 0,
            "objectId": self.object_id,
            "changeFlag": "CREATED",
            "changeSource": "CRM_UI",
        }
        if self.subscription == "object.creation":
            item["objectTypeId"] = "0-49"
        return json.dumps([item]).encode()


def a_week(hubspot: HubSpotEmulator, now: datetime, days: int = 7) -> list[Created]:
    """Per day 3 outbound emails and 1 ticket of John Smith, and 1 inbound email (ignored)."""
    counting: list[Created] = []
    for day in range(days):
        for n in range(5):
            object_id, at = 100 + day * 10 + n, now - timedelta(days=day, hours=1, minutes=n)
            if n < 3:
                hubspot.add_email(str(object_id), SMITH_OWNER, created=iso(at))
                counting.append(Created("object.creation", object_id, at))
            elif n == 3:
                hubspot.add_ticket(str(object_id), SMITH_OWNER, created=iso(at))
                counting.append(Created("ticket.creation", object_id, at))
            else:
                hubspot.add_email(str(object_id), SMITH_OWNER, "INCOMING_EMAIL", created=iso(at))
    return counting


def settings(home: Path, hubspot: HubSpotEmulator, secret: str, **more: Any) -> Settings:
    roster = home / "roster.json"
    roster.write_text(json.dumps([{"id": 7, "name": "John Smith", "email": "jsmith@example.test"}]))
    values: dict[str, Any] = {
        "data_dir": home,
        "inbox": "sqlite",
        "ledger": "sqlite",
        "sink": "local",
        "roster": "static",
        "roster_file": roster,
        "crm": "hubspot",
        "hubspot_base_url": hubspot.base_url,
        "hubspot_access_token": hubspot.token,
        "hubspot_auth": "v3",
        "hubspot_client_secret": secret,
        "public_base_url": "https://pulse.example.test",
        "aloware_auth": "none",
        "business_timezone": "UTC",
        "admin_hmac_secret": secrets.token_hex(32),
        "otel_exporter_otlp_endpoint": None,
        "shifts": [],
        "reconcile_cron": "0 0 1 1 *",  # never during the test unless a test says so
    }
    values.update(more)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def environment(config: Settings) -> dict[str, str]:
    """The same settings as environment variables, for `pulse` in another process."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SETTING_NAMES}
    for name, value in config.model_dump(mode="json").items():
        if value is None or isinstance(value, dict | list):
            continue
        env[name.upper()] = str(value)
    for secret_name in ("hubspot_access_token", "hubspot_client_secret", "admin_hmac_secret"):
        env[secret_name.upper()] = getattr(config, secret_name).get_secret_value()
    return env


_SETTING_NAMES = {name.upper() for name in Settings.model_fields}


async def pulse_cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulse.bootstrap.main",
        *argv,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def accepted(http: aiohttp.ClientSession, url: str, wanted: float) -> dict[str, float]:
    return await settled(http, url, 'outcome="accepted",reason="counted",source="hubspot"', wanted)


def total(events: dict[str, float], series: str) -> float:
    """The sum over every series carrying all of `series`'s labels (e.g. each sink's)."""
    wanted = set(series.split(","))
    return sum(value for labels, value in events.items() if wanted <= set(labels.split(",")))


async def settled(
    http: aiohttp.ClientSession, url: str, series: str, wanted: float
) -> dict[str, float]:
    """The daemon's event counters once `series` reached `wanted`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_SEC
    while True:
        async with http.get(url + "/metrics") as response:
            events = counters(await response.text(), "events_total")
        if total(events, series) >= wanted:
            return events
        assert time.monotonic() < deadline, f"events settled so far: {events}"
        await asyncio.sleep(0.1)


def fact_keys(home: Path) -> dict[str, int]:
    rows = select(home / "warehouse.sqlite", "SELECT EventKey, COUNT(*) FROM FactEvent GROUP BY 1")
    return dict(rows)


async def test_half_a_week_of_webhooks_then_pulse_backfill_counts_every_event_once(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    since = (now - timedelta(days=7)).date().isoformat()
    async with HubSpotEmulator() as hubspot:
        counting = a_week(hubspot, now)
        config = settings(tmp_path, hubspot, secret)
        env = environment(config)
        async with serve(config) as url, aiohttp.ClientSession() as http:
            sender = Sender(http, url, secret)
            delivered = counting[::2]
            statuses = [await sender.post(c.webhook()) for c in delivered]
            await accepted(http, url, len(delivered))

            dry = await pulse_cli(env, "backfill", "hubspot", "--since", since, "--dry-run")
            first = await pulse_cli(env, "backfill", "hubspot", "--since", since)
            second = await pulse_cli(env, "backfill", "hubspot", "--since", since)
            # The daemon's webhooks and the backfill's process share one ledger: a late
            # retry of a webhook HubSpot had given up on is now a duplicate.
            await sender.post(counting[1].webhook())
            events = await settled(
                http, url, 'outcome="duplicate",reason="already_counted",source="hubspot"', 1
            )

    assert statuses == [202] * len(delivered)
    missing = sorted(c.key for c in counting[1::2])
    assert dry[0] == 0, dry[2]
    assert (
        dry[1]
        .splitlines()[0]
        .startswith(
            "backfill_hubspot: dry_run · 35 found · 14 new · 14 already · 0 gated · 7 ignored"
        )
    )
    assert sorted(line.split()[1] for line in dry[1].splitlines() if "missing" in line) == missing
    assert first[0] == 0, first[2]
    assert first[1].startswith("backfill_hubspot: applied · 35 found · 14 new · 14 already")
    assert second[0] == 0, second[2]
    assert second[1].startswith("backfill_hubspot: unchanged · 35 found · 0 new · 28 already")
    assert fact_keys(tmp_path) == dict.fromkeys((c.key for c in counting), 1)
    assert total(events, 'outcome="duplicate",reason="already_counted",source="hubspot"') == 1
    audit = select(tmp_path / "control.sqlite", "SELECT action, outcome FROM audit ORDER BY seq")
    assert [r for r in audit if r[0] == "backfill_hubspot"] == [
        ("backfill_hubspot", "dry_run"),
        ("backfill_hubspot", "applied"),
        ("backfill_hubspot", "unchanged"),
    ]


async def test_the_nightly_reconcile_counts_the_gap_and_shows_it_on_metrics_and_status(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    fire_at = now + timedelta(seconds=6)  # after the webhooks below have settled
    cron = f"{fire_at.second} {fire_at.minute} {fire_at.hour} * * *"
    async with HubSpotEmulator() as hubspot:
        counting = a_week(hubspot, now)  # a week in the CRM; RECONCILE_DAYS=3 looks at 3 days
        config = settings(tmp_path, hubspot, secret, reconcile_cron=cron, reconcile_days=3)
        async with serve(config) as url, aiohttp.ClientSession() as http:
            sender = Sender(http, url, secret)
            delivered = counting[::2]
            for created in delivered:
                assert await sender.post(created.webhook()) == 202
            await accepted(http, url, len(delivered))
            assert datetime.now(UTC) < fire_at, "the webhooks settled after the reconcile fired"
            page = ""
            deadline = time.monotonic() + SETTLE_TIMEOUT_SEC
            while "pulse_webhook_gap_events_total{" not in page:  # a sample, not its HELP
                assert time.monotonic() < deadline, "the reconcile did not run"
                await asyncio.sleep(0.2)
                async with http.get(url + "/metrics") as response:
                    page = await response.text()
            admin = config.admin_hmac_secret
            assert admin is not None
            headers = signed_headers(
                admin.get_secret_value(), "GET", "/admin/status", b"", time.time()
            )
            async with http.get(url + "/admin/status", headers=headers) as response:
                status = await response.json()

    recent = [c for c in counting if c.at >= now - timedelta(days=3)]
    gap = [c for c in recent if c not in delivered]
    assert counters(page, "webhook_gap_events_total") == {'source="hubspot"': len(gap)}
    last = counters(page, "reconcile_last_run_events")
    assert last['count="new",source="hubspot"'] == len(gap)
    assert last['count="already",source="hubspot"'] == len(recent) - len(gap)
    job = status["jobs"]["reconcile_hubspot"]
    assert job["ok"] is True
    assert job["counts"]["new"] == len(gap)
    assert job["detail"].startswith("reconcile_hubspot: applied")
    assert fact_keys(tmp_path) == dict.fromkeys(
        sorted({c.key for c in delivered} | {c.key for c in gap}), 1
    )
