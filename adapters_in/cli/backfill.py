"""`pulse backfill hubspot`: count the emails and tickets the webhooks missed, from the CRM."""

from __future__ import annotations

import argparse
import getpass
import sys
import uuid
from datetime import date
from typing import Any

from dependency_injector.wiring import Provide, inject

from pulse.adapters_in.cli.outcome import failed, print_summary
from pulse.adapters_in.cli.progress import progress_bar
from pulse.core.control import Caller, Summary
from pulse.core.errors import PulseError, ValidationFailed
from pulse.core.ingest import IngestConfig
from pulse.core.reconcile import ReconcilePorts, Window, reconcile_hubspot

COMMANDS = ("backfill",)


def add_commands(sub: Any) -> None:
    backfill = sub.add_parser(
        "backfill", help="count what the webhooks missed, listed by the source's API"
    )
    hubspot = backfill.add_subparsers(dest="source", required=True, metavar="SOURCE").add_parser(
        "hubspot",
        help="emails and tickets created in a window (CRM search), through the ingest path",
    )
    hubspot.add_argument(
        "--since", type=date.fromisoformat, required=True, help="YYYY-MM-DD, business tz"
    )
    hubspot.add_argument(
        "--until", type=date.fromisoformat, help="YYYY-MM-DD, inclusive (default: now)"
    )
    hubspot.add_argument(
        "--dry-run", action="store_true", help="write nothing; list what is missing"
    )


async def dispatch(args: argparse.Namespace) -> int:
    try:
        summary = await backfill(args)
    except PulseError as exc:
        return failed(exc)
    print_summary(summary)
    # Something could not settle now (in flight elsewhere, a dependency down): run it again.
    return 1 if summary.counts.get("retry") or summary.counts.get("dead_lettered") else 0


@inject
async def backfill(
    args: argparse.Namespace,
    ports: ReconcilePorts = Provide["reconcile_ports"],
    config: IngestConfig = Provide["ingest_config"],
    settings: Any = Provide["settings"],
) -> Summary:
    now = ports.clock.now()
    if args.until is not None and args.until < args.since:
        raise ValidationFailed(f"--until {args.until} is before --since {args.since}")
    window = Window.of_dates(args.since, args.until, settings.zone, now)
    ttl_days, ttl_name = settings.ledger_ttl()
    if (now - window.since).days >= ttl_days:
        print(
            f"pulse: the window reaches past {ttl_name} ({ttl_days} days): the ledger no longer"
            " holds events counted before then, so they show as new; their rows carry the same"
            " EventKey and the measures count each key once",
            file=sys.stderr,
        )
    caller = Caller(f"cli:{getpass.getuser()}", f"cli:{uuid.uuid4().hex}")
    return await reconcile_hubspot(
        window, ports, config, caller, dry_run=args.dry_run, progress=progress_bar
    )
