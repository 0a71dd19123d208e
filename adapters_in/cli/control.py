"""`pulse sync|dates|metrics|shifts|admin`: the control plane from a shell, in-process or signed."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from dependency_injector.wiring import Provide, inject

from pulse.adapters_in.cli.outcome import failed, print_summary
from pulse.adapters_in.cli.progress import progress_bar
from pulse.core import control, history
from pulse.core.control import Caller, ControlConfig, ControlPorts, Summary
from pulse.core.dimensions import ShiftsDocument
from pulse.core.errors import PulseError, ValidationFailed

COMMANDS = ("sync", "dates", "metrics", "shifts", "admin")


def add_commands(sub: Any) -> None:
    def dry(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--dry-run", action="store_true", help="validate and show the diff; write nothing"
        )
        return parser

    sync = sub.add_parser("sync", help="rebuild a dimension from its source now")
    dry(
        sync.add_subparsers(dest="action", required=True).add_parser(
            "agents", help="DimAgent from the roster"
        )
    )
    dates = sub.add_parser("dates", help="the DimDate calendar window")
    dry(
        dates.add_subparsers(dest="action", required=True).add_parser(
            "extend", help="push missing dates"
        )
    )
    for name, what in (
        ("metrics", "monthly goals (DimMetric)"),
        ("shifts", "shift rules (DimShift)"),
    ):
        parser = sub.add_parser(name, help=f"apply {what} from a JSON file, list or roll back")
        actions = parser.add_subparsers(dest="action", required=True)
        apply = dry(actions.add_parser("apply", help="apply a JSON file as a new version"))
        apply.add_argument(
            "file",
            type=Path,
            metavar="FILE",
            help=f"a JSON file of {what}, as in docs/control-plane.md",
        )
        listing = actions.add_parser("history", help="list the applied versions")
        rollback = dry(
            actions.add_parser("rollback", help="apply version N again, as a new version")
        )
        if name == "metrics":
            listing.add_argument("month", help="YYYY-MM")
            rollback.add_argument("month", help="YYYY-MM")
        rollback.add_argument("--to", type=int, required=True, metavar="N", help="the version")
    admin = sub.add_parser("admin", help="call a running daemon's admin API, signed")
    call = admin.add_subparsers(dest="action", required=True).add_parser(
        "call", help="one signed request (ADMIN_HMAC_SECRET) to HOST:PORT or --url"
    )
    call.add_argument("method", type=str.upper, choices=("GET", "POST", "PUT"), help="HTTP method")
    call.add_argument("path", help="e.g. /admin/status or '/admin/dim-shift?dryRun=true'")
    call.add_argument("--data", type=Path, help="JSON body file")
    call.add_argument("--url", help="daemon base URL (default: http://HOST:PORT)")


async def dispatch(args: argparse.Namespace) -> int:
    if args.command == "admin":
        return await admin_call(args)
    try:
        if args.action == "history":
            return await show_history(args)
        summary = await run_use_case(args)
    except PulseError as exc:
        return failed(exc)
    print_summary(summary)
    return 0


@inject
async def run_use_case(
    args: argparse.Namespace,
    ports: ControlPorts = Provide["control_ports"],
    config: ControlConfig = Provide["control_config"],
) -> Summary:
    caller = Caller(f"cli:{getpass.getuser()}", f"cli:{uuid.uuid4().hex}")
    dry_run = args.dry_run
    if args.command == "sync":
        return await control.sync_agents(ports, config, caller, dry_run=dry_run)
    if args.command == "dates":
        return await control.extend_dates(
            ports, config, caller, dry_run=dry_run, progress=progress_bar
        )
    if args.command == "metrics" and args.action == "rollback":
        return await history.rollback_metrics(
            args.month, args.to, ports, config, caller, dry_run=dry_run
        )
    if args.command == "shifts" and args.action == "rollback":
        return await history.rollback_shifts(args.to, ports, config, caller, dry_run=dry_run)
    from pulse.adapters_in.http.admin.payloads import MetricsFile, ShiftsBody

    if args.command == "metrics":
        document = _parse_file(MetricsFile, args.file)
        return await control.apply_metrics(
            document.document(document.month), ports, config, caller, dry_run=dry_run
        )
    return await control.apply_shifts(
        _parse_file(ShiftsBody, args.file).document(), ports, config, caller, dry_run=dry_run
    )


@inject
async def show_history(
    args: argparse.Namespace, ports: ControlPorts = Provide["control_ports"]
) -> int:
    """`pulse metrics history MONTH`, `pulse shifts history`: one line per version, oldest first."""
    if args.command == "metrics":
        name = history.metrics_document(args.month)
    else:
        name = ShiftsDocument.name
    entries = await history.history(name, ports)
    if not entries:
        print(f"{name}: no version applied yet")
        return 0
    print(f"{name}: {len(entries)} version(s)")
    for entry in entries:
        print(f"  {entry.line()}")
    return 0


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _parse_file(model: type[Any], path: Path) -> Any:
    """The model from a JSON file; a problem names the file (not the API's `body`)."""
    from pulse.adapters_in.http.admin.payloads import parse  # pydantic models: loaded when used

    raw = _read(path)
    try:
        return parse(model, raw)
    except ValidationFailed as exc:
        raise ValidationFailed(f"{path}: {str(exc).removeprefix('body: ')}") from None


@inject
async def admin_call(args: argparse.Namespace, settings: Any = Provide["settings"]) -> int:
    if settings.admin_hmac_secret is None:
        print("pulse: ADMIN_HMAC_SECRET is not set; cannot sign", file=sys.stderr)
        return 2
    try:
        body = _read(args.data) if args.data else b""
    except ValidationFailed as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    base = args.url or f"http://{settings.host}:{settings.port}"
    from pulse.adapters_in.http.admin import auth as admin_auth

    headers = admin_auth.signed_headers(
        settings.admin_hmac_secret.get_secret_value(), args.method, args.path, body, time.time()
    )
    headers["Content-Type"] = "application/json"
    import httpx  # only this command calls out (cold start of the others)

    async with httpx.AsyncClient(timeout=60) as client:
        try:
            response = await client.request(
                args.method, base.rstrip("/") + args.path, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            print(f"pulse: cannot reach {base}: {type(exc).__name__}", file=sys.stderr)
            return 1
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text)
    return 0 if response.is_success else 1
