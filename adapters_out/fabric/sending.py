"""Requests within Fabric's size limits, retried as DESIGN §4 retries Power BI's: 429 waits
Retry-After, 5xx/timeouts back off exponentially with jitter, a 413 splits, a 400 fails."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from pulse.adapters_out.fabric.config import SendPolicy
from pulse.adapters_out.fabric.errors import (
    FabricRejected,
    FabricThrottled,
    FabricTooLarge,
    FabricUnavailable,
)

T = TypeVar("T")


async def post(http: httpx.AsyncClient, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """One POST; a transport failure becomes `FabricUnavailable` (`maybe_landed` once the
    request may have reached the service, so a repeat is possible)."""
    try:
        return await http.post(url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise FabricUnavailable(f"{what}: cannot connect: {exc!r}") from exc
    except httpx.TimeoutException as exc:
        raise FabricUnavailable(f"{what}: no answer in time: {exc!r}", maybe_landed=True) from exc
    except httpx.TransportError as exc:
        raise FabricUnavailable(f"{what}: connection lost: {exc!r}", maybe_landed=True) from exc


@dataclass(slots=True)
class SendStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    unavailable: int = 0
    splits: int = 0  # a 413 made us halve a request
    bytes_sent: int = 0
    largest_request: int = 0


@dataclass(frozen=True, slots=True)
class Framing:
    """How items join into one body: `open` + items separated by `sep` + `close`."""

    open: bytes = b""
    sep: bytes = b"\n"
    close: bytes = b""

    def body(self, items: Sequence[bytes]) -> bytes:
        return self.open + self.sep.join(items) + self.close

    def chunks(self, items: Sequence[bytes], max_bytes: int) -> Iterator[list[bytes]]:
        """Greedy runs of items whose framed body stays ≤ max_bytes; an item that cannot fit
        even alone is refused for good (no request could carry it)."""
        fixed = len(self.open) + len(self.close)
        run: list[bytes] = []
        size = fixed
        for item in items:
            if fixed + len(item) > max_bytes:
                raise FabricRejected(
                    "one row is larger than a request may be",
                    status=413,
                    body=f"{len(item)} bytes; the limit is {max_bytes}",
                )
            extra = len(item) + (len(self.sep) if run else 0)
            if run and size + extra > max_bytes:
                yield run
                run, size = [], fixed
                extra = len(item)
            run.append(item)
            size += extra
        if run:
            yield run


class Sender:
    """Sends items in as few requests as the size limit allows, at most `max_concurrency` at a
    time, each retried until `deadline_sec` after the call began; then the last error."""

    def __init__(
        self,
        *,
        max_bytes: int,
        framing: Framing,
        max_concurrency: int = 4,
        deadline_sec: float = 80.0,
        retry_base_sec: float = 0.5,
        retry_cap_sec: float = 30.0,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.framing = framing
        self._slots = asyncio.Semaphore(max_concurrency)
        self._deadline = deadline_sec
        self._base = retry_base_sec
        self._cap = retry_cap_sec
        self._jitter = jitter
        self._sleep = sleep
        self._now = monotonic
        self.stats = SendStats()
        self.last_error = ""

    @classmethod
    def from_policy(cls, policy: SendPolicy, max_bytes: int, framing: Framing) -> Sender:
        """The sinks' shared policy (FABRIC__MAX_CONCURRENCY, __APPEND_TIMEOUT_SEC, the retry
        settings) with a sink's own size limit and framing."""
        return cls(
            max_bytes=max_bytes,
            framing=framing,
            max_concurrency=policy.max_concurrency,
            deadline_sec=policy.append_timeout_sec,
            retry_base_sec=policy.retry_base_sec,
            retry_cap_sec=policy.retry_cap_sec,
        )

    async def send(
        self, items: Sequence[bytes], post: Callable[[bytes, int], Awaitable[None]]
    ) -> None:
        """`post(body, item_count)` sends one request and raises the typed Fabric errors."""
        if not items:
            return
        deadline = self._now() + self._deadline
        chunks = list(self.framing.chunks(items, self.max_bytes))
        await asyncio.gather(*(self._send_chunk(c, post, deadline) for c in chunks))

    async def _send_chunk(
        self, items: list[bytes], post: Callable[[bytes, int], Awaitable[None]], deadline: float
    ) -> None:
        body = self.framing.body(items)

        async def once() -> None:
            async with self._slots:
                self.stats.requests += 1
                self.stats.bytes_sent += len(body)
                self.stats.largest_request = max(self.stats.largest_request, len(body))
                await post(body, len(items))

        try:
            await self.retrying(once, deadline)
        except FabricTooLarge as exc:
            if len(items) == 1:
                raise FabricRejected(
                    "one row is larger than Fabric accepts", status=413, body=str(exc)
                ) from exc
            self.stats.splits += 1
            half = len(items) // 2
            await asyncio.gather(
                self._send_chunk(items[:half], post, deadline),
                self._send_chunk(items[half:], post, deadline),
            )

    async def retrying(self, call: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """`call()` until it succeeds, fails for good, or the next wait would pass `deadline`."""
        if deadline is None:
            deadline = self._now() + self._deadline
        failures = 0
        while True:
            try:
                return await call()
            except FabricThrottled as exc:
                self.stats.throttled += 1
                failures += 1
                wait = self._backoff(failures) if exc.retry_after is None else exc.retry_after
                # jitter only lengthens the wait, so replicas do not return in lockstep
                wait += min(5.0, 0.1 + 0.2 * wait) * self._jitter()
                self._give_up_or_wait(exc, wait, deadline)
            except FabricUnavailable as exc:
                self.stats.unavailable += 1
                failures += 1
                wait = self._backoff(failures)
                self._give_up_or_wait(exc, wait, deadline)
            self.stats.retries += 1
            await self._sleep(wait)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self._cap, self._base * 2.0 ** (failures - 1))
        return ceiling / 2 + ceiling / 2 * self._jitter()

    def _give_up_or_wait(self, exc: FabricUnavailable, wait: float, deadline: float) -> None:
        self.last_error = str(exc)
        if self._now() + wait > deadline:
            raise exc
