"""Edge benchmark: the daemon's `POST /webhooks/aloware` against a bare aiohttp 202, then lag.

    .venv/bin/python bench/edge.py [--requests 5000] [--concurrency 32]

One run starts (a) the real daemon (`pulse serve`, temp DATA_DIR, fresh secrets) and (b) a bare
aiohttp server that answers 202 without storing, both as subprocesses on loopback; drives the
same fixed count of distinct Aloware call events at each with N keep-alive connections; prints
requests/s, p50/p99 latency and the ratio; then paces events at --lag-rate for --lag-seconds and
prints how long each took from its 202 to its row in the local sink (FactEvent, polled every
20 ms). Targets (issue 2): daemon ≥ 50 % of the bare rate, p99 < 20 ms, lag p99 < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

SAMPLE = Path(__file__).resolve().parents[1] / "tests/specs/webhooks/aloware-call-disposed.json"
START_TIMEOUT_SEC = 20.0
STOP_TIMEOUT_SEC = 20.0
DRAIN_TIMEOUT_SEC = 30.0
POLL_SEC = 0.02
WARMUP_REQUESTS = 300

TARGET_RATIO = 0.50
TARGET_P99_MS = 20.0
TARGET_LAG_P99_MS = 1000.0


# --- the bare handler (run in its own process with --bare-server) ------------------------------


async def _bare_receive(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"request_id": secrets.token_hex(16)}, status=202)


async def _serve_bare() -> None:
    app = web.Application()
    app.router.add_post("/webhooks/{source}", _bare_receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    print(f"port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- servers under test ------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: asyncio.subprocess.Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/aloware"

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and its child processes so far (Linux /proc; else 0)."""
        return sum(_cpu_seconds(pid) for pid in _process_tree(self.proc.pid))

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_SEC)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


def _stat(pid: int) -> list[str]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def _process_tree(root: int) -> list[int]:
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields:
            parents[int(entry.name)] = int(fields[1])
    tree = [root]
    for pid in tree:
        tree.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def _cpu_seconds(pid: int) -> float:
    fields = _stat(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def start_bare() -> Server:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bare-server", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_SEC)
    return Server("bare aiohttp 202", proc, int(line.split()[1]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_daemon(home: Path, secret: str, log_level: str) -> Server:
    port = free_port()  # chosen here, not read from the log: LOG_LEVEL may hide "listening"
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        DATA_DIR=str(home / "data"),
        HOST="127.0.0.1",
        PORT=str(port),
        ALOWARE_SECRET=secret,
        HUBSPOT_CLIENT_SECRET=secrets.token_hex(16),
        ROSTER_AGENTS='["42"]',
        LOG_LEVEL=log_level,
    )
    log_path = home / "pulse.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bootstrap.main",
            "serve",
            cwd=home,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    server = Server("pulse daemon", proc, port)
    deadline = time.monotonic() + START_TIMEOUT_SEC
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"pulse serve exited {proc.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return server
            await asyncio.sleep(0.05)
    proc.kill()
    raise SystemExit(f"pulse serve did not answer /healthz within {START_TIMEOUT_SEC:g} s")


# --- load --------------------------------------------------------------------------------------


class Events:
    """Distinct outbound-call dispositions: one new communication id per request."""

    def __init__(self) -> None:
        self.template = json.loads(SAMPLE.read_text())["body"]
        self.next_id = 800_000_000

    def next(self) -> tuple[str, bytes]:
        self.next_id += 1
        self.template["body"]["id"] = str(self.next_id)
        return f"aloware:{self.next_id}", json.dumps(self.template).encode()


@dataclass
class Throughput:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    cpu_seconds: float
    """CPU the server's processes used during the run (a noisy machine changes rates, not this)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_seconds / self.requests * 1e6

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def drive(
    session: aiohttp.ClientSession,
    server: Server,
    headers: dict[str, str],
    events: Events,
    count: int,
    concurrency: int,
) -> Throughput:
    """`count` POSTs from `concurrency` loops, each waiting for its answer before the next."""
    latencies: list[float] = []
    errors = 0
    remaining = count

    async def connection() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            _, body = events.next()
            started = time.perf_counter()
            async with session.post(server.url, data=body, headers=headers) as response:
                await response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status != 202:
                errors += 1

    cpu_before, started = server.cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return Throughput(count, seconds, latencies, errors, server.cpu_seconds() - cpu_before)


@dataclass
class Lag:
    lags_ms: list[float]
    """Per event: first seen in FactEvent − its 202 received."""
    accept_ms: list[float]
    """Per event: POST sent → 202 received, at the paced (not saturating) rate."""
    unseen: int
    """Accepted events never seen in FactEvent within DRAIN_TIMEOUT_SEC."""
    achieved_rate: float
    """202s per second from the first send to the last 202 (below the pace = saturated)."""


async def lag(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    events: Events,
    warehouse: Path,
    rate: float,
    seconds: float,
) -> Lag:
    """Pace `rate` events/s for `seconds`; lag = row first seen in FactEvent − 202 received."""
    accepted: dict[str, float] = {}
    accept_ms: list[float] = []
    seen: dict[str, float] = {}
    sending_done = False
    all_seen = asyncio.Event()
    total = int(rate * seconds)
    conn = sqlite3.connect(warehouse, timeout=5, check_same_thread=False)
    (last_rowid,) = conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM FactEvent").fetchone()

    def new_rows() -> list[tuple[int, str]]:
        return conn.execute(
            "SELECT rowid, EventKey FROM FactEvent WHERE rowid > ? ORDER BY rowid", (last_rowid,)
        ).fetchall()

    async def poll() -> None:
        nonlocal last_rowid
        while True:
            rows = await asyncio.to_thread(new_rows)
            now = time.perf_counter()
            for rowid, key in rows:
                seen.setdefault(key, now)
                last_rowid = max(last_rowid, rowid)
            if sending_done and accepted.keys() <= seen.keys():
                all_seen.set()
            await asyncio.sleep(POLL_SEC)

    async def send(key: str, body: bytes) -> None:
        started = time.perf_counter()
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            if response.status == 202:
                accepted[key] = time.perf_counter()
                accept_ms.append((accepted[key] - started) * 1000)

    poller = asyncio.create_task(poll())
    sends: list[asyncio.Task[None]] = []
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sends.append(asyncio.create_task(send(*events.next())))
    await asyncio.gather(*sends)
    achieved_rate = len(accepted) / (max(accepted.values(), default=t0) - t0 or 1)
    sending_done = True
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_seen.wait(), DRAIN_TIMEOUT_SEC)
    poller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await poller
    conn.close()
    lags = [(seen[k] - t) * 1000 for k, t in accepted.items() if k in seen]
    return Lag(lags, accept_ms, len(accepted) - len(lags), achieved_rate)


async def wait_until(
    condition: Callable[[], Awaitable[bool]], budget_sec: float, what: str
) -> None:
    deadline = time.monotonic() + budget_sec
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"timed out after {budget_sec:g} s waiting for {what}")


def inbox_depth(data_dir: Path) -> int:
    with contextlib.closing(sqlite3.connect(data_dir / "inbox.sqlite", timeout=5)) as conn:
        (depth,) = conn.execute("SELECT COUNT(*) FROM inbox").fetchone()
    return int(depth)


# --- report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def print_throughput(results: list[tuple[str, Throughput]], args: argparse.Namespace) -> None:
    print(
        f"POST /webhooks/aloware · {args.requests:,} distinct events · "
        f"{args.concurrency} keep-alive connections · loopback · {os.cpu_count()} CPUs"
    )
    print(f"{'server':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}{'CPU µs/req':>12}")
    for name, r in results:
        print(
            f"{name:<20}{r.rate:>10,.0f}{r.pct(50):>10.2f}{r.pct(99):>10.2f}{r.errors:>8}"
            f"{r.cpu_us:>12,.0f}"
        )


async def main(args: argparse.Namespace) -> int:
    secret = secrets.token_hex(16)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    events = Events()
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        servers: list[Server] = []
        try:
            bare = await start_bare()
            servers.append(bare)
            daemon = await start_daemon(home, secret, args.log_level)
            servers.append(daemon)
            connector = aiohttp.TCPConnector(limit=args.concurrency)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                results: list[tuple[str, Throughput]] = []
                for server in (bare, daemon):
                    await drive(session, server, headers, events, WARMUP_REQUESTS, 8)
                    results.append(
                        (
                            server.name,
                            await drive(
                                session,
                                server,
                                headers,
                                events,
                                args.requests,
                                args.concurrency,
                            ),
                        )
                    )
                print_throughput(results, args)
                (_, bare_r), (_, pulse_r) = results
                ratio = pulse_r.rate / bare_r.rate
                print(
                    f"ratio daemon/bare: {ratio:.0%}  (target ≥ {TARGET_RATIO:.0%}: "
                    f"{verdict(ratio >= TARGET_RATIO)})"
                )
                print(
                    f"daemon p99: {pulse_r.pct(99):.2f} ms  (target < {TARGET_P99_MS:g} ms: "
                    f"{verdict(pulse_r.pct(99) < TARGET_P99_MS)})"
                )

                data_dir = home / "data"
                await wait_until(
                    lambda: asyncio.to_thread(lambda: inbox_depth(data_dir) == 0),
                    DRAIN_TIMEOUT_SEC,
                    "the daemon to work off the throughput run",
                )
                result = await lag(
                    session,
                    daemon.url,
                    headers,
                    events,
                    data_dir / "warehouse.sqlite",
                    args.lag_rate,
                    args.lag_seconds,
                )
            lags, unseen = result.lags_ms, result.unseen
            p99 = percentile(lags, 99)
            print(
                f"paced {args.lag_rate:,.0f} events/s for {args.lag_seconds:g} s "
                f"(achieved {result.achieved_rate:,.0f}/s): 202 latency p50 {percentile(result.accept_ms, 50):.2f} ms, "
                f"p99 {percentile(result.accept_ms, 99):.2f} ms"
            )
            print(
                f"end-to-end lag (202 → row in FactEvent, polled every {POLL_SEC * 1000:g} ms): "
                f"{len(lags):,} events, p50 {percentile(lags, 50):.0f} ms, "
                f"p99 {p99:.0f} ms, max {max(lags, default=0):.0f} ms"
                + (f", {unseen} never seen" if unseen else "")
            )
            print(
                f"lag p99: {p99:.0f} ms  (target < {TARGET_LAG_P99_MS:g} ms: "
                f"{verdict(p99 < TARGET_LAG_P99_MS and not unseen)})"
            )
        finally:
            for server in reversed(servers):
                code = await server.stop()
                if code != 0:
                    print(f"{server.name} exited {code}", file=sys.stderr)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="POSTs per server (5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (32)")
    parser.add_argument("--lag-rate", type=float, default=1000, help="events/s for lag (1000)")
    parser.add_argument("--lag-seconds", type=float, default=5, help="lag run length (5)")
    parser.add_argument(
        "--log-level", default="INFO", help="daemon LOG_LEVEL (INFO: one line per request)"
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.bare_server:
        asyncio.run(_serve_bare())
        sys.exit(0)
    sys.exit(asyncio.run(asyncio.wait_for(main(arguments), 110)))
