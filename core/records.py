"""What the control plane remembers: audit records and the applied version of each document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One control-plane call: who did what, to which payload, with what result.

    `outcome` reads as a word or a short phrase: `applied`, `dry_run`, `stale`, `failed: …`.
    """

    who: str
    when: datetime
    action: str
    payload_hash: str
    outcome: str
    version: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    duration_sec: float = 0.0


@dataclass(frozen=True, slots=True)
class AppliedVersion:
    """The payload last applied to one document (`dim_metric:2026-11`, `dim_shift`), kept so a
    rewrite can rebuild a dimension from every stored document."""

    document: str
    version: int
    body: str
    applied_at: datetime
