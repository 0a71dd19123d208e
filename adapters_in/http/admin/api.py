"""`/admin/*`: the signed control-plane API over the same use cases as the CLI and scheduler."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from pulse.adapters_in.http.admin import auth as admin_auth
from pulse.adapters_in.http.admin.dead_letters import DeadLetterRoutes
from pulse.adapters_in.http.admin.payloads import (
    AckBody,
    MetricsBody,
    RollbackBody,
    ShiftsBody,
    parse,
)
from pulse.adapters_in.http.middleware import JsonError
from pulse.adapters_in.incidents import IncidentMonitor
from pulse.core import control, history
from pulse.core.control import (
    Busy,
    Caller,
    ControlConfig,
    ControlPorts,
    StaleVersion,
    Summary,
    UnknownVersion,
)
from pulse.core.dead_letters import DeadLetterPorts
from pulse.core.dimensions import MONTH, ShiftsDocument
from pulse.core.errors import PermanentError, TransientError, ValidationFailed
from pulse.core.incidents import UnknownIncident
from pulse.ports.control import AuditRecord, NonceStore

log = logging.getLogger("pulse.admin")

MAX_AUDIT = 500


@dataclass(frozen=True, slots=True)
class AdminApi:
    ports: ControlPorts
    config: ControlConfig
    nonces: NonceStore
    secret: str | admin_auth.AdminKeys
    """The HMAC key, or what gives the keys accepted now (current, then previous in a rotation)."""
    allowlist: Sequence[admin_auth.Network] = ()
    trusted_proxies: Sequence[admin_auth.Network] = ()
    status: Callable[[], Awaitable[Mapping[str, Any]]] | None = None
    """What `GET /admin/status` shows beside the applied documents: the jobs' last runs, the
    breakers, the inbox (`OperatorStatus.snapshot`)."""
    letters: DeadLetterPorts | None = None
    """`/admin/dead-letters` (list, replay by filter) when given."""
    incidents: IncidentMonitor | None = None

    def register(self, app: web.Application) -> None:
        app.router.add_post("/admin/dim-agent/sync", self.sync_agents)
        app.router.add_post("/admin/dim-date/extend", self.extend_dates)
        app.router.add_put("/admin/dim-metric/{month}", self.apply_metrics)
        app.router.add_get("/admin/dim-metric/{month}/versions", self.metrics_versions)
        app.router.add_post("/admin/dim-metric/{month}/rollback", self.rollback_metrics)
        app.router.add_put("/admin/dim-shift", self.apply_shifts)
        app.router.add_get("/admin/dim-shift/versions", self.shifts_versions)
        app.router.add_post("/admin/dim-shift/rollback", self.rollback_shifts)
        app.router.add_get("/admin/audit", self.audit)
        app.router.add_get("/admin/status", self.status_view)
        if self.letters is not None:
            DeadLetterRoutes(self.letters, self.authenticate).register(app)
        app.router.add_get("/admin/incidents", self.list_incidents)
        app.router.add_post("/admin/incidents/{id}/ack", self.ack_incident)

    # --- routes -------------------------------------------------------------------------------

    async def sync_agents(self, request: web.Request) -> web.Response:
        caller, _ = await self.authenticate(request)
        return await self._run(
            control.sync_agents(self.ports, self.config, caller, dry_run=_dry_run(request))
        )

    async def extend_dates(self, request: web.Request) -> web.Response:
        caller, _ = await self.authenticate(request)
        return await self._run(
            control.extend_dates(self.ports, self.config, caller, dry_run=_dry_run(request))
        )

    async def apply_metrics(self, request: web.Request) -> web.Response:
        caller, body = await self.authenticate(request)
        month = _month(request)
        payload = self._parsed(MetricsBody, body)
        if payload.month not in (None, month):
            raise JsonError(
                400, f"month: the body says {payload.month} but the path {month}", "invalid"
            )
        document = payload.document(month)
        return await self._run(
            control.apply_metrics(
                document, self.ports, self.config, caller, dry_run=_dry_run(request)
            )
        )

    async def apply_shifts(self, request: web.Request) -> web.Response:
        caller, body = await self.authenticate(request)
        document = self._parsed(ShiftsBody, body).document()
        return await self._run(
            control.apply_shifts(
                document, self.ports, self.config, caller, dry_run=_dry_run(request)
            )
        )

    async def metrics_versions(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return await self._versions(history.metrics_document(_month(request)))

    async def shifts_versions(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        return await self._versions(ShiftsDocument.name)

    async def rollback_metrics(self, request: web.Request) -> web.Response:
        caller, body = await self.authenticate(request)
        month = _month(request)
        to = self._parsed(RollbackBody, body).to
        return await self._run(
            history.rollback_metrics(
                month, to, self.ports, self.config, caller, dry_run=_dry_run(request)
            )
        )

    async def rollback_shifts(self, request: web.Request) -> web.Response:
        caller, body = await self.authenticate(request)
        to = self._parsed(RollbackBody, body).to
        return await self._run(
            history.rollback_shifts(to, self.ports, self.config, caller, dry_run=_dry_run(request))
        )

    async def audit(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        limit = _limit(request, 50)
        records = await self.ports.audit.recent(limit)
        return web.json_response({"records": [_record(r) for r in records]})

    async def status_view(self, request: web.Request) -> web.Response:
        await self.authenticate(request)
        documents = await self.ports.versions.get_all()
        live = dict(await self.status()) if self.status is not None else {}
        return web.json_response(
            {
                **live,
                "documents": [
                    {
                        "document": d.document,
                        "version": d.version,
                        "appliedAt": d.applied_at.isoformat(),
                    }
                    for d in documents
                ],
            }
        )

    async def list_incidents(self, request: web.Request) -> web.Response:
        """`?state=open|resolved` (default: both), `?limit=` (newest first)."""
        await self.authenticate(request)
        monitor = self._incidents()
        state = request.query.get("state", "")
        if state not in ("", "open", "resolved"):
            raise JsonError(400, "state: open or resolved", "invalid")
        limit = _limit(request, 50)
        found = await monitor.store.recent(MAX_AUDIT)
        shown = [i for i in found if not state or i.state.value == state][:limit]
        return web.json_response({"incidents": [i.as_dict() for i in shown]})

    async def ack_incident(self, request: web.Request) -> web.Response:
        """Body `{}` or `{"resolve": true}`: acknowledge, and resolve it now."""
        caller, body = await self.authenticate(request)
        monitor = self._incidents()
        resolve = self._parsed(AckBody, body or b"{}").resolve
        try:
            incident = await monitor.acknowledge(
                request.match_info["id"], caller.who, resolve=resolve
            )
        except UnknownIncident as exc:
            raise JsonError(404, str(exc), "unknown_incident") from None
        except TransientError as exc:
            raise JsonError(503, str(exc), "unavailable") from None
        log.info("incident acknowledged", extra={"fields": {"id": incident.id, "by": caller.who}})
        return web.json_response(incident.as_dict())

    def _incidents(self) -> IncidentMonitor:
        if self.incidents is None:
            raise JsonError(404, "incidents are not kept by this process", "not_found")
        return self.incidents

    # --- the guard ----------------------------------------------------------------------------

    async def authenticate(self, request: web.Request) -> tuple[Caller, bytes]:
        """Allow-list, signature, window, fresh nonce; every refusal is audited, then raised."""
        body = await request.read()
        peer = request.remote or ""
        ip = admin_auth.client_ip(
            peer, request.headers.get("X-Forwarded-For"), self.trusted_proxies
        )
        now = self.ports.clock.now()
        try:
            admin_auth.check_allowed(ip, self.allowlist)
            signed = admin_auth.verify(
                self.secret if isinstance(self.secret, str) else self.secret(),
                request.headers,
                request.method,
                request.raw_path,
                body,
                now.timestamp(),
            )
            if not await self.nonces.remember(signed.nonce, admin_auth.NONCE_TTL):
                raise admin_auth.AuthRejected(401, "replayed_nonce", "nonce already used")
        except admin_auth.AuthRejected as exc:
            await self.ports.audit.append(
                AuditRecord(
                    who=f"admin@{ip}",
                    when=now,
                    action=f"{request.method} {request.path}",
                    payload_hash=control.payload_hash(body.decode("utf-8", "replace")),
                    outcome=f"rejected: {exc.code}",
                )
            )
            log.warning(
                "admin request rejected",
                extra={"fields": {"ip": ip, "path": request.path, "reason": exc.code}},
            )
            raise JsonError(exc.status, str(exc), exc.code) from None
        return Caller(who=f"admin@{ip}", owner=f"admin:{uuid.uuid4().hex}"), body

    async def _versions(self, document: str) -> web.Response:
        entries = await history.history(document, self.ports)
        return web.json_response({"document": document, "versions": [e.as_dict() for e in entries]})

    def _parsed(self, model: type[Any], body: bytes) -> Any:
        try:
            return parse(model, body)
        except ValidationFailed as exc:
            raise JsonError(400, str(exc), "invalid") from None

    async def _run(self, use_case: Awaitable[Summary]) -> web.Response:
        try:
            summary = await use_case
        except StaleVersion as exc:
            raise JsonError(409, str(exc), "stale_version") from None
        except UnknownVersion as exc:
            raise JsonError(404, str(exc), "unknown_version") from None
        except ValidationFailed as exc:
            raise JsonError(400, str(exc), "invalid") from None
        except Busy as exc:
            raise JsonError(409, str(exc), "busy") from None
        except TransientError as exc:
            raise JsonError(503, str(exc), "unavailable") from None
        except PermanentError as exc:
            raise JsonError(502, str(exc), "upstream_refused") from None
        log.info(summary.line(), extra={"fields": summary.as_dict()})
        return web.json_response(summary.as_dict())


def _limit(request: web.Request, default: int) -> int:
    try:
        return min(MAX_AUDIT, max(1, int(request.query.get("limit", str(default)))))
    except ValueError:
        raise JsonError(400, "limit: must be a whole number", "invalid") from None


def _month(request: web.Request) -> str:
    month = request.match_info["month"]
    if not MONTH.match(month):
        raise JsonError(400, f"month: {month!r} is not a month as YYYY-MM", "invalid")
    return month


def _dry_run(request: web.Request) -> bool:
    return request.query.get("dryRun", "false").lower() in ("true", "1", "yes")


def _record(record: AuditRecord) -> dict[str, Any]:
    return {
        "who": record.who,
        "when": record.when.isoformat(),
        "action": record.action,
        "payloadHash": record.payload_hash,
        "outcome": record.outcome,
        "version": record.version,
        "counts": dict(record.counts),
        "durationSec": record.duration_sec,
    }
