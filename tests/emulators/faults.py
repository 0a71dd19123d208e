"""Faults a vendor emulator injects, one per request in order: a status with headers, or a stall."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Self

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Fault:
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    stall_sec: float = 0.0  # answer only after this long (a client timeout shorter than it fires)


def throttled(retry_after: int = 0) -> Fault:
    return Fault(429, {"Retry-After": str(retry_after)})


def stall(seconds: float = 5.0) -> Fault:
    return Fault(200, stall_sec=seconds)


class FaultQueue:
    def __init__(self) -> None:
        self.pending: deque[Fault] = deque()

    def add(self, *faults: Fault) -> None:
        self.pending.extend(faults)

    async def next_response(self) -> web.Response | None:
        """The injected answer for this request, or None to answer normally."""
        if not self.pending:
            return None
        fault = self.pending.popleft()
        if fault.stall_sec:
            await asyncio.sleep(fault.stall_sec)
            return None
        return web.json_response(
            {"message": f"injected {fault.status}"}, status=fault.status, headers=fault.headers
        )


class LocalServer:
    """An aiohttp app on 127.0.0.1 at a free port; `base_url` once started."""

    def __init__(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        self.base_url = ""

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        await self._runner.cleanup()


class Served:
    """Base of the cloud emulators: a subclass adds its routes; `async with` serves them on
    127.0.0.1 at a free port, at `url`."""

    url = ""
    max_body_bytes = 64 * 1024 * 1024
    _runner: web.AppRunner | None = None

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> Self:
        app = web.Application(client_max_size=self.max_body_bytes)
        self.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
