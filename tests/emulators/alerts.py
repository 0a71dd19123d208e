"""An alert receiver on 127.0.0.1 (a Slack or Teams incoming webhook stand-in): it remembers
each body POSTed to its secret path, and answers with the injected faults first."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiohttp import web

from tests.emulators.faults import FaultQueue, Served


class AlertReceiver(Served):
    def __init__(self) -> None:
        self.path = f"/services/T000/B000/{secrets.token_hex(12)}"  # like Slack's: the secret
        self.received: list[Any] = []
        self.attempts = 0
        self.faults = FaultQueue()
        self.hang = False
        self.released = asyncio.Event()  # a hanging request answers once this is set
        self.arrived = asyncio.Event()

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    async def close(self) -> None:
        self.released.set()
        await super().close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._receive)

    async def _receive(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hang:
            await self.released.wait()
        injected = await self.faults.next_response()
        if injected is not None:
            return injected
        self.received.append(await request.json())
        self.arrived.set()
        return web.Response(text="ok")
