"""End to end: the real `pulse serve` subprocess, real HTTP, real signatures, SIGTERM mid-load."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPECS = Path(__file__).resolve().parents[1] / "specs" / "webhooks"
PUBLIC_BASE_URL = "https://pulse.example.com"
SMITH_EMAIL = "jsmith@example.test"  # the owner of the sample HubSpot email and ticket
START_TIMEOUT_SEC = 20.0
DRAIN_TIMEOUT_SEC = 20.0
STOP_TIMEOUT_SEC = 30.0
LISTENING = re.compile(r'"msg": "listening".*?"url": "http://[^"]+:(\d+)"')


# --- the daemon under test ---------------------------------------------------------------------


@dataclass
class Pulse:
    """`pulse` commands against one DATA_DIR, with their own secrets, roster and CRM file."""

    home: Path
    aloware_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    hubspot_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    def env(self) -> dict[str, str]:
        # A clean environment: a HOST, PORT or SINK set on the CI machine must not leak in.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(
            DATA_DIR=str(self.data_dir),
            HOST="127.0.0.1",
            PORT="0",  # the OS picks a free port; the "listening" log line names it
            ALOWARE_SECRET=self.aloware_secret,
            HUBSPOT_CLIENT_SECRET=self.hubspot_secret,
            PUBLIC_BASE_URL=PUBLIC_BASE_URL,
            ROSTER_AGENTS='["42"]',
            ROSTER_FILE=str(self.home / "roster.json"),
            CRM_FILE=str(self.home / "crm.json"),
            BUSINESS_TIMEZONE="UTC",
            # Short enough that a batch cut off by a stop comes back within the test's budget.
            INBOX_VISIBILITY_SEC="5",
            LEDGER_LEASE_SEC="5",
            DRAIN_TIMEOUT_SEC="10",
            PYTHONUNBUFFERED="1",
        )
        return env

    def write_files(self) -> None:
        roster = [{"id": "7", "name": "John Smith", "email": SMITH_EMAIL}]
        (self.home / "roster.json").write_text(json.dumps(roster))
        crm = {
            "emails": {
                "88120045123": {
                    "owner_id": "6166860",
                    "owner_email": SMITH_EMAIL,
                    "direction": "EMAIL",
                    "status": "SENT",
                    "created_at": "2025-11-05T17:16:50.977Z",
                }
            },
            "tickets": {
                "9001122471": {
                    "owner_id": "6166860",
                    "owner_email": SMITH_EMAIL,
                    "created_at": "2025-11-05T17:02:22.417Z",
                }
            },
        }
        (self.home / "crm.json").write_text(json.dumps(crm))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bootstrap.main", *args]

    def serve(self, log_name: str) -> Daemon:
        log_path = self.home / log_name
        with log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall the daemon
            proc = subprocess.Popen(
                self.command("serve"),
                cwd=self.home,  # no stray `.env` from the repository
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        daemon = Daemon(proc, log_path)
        daemon.wait_ready()
        return daemon

    def report(self, day: str) -> list[dict[str, Any]]:
        done = subprocess.run(
            self.command("report", "--date", day, "--format", "json"),
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        rows: list[dict[str, Any]] = json.loads(done.stdout)["rows"]
        return rows

    def inbox_depth(self) -> int:
        with _sqlite(self.data_dir / "inbox.sqlite") as conn:
            (depth,) = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()
        return int(depth)

    def wait_drained(self) -> None:
        wait_for(lambda: self.inbox_depth() == 0, DRAIN_TIMEOUT_SEC, "the inbox to drain")

    def stored_keys(self) -> tuple[int, list[str]]:
        """(COUNT(*), every EventKey) of FactEvent, read straight from the warehouse file."""
        with _sqlite(self.data_dir / "warehouse.sqlite") as conn:
            (total,) = conn.execute("SELECT COUNT(*) FROM FactEvent").fetchone()
            keys = [k for (k,) in conn.execute("SELECT EventKey FROM FactEvent")]
        return int(total), keys


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"pulse serve exited {self.proc.returncode}:\n{self.log()}")
            match = LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
            return bool(match)

        wait_for(listening, START_TIMEOUT_SEC, "the daemon to listen")
        wait_for(lambda: http_status(self.url + "/healthz") == 200, START_TIMEOUT_SEC, "/healthz")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_TIMEOUT_SEC)


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Pulse]:
    env = Pulse(tmp_path)
    env.write_files()
    yield env
    for proc in env.procs:  # only ours, by handle: a failed test must not leave a daemon behind
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# --- helpers -----------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class _sqlite:
    """A short-lived connection to a store the daemon may be writing (WAL: readers never block)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=5)

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def sample(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text())
    return document


def hubspot_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature, written out here so the test does not trust the code under test."""
    message = method.encode() + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def aloware_call(communication_id: int) -> bytes:
    payload = sample("aloware-call-disposed")["body"]
    payload["body"]["id"] = str(communication_id)
    return json.dumps(payload).encode()


# --- the tests ---------------------------------------------------------------------------------


def test_every_sample_posted_to_the_daemon_shows_up_in_the_report(pulse: Pulse) -> None:
    daemon = pulse.serve("serve.log")
    aloware = {
        "Authorization": f"Bearer {pulse.aloware_secret}",
        "Content-Type": "application/json",
    }
    for name in (
        "aloware-test-payload",
        "aloware-call-initiated",
        "aloware-call-disposed",
        "aloware-call-failed",
        "aloware-inbound-call-missed",
        "aloware-sms-outbound",
        "aloware-sms-inbound",
        "aloware-transcription-summarized",
    ):
        status, answer = post(
            daemon.url + "/webhooks/aloware", json.dumps(sample(name)["body"]).encode(), aloware
        )
        assert (status, set(answer)) == (202, {"request_id"}), (name, answer)
    for name in ("hubspot-v3-ticket-creation", "hubspot-v3-email-object-creation"):
        raw = sample(name)["raw_body"].encode()
        timestamp = str(int(time.time() * 1000))
        signature = hubspot_v3(
            pulse.hubspot_secret, "POST", PUBLIC_BASE_URL + "/webhooks/hubspot", raw, timestamp
        )
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        }
        status, answer = post(daemon.url + "/webhooks/hubspot", raw, headers)
        assert status == 202, (name, answer)

    pulse.wait_drained()
    counts: dict[tuple[str, str], int] = {}

    def counted() -> bool:
        rows = pulse.report("2025-11-05")
        counts.clear()
        counts.update({(r["AgentKey"], r["MetricID"]): r["Count"] for r in rows if r["Count"]})
        return len(counts) >= 4

    wait_for(counted, 10, "four counted metrics in `pulse report`")
    assert counts == {
        ("42", "CALLS"): 1,
        ("42", "TEXTS"): 1,
        ("7", "EMAILS"): 1,
        ("7", "CASES"): 1,
    }
    assert daemon.stop() == 0
    assert "shutdown:" in daemon.log()


LOAD_EVENTS = 2_000
LOAD_CONNECTIONS = 64
SIGTERM_AFTER_ACKS = LOAD_EVENTS // 4


async def _load_then_sigterm(daemon: Daemon, secret: str) -> tuple[set[str], int]:
    """Post LOAD_EVENTS distinct calls; SIGTERM once a quarter are acknowledged.

    Returns the EventKeys answered 202 and how many requests got any other answer or none."""
    acked: set[str] = set()
    quarter = asyncio.Event()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=LOAD_CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=15)

    async def one(session: aiohttp.ClientSession, communication_id: int) -> None:
        try:
            async with session.post(
                daemon.url + "/webhooks/aloware",
                data=aloware_call(communication_id),
                headers=headers,
            ) as response:
                await response.read()
                if response.status == 202:
                    acked.add(f"aloware:{communication_id}")
                    if len(acked) >= SIGTERM_AFTER_ACKS:
                        quarter.set()
        except (aiohttp.ClientError, TimeoutError):
            pass  # refused or cut off by the shutdown: not acknowledged, so not promised

    async def terminate() -> None:
        await asyncio.wait_for(quarter.wait(), 30)
        daemon.proc.send_signal(signal.SIGTERM)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        base = 700_000_000
        killer = asyncio.create_task(terminate())
        await asyncio.gather(*(one(session, base + i) for i in range(LOAD_EVENTS)))
        await killer
    return acked, LOAD_EVENTS - len(acked)


def test_sigterm_mid_load_loses_and_doubles_no_acknowledged_event(pulse: Pulse) -> None:
    first = pulse.serve("serve-1.log")
    acked, refused = asyncio.run(_load_then_sigterm(first, pulse.aloware_secret))
    assert acked and refused, "SIGTERM should land while requests are in flight"

    assert first.proc.wait(timeout=STOP_TIMEOUT_SEC) == 0, first.log()
    assert "shutdown:" in first.log()

    second = pulse.serve("serve-2.log")
    pulse.wait_drained()
    total, keys = pulse.stored_keys()
    assert total == len(set(keys)), "an EventKey is stored twice"
    missing = acked - set(keys)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
    assert all(k.startswith("aloware:7") for k in keys)
    assert second.stop() == 0
