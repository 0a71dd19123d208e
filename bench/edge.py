"""Edge benchmark: the daemon's `POST /webhooks/aloware` against a bare aiohttp 202, then lag.

    .venv/bin/python bench/edge.py [--requests 5000] [--concurrency 32]

One run starts (a) the real daemon (`pulse serve`, temp DATA_DIR, fresh secrets) and (b) a bare
aiohttp server that answers 202 without storing, both as subprocesses on loopback; drives the
same fixed count of distinct Aloware call events at each with N keep-alive connections; prints
requests/s, p50/p99 latency and the ratio; then paces events at --lag-rate for --lag-seconds and
prints how long each took from its 202 to its row in the local sink (FactEvent, polled every
20 ms). Targets (issue 2): daemon ≥ 50 % of the bare rate, p99 < 20 ms, lag p99 < 1 s.

    .venv/bin/python bench/edge.py --wrk

Issue 15's figures, driven by wrk (Debian's `wrk`) with ALOWARE_AUTH=none: accept rate and p99
(6 s, 32 connections, workers running), a 10 s burst and then every stored event counted, the
paced lag, cold start (spawn → /readyz 200 against spawn → a bare app listening: nine of each,
in a venv of the runtime packages only, as the image, and in this one) and RSS; each a ratio
against the bare handler in the same run. `--rss-events 1000000` then keeps wrk on the
daemon until that many events were stored, waits until each is a row, and prints its RSS.
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
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
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


async def _serve_bare(
    port: int = 0, handler: Callable[[web.Request], Awaitable[web.Response]] = _bare_receive
) -> None:
    app = web.Application()
    app.router.add_post("/webhooks/{source}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
    await site.start()
    port = next(a[1] for a in runner.addresses if isinstance(a, tuple))
    print(f"port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


class _GroupCommit:
    """The least an edge that stores before its 202 does: each body into one SQLite (WAL,
    synchronous FULL) table, every request waiting then committed in one transaction on one
    thread, like the embedded inbox; no checks, no log, no metrics."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY, body BLOB, at REAL)")
        self.thread = ThreadPoolExecutor(max_workers=1)
        self.pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self.lock = threading.Lock()
        self.queued = False

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        with self.lock:
            self.pending.append((body, done))
            start, self.queued = not self.queued, True
        if start:
            self.thread.submit(self._flush, loop)
        await done
        return web.json_response({"request_id": secrets.token_hex(16)}, status=202)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
        rows = ",".join("(?, ?)" for _ in batch)
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(f"INSERT INTO inbox (body, at) VALUES {rows}",
                        [v for body, _ in batch for v in (body, now)])  # fmt: skip
        self.db.execute("COMMIT")
        loop.call_soon_threadsafe(_settle, [done for _, done in batch])
        with self.lock:
            self.queued = bool(self.pending)
            if self.queued:
                self.thread.submit(self._flush, loop)


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for done in futures:
        done.set_result(None)


async def _serve_stored(port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pulse-bench-stored-") as tmp:
        await _serve_bare(port, _GroupCommit(Path(tmp) / "inbox.sqlite").receive)


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


async def start_daemon(
    home: Path,
    secret: str,
    log_level: str,
    extra_env: dict[str, str] | None = None,
    poll_sec: float = 0.05,
    python: str = sys.executable,
) -> Server:
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
    env.update(extra_env or {})
    log_path = home / "pulse.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            python,
            "-m",
            "pulse.bootstrap.launch",
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
            await asyncio.sleep(poll_sec)
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


# --- wrk mode (issue 15): accept, burst, lag and cold start, each a ratio from one run ----------

ACCEPT_SECONDS = 6
BURST_SECONDS = 10
TARGET_ACCEPT_RATIO = 0.60
TARGET_ACCEPT_P99_MS = 10.0
TARGET_BURST_RATIO = 0.90
TARGET_START_RATIO = 2.0
TARGET_RSS_MB = 150.0
_LUA = """
local prefix, suffix = %s, %s
local next_id = 0
function init(args) next_id = tonumber(args[1]) end
request = function()
  next_id = next_id + 1
  return wrk.format("POST", "/webhooks/aloware", {["Content-Type"] = "application/json"},
                    prefix .. next_id .. suffix)
end
"""


@dataclass
class WrkRun:
    requests: int
    rate: float
    p99_ms: float
    errors: int
    cpu_us: float = float("nan")
    """Server CPU (all its threads) per request during the run: what a loaded machine's noise
    changes least."""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_script(home: Path) -> Path:
    """A wrk script posting the disposed sample with a new communication id per request."""
    template = json.loads(SAMPLE.read_text())["body"]
    template["body"]["id"] = "@ID@"
    prefix, suffix = json.dumps(template).split('"@ID@"')
    path = home / "post.lua"
    path.write_text(_LUA % (_lua_string(prefix + '"'), _lua_string('"' + suffix)))
    return path


def _ms(text: str) -> float:
    for unit, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def parse_wrk(output: str) -> WrkRun:
    requests, rate, p99, errors = 0, 0.0, float("nan"), 0
    for line in output.splitlines():
        words = line.split()
        if " requests in " in line:
            requests = int(words[0])
        elif line.startswith("Requests/sec:"):
            rate = float(words[1])
        elif words[:1] == ["99%"]:
            p99 = _ms(words[1])
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            errors += sum(int(w.strip(",")) for w in words if w.strip(",").isdigit())
    return WrkRun(requests, rate, p99, errors)


async def run_wrk(
    server: Server, script: Path, first_id: int, seconds: int, connections: int
) -> WrkRun:
    cpu_before = server.cpu_seconds()
    run = await _wrk(server.url, script, first_id, seconds, connections)
    run.cpu_us = (server.cpu_seconds() - cpu_before) / max(run.requests, 1) * 1e6
    return run


async def _wrk(url: str, script: Path, first_id: int, seconds: int, connections: int) -> WrkRun:
    proc = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
        url.removesuffix("/webhooks/aloware"), "--", str(first_id),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return parse_wrk(out.decode())


async def start_bare_on(
    port: int, kind: str = "--bare-server", python: str = sys.executable
) -> tuple[Server, float]:
    """Spawn the bare app on `port`; seconds from spawn until it accepts a connection."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        python, __file__, kind, "--port", str(port),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        writer.close()
        name = "bare aiohttp 202" if kind == "--bare-server" else "aiohttp + group commit"
        return Server(name, proc, port), time.perf_counter() - started


async def start_daemon_ready(
    home: Path, log_level: str, processes: int = 1, python: str = sys.executable
) -> tuple[Server, float]:
    """Spawn `pulse serve` (ALOWARE_AUTH=none); seconds from spawn until /readyz answers 200."""
    started = time.perf_counter()
    extra = {"ALOWARE_AUTH": "none", "EDGE_PROCESSES": str(processes)}
    # polled every 5 ms, as the bare app's port is: a 50 ms poll would add up to 50 ms
    server = await start_daemon(home, "", log_level, extra, poll_sec=0.005, python=python)
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{server.port}/readyz") as response:
                    if response.status == 200:
                        return server, time.perf_counter() - started
            await asyncio.sleep(0.005)


COLD_STARTS = 9  # each kind, interleaved; the medians are compared (the machine is shared)


@dataclass(frozen=True)
class ColdStarts:
    where: str
    bare: list[float]
    pulse: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.pulse) / statistics.median(self.bare)

    def line(self) -> str:
        return (
            f"cold start, {self.where}: bare listening {statistics.median(self.bare):.3f} s,"
            f" pulse /readyz 200 {statistics.median(self.pulse):.3f} s (medians of"
            f" {len(self.pulse)}, interleaved; pulse fastest {min(self.pulse):.3f} s): {self.ratio:.2f}×"
        )


async def cold_starts(where: str, python: str, home: Path, log_level: str) -> ColdStarts:
    """`COLD_STARTS` starts of each, bare then pulse in turn, each pulse on a new DATA_DIR; one
    of each first, not counted, so both read their files from the page cache."""
    bare: list[float] = []
    pulse: list[float] = []
    for i in range(COLD_STARTS + 1):
        server, seconds = await start_bare_on(free_port(), python=python)
        await server.stop()
        bare.append(seconds)
        run_home = home / f"cold-{where.split()[0]}-{i}"
        run_home.mkdir()
        daemon, seconds = await start_daemon_ready(run_home, log_level, python=python)
        await daemon.stop()
        pulse.append(seconds)
    return ColdStarts(where, bare[1:], pulse[1:])


def edge_processes_listening(home: Path, count: int) -> bool:
    return (home / "pulse.log").read_text(errors="replace").count("edge process listening") >= count


def fact_count(warehouse: Path) -> int:
    with contextlib.closing(sqlite3.connect(warehouse, timeout=5)) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM FactEvent").fetchone()
    return int(count)


async def received_total(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    prefix = 'pulse_webhooks_received_total{source="aloware"}'
    return sum(
        int(float(line.split()[-1])) for line in text.splitlines() if line.startswith(prefix)
    )


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def burst(
    daemon: Server, script: Path, first_id: int, connections: int, data: Path
) -> tuple[WrkRun, int, int]:
    """A 10 s wrk burst; then wait until every stored event is a row: (run, stored, counted)."""
    rows_before, stored_before = (
        fact_count(data / "warehouse.sqlite"),
        await received_total(daemon.port),
    )
    run = await run_wrk(daemon, script, first_id, BURST_SECONDS, connections)
    await asyncio.sleep(1)  # the requests wrk cut off at its deadline finish storing
    stored = await received_total(daemon.port) - stored_before

    async def caught_up() -> bool:
        return (
            await asyncio.to_thread(fact_count, data / "warehouse.sqlite") - rows_before >= stored
        )

    with contextlib.suppress(SystemExit):
        await wait_until(caught_up, 120, "the burst to be counted")
    return run, stored, fact_count(data / "warehouse.sqlite") - rows_before


async def soak(
    daemon: Server, script: Path, connections: int, data: Path, events: int
) -> tuple[int, float]:
    """wrk in 30 s runs until `events` were stored in all, then wait until each is a row:
    (events stored, the daemon's RSS in MB then)."""
    first_id = 1_000_000_000
    while (stored := await received_total(daemon.port)) < events:
        await _wrk(daemon.url, script, first_id, 30, connections)
        first_id += 100_000_000

    async def caught_up() -> bool:
        return await asyncio.to_thread(fact_count, data / "warehouse.sqlite") >= stored

    await asyncio.sleep(1)  # the requests wrk cut off at its deadline finish storing
    stored = await received_total(daemon.port)
    with contextlib.suppress(SystemExit):
        await wait_until(caught_up, 1200, "the soak to be counted")
    return stored, rss_mb(daemon.proc.pid)


def print_ratio(what: str, value: float, target: str, ok: bool) -> None:
    print(f"{what:<44}{value:>8.2f}   target {target:<10} {verdict(ok)}")


async def main_wrk(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        script = wrk_script(home)
        from runtime_only import runtime_venv  # packaging: not importable by the servers' venv

        image = str(await asyncio.to_thread(runtime_venv, home / "runtime-venv"))
        starts = [
            await cold_starts(
                "runtime packages only, as in the image", image, home, args.log_level
            ),
            await cold_starts("this venv (test tools too)", sys.executable, home, args.log_level),
        ]
        bare, _ = await start_bare_on(free_port())
        daemon, _ = await start_daemon_ready(home, args.log_level, args.processes)
        if args.processes > 1:  # the extra edge processes start after /readyz: wait for them
            await wait_until(
                lambda: asyncio.to_thread(edge_processes_listening, home, args.processes - 1),
                START_TIMEOUT_SEC,
                "the extra edge processes to listen",
            )
        try:
            c = args.concurrency
            for server, first in ((bare, 100_000_000), (daemon, 200_000_000)):
                await run_wrk(server, script, first, 1, 8)  # warm-up
            bare_accept = await run_wrk(bare, script, 300_000_000, ACCEPT_SECONDS, c)
            pulse_accept = await run_wrk(daemon, script, 400_000_000, ACCEPT_SECONDS, c)
            stored_server, _ = await start_bare_on(free_port(), "--stored-server")
            try:
                await run_wrk(stored_server, script, 150_000_000, 1, 8)  # warm-up
                floor = await run_wrk(stored_server, script, 350_000_000, ACCEPT_SECONDS, c)
            finally:
                await stored_server.stop()
            data = home / "data"
            await wait_until(
                lambda: asyncio.to_thread(lambda: inbox_depth(data) == 0), 120, "the inbox to drain"
            )
            bare_burst = await run_wrk(bare, script, 500_000_000, BURST_SECONDS, c)
            pulse_burst, stored, counted = await burst(daemon, script, 600_000_000, c, data)
            headers = {"Content-Type": "application/json"}
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
                paced = await lag(
                    session,
                    daemon.url,
                    headers,
                    Events(),
                    data / "warehouse.sqlite",
                    args.lag_rate,
                    args.lag_seconds,
                )
            rss = rss_mb(daemon.proc.pid)
            if args.rss_events:
                total, rss_after = await soak(daemon, script, c, data, args.rss_events)
        finally:
            await daemon.stop()
            await bare.stop()
    print(
        f"wrk -t1 -c{c} · Aloware disposed sample · ALOWARE_AUTH=none · loopback · {os.cpu_count()} CPUs"
        f" · EDGE_PROCESSES={args.processes}"
    )
    print(f"{'run':<28}{'req/s':>10}{'p99 ms':>10}{'errors':>8}{'CPU µs/req':>12}")
    for name, r in (
        ("bare accept 6 s", bare_accept),
        ("pulse accept 6 s", pulse_accept),
        ("aiohttp + group commit 6 s", floor),
        ("bare burst 10 s", bare_burst),
        ("pulse burst 10 s", pulse_burst),
    ):
        print(f"{name:<28}{r.rate:>10,.0f}{r.p99_ms:>10.2f}{r.errors:>8}{r.cpu_us:>12,.0f}")
    lag_p99 = percentile(paced.lags_ms, 99)
    print(
        f"burst: {stored:,} stored, {counted:,} counted afterwards · paced {args.lag_rate:,.0f}/s achieved {paced.achieved_rate:,.0f}/s"
    )
    for measured in starts:
        print(measured.line())
    print(f"pulse RSS after the burst and the lag: {rss:.0f} MB")
    if args.rss_events:
        print(f"RSS after {total:,} events stored and counted: {rss_after:.0f} MB")
    print(
        f"the least an edge that stores first does (aiohttp + SQLite group commit, no checks, log"
        f" or metrics): {floor.rate / bare_accept.rate:.2f}× bare"
    )
    accept = pulse_accept.rate / bare_accept.rate
    print_ratio("accept rate, pulse / bare", accept, "≥ 0.60", accept >= TARGET_ACCEPT_RATIO)
    print_ratio(
        "accept p99 (ms)", pulse_accept.p99_ms, "< 10", pulse_accept.p99_ms < TARGET_ACCEPT_P99_MS
    )
    ratio = pulse_burst.rate / bare_burst.rate
    print_ratio(
        "burst rate, pulse / bare (all counted)",
        ratio,
        "≥ 0.90",
        ratio >= TARGET_BURST_RATIO and counted == stored,
    )
    print_ratio(
        "accept → row lag p99 (s)",
        lag_p99 / 1000,
        "< 1",
        lag_p99 < TARGET_LAG_P99_MS and not paced.unseen,
    )
    start = starts[0].ratio  # the image's: what a restarted task takes
    print_ratio(
        "cold start, pulse readyz / bare listen", start, "≤ 2.0", start <= TARGET_START_RATIO
    )
    if args.rss_events:
        print_ratio(
            f"RSS after {total:,} events (MB)",
            rss_after,
            "< 150",
            rss_after < TARGET_RSS_MB and total >= 1_000_000,
        )
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
    parser.add_argument(
        "--wrk", action="store_true", help="issue 15's four ratios, driven by wrk (Debian: wrk)"
    )
    parser.add_argument(
        "--rss-events",
        type=int,
        default=0,
        help="with --wrk: then drive the daemon until this many events (e.g. 1000000) and print its RSS",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="with --wrk: the daemon's EDGE_PROCESSES (1)",
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stored-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.bare_server:
        asyncio.run(_serve_bare(arguments.port))
        sys.exit(0)
    if arguments.stored_server:
        asyncio.run(_serve_stored(arguments.port))
        sys.exit(0)
    if arguments.wrk:
        sys.exit(asyncio.run(main_wrk(arguments)))
    sys.exit(asyncio.run(asyncio.wait_for(main(arguments), 110)))
