"""The README's promises that code can check: the counting table, the test command, the goals and
shifts commands."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pulse.adapters_in.cli.main import build_parser
from pulse.core.rules import COUNTING_RULES

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


def test_the_readme_covers_dead_letter_retention_and_every_dead_letters_command() -> None:
    for action in _actions("dead-letters"):
        assert f"pulse dead-letters {action}" in README, action
    for name in ("DEAD_LETTER_RETENTION_DAYS", "PURGE_DEAD_LETTERS_CRON", "/admin/dead-letters"):
        assert name in README, name


def _actions(command: str) -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = next(
        a for a in commands.choices[command]._actions if isinstance(a, argparse._SubParsersAction)
    )
    return sorted(actions.choices)


def test_the_readme_explains_every_metrics_series_and_reason_code() -> None:
    from pulse.adapters_in.metrics import FAMILIES, exposed_name

    section = README.split("## Reading /metrics", 1)[1].split("\n## ", 1)[0]
    for name in FAMILIES:
        assert f"`{exposed_name(name)}`" in section, name
    ingest = (ROOT / "core" / "ingest.py").read_text()
    codes = set(re.findall(r'code="([a-z_]+)"', ingest)) | set(
        re.findall(r'"([a-z]+_unavailable|counted|sink_rejected)"', ingest)
    )
    codes |= {r.then.reason for r in COUNTING_RULES if r.then.metric is None}
    codes |= {"not_on_roster", "unknown_owner", "no_rule"}
    for code in codes:
        assert f"`{code}`" in section, code


def test_the_operator_section_shows_the_console_with_its_screenshot() -> None:
    shown = re.findall(r"!\[[^\]]*console[^\]]*\]\(([^)]+\.png)\)", README)
    assert shown and all((ROOT / path).stat().st_size > 10_000 for path in shown)
    assert "pulse console-link" in README and "/console" in README
