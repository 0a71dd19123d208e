"""The ring-group roster from Aloware's API, cached for the gate; the token never reaches a log."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx

from pulse.core.errors import PermanentError, TransientError
from pulse.core.model import RosterAgent, RosterSnapshot
from pulse.ports.clock import Clock

log = logging.getLogger("pulse.aloware")

AVAILABILITY = "/api/v1/webhook/ring-group/availability"
_TOKEN = re.compile(r"(api_token=)[^&\s'\"]*")


def redact(text: str) -> str:
    """Aloware takes its token in the query string, so any URL we print must lose it."""
    return _TOKEN.sub(r"\1***", text)


class _RedactTokens(logging.Filter):
    """httpx logs every request URL at INFO: scrub the token before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg = redact(record.getMessage())
            record.args = None
        else:
            record.msg = redact(str(record.msg))
        return True


_FILTER = _RedactTokens()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_FILTER)


class AlowareRoster:
    """Roster (cached snapshot), RosterSource (fresh fetch) and RosterCache (sync refreshes it)
    over one or more ring groups (a call center has several: RING_GROUP_ID=8465,8470).

    When Aloware cannot answer, the gate keeps the last roster it had rather than stop counting.
    An agent in several ring groups belongs to the first one listed.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        token: str | Callable[[], str | None],
        ring_group_id: str | Sequence[str],
        clock: Clock,
        *,
        ttl: timedelta = timedelta(minutes=15),
        retries: int = 3,
        backoff_sec: float = 0.5,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + AVAILABILITY
        self._token = token  # a callable is read per request: a rotated token needs no restart
        groups = (ring_group_id,) if isinstance(ring_group_id, str) else tuple(ring_group_id)
        self.ring_group_ids = groups
        self.ring_group_id = ",".join(groups)
        self._clock = clock
        self._ttl = ttl
        self._retries = retries
        self._backoff = backoff_sec
        self._cached: RosterSnapshot | None = None
        self._cached_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> RosterSnapshot:
        async with self._lock:  # one fetch for every worker that finds the cache cold
            now = self._clock.now()
            if self._cached is not None and self._cached_at and now - self._cached_at < self._ttl:
                return self._cached
            try:
                fresh = await self.fetch()
            except (TransientError, PermanentError) as exc:
                if self._cached is None:
                    raise
                log.warning("aloware roster unavailable; keeping the last one: %s", exc)
                self._cached_at = now - self._ttl + timedelta(minutes=1)  # try again in a minute
                return self._cached
            self._store(fresh)
            return fresh

    async def refresh(self, snapshot: RosterSnapshot) -> None:
        self._store(snapshot)

    def _store(self, snapshot: RosterSnapshot) -> None:
        self._cached, self._cached_at = snapshot, self._clock.now()

    async def ping(self) -> None:
        await self.fetch()

    async def fetch(self) -> RosterSnapshot:
        every: dict[str, RosterAgent] = {}
        for group in self.ring_group_ids:
            for agent in await self._fetch_group(group):
                every.setdefault(agent.agent_id, agent)
        return RosterSnapshot(agents=tuple(every.values()), ring_group_id=self.ring_group_id)

    async def _fetch_group(self, group: str) -> list[RosterAgent]:
        token = self._token if isinstance(self._token, str) else self._token() or ""
        params = {"ring_group_id": group, "api_token": token}
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = await self._client.get(self._url, params=params)
            except httpx.TimeoutException:
                problem = "timed out"
            except httpx.TransportError as exc:
                problem = f"unreachable ({type(exc).__name__})"
            else:
                if response.status_code in (401, 403):
                    raise PermanentError(
                        f"Aloware refused the API token ({response.status_code}):"
                        " check ALOWARE_API_TOKEN"
                    )
                if response.status_code == 429 or response.status_code >= 500:
                    problem = f"answered {response.status_code}"
                    if not last:
                        await asyncio.sleep(_retry_after(response) or self._delay(attempt))
                        continue
                elif response.status_code >= 400:
                    raise PermanentError(
                        f"Aloware answered {response.status_code} for ring group"
                        f" {group}: {redact(response.text[:200])}"
                    )
                else:
                    return self._agents(response, group)
            if not last:
                await asyncio.sleep(self._delay(attempt))
        raise TransientError(f"Aloware roster {problem} after {self._retries + 1} attempt(s)")

    def _delay(self, attempt: int) -> float:
        return float(self._backoff * 2**attempt)

    def _agents(self, response: httpx.Response, group: str) -> list[RosterAgent]:
        try:
            document: Any = response.json()
        except ValueError:
            raise TransientError("Aloware roster: the answer is not JSON") from None
        results = document.get("test_results") if isinstance(document, dict) else None
        if not isinstance(results, list):
            raise PermanentError("Aloware roster: the answer has no test_results list")
        agents = []
        for entry in results:
            raw_id = entry.get("id") if isinstance(entry, dict) else None
            # Aloware sends ids as numbers or strings; the roster holds strings.
            if raw_id is None or isinstance(raw_id, bool) or not str(raw_id).strip():
                continue
            agent_id = str(raw_id).strip()
            name = str(entry.get("name") or "").strip() or agent_id
            email = entry.get("email") if isinstance(entry.get("email"), str) else None
            agents.append(RosterAgent(agent_id, name, email or None, group))
        return agents


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return min(float(value), 30.0) if value.replace(".", "", 1).isdigit() else None
