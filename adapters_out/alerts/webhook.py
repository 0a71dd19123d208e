"""Alerts to ALERT_WEBHOOK_URL: a bounded queue and one sender task, rate-limited, retried with
backoff, so no caller ever waits for the receiver. The URL is a secret: it is never logged."""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from pulse.core.alerts import AlertFormat, render
from pulse.core.incidents import Transition

log = logging.getLogger("pulse.alerts")

QUEUE_SIZE = 100
ATTEMPTS = 6
BACKOFF_BASE_SEC = 1.0
BACKOFF_CAP_SEC = 60.0


class WebhookAlerts:
    """`offer` never blocks: it queues the message (or drops it, counted, when the queue is
    full); `run()` sends them one by one within `max_per_minute`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        fmt: AlertFormat,
        *,
        max_per_minute: int = 10,
        service: str = "pulse",
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        backoff_base_sec: float = BACKOFF_BASE_SEC,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._client = client
        self._url = url
        self._format: AlertFormat = fmt
        self._service = service
        self._max_per_minute = max_per_minute
        self._attempts = attempts
        self._backoff_base = backoff_base_sec
        self._queue: asyncio.Queue[Transition] = asyncio.Queue(queue_size)
        self._sent_at: collections.deque[float] = collections.deque()
        self._monotonic = monotonic
        self._sleep = sleep
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def offer(self, transition: Transition) -> None:
        try:
            self._queue.put_nowait(transition)
        except asyncio.QueueFull:
            self.dropped += 1
            log.warning(
                "alert queue full: alert dropped",
                extra={"fields": {"signature": transition.incident.signature}},
            )

    async def send_now(self, transition: Transition) -> bool:
        """Deliver at once, with the retries (the CLI, which runs no sender task)."""
        before = self.sent
        await self._deliver(transition)
        return self.sent > before

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            transition = await self._queue.get()
            await self._within_rate()
            await self._deliver(transition)

    async def _within_rate(self) -> None:
        while len(self._sent_at) >= self._max_per_minute:
            wait = self._sent_at[0] + 60 - self._monotonic()
            if wait <= 0:
                self._sent_at.popleft()
            else:
                await self._sleep(wait)
        self._sent_at.append(self._monotonic())

    async def _deliver(self, transition: Transition) -> None:
        body = render(transition, self._format, self._service)
        fields = {
            "signature": transition.incident.signature,
            "change": transition.change.value,
            "incident": transition.incident.id,
        }
        for attempt in range(self._attempts):
            problem, retry_after = await self._post(body)
            if not problem:
                self.sent += 1
                log.info("alert sent", extra={"fields": fields})
                return
            if attempt + 1 < self._attempts:
                delay = retry_after or self._backoff(attempt)
                log.warning(
                    "alert not delivered; retrying",
                    extra={"fields": {**fields, "problem": problem, "retry_in_sec": delay}},
                )
                await self._sleep(delay)
        self.failed += 1
        log.error("alert given up", extra={"fields": {**fields, "attempts": self._attempts}})

    async def _post(self, body: dict[str, Any]) -> tuple[str, float | None]:
        """'' when the receiver took it; else what went wrong (never the URL) and its wait."""
        try:
            response = await self._client.post(self._url, json=body)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}", None
        if response.status_code < 300:
            return "", None
        retry_after = response.headers.get("Retry-After", "")
        wait = float(retry_after) if retry_after.isdigit() else None
        return f"HTTP {response.status_code}", min(wait, BACKOFF_CAP_SEC) if wait else None

    def _backoff(self, attempt: int) -> float:
        cap = min(BACKOFF_CAP_SEC, self._backoff_base * 2**attempt)
        return random.uniform(cap / 2, cap)
