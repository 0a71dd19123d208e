"""The process lifecycle: one loop runs the HTTP site and the inbox workers; SIGTERM drains."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from adapters_in.http.admin import auth as admin_auth
from adapters_in.http.admin.api import AdminApi
from adapters_in.http.app import build_app
from adapters_in.http.health import Health
from adapters_in.http.webhooks import WebhookEdge
from adapters_in.worker import InboxWorkers

if TYPE_CHECKING:
    from bootstrap.container import Container

log = logging.getLogger("pulse.daemon")

PURGE_EVERY_SEC = 3600
INBOX_WEDGED_AFTER_SEC = 600


class Daemon:
    def __init__(self, container: Container) -> None:
        self.container = container
        self.settings = container.settings()
        self.stop_requested = asyncio.Event()
        self.port: int | None = None

    async def run(self, host: str, port: int) -> int:
        c, s = self.container, self.settings
        ports = await c.ingest_ports()  # type: ignore[misc]
        metrics = c.metrics()
        clock = c.clock()
        health_deps = await c.health()  # type: ignore[misc]
        roster = await ports.roster.snapshot()
        if roster.count_everyone:
            log.warning(
                "roster is empty: every agent counts (set ROSTER_AGENTS, ROSTER_FILE or ROSTER=aloware)"
            )
        workers = InboxWorkers(
            ports, c.ingest_config(), clock, metrics, count=s.workers, batch_size=s.batch_size
        )

        async def inbox_not_wedged() -> None:
            stats = await ports.inbox.stats()
            if stats.depth and stats.oldest_age_sec > INBOX_WEDGED_AFTER_SEC:
                raise RuntimeError(f"oldest item waits {stats.oldest_age_sec:.0f} s")

        async def workers_alive() -> None:
            if workers.alive < workers.count:
                raise RuntimeError(f"{workers.alive}/{workers.count} workers alive")

        inbox_gauges: dict[str, float] = {}

        def gauges() -> list[tuple[str, dict[str, str], float]]:
            return [(f"inbox_{k}", {}, v) for k, v in inbox_gauges.items()]

        metrics.gauge_source(gauges)
        edge = WebhookEdge(
            c.sources(),
            ports.inbox,
            clock,
            metrics,
            s.public_base_url,
            tracing=bool(s.otel_exporter_otlp_endpoint),  # no exporter: no spans on the edge
        )
        scheduler = await c.scheduler()  # type: ignore[misc]
        health = Health(
            health_deps,
            metrics,
            {
                "inbox_flowing": inbox_not_wedged,
                "workers": workers_alive,
                "jobs": scheduler.board.check,
            },
        )
        app = build_app(edge, health, body_limit(s.body_limit_bytes, ports.inbox))
        if s.admin_hmac_secret is not None:  # the admin API is off unless a secret is configured
            AdminApi(
                await c.control_ports(),  # type: ignore[misc]
                c.control_config(),
                await c.nonces(),
                s.admin_hmac_secret.get_secret_value(),
                admin_auth.parse_networks(s.admin_ip_allowlist),
                admin_auth.parse_networks(s.trusted_proxies),
                scheduler.board.as_dict,
            ).register(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self.port = _bound_port(runner, port)
        workers.start()
        scheduler.start()
        # The roster refresh at start-up; replicas starting in the same minute run it once.
        startup_sync = asyncio.create_task(
            scheduler.run_once("sync_agents", f"startup-{clock.now():%Y-%m-%dT%H:%M}")
        )
        housekeeping = asyncio.create_task(self._housekeeping(ports, inbox_gauges))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_requested.set)
        log.info(
            "listening",
            extra={
                "fields": {
                    "url": f"http://{host}:{self.port}",
                    "inbox": s.inbox,
                    "ledger": s.ledger,
                    "sink": s.sink,
                    "workers": s.workers,
                }
            },
        )
        await self.stop_requested.wait()

        log.info("stopping: no new requests; draining")
        await runner.cleanup()  # stops accepting; lets requests being stored finish
        scheduler.shutdown()
        startup_sync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await startup_sync
        report = await workers.drain(s.drain_timeout_sec)
        housekeeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await housekeeping
        log.info(report.line(), extra={"fields": dataclasses.asdict(report)})
        return 0

    async def _housekeeping(self, ports: Any, gauges: dict[str, float]) -> None:
        since_purge = PURGE_EVERY_SEC
        while True:
            try:
                stats = await ports.inbox.stats()
                gauges.update(
                    depth=stats.depth,
                    oldest_age_seconds=stats.oldest_age_sec,
                    dead_letters=stats.dead_letters,
                )
                if since_purge >= PURGE_EVERY_SEC:
                    purged = await ports.ledger.purge_expired()
                    since_purge = 0
                    if purged:
                        log.info("ledger purge", extra={"fields": {"purged": purged}})
            except Exception:
                log.exception("housekeeping failed")
            await asyncio.sleep(15)
            since_purge += 15


def body_limit(configured: int, inbox: object) -> int:
    """BODY_LIMIT_BYTES, lowered to what the inbox can hold (SQS: a 256 KiB message)."""
    cap = getattr(inbox, "max_body_bytes", None)
    return min(configured, cap) if isinstance(cap, int) else configured


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
