"""`pulse console-link`: a one-time sign-in URL for the operator console (/console)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC
from typing import Any

from dependency_injector.wiring import Provide, inject

from pulse.adapters_in.cli.sign import base_url
from pulse.ports.clock import Clock

COMMANDS = ("console-link",)


def add_commands(sub: Any) -> None:
    link = sub.add_parser(
        "console-link",
        help="print a one-time sign-in URL for the operator console (/console)",
        description="Prints a URL that signs one browser in to /console: HMAC-signed with"
        " ADMIN_HMAC_SECRET, valid for ten minutes and once. The console is off without that"
        " secret.",
    )
    link.add_argument(
        "--url", help="daemon base URL (default: PUBLIC_BASE_URL, else http://HOST:PORT)"
    )


@inject
async def dispatch(
    args: argparse.Namespace,
    settings: Any = Provide["settings"],
    clock: Clock = Provide["clock"],
) -> int:
    if settings.admin_hmac_secret is None:
        print("pulse: the console is off: set ADMIN_HMAC_SECRET to turn it on", file=sys.stderr)
        return 2
    base = base_url(args.url, settings.public_base_url, settings.host, settings.port)
    from pulse.adapters_in.http.console import session as console_session

    link = console_session.one_time_link(
        settings.admin_hmac_secret.get_secret_value(), base, clock.now()
    )
    print(link.url)
    until = link.expires_at.astimezone(UTC)
    print(f"pulse: valid once, until {until:%H:%M:%S} UTC", file=sys.stderr)
    return 0
