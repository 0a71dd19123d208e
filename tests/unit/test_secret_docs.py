"""The README's settings table and docs/aws.md name every secret-source setting, and the ECS
task definition in docs/aws.md is one that would deploy Pulse as the guide says."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pulse.bootstrap.secret_settings import SecretsManagerIds, SecretSourceSettings

ROOT = Path(__file__).parents[2]
README = (ROOT / "README.md").read_text()
AWS = (ROOT / "docs" / "aws.md").read_text()


def variables() -> list[str]:
    flat = [name.upper() for name in SecretSourceSettings.model_fields if name != "secrets"]
    nested = [f"SECRETS__{name.upper()}" for name in SecretsManagerIds.model_fields]
    return flat + nested


def test_the_readme_and_the_aws_guide_name_every_secret_source_setting() -> None:
    settings_table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for name in variables():
        assert f"`{name}`" in settings_table, name
        assert f"`{name}`" in AWS, name


def test_the_guides_defaults_are_the_settings_defaults() -> None:
    ids = SecretsManagerIds()
    assert f"| `SECRETS__TTL_SEC` | `{ids.ttl_sec:g}` |" in AWS
    assert f"| `SECRETS__PREVIOUS_VALID_SEC` | `{ids.previous_valid_sec:g}` |" in AWS
    assert "| 300, 86400 |" in README and (ids.ttl_sec, ids.previous_valid_sec) == (300, 86400)


def test_the_ecs_task_definition_drains_checks_health_and_reads_secrets_manager() -> None:
    section = AWS.split("### ECS task definition", 1)[1]
    task = json.loads(re.search(r"```json\n(.*?)```", section, re.S).group(1))  # type: ignore[union-attr]
    (container,) = task["containerDefinitions"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert container["stopTimeout"] > float(env["DRAIN_TIMEOUT_SEC"])
    assert "/healthz" in " ".join(container["healthCheck"]["command"])
    assert env["SECRETS_SOURCE"] == "aws"
    assert all(":secretsmanager:" in s["valueFrom"] for s in container["secrets"])
    ids = {n for n in env if n.startswith("SECRETS__") and n.endswith("_ID")}
    assert ids and ids <= set(variables())
