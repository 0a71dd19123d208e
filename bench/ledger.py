"""Ledger benchmark: claims/s and p99 latency of a 100-key claim, sequential vs concurrent, on moto."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import ClientSession, web

from pulse.adapters_out.clock import SystemClock
from pulse.adapters_out.dynamodb.client import dynamodb_client
from pulse.adapters_out.dynamodb.infra import ensure_table
from pulse.adapters_out.dynamodb.ledger import DynamoLedger

# Run: `.venv/bin/python -m bench.ledger [--rounds 20] [--batch 100] [--concurrency 32] [--rtt-ms 0]`.
# moto runs in its own process: sharing our GIL it would hide any overlap. moto spends a few
# ms of CPU per request, so it caps both modes; `--rtt-ms` adds the round trip a container
# has to DynamoDB in its region, which is what concurrency overlaps.
LEASE = timedelta(seconds=120)
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@asynccontextmanager
async def delay_proxy(upstream: str, rtt_ms: float) -> AsyncIterator[str]:
    """Forward to `upstream`, answering each request `rtt_ms` later than moto did."""
    async with ClientSession(auto_decompress=False) as session:

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            await asyncio.sleep(rtt_ms / 1000)
            async with session.request(
                request.method, upstream + request.path_qs, headers=headers, data=body
            ) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
            return web.Response(status=answer.status, body=payload, headers=kept)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            yield f"http://{host}:{port}"
        finally:
            await runner.cleanup()


async def measure(
    endpoint: str, table: str, concurrency: int, rounds: int, batch: int
) -> tuple[float, float, float]:
    """(claims per second, p50 and p99 seconds per batch claim)."""
    opened = asynccontextmanager(dynamodb_client)(
        "us-east-1",
        endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        max_pool_connections=max(10, concurrency * 2),
    )
    async with opened as client:
        ledger = DynamoLedger(client, table, SystemClock(), concurrency=concurrency)
        await ledger.claim([f"warm:{uuid.uuid4().hex}" for _ in range(batch)], LEASE)
        latencies = []
        for _ in range(rounds):
            keys = [f"bench:{uuid.uuid4().hex}" for _ in range(batch)]
            started = time.perf_counter()
            claim = await ledger.claim(keys, LEASE)
            latencies.append(time.perf_counter() - started)
            assert len(claim.claimed) == batch
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return batch * rounds / sum(latencies), statistics.median(latencies), p99


async def run(args: argparse.Namespace, moto_url: str) -> None:
    opened = asynccontextmanager(dynamodb_client)(
        "us-east-1", moto_url, access_key_id="testing", secret_access_key="testing"
    )
    async with opened as client:
        table = f"bench-{uuid.uuid4().hex[:8]}"
        await ensure_table(client, table, dry_run=False)
    async with contextlib.AsyncExitStack() as stack:
        endpoint = moto_url
        if args.rtt_ms > 0:
            endpoint = await stack.enter_async_context(delay_proxy(moto_url, args.rtt_ms))
        sequential = await measure(endpoint, table, 1, args.rounds, args.batch)
        concurrent = await measure(endpoint, table, args.concurrency, args.rounds, args.batch)

    print(
        f"ledger claim, {args.batch}-key batches x {args.rounds} rounds, moto {moto_url}"
        f"{f', +{args.rtt_ms:g} ms RTT' if args.rtt_ms else ''}"
    )
    print(f"{'mode':<18}{'claims/s':>10}{'p50 batch':>12}{'p99 batch':>12}")
    for name, (rate, p50, p99) in (
        ("sequential", sequential),
        (f"concurrent ({args.concurrency})", concurrent),
    ):
        print(f"{name:<18}{rate:>10.0f}{p50 * 1000:>10.1f}ms{p99 * 1000:>10.1f}ms")
    print(
        f"ratio concurrent/sequential: {concurrent[0] / sequential[0]:.1f}x claims/s, "
        f"p99 {sequential[2] / concurrent[2]:.1f}x lower"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    args = parser.parse_args()
    with moto_process() as moto_url:
        asyncio.run(run(args, moto_url))


if __name__ == "__main__":
    main()
