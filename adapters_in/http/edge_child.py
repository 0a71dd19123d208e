"""An extra edge process (EDGE_PROCESSES > 1): it answers webhooks on the shared port and
hands every other request to the daemon's first process over that process's Unix socket.

The kernel spreads the port's connections over every process listening on it (SO_REUSEPORT),
so a `/metrics`, `/readyz`, admin or console request can reach an edge process: it is passed
on whole (method, raw path, headers, body) and the answer passed back, so each is answered by
the one process that runs the workers, the scheduler and the admin API. The caller's address
travels in `X-Pulse-Peer`, which the first process reads only on its Unix socket."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from aiohttp import ClientError, ClientSession, ClientTimeout, UnixConnector, web

from pulse.adapters_in.http.middleware import error_response
from pulse.adapters_in.http.server import FAST_PATH, PEER_HEADER
from pulse.adapters_in.http.webhooks import WebhookEdge
from pulse.adapters_in.intake import request_id_from
from pulse.adapters_in.metrics import Metrics

log = logging.getLogger("pulse.http")

# Headers of one connection, not of the request: never passed on (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",  # set again for the body as passed on
        PEER_HEADER.lower(),  # only this process may say who the caller is
    }
)
# No total: a long admin call takes as long as it would on the first process directly.
FORWARD_TIMEOUT = ClientTimeout(total=None, sock_connect=5)


class Forwarder:
    """Passes a request to the first process's Unix socket and its answer back."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._session: ClientSession | None = None

    def _client(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(
                connector=UnixConnector(path=self.socket_path),
                timeout=FORWARD_TIMEOUT,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
            )
        return self._session

    async def forward(self, request: web.Request) -> web.StreamResponse:
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        headers.append((PEER_HEADER, request.remote or ""))
        try:
            body = await request.read()
            async with self._client().request(
                request.method,
                f"http://pulse{request.raw_path}",
                headers=headers,
                data=body,
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                kept = [(k, v) for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP]
                return web.Response(status=answer.status, headers=kept, body=payload)
        except web.HTTPException as exc:  # the body was over the limit
            return error_response(exc.status_code, exc.text or exc.reason, _request_id(request))
        except (ClientError, OSError, TimeoutError) as exc:
            rid = _request_id(request)
            log.warning(
                "could not pass a request to the first process",
                extra={"fields": {"request_id": rid, "path": request.path, "error": repr(exc)}},
            )
            return error_response(502, "the daemon's first process did not answer; retry", rid)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _request_id(request: web.Request) -> str:
    return request_id_from(request.headers.get("X-Request-Id"))


def build_child_app(
    edge: WebhookEdge, metrics: Metrics, forwarder: Forwarder, body_limit: int
) -> web.Application:
    """Webhooks answered here (the fast path); everything else passed on."""
    webhooks = edge.fast_path(metrics)

    def route(request: web.Request) -> Awaitable[web.StreamResponse]:
        return webhooks(request) or forwarder.forward(request)

    app = web.Application(client_max_size=body_limit)
    app[FAST_PATH] = route
    return app


def build_metrics_app(metrics: Metrics) -> web.Application:
    """This process's own counts, on its private socket: the first process adds them in."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", page)
    return app
