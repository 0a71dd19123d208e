"""The README's promises that code can check: the counting table and the two commands."""

from __future__ import annotations

from pathlib import Path

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
