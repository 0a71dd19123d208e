"""README "Running on Lambda": its SAM template wires what the handlers rely on."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]


class _Template(yaml.SafeLoader):
    """CloudFormation's short tags (`!GetAtt`, `!Sub`) read as plain values."""


_Template.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node))


def _template() -> dict[str, Any]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running on Lambda", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    template: dict[str, Any] = yaml.load(block, Loader=_Template)
    return template


def test_each_function_names_a_handler_that_exists() -> None:
    resources = _template()["Resources"]
    for name in ("Edge", "Worker"):
        (handler,) = resources[name]["Properties"]["ImageConfig"]["Command"]
        module, _, function = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function)), handler


def test_the_worker_reports_batch_item_failures_from_a_queue_six_timeouts_long() -> None:
    resources = _template()["Resources"]
    worker = resources["Worker"]["Properties"]
    mapping = worker["Events"]["Inbox"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert 1 <= mapping["BatchSize"] <= 10
    queue = resources["Inbox"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 10  # a backstop, not the retry policy


def test_the_functions_run_with_the_sqs_inbox() -> None:
    variables = _template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["INBOX"] == "sqs"
    # secrets by their Secrets Manager ids, never by value in a template
    for secret in ("ALOWARE_SECRET", "HUBSPOT_CLIENT_SECRET", "POWERBI__CLIENT_SECRET"):
        assert secret not in variables
    assert variables["SECRETS_SOURCE"] == "aws"
