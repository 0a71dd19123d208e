"""`pulse sign hubspot FILE`: a ready `curl` that posts FILE to the edge with a valid v3 signature."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from dependency_injector.wiring import Provide, inject
from yarl import URL

from pulse.adapters_in.sources import hubspot
from pulse.adapters_in.sources.base import SourceRejected, WebhookRequest
from pulse.ports.clock import Clock

COMMANDS = ("sign",)
WEBHOOK_PATH = "/webhooks/hubspot"
# What the daemon binds to is not an address a client can call: call it over loopback instead.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def add_commands(sub: Any) -> None:
    sign = sub.add_parser("sign", help="print a signed webhook request (curl) to try the edge")
    which = sign.add_subparsers(dest="source", required=True, metavar="SOURCE")
    hub = which.add_parser(
        "hubspot",
        help="a curl posting FILE with X-HubSpot-Signature-v3 for HUBSPOT_CLIENT_SECRET",
        description="Prints a curl command that posts FILE (its final newline dropped) to the"
        " daemon's"
        " /webhooks/hubspot with the headers HubSpot would send: X-HubSpot-Request-Timestamp"
        " (now) and X-HubSpot-Signature-v3 over POST + the public URL (PUBLIC_BASE_URL, else"
        " the URL called) + FILE + timestamp. The edge accepts it for HUBSPOT_MAX_AGE_SEC"
        " (5 minutes). Pipe it to sh to send it.",
    )
    hub.add_argument("file", type=Path, help="the body: a JSON array of HubSpot events")
    hub.add_argument(
        "--url", help="daemon base URL (default: PUBLIC_BASE_URL, else http://HOST:PORT)"
    )


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A HubSpot webhook request as curl will send it: where, which headers, which bytes."""

    url: str
    headers: dict[str, str]
    body: bytes

    def curl(self) -> str:
        """One shell command (POSIX quoting), one part per line."""
        parts = ["curl -sS -w '\\n' -X POST " + shlex.quote(self.url)]  # the answer, then a newline
        parts += [f"-H {shlex.quote(f'{k}: {v}')}" for k, v in self.headers.items()]
        parts.append("--data-binary " + shlex.quote(self.body.decode("utf-8")))
        return " \\\n  ".join(parts)


def sign_hubspot(
    body: bytes, secret: str | None, target: str, public_base_url: str | None, now_ms: int
) -> SignedRequest:
    """The request for `body` at `target`, signed as the edge will check it: over the public
    base URL + path when one is configured, else over the URL as the server will see it."""
    signed_url = (
        public_base_url.rstrip("/") + URL(target).raw_path_qs
        if public_base_url
        else str(URL(target))  # normalised as aiohttp will rebuild it (no default port)
    )
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        timestamp = str(now_ms)
        headers["X-HubSpot-Request-Timestamp"] = timestamp
        headers["X-HubSpot-Signature-v3"] = hubspot.signature_v3(
            secret, "POST", signed_url, body, timestamp
        )
    return SignedRequest(target, headers, body)


def base_url(given: str | None, public_base_url: str | None, host: str, port: int) -> str:
    if given:
        return given
    if public_base_url:
        return public_base_url
    host = _ANY_ADDRESS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def checked_body(path: Path) -> bytes:
    """FILE's bytes without its final newline (a one-line curl), refused (ValueError) when the
    edge would refuse them or a shell cannot carry them."""
    try:
        body = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    if "\0" in text:
        raise ValueError(f"{path}: holds a NUL byte, which no shell argument can carry")
    probe = WebhookRequest("POST", WEBHOOK_PATH, {}, body, 0)
    try:
        hubspot.HubSpotSource(None, auth="none").check(probe)
    except SourceRejected as exc:
        raise ValueError(f"{path}: the edge would answer {exc.status}: {exc}") from None
    return body


@inject
async def dispatch(
    args: argparse.Namespace,
    settings: Any = Provide["settings"],
    clock: Clock = Provide["clock"],
) -> int:
    try:
        body = checked_body(args.file)
    except ValueError as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    base = base_url(args.url, settings.public_base_url, settings.host, settings.port)
    secret = settings.hubspot_client_secret
    if settings.hubspot_auth == "none" or secret is None:
        secret_value = None
        print("pulse: HUBSPOT_AUTH=none: the edge takes it unsigned", file=sys.stderr)
    else:
        secret_value = secret.get_secret_value()
    now = clock.now().astimezone(UTC)
    request = sign_hubspot(
        body,
        secret_value,
        base.rstrip("/") + WEBHOOK_PATH,
        settings.public_base_url,
        int(now.timestamp() * 1000),
    )
    print(request.curl())
    if secret_value is not None:
        until = now + timedelta(seconds=settings.hubspot_max_age_sec)
        print(
            f"pulse: signed at {now:%H:%M:%S} UTC; the edge accepts it until {until:%H:%M:%S} UTC",
            file=sys.stderr,
        )
    return 0
