"""One sink among those SINKS names, with the ledger namespace that counts for it (DESIGN §9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.ports.ledger import Ledger
    from pulse.ports.sink import Sink


@dataclass(frozen=True, slots=True)
class SinkLane:
    """One sink every fact and dimension row goes to, counted in its own ledger (a namespace of
    the one store), behind its own breaker: one sink's outage never blocks or double-counts
    another's."""

    name: str
    """The sink as SINKS names it: `powerbi`."""
    ledger: Ledger
    sink: Sink
    dependency: str = "sink"
    """Its breaker: `sink` when it is the only sink, `sink:<name>` beside others."""
