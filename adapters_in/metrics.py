"""Counters and gauges for `GET /metrics`, rendered as Prometheus text (no client library needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

GaugeFn = Callable[[], Iterable[tuple[str, dict[str, str], float]]]


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
        self._described: list[tuple[dict[str, str], GaugeFn]] = []

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
        lines.extend(self._render_described())
        return "\n".join(lines) + "\n"

    # --- gauges with HELP and TYPE (incidents, silence: issue 13 §2) -----------------------------

    def described_gauges(self, helps: dict[str, str], fn: GaugeFn) -> None:
        """Gauges read at scrape time whose families (name → help) are always declared."""
        self._described.append((helps, fn))

    def _render_described(self) -> list[str]:
        lines: list[str] = []
        for helps, fn in self._described:
            found = list(fn())
            for name, text in helps.items():
                lines += [f"# HELP pulse_{name} {text}", f"# TYPE pulse_{name} gauge"]
                for series, labels, val in found:
                    if series == name:
                        key = _labels(tuple(sorted(labels.items())))
                        lines.append(f"pulse_{name}{key} {val:.16g}")
        return lines
