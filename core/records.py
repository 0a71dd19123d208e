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
    """One applied version of a document (`dim_metric:2026-11`, `dim_shift`): the newest is what
    a rewrite rebuilds a dimension from; every earlier one is kept so it can be applied again.

    `counts` are the rows the apply wrote (rows, added, removed, changed, …); `restored_from`
    names the version a rollback re-applied."""

    document: str
    version: int
    body: str
    applied_at: datetime
    applied_by: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)
    restored_from: int | None = None
