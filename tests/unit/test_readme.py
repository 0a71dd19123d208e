"""The README's promises that code can check: the counting table, the test command, the goals and
shifts commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from adapters_in.cli.main import build_parser
from core.rules import COUNTING_RULES

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_documents_every_counting_rule_with_its_outcome() -> None:
    for rule in COUNTING_RULES:
        outcome = rule.then.metric.value if rule.then.metric else f"ignored: {rule.then.reason}"
        assert f"| {rule.name} | {outcome}" in README, rule.name


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in README
    assert "exec make test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_and_the_guide_name_every_goals_and_shifts_command() -> None:
    guide = (ROOT / "docs" / "control-plane.md").read_text()
    for command in ("metrics", "shifts"):
        for action in _actions(command):
            assert f"pulse {command} {action}" in README, (command, action)
            assert f"pulse {command} {action}" in guide, (command, action)


def _actions(command: str) -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = next(
        a for a in commands.choices[command]._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sorted(actions.choices)
