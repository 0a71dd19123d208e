"""Pulse replicas as real subprocesses sharing one DynamoDB table and one SQS queue on moto.

Each replica has its own DATA_DIR, so its own local warehouse (SINK=local); the ledger and
the inbox are the shared AWS ones. Every address is 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.moto_server import REGION, dynamodb, sqs, unique

REPO = Path(__file__).resolve().parents[3]
SAMPLE = REPO / "tests" / "specs" / "webhooks" / "aloware-call-disposed.json"
AGENT = "42"  # the sample's user_id: the only roster agent, so every posted call counts
START_TIMEOUT_SEC = 30.0
LISTENING = re.compile(r'"msg": "listening".*?"url": "http://[^"]+:(\d+)"')


_TEMPLATE: dict[str, Any] = json.loads(SAMPLE.read_text())["body"]


def aloware_call(communication_id: int) -> bytes:
    """The captured dispositioned-call webhook with its own communication id."""
    payload = {**_TEMPLATE, "body": {**_TEMPLATE["body"], "id": str(communication_id)}}
    return json.dumps(payload).encode()


def event_key(communication_id: int) -> str:
    return f"aloware:{communication_id}"


@dataclass(frozen=True)
class SharedStores:
    """The table and queues every replica of one test shares, and the webhook secret."""

    endpoint: str
    table: str = field(default_factory=lambda: unique("pulse"))
    queue: str = field(default_factory=lambda: unique("pulse-inbox"))
    secret: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue}-dlq"

    def env(self, data_dir: Path, **settings: str) -> dict[str, str]:
        # A clean environment: nothing from the machine running the tests leaks in, and no
        # real AWS credential or config file can be picked up (the client would prefer them).
        keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        env.update(
            HOME=str(data_dir.parent),
            PYTHONPATH=str(REPO),
            PYTHONUNBUFFERED="1",
            DATA_DIR=str(data_dir),
            HOST="127.0.0.1",
            PORT="0",  # the OS picks a free port; the "listening" log line names it
            LOG_LEVEL="INFO",
            ALOWARE_SECRET=self.secret,
            HUBSPOT_AUTH="none",
            ROSTER_AGENTS=json.dumps([AGENT]),
            BUSINESS_TIMEZONE="UTC",
            SINK="local",
            LEDGER="dynamodb",
            INBOX="sqs",
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_CONFIG_FILE=str(data_dir.parent / "no-aws-config"),
            AWS_SHARED_CREDENTIALS_FILE=str(data_dir.parent / "no-aws-credentials"),
            AWS_EC2_METADATA_DISABLED="true",
            DYNAMO_TABLE=self.table,
            SQS_QUEUE=self.queue,
            SQS_DLQ=self.dead_letter_queue,
            # Redelivery is part of every scenario here; only a poison message may reach the DLQ.
            SQS_MAX_RECEIVE_COUNT="20",
            DRAIN_TIMEOUT_SEC="5",
        )
        env.update(settings)
        return env

    def provision(self, home: Path) -> str:
        """`pulse infra create` with the replicas' settings: what `pulse serve` will need."""
        home.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, "-m", "pulse.bootstrap.main", "infra", "create"],
            cwd=home,
            env=self.env(home / "data"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    @asynccontextmanager
    async def depth_probe(self) -> AsyncIterator[Callable[[], Awaitable[tuple[int, int]]]]:
        """A function answering (messages on the queue in any state: visible, in flight or
        delayed; messages on the DLQ), over one client kept open while it is in use."""
        names = (self.queue, self.dead_letter_queue)
        attributes = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        async with sqs(self.endpoint) as client:
            urls = [(await client.get_queue_url(QueueName=n))["QueueUrl"] for n in names]

            async def depth() -> tuple[int, int]:
                counts = []
                for url in urls:
                    answer = await client.get_queue_attributes(
                        QueueUrl=url, AttributeNames=attributes
                    )
                    counts.append(sum(int(v) for v in answer["Attributes"].values()))
                return counts[0], counts[1]

            yield depth

    async def ledger_items(self, keys: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
        """Ledger items by pk (every event item, or just `keys`), read consistently."""
        items: dict[str, dict[str, Any]] = {}
        async with dynamodb(self.endpoint) as client:
            if keys is not None:
                for key in keys:
                    answer = await client.get_item(
                        TableName=self.table, Key={"pk": {"S": key}}, ConsistentRead=True
                    )
                    if "Item" in answer:
                        items[key] = answer["Item"]
                return items
            pages = client.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True)
            async for page in pages:
                for item in page["Items"]:
                    if item["pk"]["S"].startswith("aloware:"):
                        items[item["pk"]["S"]] = item
        return items


@dataclass
class Replica:
    """One `pulse serve` process at a time over one DATA_DIR; restartable."""

    name: str
    home: Path
    stores: SharedStores
    settings: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = self.home / "serve-0.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self, module: str = "pulse.bootstrap.main", **extra: str) -> None:
        """Start `python -m <module> serve`-like entry with the shared settings (plus `extra`)."""
        self.port = 0
        self.log_path = self.home / f"serve-{len(self.procs)}.log"
        args = ["serve"] if module == "pulse.bootstrap.main" else []
        with self.log_path.open("wb") as log:  # a file, not a pipe: a full pipe would stall it
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, *args],
                    cwd=self.home,  # no stray `.env` from the repository
                    env=self.stores.env(self.data_dir, **self.settings, **extra),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

    def log(self, index: int = -1) -> str:
        return (self.home / f"serve-{index % len(self.procs)}.log").read_text(errors="replace")

    async def wait_ready(self) -> None:
        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            match = LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
            return bool(match)

        await wait_for(listening, START_TIMEOUT_SEC, f"{self.name} to listen")

    async def wait_exit(self, within: float) -> int:
        await wait_for(lambda: self.proc.poll() is not None, within, f"{self.name} to exit")
        return int(self.proc.returncode)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def kill_all(self) -> None:
        """Only our own processes, by handle: a failed test must not leave a daemon behind."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    def batches(self) -> list[tuple[float, Counter[str]]]:
        """(epoch seconds, events by status) of every batch any of its processes logged."""
        found = []
        for index in range(len(self.procs)):
            for line in self.log(index).splitlines():
                if '"msg": "batch"' not in line:
                    continue
                record = json.loads(line)
                at = datetime.fromisoformat(record["ts"]).timestamp()
                found.append((at, Counter(record["events"])))
        return found

    def fact_keys(self) -> list[str]:
        """Every FactEvent EventKey in this replica's warehouse, straight from the file."""
        path = self.data_dir / "warehouse.sqlite"
        if not path.exists():
            return []
        conn = sqlite3.connect(path, timeout=5)  # WAL: reading never blocks the daemon
        try:
            return [k for (k,) in conn.execute("SELECT EventKey FROM FactEvent")]
        except sqlite3.OperationalError:  # the daemon has not made its schema yet
            return []
        finally:
            conn.close()


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_async(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(0.2)


def deliveries(
    ids: Sequence[int], replicas: int, most: int, rng: random.Random
) -> list[tuple[int, int]]:
    """(replica index, communication id): each id 1..`most` times, each copy to a random
    replica, all in one random order."""
    plan = [(rng.randrange(replicas), n) for n in ids for _ in range(rng.randint(1, most))]
    rng.shuffle(plan)
    return plan


async def post_all(
    urls: Sequence[str],
    plan: Sequence[tuple[int, int]],
    secret: str,
    *,
    concurrency: int = 16,
    room: Callable[[], Awaitable[bool]] | None = None,
) -> list[tuple[int, int, int | str]]:
    """POST every planned delivery, `concurrency` at a time over keep-alive connections;
    while `room()` says no (asked every 0.2 s), posting pauses. Returns the deliveries not
    answered 202, with what they got instead."""
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    pending = iter(plan)
    failed: list[tuple[int, int, int | str]] = []
    open_ = asyncio.Event()
    open_.set()
    finished = asyncio.Event()

    async def gate() -> None:
        assert room is not None
        while not finished.is_set():
            if await room():
                open_.set()
            else:
                open_.clear()
            await asyncio.sleep(0.2)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as http:

        async def poster() -> None:
            for replica, n in pending:
                await open_.wait()
                url = f"{urls[replica]}/webhooks/aloware"
                try:
                    async with http.post(url, data=aloware_call(n), headers=headers) as answer:
                        await answer.read()
                        if answer.status != 202:
                            failed.append((replica, n, answer.status))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    failed.append((replica, n, repr(exc)))

        watcher = asyncio.create_task(gate()) if room is not None else None
        try:
            await asyncio.gather(*(poster() for _ in range(concurrency)))
        finally:
            finished.set()
            if watcher is not None:
                await watcher
    return failed
