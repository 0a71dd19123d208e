"""The aiohttp application: webhook edge, health, metrics and OpenAPI routes behind one middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from pulse.adapters_in.http import openapi
from pulse.adapters_in.http.health import Health
from pulse.adapters_in.http.middleware import edge_middleware, measured
from pulse.adapters_in.http.server import FAST_PATH
from pulse.adapters_in.http.webhooks import WebhookEdge

if TYPE_CHECKING:  # built only with ADMIN_HMAC_SECRET: their modules load then (cold start)
    from pulse.adapters_in.http.admin.api import AdminApi
    from pulse.adapters_in.http.console.routes import Console


def build_app(
    edge: WebhookEdge,
    health: Health,
    body_limit: int,
    admin: AdminApi | None = None,
    console: Console | None = None,
) -> web.Application:
    """`admin` and `console` are None while no ADMIN_HMAC_SECRET is set: their routes do not
    exist."""
    app = web.Application(
        middlewares=[measured(health.metrics), edge_middleware], client_max_size=body_limit
    )
    app.router.add_post("/webhooks/{source}", edge.receive)
    app[FAST_PATH] = edge.fast_path(health.metrics)  # the same answers, on PulseRunner
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics_text)
    app.router.add_get("/openapi.json", openapi.serve)
    if admin is not None:
        admin.register(app)
    if console is not None:
        console.register(app)
    return app
