"""HubSpot CRM (private-app token): email and ticket lookups and searches, their owners, TTL caches, 429s."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pulse.core.errors import TransientError
from pulse.core.model import CrmObject
from pulse.ports.clock import Clock
from pulse.ports.control import OwnerOverrides
from pulse.ports.directory import CrmPage, Roster


class HubSpotUnavailable(TransientError):
    """The CRM API failed after our retries (or refused the token): the event waits."""

    dependency = "hubspot-crm"  # its incidents' signature (core.incidents)

    def __init__(self, message: str, *, status: int | None = None, timed_out: bool = False):
        super().__init__(message)
        self.status = status
        self.error_class = "timeout" if timed_out else None


log = logging.getLogger("pulse.hubspot")

OBJECTS = {"email": "emails", "ticket": "tickets"}
PROPERTIES = {
    "email": "hs_timestamp,hubspot_owner_id,hs_email_direction,hs_email_status,hs_createdate",
    "ticket": "hubspot_owner_id,createdate,hs_pipeline,hs_pipeline_stage,subject",
}
CREATED_PROPERTY = {"email": "hs_createdate", "ticket": "createdate"}
MAX_WAIT_SEC = 10.0  # HubSpot's rate-limit windows are 10 s; never wait longer than one


@dataclass(slots=True)
class SearchLimits:
    """The CRM search API's own limits (HubSpot's CRM search guide): at most 200 results a page,
    10,000 for one query (paging past them fails), and a few requests a second per account,
    lower than the other CRM endpoints'; requests are spaced `interval_sec` apart."""

    page_size: int = 200
    max_results: int = 10_000
    interval_sec: float = 0.25
    _next_at: float = field(default=0.0, init=False, repr=False)  # monotonic

    async def pace(self) -> None:
        wait = self._next_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_at = max(self._next_at, time.monotonic()) + self.interval_sec


@dataclass(slots=True)
class _Entry:
    value: Any
    expires: datetime


class HubSpotCrm:
    """CrmDirectory port over the CRM v3 API. An owner maps to an agent by lower-cased email;
    an admin override (by owner id or email) names the roster agent instead. An owner HubSpot
    does not know comes back without an email, so the gate records it as `unknown_owner`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        token: str | Callable[[], str | None],
        clock: Clock,
        *,
        overrides: OwnerOverrides | None = None,
        roster: Roster | None = None,
        object_ttl: timedelta = timedelta(minutes=10),
        owner_ttl: timedelta = timedelta(hours=1),
        retries: int = 3,
        backoff_sec: float = 0.5,
        search: SearchLimits | None = None,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        # a callable is read per request: a rotated token takes effect without a restart
        self._token = token
        self._clock = clock
        self._overrides = overrides
        self._roster = roster
        self._object_ttl, self._owner_ttl = object_ttl, owner_ttl
        self._retries, self._backoff = retries, backoff_sec
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._paused_until = 0.0  # monotonic: HubSpot said the window's budget is spent
        self._limits = search or SearchLimits()

    def _headers(self) -> dict[str, str]:
        token = self._token if isinstance(self._token, str) else self._token() or ""
        return {"Authorization": f"Bearer {token}"}

    async def lookup(self, object_type: str, object_id: str) -> CrmObject | None:
        if object_type not in OBJECTS:
            return None
        body = await self._cached(
            (object_type, object_id),
            self._object_ttl,
            f"/crm/v3/objects/{OBJECTS[object_type]}/{object_id}",
            {"properties": PROPERTIES[object_type]},
        )
        if body is None:
            return None
        return await self._crm_object(object_type, str(object_id), body)

    async def created(
        self, object_type: str, since: datetime, until: datetime
    ) -> AsyncIterator[CrmPage]:
        """CrmListing over the CRM search API (`hs_createdate` / `createdate` in [since, until),
        oldest first, `after` paging). A window whose total passes the search API's result cap
        is split in halves until each half fits; requests are spaced by the search rate limit
        and a 429 waits its Retry-After, then asks for the same page again."""
        if object_type not in OBJECTS:
            raise ValueError(f"unknown object type {object_type!r}: email or ticket")
        windows = [(_epoch_ms(since), _epoch_ms(until))]
        expected: int | None = None
        while windows:
            low, high = windows.pop(0)
            first = await self._search(object_type, low, high, None)
            total = int(first.get("total") or 0)
            expected = total if expected is None else expected
            if total > self._limits.max_results and high - low > 1:
                middle = (low + high) // 2
                windows[0:0] = [(low, middle), (middle, high)]
                log.info(
                    "%s search %d…%d holds %d, over the %d cap: split",
                    object_type,
                    low,
                    high,
                    total,
                    self._limits.max_results,
                )
                continue
            async for page in self._pages(object_type, low, high, first, expected):
                yield page

    async def _pages(
        self, object_type: str, low: int, high: int, page: dict[str, Any], expected: int
    ) -> AsyncIterator[CrmPage]:
        while True:
            results = [r for r in page.get("results") or [] if isinstance(r, dict)]
            objects = [await self._crm_object(object_type, str(r.get("id")), r) for r in results]
            yield CrmPage(tuple(objects), expected)
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            page = await self._search(object_type, low, high, str(after))

    async def _search(
        self, object_type: str, low: int, high: int, after: str | None
    ) -> dict[str, Any]:
        created = CREATED_PROPERTY[object_type]
        body: dict[str, Any] = {
            "filterGroups": [
                {
                    "filters": [
                        {"propertyName": created, "operator": "GTE", "value": str(low)},
                        {"propertyName": created, "operator": "LT", "value": str(high)},
                    ]
                }
            ],
            "properties": PROPERTIES[object_type].split(","),
            "sorts": [{"propertyName": created, "direction": "ASCENDING"}],
            "limit": self._limits.page_size,
        }
        if after is not None:
            body["after"] = after
        await self._limits.pace()
        answer = await self._send(
            "POST", f"/crm/v3/objects/{OBJECTS[object_type]}/search", json_body=body
        )
        if answer is None:
            raise TransientError(f"HubSpot has no {object_type} search (404)")
        return answer

    async def _crm_object(
        self, object_type: str, object_id: str, body: dict[str, Any]
    ) -> CrmObject:
        props = body.get("properties") or {}
        owner_id = _text(props.get("hubspot_owner_id"))
        return CrmObject(
            object_type=object_type,
            object_id=object_id,
            owner_id=owner_id,
            owner_email=await self._agent_email(owner_id),
            direction=_text(props.get("hs_email_direction")),
            status=_text(props.get("hs_email_status")),
            created_at=_instant(
                props.get("hs_createdate") or props.get("createdate") or body.get("createdAt")
            ),
        )

    async def ping(self) -> None:
        await self._send("GET", "/crm/v3/owners", params={"limit": "1"})

    async def _agent_email(self, owner_id: str | None) -> str | None:
        """The email the gate matches against the roster: an override's agent's, else the owner's."""
        if owner_id is None:
            return None
        owner = await self._cached(
            ("owner", owner_id), self._owner_ttl, f"/crm/v3/owners/{owner_id}", {}
        )
        email = _text(owner.get("email")) if owner else None
        email = email.strip().lower() if email else None
        if self._overrides is not None and self._roster is not None:
            agent_id = await self._overrides.get(owner_id)
            if agent_id is None and email:
                agent_id = await self._overrides.get(email)
            if agent_id is not None:
                agent = (await self._roster.snapshot()).by_id(agent_id)
                if agent is not None and agent.email:
                    return agent.email.strip().lower()
                log.warning("owner override %s → %s: agent not on the roster", owner_id, agent_id)
        return email

    async def _cached(
        self, key: tuple[str, str], ttl: timedelta, path: str, params: dict[str, str]
    ) -> dict[str, Any] | None:
        now = self._clock.now()
        entry = self._cache.get(key)
        if entry is not None and entry.expires > now:
            result: dict[str, Any] | None = entry.value
            return result
        body = await self._send("GET", path, params=params)
        self._cache[key] = _Entry(body, now + ttl)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The JSON body; None on 404; TransientError once retries are spent."""
        problem, last_status = "", None
        for attempt in range(self._retries + 1):
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            try:
                response = await self._client.request(
                    method,
                    self._base + path,
                    params=params,
                    json=json_body,
                    headers=self._headers(),
                )
            except httpx.TimeoutException:
                problem, last_status = "timed out", None
            except httpx.TransportError as exc:
                problem, last_status = f"unreachable ({type(exc).__name__})", None
            else:
                self._note_budget(response)
                status = response.status_code
                if status == 404:
                    return None
                if status < 400:
                    answer: dict[str, Any] = response.json()
                    return answer
                if status == 401 or status == 403:
                    # Not the event's fault: keep it for a retry once the token is fixed.
                    log.error("HubSpot refused the token (%s): check HUBSPOT_ACCESS_TOKEN", status)
                    raise HubSpotUnavailable(
                        f"HubSpot refused the private-app token ({status})", status=status
                    )
                if status != 429 and status < 500:
                    raise HubSpotUnavailable(f"HubSpot answered {status} for {path}", status=status)
                problem, last_status = f"answered {status}", status
                if status == 429:
                    wait = _retry_after(response) or self._backoff * 2**attempt
                    self._paused_until = max(self._paused_until, time.monotonic() + wait)
                    continue
            if attempt < self._retries:
                await asyncio.sleep(self._backoff * 2**attempt)
        raise HubSpotUnavailable(
            f"HubSpot {path} {problem} after {self._retries + 1} attempt(s)",
            status=last_status,
            timed_out=problem == "timed out",
        )

    def _note_budget(self, response: httpx.Response) -> None:
        """HubSpot counts requests per 10 s window; when it says none remain, wait it out."""
        if response.headers.get("X-HubSpot-RateLimit-Remaining") == "0":
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
            wait = min(int(interval) / 1000 if interval.isdigit() else MAX_WAIT_SEC, MAX_WAIT_SEC)
            self._paused_until = max(self._paused_until, time.monotonic() + wait)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return min(float(value), MAX_WAIT_SEC)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    # HubSpot owner ids arrive as strings, but numbers have been seen in older payloads.
    return None if value is None or value == "" else str(value)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


def _epoch_ms(instant: datetime) -> int:
    return int(instant.astimezone(UTC).timestamp() * 1000)
