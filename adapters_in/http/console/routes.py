"""`/console`: the page, its sign-in by one-time link, and its two forms (ack, replay), each
behind the session cookie and a CSRF token, each change audited like the admin API's."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from aiohttp import web

from pulse.adapters_in.http.console import session as console_session
from pulse.adapters_in.http.console.page import grid, render
from pulse.adapters_in.http.console.session import Session, SignInRefused
from pulse.adapters_in.incidents import IncidentMonitor
from pulse.core import dead_letters
from pulse.core.calendar import date_key
from pulse.core.control import Caller, payload_hash
from pulse.core.dead_letters import DeadLetterFilter, DeadLetterPorts
from pulse.core.errors import TransientError, ValidationFailed
from pulse.core.incidents import UnknownIncident
from pulse.ports.clock import Clock
from pulse.ports.control import AuditLog, AuditRecord, NonceStore

log = logging.getLogger("pulse.console")

DailyRows = Callable[[int], Awaitable[list[dict[str, Any]]]]
RECENT_INCIDENTS = 20
LETTERS_SHOWN = 20
FILTER_FIELDS = ("source", "reason", "since", "until")
T = TypeVar("T")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True, slots=True)
class Console:
    secret: str
    nonces: NonceStore
    clock: Clock
    audit: AuditLog
    zone: tzinfo
    status: Callable[[], Awaitable[Mapping[str, Any]]]
    """`OperatorStatus.snapshot`: jobs, breakers, inbox."""
    incidents: IncidentMonitor | None = None
    letters: DeadLetterPorts | None = None
    daily_rows: DailyRows | None = None
    """The warehouse's `daily_metrics` (what `pulse report` reads); None with a cloud sink."""
    report_link: str = ""
    """Where the numbers are with a cloud sink (the Power BI or Fabric workspace)."""
    secure_cookie: bool = False

    def register(self, app: web.Application) -> None:
        app.router.add_get(console_session.LINK_PATH, self.sign_in)
        app.router.add_get("/console", self.page)
        app.router.add_post("/console/incidents/{id}/ack", self.ack)
        app.router.add_post("/console/dead-letters/preview", self.preview)
        app.router.add_post("/console/dead-letters/replay", self.replay)

    # --- routes -------------------------------------------------------------------------------

    async def sign_in(self, request: web.Request) -> web.Response:
        """A link from `pulse console-link`: valid for ten minutes, once; sets the session."""
        now = self.clock.now()
        try:
            nonce = console_session.link_nonce(self.secret, request.query.get("token", ""), now)
            if not await self.nonces.remember(f"console:{nonce}", console_session.LINK_TTL):
                raise SignInRefused(
                    "replayed_link", "this link was used already: ask for a new one"
                )
        except SignInRefused as exc:
            return await self._refused(request, Refused(401, exc.code, str(exc)))
        signed_in = console_session.new_session(now)
        await self._audited(request, signed_in, "console_sign_in", "", "applied")
        answer = web.Response(status=303, headers={"Location": "/console"})
        answer.set_cookie(
            console_session.COOKIE,
            signed_in.cookie(self.secret),
            max_age=int(console_session.SESSION_TTL.total_seconds()),
            path="/console",
            httponly=True,
            samesite="Strict",
            secure=self.secure_cookie,
        )
        return answer

    async def page(self, request: web.Request) -> web.Response:
        try:
            signed_in = self._session(request)
        except Refused as exc:
            return await self._refused(request, exc)
        return await self._page(signed_in)

    async def ack(self, request: web.Request) -> web.Response:
        try:
            signed_in, form = await self._form(request)
            incident_id = request.match_info["id"]
            resolve = form.get("resolve") == "true"
            monitor = self._incidents()
            try:
                incident = await monitor.acknowledge(
                    incident_id, self._who(request), resolve=resolve
                )
            except UnknownIncident as exc:
                raise Refused(404, "unknown_incident", str(exc)) from None
            except TransientError as exc:
                raise Refused(503, "unavailable", str(exc)) from None
        except Refused as exc:
            return await self._refused(request, exc)
        action = "resolve_incident" if resolve else "ack_incident"
        await self._audited(request, signed_in, action, incident_id, "applied")
        done = "resolved" if resolve else "acknowledged"
        return await self._page(signed_in, message=f"Incident {incident.signature} {done}.")

    async def preview(self, request: web.Request) -> web.Response:
        """What a replay by this filter would put back: how many, and the first of them."""
        try:
            signed_in, form = await self._form(request)
            where = _filter(form)
            shown = await _unless_down(dead_letters.preview(self._letters(), where))
        except Refused as exc:
            return await self._refused(request, exc)
        return await self._page(signed_in, preview=(where, shown, _filter_fields(form)))

    async def replay(self, request: web.Request) -> web.Response:
        """The replay a preview offered (same filter); audited by the use case itself."""
        try:
            signed_in, form = await self._form(request)
            where = _filter(form)
            summary = await _unless_down(
                dead_letters.replay(self._letters(), self._caller(request), where)
            )
        except Refused as exc:
            return await self._refused(request, exc)
        log.info(summary.line(), extra={"fields": summary.as_dict()})
        replayed = summary.counts["replayed"]
        return await self._page(
            signed_in, message=f"Replayed {replayed} dead letter(s): {where.describe()}."
        )

    # --- the page -----------------------------------------------------------------------------

    async def _page(self, signed_in: Session, **extra: Any) -> web.Response:
        now = self.clock.now()
        day = now.astimezone(self.zone).date()
        rows = await self.daily_rows(date_key(day)) if self.daily_rows is not None else None
        live = await self.status()
        html = render(
            "console.html",
            day=day,
            now=now.astimezone(UTC),
            grid=grid(rows) if rows is not None else None,
            report_link=self.report_link,
            live=live,
            incidents=await self._recent_incidents(),
            letters=await self._letters_shown(),
            csrf=signed_in.csrf(self.secret),
            message=extra.get("message", ""),
            preview=extra.get("preview"),
        )
        return _html(html)

    async def _recent_incidents(self) -> list[Any] | None:
        if self.incidents is None:
            return None
        try:
            return await self.incidents.store.recent(RECENT_INCIDENTS)
        except TransientError:
            return None

    async def _letters_shown(self) -> tuple[int, list[Any]] | None:
        if self.letters is None:
            return None
        try:
            shown = await dead_letters.preview(self.letters, limit=LETTERS_SHOWN)
        except TransientError:
            return None
        return shown.count, list(shown.first)

    # --- the guard ----------------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session:
        try:
            return console_session.session_from(
                self.secret, request.cookies.get(console_session.COOKIE), self.clock.now()
            )
        except SignInRefused as exc:
            raise Refused(401, exc.code, str(exc)) from None

    async def _form(self, request: web.Request) -> tuple[Session, Mapping[str, str]]:
        """The session, then the form's CSRF token: a change needs both."""
        signed_in = self._session(request)
        posted = await request.post()
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        if not signed_in.csrf_ok(self.secret, form.get("csrf", "")):
            raise Refused(403, "bad_csrf", "the form's CSRF token does not match this session")
        return signed_in, form

    def _incidents(self) -> IncidentMonitor:
        if self.incidents is None:
            raise Refused(404, "not_found", "incidents are not kept by this process")
        return self.incidents

    def _letters(self) -> DeadLetterPorts:
        if self.letters is None:
            raise Refused(404, "not_found", "dead letters are not kept by this process")
        return self.letters

    def _who(self, request: web.Request) -> str:
        return f"console@{request.remote or ''}"

    def _caller(self, request: web.Request) -> Caller:
        return Caller(who=self._who(request), owner=f"console:{request.remote or ''}")

    async def _audited(
        self, request: web.Request, signed_in: Session | None, action: str, what: str, outcome: str
    ) -> None:
        who = self._who(request)
        if signed_in is not None:
            who += f" session={signed_in.id[:8]}"
        await self.audit.append(
            AuditRecord(
                who=who,
                when=self.clock.now(),
                action=action,
                payload_hash=payload_hash(what),
                outcome=outcome,
            )
        )

    async def _refused(self, request: web.Request, refusal: Refused) -> web.Response:
        """Every refusal is audited (like the admin API's), then answered with a plain page."""
        action = f"{request.method} {request.path}"
        await self._audited(request, None, action, "", f"rejected: {refusal.code}")
        log.warning(
            "console request refused",
            extra={"fields": {"path": request.path, "reason": refusal.code}},
        )
        html = render("refused.html", status=refusal.status, message=str(refusal))
        return _html(html, refusal.status)


async def _unless_down(work: Awaitable[T]) -> T:
    try:
        return await work
    except TransientError as exc:
        raise Refused(503, "unavailable", str(exc)) from None


def _html(text: str, status: int = 200) -> web.Response:
    answer = web.Response(text=text, status=status, content_type="text/html")
    answer.headers["Cache-Control"] = "no-store"
    answer.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self';"
        " frame-ancestors 'none'"
    )
    answer.headers["X-Frame-Options"] = "DENY"
    return answer


def _filter_fields(form: Mapping[str, str]) -> dict[str, str]:
    return {k: form.get(k, "") for k in FILTER_FIELDS}


def _filter(form: Mapping[str, str]) -> DeadLetterFilter:
    """The form's source, reason and window (`since`/`until`: ISO 8601, no offset: UTC)."""
    try:
        return DeadLetterFilter(
            form.get("source") or None,
            form.get("reason") or None,
            _instant("since", form.get("since", "")),
            _instant("until", form.get("until", "")),
        )
    except ValidationFailed as exc:
        raise Refused(400, "invalid", str(exc)) from None


def _instant(name: str, text: str) -> datetime | None:
    if not text.strip():
        return None
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(400, "invalid", f"{name}: {text!r} is not an ISO 8601 instant") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
