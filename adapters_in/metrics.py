"""Counters and gauges for `GET /metrics`, rendered as Prometheus text (no client library needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return "{" + inner + "}"


class Metrics:
    """Process-local metrics; every name is prefixed `pulse_`."""

    def __init__(self) -> None:
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._help: dict[str, str] = {}
        self._gauges: list[Callable[[], Iterable[tuple[str, dict[str, str], float]]]] = []

    def inc(self, name: str, amount: float = 1, help: str = "", **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._counters[name]
        series[key] = series.get(key, 0) + amount
        if help:
            self._help.setdefault(name, help)

    def value(self, name: str, **labels: str) -> float:
        return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0)

    def gauge_source(self, fn: Callable[[], Iterable[tuple[str, dict[str, str], float]]]) -> None:
        """Register a function read at scrape time: yields (name, labels, value)."""
        self._gauges.append(fn)

    def render(self) -> str:
        lines: list[str] = []
        for name, series in sorted(self._counters.items()):
            if name in self._help:
                lines.append(f"# HELP pulse_{name} {self._help[name]}")
            lines.append(f"# TYPE pulse_{name} counter")
            for key, val in sorted(series.items()):
                lines.append(f"pulse_{name}{_labels(key)} {val:g}")
        for fn in self._gauges:
            for name, labels, val in fn():
                lines.append(f"pulse_{name}{_labels(tuple(sorted(labels.items())))} {val:g}")
        return "\n".join(lines) + "\n"
