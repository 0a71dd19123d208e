"""A HubSpot CRM API emulator on 127.0.0.1: emails, tickets and owners as in the vendored samples."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter, deque
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.emulators.faults import FaultQueue, LocalServer

SPECS = Path(__file__).parent.parent / "specs" / "webhooks"


def sample(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SPECS / name).read_text())["body"]
    return body


class HubSpotEmulator:
    """`GET /crm/v3/objects/{emails|tickets}/{id}`, `GET /crm/v3/owners/{id}`, `GET /crm/v3/owners`,
    and `POST /crm/v3/objects/{emails|tickets}/search` (GTE/LT filters on the creation date,
    oldest first, `after` paging, at most `search_cap` results per query, at most
    `search_per_second` searches a second: past it, 429 with Retry-After).

    Seeded with the sample email, ticket and owner; `add_email`/`add_ticket`/`add_owner` add
    more. Every answer carries HubSpot's rate-limit headers; `faults` injects 429/5xx/stalls."""

    def __init__(
        self, token: str | None = None, search_cap: int = 10_000, search_per_second: int = 5
    ) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.owners: dict[str, dict[str, Any]] = {}
        self.faults = FaultQueue()
        self.hits: Counter[str] = Counter()
        self.search_cap, self.search_per_second = search_cap, search_per_second
        self.searches: list[dict[str, Any]] = []  # every search body answered 200
        self.search_throttled = 0
        self._search_times: deque[float] = deque()
        email, ticket = (
            sample("hubspot-email-object-response.json"),
            sample("hubspot-ticket-object-response.json"),
        )
        self.objects[("emails", email["id"])] = email
        self.objects[("tickets", ticket["id"])] = ticket
        owner = sample("hubspot-owner-get-response.json")
        self.owners[owner["id"]] = owner
        app = web.Application()
        app.router.add_get("/crm/v3/objects/{type}/{id}", self._object)
        app.router.add_get("/crm/v3/owners/{id}", self._owner)
        app.router.add_get("/crm/v3/owners", self._owners)
        app.router.add_post("/crm/v3/objects/{type}/search", self._search)
        self._server = LocalServer(app)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def __aenter__(self) -> HubSpotEmulator:
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.close()

    def add_owner(self, owner_id: str, email: str) -> None:
        self.owners[owner_id] = {
            "id": owner_id,
            "email": email,
            "type": "PERSON",
            "archived": False,
        }

    def add_email(
        self,
        object_id: str,
        owner_id: str | None,
        direction: str = "EMAIL",
        status: str = "SENT",
        created: str = "2025-11-05T17:16:50.977Z",
    ) -> None:
        props = {
            "hs_object_id": object_id,
            "hubspot_owner_id": owner_id,
            "hs_email_direction": direction,
            "hs_email_status": status,
            "hs_createdate": created,
        }
        self.objects[("emails", object_id)] = {
            "id": object_id,
            "properties": props,
            "archived": False,
        }

    def add_ticket(
        self, object_id: str, owner_id: str | None, created: str = "2025-11-05T17:02:22.417Z"
    ) -> None:
        props = {
            "hs_object_id": object_id,
            "hubspot_owner_id": owner_id,
            "createdate": created,
        }
        self.objects[("tickets", object_id)] = {
            "id": object_id,
            "properties": props,
            "archived": False,
        }

    async def _guard(self, request: web.Request) -> web.Response | None:
        self.hits[request.path] += 1
        injected = await self.faults.next_response()
        if injected is not None:
            return injected
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer({"status": "error", "category": "INVALID_AUTHENTICATION"}, 401)
        return None

    def _answer(self, body: dict[str, Any], status: int = 200) -> web.Response:
        headers = {
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "189",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
        return web.json_response(body, status=status, headers=headers)

    async def _object(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        found = self.objects.get((request.match_info["type"], request.match_info["id"]))
        if found is None:
            return self._answer({"status": "error", "category": "OBJECT_NOT_FOUND"}, 404)
        wanted = request.query.get("properties", "").split(",")
        props = {
            k: v
            for k, v in found["properties"].items()
            if not wanted[0] or k in wanted or k == "hs_object_id"
        }
        return self._answer({**found, "properties": props})

    async def _owner(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        owner = self.owners.get(request.match_info["id"])
        if owner is None:
            return self._answer({"status": "error", "category": "OBJECT_NOT_FOUND"}, 404)
        return self._answer(owner)

    async def _owners(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        return refused or self._answer({"results": list(self.owners.values())[:1]})

    def _over_search_rate(self) -> bool:
        now = time.monotonic()
        while self._search_times and self._search_times[0] <= now - 1.0:
            self._search_times.popleft()
        if len(self._search_times) >= self.search_per_second:
            self.search_throttled += 1
            return True
        self._search_times.append(now)
        return False

    async def _search(self, request: web.Request) -> web.Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        if self._over_search_rate():
            body = {"status": "error", "category": "RATE_LIMITS", "message": "search: 5/s"}
            return web.json_response(body, status=429, headers={"Retry-After": "1"})
        query = await request.json()
        kind = request.match_info["type"]
        matching = sorted(
            (
                o
                for (t, _), o in self.objects.items()
                if t == kind and _in(o, query["filterGroups"])
            ),
            key=lambda o: (_created_ms(o), o["id"]),
        )
        start, limit = int(query.get("after") or 0), min(int(query.get("limit", 10)), 200)
        if start + limit > self.search_cap:
            # HubSpot: paging past 10,000 results of one query fails
            body = {"status": "error", "category": "VALIDATION_ERROR", "message": "past the cap"}
            return self._answer(body, 400)
        self.searches.append(query)
        wanted = set(query.get("properties") or [])
        results = [
            {**o, "properties": {k: v for k, v in o["properties"].items() if k in wanted}}
            for o in matching[start : start + limit]
        ]
        answer: dict[str, Any] = {"total": len(matching), "results": results}
        if start + limit < len(matching):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return self._answer(answer)


def _created_ms(obj: dict[str, Any]) -> int:
    props = obj["properties"]
    text = props.get("hs_createdate") or props.get("createdate")
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _in(obj: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
    """OR of groups, AND within; GTE / LT on the creation date in epoch milliseconds."""
    created = _created_ms(obj)
    tests = {"GTE": lambda v: created >= int(v), "LT": lambda v: created < int(v)}
    return any(
        all(
            f["propertyName"] in ("hs_createdate", "createdate")
            and tests[f["operator"]](f["value"])
            for f in group["filters"]
        )
        for group in groups
    )
