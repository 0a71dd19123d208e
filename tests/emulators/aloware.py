"""An Aloware API emulator on 127.0.0.1: ring-group availability as in the vendored sample, faults."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.emulators.faults import FaultQueue, LocalServer

SPECS = Path(__file__).parent.parent / "specs" / "webhooks"


def sample_agents() -> list[dict[str, Any]]:
    document = json.loads((SPECS / "aloware-api-ring-group-availability-response.json").read_text())
    agents: list[dict[str, Any]] = document["body"]["test_results"]
    return agents


class AlowareEmulator:
    """`GET /api/v1/webhook/ring-group/availability?ring_group_id=…&api_token=…`.

    `ring_groups` maps a ring group id to its `test_results` entries; `faults` answers the next
    requests with 429/5xx/stalls; `requests` remembers the query of each call."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.ring_groups: dict[str, list[dict[str, Any]]] = {"8465": sample_agents()}
        self.faults = FaultQueue()
        self.requests: list[dict[str, str]] = []
        app = web.Application()
        app.router.add_get("/api/v1/webhook/ring-group/availability", self._availability)
        self._server = LocalServer(app)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def __aenter__(self) -> AlowareEmulator:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()

    async def _availability(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.query))
        injected = await self.faults.next_response()
        if injected is not None:
            return injected
        if request.query.get("api_token") != self.token:
            return web.json_response({"message": "Unauthenticated."}, status=401)
        group = request.query.get("ring_group_id", "")
        if group not in self.ring_groups:
            return web.json_response({"message": "Ring group not found."}, status=404)
        return web.json_response({"test_results": self.ring_groups[group]})
