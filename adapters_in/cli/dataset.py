"""`pulse dataset ensure|show`: create and check the sink's dataset (the sink's tool comes injected)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, Protocol

from dependency_injector.wiring import Provide, inject

from pulse.core.errors import PulseError

COMMANDS = ("dataset",)


class DatasetTool(Protocol):
    """What the configured sink offers: `ensure` creates or updates its dataset, `show` reports
    what it holds; both return printable text and raise `PulseError` with one sentence."""

    async def ensure(self) -> str: ...

    async def show(self) -> str: ...


class NoDatasetNeeded:
    """For sinks that create their own tables (the local SQLite warehouse)."""

    def __init__(self, sink: str, where: str) -> None:
        self._sentence = f"SINK={sink} needs no dataset: {where}."

    async def ensure(self) -> str:
        return self._sentence

    async def show(self) -> str:
        return self._sentence


class EachSinkDataset:
    """The tool of every sink SINKS names, run one after the other: a sink that fails does
    not stop the others; the failures then raise together. One sink: its own text."""

    def __init__(self, tools: Mapping[str, DatasetTool]) -> None:
        self._tools = dict(tools)

    async def ensure(self) -> str:
        return await self._each("ensure")

    async def show(self) -> str:
        return await self._each("show")

    async def _each(self, action: str) -> str:
        texts, failures = [], []
        for name, tool in self._tools.items():
            try:
                text = await (tool.ensure() if action == "ensure" else tool.show())
            except PulseError as exc:
                failures.append(f"{name}: {exc}" if len(self._tools) > 1 else str(exc))
            else:
                texts.append(f"== {name}\n{text}" if len(self._tools) > 1 else text)
        if failures:
            done = "; ".join(f"{name} done" for name in self._done(failures))
            raise PulseError("; ".join(failures) + (f" ({done})" if done else ""))
        return "\n".join(texts)

    def _done(self, failures: list[str]) -> list[str]:
        failed = {f.split(":", 1)[0] for f in failures}
        return [name for name in self._tools if name not in failed] if len(self._tools) > 1 else []


def add_commands(sub: Any) -> None:
    dataset = sub.add_parser(
        "dataset",
        help="create or inspect the sink's dataset (Power BI push dataset, Fabric tables)",
        description="The dataset the configured SINK writes to: SINK=powerbi, the push "
        "dataset in POWERBI__WORKSPACE_ID (docs/powerbi.md); SINK=fabric-eventhouse or "
        "fabric-eventstream, the Fabric KQL tables the rows land in (docs/fabric.md); "
        "SINK=local, nothing: the local warehouse creates its own tables.",
    )
    actions = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "ensure",
        help="create the dataset if missing (prints its id), bring tables and measures in line",
        description="Create the dataset when absent (found by POWERBI__DATASET_ID, else by "
        "POWERBI__DATASET_NAME) and print the id to put in POWERBI__DATASET_ID; compare tables, "
        "columns and measures with the code and apply PutTable where they differ. Never drops "
        "data; drift it cannot fix is reported.",
    )
    actions.add_parser(
        "show",
        help="print what the dataset holds and what `ensure` would change (writes nothing)",
    )


@inject
async def dispatch(args: argparse.Namespace, tool: DatasetTool = Provide["dataset_tool"]) -> int:
    try:
        text = await (tool.ensure() if args.action == "ensure" else tool.show())
    except PulseError as exc:
        sentence = " ".join(str(exc).split())  # one line, whatever the vendor's body held
        print(f"pulse: dataset {args.action}: {sentence}", file=sys.stderr)
        return 1
    print(text)
    return 0
