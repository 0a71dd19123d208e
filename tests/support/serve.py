"""`pulse serve` as an operator runs it: a subprocess on the embedded defaults (SQLite inbox,
ledger and warehouse, static roster and CRM files) in its own DATA_DIR, with generated secrets
and a clean environment; its log is a file the test reads; the stores are read straight from
their SQLite files."""

from __future__ import annotations

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    admin_secret: str = field(default_factory=lambda: secrets.token_hex(24))
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
            ADMIN_HMAC_SECRET=self.admin_secret,
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
        return [sys.executable, "-m", "pulse.bootstrap.launch", *args]

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
        with sqlite_file(self.data_dir / "inbox.sqlite") as conn:
            (depth,) = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()
        return int(depth)

    def wait_drained(self) -> None:
        wait_for(lambda: self.inbox_depth() == 0, DRAIN_TIMEOUT_SEC, "the inbox to drain")

    def dead_letter_reasons(self) -> list[str]:
        with sqlite_file(self.data_dir / "inbox.sqlite") as conn:
            return [reason for (reason,) in conn.execute("SELECT reason FROM dead_letters")]

    def secrets_in(self, *texts: str | bytes) -> list[str]:
        """Which of this daemon's secrets appear in `texts` (none should, ever)."""
        haystack = "\n".join(t.decode("latin-1") if isinstance(t, bytes) else t for t in texts)
        mine = (self.aloware_secret, self.hubspot_secret, self.admin_secret)
        return [s for s in mine if s in haystack]

    def stored_keys(self) -> tuple[int, list[str]]:
        """(COUNT(*), every EventKey) of FactEvent, read straight from the warehouse file."""
        with sqlite_file(self.data_dir / "warehouse.sqlite") as conn:
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


class sqlite_file:
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
