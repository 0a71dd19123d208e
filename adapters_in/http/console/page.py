"""What the console shows: today's grid from the warehouse rows `pulse report` reads, and the
template that renders it (jinja2, autoescaped: every value an operator sees is escaped)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@cache
def _templates() -> jinja2.Environment:
    """Built at the first page, not at start: jinja2 is a twentieth of a second of cold start."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("pulse.adapters_in.http.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the test, not the operator
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True, slots=True)
class Cell:
    count: int
    goal: float | None
    status: str | None  # Red, Yellow, Green; None without a goal


@dataclass(frozen=True, slots=True)
class AgentRow:
    name: str
    cells: Mapping[str, Cell]


@dataclass(frozen=True, slots=True)
class Grid:
    """Agents down, metrics across, from `fact_daily_metric` rows of one business date."""

    metrics: tuple[str, ...] = ()
    agents: tuple[AgentRow, ...] = field(default_factory=tuple)


def grid(rows: Sequence[Mapping[str, Any]]) -> Grid:
    metrics = tuple(sorted({str(r["MetricID"]) for r in rows}))
    by_agent: dict[str, tuple[str, dict[str, Cell]]] = {}
    for r in rows:
        key = str(r["AgentKey"])
        name = str(r.get("AgentName") or key)
        cells = by_agent.setdefault(key, (name, {}))[1]
        cells[str(r["MetricID"])] = Cell(int(r.get("Count") or 0), r.get("Goal"), r.get("Status"))
    agents = tuple(AgentRow(name, cells) for name, cells in by_agent.values())
    return Grid(metrics, tuple(sorted(agents, key=lambda a: a.name.lower())))


def render(template: str, **context: Any) -> str:
    return _templates().get_template(template).render(**context)
