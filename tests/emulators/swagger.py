"""A small validator for the vendored Power BI swagger: required, types, patterns, enums, unknown names."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[1] / "specs" / "powerbi-push-subset.json"


@cache
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return loaded


@cache
def _pattern(source: str) -> re.Pattern[str]:
    # The swagger writes astral code points .NET-style (\u10000-\u10FFFF); Python needs \U.
    translated = re.sub(
        r"\\u([0-9A-Fa-f]{5,6})", lambda m: "\\U" + m.group(1).rjust(8, "0"), source
    )
    return re.compile(translated)


def parameter_enum(path: str, method: str, name: str) -> list[str]:
    for parameter in spec()["paths"][path][method]["parameters"]:
        if parameter["name"] == name:
            return list(parameter.get("enum", []))
    raise KeyError(name)


def validate(value: Any, definition: str) -> list[str]:
    """Problems of `value` against `#/definitions/<definition>`, each prefixed with its path.

    Stricter than a plain JSON-schema reading on one point: a property the definition does
    not name is an error, so a mis-cased name ("DataType") cannot pass unnoticed.
    """
    problems: list[str] = []
    _check(value, {"$ref": f"#/definitions/{definition}"}, definition, problems)
    return problems


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec()["definitions"][name]
    return schema


def _properties(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    schema = _resolve(schema)
    props: dict[str, Any] = dict(schema.get("properties", {}))
    required = list(schema.get("required", []))
    for part in schema.get("allOf", []):
        more, req = _properties(part)
        props.update(more)
        required += req
    return props, required


def _check(value: Any, schema: dict[str, Any], where: str, problems: list[str]) -> None:
    schema = _resolve(schema)
    props, required = _properties(schema)
    kind = schema.get("type") or ("object" if props else None)
    if kind == "object":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object")
            return
        for name in required:
            if name not in value:
                problems.append(f"{where}.{name}: required property missing")
        for name, item in value.items():
            if name not in props:
                if props:
                    problems.append(f"{where}.{name}: unknown property")
                continue
            if props[name].get("readOnly"):
                continue
            _check(item, props[name], f"{where}.{name}", problems)
    elif kind == "array":
        if not isinstance(value, list):
            problems.append(f"{where}: expected an array")
            return
        items = _resolve(schema.get("items", {}))
        if items.get("type") == "object" and not _properties(items)[0]:
            # free-form objects (PostRows rows): the emulator type-checks them per column
            problems += [
                f"{where}[{i}]: expected an object"
                for i, item in enumerate(value)
                if not isinstance(item, dict)
            ]
            return
        for i, item in enumerate(value):
            _check(item, items, f"{where}[{i}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string")
            return
        if "pattern" in schema and not _pattern(schema["pattern"]).fullmatch(value):
            problems.append(f"{where}: {value!r} does not match the allowed characters/length")
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false")
    elif kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"{where}: expected a number")
