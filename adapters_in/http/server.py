"""The HTTP server under the app: protocol-level errors answered as JSON, never logged raw.

aiohttp answers a request it cannot parse (a NUL in a header, an 8 KiB+ header line, a bad
chunk size, obs-fold) itself, before any middleware: a plain-text 400 whose body echoes the
offending line, logged at ERROR with that line, which may be an `Authorization` header with
a live secret. `PulseRunner` gives each connection a handler that answers those with the
same JSON error every other refusal gets, with a request id, and logs only the error class."""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import web, web_protocol, web_request, web_server

from pulse.adapters_in.http.middleware import error_response
from pulse.adapters_in.intake import new_request_id

log = logging.getLogger("pulse.http")

FastPath = Callable[[web.Request], Awaitable[web.StreamResponse] | None]
FAST_PATH: web.AppKey[FastPath] = web.AppKey("fast_path")
"""Set on an app: asked first for each request, it answers it (an awaitable) or passes (None),
and the router and middlewares take it."""
PEER_HEADER = "X-Pulse-Peer"
"""The caller's address, as an edge process that passed the request on saw it: believed only
on a Unix socket (this daemon's own, in a folder only its user can open)."""


class _JsonErrorHandler(web_protocol.RequestHandler):
    def handle_error(
        self,
        request: web_request.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        rid = new_request_id()
        kind = type(exc).__name__ if exc is not None else "error"
        # Neither `message` nor `str(exc)` is logged or sent: both may quote a raw header line.
        log.warning(
            "malformed request",
            extra={"fields": {"request_id": rid, "status": status, "error": kind}},
        )
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; closing the connection")
        if status >= 500:
            text = "internal error; the request id is in the logs"
        else:
            text = f"malformed HTTP request ({kind}): {HTTPStatus(status).phrase.lower()}"
        response = error_response(status, text, rid)
        response.force_close()
        return response


class _JsonErrorServer(web_server.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class PulseRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer protocol errors as JSON (see the module doc).

    Bodies are never decompressed: a webhook is authenticated on the bytes as sent, and the
    edge refuses a `Content-Encoding` with a 415 that says so."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        super().__init__(app, auto_decompress=False, **kwargs)

    async def _make_server(self) -> web_server.Server:
        server = await super()._make_server()
        # The app's own Server, built by aiohttp with every setting; only its per-connection
        # handler class changes (`_JsonErrorServer` adds no state).
        server.__class__ = _JsonErrorServer
        server.request_handler = _dispatch(self.app.get(FAST_PATH), server.request_handler)
        return server


def _dispatch(
    fast: FastPath | None, handler: Callable[[Any], Awaitable[web.StreamResponse]]
) -> Any:
    async def handle(request: web.Request) -> web.StreamResponse:
        if fast is not None and (answering := fast(request)) is not None:
            return await answering
        peer = request.headers.get(PEER_HEADER)
        if peer is not None and _on_unix_socket(request):
            request = request.clone(remote=peer)
        return await handler(request)

    return handle


def _on_unix_socket(request: web.BaseRequest) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX
