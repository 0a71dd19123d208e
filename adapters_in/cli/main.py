"""The `pulse` command line: serve, report, check, dead letters. Dependencies come injected."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from dependency_injector.wiring import Provide, inject

from adapters_in.cli import control as cli_control
from adapters_in.cli import dataset as cli_dataset
from adapters_in.cli import incidents as cli_incidents
from adapters_in.cli import infra as cli_infra
from core.calendar import date_key
from ports.clock import Clock
from ports.health import Pingable
from ports.inbox import DeadLetters


class ReportSource(Protocol):
    async def daily_metrics(
        self, date_key: int, agent: str | None = None
    ) -> list[dict[str, Any]]: ...


class EffectiveSettings(Protocol):
    host: str
    port: int
    sink: str

    @property
    def zone(self) -> Any: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


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
    parser = argparse.ArgumentParser(
        prog="pulse",
        description="Pulse: Aloware and HubSpot activity into a Power BI / Fabric star schema.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the daemon (webhooks, workers, scheduler)")
    serve.add_argument("--host", help="address to bind (default: HOST setting)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT setting)")

    report = sub.add_parser("report", help="daily agent × metric counts from the local sink")
    report.add_argument(
        "--date", type=date.fromisoformat, help="YYYY-MM-DD (default: today, business tz)"
    )
    report.add_argument("--agent", help="only this AgentKey")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")

    sub.add_parser("check", help="print effective settings (secrets masked) and probe dependencies")

    dead = sub.add_parser("dead-letters", help="list or replay dead-lettered envelopes")
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    dl_list = dead_sub.add_parser("list", help="show dead letters with their reasons")
    dl_list.add_argument("--limit", type=int, default=50)
    dl_replay = dead_sub.add_parser("replay", help="put dead letters back into the inbox")
    dl_replay.add_argument("request_ids", nargs="*", help="only these (default: all)")
    cli_control.add_commands(sub)
    cli_dataset.add_commands(sub)
    cli_infra.add_commands(sub)
    cli_incidents.add_commands(sub)
    return parser


async def dispatch(args: argparse.Namespace) -> int:
    """Every command but `serve`, which `bootstrap.main` runs: the daemon's lifecycle."""
    if args.command == "report":
        return await report(args)
    if args.command == "check":
        return await check(args)
    if args.command in cli_control.COMMANDS:
        return await cli_control.dispatch(args)
    if args.command in cli_dataset.COMMANDS:
        return await cli_dataset.dispatch(args)
    if args.command in cli_infra.COMMANDS:
        return await cli_infra.dispatch(args)
    if args.command in cli_incidents.COMMANDS:
        return await cli_incidents.dispatch(args)
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
    if settings.sink != "local":
        print(
            f"pulse: report reads the local warehouse, and SINK={settings.sink} writes elsewhere: "
            "read the numbers where they land (the Power BI measures, or PulseDailyMetric() in "
            "the KQL database).",
            file=sys.stderr,
        )
        return 2
    day = args.date or clock.now().astimezone(settings.zone).date()
    rows = await warehouse.daily_metrics(date_key(day), args.agent)
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
    print("Effective settings (secrets masked):")
    for key, value in sorted(_flatten(settings.model_dump(mode="json")).items()):
        print(f"  {key.upper()} = {value}")
    print("Dependencies:")
    failed = 0
    for name, dep in dependencies.items():
        try:
            await asyncio.wait_for(dep.ping(), 10)
            print(f"  ok    {name}")
        except Exception as exc:
            failed += 1
            print(f"  FAIL  {name}: {type(exc).__name__}: {exc}")
    return 1 if failed else 0


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}__{key}" if prefix else key
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


@inject
async def dead_letters(
    args: argparse.Namespace,
    store: DeadLetters = Provide["dead_letters"],
) -> int:
    if args.action == "list":
        letters = await store.list(args.limit)
        for letter in letters:
            print(
                f"{letter.dead_at.isoformat()}  {letter.envelope.source:8}  "
                f"{letter.envelope.request_id}  attempts={letter.attempts}  {letter.reason}"
            )
        print(f"{len(letters)} dead letter(s)")
        return 0
    replayed = await store.replay(args.request_ids or None)
    print(f"replayed {replayed} envelope(s) into the inbox")
    return 0
