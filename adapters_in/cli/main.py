"""The `pulse` command line: serve, report, check, dead letters. Dependencies come injected."""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from dependency_injector.wiring import Provide, inject

from pulse.adapters_in.cli import backfill as cli_backfill
from pulse.adapters_in.cli import console as cli_console
from pulse.adapters_in.cli import control as cli_control
from pulse.adapters_in.cli import dataset as cli_dataset
from pulse.adapters_in.cli import incidents as cli_incidents
from pulse.adapters_in.cli import infra as cli_infra
from pulse.adapters_in.cli import ingest as cli_ingest
from pulse.adapters_in.cli import sign as cli_sign
from pulse.adapters_in.cli.arguments import base_parser
from pulse.core import dead_letters as letters
from pulse.core.calendar import date_key
from pulse.core.control import Caller
from pulse.core.dead_letters import DeadLetterFilter, DeadLetterPorts
from pulse.core.errors import ValidationFailed
from pulse.core.schema import Orphan
from pulse.ports.clock import Clock
from pulse.ports.health import Pingable


class ReportSource(Protocol):
    async def daily_metrics(
        self, date_key: int, agent: str | None = None, team: str | None = None
    ) -> list[dict[str, Any]]: ...


class IntegritySource(Protocol):
    async def orphans(self) -> list[Orphan]: ...


class EffectiveSettings(Protocol):
    host: str
    port: int
    sink: str

    @property
    def sink_names(self) -> tuple[str, ...]: ...

    @property
    def zone(self) -> Any: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...

    def unused(self) -> tuple[str, ...]: ...


REPORT_COLUMNS = (
    "Date",
    "AgentKey",
    "AgentName",
    "MetricID",
    "Count",
    "Goal",
    "Attainment",
    "Status",
)


def build_parser() -> argparse.ArgumentParser:
    parser, sub = base_parser()

    report = sub.add_parser("report", help="daily agent × metric counts from the local sink")
    report.add_argument("--date", type=day, help="YYYY-MM-DD (default: today, business tz)")
    report.add_argument("--agent", help="only this AgentKey")
    report.add_argument("--team", help="only this ring group (DimAgent RingGroupId)")
    report.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people, json or csv for tools (default: table)",
    )

    check_cmd = sub.add_parser(
        "check", help="print effective settings (secrets masked) and probe dependencies"
    )
    check_cmd.add_argument(
        "--all",
        action="store_true",
        help="print every setting, also those of the sinks and stores not configured",
    )
    check_cmd.add_argument(
        "--integrity",
        action="store_true",
        help="instead, list facts whose dimension row is missing in the local warehouse",
    )

    _add_dead_letters(sub)
    cli_control.add_commands(sub)
    cli_backfill.add_commands(sub)
    cli_ingest.add_commands(sub)
    cli_dataset.add_commands(sub)
    cli_infra.add_commands(sub)
    cli_incidents.add_commands(sub)
    cli_sign.add_commands(sub)
    cli_console.add_commands(sub)
    return parser


def _add_dead_letters(sub: Any) -> None:
    dead = sub.add_parser("dead-letters", help="list, replay or purge dead-lettered envelopes")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl_list = dead_sub.add_parser("list", help="show dead letters with their reasons, oldest first")
    dl_list.add_argument("--limit", type=int, default=50, help="show at most this many (50)")
    dl_list.add_argument("--offset", type=int, default=0, help="skip this many (paging)")
    dl_replay = dead_sub.add_parser(
        "replay", help="preview how many and which, then put them back into the inbox"
    )
    dl_replay.add_argument("request_ids", nargs="*", help="only these (default: all that match)")
    dl_replay.add_argument("--dry-run", action="store_true", help="preview only")
    dl_purge = dead_sub.add_parser(
        "purge", help="delete those dead longer than DEAD_LETTER_RETENTION_DAYS (nightly job)"
    )
    dl_purge.add_argument("--dry-run", action="store_true", help="count only")
    for filtered in (dl_list, dl_replay):
        filtered.add_argument("--source", help="aloware or hubspot")
        filtered.add_argument("--reason", help="text the reason contains (any case)")
        filtered.add_argument(
            "--since", type=instant, help="dead at or after (ISO 8601; no offset: UTC)"
        )
        filtered.add_argument(
            "--until", type=instant, help="dead before (ISO 8601; no offset: UTC)"
        )


async def dispatch(args: argparse.Namespace) -> int:
    """Every command but `serve`, which `bootstrap.main` runs: the daemon's lifecycle."""
    if args.command == "report":
        return await report(args)
    if args.command == "check":
        return await (integrity(args) if args.integrity else check(args))
    if args.command in cli_control.COMMANDS:
        return await cli_control.dispatch(args)
    if args.command in cli_backfill.COMMANDS:
        return await cli_backfill.dispatch(args)
    if args.command in cli_ingest.COMMANDS:
        return await cli_ingest.dispatch(args)
    if args.command in cli_dataset.COMMANDS:
        return await cli_dataset.dispatch(args)
    if args.command in cli_infra.COMMANDS:
        return await cli_infra.dispatch(args)
    if args.command in cli_incidents.COMMANDS:
        return await cli_incidents.dispatch(args)
    if args.command in cli_sign.COMMANDS:
        return await cli_sign.dispatch(args)
    if args.command in cli_console.COMMANDS:
        return await cli_console.dispatch(args)
    if args.command == "dead-letters":
        return await dead_letters(args)
    raise AssertionError(f"unhandled command {args.command}")


@inject
async def report(
    args: argparse.Namespace,
    warehouse: ReportSource = Provide["warehouse"],
    clock: Clock = Provide["clock"],
    settings: EffectiveSettings = Provide["settings"],
) -> int:
    if "local" not in settings.sink_names:
        print(
            f"pulse: report reads the local warehouse, and SINK={settings.sink} writes elsewhere: "
            "read the numbers where they land (the Power BI measures, or PulseDailyMetric() in "
            "the KQL database).",
            file=sys.stderr,
        )
        return 2
    day = args.date or clock.now().astimezone(settings.zone).date()
    rows = await warehouse.daily_metrics(date_key(day), args.agent, args.team)
    sys.stdout.write(render_report(rows, args.format, day))
    return 0


def render_report(rows: Sequence[Mapping[str, Any]], fmt: str, day: date) -> str:
    shaped = [_report_row(r) for r in rows]
    if fmt == "json":
        return json.dumps({"date": day.isoformat(), "rows": shaped}, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(shaped)
        return out.getvalue()
    if not shaped:
        return f"No activity or agents for {day.isoformat()}.\n"
    cells = [
        [
            str(r["Date"]),
            str(r["AgentName"] or r["AgentKey"]),
            str(r["MetricID"]),
            str(r["Count"]),
            _num(r["Goal"]),
            "—" if r["Attainment"] is None else f"{r['Attainment']:.0%}",
            r["Status"] or "—",
        ]
        for r in shaped
    ]
    header = ["Date", "Agent", "Metric", "Count", "Goal", "Attain.", "Status"]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(header)]
    right = {3, 4, 5}

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    rule = "  ".join("─" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)]) + "\n"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _report_row(row: Mapping[str, Any]) -> dict[str, Any]:
    day = row.get("Date")
    if isinstance(day, datetime):
        day = day.date()
    out = {k: row.get(k) for k in REPORT_COLUMNS}
    out["Date"] = str(day)[:10] if day is not None else None
    if out["Attainment"] is not None:
        out["Attainment"] = round(float(out["Attainment"]), 4)
    return out


@inject
async def check(
    args: argparse.Namespace,
    settings: EffectiveSettings = Provide["settings"],
    dependencies: Mapping[str, Pingable] = Provide["probes"],
) -> int:
    print_settings(settings, show_all=args.all)
    failed = 0
    unknown = getattr(args, "unknown_settings", [])
    if unknown:
        print("Problems:")
        for line in unknown:
            print(f"  ERROR  {line}")
        failed += len(unknown)
    print("Dependencies:")
    for name, dep in dependencies.items():
        try:
            await asyncio.wait_for(dep.ping(), 10)
            print(f"  ok    {name}")
        except Exception as exc:
            failed += 1
            print(f"  FAIL  {name}: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


MODE = ("inbox", "ledger", "sink", "roster", "crm")


def print_settings(settings: EffectiveSettings, *, show_all: bool) -> None:
    """The effective settings, secrets masked: those the configured mode reads, or all."""
    dumped = settings.model_dump(mode="json")
    values = {k.upper(): v for k, v in _flatten(dumped).items()}
    unused = () if show_all else settings.unused()
    shown = {k: v for k, v in values.items() if not _among(k, unused)}
    mode = " ".join(f"{k.upper()}={dumped[k]}" for k in MODE)
    if dumped.get("sinks"):
        mode = mode.replace(f"SINK={dumped['sink']}", f"SINKS={','.join(dumped['sinks'])}")
    hidden = len(values) - len(shown)
    more = f"; {hidden} more with --all" if hidden else ""
    print(f"Effective settings for {mode} (secrets masked{more}):")
    for key, value in sorted(shown.items()):
        print(f"  {key} = {value}")


def _among(name: str, unused: Sequence[str]) -> bool:
    return any(name == u or (u.endswith("_") and name.startswith(u)) for u in unused)


@inject
async def integrity(
    args: argparse.Namespace,
    warehouse: IntegritySource = Provide["warehouse"],
    settings: EffectiveSettings = Provide["settings"],
) -> int:
    """Exit 0 when every key a fact carries has its dimension row, 1 (listing them) if not."""
    if "local" not in settings.sink_names:
        print(
            f"pulse: check --integrity reads the local warehouse, and SINK={settings.sink}"
            " writes elsewhere.",
            file=sys.stderr,
        )
        return 2
    orphans = await warehouse.orphans()
    for orphan in orphans:
        print(f"  ORPHAN  {orphan}")
    facts = sum(o.facts for o in orphans)
    print(f"integrity: {len(orphans)} missing dimension row(s), {facts:,} fact(s) affected")
    return 1 if orphans else 0


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}__{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def day(text: str) -> date:
    """`--date`: YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date (YYYY-MM-DD)") from None


def instant(text: str) -> datetime:
    """`--since` / `--until`: ISO 8601; without an offset, UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@inject
async def dead_letters(
    args: argparse.Namespace,
    ports: DeadLetterPorts = Provide["dead_letter_ports"],
    settings: Any = Provide["settings"],
) -> int:
    caller = Caller(f"cli:{getpass.getuser()}", f"cli:{uuid.uuid4().hex}")
    if args.action == "purge":
        retention = timedelta(days=settings.dead_letter_retention_days)
        summary = await letters.purge_expired(ports, caller, retention, dry_run=args.dry_run)
        print(summary.line())
        return 0
    try:
        where = DeadLetterFilter(args.source, args.reason, args.since, args.until)
    except ValidationFailed as exc:
        print(f"pulse: {exc}", file=sys.stderr)
        return 2
    if args.action == "list":
        found = await ports.dead_letters.list(args.limit, where, args.offset)
        for letter in found:
            print(letters.describe_letter(letter))
        total = await ports.dead_letters.count(where)
        print(f"{len(found)} of {total} dead letter(s) ({where.describe()})")
        return 0
    unknown = await letters.missing(ports, args.request_ids, where) if args.request_ids else []
    if unknown:
        print(
            f"pulse: dead-letters replay: no dead letter {', '.join(unknown)}"
            f" ({where.describe()}); nothing replayed",
            file=sys.stderr,
        )
        return 2
    summary = await letters.replay(
        ports, caller, where, request_ids=args.request_ids or None, dry_run=args.dry_run
    )
    matched, replayed = summary.counts["matched"], summary.counts["replayed"]
    print(f"{matched} dead letter(s) match {summary.changes[0]}:")
    for line in summary.changes[1:]:
        print(f"  {line}")
    if matched > len(summary.changes) - 1:
        print(f"  … and {matched - len(summary.changes) + 1} more")
    if args.dry_run:
        print("dry run: nothing replayed")
    else:
        print(f"replayed {replayed} envelope(s) into the inbox")
    return 0
