"""`/admin/dead-letters`: list them by filter a page at a time, and replay by filter (signed)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from pulse.adapters_in.http.admin.payloads import parse
from pulse.adapters_in.http.middleware import JsonError
from pulse.core import dead_letters
from pulse.core.control import Caller
from pulse.core.dead_letters import DeadLetterFilter, DeadLetterPorts
from pulse.core.errors import TransientError, ValidationFailed
from pulse.ports.inbox import DeadLetter

log = logging.getLogger("pulse.admin")

MAX_PAGE = 500

T = TypeVar("T")

Authenticate = Callable[[web.Request], Awaitable[tuple[Caller, bytes]]]


class ReplayBody(BaseModel):
    """`POST /admin/dead-letters/replay`: which letters (`{}`: every one); `since`/`until` are
    ISO 8601 instants (no offset: UTC), e.g. an incident's opened and resolved times."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    requestIds: list[str] | None = Field(None, min_length=1, max_length=1000)


@dataclass(frozen=True, slots=True)
class DeadLetterRoutes:
    ports: DeadLetterPorts
    authenticate: Authenticate

    def register(self, app: web.Application) -> None:
        app.router.add_get("/admin/dead-letters", self.list_letters)
        app.router.add_post("/admin/dead-letters/replay", self.replay)

    async def list_letters(self, request: web.Request) -> web.Response:
        """`?source=&reason=&since=&until=&limit=&offset=`: oldest first, never a raw body."""
        await self.authenticate(request)
        query = request.query
        where = _filter(
            query.get("source"),
            query.get("reason"),
            _instant("since", query.get("since")),
            _instant("until", query.get("until")),
        )
        limit = min(MAX_PAGE, max(1, _whole("limit", query.get("limit", "50"))))
        offset = max(0, _whole("offset", query.get("offset", "0")))
        found, total = await _unless_down(self._page(where, limit, offset))
        return web.json_response(
            {
                "deadLetters": [_letter(x) for x in found],
                "total": total,
                "limit": limit,
                "offset": offset,
                "filter": where.describe(),
            }
        )

    async def replay(self, request: web.Request) -> web.Response:
        """Previews how many and which (`?dryRun=true` stops there), then replays; audited."""
        caller, body = await self.authenticate(request)
        try:
            payload: ReplayBody = parse(ReplayBody, body)
        except ValidationFailed as exc:
            raise JsonError(400, str(exc), "invalid") from None
        where = _filter(
            payload.source, payload.reason, _aware(payload.since), _aware(payload.until)
        )
        dry_run = request.query.get("dryRun", "false").lower() in ("true", "1", "yes")
        summary = await _unless_down(
            dead_letters.replay(
                self.ports, caller, where, request_ids=payload.requestIds, dry_run=dry_run
            )
        )
        log.info(summary.line(), extra={"fields": summary.as_dict()})
        return web.json_response(summary.as_dict())

    async def _page(
        self, where: DeadLetterFilter, limit: int, offset: int
    ) -> tuple[list[DeadLetter], int]:
        found = await self.ports.dead_letters.list(limit, where, offset)
        return found, await self.ports.dead_letters.count(where)


async def _unless_down(work: Awaitable[T]) -> T:
    try:
        return await work
    except TransientError as exc:
        raise JsonError(503, str(exc), "unavailable") from None


def _filter(
    source: str | None, reason: str | None, since: datetime | None, until: datetime | None
) -> DeadLetterFilter:
    try:
        return DeadLetterFilter(source or None, reason or None, since, until)
    except ValidationFailed as exc:
        raise JsonError(400, str(exc), "invalid") from None


def _instant(name: str, text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise JsonError(400, f"{name}: {text!r} is not an ISO 8601 instant", "invalid") from None


def _aware(instant: datetime | None) -> datetime | None:
    if instant is None or instant.tzinfo is not None:
        return instant
    return instant.replace(tzinfo=UTC)


def _whole(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise JsonError(400, f"{name}: must be a whole number", "invalid") from None


def _letter(letter: DeadLetter) -> Mapping[str, Any]:
    envelope = letter.envelope
    return {
        "requestId": envelope.request_id,
        "source": envelope.source,
        "receivedAt": envelope.received_at.isoformat(),
        "reason": letter.reason,
        "deadAt": letter.dead_at.isoformat(),
        "attempts": letter.attempts,
    }
