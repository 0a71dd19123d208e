"""`GET /openapi.json`: the OpenAPI 3.1 document of Pulse's own HTTP API, kept beside the routes."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

DOCUMENT = "openapi.json"


@cache
def document() -> bytes:
    """The document as shipped in the package (pyproject's package-data), read once."""
    return resources.files(__package__).joinpath(DOCUMENT).read_bytes()


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=document(), content_type="application/json")
