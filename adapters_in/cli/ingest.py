"""`pulse ingest FILE`: replay captured raw webhook bodies (JSON lines) through the inbox."""

from __future__ import annotations

import argparse
import getpass
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dependency_injector.wiring import Provide, inject

from pulse.adapters_in.cli.outcome import failed, print_summary
from pulse.adapters_in.cli.progress import progress_bar
from pulse.adapters_in.sources.base import SourceRejected, WebhookRequest, WebhookSource
from pulse.core.control import Summary, payload_hash
from pulse.core.errors import EnvelopeTooLarge, PulseError
from pulse.core.ingest import IngestConfig, IngestPorts, Status, preview
from pulse.core.model import Delivery, IngestEnvelope
from pulse.core.records import AuditRecord
from pulse.ports.clock import Clock
from pulse.ports.control import AuditLog
from pulse.ports.inbox import Inbox

COMMANDS = ("ingest",)
FORECAST_CHUNK = 100  # envelopes per preview: one roster read and one ledger read each
SHOWN_REFUSALS = 20

# What the preview of an event says it will be once a worker takes it.
_FORECAST = {
    Status.ACCEPTED: "new",
    Status.DUPLICATE: "already",
    Status.GATED: "gated",
    Status.IGNORED: "ignored",
    Status.DEAD_LETTERED: "unparseable",
    Status.RETRY: "unknown",
}


def add_commands(sub: Any) -> None:
    ingest = sub.add_parser(
        "ingest",
        help="replay raw webhook bodies from a JSON-lines file through the inbox",
        description='One line per webhook: {"source": "aloware"|"hubspot", "body": {...},'
        ' "received_at": "ISO-8601" (optional)}. Each body is checked as the edge checks it'
        " (not authenticated: the file is the operator's), queued, and counted by the"
        " workers; the ledger makes what was counted already a duplicate.",
    )
    ingest.add_argument("file", type=Path, help="JSON lines, e.g. captured by a load balancer")
    ingest.add_argument(
        "--dry-run", action="store_true", help="check and forecast every line; queue nothing"
    )


@dataclass
class Replay:
    """A file's envelopes, the lines refused, and the forecast of their events."""

    name: str
    lines: int = 0
    envelopes: list[IngestEnvelope] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)
    forecast: Counter[str] = field(default_factory=Counter)

    def counts(self, queued: int) -> dict[str, int]:
        counts = {"lines": self.lines, "queued": queued, "refused": len(self.refused)}
        counts.update(sorted(self.sources.items()))  # bodies per source
        for name in ("new", "already", "gated", "ignored", "unparseable", "unknown"):
            if self.forecast[name] or name in ("new", "already", "gated", "ignored"):
                counts[name] = self.forecast[name]
        return counts


async def dispatch(args: argparse.Namespace) -> int:
    try:
        summary = await ingest(args)
    except OSError as exc:
        print(f"pulse: {args.file}: cannot read it ({exc.strerror or exc})", file=sys.stderr)
        return 2
    except PulseError as exc:
        return failed(exc)
    print_summary(summary)
    return 1 if summary.counts.get("refused") else 0


@inject
async def ingest(
    args: argparse.Namespace,
    inbox: Inbox = Provide["inbox"],
    ports: IngestPorts = Provide["ingest_ports"],
    config: IngestConfig = Provide["ingest_config"],
    sources: Mapping[str, WebhookSource] = Provide["sources"],
    audit: AuditLog = Provide["audit_log"],
    clock: Clock = Provide["clock"],
    settings: Any = Provide["settings"],
) -> Summary:
    started = clock.now()
    raw = args.file.read_bytes()
    limit = min(settings.body_limit_bytes, getattr(inbox, "max_body_bytes", sys.maxsize))
    replay = read_lines(args.file.name, raw, sources, started, limit)
    await forecast(replay, ports, config)
    queued = 0 if args.dry_run else await queue(replay, inbox)
    summary = Summary(
        action=f"ingest {args.file.name}",
        outcome="dry_run" if args.dry_run else "queued",
        dry_run=args.dry_run,
        counts=replay.counts(queued),
        duration_sec=(clock.now() - started).total_seconds(),
        changes=_shown(replay.refused),
    )
    await audit.append(
        AuditRecord(
            who=f"cli:{getpass.getuser()}",
            when=clock.now(),
            action="ingest_file",
            payload_hash=payload_hash(raw.decode("utf-8", "replace")),
            outcome=summary.outcome,
            counts=dict(summary.counts),
            duration_sec=summary.duration_sec,
        )
    )
    return summary


def read_lines(
    name: str, raw: bytes, sources: Mapping[str, WebhookSource], now: datetime, limit: int
) -> Replay:
    """Every non-blank line as the envelope the edge would have stored, or why it is refused."""
    replay = Replay(name)
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        replay.lines += 1
        try:
            envelope = _envelope(line, sources, now, limit, f"{name}:{number}")
        except (SourceRejected, ValueError) as exc:
            replay.refused.append(f"line {number}: {exc}")
            continue
        replay.envelopes.append(envelope)
    return replay


def _envelope(
    line: bytes, sources: Mapping[str, WebhookSource], now: datetime, limit: int, where: str
) -> IngestEnvelope:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        raise ValueError("not a JSON object") from None
    if not isinstance(record, dict) or "body" not in record:
        raise ValueError('expected {"source": ..., "body": ...}')
    source = sources.get(str(record.get("source")))
    if source is None:
        raise ValueError(f"unknown source {record.get('source')!r} ({', '.join(sorted(sources))})")
    body = json.dumps(record["body"], ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) > limit:
        raise ValueError(f"body of {len(body):,} bytes is over the {limit:,}-byte limit")
    source.check(WebhookRequest("POST", "", {}, body, int(now.timestamp() * 1000)))
    received_at = _received_at(record.get("received_at"), now)
    digest = hashlib.sha256(source.name.encode() + b"\n" + body).hexdigest()
    return IngestEnvelope(
        request_id=f"ingest-{digest[:24]}",
        source=source.name,
        received_at=received_at,
        body=body,
        headers={"content-type": "application/json", "x-pulse-replay": where},
    )


def _received_at(value: object, now: datetime) -> datetime:
    """When the capture says the webhook arrived (an event without its own time happened
    then); now when it does not say."""
    if value is None:
        return now
    if not isinstance(value, str):
        raise ValueError("received_at is not an ISO-8601 string")
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"received_at {value!r} is not ISO-8601") from None
    return instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)


async def forecast(replay: Replay, ports: IngestPorts, config: IngestConfig) -> None:
    """What the workers will make of each event: the same rules and gate, the ledger read."""
    for start in range(0, len(replay.envelopes), FORECAST_CHUNK):
        chunk = replay.envelopes[start : start + FORECAST_CHUNK]
        deliveries = [Delivery(e, receipt=e.request_id) for e in chunk]
        outcomes = await preview(deliveries, ports, config)
        replay.forecast.update(_FORECAST[o.status] for o in outcomes)
        replay.sources.update(e.source for e in chunk)


async def queue(replay: Replay, inbox: Inbox) -> int:
    """Put every envelope in the inbox; a too-large one is refused, the rest go on."""
    queued = 0
    for done, envelope in enumerate(replay.envelopes, 1):
        try:
            await inbox.put(envelope)
        except EnvelopeTooLarge as exc:
            replay.refused.append(f"{envelope.headers['x-pulse-replay']}: {exc}")
        else:
            queued += 1
        progress_bar(done, len(replay.envelopes))
    return queued


def _shown(refused: Sequence[str]) -> tuple[str, ...]:
    if len(refused) <= SHOWN_REFUSALS:
        return tuple(refused)
    return (*refused[:SHOWN_REFUSALS], f"… and {len(refused) - SHOWN_REFUSALS:,} more")
