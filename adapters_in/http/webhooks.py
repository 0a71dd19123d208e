"""`POST /webhooks/{source}` on aiohttp: the request handed to the edge's intake, answered 202."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from pulse.adapters_in.edge_load import EdgeLoad
from pulse.adapters_in.http.middleware import JsonError, request_id_of
from pulse.adapters_in.intake import Refused, Webhook, WebhookIntake, accepted_body, public_url


@dataclass(frozen=True, slots=True)
class WebhookEdge:
    intake: WebhookIntake
    public_base_url: str | None = None
    load: EdgeLoad | None = None
    """Counts the requests, so the workers can yield to a saturated edge."""

    def public_url(self, request: web.Request) -> str:
        """The URL the sender signed: configured public base + raw path, else what we received."""
        return public_url(self.public_base_url, request.raw_path, str(request.url))

    async def receive(self, request: web.Request) -> web.Response:
        if self.load is not None:
            self.load.entered()
        name = request.match_info["source"]
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            self.intake.source_for(name, headers)  # refused before reading a body it would not take
            body = await request.read()
            webhook = Webhook(
                name,
                request.method,
                self.public_url(request),
                headers,
                body,
                request_id_of(request),
            )
            rid = await self.intake.take(webhook)
        except Refused as exc:
            raise JsonError(exc.status, exc.message, exc.code) from None
        return accepted(rid)


def accepted(request_id: str) -> web.Response:
    return web.Response(status=202, body=accepted_body(request_id), content_type="application/json")
