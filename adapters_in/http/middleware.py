"""One middleware for every request: request id, JSON errors, one access-log line."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pulse.adapters_in.intake import ERROR_CODES, error_body, request_id_from
from pulse.adapters_in.metrics import Metrics

log = logging.getLogger("pulse.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_HEADER = "Pulse"  # aiohttp's default names Python's and its own version
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def error_response(
    status: int, message: str, request_id: str, code: str | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(status, message, request_id, code),
        content_type="application/json",
        headers={"X-Request-Id": request_id, "Server": SERVER_HEADER},
    )


class JsonError(web.HTTPException):
    """Raise from a handler to answer `{"error": {...}}` with this status and code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        self.status_code = status
        super().__init__(reason=None, text=message)
        self.message = message
        self.code = code or ERROR_CODES.get(status, "error")


AccessLine = Callable[[str, str, str, int, float], None]
_access_line: AccessLine | None = None


def write_access_lines_with(writer: AccessLine | None) -> None:
    """Answered requests' lines (request id, method, path, status, ms) through `writer`, the
    daemon's JSON-lines writer, rather than a log record each (refusals still are records,
    at WARNING); None: records again."""
    global _access_line
    _access_line = writer


def request_id_of(request: web.Request) -> str:
    return str(request.get(REQUEST_ID, ""))


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    return await answer(request, handler)


async def answer(
    request: web.Request,
    handler: Handler,
    metrics: Metrics | None = None,
    route: str = "",
) -> web.StreamResponse:
    """The handler's response, or its refusal as a JSON error; the request id on both, and
    one access-log line. `edge_middleware` for every route; called directly for a webhook,
    it also counts and times the answer under `route` (as `measured` does for the others)."""
    started = time.perf_counter()
    rid = request_id_from(request.headers.get("X-Request-Id"))
    request[REQUEST_ID] = rid
    error = ""
    try:
        response = await handler(request)
        response.headers["X-Request-Id"] = rid
        response.headers["Server"] = SERVER_HEADER
    except JsonError as exc:
        error = exc.message
        response = error_response(exc.status_code, exc.message, rid, exc.code)
    except web.HTTPException as exc:
        if exc.status_code < 400:
            raise
        message = exc.text or exc.reason
        if exc.status_code == 413:
            message = f"body larger than {request.client_max_size} bytes"
        error = message
        response = error_response(exc.status_code, message, rid)
        if "Allow" in exc.headers:  # 405: the methods the route takes
            response.headers["Allow"] = exc.headers["Allow"]
    except Exception:
        log.exception(
            "handler crashed", extra={"fields": {"request_id": rid, "path": request.path}}
        )
        error = "handler crashed"
        response = error_response(500, "internal error; the request id is in the logs", rid)
    status = response.status
    seconds = time.perf_counter() - started
    ms = round(seconds * 1000, 2)
    if status < 400 and _access_line is not None:
        _access_line(rid, request.method, request.path, status, ms)
    elif status >= 400 or log.isEnabledFor(logging.INFO):
        fields = {
            "request_id": rid,
            "method": request.method,
            "path": request.path,
            "status": status,
            "ms": ms,
        }
        if error:
            fields["error"] = error
        if status >= 400:
            log.warning("request", extra={"fields": fields})
        else:
            log.info("request", extra={"fields": fields})
    if metrics is not None:
        count(metrics, route, request.method, status, seconds)
    return response


def count(metrics: Metrics, route: str, method: str, status: int, seconds: float) -> None:
    metrics.inc("http_requests_total", route=route, method=method, status=str(status))
    metrics.observe("http_request_duration_seconds", seconds, route=route)


def route_of(request: web.Request) -> str:
    """The route's template (`/webhooks/{source}`), never the raw path: a label must stay
    bounded whatever a client sends."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def measured(metrics: Metrics) -> Any:  # aiohttp's Middleware type is private
    """Outside `edge_middleware`: count and time every answer, errors included."""

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # a redirect `edge_middleware` lets through
            status = exc.status
            raise
        finally:
            count(metrics, route_of(request), request.method, status, time.perf_counter() - started)

    return measure
