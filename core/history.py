"""Versions you can go back to: list a document's applied versions, apply an earlier one again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pulse.core.control import (
    Caller,
    ControlConfig,
    ControlPorts,
    Summary,
    UnknownVersion,
    apply_metrics,
    apply_shifts,
    payload_hash,
    report_unchanged,
)
from pulse.core.dimensions import MONTH, MetricsDocument, ShiftsDocument
from pulse.core.errors import ValidationFailed

if TYPE_CHECKING:
    from pulse.core.records import AppliedVersion

D = TypeVar("D", MetricsDocument, ShiftsDocument)


@dataclass(frozen=True, slots=True)
class VersionEntry:
    """One applied version as an operator reads it: who, when, which payload, what it wrote."""

    version: int
    applied_at: datetime
    applied_by: str
    payload_hash: str
    counts: Mapping[str, int]
    restored_from: int | None
    current: bool

    @classmethod
    def of(cls, applied: AppliedVersion, *, current: bool) -> VersionEntry:
        return cls(
            version=applied.version,
            applied_at=applied.applied_at,
            applied_by=applied.applied_by,
            payload_hash=payload_hash(applied.body),
            counts=dict(applied.counts),
            restored_from=applied.restored_from,
            current=current,
        )

    def line(self) -> str:
        """`v3  2026-11-05T15:00:00+00:00  cli:alice  sha256:1a2b3c4d5e6f  24 rows · 1 changed`."""
        counts = " · ".join(f"{v:,} {k}" for k, v in self.counts.items()) or "no counts"
        restored = f" · restores v{self.restored_from}" if self.restored_from is not None else ""
        current = "  (applied)" if self.current else ""
        return (
            f"v{self.version}  {self.applied_at.isoformat()}  {self.applied_by or 'unknown'}"
            f"  {self.payload_hash[:19]}  {counts}{restored}{current}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "appliedAt": self.applied_at.isoformat(),
            "appliedBy": self.applied_by,
            "payloadHash": self.payload_hash,
            "counts": dict(self.counts),
            "restoredFrom": self.restored_from,
            "current": self.current,
        }


def metrics_document(month: str) -> str:
    if not MONTH.match(month):
        raise ValidationFailed(f"month: {month!r} is not a month as YYYY-MM")
    return f"{MetricsDocument.prefix}{month}"


async def history(document: str, ports: ControlPorts) -> list[VersionEntry]:
    """Every applied version of `document`, oldest first; the last is the one in force."""
    kept = await ports.versions.history(document)
    return [VersionEntry.of(v, current=i == len(kept) - 1) for i, v in enumerate(kept)]


async def rollback_metrics(
    month: str,
    to: int,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
) -> Summary:
    """Apply version `to` of a month's goals again, as a new version after the applied one,
    through `apply_metrics` (same lease, rewrite, ledger marking and audit)."""
    name = metrics_document(month)

    async def apply(goals: MetricsDocument) -> Summary:
        return await apply_metrics(goals, ports, config, caller, dry_run=dry_run, restores=to)

    return await _rollback(
        "rollback_metrics", name, MetricsDocument.from_json, apply, to, ports, caller, dry_run
    )


async def rollback_shifts(
    to: int,
    ports: ControlPorts,
    config: ControlConfig,
    caller: Caller,
    *,
    dry_run: bool = False,
) -> Summary:
    """Apply version `to` of the shift rules again, as a new version, through `apply_shifts`."""

    async def apply(rules: ShiftsDocument) -> Summary:
        return await apply_shifts(rules, ports, config, caller, dry_run=dry_run, restores=to)

    return await _rollback(
        "rollback_shifts",
        ShiftsDocument.name,
        ShiftsDocument.from_json,
        apply,
        to,
        ports,
        caller,
        dry_run,
    )


async def _rollback(
    action: str,
    name: str,
    parse: Callable[[str], D],
    apply: Callable[[D], Awaitable[Summary]],
    to: int,
    ports: ControlPorts,
    caller: Caller,
    dry_run: bool,
) -> Summary:
    """Version `to` of document `name`, numbered after the applied one, through `apply`; or
    `unchanged` when its content is what is applied now."""
    started = ports.clock.now()
    applied, target = await _restorable(name, to, ports)
    document = parse(target.body)
    if replace(document, version=applied.version).to_json() == applied.body:
        why = _same_as_applied(to, applied)
        return await report_unchanged(
            action, applied, ports, caller, started, dry_run=dry_run, why=why
        )
    return _restoring(await apply(replace(document, version=applied.version + 1)), to)


async def _restorable(
    document: str, to: int, ports: ControlPorts
) -> tuple[AppliedVersion, AppliedVersion]:
    """(the applied version, version `to`), or `UnknownVersion` naming the versions there are."""
    applied = await ports.versions.get(document)
    target = await ports.versions.get(document, to) if applied is not None else None
    if applied is None or target is None:
        known = [f"v{v.version}" for v in await ports.versions.history(document)]
        there = f"its versions are {', '.join(known)}" if known else "nothing was applied yet"
        raise UnknownVersion(f"{document} has no version {to}: {there}")
    return applied, target


def _same_as_applied(to: int, applied: AppliedVersion) -> str:
    if to == applied.version:
        return f"v{to} is the applied version"
    return f"v{to} is the same as the applied version v{applied.version}"


def _restoring(summary: Summary, to: int) -> Summary:
    if summary.version is None:
        return summary
    return replace(
        summary, changes=(f"v{to} applied again as v{summary.version}", *summary.changes)
    )
