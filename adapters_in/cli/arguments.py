"""The arguments every command shares, and `serve`'s: what `pulse serve` parses without
importing the other commands' modules (a few hundredths of its cold start, issue 15)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any, NoReturn


def base_parser() -> tuple[argparse.ArgumentParser, Any]:
    """`pulse` with its global options and the `serve` command; the subparsers to add to."""
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="Pulse: Aloware and HubSpot activity into a Power BI / Fabric star schema.",
    )
    parser.add_argument("--version", action=_Version, help="show program's version number and exit")
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="settings file (default: PULSE_ENV_FILE, else ./.env); a relative DATA_DIR in it"
        " is relative to its folder",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # none: print the help
    serve = sub.add_parser("serve", help="run the daemon (webhooks, workers, scheduler)")
    serve.add_argument("--host", help="address to bind (default: HOST setting)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT setting)")
    serve.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="processes answering webhooks on the port (default: EDGE_PROCESSES setting)",
    )
    # an extra edge process, started by the first one (bootstrap/edge_processes.py)
    serve.add_argument("--edge-child", metavar="DIR", help=argparse.SUPPRESS)
    serve.add_argument("--edge-index", type=int, default=0, help=argparse.SUPPRESS)
    return parser, sub


def serve_only(argv: Sequence[str]) -> bool:
    """The command is `serve`, and nothing before it asks for the whole program's help or
    version: `base_parser()` parses `argv` exactly as the full parser would."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--env-file":
            next(tokens, None)
        elif token.startswith("--env-file="):
            continue
        else:
            return token == "serve"
    return False


def version() -> str:
    try:
        return metadata.version("pulse-etl")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


class _Version(argparse.Action):
    """argparse's `version` action, reading the version only when asked (a metadata scan)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        sys.stdout.write(f"{parser.prog} {version()}\n")  # stdout, as argparse's own
        parser.exit()
