"""`.env.example`: every setting with its default and meaning, written from the settings model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from pulse.bootstrap.settings import Settings, setting_fields

HEADER = """\
# Pulse settings: every variable, its default and what it is for. Copy what you change into
# .env (or the environment) and uncomment it. Lists: comma-separated (42,43) or JSON.
# Nested settings use __ (POWERBI__TENANT_ID). Never commit real secrets.
# Generated from bootstrap/settings.py: python -m pulse.bootstrap.env_example > .env.example
"""


def render() -> str:
    """The file's text; a test compares it with the committed `.env.example`."""
    groups: dict[str, list[str]] = {PROCESS: []}  # the process first, then each concern
    for name, info in setting_fields():
        meaning = " ".join((info.description or "").split())
        entry = f"# {meaning}\n# {name}={_written(_default(info))}\n"
        groups.setdefault(_group(name), []).append(entry)
    return HEADER + "".join(
        f"\n# --- {heading} ---\n" + "".join(entries) for heading, entries in groups.items()
    )


PROCESS = "The process, its stores, the edge and the business rules"


def _group(name: str) -> str:
    """The concern part that holds the variable, by its docstring's first line."""
    if "__" in name:
        part = Settings.model_fields[name.split("__")[0].lower()].annotation
        assert isinstance(part, type) and issubclass(part, BaseModel)
        return _first_line(part.__doc__ or part.__name__)
    field = name.lower()
    for owner in Settings.__mro__[1:]:
        if field in getattr(owner, "__annotations__", {}) and owner.__doc__:
            return _first_line(owner.__doc__)
    return PROCESS


def _first_line(doc: str) -> str:
    return doc.strip().splitlines()[0].rstrip(".")


def _default(info: Any) -> Any:
    if info.default_factory is not None:
        return info.default_factory()
    return None if info.default is PydanticUndefined else info.default


def _written(value: Any) -> str:
    """A default as one would write it in .env; empty when unset."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


if __name__ == "__main__":
    sys.stdout.write(render())
