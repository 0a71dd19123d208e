"""The settings as documented agree with the model: `.env.example` is generated from it, the
README's settings table names every setting with its default, and `--help` names only real
settings."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pulse.adapters_in.cli.main import build_parser
from pulse.bootstrap.env_example import _default, _written, render
from pulse.bootstrap.settings import ENV_FILE_VARIABLE, setting_fields

ROOT = Path(__file__).parents[2]
FIELDS = dict(setting_fields())
NAMES = set(FIELDS) | {ENV_FILE_VARIABLE}
UNSET = {"—", "empty", "any", "none", "request URL", "one all-day shift"}
VENDOR_WORDS = {"PAY_PER_REQUEST"}  # DynamoDB's billing mode, named by `infra create --help`
NAME = re.compile(r"`([A-Z][A-Z0-9_]*|__[A-Z0-9_]+)(=[^`]*)?(\*)?`")


def _table_rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return [[cell.strip(" |") for cell in row] for row in rows]


def _names(cell: str, *, bare: bool = False) -> list[str]:
    """The variables a cell names: `GOALS__CALLS`, `__TEXTS` (same prefix), `DYNAMO_*` (all),
    `ROSTER=aloware` (unless `bare`: then only those written alone)."""
    found, prefix = [], ""
    for name, value, star in NAME.findall(cell):
        if value and bare:
            continue
        if name.startswith("__"):
            name = prefix + name
        prefix = name.split("__")[0] if "__" in name else prefix
        found.extend(sorted(n for n in NAMES if n.startswith(name)) if star else [name])
    return found


def test_the_env_example_is_generated_from_the_settings_model() -> None:
    committed = (ROOT / ".env.example").read_text()
    assert committed == render(), "run: python -m pulse.bootstrap.env_example > .env.example"
    for name, info in setting_fields():
        assert info.description and "\n" not in info.description, f"{name} has no meaning"
        assert f"\n# {name}=" in committed, name


def test_the_readme_table_names_every_setting_and_only_real_ones() -> None:
    named = [n for row in _table_rows() for cell in (row[0], row[2]) for n in _names(cell)]
    assert sorted(set(named) - NAMES) == []
    assert sorted(set(FIELDS) - set(named)) == []


def test_the_readme_table_gives_each_setting_its_default() -> None:
    wrong = []
    for row in _table_rows():
        names, defaults = _names(row[0], bare=True), [d.strip(" `") for d in row[1].split(", ")]
        if len(names) != len(defaults):
            continue  # a row of several with one default ("empty") or a family
        for name, shown in zip(names, defaults, strict=True):
            model = _written(_default(FIELDS[name])) if name in FIELDS else None
            if model is None or (shown in UNSET and model == "") or _same(shown, model):
                continue
            wrong.append((name, shown, model))
    assert wrong == []


def _same(shown: str, model: str) -> bool:
    try:
        return float(shown) == float(model)
    except ValueError:
        return shown == model


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.extend(_parsers(child))
    return found


def test_the_help_names_only_real_settings() -> None:
    texts = []
    for parser in _parsers(build_parser()):
        texts.append(parser.description or "")
        texts.extend(action.help or "" for action in parser._actions)
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                texts.extend(choice.help or "" for choice in action._choices_actions)
    named = set(re.findall(r"\b[A-Z][A-Z0-9]*(?:__?[A-Z0-9]+)+\b", " ".join(texts)))
    assert named and sorted(named - NAMES - VENDOR_WORDS) == []
