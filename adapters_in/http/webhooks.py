"""`POST /webhooks/{source}` on aiohttp: the request handed to the edge's intake, answered 202."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from pulse.adapters_in.edge_load import EdgeLoad
from pulse.adapters_in.http.middleware import JsonError, answer, request_id_of
from pulse.adapters_in.http.server import FastPath
from pulse.adapters_in.intake import Refused, Webhook, WebhookIntake, accepted_body, public_url
from pulse.adapters_in.metrics import Metrics

ROUTE = "/webhooks/{source}"
_PREFIX = "/webhooks/"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class WebhookEdge:
    intake: WebhookIntake
    public_base_url: str | None = None
    load: EdgeLoad | None = None
    """Counts the requests, so the workers can yield to a saturated edge."""

    def public_url(self, request: web.Request) -> str:
        """The URL the sender signed: configured public base + raw path, else what we received."""
        if self.public_base_url:
            return public_url(self.public_base_url, request.raw_path, "")
        return str(request.url)

    async def receive(self, request: web.Request) -> web.Response:
        """The route's handler, behind the app's middlewares."""
        return await self.take(request, request.match_info["source"])

    async def take(self, request: web.Request, name: str) -> web.Response:
        if self.load is not None:
            self.load.entered()
        # aiohttp's headers are case-insensitive: looked up by the lower-case names sources use.
        headers = request.headers
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

    def fast_path(self, metrics: Metrics) -> FastPath:
        """Every `POST /webhooks/<name>` answered without the router and the middleware chain,
        doing what they would do (`answer`, counted as `measured` counts): the edge's one hot
        path costs the loop less. A path the router must decide (percent-escapes, more segments, another
        method) gets None and goes the usual way."""

        def route(request: web.Request) -> Awaitable[web.StreamResponse] | None:
            if request.method != "POST" or "Expect" in request.headers:  # 100-continue: the app's
                return None
            name = webhook_name(request.raw_path)
            if name is None:
                return None
            return answer(request, partial(self.take, name=name), metrics, ROUTE)

        return route


def webhook_name(raw_path: str) -> str | None:
    """The source a plain `/webhooks/<name>` (query string aside) names, else None."""
    if not raw_path.startswith(_PREFIX):
        return None
    name = raw_path[len(_PREFIX) :].partition("?")[0]
    return name if _PLAIN_NAME.fullmatch(name) else None


def accepted(request_id: str) -> web.Response:
    return web.Response(status=202, body=accepted_body(request_id), content_type="application/json")
